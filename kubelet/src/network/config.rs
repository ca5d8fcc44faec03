//! The conflist a node attaches its pods with: `loopback` (the pod's `lo`
//! up), then `bridge` on `cni0` with host-local IPAM over the node's podCIDR.
//!
//! Bridge options (measured, see the networking notes): `isGateway` gives
//! `cni0` the range's first address and pods their default route through
//! it; `hairpinMode` lets a pod reach itself through a Service VIP;
//! `ipMasq: false` because the plugin's masquerade is iptables-only in
//! Debian's version and would also hit cross-node pod traffic (the node
//! masquerades only traffic leaving the cluster CIDR, in its own nftables
//! table: see [`super::node`]).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::cni::{CNI_VERSION, ConfList};
use super::{NetworkError, NodeNetwork};

/// The network's name (host-local keeps its reservations under it).
pub const NETWORK_NAME: &str = "skiff";

/// The node's pod bridge.
pub const BRIDGE: &str = "cni0";

/// The pod's interface.
pub const POD_IFNAME: &str = "eth0";

/// Where host-local keeps reservations: per kubelet, because `skiff up`
/// runs several kubelets on one machine (each in its own node namespace)
/// and a shared directory would hand one address to two nodes' pods.
pub fn host_local_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cni").join("host-local")
}

/// Where ADD results are cached.
pub fn results_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("cni").join("results")
}

/// The node's conflist for `network`, with state under `data_dir`.
pub fn node_conflist(network: &NodeNetwork, data_dir: &Path) -> Result<ConfList, NetworkError> {
    let subnet = network.pod_net()?;
    let plugins = [
        json!({ "type": "loopback" }),
        json!({
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": true,
            "hairpinMode": true,
            "ipMasq": false,
            "ipam": {
                "type": "host-local",
                "ranges": [[{ "subnet": subnet.to_string() }]],
                "routes": [{ "dst": "0.0.0.0/0" }],
                "dataDir": host_local_dir(data_dir),
            },
        }),
    ];
    Ok(ConfList {
        cni_version: CNI_VERSION.into(),
        name: NETWORK_NAME.into(),
        plugins: plugins
            .into_iter()
            .filter_map(|p| match p {
                Value::Object(m) => Some(m),
                _ => None,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conflist_is_loopback_then_bridge_over_the_pod_cidr() {
        let net = NodeNetwork {
            pod_cidr: "10.244.1.0/24".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            peers: vec![],
        };
        let list = node_conflist(&net, Path::new("/var/lib/skiff/node1")).expect("valid");
        let v = serde_json::to_value(&list).expect("json");
        assert_eq!(
            v,
            json!({
                "cniVersion": "1.0.0",
                "name": "skiff",
                "plugins": [
                    {"type": "loopback"},
                    {
                        "type": "bridge",
                        "bridge": "cni0",
                        "isGateway": true,
                        "hairpinMode": true,
                        "ipMasq": false,
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": "10.244.1.0/24"}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                            "dataDir": "/var/lib/skiff/node1/cni/host-local"
                        }
                    }
                ]
            })
        );
    }

    #[test]
    fn a_bad_pod_cidr_is_refused() {
        let net = NodeNetwork {
            pod_cidr: "10.244.1.0/33".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            peers: vec![],
        };
        assert!(node_conflist(&net, Path::new("/x")).is_err());
    }
}
