//! The CLI's client of its own cluster's API: HTTPS, trusting only the
//! cluster CA, as the cluster's admin (the certificate the control plane
//! keeps in `<data-dir>/pki`). Blocking and short: health and node
//! readiness, nothing kubectl should do.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The API of the cluster in a data dir.
pub struct Api {
    addr: String,
    pki: PathBuf,
}

impl Api {
    /// The API at `addr` of the cluster whose data dir is `dir`.
    pub fn new(addr: &str, dir: &Path) -> Self {
        Self {
            addr: addr.to_string(),
            pki: dir.join("pki"),
        }
    }

    /// `GET path`: status and body, `None` when it cannot be asked (not up
    /// yet, no credentials yet, another server without our CA).
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        self.call("GET", path, "")
    }

    /// `POST path` with a JSON body: status and body, `None` when it cannot
    /// be asked.
    pub fn post(&self, path: &str, body: &str) -> Option<(u16, String)> {
        self.call("POST", path, body)
    }

    fn call(&self, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
        // Read afresh each time: the control plane writes the files at its
        // start, after `skiff up` began waiting for it.
        let config = skiff_pki::tls::admin_client(&self.pki).ok()?;
        let mut stream =
            skiff_pki::tls::connect_blocking(config, &self.addr, Duration::from_secs(2)).ok()?;
        // HTTP/1.0: long lists are streamed, and to a 1.0 client they come
        // without chunked framing, readable to the end of the connection.
        write!(
            stream,
            "{method} {path} HTTP/1.0\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .ok()?;
        let mut response = Vec::new();
        // A server that closes without TLS's close_notify ends the read with
        // an error; what came before it is the whole answer.
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n")?;
        let status = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((status, body.to_string()))
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
