//! `PortForward`: one TCP connection to a port on a pod's loopback.
//!
//! Pods have no address of their own yet, so the connection is made inside
//! the pod's network namespace: a short-lived thread enters it (`setns`),
//! connects to `localhost:<port>` and hands the socket back (a socket stays
//! in the namespace it was created in). Errors are worded as the upstream
//! kubelet and containerd word them, since kubectl prints them as they come.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_proto::node::v1 as pb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Status, Streaming};

/// Longest wait for the pod's port to accept.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes read from the pod's port per message.
const CHUNK: usize = 32 * 1024;

/// Why a connection into a pod failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// The namespace could not be entered.
    #[error("failed to execute portforward in network namespace {:?}: {source}", path.display().to_string())]
    Namespace {
        /// Namespace path.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Neither loopback address accepted.
    #[error(
        "failed to connect to localhost:{port} inside namespace {pod:?}, IPv4: dial tcp4 127.0.0.1:{port}: {v4} IPv6 dial tcp6 [::1]:{port}: {v6} "
    )]
    Connect {
        /// The port.
        port: u16,
        /// Pod the namespace belongs to.
        pod: String,
        /// The IPv4 attempt.
        v4: String,
        /// The IPv6 attempt.
        v6: String,
    },
    /// The dialing thread could not run.
    #[error("cannot start the dialing thread: {0}")]
    Thread(String),
}

/// Go's wording of a connect error (what kubectl users know).
fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".into(),
        std::io::ErrorKind::AddrNotAvailable => "connect: cannot assign requested address".into(),
        _ => format!("connect: {e}"),
    }
}

fn dial_blocking(
    netns: Option<PathBuf>,
    pod: String,
    port: u16,
) -> Result<std::net::TcpStream, DialError> {
    if let Some(path) = netns {
        let enter = || -> std::io::Result<()> {
            let ns = std::fs::File::open(&path)?;
            // SAFETY: setns on a namespace fd we own; it affects only this
            // thread, which exists for this one connection.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        };
        enter().map_err(|source| DialError::Namespace { path, source })?;
    }
    let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
    let v4_error = match std::net::TcpStream::connect_timeout(&v4, CONNECT_TIMEOUT) {
        Ok(s) => return Ok(s),
        Err(e) => describe(&e),
    };
    match std::net::TcpStream::connect_timeout(&v6, CONNECT_TIMEOUT) {
        Ok(s) => Ok(s),
        Err(e) => Err(DialError::Connect {
            port,
            pod,
            v4: v4_error,
            v6: describe(&e),
        }),
    }
}

/// Connects to `localhost:port` inside `netns` (the kubelet's own namespace
/// when `None`, as for `hostNetwork` pods).
pub async fn dial(netns: Option<&Path>, pod: &str, port: u16) -> Result<TcpStream, DialError> {
    let netns = netns.map(Path::to_path_buf);
    let pod = pod.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("skiff-portfwd".into())
        .spawn(move || {
            let _ = tx.send(dial_blocking(netns, pod, port));
        })
        .map_err(|e| DialError::Thread(e.to_string()))?;
    let stream = rx
        .await
        .map_err(|_| DialError::Thread("dialing thread vanished".into()))??;
    stream
        .set_nonblocking(true)
        .and_then(|()| TcpStream::from_std(stream))
        .map_err(|e| DialError::Thread(e.to_string()))
}

/// Upstream kubelet's message for a failed forward (the sandbox ID there is
/// the pod UID here; the uid field is empty as the CRI path leaves it).
pub fn forward_error(port: u32, pod_uid: &str, cause: impl std::fmt::Display) -> Status {
    Status::unavailable(format!(
        "error forwarding port {port} to pod {pod_uid}, uid : {cause}"
    ))
}

/// Reads the start message of a `PortForward` call.
pub async fn start(inputs: &mut Streaming<pb::PortForwardInput>) -> Result<(String, u16), Status> {
    let first = inputs.message().await?.and_then(|m| m.input);
    let Some(pb::port_forward_input::Input::Start(start)) = first else {
        return Err(Status::invalid_argument(
            "port forward stream must start with PortForwardStart",
        ));
    };
    let port = u16::try_from(start.port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "invalid port {}: must be between 1 and 65535",
                start.port
            ))
        })?;
    Ok((start.pod_uid, port))
}

/// Copies between the call and the connection until both sides are done.
pub fn pump(
    stream: TcpStream,
    mut inputs: Streaming<pb::PortForwardInput>,
) -> ReceiverStream<Result<pb::PortForwardOutput, Status>> {
    let (mut reader, mut writer) = stream.into_split();
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok(Some(message)) = inputs.message().await {
            match message.input {
                Some(pb::port_forward_input::Input::Data(bytes))
                    if writer.write_all(&bytes).await.is_err() =>
                {
                    break;
                }
                Some(pb::port_forward_input::Input::CloseWrite(true)) => break,
                _ => {}
            }
        }
        // Half-close: the pod's server sees EOF and may still answer.
        let _ = writer.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = tokio::select! {
                n = reader.read(&mut buffer) => n,
                // The caller went away: drop the connection.
                () = tx.closed() => return,
            };
            match n {
                Ok(0) => return,
                Ok(n) => {
                    let out = pb::PortForwardOutput {
                        data: buffer[..n].to_vec(),
                    };
                    if tx.send(Ok(out)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(Status::aborted(e.to_string()))).await;
                    return;
                }
            }
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dials_the_kubelets_own_loopback_without_a_namespace() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accept = tokio::spawn(async move { listener.accept().await.map(|_| ()) });
        dial(None, "uid-1", port).await.expect("dial");
        accept.await.expect("join").expect("accept");
    }

    #[tokio::test]
    async fn a_refused_port_is_worded_as_upstream() {
        // Bind then drop: the port is (almost certainly) closed now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("bind")
            .port();
        let err = dial(None, "uid-1", port).await.expect_err("refused");
        let message = forward_error(u32::from(port), "uid-1", &err)
            .message()
            .to_string();
        assert!(
            message.starts_with(&format!(
                "error forwarding port {port} to pod uid-1, uid : failed to connect to localhost:{port} inside namespace \"uid-1\", IPv4: dial tcp4 127.0.0.1:{port}: connect: connection refused"
            )),
            "{message}"
        );
    }
}
