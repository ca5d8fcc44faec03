//! Node lifecycle: a node whose kubelet stops posting heartbeats is marked
//! `Ready=Unknown` after the grace period and tainted
//! `node.kubernetes.io/unreachable:NoExecute`; after the eviction timeout its
//! pods are deleted (gracefully: they show `Terminating` until the node
//! confirms or returns), except DaemonSet pods and pods that tolerate the
//! taint. Skiff's lab profile uses 4 s and 4 s (upstream: 50 s and 300 s).

use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::api::internal::Objects;
use crate::api::objects::now;
use crate::api::resources;

/// Timings of the node lifecycle.
#[derive(Debug, Clone, Copy)]
pub struct LifecycleConfig {
    /// Silence after which a node is `Ready=Unknown`.
    pub grace: Duration,
    /// Time a node stays unreachable before its pods are evicted.
    pub eviction: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(4),
            eviction: Duration::from_secs(4),
        }
    }
}

/// Messages: just the periodic check.
#[derive(Debug)]
pub enum LifecycleMsg {
    /// Look at every node.
    Check,
}

/// The node lifecycle actor.
pub struct NodeLifecycle;

/// Its state.
pub struct LifecycleState {
    objects: Objects,
    config: LifecycleConfig,
}

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn parse(t: &Value) -> Option<DateTime<Utc>> {
    t.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

fn tolerates_unreachable_forever(pod: &Value) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            (t["key"] == UNREACHABLE || (t["key"].is_null() && t["operator"] == "Exists"))
                && (t["effect"].is_null() || t["effect"] == "NoExecute")
                && t["tolerationSeconds"].is_null()
        })
}

fn owned_by_daemonset(pod: &Value) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| o["kind"] == "DaemonSet")
}

impl LifecycleState {
    async fn check(&mut self) -> Result<(), ActorProcessingErr> {
        let nodes_rt = resources::find("", "v1", "nodes").ok_or("nodes type")?;
        let pods_rt = resources::find("", "v1", "pods").ok_or("pods type")?;
        let (nodes, _) = self.objects.list(nodes_rt).await?;
        let now_t = Utc::now();
        let grace = chrono::Duration::from_std(self.config.grace)?;
        let eviction = chrono::Duration::from_std(self.config.eviction)?;
        for node in nodes {
            let name = node["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let ready = node["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .cloned()
                .unwrap_or(Value::Null);
            let Some(heartbeat) = parse(&ready["lastHeartbeatTime"]) else {
                continue;
            };
            if ready["status"] == "True" && now_t - heartbeat > grace {
                warn!(node = %name, "node stopped posting status: Ready=Unknown");
                self.objects
                    .update(nodes_rt, None, &name, |n| {
                        let Some(cs) = n["status"]["conditions"].as_array_mut() else { return false };
                        for c in cs.iter_mut() {
                            c["status"] = json!("Unknown");
                            c["reason"] = json!("NodeStatusUnknown");
                            c["message"] = json!("Kubelet stopped posting node status.");
                            c["lastTransitionTime"] = json!(now());
                        }
                        let taints = n["spec"]["taints"].as_array().cloned().unwrap_or_default();
                        if !taints.iter().any(|t| t["key"] == UNREACHABLE) {
                            let mut taints = taints;
                            taints.push(json!({"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": now()}));
                            taints.push(json!({"key": UNREACHABLE, "effect": "NoSchedule"}));
                            n["spec"]["taints"] = json!(taints);
                        }
                        true
                    })
                    .await?;
                self.objects
                    .event(
                        &node,
                        false,
                        "NodeNotReady",
                        &format!("Node {name} status is now: NodeNotReady"),
                        "node-controller",
                    )
                    .await;
                continue;
            }
            let unreachable_since = (ready["status"] != "True")
                .then(|| parse(&ready["lastTransitionTime"]))
                .flatten();
            if let Some(since) = unreachable_since
                && now_t - since > eviction
            {
                let (pods, _) = self.objects.list(pods_rt).await?;
                for pod in pods.iter().filter(|p| {
                    p["spec"]["nodeName"] == json!(name)
                        && p.pointer("/metadata/deletionTimestamp").is_none()
                        && !owned_by_daemonset(p)
                        && !tolerates_unreachable_forever(p)
                }) {
                    let ns = pod["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("default")
                        .to_string();
                    let pod_name = pod["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    let grace_s = pod["spec"]["terminationGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(30);
                    info!(pod = %format!("{ns}/{pod_name}"), node = %name, "evicting pod from unreachable node");
                    self.objects
                        .update(pods_rt, Some(&ns), &pod_name, |p| {
                            if p.pointer("/metadata/deletionTimestamp").is_some() {
                                return false;
                            }
                            let deadline = Utc::now() + chrono::Duration::seconds(grace_s);
                            p["metadata"]["deletionTimestamp"] =
                                json!(deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
                            p["metadata"]["deletionGracePeriodSeconds"] = json!(grace_s);
                            true
                        })
                        .await?;
                    self.objects
                        .event(
                            pod,
                            false,
                            "TaintManagerEviction",
                            &format!("Marking for deletion Pod {ns}/{pod_name}"),
                            "taint-eviction-controller",
                        )
                        .await;
                }
            }
        }
        Ok(())
    }
}

impl Actor for NodeLifecycle {
    type Msg = LifecycleMsg;
    type State = LifecycleState;
    type Arguments = (Objects, LifecycleConfig);

    async fn pre_start(
        &self,
        myself: ActorRef<LifecycleMsg>,
        (objects, config): (Objects, LifecycleConfig),
    ) -> Result<LifecycleState, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(500), || LifecycleMsg::Check);
        Ok(LifecycleState { objects, config })
    }

    async fn handle(
        &self,
        _myself: ActorRef<LifecycleMsg>,
        msg: LifecycleMsg,
        state: &mut LifecycleState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            LifecycleMsg::Check => state.check().await,
        }
    }
}
