//! The disruption controller: keeps each PodDisruptionBudget's status
//! (healthy, desired and expected pods, disruptions allowed, the
//! `DisruptionAllowed` condition) up to date, as upstream's does. The
//! eviction handler (`api::eviction`) spends `disruptionsAllowed`; this
//! controller refills it from the pods. Level-triggered: any change to a
//! budget, a pod or a pod controller queues the budgets of its namespace,
//! and a sync reads everything afresh; the status is computed again from
//! the budget read at write time, so an eviction's `disruptedPods` entry
//! is never lost to a concurrent write.

pub mod budget;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::Value;
use tracing::warn;

use self::budget::ExpectedScale;
use super::runtime::queue::{WorkQueue, retry_delay};
use super::{metadata_of, object_of, watch_prefix};
use crate::api::internal::Objects;
use crate::api::resources::{self, ResourceType};
use crate::store::{EventKind, StoreError};

/// A budget: namespace and name.
pub type BudgetKey = (String, String);

/// Messages of the controller.
#[derive(Debug)]
pub enum DisruptionMsg {
    /// A budget was added, changed or deleted.
    BudgetChanged(EventKind, BudgetKey),
    /// A pod or a pod controller of this namespace changed.
    NamespaceChanged(String),
    /// Re-list the budgets and sync them all.
    Resync,
    /// Work through the queue.
    Drain,
    /// Sync one budget again (after a failure).
    Retry(BudgetKey),
}

/// The controller actor.
pub struct DisruptionController;

/// Its state.
pub struct DisruptionState {
    objects: Objects,
    budgets: HashMap<String, BTreeSet<BudgetKey>>,
    queue: WorkQueue<BudgetKey>,
}

const COMPONENT: &str = "controllermanager";

fn rt(group: &str, plural: &str) -> Result<&'static ResourceType, ActorProcessingErr> {
    Ok(resources::find(group, "v1", plural).ok_or("resource type")?)
}

fn pdb_rt() -> Result<&'static ResourceType, ActorProcessingErr> {
    rt("policy", "poddisruptionbudgets")
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The controller reference of `obj` (`ownerReferences` with `controller: true`).
fn controller_of(obj: &Value) -> Option<&Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r["controller"] == Value::Bool(true))
}

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

impl DisruptionState {
    fn enqueue(&mut self, me: &ActorRef<DisruptionMsg>, key: BudgetKey) {
        if self.queue.add(key) {
            let _ = me.cast(DisruptionMsg::Drain);
        }
    }

    async fn relist(&mut self, me: &ActorRef<DisruptionMsg>) -> Result<(), ActorProcessingErr> {
        self.budgets.clear();
        let (items, _) = self.objects.list(pdb_rt()?).await?;
        for pdb in items {
            let ns = str_at(&pdb, "/metadata/namespace").to_string();
            let key = (ns.clone(), str_at(&pdb, "/metadata/name").to_string());
            self.budgets.entry(ns).or_default().insert(key.clone());
            self.enqueue(me, key);
        }
        Ok(())
    }

