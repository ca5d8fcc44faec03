//! Skiff's control plane: the Kubernetes-compatible API server and store
//! that `kubectl` talks to, and (next) the scheduler and the workload
//! controllers, each an actor, which assign pods to nodes over the
//! `skiff.node.v1` gRPC contract ([`skiff_proto`]).
//!
//! # Layout
//! - [`store`]: the revisioned object store (SQLite, in-memory) and its
//!   conformance suite.
//! - [`api`]: the HTTP API: discovery, CRUD, watch, patches, tables.
//! - [`controllers`]: the scheduler and node actors, under a supervisor.
//! - [`nodes`]: node registration and heartbeats over gRPC.
//! - [`clock`]: wall-clock time behind a trait (fake in tests).
//! - [`kubeconfig`]: the kubeconfig file `kubectl` uses as it is.
//! - [`meta`]: typed accessors for object metadata.

pub mod api;
pub mod clock;
pub mod controllers;
pub mod kubeconfig;
pub mod meta;
pub mod nodes;
pub mod store;

pub use skiff_proto as proto;
