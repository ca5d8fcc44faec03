//! The CLI's client of its own cluster's API: HTTPS, trusting only the
//! cluster CA, as the cluster's admin (the certificate the control plane
//! keeps in `<data-dir>/pki`) or as a kubeconfig's user. Blocking and
//! short: health, node readiness, bootstrap tokens; nothing kubectl should
//! do.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::kubeconfig::Kubeconfig;

/// Who the CLI is to the API and what it trusts.
enum Credentials {
    /// The admin certificate and CA in a control plane's PKI folder.
    Pki(PathBuf),
    /// A kubeconfig's, read once.
    Kubeconfig {
        tls: Arc<rustls::ClientConfig>,
        bearer: Option<String>,
    },
}

/// The API of the cluster in a data dir.
pub struct Api {
    addr: String,
    credentials: Credentials,
}

impl Api {
    /// The API at `addr` of the cluster whose data dir is `dir`.
    pub fn new(addr: &str, dir: &Path) -> Self {
        Self {
            addr: addr.to_string(),
            credentials: Credentials::Pki(dir.join("pki")),
        }
    }

    /// The API a kubeconfig names, as its user.
    pub fn from_kubeconfig(config: &Kubeconfig) -> anyhow::Result<Self> {
        let identity = config
            .identity
            .as_ref()
            .map(|(cert, key)| (cert.as_str(), key.as_str()));
        let tls = skiff_pki::tls::client(&config.ca_pem, identity, &[b"http/1.1"])?;
        Ok(Self {
            addr: config.address(),
            credentials: Credentials::Kubeconfig {
                tls,
                bearer: config.token.clone(),
            },
        })
    }

    /// `GET path`: status and body, `None` when it cannot be asked (not up
    /// yet, no credentials yet, another server without our CA).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.call("GET", path, "")
    }

    /// `PUT path` with a JSON body, telling why it could not be asked.
    pub fn try_put(&self, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        self.try_call("PUT", path, body)
    }

    /// `GET path`, telling why it could not be asked.
    pub fn try_get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.try_call("GET", path, "")
    }

    /// `POST path` with a JSON body, telling why it could not be asked.
    pub fn try_post(&self, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        self.try_call("POST", path, body)
    }

    /// `DELETE path`, telling why it could not be asked.
    pub fn try_delete(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.try_call("DELETE", path, "")
    }

    fn call(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        self.try_call(method, path, body).ok()
    }

    fn try_call(&self, method: &str, path: &str, body: &str) -> anyhow::Result<(u16, String)> {
        use anyhow::Context;
        let (config, bearer) = match &self.credentials {
            // Read afresh each time: the control plane writes the files at
            // its start, after `skiff up` began waiting for it.
            Credentials::Pki(pki) => (skiff_pki::tls::admin_client(pki)?, None),
            Credentials::Kubeconfig { tls, bearer } => (tls.clone(), bearer.as_deref()),
        };
        let mut stream =
            skiff_pki::tls::connect_blocking(config, &self.addr, Duration::from_secs(2))
                .with_context(|| format!("connecting to the API at {}", self.addr))?;
        let authorization = bearer
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        // HTTP/1.0: long lists are streamed, and to a 1.0 client they come
        // without chunked framing, readable to the end of the connection.
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .with_context(|| format!("talking to the API at {}", self.addr))?;
        let mut response = Vec::new();
        // A server that closes without TLS's close_notify ends the read with
        // an error; what came before it is the whole answer.
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        let no_answer = || anyhow::anyhow!("the API at {} gave no HTTP answer", self.addr);
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(no_answer)?;
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(no_answer)?;
        Ok((status, body.to_string()))
    }

    /// Whether `path` answers 200.
    pub fn ok(&self, path: &str) -> bool {
        self.get(path).is_some_and(|(status, _)| status == 200)
    }

    /// How many nodes are Ready.
    pub fn ready_nodes(&self) -> usize {
        self.node_readiness()
            .iter()
            .filter(|(_, ready)| *ready)
            .count()
    }

    /// Every node the API lists, with whether its Ready condition is True.
    pub fn node_readiness(&self) -> Vec<(String, bool)> {
        let Some((200, body)) = self.get("/api/v1/nodes") else {
            return Vec::new();
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) else {
            return Vec::new();
        };
        v["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|n| {
                let ready = n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                let name = n["metadata"]["name"].as_str().unwrap_or_default();
                (name.to_string(), ready)
            })
            .collect()
    }
}
