//! The node IPAM controller: gives every Node a pod subnet of the cluster
//! CIDR (`spec.podCIDR`, `spec.podCIDRs`), the lowest free one, as
//! upstream's range allocator does. The Node objects are the only record:
//! a restarted control plane reads what is taken from them, and a deleted
//! Node's subnet is free again. A subnet is never changed once set (the
//! node's pods hold addresses from it).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{info, warn};

use super::metadata_of;
use super::runtime::{self, Key, Reconciler, Trigger};
use crate::meta;
use crate::nodes::network::pod_cidrs;
use crate::nodes::view::NodeView;
use crate::registry::allocation::pod_cidr::ClusterCidr;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

const COMPONENT: &str = "node-ipam-controller";

/// How long a node waits for a subnet to free up before it is looked at
/// again when the cluster CIDR is full.
const FULL_RETRY: Duration = Duration::from_secs(30);

/// A Node, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(pub String);

impl Key for NodeName {
    fn kind(&self) -> &str {
        "Node"
    }

    fn object_ref(&self) -> String {
        self.0.clone()
    }

    fn namespace(&self) -> Option<&str> {
        None
    }
}

/// The reconciler.
pub struct NodeIpam {
    objects: Objects,
    view: Arc<NodeView>,
    cidr: ClusterCidr,
    /// Subnets this controller wrote, by node: the view may not show a
    /// write of a moment ago, and two nodes must never get the same one.
    assigned: HashMap<String, u32>,
}

impl NodeIpam {
    /// Hands out subnets of `cidr`, reading nodes from `view` and writing
    /// through `objects`.
    pub fn new(objects: Objects, view: Arc<NodeView>, cidr: ClusterCidr) -> Self {
        Self {
            objects,
            view,
            cidr,
            assigned: HashMap::new(),
        }
    }

    /// Subnets held by nodes other than `me`.
    fn taken(&self, nodes: &[Arc<Value>], me: &str) -> HashSet<u32> {
        let stored = nodes
            .iter()
            .filter(|n| meta::name(n) != me)
            .flat_map(|n| pod_cidrs(n))
            .filter_map(|c| self.cidr.index_of(&c));
        let written = self
            .assigned
            .iter()
            .filter(|(node, _)| node.as_str() != me)
            .map(|(_, i)| *i);
        stored.chain(written).collect()
    }

    async fn assign(&mut self, name: &str) -> Result<runtime::Action, StoreError> {
        let Some(nodes) = self.view.all() else {
            // Not listed yet: what is taken is unknown.
            return Ok(runtime::Action::requeue(Duration::from_millis(200)));
        };
        let Some(index) = self.cidr.first_free(&self.taken(&nodes, name)) else {
            let message = format!("Node {name} status is now: CIDRNotAvailable");
            warn!(node = %name, cidr = %self.cidr, "no pod subnet left for the node");
            if let Some(node) = self.view.get(name) {
                self.objects
                    .event(&node, false, "CIDRNotAvailable", &message, COMPONENT)
                    .await;
            }
            return Ok(runtime::Action::requeue(FULL_RETRY));
        };
        let subnet = self.cidr.subnet(index);
        let written = self
            .objects
            .update(kinds::NODES, None, name, |node| {
                // Decided again on the fresh read: someone may have set it.
                if !pod_cidrs(node).is_empty() {
                    return false;
                }
                node["spec"]["podCIDR"] = json!(subnet);
                node["spec"]["podCIDRs"] = json!([subnet]);
                true
            })
            .await;
        match written {
            Ok(Some(_)) => {
                info!(node = %name, pod_cidr = %subnet, "pod subnet assigned");
                self.assigned.insert(name.to_string(), index);
            }
            Ok(None) => {}
            Err(StoreError::NotFound(_)) => {
                self.assigned.remove(name);
            }
            Err(e) => return Err(e),
        }
        Ok(runtime::Action::await_change())
    }
}

