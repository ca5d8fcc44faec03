//! Skiff's control plane: the Kubernetes-compatible API server and store
//! that `kubectl` talks to, the scheduler, and the workload controllers, each
//! an actor. It assigns pods to nodes over the `skiff.node.v1` gRPC contract
//! ([`skiff_proto`]).
//!
//! Nothing lives here yet: the store and API server, then scheduling and the
//! controllers, are the next milestones (see the README's roadmap).

pub use skiff_proto as proto;
