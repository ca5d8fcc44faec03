//! Skiff's kubelet: the node agent that runs pods as real containers.
//!
//! # Layout
//! - [`runtime`]: the `ContainerRuntime` seam, with a containerd
//!   implementation (image import, containers, exec, logs through
//!   `skiff-cri-logger`) and an in-memory fake for tests.
//! - [`logs`]: the CRI log file format containers write and `kubectl logs`
//!   reads.
//!
//! Binaries: `skiff-cri-logger` (started by containerd's shim, never by hand).

pub mod logs;
pub mod runtime;
