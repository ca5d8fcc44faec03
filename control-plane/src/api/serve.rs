//! Serving the API over TLS: each connection's handshake (with an
//! optional client certificate, verified against the cluster CA), then
//! HTTP/1.1 or HTTP/2 by ALPN, upgrades included (exec, port-forward,
//! WebSockets). The verified certificate's subject travels with every
//! request of its connection as a [`PeerCertificate`] extension, for
//! authentication. Each connection is held to upstream's limits: sizes
//! and HTTP/2 settings here, time limits in [`super::connection`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use super::connection::{Activity, Counted, Expiry, Timeouts, Tracked};
use crate::auth::authn::PeerCertificate;

/// Upstream's limit on a request's header section (Go's `MaxHeaderBytes`,
/// 1 MiB); hyper's own default over HTTP/2 is 16 KiB, which refused bearer
/// tokens and impersonation headers upstream reads. Larger header sections
/// get hyper's bare 431, as Go's server answers upstream's.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// What upstream advertises as HTTP/2's `SETTINGS_MAX_HEADER_LIST_SIZE`:
/// Go pads `MaxHeaderBytes` by 32 bytes for each of ten typical fields,
/// since HTTP/2 counts that much overhead per field.
pub const MAX_HEADER_LIST_SIZE: u32 = (MAX_HEADER_BYTES + 10 * 32) as u32;

/// The limit over HTTP/1.1: hyper's connection buffer (about 400 KiB),
/// not upstream's 1 MiB. hyper bounds reading and writing with one size,
/// and the write side is what a watcher that stopped reading holds: at
/// 1 MiB, 300 stalled watchers cost 150 MiB more
/// (`tests/tests/api_watch_limits.rs`). Header sections between the two
/// limits are rare (upstream's own clients send a few KiB).
pub const MAX_HEADER_BYTES_HTTP1: usize = 8192 + 4096 * 100;

/// Streams one HTTP/2 connection may have open at once: upstream's
/// default (`--http2-max-streams-per-connection` is 0 in kube-apiserver,
/// which its secure serving turns into 100), which matches what Go
/// clients assume before the server's settings arrive, so a client opening
/// streams faster than it reads answers holds at most this many requests'
/// worth of memory.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// Upstream's HTTP/2 frame size and per-stream receive window: "at least
/// 99% of serialized resources in surveyed clusters were smaller than
/// 256kb", so most writes fit one frame, and a stream's buffer stays
/// small (Go's defaults are 1 MiB, hyper's 16 KiB frames and 1 MiB
/// windows).
pub const HTTP2_FRAME_AND_STREAM_WINDOW: u32 = 256 * 1024;

/// Upstream's HTTP/2 connection receive window: a full stream window for
/// every stream the connection may have open.
pub const HTTP2_CONNECTION_WINDOW: u32 = HTTP2_FRAME_AND_STREAM_WINDOW * MAX_CONCURRENT_STREAMS;

/// TCP keep-alive on accepted connections, so a peer that vanished (a
/// laptop closed mid-watch) is found and its connection freed: upstream's
/// listener sets a 3-minute period (the idle time before the first probe);
/// probes then go every 15 s, at most 9, Go's defaults for accepted
/// connections.
pub const TCP_KEEPALIVE_IDLE: Duration = Duration::from_secs(180);
/// See [`TCP_KEEPALIVE_IDLE`].
pub const TCP_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// See [`TCP_KEEPALIVE_IDLE`].
pub const TCP_KEEPALIVE_PROBES: u32 = 9;

/// Sets upstream's TCP keep-alive on an accepted connection.
fn keep_alive(tcp: &tokio::net::TcpStream) -> std::io::Result<()> {
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(TCP_KEEPALIVE_IDLE)
        .with_interval(TCP_KEEPALIVE_INTERVAL)
        .with_retries(TCP_KEEPALIVE_PROBES);
    socket2::SockRef::from(tcp).set_tcp_keepalive(&keepalive)
}

/// Serves `router` on `listener` over TLS until `shutdown` completes, each
/// connection within `timeouts` (upstream's: [`Timeouts::UPSTREAM`]).
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of descriptors and the like: wait, as hyper's
                    // own accept loop does, instead of spinning.
                    tracing::warn!(error = %e, "accepting an API connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = tcp.set_nodelay(true);
        if let Err(e) = keep_alive(&tcp) {
            tracing::debug!(%peer, error = %e, "setting TCP keep-alive");
        }
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(timeouts.handshake, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let session = tls.get_ref().1;
            let certificate = PeerCertificate::of(session.peer_certificates());
            let activity = Activity::new(session.alpn_protocol() == Some(crate::alpn::HTTP2));
            let service = tower::ServiceExt::map_request(
                router,
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(certificate.clone());
                    request
                },
            );
            let service = Tracked::new(
                hyper_util::service::TowerToHyperService::new(service),
                activity.clone(),
            );
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                // The header timeout is the connection's watch's: hyper's
                // would also cut idle keep-alive connections at 32 s.
                .header_read_timeout(None)
                .max_buf_size(MAX_HEADER_BYTES_HTTP1);
            builder
                .http2()
                .max_header_list_size(MAX_HEADER_LIST_SIZE)
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
                .max_frame_size(HTTP2_FRAME_AND_STREAM_WINDOW)
                .initial_stream_window_size(HTTP2_FRAME_AND_STREAM_WINDOW)
                .initial_connection_window_size(HTTP2_CONNECTION_WINDOW);
            let io = TokioIo::new(Counted::new(tls, activity.clone()));
            let connection = builder.serve_connection_with_upgrades(io, service);
            tokio::pin!(connection);
            let mut shutting_down = false;
            loop {
                let deadline = if shutting_down {
                    None
                } else {
                    activity.deadline(&timeouts)
                };
                let expired = async {
                    match deadline {
                        Some((at, _)) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(%peer, error = %e, "API connection ended");
                        }
                        return;
                    }
                    () = activity.changed() => {}
                    () = expired => match activity.deadline(&timeouts) {
                        // Something opened or a byte arrived meanwhile:
                        // the deadline moved.
                        Some((at, _)) if at > std::time::Instant::now() => {}
                        None => {}
                        Some((_, Expiry::Close)) => {
                            tracing::debug!(%peer, "API connection timed out waiting for the client");
                            return;
                        }
                        Some((_, Expiry::Shutdown)) => {
                            tracing::debug!(%peer, "API connection idle: shutting it down");
                            connection.as_mut().graceful_shutdown();
                            shutting_down = true;
                        }
                    },
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn accepted_connections_get_upstreams_tcp_keepalive() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let _client = tokio::net::TcpStream::connect(address)
            .await
            .expect("connect");
        let (accepted, _) = listener.accept().await.expect("accept");
        let socket = socket2::SockRef::from(&accepted);
        assert!(!socket.keepalive().expect("SO_KEEPALIVE"));
        keep_alive(&accepted).expect("set");
        assert!(socket.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(
            socket.tcp_keepalive_time().expect("idle"),
            TCP_KEEPALIVE_IDLE
        );
        assert_eq!(
            socket.tcp_keepalive_interval().expect("interval"),
            TCP_KEEPALIVE_INTERVAL
        );
        assert_eq!(
            socket.tcp_keepalive_retries().expect("probes"),
            TCP_KEEPALIVE_PROBES
        );
    }
}
