//! Container logs on the node: the CRI log file format that `kubectl logs`
//! is served from.

pub mod cri;
