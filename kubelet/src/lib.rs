//! Skiff's kubelet: the node agent that runs pods as real containers.
//!
//! # Layout
//! - [`node`]: the `NodeAgent` actor owning the node's pods, static pod
//!   manifests, checkpoints and the fan-out of reports to watchers.
//! - [`context`], [`events`], [`metrics`]: what the node and its pods share
//!   (configuration and handles, Kubernetes Events, `/metrics` counters), kept
//!   outside both so pods never depend on the node agent.
//! - [`pod`]: one `PodActor` per pod (sandbox, containers, restartPolicy,
//!   CrashLoopBackOff, status), with the pure state machine underneath.
//! - [`network`]: the CNI pod network (pods get an IP from the node's
//!   podCIDR on a bridge) and the node's routes and masquerade.
//! - [`probe`]: liveness, readiness and startup probes (httpGet, tcpSocket, exec).
//! - [`images`]: pull policies, images imported from the node's image folder.
//! - [`runtime`]: the `ContainerRuntime` seam, with a containerd
//!   implementation and an in-memory fake for tests.
//! - [`server`]: the gRPC `NodeAgent` service and the HTTP endpoints
//!   (`/pods`, `/healthz`, `/metrics`).
//! - [`app`]: assembling a whole kubelet (used by the binary and tests).
//! - [`logs`]: the CRI log file format containers write and `kubectl logs` reads.
//! - [`services`]: the cluster's Services and EndpointSlices as the control
//!   plane sends them (service environment variables, the service proxy).
//!
//! Binaries: `skiff-kubelet` (the node agent) and `skiff-cri-logger`
//! (started by containerd's shim, never by hand).

pub mod app;
pub mod context;
pub mod events;
pub mod images;
pub mod logs;
pub mod metrics;
pub mod network;
pub mod node;
pub mod pod;
pub mod probe;
pub mod proxy;
pub mod runtime;
pub mod server;
pub mod services;
