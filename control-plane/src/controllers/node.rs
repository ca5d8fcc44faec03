//! One actor per registered node. It pushes the pods bound to the node to
//! its kubelet over gRPC (the full set on every (re)connection, then
//! changes), removes pods being deleted with their grace period, and writes
//! back what the kubelet reports: pod status, events, and — once the
//! kubelet confirms the containers are gone — the final removal of the pod.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_agent_client::NodeAgentClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use super::mirror;
use crate::nodes::kubelet_client;
use crate::registry::events::{InvolvedObject, NewEvent};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{EventKind, StoreError};
use crate::volumes;

/// Messages of a node actor.
#[derive(Debug)]
pub enum NodeActorMsg {
    /// Push the node's whole desired pod set.
    Resync,
    /// Every pod bound to this node (from the supervisor's listing):
    /// replaces the actor's view, then pushes it.
    Snapshot(Vec<Arc<Value>>),
    /// A pod bound to this node changed (for `Deleted`: its last state).
    PodChanged(EventKind, Arc<Value>),
    /// The kubelet reported something.
    Reported(Box<pb::NodeReport>),
}

/// The node actor.
pub struct NodeActor;

/// Its state.
pub struct NodeActorState {
    node: String,
    objects: Objects,
    client: Option<NodeAgentClient<Channel>>,
    /// The node's static pods as last reported (namespace, name): what
    /// their mirrors are drawn from, again whenever a mirror goes missing.
    statics: HashMap<(String, String), pb::PodStatusReport>,
    /// The pods bound to this node, by `namespace/name` (their status may
    /// be older than the store's: it is not sent); `None` until the
    /// first snapshot (pushing an empty set before would tell the kubelet
    /// to drop every pod it runs).
    pods: Option<HashMap<String, Arc<Value>>>,
}

fn key_of(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

/// Whether two versions of a pod differ in nothing a kubelet is sent for:
/// neither spec nor metadata (but for the revision).
fn same_for_kubelet(before: &Value, after: &Value) -> bool {
    if before.get("spec") != after.get("spec") {
        return false;
    }
    match (before.get("metadata"), after.get("metadata")) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let sent = |k: &String| !matches!(k.as_str(), "resourceVersion" | "managedFields");
            a.keys().filter(|k| sent(k)).count() == b.keys().filter(|k| sent(k)).count()
                && a.iter()
                    .filter(|(k, _)| sent(k))
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        (a, b) => a == b,
    }
}

async fn endpoint(objects: &Objects, node: &str) -> Option<String> {
    let rt = kinds::NODES;
    let obj = objects.get(rt, None, node).await.ok()?;
    let address = obj["status"]["addresses"]
        .as_array()?
        .iter()
        .find(|a| a["type"] == "InternalIP")?["address"]
        .as_str()?
        .to_string();
    let port = obj
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")?
        .as_i64()?;
    Some(format!("{address}:{port}"))
}

/// The assignment of `pod` as prepared by [`NodeActorState::for_node`].
fn assignment(pod: &Value) -> pb::PodAssignment {
    // The kubelet is sent the pod without its status (which it reports
    // itself), serialized from a view rather than a copy of the pod.
    let pod_json = match pod.as_object() {
        Some(o) => serde_json::to_vec(
            &o.iter()
                .filter(|(k, _)| k.as_str() != "status")
                .collect::<std::collections::BTreeMap<_, _>>(),
        ),
        None => serde_json::to_vec(pod),
    };
    pb::PodAssignment {
        pod_uid: pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        resource_version: pod
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        pod_json: pod_json.unwrap_or_default(),
    }
}

/// A kubelet's report as an Event, sourced like upstream's kubelet events
/// (component `kubelet`, host the node) and timed when the node saw it.
/// An event the kubelet reported: about a pod, or, without a pod, about
/// its node (`MissingClusterDNS`, a broken static manifest), referenced as
/// upstream's kubelet references its node: the node's name as its uid.
fn kubelet_event(node: &str, e: pb::Event) -> NewEvent {
    let object = if e.pod_uid.is_empty() {
        InvolvedObject {
            kind: "Node".into(),
            api_version: "v1".into(),
            namespace: String::new(),
            name: node.to_string(),
            uid: node.to_string(),
            field_path: String::new(),
        }
    } else {
        InvolvedObject {
            kind: "Pod".into(),
            api_version: "v1".into(),
            namespace: e.namespace,
            name: e.pod_name,
            uid: e.pod_uid,
            field_path: e.field_path,
        }
    };
    NewEvent {
        object,
        warning: e.r#type == "Warning",
        reason: e.reason,
        message: e.message,
        component: "kubelet".into(),
        host: node.to_string(),
        time: chrono::DateTime::from_timestamp_millis(e.timestamp_ms)
            .filter(|_| e.timestamp_ms > 0)
            .unwrap_or_else(chrono::Utc::now),
    }
}

