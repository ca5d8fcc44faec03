//! Joining nodes, as kubeadm and k3s do: the CA's hash for pinning, and
//! the `skiff agent` command line that uses it with a bootstrap token
//! ([`crate::token`] makes those).

use std::path::Path;

use anyhow::Context;
use skiff_pki::token::BootstrapToken;

/// The cluster CA's `sha256:<hex>` hash, from the data dir.
pub fn ca_hash(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("pki").join(skiff_pki::ca::CA_CERT);
    let pem =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(skiff_pki::ca::hash_of_pem(&pem)?)
}

/// The command line a machine joins with: one line starting
/// `skiff agent --server`, for people and scripts to copy.
pub fn agent_command(server: &str, token: &BootstrapToken, hash: &str) -> String {
    format!(
        "skiff agent --server {server} --token {token} --ca-cert-hash {hash} --data-dir /var/lib/skiff/agent"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_line_is_greppable_and_complete() {
        let token = BootstrapToken::parse("abcdef.0123456789abcdef").expect("token");
        let line = agent_command("https://10.0.0.1:6443", &token, "sha256:00");
        assert!(line.starts_with("skiff agent --server https://10.0.0.1:6443 "));
        assert!(line.contains("--token abcdef.0123456789abcdef"));
        assert!(line.contains("--ca-cert-hash sha256:00"));
    }
}
