//! The kubelet's HTTP endpoints, like upstream's read-only port:
//! `GET /pods` (a PodList with live status), `/healthz`, `/metrics`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use k8s_openapi::api::core::v1::Pod;

use crate::node::NodeHandle;

/// The router serving the endpoints for `node`.
pub fn router(node: NodeHandle) -> Router {
    Router::new()
        .route("/pods", get(pods))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(node)
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
