//! The first look at a core-group request (`/api/{version}/...`), shared
//! by the object handlers and the proxies that take some of them over.

use axum::http::{HeaderMap, Method};

/// The parts of an `/api/{version}/...` request that the pod and service
/// proxies read before the request is served as an object one.
pub struct CoreRequest<'a> {
    /// The core group's version (`v1`).
    pub version: &'a str,
    /// The path after `/api/{version}/`.
    pub rest: &'a str,
    pub method: &'a Method,
    /// The raw query string, if any.
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}
