//! Serving the API over TLS: each connection's handshake (with an
//! optional client certificate, verified against the cluster CA), then
//! HTTP/1.1 or HTTP/2 by ALPN, upgrades included (exec, port-forward,
//! WebSockets). The verified certificate's subject travels with every
//! request of its connection as a [`PeerCertificate`] extension, for
//! authentication.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::auth::authn::PeerCertificate;

/// A handshake that takes longer is dropped: a client that opens
/// connections and never speaks must not hold a task each for ever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Upstream's limit on a request's header section over HTTP/2 (Go's
/// `MaxHeaderBytes`, 1 MiB); hyper's own default there is 16 KiB, which
/// refused bearer tokens and impersonation headers upstream reads. Larger
/// header sections get hyper's bare 431, as Go's server answers
/// upstream's.
pub const MAX_HEADER_BYTES: usize = 1024 * 1024;

/// The limit over HTTP/1.1: hyper's connection buffer (about 400 KiB),
/// not upstream's 1 MiB. hyper bounds reading and writing with one size,
/// and the write side is what a watcher that stopped reading holds: at
/// 1 MiB, 300 stalled watchers cost 150 MiB more
/// (`tests/tests/api_watch_limits.rs`). Header sections between the two
/// limits are rare (upstream's own clients send a few KiB).
pub const MAX_HEADER_BYTES_HTTP1: usize = 8192 + 4096 * 100;

/// A client has this long to send a request's headers (upstream's
/// `ReadHeaderTimeout`): a connection that trickles a header a byte at a
/// time, or sits idle between requests, is closed instead of holding a
/// task for ever. HTTP/1.1 only, as upstream's.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(32);

/// Streams one HTTP/2 connection may have open at once: upstream's
/// default, which matches what Go clients assume before the server's
/// settings arrive, so a client opening streams faster than it reads
/// answers holds at most this many requests' worth of memory.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;

/// ALPN protocols the API offers, preferred first (as upstream).
pub const ALPN: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Serves `router` on `listener` over TLS until `shutdown` completes.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    router: Router,
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
        let acceptor = acceptor.clone();
        let router = router.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
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
            let certificate = PeerCertificate::of(tls.get_ref().1.peer_certificates());
            let service = tower::ServiceExt::map_request(
                router,
                move |mut request: axum::http::Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(certificate.clone());
                    request
                },
            );
            let service = hyper_util::service::TowerToHyperService::new(service);
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES_HTTP1);
            builder
                .http2()
                .max_header_list_size(MAX_HEADER_BYTES as u32)
                .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
            let result = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .await;
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "API connection ended");
            }
        });
    }
}
