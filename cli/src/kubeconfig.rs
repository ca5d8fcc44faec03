//! Reading a kubeconfig, as kubectl and kubeadm's `--kubeconfig` do: the
//! current context's cluster (server, CA) and user (client certificate,
//! or a bearer token). Inline `-data` fields and file paths (relative to
//! the kubeconfig's folder) are both read; nothing else of the format is.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use serde_yaml::Value;

/// What the CLI needs of a kubeconfig to talk to an API server.
#[derive(Clone)]
pub struct Kubeconfig {
    /// `https://HOST:PORT` as written (no trailing slash).
    pub server: String,
    /// The CA the server's certificate is checked against, PEM.
    pub ca_pem: String,
    /// The user's client certificate and key, PEM.
    pub identity: Option<(String, String)>,
    /// The user's bearer token.
    pub token: Option<String>,
}

impl std::fmt::Debug for Kubeconfig {
    // Keys and tokens stay out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("server", &self.server)
            .field("identity", &self.identity.is_some())
            .field("token", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl Kubeconfig {
    /// Reads the kubeconfig at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).with_context(|| format!("kubeconfig {}", path.display()))
    }

    /// Reads kubeconfig `text` whose relative paths are under `base`.
    pub fn parse(text: &str, base: &Path) -> anyhow::Result<Self> {
        let doc: Value = serde_yaml::from_str(text).context("not YAML")?;
        let current = doc["current-context"]
            .as_str()
            .filter(|c| !c.is_empty())
            .context("no current-context")?;
        let context = named(&doc["contexts"], current)
            .map(|c| &c["context"])
            .with_context(|| format!("no context {current:?}"))?;
        let cluster_name = context["cluster"].as_str().unwrap_or_default();
        let cluster = named(&doc["clusters"], cluster_name)
            .map(|c| &c["cluster"])
            .with_context(|| format!("no cluster {cluster_name:?}"))?;
        let server = cluster["server"]
            .as_str()
            .context("the cluster has no server")?
            .trim_end_matches('/')
            .to_string();
        if !server.starts_with("https://") {
            bail!("server {server}: only https:// servers are supported");
        }
        let ca_pem = inline_or_file(cluster, "certificate-authority", base)?
            .context("the cluster has no certificate-authority(-data)")?;
        let user_name = context["user"].as_str().unwrap_or_default();
        let user = named(&doc["users"], user_name).map(|u| &u["user"]);
        let (identity, token) = match user {
            None => (None, None),
            Some(user) => {
                let cert = inline_or_file(user, "client-certificate", base)?;
                let key = inline_or_file(user, "client-key", base)?;
                let identity = match (cert, key) {
                    (Some(cert), Some(key)) => Some((cert, key)),
                    (None, None) => None,
                    _ => bail!("user {user_name:?} has a client certificate or key, not both"),
                };
                let token = match (user["token"].as_str(), user["tokenFile"].as_str()) {
                    (Some(t), _) => Some(t.to_string()),
                    (None, Some(file)) => Some(read(&resolve(base, file))?.trim().to_string()),
                    (None, None) => None,
                };
                (identity, token)
            }
        };
        Ok(Self {
            server,
            ca_pem,
            identity,
            token,
        })
    }

    /// `HOST:PORT` of the server, for dialling.
    pub fn address(&self) -> String {
        let rest = self.server.trim_start_matches("https://");
        let authority = rest.split('/').next().unwrap_or(rest);
        // No port: HTTPS's.
        if authority.ends_with(']') || !authority.contains(':') {
            format!("{authority}:443")
        } else {
            authority.to_string()
        }
    }
}

/// The entry named `name` of a kubeconfig list (`clusters`, `users`, ...).
fn named<'a>(list: &'a Value, name: &str) -> Option<&'a Value> {
    list.as_sequence()?
        .iter()
        .find(|entry| entry["name"].as_str() == Some(name))
}

fn resolve(base: &Path, file: &str) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// `<field>-data` (base64) or `<field>` (a file), whichever is set.
fn inline_or_file(map: &Value, field: &str, base: &Path) -> anyhow::Result<Option<String>> {
    if let Some(data) = map[format!("{field}-data").as_str()].as_str() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .with_context(|| format!("{field}-data is not base64"))?;
        return Ok(Some(
            String::from_utf8(bytes).with_context(|| format!("{field}-data is not PEM text"))?,
        ));
    }
    match map[field].as_str() {
        Some(file) => Ok(Some(read(&resolve(base, file))?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn the_current_contexts_cluster_and_user_are_read() {
        let text = format!(
            "apiVersion: v1
kind: Config
clusters:
- name: other
  cluster: {{server: 'https://10.9.9.9:1', certificate-authority-data: {other}}}
- name: skiff
  cluster:
    server: https://10.0.0.5:6443/
    certificate-authority-data: {ca}
contexts:
- name: skiff
  context: {{cluster: skiff, user: admin}}
current-context: skiff
users:
- name: admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
",
            other = b64("other"),
            ca = b64("CA PEM"),
            cert = b64("CERT"),
            key = b64("KEY"),
        );
        let k = Kubeconfig::parse(&text, Path::new("/")).expect("parses");
        assert_eq!(k.server, "https://10.0.0.5:6443");
        assert_eq!(k.address(), "10.0.0.5:6443");
        assert_eq!(k.ca_pem, "CA PEM");
        assert_eq!(k.identity, Some(("CERT".into(), "KEY".into())));
        assert_eq!(k.token, None);
        assert!(!format!("{k:?}").contains("KEY"));
    }

    #[test]
    fn files_are_read_relative_to_the_kubeconfig_and_tokens_too() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("ca.crt"), "CA FILE").expect("write");
        let text = "clusters:
- name: c
  cluster: {server: 'https://[::1]', certificate-authority: ca.crt}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
users:
- name: u
  user: {token: abc}
";
        let k = Kubeconfig::parse(text, dir.path()).expect("parses");
        assert_eq!(k.ca_pem, "CA FILE");
        assert_eq!(k.address(), "[::1]:443");
        assert_eq!(k.token.as_deref(), Some("abc"));
        assert_eq!(k.identity, None);
    }

    #[test]
    fn incomplete_kubeconfigs_say_what_is_missing() {
        let err = |text: &str| {
            format!(
                "{:#}",
                Kubeconfig::parse(text, Path::new("/")).expect_err("refused")
            )
        };
        assert!(err("kind: Config").contains("no current-context"));
        assert!(err("current-context: a\ncontexts: []").contains("no context \"a\""));
        let plain = "current-context: a
contexts: [{name: a, context: {cluster: c}}]
clusters: [{name: c, cluster: {server: 'http://x:1'}}]";
        assert!(err(plain).contains("only https://"));
    }
}
