//! One actor per registered node. It pushes the pods bound to the node to
//! its kubelet over gRPC (the full set on every (re)connection, then
//! changes), removes pods being deleted with their grace period, and writes
//! back what the kubelet reports: pod status, events, and — once the
//! kubelet confirms the containers are gone — the final removal of the pod.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_agent_client::NodeAgentClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tracing::{debug, info, warn};

use super::{object_of, watch_prefix};
use crate::api::events::{InvolvedObject, NewEvent};
use crate::api::internal::Objects;
use crate::api::resources;
use crate::store::EventKind;

/// Messages of a node actor.
#[derive(Debug)]
pub enum NodeActorMsg {
    /// Push the node's whole desired pod set.
    Resync,
    /// A pod bound to this node changed (`None` object: deleted).
    PodChanged(EventKind, Box<Value>),
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
}

fn pods_rt() -> Result<&'static resources::ResourceType, ActorProcessingErr> {
    Ok(resources::find("", "v1", "pods").ok_or("pods type")?)
}

async fn endpoint(objects: &Objects, node: &str) -> Option<String> {
    let rt = resources::find("", "v1", "nodes")?;
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
    Some(format!("http://{address}:{port}"))
}

fn assignment(pod: &Value) -> pb::PodAssignment {
    let mut pod = pod.clone();
    if let Some(o) = pod.as_object_mut() {
        o.remove("status");
    }
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
        pod_json: serde_json::to_vec(&pod).unwrap_or_default(),
    }
}

/// A kubelet's report as an Event, sourced like upstream's kubelet events
/// (component `kubelet`, host the node) and timed when the node saw it.
fn kubelet_event(node: &str, e: pb::Event) -> NewEvent {
    NewEvent {
        object: InvolvedObject {
            kind: "Pod".into(),
            api_version: "v1".into(),
            namespace: e.namespace,
            name: e.pod_name,
            uid: e.pod_uid,
            field_path: e.field_path,
        },
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
    async fn client(&mut self) -> Option<&mut NodeAgentClient<Channel>> {
        if self.client.is_none()
            && let Some(url) = endpoint(&self.objects, &self.node).await
            && let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(2), NodeAgentClient::connect(url)).await
        {
            self.client = Some(c);
        }
        self.client.as_mut()
    }

    async fn resync(&mut self) -> Result<(), ActorProcessingErr> {
        let (pods, _) = self.objects.list(pods_rt()?).await?;
        let mine: Vec<&Value> = pods
            .iter()
            .filter(|p| p["spec"]["nodeName"] == json!(self.node))
            .collect();
        let set = pb::PodSet {
            pods: mine
                .iter()
                .filter(|p| !terminating(p))
                .map(|p| assignment(p))
                .collect(),
        };
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

    async fn pod_changed(&mut self, kind: EventKind, pod: Value) -> Result<(), ActorProcessingErr> {
        let uid = pod
            .pointer("/metadata/uid")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
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
            _ => client.assign_pod(assignment(&pod)).await.map(|_| ()),
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
        let rt = pods_rt()?;
        match report.report {
            Some(pb::node_report::Report::PodStatus(s)) if !s.static_pod => {
                let Ok(status) = serde_json::from_slice::<Value>(&s.status_json) else {
                    return Ok(());
                };
                let _ = self
                    .objects
                    .update(rt, Some(&s.namespace), &s.name, |pod| {
                        if pod.pointer("/metadata/uid").and_then(Value::as_str)
                            != Some(s.pod_uid.as_str())
                            || pod["status"] == status
                        {
                            return false;
                        }
                        pod["status"] = status.clone();
                        true
                    })
                    .await;
            }
            Some(pb::node_report::Report::Event(e)) if !e.pod_uid.is_empty() => {
                self.objects.record(kubelet_event(&self.node, e)).await;
            }
            Some(pb::node_report::Report::PodGone(g)) => {
                if let Ok(pod) = self.objects.get(rt, Some(&g.namespace), &g.name).await
                    && pod.pointer("/metadata/uid").and_then(Value::as_str)
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

/// Follows the kubelet's reports, reconnecting forever; every reconnection
/// triggers a full resync.
fn follow_reports(node: String, objects: Objects, me: ActorRef<NodeActorMsg>) {
    tokio::spawn(async move {
        loop {
            if let Some(url) = endpoint(&objects, &node).await
                && let Ok(mut client) = NodeAgentClient::connect(url).await
                && let Ok(stream) = client.watch_pods(pb::WatchPodsRequest {}).await
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
        let me = myself.clone();
        let name = node.clone();
        watch_prefix(
            objects.store().clone(),
            "/registry/core/pods/".into(),
            move |event| {
                let msg = match event {
                    None => NodeActorMsg::Resync,
                    Some(e) => match object_of(&e) {
                        Some(pod) if pod["spec"]["nodeName"] == json!(name) => {
                            NodeActorMsg::PodChanged(e.kind, Box::new(pod))
                        }
                        _ => return true,
                    },
                };
                me.cast(msg).is_ok()
            },
        );
        follow_reports(node.clone(), objects.clone(), myself.clone());
        // A safety net: resynchronise now and then (level-triggered).
        myself.send_interval(Duration::from_secs(30), || NodeActorMsg::Resync);
        Ok(NodeActorState {
            node,
            objects,
            client: None,
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
            NodeActorMsg::PodChanged(kind, pod) => state.pod_changed(kind, *pod).await,
            NodeActorMsg::Reported(report) => state.reported(*report).await,
        }
    }
}
