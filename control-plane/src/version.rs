//! The Kubernetes version Skiff answers as: its API's `/version` and
//! OpenAPI documents, and the kubelet version it reports for nodes.

/// The minor version (the k8s-openapi version Skiff is built on).
pub const MINOR: &str = "35";
