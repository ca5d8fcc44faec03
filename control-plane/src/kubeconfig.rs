//! The kubeconfig the control plane writes for `kubectl` and every other
//! client (the Python client, kr8s, lightkube, kube-rs, Helm): HTTPS to
//! the API, the cluster CA to trust, the admin's client certificate
//! (`system:masters`), namespace `default`.

use std::path::Path;

use base64::Engine;

/// The server and credentials a kubeconfig carries.
pub struct KubeconfigData<'a> {
    /// `host:port` of the API (a wildcard address becomes loopback).
    pub address: &'a str,
    /// The cluster CA, PEM.
    pub ca_pem: &'a str,
    /// The user's certificate, PEM.
    pub cert_pem: &'a str,
    /// The user's key, PEM.
    pub key_pem: &'a str,
    /// The user's name in the file.
    pub user: &'a str,
}

/// `host:port` clients dial for an API listening at `address`.
pub fn dial_address(address: &str) -> String {
    match address.parse::<std::net::SocketAddr>() {
        Ok(a) if a.ip().is_unspecified() => format!("127.0.0.1:{}", a.port()),
        _ => address.to_string(),
    }
}

/// The kubeconfig text.
pub fn render(data: &KubeconfigData<'_>) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: https://{address}
    certificate-authority-data: {ca}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: {user}
    namespace: default
current-context: skiff
users:
- name: {user}
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
        address = dial_address(data.address),
        ca = b64(data.ca_pem),
        cert = b64(data.cert_pem),
        key = b64(data.key_pem),
        user = data.user,
    )
}

/// Writes it to `path` atomically, readable by its owner only (it holds
/// a key).
pub fn write(path: &Path, data: &KubeconfigData<'_>) -> Result<(), skiff_pki::PkiError> {
    skiff_pki::ca::write_atomic(path, &render(data), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_listen_address_is_dialled_on_loopback() {
        assert_eq!(dial_address("0.0.0.0:6443"), "127.0.0.1:6443");
        assert_eq!(dial_address("10.0.0.5:6443"), "10.0.0.5:6443");
        let text = render(&KubeconfigData {
            address: "0.0.0.0:6443",
            ca_pem: "ca",
            cert_pem: "c",
            key_pem: "k",
            user: "kubernetes-admin",
        });
        assert!(text.contains("server: https://127.0.0.1:6443"));
        assert!(text.contains("certificate-authority-data: Y2E="));
    }
}
