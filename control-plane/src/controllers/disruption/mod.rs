//! The disruption controller: keeps each PodDisruptionBudget's status
//! (healthy, desired and expected pods, disruptions allowed, the
//! `DisruptionAllowed` condition) up to date, as upstream's does. The
//! eviction handler (`api::eviction`) spends `disruptionsAllowed`; this
//! controller refills it from the pods. Level-triggered: any change to a
//! budget, a pod or a pod controller queues the budgets of its namespace,
//! and a sync reads everything afresh; the status is computed again from
//! the budget read at write time, so an eviction's `disruptedPods` entry
//! is never lost to a concurrent write.

use std::collections::HashMap;
use std::convert::Infallible;

use ractor::ActorProcessingErr;
use serde_json::Value;

use super::fields::unless_gone;
use super::metadata_of;
use super::runtime::{Action, Controller, ObjectRef, Owners, Reconciler, Trigger};
use crate::meta::{self, controller_ref as controller_of};
use crate::registry::budget::{self, ExpectedScale};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::{Event, StoreError};

const OWNERS: Owners = Owners(&[("PodDisruptionBudget", kinds::PODDISRUPTIONBUDGETS)]);

/// The controller actor.
pub type DisruptionController = Controller<Budgets>;

/// The reconciler of PodDisruptionBudgets.
pub struct Budgets {
    objects: Objects,
}

const COMPONENT: &str = "controllermanager";

fn replicas(obj: &Value) -> i64 {
    obj.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// The kinds whose changes move a budget's numbers, after the budgets.
const WATCHED: [&ResourceType; 5] = [
    kinds::PODS,
    kinds::REPLICASETS,
    kinds::DEPLOYMENTS,
    kinds::STATEFULSETS,
    kinds::REPLICATIONCONTROLLERS,
];

impl Reconciler for Budgets {
    type Key = ObjectRef;
    type Change = Infallible;
    type Error = ActorProcessingErr;
    const NAME: &'static str = "disruption";

    fn watches(&self) -> Result<Vec<String>, ActorProcessingErr> {
        Ok(OWNERS.watches(&WATCHED))
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, Infallible>> {
        // The budgets' own resync covers a re-list.
        // A pod or a pod controller changed: every budget of its namespace.
        OWNERS.decode(watch, event, |_, e| {
            let namespace = meta::namespace(&metadata_of(e?)?).to_string();
            Some(Trigger::Namespace(namespace))
        })
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, ActorProcessingErr> {
        Ok(OWNERS.list(&self.objects).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, ActorProcessingErr> {
        self.sync(&key.namespace, &key.name).await?;
        Ok(Action::await_change())
    }
}

impl Budgets {
    /// The reconciler, writing through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }

    /// The owner `reference` names in `namespace`, if it still is that object.
    async fn owner(
        &self,
        reference: &Value,
        namespace: &str,
        rt: &'static ResourceType,
    ) -> Result<Option<Value>, ActorProcessingErr> {
        let name = meta::str_at(reference, "/name").unwrap_or_default();
        match self.objects.get(rt, Some(namespace), name).await {
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
        let api_version = meta::str_at(reference, "/apiVersion").unwrap_or_default();
        let group = api_version.split_once('/').map(|(g, _)| g).unwrap_or("");
        let found = match (group, meta::str_at(reference, "/kind").unwrap_or_default()) {
            ("apps" | "extensions", "ReplicaSet") => {
                match self.owner(reference, namespace, kinds::REPLICASETS).await? {
                    Some(rs) => match controller_of(&rs).filter(|c| c["kind"] == "Deployment") {
                        Some(dep) => self.owner(dep, namespace, kinds::DEPLOYMENTS).await?,
                        None => Some(rs),
                    },
                    None => None,
                }
            }
            ("", "ReplicationController") => {
                self.owner(reference, namespace, kinds::REPLICATIONCONTROLLERS)
                    .await?
            }
            ("apps", "StatefulSet") => {
                self.owner(reference, namespace, kinds::STATEFULSETS)
                    .await?
            }
            _ => None,
        };
        Ok(found.map(|o| (meta::uid(&o).to_string(), replicas(&o))))
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
                unmanaged.push(meta::name(pod).to_string());
                continue;
            };
            let uid = meta::str_at(reference, "/uid").unwrap_or_default();
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
                        meta::name(pod)
                    )));
                }
            }
        }
        Ok(Ok(ExpectedScale {
            expected: scales.values().sum(),
            unmanaged,
        }))
    }

    async fn sync(&self, namespace: &str, name: &str) -> Result<(), ActorProcessingErr> {
        let pdb_rt = kinds::PODDISRUPTIONBUDGETS;
        let Some(pdb) = unless_gone(self.objects.get(pdb_rt, Some(namespace), name).await)? else {
            return Ok(());
        };
        let listing = self
            .objects
            .store()
            .list(&format!("{}{namespace}/", kinds::PODS.prefix()))
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
