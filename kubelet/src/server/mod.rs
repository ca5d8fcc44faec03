//! Network endpoints of the kubelet: the gRPC `NodeAgent` service the control
//! plane talks to, and the HTTP endpoints for people and monitoring.

pub mod grpc;
pub mod http;
pub mod port_forward;