    /// The owner `reference` names in `namespace`, if it still is that object.
    async fn owner(
        &self,
        reference: &Value,
        namespace: &str,
        group: &str,
        plural: &str,
    ) -> Result<Option<Value>, ActorProcessingErr> {
        let name = str_at(reference, "/name");
        match self
            .objects
            .get(rt(group, plural)?, Some(namespace), name)
            .await
        {
            Ok(obj) if obj.pointer("/metadata/uid") == reference.get("uid") => Ok(Some(obj)),
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The scale of a pod's controller, as upstream's finders find it: a
    /// ReplicaSet's Deployment, else the ReplicaSet, ReplicationController
    /// or StatefulSet itself. `(uid, replicas)`.
    async fn controller_scale(
        &self,
        reference: &Value,
        namespace: &str,
    ) -> Result<Option<(String, i64)>, ActorProcessingErr> {
        let api_version = str_at(reference, "/apiVersion");
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        let found = match (group, str_at(reference, "/kind")) {
            ("apps" | "extensions", "ReplicaSet") => {
                match self
                    .owner(reference, namespace, "apps", "replicasets")
                    .await?
                {
                    Some(rs) => match controller_of(&rs).filter(|c| c["kind"] == "Deployment") {
                        Some(dep) => self.owner(dep, namespace, "apps", "deployments").await?,
                        None => Some(rs),
                    },
                    None => None,
                }
            }
            ("", "ReplicationController") => {
                self.owner(reference, namespace, "", "replicationcontrollers")
                    .await?
            }
            ("apps", "StatefulSet") => {
                self.owner(reference, namespace, "apps", "statefulsets")
                    .await?
            }
            _ => None,
        };
        Ok(found.map(|o| (str_at(&o, "/metadata/uid").to_string(), replicas(&o))))
    }

    /// Upstream's `getExpectedScale`: the sum of the matched pods'
    /// controllers' replicas; a pod whose controller is unknown is an error.
    async fn expected_scale(
        &self,
        pods: &[&Value],
        namespace: &str,
    ) -> Result<Result<ExpectedScale, String>, ActorProcessingErr> {
        let mut scales: HashMap<String, i64> = HashMap::new();
        let mut unmanaged = Vec::new();
        for pod in pods {
            let Some(reference) = controller_of(pod) else {
                unmanaged.push(str_at(pod, "/metadata/name").to_string());
                continue;
            };
            let uid = str_at(reference, "/uid");
            if scales.contains_key(uid) {
                continue;
            }
            match self.controller_scale(reference, namespace).await? {
                Some((uid, n)) => {
                    scales.insert(uid, n);
                }
                None => {
                    return Ok(Err(format!(
                        "found no controllers for pod {:?}",
                        str_at(pod, "/metadata/name")
                    )));
                }
            }
        }
        Ok(Ok(ExpectedScale {
            expected: scales.values().sum(),
            unmanaged,
        }))
    }

    async fn sync(&self, (namespace, name): &BudgetKey) -> Result<(), ActorProcessingErr> {
        let pdb_rt = pdb_rt()?;
        let pdb = match self.objects.get(pdb_rt, Some(namespace), name).await {
            Ok(p) => p,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let listing = self
            .objects
            .store()
            .list(&format!("{}{namespace}/", rt("", "pods")?.prefix()))
            .await?;
        let all: Vec<Value> = listing
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect();
        let pods: Vec<&Value> = all.iter().filter(|p| budget::selects(&pdb, p)).collect();
        if pods.is_empty() {
            self.objects
                .event(&pdb, false, "NoPods", "No matching pods found", COMPONENT)
                .await;
        }
        let needs_scale = !pdb
            .pointer("/spec/minAvailable")
            .is_some_and(Value::is_number);
        let scale = if needs_scale {
            self.expected_scale(&pods, namespace).await?
        } else {
            Ok(ExpectedScale {
                expected: 0,
                unmanaged: Vec::new(),
            })
        };
        match &scale {
            Ok(s) if needs_scale && !s.unmanaged.is_empty() => {
                let message = format!(
                    "Pods selected by this PodDisruptionBudget (selector: {}) were found to be unmanaged. As a result, the status of the PDB cannot be calculated correctly, which may result in undefined behavior. To account for these pods please set \".spec.minAvailable\" field of the PDB to an integer value.",
                    pdb.pointer("/spec/selector")
                        .cloned()
                        .unwrap_or(Value::Null)
                );
                self.objects
                    .event(&pdb, true, "UnmanagedPods", &message, COMPONENT)
                    .await;
            }
            Err(e) => {
                let message = format!("Failed to calculate the number of expected pods: {e}");
                self.objects
                    .event(
                        &pdb,
                        true,
                        "CalculateExpectedPodCountFailed",
                        &message,
                        COMPONENT,
                    )
                    .await;
            }
            Ok(_) => {}
        }
        let uid = pdb.pointer("/metadata/uid").cloned();
        let mut failure = None;
        self.objects
            .update(pdb_rt, Some(namespace), name, |fresh| {
                if fresh.pointer("/metadata/uid").cloned() != uid {
                    return false;
                }
                let now = chrono::Utc::now();
                // From the budget as read now: an eviction that just wrote
                // `disruptedPods` is counted, not overwritten.
                let next = match budget::status(fresh, &pods, &scale, now) {
                    Ok(next) => next,
                    Err(e) => {
                        failure = Some(e.clone());
                        budget::fail_safe(fresh, &e, now)
                    }
                };
                if fresh.get("status") == Some(&next) {
                    return false;
                }
                fresh["status"] = next;
                true
            })
            .await?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

impl Actor for DisruptionController {
    type Msg = DisruptionMsg;
    type State = DisruptionState;
    type Arguments = Objects;

    async fn pre_start(
        &self,
        myself: ActorRef<DisruptionMsg>,
        objects: Objects,
    ) -> Result<DisruptionState, ActorProcessingErr> {
        let me = myself.clone();
        watch_prefix(objects.store().clone(), pdb_rt()?.prefix(), move |event| {
            let msg = match event {
                None => DisruptionMsg::Resync,
                Some(e) => match object_of(&e) {
                    Some(pdb) => DisruptionMsg::BudgetChanged(
                        e.kind,
                        (
                            str_at(&pdb, "/metadata/namespace").to_string(),
                            str_at(&pdb, "/metadata/name").to_string(),
                        ),
                    ),
                    None => return true,
                },
            };
            me.cast(msg).is_ok()
        });
        for (group, plural) in [
            ("", "pods"),
            ("apps", "replicasets"),
            ("apps", "deployments"),
            ("apps", "statefulsets"),
            ("", "replicationcontrollers"),
        ] {
            let me = myself.clone();
            watch_prefix(
                objects.store().clone(),
                rt(group, plural)?.prefix(),
                move |event| {
                    // The budgets' own resync covers a re-list.
                    let Some(obj) = event.as_ref().and_then(metadata_of) else {
                        return true;
                    };
                    let ns = str_at(&obj, "/metadata/namespace").to_string();
                    me.cast(DisruptionMsg::NamespaceChanged(ns)).is_ok()
                },
            );
        }
        // Level-triggered safety net, and how `disruptedPods` entries of
        // pods that were never deleted expire.
        myself.send_interval(Duration::from_secs(30), || DisruptionMsg::Resync);
        Ok(DisruptionState {
            objects,
            budgets: HashMap::new(),
            queue: WorkQueue::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<DisruptionMsg>,
        msg: DisruptionMsg,
        state: &mut DisruptionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DisruptionMsg::Resync => state.relist(&myself).await?,
            DisruptionMsg::BudgetChanged(kind, key) => {
                let known = state.budgets.entry(key.0.clone()).or_default();
                if kind == EventKind::Deleted {
                    known.remove(&key);
                    state.queue.forget(&key);
                } else {
                    known.insert(key.clone());
                    state.enqueue(&myself, key);
                }
            }
            DisruptionMsg::NamespaceChanged(ns) => {
                let keys: Vec<BudgetKey> = state
                    .budgets
                    .get(&ns)
                    .map(|s| s.iter().cloned().collect())
                    .unwrap_or_default();
                for key in keys {
                    state.enqueue(&myself, key);
                }
            }
            DisruptionMsg::Retry(key) => state.enqueue(&myself, key),
            DisruptionMsg::Drain => {
                for key in state.queue.take() {
                    match state.sync(&key).await {
                        Ok(()) => state.queue.succeeded(&key),
                        Err(e) => {
                            let delay = retry_delay(state.queue.failed(&key));
                            warn!(pdb = %format!("{}/{}", key.0, key.1), error = %e, retry_in = ?delay, "sync failed");
                            myself.send_after(delay, move || DisruptionMsg::Retry(key));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
