//! Nodes as the control plane sees them: registration and heartbeats over
//! gRPC ([`registry`]), when each node was last heard from ([`liveness`]),
//! the Node objects as stored, kept from a watch ([`view`]), and the pod
//! network each node is told ([`network`]), and the Services and
//! EndpointSlices its service proxy follows ([`services`]), and the
//! tokens and ConfigMaps its pods' projected volumes hold ([`tokens`]).
//! Nodes join with a bootstrap token ([`bootstrap`]), call with the
//! certificate they get there, and act only for themselves ([`identity`]);
//! the control plane dials their kubelets with its own certificate
//! ([`kubelet_client`]).

pub mod bootstrap;
pub mod identity;
pub mod kubelet_client;
pub mod liveness;
pub mod network;
pub mod registry;
pub mod services;
pub mod tokens;
pub mod view;
