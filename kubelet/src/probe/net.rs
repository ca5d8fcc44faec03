//! Reaching into a pod's network namespace for httpGet and tcpSocket probes.
//!
//! The kubelet lives in the node's namespace; a pod's loopback is only
//! reachable from inside the pod's. A short-lived thread enters the pod's
//! namespace (`setns`), opens the connection there, and hands the socket
//! back: a socket stays in the namespace it was created in.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn connect_in(
    netns: Option<PathBuf>,
    addr: SocketAddr,
    timeout: Duration,
) -> std::io::Result<TcpStream> {
    if let Some(path) = netns {
        let ns = std::fs::File::open(&path)?;
        // SAFETY: setns on a namespace fd we own; it affects only this
        // thread, which exists for this one connection.
        if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    Ok(stream)
}

/// Runs `f` with a connection to `addr` made inside `netns` (the host's
/// namespace when `None`), on a dedicated thread.
async fn with_connection<T: Send + 'static>(
    netns: Option<&Path>,
    addr: SocketAddr,
    timeout: Duration,
    f: impl FnOnce(TcpStream) -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let netns = netns.map(Path::to_path_buf);
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-probe".into())
        .spawn(move || {
            let _ = tx.send(connect_in(netns, addr, timeout).and_then(f));
        })?;
    rx.await
        .unwrap_or_else(|_| Err(std::io::Error::other("probe thread vanished")))
}

fn describe(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused",
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout",
        std::io::ErrorKind::ConnectionReset => "connection reset by peer",
        _ => "connect failed",
    }
}

/// tcpSocket: success when the port accepts a connection.
pub async fn tcp_check(
    netns: Option<&Path>,
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), String> {
    with_connection(netns, addr, timeout, |_| Ok(()))
        .await
        .map_err(|e| format!("dial tcp {addr}: {}", describe(&e)))
}

/// An httpGet probe request.
#[derive(Debug, Clone)]
pub struct HttpCheck {
    /// Where to connect.
    pub addr: SocketAddr,
    /// Host header value (`host:port` by default).
    pub host_header: String,
    /// Request path (with query).
    pub path: String,
    /// Extra headers (`httpHeaders`).
    pub headers: Vec<(String, String)>,
}

/// httpGet: success for a status of 200 to 399, as upstream.
pub async fn http_check(
    netns: Option<&Path>,
    check: HttpCheck,
    timeout: Duration,
) -> Result<(), String> {
    let url = format!("http://{}{}", check.addr, check.path);
    let addr = check.addr;
    let result = with_connection(netns, addr, timeout, move |mut stream| {
        let mut request = format!("GET {} HTTP/1.1\r\n", check.path);
        let has = |name: &str| {
            check
                .headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case(name))
        };
        if !has("host") {
            request.push_str(&format!("Host: {}\r\n", check.host_header));
        }
        if !has("user-agent") {
            request.push_str("User-Agent: kube-probe/1.35\r\n");
        }
        if !has("accept") {
            request.push_str("Accept: */*\r\n");
        }
        for (k, v) in &check.headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes())?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0u8; 256];
        while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 4096 {
            let n = stream.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok(head)
    })
    .await;
    let head = match result {
        Ok(h) => h,
        Err(e)
            if e.kind() == std::io::ErrorKind::ConnectionRefused
                || e.kind() == std::io::ErrorKind::TimedOut =>
        {
            return Err(format!("Get \"{url}\": dial tcp {addr}: {}", describe(&e)));
        }
        Err(e) => return Err(format!("Get \"{url}\": {e}")),
    };
    let line = String::from_utf8_lossy(&head);
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&status) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {status}"))
    }
}
