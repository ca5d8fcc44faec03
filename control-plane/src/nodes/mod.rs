//! Nodes as the control plane sees them: registration and heartbeats over
//! gRPC ([`registry`]), when each node was last heard from ([`liveness`]),
//! and the Node objects as stored, kept from a watch ([`view`]).

pub mod liveness;
pub mod registry;
pub mod view;
