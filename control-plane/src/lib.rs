//! Skiff's control plane: the Kubernetes-compatible API server and store
//! that `kubectl` talks to, and (next) the scheduler and the workload
//! controllers, each an actor, which assign pods to nodes over the
//! `skiff.node.v1` gRPC contract ([`skiff_proto`]).
//!
//! # Layout
//! - [`store`]: the revisioned object store (SQLite, in-memory) and its
//!   conformance suite.

pub mod store;

pub use skiff_proto as proto;
