//! The kubelet's HTTP endpoints, like upstream's read-only port:
//! `GET /pods` (a PodList with live status), `/healthz`, `/metrics`.
//! Served over TLS; `/healthz` answers anyone (as upstream leaves it
//! open), everything else only the control plane's certificate.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;

use skiff_proto::link::{PeerInfo, TlsConn};

use crate::node::NodeHandle;

/// The router serving the endpoints for `node`.
pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/pods", get(pods))
        .route("/metrics", get(metrics))
        .route_layer(axum::middleware::from_fn(control_plane_only))
        .route("/healthz", get(healthz))
        .with_state(node)
}

/// Who is calling: the connection's peer.
#[derive(Debug, Clone)]
pub struct Caller(pub PeerInfo);

/// TLS connections for `axum::serve`, each with its [`Caller`].
pub struct TlsListener {
    incoming: tokio::sync::mpsc::Receiver<TlsConn>,
    local: std::net::SocketAddr,
}

impl TlsListener {
    /// Serves `listener` with `config`.
    pub fn new(
        listener: tokio::net::TcpListener,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        Ok(Self {
            incoming: skiff_proto::link::tls_incoming(listener, config),
            local,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsConn;
    type Addr = Caller;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(conn) => {
                let caller = Caller(conn.info().clone());
                (conn, caller)
            }
            // The acceptor stopped: nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(Caller(PeerInfo {
            remote: Some(self.local),
            user: None,
        }))
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for Caller
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// 401 without a client certificate, 403 with another than the control
/// plane's, in upstream's kubelet words.
async fn control_plane_only(
    axum::extract::ConnectInfo(caller): axum::extract::ConnectInfo<Caller>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if crate::node::identity::is_control_plane(&caller.0) {
        return next.run(request).await;
    }
    match caller.0.user {
        None => (StatusCode::UNAUTHORIZED, "Unauthorized").into_response(),
        Some(user) => (
            StatusCode::FORBIDDEN,
            format!(
                "Forbidden (user={}, verb=get, resource=nodes, subresource=proxy)",
                user.name
            ),
        )
            .into_response(),
    }
}

async fn list(node: &NodeHandle) -> Result<Vec<Pod>, Response> {
    node.pods()
        .await
        .map_err(|e| (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response())
}

async fn pods(State(node): State<NodeHandle>) -> Response {
    match list(&node).await {
        Ok(items) => {
            let body = serde_json::json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {},
                "items": items,
            });
            (
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
        Err(r) => r,
    }
}

async fn healthz(State(node): State<NodeHandle>) -> Response {
    match list(&node).await {
        Ok(_) => "ok".into_response(),
        Err(r) => r,
    }
}

async fn metrics(State(node): State<NodeHandle>) -> Response {
    match list(&node).await {
        Ok(pods) => (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            node.ctx.metrics.render(&pods),
        )
            .into_response(),
        Err(r) => r,
    }
}
