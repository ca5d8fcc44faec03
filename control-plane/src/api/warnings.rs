//! `Warning` response headers: each request runs inside
//! [`crate::registry::warnings::collect`], and what admission added
//! becomes one `Warning: 299 - "..."` header each (kubectl prints them).

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::WARNING;
use axum::middleware::Next;
use axum::response::Response;

use crate::registry::warnings;

/// Middleware adding the request's warnings to its response.
pub async fn headers(request: Request, next: Next) -> Response {
    let (mut response, added) = warnings::collect(next.run(request)).await;
    for text in added {
        if let Ok(value) = HeaderValue::from_str(&warnings::header_value(&text)) {
            response.headers_mut().append(WARNING, value);
        }
    }
    response
}
