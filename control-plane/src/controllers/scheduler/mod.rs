//! The scheduler: binds each pending pod to a node, as upstream's
//! kube-scheduler does with its default plugins. Filters ([`filters`]):
//! node Ready, NodeUnschedulable, NodeName, TaintToleration, NodeAffinity
//! (`nodeSelector` and required node affinity, [`affinity`]) and
//! NodeResourcesFit (cpu, memory and pod count against allocatable,
//! [`resources`], [`quantity`]) and VolumeBinding (a pod's claims,
//! [`volumes`]: bound volumes' node affinity; claims waiting for their
//! first consumer are provisioned on the chosen node before the bind);
//! in clusters of over 100 nodes only as
//! many nodes as upstream's adaptive `percentageOfNodesToScore` asks.
//! Scores ([`score`]): preferred node
//! affinity, spreading the pod's owner, fewest pods. Writes `spec.nodeName`
//! and the PodScheduled condition, and the `Scheduled` /
//! `FailedScheduling` events with upstream's wording.
//!
//! The actor keeps its view of nodes and pods from watch events
//! ([`cache`]), so placing a pod reads no store (but for the claims of a
//! pod that has some), and it binds the pods it
//! placed in one store transaction per round. As upstream splits the
//! scheduling cycle from the binding cycle, the bind of a round (and its
//! events) is written by a task of its own while the actor places the next
//! round against the cache, where the pods are already counted (assumed);
//! the task reports back and the actor confirms or forgets them.

pub mod cache;
pub mod filters;
pub mod resources;
pub mod score;
pub mod volumes;

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use self::cache::{Cache, Decision, pod_key};
use self::filters::{failure_message, prefilter_failure_message};
use self::volumes::Check;
use super::{object_of, watch_for};
use crate::registry::kinds;
use crate::registry::kinds::pod::set_condition;
use crate::registry::objects::Objects;
use crate::store::{Event, EventKind, StoreError};
use crate::volumes::provision;

/// Pods placed per round (one store transaction); the actor reads its
/// mailbox between rounds, so watch events are never far behind.
const ROUND: usize = 256;

/// Rounds whose binds may be in flight at once; the actor places no more
/// until one reports back, so a slow store holds back placing instead of
/// piling up assumed pods.
const BINDS_IN_FLIGHT: usize = 4;

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
    /// A round's binds were written (or not).
    Bound(Box<BindOutcome>),
}

/// What the bind task of a round reports: per pod (`namespace/name`,
/// node), the revision of its bind or why it could not be bound; or the
/// store's failure for the whole round.
#[derive(Debug)]
pub struct BindOutcome {
    pods: Vec<(String, String)>,
    results: Result<Vec<Result<u64, String>>, StoreError>,
}

/// The scheduler actor.
pub struct Scheduler;

/// The runtime of the scheduler's own thread, made on first use; `None` if
/// the thread could not be started.
fn own_runtime() -> Option<tokio::runtime::Handle> {
    static RUNTIME: std::sync::OnceLock<Option<tokio::runtime::Handle>> =
        std::sync::OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            let handle = runtime.handle().clone();
            std::thread::Builder::new()
                .name("scheduler".into())
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .ok()?;
            Some(handle)
        })
        .clone()
}

impl Scheduler {
    /// Starts the scheduler under `supervisor` on a thread of its own, as
    /// kube-scheduler runs in a process of its own: in the control plane's
    /// runtime it took turns with a thousand node actors and the API, so
    /// a burst of kubelet reports slowed every scheduling round. Its bind
    /// tasks and watches run on that thread too.
    pub async fn spawn_on_own_thread(
        objects: Objects,
        supervisor: ractor::ActorCell,
    ) -> Result<ActorRef<SchedulerMsg>, ActorProcessingErr> {
        let spawn = async move {
            Actor::spawn_linked(None, Scheduler, objects, supervisor)
                .await
                .map(|(scheduler, _)| scheduler)
        };
        Ok(match own_runtime() {
            Some(runtime) => runtime.spawn(spawn).await??,
            None => spawn.await?,
        })
    }
}

/// Its state.
pub struct SchedulerState {
    objects: Objects,
    cache: Cache,
    /// A `Schedule` message is in the mailbox.
    pending_wake: bool,
    /// Rounds whose bind tasks have not reported yet.
    binds_in_flight: usize,
    /// Store key prefix of pods (`namespace/name` follows).
    pods_prefix: String,
}

/// The object of a store event, with its `resourceVersion`.
fn versioned(event: &Event) -> Option<Value> {
    let mut obj = object_of(event)?;
    obj["metadata"]["resourceVersion"] = json!(event.revision.to_string());
    Some(obj)
}

