//! Both directions are mutual TLS: the control plane proves itself to
//! kubelets with its kubelet-client certificate and kubelets to it with
//! their node certificates (both from the cluster CA); a kubelet's serving
//! certificate comes from the kubelet-serving CA, which the control plane
//! alone trusts for kubelets. TLS is done here with
//! rustls (ring) rather than tonic's TLS features, so a caller can pin a CA
//! by hash, check which identity a server's certificate names, and read the
//! peer's certificate in every call ([`PeerInfo`] in the request
//! extensions).

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::Connected;
use tonic::transport::{Channel, Endpoint, Error};

/// Longest wait for a TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How often an open connection is pinged.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// A ping unanswered for this long closes the connection.
pub const PING_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest TLS handshake a server waits for.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn endpoint(url: String) -> Result<Endpoint, Error> {
    Ok(Endpoint::from_shared(url)?
        .connect_timeout(CONNECT_TIMEOUT)
        .http2_keep_alive_interval(PING_INTERVAL)
        .keep_alive_timeout(PING_TIMEOUT)
        .keep_alive_while_idle(true))
}

/// A plaintext channel to `url` (`http://host:port`) with Skiff's liveness
/// settings. Only for tests of what a server refuses.
pub async fn connect(url: impl Into<String>) -> Result<Channel, Error> {
    endpoint(url.into())?.connect().await
}

/// A mutual-TLS channel to `address` (`host:port`, or a URL whose scheme is
/// ignored) with `config`. With `expect`, the server's certificate must
/// name that user (its common name), e.g. `system:node:node1`, so a node
/// that registered another node's address is not taken for that node.
pub async fn connect_tls(
    address: &str,
    config: Arc<rustls::ClientConfig>,
    expect: Option<String>,
) -> Result<Channel, Error> {
    let authority = address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .trim_end_matches('/')
        .to_string();
    let connector = tower::service_fn(move |_uri: http::Uri| {
        let config = config.clone();
        let authority = authority.clone();
        let expect = expect.clone();
        async move {
            let stream = tls_stream(&authority, config, expect.as_deref()).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        }
    });
    // The URL only names the connection for tonic; the connector dials.
    endpoint(format!("http://{}", address_only(address)))?
        .connect_with_connector(connector)
        .await
}

fn address_only(address: &str) -> &str {
    address
        .split_once("://")
        .map_or(address, |(_, rest)| rest)
        .trim_end_matches('/')
}

fn invalid(e: impl ToString) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
}

/// One TLS connection to `authority` (`host:port`), the server checked for
/// `host` and, with `expect`, for naming that user.
pub async fn tls_stream(
    authority: &str,
    config: Arc<rustls::ClientConfig>,
    expect: Option<&str>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let (host, _) = authority
        .rsplit_once(':')
        .ok_or_else(|| invalid(format!("{authority}: no port")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(invalid)?;
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(authority))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = tcp.set_nodelay(true);
    let tls = tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        tokio_rustls::TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    if let Some(expect) = expect {
        let named = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(|der| skiff_pki::identity::subject(der).ok());
        if named.as_ref().map(|s| s.name.as_str()) != Some(expect) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "{authority} presented a certificate for {:?}, not {expect:?}",
                    named.map(|s| s.name)
                ),
            ));
        }
    }
    Ok(tls)
}

/// Who is on the other end of a server's connection: its address and the
/// user its client certificate names (verified against the cluster CA by
/// the TLS layer), if it presented one.
#[derive(Debug, Clone, Default)]
pub struct PeerInfo {
    /// The remote address.
    pub remote: Option<SocketAddr>,
    /// The client certificate's user and groups.
    pub user: Option<skiff_pki::identity::Subject>,
}

impl PeerInfo {
    /// The peer of a gRPC call (tonic puts the connection's info in every
    /// request's extensions).
    pub fn of<T>(request: &tonic::Request<T>) -> Self {
        request
            .extensions()
            .get::<PeerInfo>()
            .cloned()
            .unwrap_or_default()
    }
}

/// A server-side TLS connection.
pub struct TlsConn {
    inner: tokio_rustls::server::TlsStream<TcpStream>,
    info: PeerInfo,
}

impl TlsConn {
    /// Who connected.
    pub fn info(&self) -> &PeerInfo {
        &self.info
    }
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// The TLS connections `listener` accepts with `config`, handshakes done
/// concurrently (a slow or silent client holds up no one), failed ones
/// dropped. Ends when the receiver is dropped.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> tokio::sync::mpsc::Receiver<TlsConn> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (tcp, remote) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(_) => {
                        // Out of descriptors and the like: try again shortly.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = tx.closed() => return,
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                let user = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|c| c.first())
                    .and_then(|der| skiff_pki::identity::subject(der).ok());
                let info = PeerInfo {
                    remote: Some(remote),
                    user,
                };
                let _ = tx.send(TlsConn { inner: tls, info }).await;
            });
        }
    });
    rx
}

/// [`tls_incoming`] as the stream tonic's `serve_with_incoming` takes.
pub fn tls_incoming_stream(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> impl tokio_stream::Stream<Item = Result<TlsConn, std::io::Error>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::ReceiverStream::new(tls_incoming(listener, config)).map(Ok)
}
