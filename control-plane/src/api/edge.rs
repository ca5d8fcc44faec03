//! The HTTP edge: what every request passes before a handler sees it, and
//! what every failure looks like on the wire. Request bodies are bounded as
//! upstream bounds them (3 MiB), media types are checked, stored objects are
//! bounded, and every error answer (including the ones axum produces
//! itself: 405, 413, rejected paths) is a Kubernetes `Status`, as is a
//! handler panic (500) should one ever happen.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tracing::error;

use super::deletion::DeleteOptionsBody;
use super::error::{ApiError, ApiResult};
use super::query::{Options, Query};
use crate::registry::deletion::DeleteOptions;

/// Upstream's limit on a request body (`MaxRequestBodyBytes`, 3 MiB).
pub const MAX_REQUEST_BODY: usize = 3 * 1024 * 1024;
/// The largest object the store keeps (etcd's default request limit, 1.5 MiB,
/// which upstream's objects are bounded by).
pub const MAX_OBJECT_BYTES: usize = 1536 * 1024;
/// Longest request target (path and query) answered; longer ones get a 414.
/// Upstream takes up to its 1 MiB header limit, but the `http` crate under
/// hyper refuses targets from 64 KiB on with a bare 414 before Skiff sees
/// them, so Skiff answers (with a Status) just below that.
pub const MAX_URI: usize = 60 * 1024;
/// The media type of server-side apply.
pub const APPLY_PATCH: &str = "application/apply-patch+yaml";

const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const PATCH_TYPES: &[&str] = &[
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    APPLY_PATCH,
];

/// What a request body holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// An object (create, update).
    Object,
    /// A patch.
    Patch,
}

/// The request's media type, without parameters (`; charset=utf-8`),
/// lowercased; `""` when absent.
pub fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// 415 unless the body's media type is one upstream decodes for `kind`.
pub fn check_content_type(media_type: &str, kind: BodyKind) -> ApiResult<()> {
    let accepted = match kind {
        // No Content-Type is read as JSON, as upstream's negotiation does.
        BodyKind::Object if media_type.is_empty() => return Ok(()),
        BodyKind::Object => OBJECT_TYPES,
        BodyKind::Patch => PATCH_TYPES,
    };
    if accepted.contains(&media_type) {
        return Ok(());
    }
    Err(ApiError {
        code: 415,
        reason: "UnsupportedMediaType",
        message: format!(
            "the body of the request was in an unknown format - accepted media types include: {}",
            accepted.join(", ")
        ),
        details: json!({}),
    })
}

/// 413, as upstream words it.
pub fn too_large(limit: usize) -> ApiError {
    ApiError {
        code: 413,
        reason: "RequestEntityTooLarge",
        message: format!("Request entity too large: limit is {limit}"),
        details: json!({}),
    }
}

/// A request's body, extracted as axum's `Bytes` is, but refused with the
/// Status upstream answers (too large, unreadable) rather than axum's text.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        Bytes::from_request(req, state)
            .await
            .map(Body)
            .map_err(|e: BytesRejection| {
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large(MAX_REQUEST_BODY)
                } else {
                    ApiError::bad_request(e.body_text())
                }
            })
    }
}

/// Refuses an object whose stored form would exceed [`MAX_OBJECT_BYTES`].
pub fn check_object_size(encoded: &[u8]) -> ApiResult<()> {
    if encoded.len() > MAX_OBJECT_BYTES {
        return Err(too_large(MAX_OBJECT_BYTES));
    }
    Ok(())
}

/// The `DeleteOptions` of a delete (body and query) and whether it is a dry
/// run. A body that is not a `DeleteOptions` refuses the delete: a delete
/// that cannot say what it asks for must not happen.
pub fn delete_options(body: &[u8], query: &Query) -> ApiResult<(DeleteOptions, bool)> {
    query.validate(Options::Delete)?;
    let parsed: DeleteOptionsBody = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptionsBody::default()
    } else if super::protobuf::is_protobuf(body) {
        let value = super::protobuf::decode(body).map_err(ApiError::bad_request)?;
        serde_json::from_value(value).map_err(|e| {
            ApiError::bad_request(format!(
                "DeleteOptions in version \"v1\" cannot be handled as a DeleteOptions: {e}"
            ))
        })?
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!(
                "DeleteOptions in version \"v1\" cannot be handled as a DeleteOptions: {e}"
            ))
        })?
    };
    if let Some(kind) = parsed.kind.as_deref().filter(|k| *k != "DeleteOptions") {
        return Err(ApiError::bad_request(format!(
            "decoded object of kind {kind:?} cannot be converted to DeleteOptions"
        )));
    }
    let body_dry_run = Query::dry_run_body(parsed.dry_run.as_deref().unwrap_or_default())?;
    let options = DeleteOptions::from_request(&parsed, query)?;
    Ok((options, body_dry_run || query.dry_run))
}