impl SchedulerState {
    fn wake(&mut self, myself: &ActorRef<SchedulerMsg>) {
        // A round starts alongside a bind in flight only with a full round
        // waiting: otherwise the pods arriving meanwhile are better bound
        // together when it lands than each in a transaction of its own.
        let room = self.binds_in_flight == 0
            || (self.binds_in_flight < BINDS_IN_FLIGHT && self.cache.active_len() >= ROUND);
        if !self.pending_wake && room && self.cache.synced() && self.cache.has_active() {
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
        let rt = kinds::PODS;
        let (pods, revision) = self.objects.list(rt).await?;
        self.cache.reset_pods_owned(pods, revision);
        Ok(())
    }

    async fn resync_nodes(&mut self) -> Result<(), ActorProcessingErr> {
        let rt = kinds::NODES;
        let (nodes, revision) = self.objects.list(rt).await?;
        self.cache.reset_nodes(&nodes, revision);
        self.cache.retry_unschedulable();
        Ok(())
    }

    /// One round: places up to [`ROUND`] waiting pods against the cache,
    /// then writes their binds in one transaction and the failures.
    async fn schedule_round(
        &mut self,
        myself: &ActorRef<SchedulerMsg>,
    ) -> Result<(), ActorProcessingErr> {
        let total = self.cache.node_count();
        let mut binds: Vec<(String, Value, String)> = Vec::new();
        let mut provisions: HashMap<String, Vec<String>> = HashMap::new();
        let mut failures: Vec<(String, String)> = Vec::new();
        while binds.len() + failures.len() < ROUND {
            let Some(key) = self.cache.pop_active() else {
                break;
            };
            // VolumeBinding's pre-filter reads the store, for pods with claims only.
            let check = match self.cache.pending(&key) {
                Some(p) if volumes::has_claims(&p.object) => {
                    Some(volumes::check(&self.objects, &p.object).await?)
                }
                _ => None,
            };
            let fit = match check {
                Some(Check::Unresolvable(why)) => {
                    if let Some(pending) = self.cache.pending(&key) {
                        let message = prefilter_failure_message(total, &pending.info, &why);
                        failures.push((key, message));
                    }
                    continue;
                }
                Some(Check::Fit(fit)) => Some(fit),
                None => None,
            };
            match self.cache.find_node_for(&key, fit.as_ref()) {
                None => {}
                Some(Decision::Node(slot, node)) => {
                    let Some(object) = self.cache.pending(&key).map(|p| p.object.clone()) else {
                        continue;
                    };
                    self.cache.assume(&key, slot);
                    if let Some(fit) = fit.filter(|f| !f.provision.is_empty()) {
                        provisions.insert(key.clone(), fit.provision);
                    }
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
            self.bind(binds, provisions, myself);
        }
        for (key, message) in failures {
            self.report_unschedulable(&key, message).await?;
        }
        Ok(())
    }

    /// Starts the bind task of a round: one transaction for the binds
    /// (the same path as the `pods/binding` subresource, batched), the
    /// outcome sent back to the actor, then the `Scheduled` events.
    fn bind(
        &mut self,
        binds: Vec<(String, Value, String)>,
        provisions: HashMap<String, Vec<String>>,
        myself: &ActorRef<SchedulerMsg>,
    ) {
        let pods: Vec<(String, String)> = binds
            .iter()
            .map(|(key, _, node)| (key.clone(), node.clone()))
            .collect();
        let objects = self.objects.clone();
        let myself = myself.clone();
        self.binds_in_flight += 1;
        tokio::spawn(async move {
            let refused = pre_bind(&objects, &binds, &provisions).await;
            let request = binds
                .into_iter()
                .filter(|(key, _, _)| !refused.contains_key(key))
                .map(|(_, pod, node)| (pod, node))
                .collect();
            let written = objects.bind_all(request).await.map(|results| {
                if refused.is_empty() {
                    return results;
                }
                // Back in the round's order, with the refused pods' reasons.
                let mut results = results.into_iter();
                pods.iter()
                    .map(|(key, _)| match refused.get(key) {
                        Some(why) => Err(why.clone()),
                        None => results.next().unwrap_or_else(|| Err("not bound".into())),
                    })
                    .collect::<Vec<_>>()
            });
            let results = written.as_ref().map(|results| {
                results
                    .iter()
                    .map(|r| match r {
                        Ok(pod) => Ok(pod["metadata"]["resourceVersion"]
                            .as_str()
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0)),
                        Err(why) => Err(why.clone()),
                    })
                    .collect()
            });
            let events: Vec<(&Value, &str, String)> = match &written {
                Ok(results) => pods
                    .iter()
                    .zip(results)
                    .filter_map(|((key, node), r)| {
                        r.as_ref().ok().map(|pod| {
                            (
                                pod,
                                "Scheduled",
                                format!("Successfully assigned {key} to {node}"),
                            )
                        })
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            let outcome = BindOutcome {
                pods: pods.clone(),
                results: results.map_err(Clone::clone),
            };
            // Reported before the events are written: confirming the pods
            // should not wait for a best-effort write.
            if myself.cast(SchedulerMsg::Bound(Box::new(outcome))).is_err() {
                return;
            }
            if !events.is_empty() {
                objects.events(&events, "default-scheduler").await;
            }
        });
    }

    /// A bind task reported: bound pods are confirmed, the others wait
    /// again. A store failure fails the actor, which is restarted and
    /// rebuilds from the store.
    fn bound(&mut self, outcome: BindOutcome) -> Result<(), ActorProcessingErr> {
        self.binds_in_flight = self.binds_in_flight.saturating_sub(1);
        let results = match outcome.results {
            Ok(results) => results,
            Err(e) => {
                for (key, _) in &outcome.pods {
                    self.cache.forget(key);
                }
                return Err(e.into());
            }
        };
        let mut scheduled = 0;
        for ((key, node), result) in outcome.pods.iter().zip(results) {
            match result {
                Ok(revision) => {
                    self.cache.confirm(key, revision);
                    debug!(pod = %key, %node, "scheduled");
                    scheduled += 1;
                }
                Err(why) => {
                    debug!(pod = %key, %node, %why, "bind failed");
                    self.cache.forget(key);
                }
            }
        }
        if scheduled > 0 {
            info!(pods = scheduled, "scheduled");
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
        let pods_rt = kinds::PODS;
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

/// Upstream's VolumeBinding PreBind: the claims of pods that wait for
/// their first consumer get their volumes on the chosen node before the
/// pods are bound. Returns the pods that cannot be bound now, with why
/// (each also gets a FailedScheduling event, as upstream).
async fn pre_bind(
    objects: &Objects,
    binds: &[(String, Value, String)],
    provisions: &HashMap<String, Vec<String>>,
) -> HashMap<String, String> {
    let mut refused = HashMap::new();
    if provisions.is_empty() {
        return refused;
    }
    for (key, pod, node) in binds {
        let Some(claims) = provisions.get(key) else {
            continue;
        };
        let namespace = pod["metadata"]["namespace"].as_str().unwrap_or("default");
        for claim in claims {
            if let Err(e) = provision::provision(objects, namespace, claim, node).await {
                let why = format!("running PreBind plugin \"VolumeBinding\": {e}");
                warn!(pod = %key, %node, %why, "cannot bind");
                objects
                    .event(pod, true, "FailedScheduling", &why, "default-scheduler")
                    .await;
                refused.insert(key.clone(), why);
                break;
            }
        }
    }
    refused
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
        watch_for(
            &objects,
            kinds::NODES.prefix(),
            &myself,
            || SchedulerMsg::ResyncNodes,
            |e| Some(SchedulerMsg::Node(Box::new(e))),
        );
        watch_for(
            &objects,
            kinds::PODS.prefix(),
            &myself,
            || SchedulerMsg::ResyncPods,
            |e| Some(SchedulerMsg::Pod(Box::new(e))),
        );
        myself.send_interval(RETRY_UNSCHEDULABLE, || SchedulerMsg::Retry);
        let pods_prefix = kinds::PODS.prefix();
        Ok(SchedulerState {
            objects,
            cache: Cache::default(),
            pending_wake: false,
            binds_in_flight: 0,
            pods_prefix,
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
                state.schedule_round(&myself).await?;
            }
            SchedulerMsg::Retry => state.cache.retry_unschedulable(),
            SchedulerMsg::Bound(outcome) => state.bound(*outcome)?,
            SchedulerMsg::ResyncPods => state.resync_pods().await?,
            SchedulerMsg::ResyncNodes => state.resync_nodes().await?,
            SchedulerMsg::Pod(event) => {
                // `namespace/name` from the store key, so that events the
                // cache already holds (its own binds) are not decoded.
                let key = event
                    .key
                    .strip_prefix(&state.pods_prefix)
                    .map(String::from)
                    .or_else(|| versioned(&event).as_ref().map(pod_key))
                    .unwrap_or_default();
                if state.cache.is_stale(&key, event.revision) {
                    return Ok(());
                }
                if event.kind != EventKind::Deleted
                    && state.cache.keep_placed(&key, event.revision, &event.value)
                {
                    return Ok(());
                }
                let object = (event.kind != EventKind::Deleted)
                    .then(|| versioned(&event))
                    .flatten();
                let change = state.cache.apply_pod_owned(&key, event.revision, object);
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
