//! Skiff's control plane: the Kubernetes-compatible API server and store
//! that `kubectl` talks to, and (next) the scheduler and the workload
//! controllers, each an actor, which assign pods to nodes over the
//! `skiff.node.v1` gRPC contract ([`skiff_proto`]).
//!
//! # Layout
//! - [`store`]: the revisioned object store (SQLite, in-memory) and its
//!   conformance suite.
//! - [`registry`]: object types, defaults, validation, deletion, events and
//!   the actors' object client, shared by the API and the controllers.
//! - [`api`]: the HTTP API: discovery, CRUD, watch, patches, tables.
//! - [`controllers`]: the scheduler and node actors, under a supervisor.
//! - [`nodes`]: node registration and heartbeats over gRPC.
//! - [`clock`]: wall-clock time behind a trait (fake in tests).
//! - [`kubeconfig`]: the kubeconfig file `kubectl` uses as it is.
//!
//! Dependencies point one way: [`api`], [`controllers`] and [`nodes`] use
//! the [`registry`], which uses only the [`store`].
//!
//! # Adding a namespaced kind
//! Its module under `registry/kinds/` (type constant and behaviour) and its
//! line in `registry::resources::RESOURCES` make it served; a controller
//! for it is an actor under `controllers/` that reads and writes through
//! [`registry::objects::Objects`], started by the supervisor.

pub mod api;
pub mod clock;
pub mod controllers;
pub mod kubeconfig;
pub mod nodes;
pub mod registry;
pub mod store;

pub use skiff_proto as proto;
