//! Nodes as the control plane sees them: registration and heartbeats over
//! gRPC ([`registry`]), when each node was last heard from ([`liveness`]),
//! the Node objects as stored, kept from a watch ([`view`]), and the pod
//! network each node is told ([`network`]).

pub mod liveness;
pub mod network;
pub mod registry;
pub mod view;
