//! Nodes as the control plane sees them: registration and heartbeats over
//! gRPC ([`registry`]).

pub mod registry;
