//! Nodes as the control plane sees them: registration and heartbeats over
//! gRPC ([`registry`]), and when each node was last heard from
//! ([`liveness`]).

pub mod liveness;
pub mod registry;
