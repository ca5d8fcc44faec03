//! What every pod of a node shares: configuration and the handles to the
//! outside world (runtime, network, images). Read-only after start.

use std::path::PathBuf;
use std::sync::Arc;

use crate::images::ImageManager;
use crate::metrics::Metrics;
use crate::pod::backoff::BackoffConfig;
use crate::pod::sandbox::PodNetwork;
use crate::runtime::ContainerRuntime;

/// Shared, immutable node context (cloned as an `Arc`).
pub struct NodeContext {
    /// This node's name.
    pub node_name: String,
    /// Root of the node's files (pod folders, checkpoints).
    pub state_dir: PathBuf,
    /// The container runtime.
    pub runtime: Arc<dyn ContainerRuntime>,
    /// Pod networks.
    pub network: Arc<dyn PodNetwork>,
    /// Image presence by pull policy.
    pub images: ImageManager,
    /// Restart back-off settings.
    pub backoff: BackoffConfig,
    /// The node's address, reported as `hostIP`.
    pub host_ip: Option<String>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}