fn terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

impl NodeActorState {
    /// The pod as the node gets it: with the node-local volumes its claims
    /// are bound to (the kubelet reads no API objects).
    async fn for_node<'a>(&self, pod: &'a Value) -> Cow<'a, Value> {
        match volumes::mounts::for_node(&self.objects, pod).await {
            Ok(p) => p,
            Err(e) => {
                warn!(node = %self.node, pod = %key_of(pod), error = %e, "cannot resolve the pod's claims");
                Cow::Borrowed(pod)
            }
        }
    }

    async fn client(&mut self) -> Option<&mut NodeAgentClient<Channel>> {
        if self.client.is_none()
            && let Some(address) = endpoint(&self.objects, &self.node).await
            && let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(2),
                kubelet_client::connect(&self.node, &address),
            )
            .await
        {
            self.client = Some(NodeAgentClient::new(c));
        }
        self.client.as_mut()
    }

    async fn resync(&mut self) -> Result<(), ActorProcessingErr> {
        let Some(pods) = &self.pods else {
            return Ok(());
        };
        let (mirrors, mine): (Vec<Arc<Value>>, Vec<Arc<Value>>) = pods
            .values()
            .cloned()
            .partition(|p| mirror::mirror_hash(p).is_some());
        for m in mirrors.iter().filter(|m| terminating(m)) {
            self.delete_mirror(m).await?;
        }
        for report in self.statics.values() {
            self.sync_mirror(report).await?;
        }
        let mut assignments = Vec::with_capacity(mine.len());
        for p in mine.iter().filter(|p| !terminating(p)) {
            assignments.push(assignment(&*self.for_node(p).await));
        }
        let set = pb::PodSet { pods: assignments };
        let removals: Vec<pb::PodRemoval> = mine
            .iter()
            .filter(|p| terminating(p))
            .map(|p| pb::PodRemoval {
                pod_uid: p
                    .pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                grace_period_seconds: p
                    .pointer("/metadata/deletionGracePeriodSeconds")
                    .and_then(Value::as_i64),
            })
            .collect();
        let node = self.node.clone();
        let Some(client) = self.client().await else {
            return Ok(());
        };
        match client.sync_pods(set).await {
            Ok(r) => {
                for rejection in r.into_inner().rejected {
                    warn!(%node, pod_uid = %rejection.pod_uid, reason = %rejection.reason, "node refused a pod");
                }
                for removal in removals {
                    let _ = client.remove_pod(removal).await;
                }
            }
            Err(e) => {
                debug!(%node, error = %e, "sync failed; will retry");
                self.client = None;
            }
        }
        Ok(())
    }

    /// A mirror pod being deleted goes at once (grace 0): it runs nothing
    /// here, and the node's next report draws it again while the static pod
    /// exists, as upstream's kubelet does.
    async fn delete_mirror(&self, pod: &Value) -> Result<(), ActorProcessingErr> {
        let namespace = pod.pointer("/metadata/namespace").and_then(Value::as_str);
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.objects.delete(kinds::PODS, namespace, name).await?;
        Ok(())
    }

    /// Creates, refreshes or replaces the mirror of a static pod the node reported.
    async fn sync_mirror(&self, report: &pb::PodStatusReport) -> Result<(), ActorProcessingErr> {
        let rt = kinds::PODS;
        let (Ok(static_pod), Ok(status)) = (
            serde_json::from_slice::<Value>(&report.pod_json),
            serde_json::from_slice::<Value>(&report.status_json),
        ) else {
            return Ok(());
        };
        let (namespace, name) = (report.namespace.as_str(), report.name.as_str());
        let stored = self.objects.get(rt, Some(namespace), name).await.ok();
        if let Some(other) = stored.as_ref().filter(|p| !bound_to(p, &self.node)) {
            // NodeRestriction: a static pod never replaces or updates a
            // pod of another node.
            debug!(pod = %format!("{namespace}/{name}"), node = %self.node, other = ?other.pointer("/spec/nodeName"), "static pod's name taken by another node's pod");
            return Ok(());
        }
        match mirror::reconcile(stored.as_ref(), &report.pod_uid) {
            mirror::MirrorAction::Leave => Ok(()),
            mirror::MirrorAction::UpdateStatus => {
                if stored.as_ref().is_some_and(terminating) {
                    return Ok(());
                }
                self.objects
                    .update(rt, Some(namespace), name, |pod| {
                        if pod["status"] == status {
                            return false;
                        }
                        pod["status"] = status.clone();
                        true
                    })
                    .await?;
                Ok(())
            }
            action => {
                if action == mirror::MirrorAction::Replace {
                    self.objects.delete(rt, Some(namespace), name).await?;
                }
                let nodes = kinds::NODES;
                let node = self.objects.get(nodes, None, &self.node).await?;
                let mirror_pod = mirror::mirror_of(&static_pod, &status, &node);
                match self.objects.create(rt, mirror_pod).await {
                    Ok(_) => {
                        info!(pod = %format!("{namespace}/{name}"), node = %self.node, "created mirror pod");
                        Ok(())
                    }
                    // Raced with another report; the next one reconciles.
                    Err(StoreError::AlreadyExists(_)) => Ok(()),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    async fn pod_changed(
        &mut self,
        kind: EventKind,
        pod: Arc<Value>,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(pods) = self.pods.as_mut() {
            if kind == EventKind::Deleted {
                pods.remove(&key_of(&pod));
            } else if let Some(before) = pods.insert(key_of(&pod), pod.clone())
                && same_for_kubelet(&before, &pod)
            {
                // Only its status changed, mostly the kubelet's own report
                // written back: the kubelet has this pod already.
                return Ok(());
            }
        }
        if mirror::mirror_hash(&pod).is_some() {
            if kind == EventKind::Deleted {
                let key = (
                    pod["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    pod["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                );
                if let Some(report) = self.statics.get(&key) {
                    self.sync_mirror(report).await?;
                }
            } else if terminating(&pod) {
                self.delete_mirror(&pod).await?;
            }
            return Ok(());
        }
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let sent = match kind {
            EventKind::Deleted => None,
            _ if terminating(&pod) => None,
            _ => Some(self.for_node(&pod).await),
        };
        let Some(client) = self.client().await else {
            return Ok(());
        };
        let result = match kind {
            EventKind::Deleted => client
                .remove_pod(pb::PodRemoval {
                    pod_uid: uid,
                    grace_period_seconds: Some(0),
                })
                .await
                .map(|_| ()),
            _ if terminating(&pod) => client
                .remove_pod(pb::PodRemoval {
                    pod_uid: uid,
                    grace_period_seconds: pod
                        .pointer("/metadata/deletionGracePeriodSeconds")
                        .and_then(Value::as_i64),
                })
                .await
                .map(|_| ()),
            _ => match sent {
                Some(p) => client.assign_pod(assignment(&p)).await.map(|_| ()),
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            if e.code() == tonic::Code::InvalidArgument {
                warn!(node = %self.node, error = %e.message(), "node refused a pod");
            } else {
                self.client = None;
            }
        }
        Ok(())
    }

    async fn reported(&mut self, report: pb::NodeReport) -> Result<(), ActorProcessingErr> {
        let rt = kinds::PODS;
        match report.report {
            Some(pb::node_report::Report::PodStatus(s)) if s.static_pod => {
                self.sync_mirror(&s).await?;
                self.statics
                    .insert((s.namespace.clone(), s.name.clone()), s);
            }
            Some(pb::node_report::Report::PodStatus(s)) => {
                let Ok(status) = serde_json::from_slice::<Value>(&s.status_json) else {
                    return Ok(());
                };
                let node = self.node.clone();
                let _ = self
                    .objects
                    .update(rt, Some(&s.namespace), &s.name, |pod| {
                        // NodeRestriction: a node reports only the pods
                        // bound to it.
                        if pod.pointer("/metadata/uid").and_then(Value::as_str)
                            != Some(s.pod_uid.as_str())
                            || !bound_to(pod, &node)
                            || pod["status"] == status
                        {
                            return false;
                        }
                        pod["status"] = status.clone();
                        true
                    })
                    .await;
            }
            Some(pb::node_report::Report::Event(e)) => {
                self.objects.record(kubelet_event(&self.node, e)).await;
            }
            Some(pb::node_report::Report::PodGone(g)) => {
                let key = (g.namespace.clone(), g.name.clone());
                if self
                    .statics
                    .get(&key)
                    .is_some_and(|r| r.pod_uid == g.pod_uid)
                {
                    self.statics.remove(&key);
                }
                let Ok(pod) = self.objects.get(rt, Some(&g.namespace), &g.name).await else {
                    return Ok(());
                };
                if !bound_to(&pod, &self.node) {
                    warn!(node = %self.node, pod = %format!("{}/{}", g.namespace, g.name), "node reported another node's pod gone; ignored");
                    return Ok(());
                }
                if mirror::mirror_hash(&pod) == Some(g.pod_uid.as_str()) {
                    // The static pod's manifest is gone, so is its mirror.
                    self.delete_mirror(&pod).await?;
                } else if pod.pointer("/metadata/uid").and_then(Value::as_str)
                    == Some(g.pod_uid.as_str())
                    && terminating(&pod)
                {
                    info!(pod = %format!("{}/{}", g.namespace, g.name), node = %self.node, "containers gone; removing the pod");
                    self.objects.delete(rt, Some(&g.namespace), &g.name).await?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Whether `pod` is bound to `node`.
fn bound_to(pod: &Value, node: &str) -> bool {
    pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
}

/// Follows the kubelet's reports, reconnecting forever; every reconnection
/// triggers a full resync.
fn follow_reports(node: String, objects: Objects, me: ActorRef<NodeActorMsg>) {
    tokio::spawn(async move {
        loop {
            if let Some(address) = endpoint(&objects, &node).await
                && let Ok(channel) = kubelet_client::connect(&node, &address).await
                && let Ok(stream) = NodeAgentClient::new(channel)
                    .watch_pods(pb::WatchPodsRequest {})
                    .await
            {
                let _ = me.cast(NodeActorMsg::Resync);
                let mut stream = stream.into_inner();
                while let Some(Ok(report)) = stream.next().await {
                    if me.cast(NodeActorMsg::Reported(Box::new(report))).is_err() {
                        return;
                    }
                }
            }
            if me.get_status() == ractor::ActorStatus::Stopped {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
}

impl Actor for NodeActor {
    type Msg = NodeActorMsg;
    type State = NodeActorState;
    type Arguments = (String, Objects);

    async fn pre_start(
        &self,
        myself: ActorRef<NodeActorMsg>,
        (node, objects): (String, Objects),
    ) -> Result<NodeActorState, ActorProcessingErr> {
        // Pod changes come from the supervisor, which watches pods once for
        // every node: a watch per node would decode each pod change once
        // per node.
        follow_reports(node.clone(), objects.clone(), myself.clone());
        // A safety net: resynchronise now and then (level-triggered).
        myself.send_interval(Duration::from_secs(30), || NodeActorMsg::Resync);
        Ok(NodeActorState {
            node,
            objects,
            client: None,
            statics: HashMap::new(),
            pods: None,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<NodeActorMsg>,
        msg: NodeActorMsg,
        state: &mut NodeActorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeActorMsg::Resync => state.resync().await,
            NodeActorMsg::Snapshot(pods) => {
                state.pods = Some(pods.into_iter().map(|p| (key_of(&p), p)).collect());
                state.resync().await
            }
            NodeActorMsg::PodChanged(kind, pod) => state.pod_changed(kind, pod).await,
            NodeActorMsg::Reported(report) => state.reported(*report).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{kubelet_event, same_for_kubelet};
    use serde_json::json;
    use skiff_proto::node::v1 as pb;

    #[test]
    fn kubelet_events_without_a_pod_are_about_its_node() {
        let event = kubelet_event(
            "worker-1",
            pb::Event {
                r#type: "Warning".into(),
                reason: "MissingClusterDNS".into(),
                message: "kubelet does not have ClusterDNS IP configured".into(),
                ..pb::Event::default()
            },
        );
        assert_eq!(event.object.kind, "Node");
        assert_eq!(event.object.name, "worker-1");
        assert_eq!(event.object.uid, "worker-1");
        assert!(event.object.namespace.is_empty());
        assert!(event.warning);
        let event = kubelet_event(
            "worker-1",
            pb::Event {
                pod_uid: "u".into(),
                namespace: "default".into(),
                pod_name: "web".into(),
                ..pb::Event::default()
            },
        );
        assert_eq!(
            (event.object.kind.as_str(), event.object.name.as_str()),
            ("Pod", "web")
        );
    }

    #[test]
    fn a_status_or_revision_change_is_not_sent_again() {
        let sent = json!({
            "metadata": {"name": "a", "uid": "u", "resourceVersion": "5", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending"}
        });
        let mut reported = sent.clone();
        reported["status"]["phase"] = json!("Running");
        reported["metadata"]["resourceVersion"] = json!("9");
        reported["metadata"]["managedFields"] = json!([{"manager": "skiff"}]);
        assert!(same_for_kubelet(&sent, &reported));
        let mut relabelled = reported.clone();
        relabelled["metadata"]["labels"]["app"] = json!("db");
        assert!(!same_for_kubelet(&sent, &relabelled));
        let mut deleting = reported.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-23T00:00:00Z");
        assert!(!same_for_kubelet(&sent, &deleting));
        let mut ephemeral = reported;
        ephemeral["spec"]["ephemeralContainers"] = json!([{"name": "debug", "image": "i"}]);
        assert!(!same_for_kubelet(&sent, &ephemeral));
    }
}
