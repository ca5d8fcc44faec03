//! The API servers this test process started, and how to reach them: over
//! TLS, trusting the cluster's CA, as its admin. [`crate::request_as`]
//! and the other raw HTTP helpers look an address up here, so a test that
//! sends hand-made requests to an API server needs no TLS code of its own;
//! a `TestKubelet`'s HTTP port is reached with the control plane's
//! kubelet-client certificate ([`trust_with`]); any other address (a pod)
//! is plain TCP.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

type Servers = Mutex<HashMap<String, Arc<rustls::ClientConfig>>>;

fn servers() -> &'static Servers {
    static SERVERS: OnceLock<Servers> = OnceLock::new();
    SERVERS.get_or_init(Servers::default)
}

/// Talks to the API at `addr` as the admin of the control plane whose PKI
/// folder is `pki_dir`; `false` while its files are not written yet.
pub fn trust(addr: &str, pki_dir: &Path) -> bool {
    match skiff_pki::tls::admin_client(pki_dir) {
        Ok(config) => {
            servers()
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(addr.to_string(), config);
            true
        }
        Err(_) => false,
    }
}

/// Talks to `addr` (a kubelet's HTTP port) with `config` from now on.
pub fn trust_with(addr: &str, config: Arc<rustls::ClientConfig>) {
    servers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(addr.to_string(), config);
}

/// One HTTP/1.1 GET of `path` at `addr` over TLS with `config` (e.g. no
/// client certificate, or a node's); status and body.
pub fn get_with(
    config: Arc<rustls::ClientConfig>,
    addr: &str,
    path: &str,
) -> std::io::Result<(u16, String)> {
    request_with(config, "GET", addr, path, "")
}

/// [`get_with`] for any method, with a JSON body.
pub fn request_with(
    config: Arc<rustls::ClientConfig>,
    method: &str,
    addr: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    let mut stream = skiff_pki::tls::connect_blocking(config, addr, Duration::from_secs(10))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Err(e) if e.kind() != std::io::ErrorKind::UnexpectedEof => return Err(e),
        _ => {}
    }
    let text = String::from_utf8_lossy(&response).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

/// The admin's TLS configuration for the API at `addr`, if it is one of
/// this process's.
pub fn client(addr: &str) -> Option<Arc<rustls::ClientConfig>> {
    servers()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(addr)
        .cloned()
}

/// A connection: TLS to a known API server, plain TCP to anything else.
pub enum Stream {
    /// Not an API server of this process.
    Plain(TcpStream),
    /// An API server, as its admin.
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP connection under it (timeouts, shutdown).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Self::Plain(s) => s,
            Self::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf),
            // A server that closes without close_notify has said all it
            // will: the end of its answer, as on plain TCP.
            Self::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
                other => other,
            },
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(s) => s.flush(),
            Self::Tls(s) => s.flush(),
        }
    }
}

/// Connects to `addr`, over TLS if it is a known API server; reads time
/// out after `timeout`.
pub fn connect(addr: &str, timeout: Duration) -> std::io::Result<Stream> {
    match client(addr) {
        Some(config) => skiff_pki::tls::connect_blocking(config, addr, timeout)
            .map(|s| Stream::Tls(Box::new(s))),
        None => {
            let s = TcpStream::connect(addr)?;
            s.set_read_timeout(Some(timeout))?;
            Ok(Stream::Plain(s))
        }
    }
}

/// An async connection, TLS or plain as [`connect`] chooses.
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

/// [`connect`] for async code.
pub async fn connect_async(addr: &str) -> std::io::Result<Box<dyn AsyncStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let Some(config) = client(addr) else {
        return Ok(Box::new(tcp));
    };
    let host = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(Box::new(tls))
}
