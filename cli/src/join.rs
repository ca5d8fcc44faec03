//! Joining nodes, as kubeadm and k3s do: a bootstrap token made through
//! the API (a Secret `kube-system/bootstrap-token-<id>`, so `kubectl get
//! secrets -n kube-system` lists it and deleting it revokes it), the CA's
//! hash for pinning, and the `skiff agent` command line that uses both.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use skiff_pki::token::BootstrapToken;

use crate::api::Api;

/// How long a token made at start joins nodes (kubeadm's default TTL).
pub const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Makes a bootstrap token valid for `ttl` through the API (as `skiff
/// token create` does).
pub fn create_token(api: &Api, ttl: Duration, description: &str) -> anyhow::Result<BootstrapToken> {
    let token = BootstrapToken::generate()?;
    crate::token::store(
        api,
        &crate::token::spec(token.clone(), ttl, chrono::Utc::now(), description),
    )?;
    Ok(token)
}

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
