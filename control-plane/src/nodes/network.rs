//! The pod network as each node needs to know it (`NodeRegistry.WatchNetwork`):
//! the node's own pod CIDR, for its CNI configuration, and every other
//! node's pod CIDR and address, for the routes between nodes (no overlay:
//! nodes share one L2 network, flannel's host-gw idea). Built from the
//! watch-fed [`NodeView`], and sent again only when the part a node sees
//! changes, so heartbeats and status writes cost the watchers nothing.

use std::sync::Arc;

use serde_json::Value;
use skiff_proto::node::v1 as pb;
use tokio::sync::mpsc;
use tracing::debug;

use super::view::NodeView;
use crate::registry::allocation::pod_cidr::ClusterCidr;

/// A node's `spec.podCIDRs` (or its single `spec.podCIDR`).
pub fn pod_cidrs(node: &Value) -> Vec<String> {
    let list: Vec<String> = node["spec"]["podCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(String::from))
        .collect();
    if !list.is_empty() {
        return list;
    }
    node["spec"]["podCIDR"]
        .as_str()
        .filter(|c| !c.is_empty())
        .map(|c| vec![c.to_string()])
        .unwrap_or_default()
}

fn internal_ip(node: &Value) -> Option<&str> {
    node["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()
        .filter(|a| !a.is_empty())
}

/// The Node's Ready condition is True (the node lifecycle controller sets
/// it Unknown when the kubelet goes silent).
pub fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// What node `me` is told, given every node as stored.
pub fn pod_network(nodes: &[Arc<Value>], me: &str, cluster: &ClusterCidr) -> pb::PodNetwork {
    let mut own = Vec::new();
    let mut peers = Vec::new();
    for node in nodes {
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let cidrs = pod_cidrs(node);
        if name == me {
            own = cidrs;
        } else if let Some(address) = internal_ip(node).filter(|_| !cidrs.is_empty()) {
            peers.push(pb::PeerNode {
                node_name: name.to_string(),
                pod_cidrs: cidrs,
                address: address.to_string(),
                ready: node_ready(node),
            });
        }
    }
    // A stable order, so equal networks compare equal.
    peers.sort_by(|a, b| a.node_name.cmp(&b.node_name));
    pb::PodNetwork {
        pod_cidrs: own,
        cluster_cidr: cluster.to_string(),
        peers,
    }
}

/// Sends node `me` its network now and after every change of it, until
/// the receiver goes away.
pub async fn follow(
    view: Arc<NodeView>,
    me: String,
    cluster: ClusterCidr,
    out: mpsc::Sender<Result<pb::PodNetwork, tonic::Status>>,
) {
    let mut changes = view.subscribe();
    let mut last: Option<pb::PodNetwork> = None;
    loop {
        // Marked seen before reading, so a change during the read wakes
        // the next wait.
        changes.borrow_and_update();
        if let Some(nodes) = view.all() {
            let network = pod_network(&nodes, &me, &cluster);
            if last.as_ref() != Some(&network) {
                debug!(node = %me, peers = network.peers.len(), "pod network changed");
                if out.send(Ok(network.clone())).await.is_err() {
                    return;
                }
                last = Some(network);
            }
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = out.closed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, cidr: Option<&str>, ip: &str) -> Arc<Value> {
        let mut n = json!({"metadata": {"name": name}, "spec": {},
            "status": {"addresses": [{"type": "InternalIP", "address": ip},
                                     {"type": "Hostname", "address": name}]}});
        if let Some(c) = cidr {
            n["spec"]["podCIDR"] = json!(c);
            n["spec"]["podCIDRs"] = json!([c]);
        }
        Arc::new(n)
    }

    #[test]
    fn a_node_sees_its_cidr_and_every_peer_with_one() {
        let nodes = vec![
            node("c", Some("10.244.2.0/24"), "172.29.0.4"),
            node("a", Some("10.244.0.0/24"), "172.29.0.2"),
            node("b", None, "172.29.0.3"),
            node("d", Some("10.244.1.0/24"), "172.29.0.5"),
        ];
        let net = pod_network(&nodes, "a", &ClusterCidr::default());
        assert_eq!(net.pod_cidrs, ["10.244.0.0/24"]);
        assert_eq!(net.cluster_cidr, "10.244.0.0/16");
        let peers: Vec<(&str, &str)> = net
            .peers
            .iter()
            .map(|p| (p.node_name.as_str(), p.address.as_str()))
            .collect();
        assert_eq!(peers, [("c", "172.29.0.4"), ("d", "172.29.0.5")]);
        let unassigned = pod_network(&nodes, "b", &ClusterCidr::default());
        assert!(unassigned.pod_cidrs.is_empty());
        assert_eq!(unassigned.peers.len(), 3);
    }

    #[test]
    fn peers_carry_their_ready_condition() {
        let mut ready = (*node("b", Some("10.244.1.0/24"), "172.29.0.3")).clone();
        ready["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        let mut silent = (*node("c", Some("10.244.2.0/24"), "172.29.0.4")).clone();
        silent["status"]["conditions"] = json!([{"type": "Ready", "status": "Unknown"}]);
        let nodes = vec![
            node("a", Some("10.244.0.0/24"), "172.29.0.2"),
            Arc::new(ready),
            Arc::new(silent),
        ];
        let net = pod_network(&nodes, "a", &ClusterCidr::default());
        let flags: Vec<(&str, bool)> = net
            .peers
            .iter()
            .map(|p| (p.node_name.as_str(), p.ready))
            .collect();
        assert_eq!(flags, [("b", true), ("c", false)]);
    }

    #[tokio::test]
    async fn followers_hear_changes_of_their_network_only() {
        let view = Arc::new(NodeView::default());
        view.reset(
            vec![("a".into(), 1, (*node("a", None, "10.0.0.1")).clone())],
            1,
        );
        let (tx, mut rx) = mpsc::channel(8);
        let task = tokio::spawn(follow(view.clone(), "a".into(), ClusterCidr::default(), tx));
        let first = rx.recv().await.expect("first").expect("ok");
        assert!(first.pod_cidrs.is_empty());
        view.apply(
            "a",
            2,
            Some((*node("a", Some("10.244.0.0/24"), "10.0.0.1")).clone()),
        );
        let second = rx.recv().await.expect("second").expect("ok");
        assert_eq!(second.pod_cidrs, ["10.244.0.0/24"]);
        // A change nobody's network shows (a status write) sends nothing.
        let mut same = (*node("a", Some("10.244.0.0/24"), "10.0.0.1")).clone();
        same["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        view.apply("a", 3, Some(same));
        view.apply(
            "b",
            4,
            Some((*node("b", Some("10.244.1.0/24"), "10.0.0.2")).clone()),
        );
        let third = rx.recv().await.expect("third").expect("ok");
        assert_eq!(third.peers.len(), 1);
        assert_eq!(third.peers[0].pod_cidrs, ["10.244.1.0/24"]);
        drop(rx);
        view.apply("b", 5, None);
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("the follower stops when its node goes away")
            .expect("join");
    }
}
