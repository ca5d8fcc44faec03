//! The authorization layer of the API router, inside authentication:
//! impersonation first (the request then acts as the impersonated user),
//! then the request as [`RequestInfo`] against the authorizers; 403 with
//! upstream's message when none allows it. A WebSocket pod stream (`GET`
//! exec, attach, port-forward) also needs `create`, as upstream since 1.35.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Authorization;
use crate::auth::impersonation;
use crate::auth::request_info::RequestInfo;
use crate::auth::user::UserInfo;
use crate::registry::error::ApiError;

/// Authorizes the request as the user authentication put in its
/// extensions (replaced by the impersonated one, if any).
pub async fn layer(
    State(authz): State<Arc<Authorization>>,
    mut request: Request,
    next: Next,
) -> Response {
    if impersonation::requested(request.headers()) {
        let Some(real) = request.extensions().get::<UserInfo>() else {
            return ApiError::unauthorized().into_response();
        };
        match impersonation::impersonate(&authz, real, request.headers()) {
            Ok(user) => {
                request.extensions_mut().insert(user);
            }
            Err(error) => return error.into_response(),
        }
    }
    let Some(user) = request.extensions().get::<UserInfo>() else {
        // Authentication runs first and always leaves a user (or 401s).
        return ApiError::unauthorized().into_response();
    };
    if authz.unconditional(user) {
        return next.run(request).await;
    }
    let mut info = RequestInfo::new(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    if let Err(error) = authz.check(user, &info) {
        return error.into_response();
    }
    if websocket_stream(&info, request.headers()) {
        info.verb = "create".to_string();
        if let Err(error) = authz.check(user, &info) {
            return error.into_response();
        }
    }
    next.run(request).await
}

/// Whether this is a WebSocket `GET` that starts a pod stream: upstream
/// (`AuthorizePodWebsocketUpgradeCreatePermission`, on since 1.35) also
/// requires `create` there, as the SPDY `POST` of the same stream does.
fn websocket_stream(info: &RequestInfo, headers: &axum::http::HeaderMap) -> bool {
    info.verb == "get"
        && info.resource == "pods"
        && matches!(info.subresource.as_str(), "exec" | "attach" | "portforward")
        && headers
            .get(axum::http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, Method};

    use super::*;

    #[test]
    fn only_websocket_gets_of_pod_streams_need_create_too() {
        let mut upgrade = HeaderMap::new();
        upgrade.insert(
            axum::http::header::UPGRADE,
            "websocket".parse().expect("value"),
        );
        let exec = RequestInfo::new(&Method::GET, "/api/v1/namespaces/a/pods/p/exec", None);
        assert!(websocket_stream(&exec, &upgrade));
        assert!(!websocket_stream(&exec, &HeaderMap::new()));
        let log = RequestInfo::new(&Method::GET, "/api/v1/namespaces/a/pods/p/log", None);
        assert!(!websocket_stream(&log, &upgrade));
        let spdy = RequestInfo::new(
            &Method::POST,
            "/api/v1/namespaces/a/pods/p/portforward",
            None,
        );
        assert!(!websocket_stream(&spdy, &upgrade));
    }
}
