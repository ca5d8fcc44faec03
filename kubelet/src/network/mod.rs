//! The pod network: every pod gets an address from its node's podCIDR on a
//! bridge (`cni0`) through the standard CNI plugins, and nodes reach each
//! other's pods over plain routes (`peer podCIDR via peer node IP`, flannel's
//! "host-gw" shape: the nodes share one L2, so no overlay is needed).
//!
//! - [`cni`]: Skiff's own small CNI executor (plugin binaries, per-child
//!   environment, conflist semantics, results cached on disk).
//! - [`config`]: the conflist a node uses (loopback, then bridge with
//!   host-local IPAM over the node's podCIDR).
//! - [`pod`]: [`CniNetwork`], the [`PodNetwork`](crate::pod::sandbox::PodNetwork)
//!   that attaches pods through it.
//! - [`node`]: what the node itself needs (forwarding sysctls, routes to the
//!   peers' pod CIDRs, masquerade for traffic leaving the cluster), kept up to
//!   date from the control plane's [`NodeNetwork`].
//! - [`announce`]: answers ARP for the LoadBalancer addresses this node
//!   owns (MetalLB's L2 mode: one ready node per address, chosen by hash).
//! - [`guard`]: keeps pods from the kubelets' ports and the control plane's
//!   node registry (nobody authenticates there yet).
//!
//! The node's network facts come from the control plane as a
//! `watch::Receiver<Option<NodeNetwork>>` ([`NodeNetworkRx`]); `None` until a
//! podCIDR is assigned.

pub mod announce;
pub mod cni;
pub mod config;
pub mod guard;
pub mod node;
pub mod pod;
pub mod table;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;

pub use pod::{CniNetwork, CniOptions};

/// The node's network facts, as the control plane assigns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    /// This node's pod range, e.g. `10.244.1.0/24`.
    pub pod_cidr: String,
    /// The whole cluster's pod range, e.g. `10.244.0.0/16`.
    pub cluster_cidr: String,
    /// Every other node with a pod range.
    pub peers: Vec<Peer>,
}

/// Another node whose pods this node routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The node's name.
    pub node: String,
    /// Its pod range.
    pub pod_cidr: String,
    /// Its InternalIP: the next hop for its pod range.
    pub address: String,
    /// Its Ready condition is True: it may announce LoadBalancer
    /// addresses (see [`announce`]).
    pub ready: bool,
}

/// How the node's network facts are shared: `None` until the control plane
/// assigns a podCIDR.
pub type NodeNetworkRx = tokio::sync::watch::Receiver<Option<NodeNetwork>>;

impl NodeNetwork {
    /// The node's pod range, parsed (and truncated to its network address).
    pub fn pod_net(&self) -> Result<Ipv4Net, NetworkError> {
        parse_net("podCIDR", &self.pod_cidr)
    }

    /// The cluster's pod range, parsed.
    pub fn cluster_net(&self) -> Result<Ipv4Net, NetworkError> {
        parse_net("clusterCIDR", &self.cluster_cidr)
    }
}

impl Peer {
    /// The peer's pod range and next hop.
    pub fn route(&self) -> Result<(Ipv4Net, Ipv4Addr), NetworkError> {
        let net = parse_net("peer podCIDR", &self.pod_cidr)?;
        let via = self
            .address
            .parse::<Ipv4Addr>()
            .map_err(|_| NetworkError::Invalid {
                what: "peer address",
                value: self.address.clone(),
            })?;
        Ok((net, via))
    }
}

fn parse_net(what: &'static str, value: &str) -> Result<Ipv4Net, NetworkError> {
    value
        .parse::<Ipv4Net>()
        .map(|n| n.trunc())
        .map_err(|_| NetworkError::Invalid {
            what,
            value: value.to_string(),
        })
}

/// Why the pod network or the node's network setup failed.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A CIDR or address from the control plane does not parse.
    #[error("invalid {what} {value:?}")]
    Invalid {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: String,
    },
    /// The control plane has not assigned this node a podCIDR yet.
    #[error("the node has no podCIDR yet (waited {waited:?}); the pod stays pending")]
    NoPodCidr {
        /// How long setup waited.
        waited: Duration,
    },
    /// A CNI plugin failed.
    #[error(transparent)]
    Cni(#[from] cni::CniError),
    /// The network attached, but its result gave the pod no IPv4 address.
    #[error("the CNI result has no IPv4 address for {ifname}")]
    NoPodIp {
        /// The pod's interface.
        ifname: String,
    },
    /// A command (`ip`, `nft`, `modprobe`) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A command that runs in the node's network namespace: the current one
/// (production: `skiff up` already starts each kubelet inside its node's
/// namespace), or `node_netns` when given (tests and standalone use, where
/// the kubelet-side code runs outside the namespace it manages). The child
/// enters it with `setns` before exec; the calling process never moves.
pub(crate) fn node_command(
    program: impl AsRef<std::ffi::OsStr>,
    node_netns: Option<&Path>,
) -> Result<tokio::process::Command, std::io::Error> {
    let mut command = tokio::process::Command::new(program);
    if let Some(netns) = node_netns {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(netns)?;
        // SAFETY: setns is async-signal-safe; the closure only makes that one
        // system call on a descriptor that stays open (the closure owns `file`).
        unsafe {
            command.pre_exec(move || {
                if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
    }
    Ok(command)
}

/// Runs `program args` in the node's namespace and returns its stdout.
pub(crate) async fn run_in_node(
    node_netns: Option<&Path>,
    program: &str,
    args: &[&str],
) -> Result<String, NetworkError> {
    let line = || format!("{program} {}", args.join(" "));
    let mut command = node_command(program, node_netns).map_err(|e| NetworkError::Command {
        command: line(),
        detail: e.to_string(),
    })?;
    let out = command
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| NetworkError::Command {
            command: line(),
            detail: e.to_string(),
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetworkError::Command {
            command: line(),
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_and_truncate() {
        let net = NodeNetwork {
            pod_cidr: "10.244.1.7/24".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            peers: vec![],
        };
        assert_eq!(net.pod_net().expect("valid").to_string(), "10.244.1.0/24");
        assert_eq!(
            net.cluster_net().expect("valid").to_string(),
            "10.244.0.0/16"
        );
        let bad = NodeNetwork {
            pod_cidr: "10.244.1.0".into(),
            ..net
        };
        assert!(matches!(
            bad.pod_net(),
            Err(NetworkError::Invalid {
                what: "podCIDR",
                ..
            })
        ));
    }

    #[test]
    fn peers_give_a_route_or_a_clear_error() {
        let peer = Peer {
            node: "node2".into(),
            pod_cidr: "10.244.2.0/24".into(),
            address: "172.29.1.12".into(),
            ready: true,
        };
        let (net, via) = peer.route().expect("valid");
        assert_eq!(net.to_string(), "10.244.2.0/24");
        assert_eq!(via, Ipv4Addr::new(172, 29, 1, 12));
        let bad = Peer {
            address: "node2.local".into(),
            ..peer
        };
        assert_eq!(
            bad.route().expect_err("must fail").to_string(),
            "invalid peer address \"node2.local\""
        );
    }
}
