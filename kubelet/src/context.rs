//! What every pod of a node shares: configuration and the handles to the
//! outside world (runtime, network, images). Read-only after start.

use std::path::PathBuf;
use std::sync::Arc;

use crate::images::ImageManager;
use crate::metrics::Metrics;
use crate::network::NodeNetwork;
use crate::pod::backoff::BackoffConfig;
use crate::pod::dns::NodeDns;
use crate::pod::sandbox::PodNetwork;
use crate::runtime::ContainerRuntime;
use crate::services::ServiceCache;

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
    /// The cluster's Services and EndpointSlices, as the control plane
    /// last told (empty without one).
    pub services: tokio::sync::watch::Sender<ServiceCache>,
    /// Where the pod network the control plane assigns is published;
    /// `None`: not followed.
    pub node_network: Option<Arc<tokio::sync::watch::Sender<Option<NodeNetwork>>>>,
    /// Whether to follow Services at all (see `KubeletConfig`).
    pub watch_services: bool,
    /// Cluster DNS, cluster domain and the node's resolv.conf, for pods'
    /// `/etc/resolv.conf`.
    pub dns: NodeDns,
    /// `--seccomp-default`: pods that name no seccomp profile get
    /// `RuntimeDefault` instead of upstream's default, `Unconfined`.
    pub seccomp_default: bool,
    /// Where pods' projected volumes get tokens and ConfigMaps (the
    /// control plane); `None` for a node without one.
    pub pod_sources: Option<Arc<dyn crate::pod::projected::PodSources>>,
    /// The pods whose projected tokens are being kept fresh.
    pub projected: crate::pod::projected::Refreshers,
}

impl NodeContext {
    /// A context with no image folder, the default back-off and no host
    /// address: all a node on fakes needs in tests.
    pub fn minimal(
        node_name: impl Into<String>,
        state_dir: impl Into<PathBuf>,
        runtime: Arc<dyn ContainerRuntime>,
        network: Arc<dyn PodNetwork>,
    ) -> Self {
        Self {
            node_name: node_name.into(),
            state_dir: state_dir.into(),
            images: ImageManager::new(runtime.clone(), None),
            runtime,
            network,
            backoff: BackoffConfig::default(),
            host_ip: None,
            metrics: Metrics::default(),
            services: tokio::sync::watch::Sender::default(),
            node_network: None,
            watch_services: false,
            dns: NodeDns::default(),
            seccomp_default: false,
            pod_sources: None,
            projected: Default::default(),
        }
    }
}
