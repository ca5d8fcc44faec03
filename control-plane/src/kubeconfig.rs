//! The kubeconfig the control plane writes for `kubectl`: plain HTTP and no
//! credentials (kubectl sends none over plain HTTP anyway), namespace
//! `default`.

use std::path::Path;

/// The kubeconfig text for a server at `http://{address}`.
pub fn render(address: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: http://{address}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff
    namespace: default
current-context: skiff
users:
- name: skiff
  user: {{}}
"
    )
}

/// Writes it to `path` atomically.
pub fn write(path: &Path, address: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, render(address))?;
    std::fs::rename(tmp, path)
}
