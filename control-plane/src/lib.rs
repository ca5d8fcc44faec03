//! Skiff's control plane: the Kubernetes-compatible API server and store
//! that `kubectl` talks to, and (next) the scheduler and the workload
//! controllers, each an actor, which assign pods to nodes over the
//! `skiff.node.v1` gRPC contract ([`skiff_proto`]).
//!
//! # Layout
//! - [`store`]: the revisioned object store (SQLite, in-memory) and its
//!   conformance suite.
//! - [`api`]: the HTTP API: discovery, CRUD, watch, patches, tables.
//! - [`kubeconfig`]: the kubeconfig file `kubectl` uses as it is.

pub mod api;
pub mod kubeconfig;
pub mod store;

pub use skiff_proto as proto;