impl Reconciler for NodeIpam {
    type Key = NodeName;
    type Change = Infallible;
    type Error = StoreError;
    const NAME: &'static str = "node-ipam";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![kinds::NODES.prefix()])
    }

    fn decode(_: usize, event: Option<&Event>) -> Option<Trigger<NodeName, Infallible>> {
        match event {
            None => Some(Trigger::Resync),
            Some(e) => {
                let name = meta::name(&metadata_of(e)?).to_string();
                Some(Trigger::Object(e.kind, NodeName(name)))
            }
        }
    }

    async fn list(&mut self) -> Result<Vec<NodeName>, StoreError> {
        let names = |nodes: &mut dyn Iterator<Item = &Value>| {
            nodes.map(|n| NodeName(meta::name(n).to_string())).collect()
        };
        if let Some(nodes) = self.view.all() {
            return Ok(names(&mut nodes.iter().map(|n| n.as_ref())));
        }
        let (nodes, _) = self.objects.list(kinds::NODES).await?;
        Ok(names(&mut nodes.iter()))
    }

    async fn reconcile(&mut self, key: &NodeName) -> Result<runtime::Action, StoreError> {
        // The view answers the common case (a status write of a node that
        // has its subnet) without a store read.
        if let Some(node) = self.view.get(&key.0) {
            let cidrs = pod_cidrs(&node);
            if !cidrs.is_empty() {
                if let Some(index) = cidrs.iter().find_map(|c| self.cidr.index_of(c)) {
                    self.assigned.insert(key.0.clone(), index);
                }
                return Ok(runtime::Action::await_change());
            }
        }
        match self.objects.get(kinds::NODES, None, &key.0).await {
            Ok(node) if pod_cidrs(&node).is_empty() => self.assign(&key.0).await,
            Ok(_) => Ok(runtime::Action::await_change()),
            Err(StoreError::NotFound(_)) => {
                self.assigned.remove(&key.0);
                Ok(runtime::Action::await_change())
            }
            Err(e) => Err(e),
        }
    }

    fn forget(&mut self, key: &NodeName) {
        self.assigned.remove(&key.0);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::store::Store;
    use crate::store::memory::MemoryStore;

    async fn setup() -> (Objects, Arc<NodeView>) {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let objects = Objects::new(store.clone());
        let view = NodeView::start(store);
        (objects, view)
    }

    async fn add_node(objects: &Objects, name: &str, cidr: Option<&str>) {
        let mut node = json!({"metadata": {"name": name}, "spec": {}});
        if let Some(c) = cidr {
            node["spec"]["podCIDR"] = json!(c);
        }
        objects.create(kinds::NODES, node).await.expect("node");
    }

    async fn synced(view: &NodeView, count: usize) {
        for _ in 0..500 {
            if view.all().is_some_and(|n| n.len() == count) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("view never saw {count} nodes");
    }

    async fn cidr_of(objects: &Objects, name: &str) -> Value {
        let node = objects.get(kinds::NODES, None, name).await.expect("node");
        json!([node["spec"]["podCIDR"], node["spec"]["podCIDRs"]])
    }

    #[tokio::test]
    async fn nodes_get_the_lowest_free_subnets_and_keep_them() {
        let (objects, view) = setup().await;
        add_node(&objects, "a", None).await;
        add_node(&objects, "b", Some("10.244.0.0/24")).await;
        add_node(&objects, "c", None).await;
        synced(&view, 3).await;
        let mut ipam = NodeIpam::new(objects.clone(), view.clone(), ClusterCidr::default());
        for name in ["a", "b", "c"] {
            ipam.reconcile(&NodeName(name.into())).await.expect("sync");
        }
        // b held .0 already; a and c are reconciled before the view sees
        // a's write, and still differ.
        assert_eq!(
            cidr_of(&objects, "a").await,
            json!(["10.244.1.0/24", ["10.244.1.0/24"]])
        );
        assert_eq!(cidr_of(&objects, "b").await, json!(["10.244.0.0/24", null]));
        assert_eq!(
            cidr_of(&objects, "c").await,
            json!(["10.244.2.0/24", ["10.244.2.0/24"]])
        );
        // Re-running changes nothing (level-triggered, idempotent).
        let before = objects.get(kinds::NODES, None, "a").await.expect("a");
        ipam.reconcile(&NodeName("a".into())).await.expect("again");
        let after = objects.get(kinds::NODES, None, "a").await.expect("a");
        assert_eq!(
            before["metadata"]["resourceVersion"],
            after["metadata"]["resourceVersion"]
        );
    }

    #[tokio::test]
    async fn a_deleted_nodes_subnet_is_handed_out_again_also_after_a_restart() {
        let (objects, view) = setup().await;
        add_node(&objects, "a", None).await;
        add_node(&objects, "b", None).await;
        synced(&view, 2).await;
        let mut ipam = NodeIpam::new(objects.clone(), view.clone(), ClusterCidr::default());
        ipam.reconcile(&NodeName("a".into())).await.expect("a");
        ipam.reconcile(&NodeName("b".into())).await.expect("b");
        objects
            .delete(kinds::NODES, None, "a")
            .await
            .expect("delete a");
        ipam.reconcile(&NodeName("a".into())).await.expect("a gone");
        synced(&view, 1).await;
        // A new controller (a control plane restart) knows only the store.
        let mut fresh = NodeIpam::new(objects.clone(), view.clone(), ClusterCidr::default());
        add_node(&objects, "c", None).await;
        synced(&view, 2).await;
        fresh.reconcile(&NodeName("c".into())).await.expect("c");
        assert_eq!(
            cidr_of(&objects, "c").await,
            json!(["10.244.0.0/24", ["10.244.0.0/24"]])
        );
        assert_eq!(
            cidr_of(&objects, "b").await,
            json!(["10.244.1.0/24", ["10.244.1.0/24"]])
        );
    }

    #[tokio::test]
    async fn a_full_cluster_cidr_leaves_the_node_without_and_says_so() {
        let (objects, view) = setup().await;
        add_node(&objects, "a", None).await;
        add_node(&objects, "b", None).await;
        synced(&view, 2).await;
        let small = ClusterCidr::parse("10.0.0.0/24", 24).expect("one subnet");
        let mut ipam = NodeIpam::new(objects.clone(), view.clone(), small);
        ipam.reconcile(&NodeName("a".into())).await.expect("a");
        let action = ipam.reconcile(&NodeName("b".into())).await.expect("b");
        assert_eq!(action.requeue_after(), Some(FULL_RETRY));
        assert_eq!(cidr_of(&objects, "b").await, json!([null, null]));
        let (events, _) = objects.list(kinds::EVENTS).await.expect("events");
        assert!(
            events.iter().any(|e| e["reason"] == "CIDRNotAvailable"
                && e["message"] == "Node b status is now: CIDRNotAvailable"),
            "{events:?}"
        );
    }
}
