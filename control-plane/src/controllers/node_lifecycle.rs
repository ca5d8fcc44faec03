//! Node lifecycle: a node whose kubelet stops posting heartbeats is marked
//! `Ready=Unknown` after the grace period and tainted
//! `node.kubernetes.io/unreachable:NoExecute`; after the eviction timeout its
//! pods are deleted (gracefully: they show `Terminating` until the node
//! confirms or returns), except DaemonSet pods and pods that tolerate the
//! taint. Skiff's lab profile uses 4 s and 4 s (upstream: 50 s and 300 s).
//!
//! Silence is judged by the in-memory [`Liveness`] table the registry
//! records every heartbeat in, not by the stored `lastHeartbeatTime`
//! (written only every status-report interval). A node not heard from
//! since this control plane started is judged by its stored heartbeat
//! time, but never lost before one grace period after the start, which
//! gives its kubelet time to reconnect (upstream's node lifecycle
//! controller likewise starts each node's grace when it first sees it).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{info, warn};

use crate::meta;
use crate::nodes::liveness::Liveness;
use crate::nodes::view::NodeView;
use crate::registry::kinds;
use crate::registry::meta::now;
use crate::registry::objects::Objects;

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
    liveness: Arc<Liveness>,
    view: Arc<NodeView>,
}

/// Whether the node `name`, Ready as far as the store says, has been
/// silent longer than `grace` at `now` (`wall_now` on the wall clock, for
/// the stored heartbeat time `stored`).
pub fn silent(
    liveness: &Liveness,
    name: &str,
    stored: DateTime<Utc>,
    grace: Duration,
    now: tokio::time::Instant,
    wall_now: DateTime<Utc>,
) -> bool {
    if let Some(heard) = liveness.last_heard(name) {
        return now.saturating_duration_since(heard) > grace;
    }
    let stored_age = (wall_now - stored).to_std().unwrap_or(Duration::ZERO);
    now.saturating_duration_since(liveness.started()) > grace && stored_age > grace
}

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn parse(t: &Value) -> Option<DateTime<Utc>> {
    t.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|d| d.with_timezone(&Utc))
}

