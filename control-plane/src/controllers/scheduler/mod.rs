//! The scheduler: binds each pending pod to a node, as upstream's
//! kube-scheduler does with its default plugins. Filters ([`filters`]):
//! node Ready, NodeUnschedulable, NodeName, TaintToleration, NodeAffinity
//! (`nodeSelector` and required node affinity, [`affinity`]) and
//! NodeResourcesFit (cpu, memory and pod count against allocatable,
//! [`resources`], [`quantity`]). Scores ([`score`]): preferred node
//! affinity, spreading the pod's owner, fewest pods. Writes `spec.nodeName`
//! and the PodScheduled condition, and the `Scheduled` /
//! `FailedScheduling` events with upstream's wording.
//!
//! The actor keeps its view of nodes and pods from watch events
//! ([`cache`]), so placing a pod reads no store, and it binds the pods it
//! placed in one store transaction per round.

pub mod affinity;
pub mod cache;
pub mod filters;
pub mod quantity;
pub mod resources;
pub mod score;

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use self::cache::{Cache, Decision, pod_key};
use self::filters::failure_message;
use super::{object_of, watch_prefix};
use crate::api::internal::Objects;
use crate::api::objects::now;
use crate::api::resources as api_types;
use crate::store::{Event, EventKind};

/// Pods placed per round (one store transaction); the actor reads its
/// mailbox between rounds, so watch events are never far behind.
const ROUND: usize = 256;

/// How often pods that fit nowhere are tried again without a trigger.
const RETRY_UNSCHEDULABLE: Duration = Duration::from_secs(2);

/// Scheduler messages.
#[derive(Debug)]
pub enum SchedulerMsg {
    /// Place waiting pods (one round; another follows if pods remain).
    Schedule,
    /// Retry pods that fit nowhere.
    Retry,
    /// The pod watch (re)started: re-list pods.
    ResyncPods,
    /// The node watch (re)started: re-list nodes.
    ResyncNodes,
    /// A pod changed.
    Pod(Box<Event>),
    /// A node changed.
    Node(Box<Event>),
}

/// The scheduler actor.
pub struct Scheduler;

/// Its state.
pub struct SchedulerState {
    objects: Objects,
    cache: Cache,
    /// A `Schedule` message is in the mailbox.
    pending_wake: bool,
}

/// The object of a store event, with its `resourceVersion`.
fn versioned(event: &Event) -> Option<Value> {
    let mut obj = object_of(event)?;
    obj["metadata"]["resourceVersion"] = json!(event.revision.to_string());
    Some(obj)
}

impl SchedulerState {
    fn wake(&mut self, myself: &ActorRef<SchedulerMsg>) {
        if !self.pending_wake && self.cache.has_active() {
            self.pending_wake = myself.cast(SchedulerMsg::Schedule).is_ok();
        }
    }

    fn after(&mut self, change: cache::Change, myself: &ActorRef<SchedulerMsg>) {
        if change.room {
            self.cache.retry_unschedulable();
        }
        self.wake(myself);
    }

    async fn resync_pods(&mut self) -> Result<(), ActorProcessingErr> {
        let rt = api_types::find("", "v1", "pods").ok_or("pods type")?;
        let (pods, revision) = self.objects.list(rt).await?;
        self.cache.reset_pods(&pods, revision);
        Ok(())
    }

    async fn resync_nodes(&mut self) -> Result<(), ActorProcessingErr> {
        let rt = api_types::find("", "v1", "nodes").ok_or("nodes type")?;
        let (nodes, revision) = self.objects.list(rt).await?;
        self.cache.reset_nodes(&nodes, revision);
        self.cache.retry_unschedulable();
        Ok(())
    }

    /// One round: places up to [`ROUND`] waiting pods against the cache,
    /// then writes their binds in one transaction and the failures.
    async fn schedule_round(&mut self) -> Result<(), ActorProcessingErr> {
        let total = self.cache.node_count();
        let mut binds: Vec<(String, Value, String)> = Vec::new();
        let mut failures: Vec<(String, String)> = Vec::new();
        while binds.len() + failures.len() < ROUND {
            let Some(key) = self.cache.pop_active() else {
                break;
            };
            match self.cache.find_node(&key) {
                None => {}
                Some(Decision::Node(slot, node)) => {
                    let Some(object) = self.cache.pending(&key).map(|p| p.object.clone()) else {
                        continue;
                    };
                    self.cache.assume(&key, slot);
                    binds.push((key, object, node));
                }
                Some(Decision::Unschedulable(diagnosis)) => {
                    let Some(pending) = self.cache.pending(&key) else {
                        continue;
                    };
                    let message = failure_message(total, &pending.info, &diagnosis);
                    failures.push((key, message));
                }
            }
        }
        if !binds.is_empty() {
            self.bind(binds).await?;
        }
        for (key, message) in failures {
            self.report_unschedulable(&key, message).await?;
        }
        Ok(())
    }

