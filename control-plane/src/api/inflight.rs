//! Upstream's max-in-flight filter: at most `--max-requests-inflight`
//! read-only and `--max-mutating-requests-inflight` mutating requests are
//! served at once; the next one is answered `429 TooManyRequests` with
//! `Retry-After`, which clients retry. Long-running requests (watches,
//! exec, attach, log follow, port-forward, proxy) are not counted, as
//! upstream does not count them.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::Semaphore;

use super::ApiState;
use super::error::ApiError;

/// Seconds a refused client is told to wait (upstream's value).
const RETRY_AFTER: u64 = 1;

/// The two caps; `None` is no limit (upstream's 0).
pub struct InFlight {
    read_only: Option<Arc<Semaphore>>,
    mutating: Option<Arc<Semaphore>>,
}

impl Default for InFlight {
    fn default() -> Self {
        Self::new(400, 200)
    }
}

impl InFlight {
    /// Caps of `read_only` and `mutating` requests (0: no limit).
    pub fn new(read_only: usize, mutating: usize) -> Self {
        let cap = |n: usize| (n > 0).then(|| Arc::new(Semaphore::new(n)));
        Self {
            read_only: cap(read_only),
            mutating: cap(mutating),
        }
    }
}

/// Whether a request is long-running (never counted), as upstream's
/// `BasicLongRunningRequestCheck` decides: the watch and proxy verbs and the
/// attach, exec, proxy, log and portforward subresources.
pub fn long_running(method: &Method, path: &str, query: Option<&str>) -> bool {
    let watch = query.unwrap_or_default().split('&').any(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        k == "watch" && (v == "true" || v == "1")
    });
    if *method == Method::GET && watch {
        return true;
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    // After /api/{version} or /apis/{group}/{version}.
    let mut parts: &[&str] = match segments.first() {
        Some(&"api") => segments.get(2..).unwrap_or_default(),
        Some(&"apis") => segments.get(3..).unwrap_or_default(),
        _ => return false,
    };
    if matches!(parts.first(), Some(&"watch" | &"proxy")) {
        return true;
    }
    if parts.first() == Some(&"namespaces")
        && parts.len() > 2
        && !matches!(parts[2], "status" | "finalize")
    {
        parts = &parts[2..];
    }
    matches!(
        parts.get(2),
        Some(&"attach" | &"exec" | &"proxy" | &"log" | &"portforward")
    )
}

fn mutating(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn too_many() -> Response {
    let mut error = ApiError::too_many_requests("Too many requests, please try again later.");
    error.details = serde_json::json!({"retryAfterSeconds": RETRY_AFTER});
    let mut response = error.into_response();
    response
        .headers_mut()
        .insert("retry-after", HeaderValue::from(RETRY_AFTER));
    response
}

/// The middleware.
pub async fn limit(State(state): State<Arc<ApiState>>, request: Request, next: Next) -> Response {
    let (method, path, query) = (
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    if long_running(method, path, query) {
        return next.run(request).await;
    }
    let cap = if mutating(method) {
        &state.inflight.mutating
    } else {
        &state.inflight.read_only
    };
    let Some(cap) = cap else {
        return next.run(request).await;
    };
    let Ok(_permit) = cap.clone().try_acquire_owned() else {
        return too_many();
    };
    // The permit is held until the response head is ready; a streamed
    // list body is then bounded by its own buffering.
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn long_running_requests_are_not_counted() {
        let get = Method::GET;
        for (path, query) in [
            ("/api/v1/pods", Some("watch=true")),
            ("/api/v1/namespaces/d/pods", Some("labelSelector=a&watch=1")),
            ("/api/v1/watch/pods", None),
            ("/api/v1/namespaces/d/pods/p/exec", Some("command=sh")),
            ("/api/v1/namespaces/d/pods/p/attach", None),
            ("/api/v1/namespaces/d/pods/p/portforward", None),
            ("/api/v1/namespaces/d/pods/p/proxy/a/b", None),
            ("/api/v1/namespaces/d/services/s:80/proxy/", None),
            ("/api/v1/namespaces/d/pods/p/log", Some("follow=true")),
            ("/api/v1/namespaces/d/pods/p/log", None),
            ("/apis/apps/v1/watch/namespaces/d/deployments", None),
        ] {
            assert!(long_running(&get, path, query), "{path}?{query:?}");
        }
        for (path, query) in [
            ("/api/v1/pods", None),
            ("/api/v1/pods", Some("watch=false")),
            ("/api/v1/namespaces/exec/pods", None),
            ("/api/v1/namespaces/d/status", None),
            ("/api/v1/nodes/proxy", None),
            ("/version", Some("watch=false")),
            ("/api/v1/namespaces/d/configmaps/proxy", None),
        ] {
            assert!(!long_running(&get, path, query), "{path}?{query:?}");
        }
    }

    #[tokio::test]
    async fn over_the_cap_is_429_with_retry_after() {
        let response = too_many();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let status: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(status["reason"], "TooManyRequests");
        assert_eq!(status["code"], 429);
        assert_eq!(status["details"]["retryAfterSeconds"], 1);
    }
}
