//! The application protocols (ALPN) the control plane's TLS servers offer:
//! the TLS configurations are made with the certificates
//! ([`crate::auth::certificates`]), the connections served by the API
//! ([`crate::api::serve`]) and the node endpoint.

/// The Kubernetes API's, preferred first (as upstream).
pub const API: &[&[u8]] = &[b"h2", b"http/1.1"];

/// The node endpoint's: gRPC, which is HTTP/2 only.
pub const NODES: &[&[u8]] = &[b"h2"];

/// HTTP/2's ALPN identifier.
pub const HTTP2: &[u8] = b"h2";
