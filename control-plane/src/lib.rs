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
//! - [`dns`]: cluster DNS (`cluster.local`), answered from an in-memory
//!   index of Services and EndpointSlices fed by store watches, served
//!   over UDP and TCP with hickory, published as `kube-system/kube-dns`.
//! - [`auth`]: authentication (401) and authorization (403) of API
//!   requests.
//! - [`clock`]: wall-clock time behind a trait (fake in tests).
//! - [`kubeconfig`]: the kubeconfig file `kubectl` uses as it is.
//! - [`alpn`]: the protocols the TLS servers offer.
//! - [`percent_encoding`]: percent-decoding of query and header values.
//! - [`version`]: the Kubernetes version Skiff answers as.
//! - [`meta`]: typed accessors for object metadata.
//! - [`volumes`]: node-local persistent volumes (default class,
//!   provisioning, mounts), shared by the scheduler, the PV controller and
//!   the node actors.
//!
//! Dependencies point one way: [`api`], [`controllers`] and [`nodes`] use
//! the [`registry`] (and [`volumes`], which uses the registry), which uses
//! only the [`store`]; [`auth`] and [`nodes`] never use [`api`] (what they
//! share with it is in [`alpn`], [`percent_encoding`], [`version`] and the
//! registry).
//!
//! # Adding a namespaced kind
//! Its module under `registry/kinds/` (type constant and behaviour) and its
//! line in `registry::resources::RESOURCES` make it served; a controller
//! for it is an actor under `controllers/` that reads and writes through
//! [`registry::objects::Objects`], started by the supervisor.
//!
//! # Adding a controller
//! A controller is a [`controllers::runtime::Reconciler`]; the runtime's
//! one generic actor runs it (queue, owner index, back-off, resync,
//! spans). To add one, say for a kind `Foo` that owns pods:
//! 1. `controllers/foo/mod.rs`: a struct holding what it writes through
//!    ([`registry::objects::Objects`]), a `const OWNERS:`
//!    [`controllers::runtime::Owners`] naming `Foo` and its resource, and
//!    the `Reconciler` impl — `watches` (`OWNERS.watches(&[kinds::PODS])`),
//!    `decode` (`OWNERS.decode(..)`, dependents through
//!    `OWNERS.dependent`), `list` (`OWNERS.list`) and `reconcile`, which
//!    reads everything afresh and returns an
//!    [`controllers::runtime::Action`] (`statefulset/mod.rs` is a short
//!    example). Pure decisions go in a sibling module (`plan.rs`) with unit
//!    tests; shared helpers are in [`controllers::pod`],
//!    [`controllers::fields`] and [`controllers::claim`], metadata
//!    accessors in [`meta`].
//! 2. `controllers/mod.rs`: `pub mod foo;` and a line in the list above it.
//! 3. `controllers/supervisor.rs`: one `Child` entry in `CHILDREN`.
//! 4. Tests: `controllers/foo/tests.rs` against the in-memory store, and
//!    an end-to-end test in `tests/tests/` if kubectl shows the kind.
//!
//! It imports only the runtime, the common helpers and the [`registry`], never
//! another controller's modules.

pub mod alpn;
pub mod api;
pub mod auth;
pub mod clock;
pub mod controllers;
pub mod dns;
pub mod kubeconfig;
pub mod meta;
pub mod nodes;
pub mod percent_encoding;
pub mod registry;
pub mod store;
pub mod version;
pub mod volumes;

pub use skiff_proto as proto;
