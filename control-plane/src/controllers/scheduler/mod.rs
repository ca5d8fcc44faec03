//! The scheduler: binds each pending pod to a node. Filters (node Ready and
//! schedulable, `nodeName`, `nodeSelector`, NoSchedule/NoExecute taints vs
//! tolerations, 110 pods per node), then scores (fewest pods, spreading pods
//! of the same owner). Writes `spec.nodeName` and the PodScheduled
//! condition, and the `Scheduled` / `FailedScheduling` events with
//! upstream's wording.

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{debug, info};

use super::{object_of, watch_prefix};
use crate::api::internal::Objects;
use crate::api::objects::now;
use crate::api::resources;

/// Pods a node takes at most (upstream's default `maxPods`).
pub const MAX_PODS: usize = 110;

/// Scheduler messages.
#[derive(Debug)]
pub enum SchedulerMsg {
    /// Pods or nodes changed: look at every pending pod.
    Schedule,
}

/// The scheduler actor.
pub struct Scheduler;

/// Its state.
pub struct SchedulerState {
    objects: Objects,
    pending_wake: bool,
}

fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

fn tolerates(pod: &Value, taint: &Value) -> bool {
    pod["spec"]["tolerations"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|t| {
            let key_ok = t["key"].is_null() || t["key"] == taint["key"];
            let op_exists = t["operator"] == "Exists";
            let value_ok = op_exists
                || t["value"] == taint["value"]
                || (t["value"].is_null() && taint["value"].is_null());
            let effect_ok = t["effect"].is_null() || t["effect"] == taint["effect"];
            (key_ok || (op_exists && t["key"].is_null())) && value_ok && effect_ok
        })
}

/// Why `node` cannot take `pod`, in upstream's words, or `None` if it can.
fn unfit(pod: &Value, node: &Value, pods_on_node: usize) -> Option<String> {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    if !node_ready(node) {
        return Some("node(s) were not ready".into());
    }
    if node["spec"]["unschedulable"] == true {
        return Some("node(s) were unschedulable".into());
    }
    if let Some(wanted) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
        && wanted != name
    {
        return Some("node(s) didn't match the requested node name".into());
    }
    if let Some(selector) = pod["spec"]["nodeSelector"].as_object() {
        let labels = &node["metadata"]["labels"];
        if selector.iter().any(|(k, v)| labels.get(k) != Some(v)) {
            return Some("node(s) didn't match Pod's node affinity/selector".into());
        }
    }
    for taint in node["spec"]["taints"].as_array().into_iter().flatten() {
        let effect = taint["effect"].as_str().unwrap_or_default();
        if (effect == "NoSchedule" || effect == "NoExecute") && !tolerates(pod, taint) {
            return Some(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint["key"].as_str().unwrap_or_default(),
                taint["value"].as_str().unwrap_or_default()
            ));
        }
    }
    if pods_on_node >= MAX_PODS {
        return Some("Too many pods".into());
    }
    None
}

/// The upstream FailedScheduling message: `0/3 nodes are available: 2 node(s)
/// didn't match Pod's node affinity/selector, 1 node(s) were not ready.`
fn failure_message(total: usize, reasons: &HashMap<String, usize>) -> String {
    let mut parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    if parts.is_empty() {
        format!("0/{total} nodes are available.")
    } else {
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    }
}