    async fn bind(
        &mut self,
        binds: Vec<(String, Value, String)>,
    ) -> Result<(), ActorProcessingErr> {
        let keys: Vec<String> = binds.iter().map(|(k, ..)| k.clone()).collect();
        let nodes: Vec<String> = binds.iter().map(|(_, _, n)| n.clone()).collect();
        let request = binds
            .into_iter()
            .map(|(_, pod, node)| (pod, node))
            .collect();
        // The same path as the `pods/binding` subresource, batched.
        let results = match self.objects.bind_all(request).await {
            Ok(r) => r,
            Err(e) => {
                for key in &keys {
                    self.cache.forget(key);
                }
                return Err(e.into());
            }
        };
        let mut scheduled = Vec::with_capacity(results.len());
        for ((key, node), result) in keys.iter().zip(&nodes).zip(results) {
            match result {
                Ok(pod) => {
                    let revision = pod["metadata"]["resourceVersion"]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    self.cache.confirm(key, revision);
                    debug!(pod = %key, %node, "scheduled");
                    scheduled.push((pod, node, key));
                }
                Err(why) => {
                    debug!(pod = %key, %node, %why, "bind failed");
                    self.cache.forget(key);
                }
            }
        }
        if !scheduled.is_empty() {
            info!(pods = scheduled.len(), "scheduled");
            let events: Vec<(&Value, &str, String)> = scheduled
                .iter()
                .map(|(pod, node, key)| {
                    (
                        pod,
                        "Scheduled",
                        format!("Successfully assigned {key} to {node}"),
                    )
                })
                .collect();
            self.objects.events(&events, "default-scheduler").await;
        }
        Ok(())
    }

    async fn report_unschedulable(
        &mut self,
        key: &str,
        message: String,
    ) -> Result<(), ActorProcessingErr> {
        let Some(pending) = self.cache.pending(key) else {
            return Ok(());
        };
        // Already said: no write, no new event (upstream also dedups them).
        if pending.reported.as_deref() == Some(message.as_str()) {
            self.cache.mark_unschedulable(key, None);
            return Ok(());
        }
        let pods_rt = api_types::find("", "v1", "pods").ok_or("pods type")?;
        let ns = pending.object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        let name = pending.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let changed = match self
            .objects
            .update(pods_rt, Some(&ns), &name, |p| {
                p["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
                    && set_condition(
                        p,
                        "PodScheduled",
                        "False",
                        Some("Unschedulable"),
                        Some(&message),
                    )
            })
            .await
        {
            Ok(changed) => changed,
            // Deleted meanwhile: its watch event follows.
            Err(crate::store::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        if let Some(p) = &changed {
            debug!(pod = %key, %message, "unschedulable");
            self.objects
                .event(p, true, "FailedScheduling", &message, "default-scheduler")
                .await;
        }
        self.cache.mark_unschedulable(key, changed);
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
        let me = myself.clone();
        watch_prefix(
            objects.store().clone(),
            "/registry/core/nodes/".into(),
            move |event| {
                let msg = match event {
                    None => SchedulerMsg::ResyncNodes,
                    Some(e) => SchedulerMsg::Node(Box::new(e)),
                };
                me.cast(msg).is_ok()
            },
        );
        let me = myself.clone();
        watch_prefix(
            objects.store().clone(),
            "/registry/core/pods/".into(),
            move |event| {
                let msg = match event {
                    None => SchedulerMsg::ResyncPods,
                    Some(e) => SchedulerMsg::Pod(Box::new(e)),
                };
                me.cast(msg).is_ok()
            },
        );
        myself.send_interval(RETRY_UNSCHEDULABLE, || SchedulerMsg::Retry);
        Ok(SchedulerState {
            objects,
            cache: Cache::default(),
            pending_wake: false,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SchedulerMsg>,
        msg: SchedulerMsg,
        state: &mut SchedulerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SchedulerMsg::Schedule => {
                state.pending_wake = false;
                state.schedule_round().await?;
            }
            SchedulerMsg::Retry => state.cache.retry_unschedulable(),
            SchedulerMsg::ResyncPods => state.resync_pods().await?,
            SchedulerMsg::ResyncNodes => state.resync_nodes().await?,
            SchedulerMsg::Pod(event) => {
                let object = versioned(&event);
                let key = object.as_ref().map(pod_key).unwrap_or_default();
                let live = (event.kind != EventKind::Deleted)
                    .then_some(())
                    .and(object.as_ref());
                let change = state.cache.apply_pod(&key, event.revision, live);
                state.after(change, &myself);
                return Ok(());
            }
            SchedulerMsg::Node(event) => {
                let Some(object) = versioned(&event) else {
                    warn!(key = %event.key, "undecodable node");
                    return Ok(());
                };
                let name = object["metadata"]["name"].as_str().unwrap_or_default();
                let live = (event.kind != EventKind::Deleted).then_some(&object);
                let change = state.cache.apply_node(name, event.revision, live);
                state.after(change, &myself);
                return Ok(());
            }
        }
        state.wake(&myself);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
