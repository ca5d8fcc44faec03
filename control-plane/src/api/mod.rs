//! The Kubernetes-compatible HTTP API that the real `kubectl` talks to: the
//! HTTP edge over the [`crate::registry`], which owns what objects are
//! (types, defaults, validation, deletion, events).
//!
//! - [`discovery`]: `/version`, discovery and the OpenAPI v3 documents.
//! - [`handlers`]: get, list, watch, create, update, patch, delete.
//! - [`inflight`]: upstream's max-in-flight caps (429 over them).
//! - [`eviction`]: `pods/eviction`, spending PodDisruptionBudgets.
//! - [`deletion`]: `DeleteOptions` bodies and query parameters.
//! - [`list`]: list responses streamed from store snapshots, paged.
//! - [`watch`]: watch streams, each with a bounded buffer; stalled watchers are terminated.
//! - [`managed_fields`]: field ownership and server-side apply.
//! - [`patch`]: merge, JSON, strategic merge and apply patches.
//! - [`protobuf`]: protobuf request bodies of kubectl's generator commands.
//! - [`proxy`]: pod logs and exec, proxied to the pod's node over gRPC.
//! - [`tunnel`]: a TCP connection to a pod's port, made by its node.
//! - [`port_forward`]: `pods/portforward` over WebSocket channels or SPDY.
//! - [`spdy`]: SPDY/3.1 framing and server connections (kubectl's port-forward).
//! - [`pod_proxy`]: `pods/proxy` and `services/proxy`.
//! - [`token_request`]: `serviceaccounts/token` and the issuer's OpenID documents.
//! - [`serve`]: TLS connections, HTTP/1.1 and HTTP/2, the client certificate.
//! - [`connection`]: a connection's idle, header and preface time limits.
//! - [`selectors`]: label and field selectors.
//! - [`table`]: server-side printing for `kubectl get`.
//! - [`error`]: `Status` errors as HTTP responses.
//! - [`edge`]: body and URI limits, media types, every error a `Status`.
//! - [`query`]: the query string, parsed strictly into typed options.
//! - [`warnings`]: `Warning` headers from what admission added.

pub mod connection;
pub mod core_request;
pub mod deletion;
pub mod discovery;
pub mod edge;
pub mod error;
pub mod eviction;
pub mod handlers;
pub mod inflight;
pub mod list;
pub mod managed_fields;
pub mod patch;
pub mod pod_proxy;
pub mod port_forward;
pub mod protobuf;
pub mod proxy;
pub mod query;
pub mod selectors;
pub mod serve;
pub mod spdy;
pub mod stored;
pub mod table;
pub mod token_request;
pub mod tunnel;
pub mod warnings;
pub mod watch;
pub mod yaml;

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get};

use crate::store::Store;

/// Shared state of the API server.
pub struct ApiState {
    /// The object store.
    pub store: Arc<dyn Store>,
    /// `host:port` the server is reached at (for `/api` discovery).
    pub address: String,
    /// Requests served, for `/metrics`.
    pub requests: AtomicU64,
    /// Request count and total latency by (verb, resource), for `/metrics`.
    pub by_verb: Mutex<BTreeMap<(String, String), (u64, Duration)>>,
    /// Snapshots of paged lists waiting for their next page.
    pub pages: list::Pages,
    /// How much each watcher may buffer, and for how long when full.
    pub watch_limits: watch::Limits,
    /// Watch event lines rendered once for all watchers.
    pub watch_lines: Arc<watch::SharedLines>,
    /// Caps on requests served at once.
    pub inflight: inflight::InFlight,
    /// Who a request is (401 before anything else).
    pub authenticator: Arc<crate::auth::authn::Authenticator>,
    /// Signs ServiceAccount tokens (`serviceaccounts/token`); without it
    /// there are none.
    pub token_signer: Option<Arc<crate::auth::tokens::TokenSigner>>,
    /// What a user may do (403 after authentication); `AlwaysAllow` unless
    /// the server is started with authorization modes.
    pub authorization: Arc<crate::auth::authz::Authorization>,
}

impl ApiState {
    /// A state serving `store` at `address`.
    pub fn new(store: Arc<dyn Store>, address: String) -> Self {
        Self {
            store,
            address,
            requests: AtomicU64::new(0),
            by_verb: Mutex::new(BTreeMap::new()),
            pages: list::Pages::default(),
            watch_limits: watch::Limits::default(),
            watch_lines: Arc::default(),
            inflight: inflight::InFlight::default(),
            authenticator: Arc::default(),
            token_signer: None,
            authorization: Arc::new(crate::auth::authz::Authorization::always_allow()),
        }
    }

    /// Records one request.
    pub fn observe(&self, verb: &str, resource: &str, took: Duration) {
        let mut m = self.by_verb.lock().unwrap_or_else(|p| p.into_inner());
        let e = m
            .entry((verb.to_string(), resource.to_string()))
            .or_default();
        e.0 += 1;
        e.1 += took;
    }
}

/// The whole HTTP API.
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/version", get(handlers::version))
        // Clients such as kr8s and the Python client ask with a trailing slash.
        .route("/version/", get(handlers::version))
        .route("/api/", get(handlers::api_versions))
        .route("/apis/", get(handlers::api_groups))
        .route("/api/{version}/", get(handlers::core_resources))
        .route("/apis/{group}/{version}/", get(handlers::group_resources))
        .route("/healthz", get(handlers::healthz))
        .route("/readyz", get(handlers::healthz))
        .route("/livez", get(handlers::healthz))
        .route("/metrics", get(handlers::metrics))
        .route(
            "/.well-known/openid-configuration",
            get(token_request::openid_configuration),
        )
        .route("/openid/v1/jwks", get(token_request::jwks))
        .route("/api", get(handlers::api_versions))
        .route("/apis", get(handlers::api_groups))
        .route("/openapi/v2", get(handlers::openapi_v2))
        .route("/openapi/v3", get(handlers::openapi_root))
        .route("/openapi/v3/{*path}", get(handlers::openapi_group))
        .route("/api/{version}", get(handlers::core_resources))
        .route("/apis/{group}/{version}", get(handlers::group_resources))
        .route("/api/{version}/{*rest}", any(handlers::core_request))
        .route(
            "/apis/{group}/{version}/{*rest}",
            any(handlers::group_request),
        )
        .fallback(handlers::fallback)
        .layer(axum::middleware::from_fn(warnings::headers))
        .layer(DefaultBodyLimit::max(edge::MAX_REQUEST_BODY))
        .layer(axum::middleware::from_fn(edge::catch_panic))
        .layer(axum::middleware::from_fn(edge::statusify))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            inflight::limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.authorization.clone(),
            crate::auth::authz::layer::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.authenticator.clone(),
            crate::auth::authn::layer,
        ))
        .with_state(state)
}