impl SchedulerState {
    async fn schedule_all(&mut self) -> Result<(), ActorProcessingErr> {
        let pods_rt = resources::find("", "v1", "pods").ok_or("pods type")?;
        let nodes_rt = resources::find("", "v1", "nodes").ok_or("nodes type")?;
        let (pods, _) = self.objects.list(pods_rt).await?;
        let (nodes, _) = self.objects.list(nodes_rt).await?;
        // One pass over pods counts them per node and per owner: no per-pod scan.
        let mut per_node: HashMap<String, usize> = HashMap::new();
        let mut per_owner_node: HashMap<(String, String), usize> = HashMap::new();
        for p in &pods {
            if let Some(n) = p["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                *per_node.entry(n.to_string()).or_default() += 1;
                if let Some(owner) = p
                    .pointer("/metadata/ownerReferences/0/uid")
                    .and_then(Value::as_str)
                {
                    *per_owner_node
                        .entry((owner.to_string(), n.to_string()))
                        .or_default() += 1;
                }
            }
        }
        for pod in pods.iter().filter(|p| {
            p["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
                && p.pointer("/metadata/deletionTimestamp").is_none()
                && p["spec"]["schedulerName"]
                    .as_str()
                    .is_none_or(|s| s == "default-scheduler")
        }) {
            let mut reasons: HashMap<String, usize> = HashMap::new();
            let owner = pod
                .pointer("/metadata/ownerReferences/0/uid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let mut best: Option<(usize, usize, String)> = None;
            for node in &nodes {
                let name = node["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let count = per_node.get(&name).copied().unwrap_or(0);
                match unfit(pod, node, count) {
                    Some(reason) => *reasons.entry(reason).or_default() += 1,
                    None => {
                        let spread = per_owner_node
                            .get(&(owner.to_string(), name.clone()))
                            .copied()
                            .unwrap_or(0);
                        let score = (spread, count, name);
                        if best.as_ref().is_none_or(|b| score < *b) {
                            best = Some(score);
                        }
                    }
                }
            }
            let ns = pod["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let name = pod["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match best {
                Some((_, _, node)) => {
                    // The same path as the `pods/binding` subresource.
                    let bound = self.objects.bind(&ns, &name, &node).await?.ok();
                    if let Some(bound) = bound {
                        *per_node.entry(node.clone()).or_default() += 1;
                        if !owner.is_empty() {
                            *per_owner_node
                                .entry((owner.to_string(), node.clone()))
                                .or_default() += 1;
                        }
                        info!(pod = %format!("{ns}/{name}"), %node, "scheduled");
                        self.objects
                            .event(
                                &bound,
                                false,
                                "Scheduled",
                                &format!("Successfully assigned {ns}/{name} to {node}"),
                                "default-scheduler",
                            )
                            .await;
                    }
                }
                None => {
                    let message = failure_message(nodes.len(), &reasons);
                    let changed = self
                        .objects
                        .update(pods_rt, Some(&ns), &name, |p| {
                            set_condition(
                                p,
                                "PodScheduled",
                                "False",
                                Some("Unschedulable"),
                                Some(&message),
                            )
                        })
                        .await?;
                    if let Some(p) = changed {
                        debug!(pod = %format!("{ns}/{name}"), %message, "unschedulable");
                        self.objects
                            .event(&p, true, "FailedScheduling", &message, "default-scheduler")
                            .await;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Sets a pod condition; `false` if it was already so (nothing to write).
pub fn set_condition(
    pod: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> bool {
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(list) = pod["status"]["conditions"].as_array_mut() else {
        return false;
    };
    let wanted = json!({"type": kind, "status": status, "reason": reason, "message": message, "lastProbeTime": null, "lastTransitionTime": now()});
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(c)
            if c["status"] == status
                && c["reason"] == wanted["reason"]
                && c["message"] == wanted["message"] =>
        {
            false
        }
        Some(c) => {
            *c = wanted;
            true
        }
        None => {
            list.push(wanted);
            true
        }
    }
}

impl Actor for Scheduler {
    type Msg = SchedulerMsg;
    type State = SchedulerState;
    type Arguments = Objects;

    async fn pre_start(
        &self,
        myself: ActorRef<SchedulerMsg>,
        objects: Objects,
    ) -> Result<SchedulerState, ActorProcessingErr> {
        for prefix in ["/registry/core/pods/", "/registry/core/nodes/"] {
            let me = myself.clone();
            watch_prefix(objects.store().clone(), prefix.to_string(), move |event| {
                // Coalesced: the actor looks at every pending pod anyway.
                let relevant = event.as_ref().and_then(object_of).is_none_or(|o| {
                    o["kind"] == "Node" || o["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
                });
                if relevant {
                    return me.cast(SchedulerMsg::Schedule).is_ok();
                }
                true
            });
        }
        // Periodic retry for pods that found no node.
        myself.send_interval(Duration::from_secs(2), || SchedulerMsg::Schedule);
        Ok(SchedulerState {
            objects,
            pending_wake: false,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Schedule => {
                state.pending_wake = false;
                state.schedule_all().await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, labels: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {},
               "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}]}})
    }

    #[test]
    fn filters_explain_themselves_like_upstream() {
        let pod = json!({"spec": {"nodeSelector": {"disk": "ssd"}}});
        assert_eq!(
            unfit(&pod, &node("a", true, json!({"disk": "ssd"})), 0),
            None
        );
        assert_eq!(
            unfit(&pod, &node("b", true, json!({})), 0).as_deref(),
            Some("node(s) didn't match Pod's node affinity/selector")
        );
        assert_eq!(
            unfit(&pod, &node("c", false, json!({"disk": "ssd"})), 0).as_deref(),
            Some("node(s) were not ready")
        );
        let mut tainted = node("d", true, json!({"disk": "ssd"}));
        tainted["spec"]["taints"] =
            json!([{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]);
        assert!(
            unfit(&pod, &tainted, 0)
                .is_some_and(|r| r.starts_with("node(s) had untolerated taint"))
        );
        let mut tolerant = pod.clone();
        tolerant["spec"]["tolerations"] = json!([{"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}]);
        assert_eq!(unfit(&tolerant, &tainted, 0), None);
        assert_eq!(
            unfit(&pod, &node("a", true, json!({"disk": "ssd"})), MAX_PODS).as_deref(),
            Some("Too many pods")
        );
        let reasons = HashMap::from([
            ("node(s) were not ready".to_string(), 1),
            (
                "node(s) didn't match Pod's node affinity/selector".to_string(),
                2,
            ),
        ]);
        assert_eq!(
            failure_message(3, &reasons),
            "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) didn't match Pod's node affinity/selector."
        );
    }
}