/// How long a pod stays on an unreachable node, as upstream's taint
/// manager decides it: the shortest `tolerationSeconds` of its tolerations
/// of the `unreachable` NoExecute taint (negative counts as zero), `None`
/// (forever) when one of them has none, and `default` when none matches.
fn eviction_wait(pod: &Value, default: chrono::Duration) -> Option<chrono::Duration> {
    let matching: Vec<&Value> = pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            (t["key"] == UNREACHABLE || (t["key"].is_null() && t["operator"] == "Exists"))
                && (t["effect"].is_null() || t["effect"] == "NoExecute")
        })
        .collect();
    if matching.is_empty() {
        return Some(default);
    }
    let mut shortest: Option<i64> = None;
    for t in matching {
        let secs = t["tolerationSeconds"].as_i64()?;
        shortest = Some(shortest.map_or(secs, |s| s.min(secs)));
    }
    shortest.map(|s| chrono::Duration::seconds(s.max(0)))
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
        let nodes_rt = kinds::NODES;
        let pods_rt = kinds::PODS;
        // From the watch-fed view: listing a thousand nodes from the store
        // twice a second would cost more than the rest of the idle control
        // plane.
        let nodes = match self.view.all() {
            Some(nodes) => nodes,
            None => self
                .objects
                .list(nodes_rt)
                .await?
                .0
                .into_iter()
                .map(Arc::new)
                .collect(),
        };
        let now_t = Utc::now();
        let instant = tokio::time::Instant::now();
        let eviction = chrono::Duration::from_std(self.config.eviction)?;
        let names: HashSet<&str> = nodes
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str())
            .collect();
        self.liveness.retain(|name| names.contains(name));
        for node in nodes {
            let name = meta::name(&node).to_string();
            let ready = node["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .cloned()
                .unwrap_or(Value::Null);
            let Some(heartbeat) = parse(&ready["lastHeartbeatTime"]) else {
                continue;
            };
            if ready["status"] == "True"
                && silent(
                    &self.liveness,
                    &name,
                    heartbeat,
                    self.config.grace,
                    instant,
                    now_t,
                )
            {
                let (liveness, grace) = (&self.liveness, self.config.grace);
                let marked = self
                    .objects
                    .update(nodes_rt, None, &name, |n| {
                        let Some(cs) = n["status"]["conditions"].as_array_mut() else { return false };
                        // The view may lag the store (marked already), and
                        // the node may have spoken since it was judged.
                        let heard_since = liveness.last_heard(&name).is_some_and(|t| {
                            tokio::time::Instant::now().saturating_duration_since(t) <= grace
                        });
                        if heard_since
                            || !cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
                        {
                            return false;
                        }
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
                if marked.is_none() {
                    continue;
                }
                warn!(node = %name, "node stopped posting status: Ready=Unknown");
                self.objects
                    .event(
                        node.as_ref(),
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
                && now_t > since
            {
                let (pods, _) = self.objects.list(pods_rt).await?;
                for pod in pods.iter().filter(|p| {
                    p["spec"]["nodeName"] == json!(name)
                        && p.pointer("/metadata/deletionTimestamp").is_none()
                        && !owned_by_daemonset(p)
                        && eviction_wait(p, eviction).is_some_and(|wait| now_t - since > wait)
                }) {
                    let (ns, pod_name) = (meta::namespace(pod), meta::name(pod));
                    let grace_s = pod["spec"]["terminationGracePeriodSeconds"]
                        .as_i64()
                        .unwrap_or(30);
                    info!(pod = %format!("{ns}/{pod_name}"), node = %name, "evicting pod from unreachable node");
                    self.objects
                        .update(pods_rt, Some(ns), pod_name, |p| {
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
    type Arguments = (Objects, LifecycleConfig, Arc<Liveness>, Arc<NodeView>);

    async fn pre_start(
        &self,
        myself: ActorRef<LifecycleMsg>,
        (objects, config, liveness, view): Self::Arguments,
    ) -> Result<LifecycleState, ActorProcessingErr> {
        myself.send_interval(Duration::from_millis(500), || LifecycleMsg::Check);
        Ok(LifecycleState {
            objects,
            config,
            liveness,
            view,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_secs(4);

    #[test]
    fn pods_wait_their_unreachable_toleration_seconds() {
        let default = chrono::Duration::seconds(4);
        let pod = |tolerations: Value| json!({"spec": {"tolerations": tolerations}});
        assert_eq!(eviction_wait(&pod(json!(null)), default), Some(default));
        let unreachable = |secs: Value| {
            json!({"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                   "tolerationSeconds": secs})
        };
        assert_eq!(
            eviction_wait(&pod(json!([unreachable(json!(300))])), default),
            Some(chrono::Duration::seconds(300))
        );
        assert_eq!(
            eviction_wait(
                &pod(json!([unreachable(json!(300)), unreachable(json!(2))])),
                default
            ),
            Some(chrono::Duration::seconds(2))
        );
        assert_eq!(
            eviction_wait(&pod(json!([unreachable(json!(null))])), default),
            None
        );
        let other = json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists",
            "effect": "NoExecute", "tolerationSeconds": 1});
        assert_eq!(eviction_wait(&pod(json!([other])), default), Some(default));
    }

    fn ago(seconds: i64) -> DateTime<Utc> {
        Utc::now() - chrono::Duration::seconds(seconds)
    }

    #[tokio::test(start_paused = true)]
    async fn a_heard_node_is_judged_by_the_last_heartbeat_in_memory() {
        let liveness = Liveness::new();
        tokio::time::advance(Duration::from_secs(60)).await;
        liveness.heard("n1");
        // The stored heartbeat is old (written every report interval).
        let stored = ago(9);
        let t = tokio::time::Instant::now();
        assert!(!silent(&liveness, "n1", stored, GRACE, t, Utc::now()));
        let later = t + Duration::from_secs(4);
        assert!(!silent(&liveness, "n1", stored, GRACE, later, Utc::now()));
        let later = t + Duration::from_millis(4001);
        assert!(silent(&liveness, "n1", stored, GRACE, later, Utc::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unheard_node_gets_a_grace_period_after_the_start() {
        let liveness = Liveness::new();
        let start = liveness.started();
        // Stored heartbeat an hour old: the control plane was down.
        let stored = ago(3600);
        assert!(!silent(&liveness, "n1", stored, GRACE, start, Utc::now()));
        let t = start + Duration::from_secs(4);
        assert!(!silent(&liveness, "n1", stored, GRACE, t, Utc::now()));
        let t = start + Duration::from_secs(5);
        assert!(silent(&liveness, "n1", stored, GRACE, t, Utc::now()));
        // A fresh stored heartbeat still counts after the start grace.
        assert!(!silent(&liveness, "n1", ago(1), GRACE, t, Utc::now()));
    }

    async fn ready_node(objects: &Objects, heartbeat: DateTime<Utc>) {
        let rt = kinds::NODES;
        let t = heartbeat.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        objects
            .create(
                rt,
                json!({"metadata": {"name": "n1"}, "spec": {}, "status": {"conditions": [
                    {"type": "Ready", "status": "True", "reason": "KubeletReady",
                     "lastHeartbeatTime": t, "lastTransitionTime": t}]}}),
            )
            .await
            .expect("node");
    }

    async fn ready_status(objects: &Objects) -> Value {
        let rt = kinds::NODES;
        let node = objects.get(rt, None, "n1").await.expect("node");
        node["status"]["conditions"][0]["status"].clone()
    }

    /// Node `n1`'s Ready status after `secs` more seconds and a check.
    async fn ready_after(state: &mut LifecycleState, objects: &Objects, secs: u64) -> Value {
        tokio::time::advance(Duration::from_secs(secs)).await;
        state.check().await.expect("check");
        ready_status(objects).await
    }

    fn lifecycle(objects: &Objects, liveness: &Arc<Liveness>) -> LifecycleState {
        LifecycleState {
            objects: objects.clone(),
            config: LifecycleConfig::default(),
            liveness: liveness.clone(),
            // Never synced: the check lists the store.
            view: Arc::new(NodeView::default()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn check_marks_a_node_unknown_once_it_falls_silent() {
        let objects = Objects::in_memory();
        let liveness = Arc::new(Liveness::new());
        tokio::time::advance(Duration::from_secs(30)).await;
        // Stored heartbeat older than the grace: only memory keeps it Ready.
        ready_node(&objects, ago(8)).await;
        let mut state = lifecycle(&objects, &liveness);
        for _ in 0..3 {
            liveness.heard("n1");
            assert_eq!(ready_after(&mut state, &objects, 3).await, "True");
        }
        assert_eq!(ready_after(&mut state, &objects, 2).await, "Unknown");
        let rt = kinds::NODES;
        let node = objects.get(rt, None, "n1").await.expect("node");
        assert!(
            node["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|t| t["key"] == UNREACHABLE && t["effect"] == "NoExecute")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_restart_nodes_are_not_lost_before_one_grace() {
        let objects = Objects::in_memory();
        ready_node(&objects, ago(600)).await;
        let liveness = Arc::new(Liveness::new());
        let mut state = lifecycle(&objects, &liveness);
        state.check().await.expect("check");
        assert_eq!(ready_after(&mut state, &objects, 3).await, "True");
        assert_eq!(ready_after(&mut state, &objects, 2).await, "Unknown");
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_heard_after_the_restart_stays_ready() {
        let objects = Objects::in_memory();
        ready_node(&objects, ago(600)).await;
        let liveness = Arc::new(Liveness::new());
        let mut state = lifecycle(&objects, &liveness);
        tokio::time::advance(Duration::from_secs(2)).await;
        // It reconnects; from then on the table decides, not the store.
        liveness.heard("n1");
        assert_eq!(ready_after(&mut state, &objects, 3).await, "True");
    }
}
