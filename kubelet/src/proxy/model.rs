//! The proxy's input: plain types for one Service port and its endpoints,
//! independent of how they reach the node (the control-plane transport
//! converts Services and EndpointSlices into these).

use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

/// Upstream's default `sessionAffinityConfig.clientIP.timeoutSeconds` (3 h).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10_800;

/// Transport protocol of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP (stale conntrack entries are cleared when endpoints change).
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Lower-case name as nft and chain names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Identity of one Service port: `namespace/name:port_name/protocol`, the
/// key of everything the proxy keeps (upstream's `ServicePortName`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePortName {
    /// Service namespace.
    pub namespace: String,
    /// Service name.
    pub name: String,
    /// `spec.ports[].name` (empty for a single unnamed port).
    pub port_name: String,
    /// Port protocol (two ports may share a name only across protocols).
    pub protocol: Protocol,
}

impl ServicePortName {
    /// A key; `port_name` may be empty.
    pub fn new(namespace: &str, name: &str, port_name: &str, protocol: Protocol) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port_name: port_name.to_owned(),
            protocol,
        }
    }

    /// Whether this port belongs to Service `namespace/name`.
    pub fn is_of(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }
}

impl fmt::Display for ServicePortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}:{}/{}",
            self.namespace, self.name, self.port_name, self.protocol
        )
    }
}

/// One backend of a Service port, from an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Pod (or external) address.
    pub ip: Ipv4Addr,
    /// Target port.
    pub port: u16,
    /// `conditions.ready`: the pod is Ready and not terminating.
    pub ready: bool,
    /// `conditions.serving`: readiness, even while terminating.
    pub serving: bool,
    /// `conditions.terminating`.
    pub terminating: bool,
    /// `nodeName`: where the pod runs (Local traffic policy uses it).
    pub node: Option<String>,
}

impl Endpoint {
    /// A ready endpoint on `node`.
    pub fn ready(ip: Ipv4Addr, port: u16, node: Option<&str>) -> Self {
        Self {
            ip,
            port,
            ready: true,
            serving: true,
            terminating: false,
            node: node.map(str::to_owned),
        }
    }
}

/// Everything the proxy needs about one Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    /// Identity (also the key of the proxy's maps).
    pub name: ServicePortName,
    /// `spec.clusterIPs` of this family (empty for headless: not proxied).
    pub cluster_ips: Vec<Ipv4Addr>,
    /// `spec.ports[].port`.
    pub port: u16,
    /// `spec.ports[].nodePort` (NodePort and LoadBalancer Services).
    pub node_port: Option<u16>,
    /// `status.loadBalancer.ingress[].ip`.
    pub load_balancer_ips: Vec<Ipv4Addr>,
    /// `spec.externalIPs`.
    pub external_ips: Vec<Ipv4Addr>,
    /// `sessionAffinity: ClientIP` with its timeout in seconds; `None` for
    /// `None` affinity.
    pub session_affinity: Option<u32>,
    /// `externalTrafficPolicy: Local` (NodePort, LoadBalancer and external
    /// IPs go only to endpoints on this node).
    pub external_traffic_local: bool,
    /// Endpoints of this port from all EndpointSlices of the Service.
    pub endpoints: Vec<Endpoint>,
}

impl ServicePort {
    /// A ClusterIP Service port with no endpoints yet.
    pub fn cluster_ip(name: ServicePortName, ip: Ipv4Addr, port: u16) -> Self {
        Self {
            name,
            cluster_ips: vec![ip],
            port,
            node_port: None,
            load_balancer_ips: Vec::new(),
            external_ips: Vec::new(),
            session_affinity: None,
            external_traffic_local: false,
            endpoints: Vec::new(),
        }
    }

    /// Whether the port is reachable from outside the cluster network
    /// (NodePort, LoadBalancer IPs or external IPs).
    pub fn externally_accessible(&self) -> bool {
        self.node_port.is_some()
            || !self.load_balancer_ips.is_empty()
            || !self.external_ips.is_empty()
    }
}

/// Node-wide settings of the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// This node's name (matched against [`Endpoint::node`]).
    pub node_name: String,
    /// The pod network: traffic to a ClusterIP from outside it is
    /// masqueraded (upstream's `clusterCIDR` local-traffic detector).
    pub cluster_cidr: (Ipv4Addr, u8),
    /// The nftables table (family `ip`) the proxy owns entirely. Kubelets of
    /// one `skiff up` live in separate network namespaces, each with its own.
    pub table: String,
    /// Bursts of changes within this window are applied as one transaction
    /// (kube-proxy's `minSyncPeriod`).
    pub min_sync_period: Duration,
    /// After a failed sync, the next (full) attempt waits this long.
    pub retry_period: Duration,
    /// Run `nft` and `conntrack` in this network namespace
    /// (`nsenter --net=PATH`) instead of the current one. The kubelet leaves
    /// it `None` (it already runs in the node's namespace); tests and
    /// benchmarks point it at a namespace they made.
    pub netns: Option<PathBuf>,
}

impl ProxyConfig {
    /// Defaults for node `node_name`: table `skiff-proxy`, cluster CIDR
    /// 10.244.0.0/16, 20 ms debounce, 1 s retry.
    pub fn new(node_name: &str) -> Self {
        Self {
            node_name: node_name.to_owned(),
            cluster_cidr: (Ipv4Addr::new(10, 244, 0, 0), 16),
            table: "skiff-proxy".to_owned(),
            min_sync_period: Duration::from_millis(20),
            retry_period: Duration::from_secs(1),
            netns: None,
        }
    }
}