/// A short rendering of a value for messages.
pub fn excerpt(v: &serde_json::Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(64) {
        Some((i, _)) => format!("{}...", &text[..i]),
        None => text,
    }
}

/// A merge or strategic merge patch is a JSON object; anything else is
/// refused before it touches the object (`42` would replace it whole).
pub fn check_patch_shape(media_type: &str, patch: &serde_json::Value) -> ApiResult<()> {
    if patch.is_object() {
        return Ok(());
    }
    match media_type {
        "application/merge-patch+json" => Err(ApiError::bad_request("Invalid JSON Patch")),
        "application/strategic-merge-patch+json" => {
            Err(ApiError::bad_request("invalid JSON document"))
        }
        _ => Ok(()),
    }
}

/// A JSON patch that cannot be decoded is a 400; one whose operations fail
/// (a `test` that does not hold) a 422, as upstream answers.
pub fn json_patch_failed(e: super::patch::JsonPatchError) -> ApiError {
    match e {
        super::patch::JsonPatchError::Decode(m) => ApiError::bad_request(m),
        super::patch::JsonPatchError::Apply(m) => ApiError {
            code: 422,
            reason: "Invalid",
            message: "the server rejected our request due to an error in our request".into(),
            details: json!({"causes": [{"reason": "UnexpectedServerResponse", "message": m}]}),
        },
    }
}

/// The `reason` upstream gives an HTTP code.
fn reason_of(code: StatusCode) -> &'static str {
    match code.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        406 => "NotAcceptable",
        409 => "Conflict",
        410 => "Gone",
        413 => "RequestEntityTooLarge",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    }
}

/// Middleware: error answers that are not already a JSON `Status` (axum's
/// own 405, 413 and rejections, plain-text errors) become one, and a
/// request target longer than [`MAX_URI`] is a 414.
pub async fn statusify(request: Request, next: Next) -> Response {
    let uri_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI {
        return ApiError {
            code: 414,
            reason: "RequestURITooLong",
            message: format!("Request-URI Too Long: limit is {MAX_URI}"),
            details: json!({}),
        }
        .into_response();
    }
    let response = next.run(request).await;
    let code = response.status();
    if code.as_u16() < 400 {
        return response;
    }
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let message = if text.is_empty() {
        code.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    ApiError {
        code: code.as_u16(),
        reason: reason_of(code),
        message,
        details: json!({}),
    }
    .into_response()
}

/// A future that turns a panic while it is polled into an error.
struct CatchUnwind(Pin<Box<dyn Future<Output = Response> + Send>>);

impl Future for CatchUnwind {
    type Output = Result<Response, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(r)) => Poll::Ready(Ok(r)),
            Err(payload) => {
                let why = payload
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Poll::Ready(Err(why))
            }
        }
    }
}

/// Middleware, defense in depth: a handler that panics answers a 500
/// `Status` instead of dropping the connection. (Handlers are meant never to
/// panic on any input; the panic is still logged to be fixed.)
pub async fn catch_panic(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match CatchUnwind(Box::pin(next.run(request))).await {
        Ok(response) => response,
        Err(why) => {
            error!(%method, %path, %why, "handler panic answered with 500");
            ApiError::internal(format!(
                "an internal error occurred while serving {method} {path}"
            ))
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_are_checked_per_body_kind() {
        assert!(check_content_type("", BodyKind::Object).is_ok());
        assert!(check_content_type("application/json", BodyKind::Object).is_ok());
        let e = check_content_type("text/plain", BodyKind::Object).expect_err("text");
        assert_eq!((e.code, e.reason), (415, "UnsupportedMediaType"));
        assert!(
            e.message
                .starts_with("the body of the request was in an unknown format - accepted media types include: application/json")
        );
        assert!(check_content_type("application/json", BodyKind::Patch).is_err());
        assert!(check_content_type(APPLY_PATCH, BodyKind::Patch).is_ok());
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().expect("header"),
        );
        assert_eq!(content_type(&h), "application/json");
    }

    #[test]
    fn delete_options_bodies_are_strict() {
        let q = Query::default();
        assert!(!delete_options(b"", &q).expect("empty").1);
        assert!(delete_options(br#"{"dryRun":["All"]}"#, &q).expect("dry").1);
        for bad in [
            &b"{"[..],
            br#"{"gracePeriodSeconds":"soon"}"#,
            br#"{"dryRun":["Bogus"]}"#,
            b"42",
            br#"{"kind":"Pod"}"#,
            br#"{"preconditions":{"resourceVersion":"x"}}"#,
        ] {
            let e = delete_options(bad, &q).expect_err("refused");
            assert!(e.code == 400 || e.code == 422, "{}", e.code);
        }
    }
}
