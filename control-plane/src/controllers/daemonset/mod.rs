//! The DaemonSet controller: one pod per eligible node, as upstream's
//! daemon controller. A pod is made for each node the template fits
//! ([`eligibility`]), pinned there by a `matchFields metadata.name` node
//! affinity that the scheduler honours, and never moved: a node that goes
//! unreachable keeps its pod (daemon pods tolerate the NoExecute taints,
//! and node lifecycle spares them), a node that stops fitting (a label
//! changes) loses it. Templates are recorded as ControllerRevisions
//! ([`revision`]); out-of-date pods are replaced by the RollingUpdate
//! budget or, with OnDelete, when deleted ([`plan`]).
//!
//! Level-triggered like the ReplicaSet controller: a change to a
//! DaemonSet, to one of its pods or revisions, or to a node's labels or
//! taints queues the DaemonSets it may concern, and a sync reads the
//! DaemonSet, the nodes and the namespace's pods afresh from the store.

pub mod backoff;
pub mod eligibility;
pub mod plan;
pub mod revision;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{debug, info};

use self::backoff::Backoff;
use self::eligibility::pin_to_node;
use self::plan::{DaemonSet, GENERATION_LABEL, HASH_LABEL, Strategy, by_node, claim};
use super::claim;
use super::fields::{edit_status, object_at, set_count, unless_gone};
use super::pod::{create_pod, slow_start_batches};
use super::runtime::{Action, Controller, ObjectRef, OwnerIndex, Owners, Reconciler, Trigger};
use super::{namespace_objects, object_of};
use crate::meta::{self, str_at};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::{Event, EventKind, StoreError};

/// The event source upstream's daemon controller uses.
const COMPONENT: &str = "daemonset-controller";

const DAEMON_SET: &str = "DaemonSet";
const OWNERS: Owners = Owners(&[(DAEMON_SET, kinds::DAEMONSETS)]);

/// A change that concerns DaemonSets other than their own or their
/// dependents' (pods and ControllerRevisions).
#[derive(Debug)]
pub enum DaemonSetChange {
    /// A node changed: its name and what decides where daemons run
    /// (`None`: deleted).
    Node(String, Option<String>),
    /// The node watch (re)started.
    NodesListed,
}

/// Failures of a sync that are not the store's alone.
#[derive(Debug, thiserror::Error)]
pub enum DaemonSetError {
    /// The revision's name is taken by one with another template; the
    /// collision count was raised so the next try hashes differently.
    #[error("controller revision {0} exists with another template (hash collision)")]
    Collision(String),
    /// Creating a pod failed (after the FailedCreate event).
    #[error("creating a pod: {0}")]
    Create(StoreError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The controller actor.
pub type DaemonSetController = Controller<DaemonSets>;

/// The reconciler of DaemonSets.
pub struct DaemonSets {
    objects: Objects,
    /// Back-off of failed-pod replacement per DaemonSet and node.
    failed_pods: Backoff,
    /// What each node last showed of its labels and taints: nodes post
    /// status often, and only these matter here.
    nodes: HashMap<String, String>,
}

/// The controller reference a DaemonSet puts on its pods and revisions.
pub fn owner_reference(ds: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "name": meta::name(ds), "uid": ds.pointer("/metadata/uid"),
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// The template of the DaemonSet's pods: its pod template with the daemon
/// tolerations and the revision and generation labels.
fn pod_template(ds_obj: &Value, ds: &DaemonSet, hash: &str) -> Value {
    let mut template = object_at(ds_obj, "/spec/template");
    template["spec"] = ds.pod_spec.clone();
    if !template["metadata"].is_object() {
        template["metadata"] = json!({});
    }
    if !template["metadata"]["labels"].is_object() {
        template["metadata"]["labels"] = json!({});
    }
    let labels = &mut template["metadata"]["labels"];
    if let Some(g) = ds.template_generation {
        labels[GENERATION_LABEL] = json!(g.to_string());
    }
    if !hash.is_empty() {
        labels[HASH_LABEL] = json!(hash);
    }
    template
}

/// A new daemon pod for `node`, named `<daemonset>-<5 random chars>`.
fn new_pod(ds_obj: &Value, template: &Value, node: &str) -> Value {
    let mut metadata = template["metadata"].clone();
    if let Some(m) = metadata.as_object_mut() {
        m.remove("name");
        m.remove("creationTimestamp");
    }
    metadata["generateName"] = json!(format!("{}-", meta::name(ds_obj)));
    metadata["namespace"] = json!(meta::namespace(ds_obj));
    metadata["ownerReferences"] = json!([owner_reference(ds_obj)]);
    let mut spec = template["spec"].clone();
    pin_to_node(&mut spec, node);
    json!({"metadata": metadata, "spec": spec})
}

impl Reconciler for DaemonSets {
    type Key = ObjectRef;
    type Change = DaemonSetChange;
    type Error = DaemonSetError;
    const NAME: &'static str = "daemonset";

    fn watches(&self) -> Result<Vec<String>, DaemonSetError> {
        Ok(OWNERS.watches(&[kinds::PODS, kinds::CONTROLLERREVISIONS, kinds::NODES]))
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, DaemonSetChange>> {
        OWNERS.decode(watch, event, |dependent, event| match (dependent, event) {
            // The nodes.
            (2, None) => Some(Trigger::Change(DaemonSetChange::NodesListed)),
            (2, Some(e)) => {
                let node = object_of(e)?;
                let print = (e.kind != EventKind::Deleted).then(|| node_fingerprint(&node));
                let name = meta::name(&node).to_string();
                Some(Trigger::Change(DaemonSetChange::Node(name, print)))
            }
            // Pods and revisions: the DaemonSets' resync covers a re-list.
            (_, None) => None,
            (_, Some(e)) => OWNERS.dependent(e),
        })
    }

    async fn changes(
        &mut self,
        change: DaemonSetChange,
        owners: &OwnerIndex<ObjectRef>,
    ) -> Result<Vec<ObjectRef>, DaemonSetError> {
        let nodes_changed = match change {
            DaemonSetChange::NodesListed => {
                self.nodes.clear();
                true
            }
            DaemonSetChange::Node(name, None) => self.nodes.remove(&name).is_some(),
            DaemonSetChange::Node(name, Some(print)) => {
                self.nodes.insert(name, print.clone()).as_ref() != Some(&print)
            }
        };
        // Nodes came, went, or changed labels or taints: every DaemonSet.
        Ok(if nodes_changed {
            owners.all()
        } else {
            Vec::new()
        })
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, DaemonSetError> {
        Ok(OWNERS.list(&self.objects).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, DaemonSetError> {
        self.sync(key).await.map(Action::requeue_opt)
    }

    fn forget(&mut self, key: &ObjectRef) {
        self.failed_pods
            .forget(&format!("{}/{}/", key.namespace, key.name));
    }
}

impl DaemonSets {
    /// The reconciler, writing through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self {
            objects,
            failed_pods: Backoff::default(),
            nodes: HashMap::new(),
        }
    }

    /// Adopts (`reference` given) or releases (`uid` removed) one dependent.
    async fn set_controller(
        &self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
        adopt: Option<&Value>,
        uid: &str,
    ) -> Result<(), DaemonSetError> {
        let result = self
            .objects
            .update(rt, Some(namespace), name, |obj| match adopt {
                Some(reference) => claim::adopt(obj, reference),
                None => claim::release(obj, |owner| owner == uid),
            })
            .await;
        match result {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies a claim's adoptions and releases to objects of type `rt`.
    async fn apply_claim(
        &self,
        rt: &ResourceType,
        ds_obj: &Value,
        ds: &DaemonSet,
        c: &plan::Claim,
    ) -> Result<(), DaemonSetError> {
        let namespace = meta::namespace(ds_obj);
        let reference = owner_reference(ds_obj);
        for name in &c.adopt {
            self.set_controller(rt, namespace, name, Some(&reference), &ds.uid)
                .await?;
            debug!(daemonset = %meta::name(ds_obj), %name, kind = rt.kind, "adopted");
        }
        for name in &c.release {
            self.set_controller(rt, namespace, name, None, &ds.uid)
                .await?;
            info!(daemonset = %meta::name(ds_obj), %name, kind = rt.kind, "released: its labels no longer match");
        }
        Ok(())
    }

    /// The DaemonSet's pods as they are now (claimed).
    async fn owned_pods(
        &self,
        ds_obj: &Value,
        ds: &DaemonSet,
    ) -> Result<(plan::Claim, Vec<Value>), DaemonSetError> {
        let pods = namespace_objects(&self.objects, kinds::PODS, meta::namespace(ds_obj)).await?;
        let (c, mine) = claim(ds, &pods);
        let mine = mine.into_iter().cloned().collect();
        Ok((c, mine))
    }

    /// One sync; returns when to look again if nothing else happens.
    async fn sync(&mut self, key: &ObjectRef) -> Result<Option<Duration>, DaemonSetError> {
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        let daemonsets = kinds::DAEMONSETS;
        // Gone: its pods are the garbage collector's business.
        let Some(ds_obj) = unless_gone(self.objects.get(daemonsets, Some(namespace), name).await)?
        else {
            return Ok(None);
        };
        if ds_obj
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
        {
            return Ok(None);
        }
        let Some(ds) = DaemonSet::from_object(&ds_obj) else {
            return Ok(None);
        };
        let pods_rt = kinds::PODS;
        let (pod_claim, pods) = self.owned_pods(&ds_obj, &ds).await?;
        self.apply_claim(pods_rt, &ds_obj, &ds, &pod_claim).await?;
        let pods: Vec<&Value> = pods.iter().collect();

        let revisions_rt = kinds::CONTROLLERREVISIONS;
        let revisions = namespace_objects(&self.objects, revisions_rt, namespace).await?;
        let (revision_claim, mine) = claim(&ds, &revisions);
        self.apply_claim(revisions_rt, &ds_obj, &ds, &revision_claim)
            .await?;
        let mine: Vec<Value> = mine.into_iter().cloned().collect();
        let history = revision::construct(&self.objects, &ds_obj, mine, &pods).await?;

        let (nodes, _) = self.objects.list(kinds::NODES).await?;
        let fits = ds.fits(&nodes);
        let now = chrono::Utc::now();
        let mut again: Option<Duration> = None;
        let manage = plan::manage(&ds, &fits, &pods, &history.hash, now);
        let mut failed = Vec::new();
        for (node, pod) in &manage.failed {
            let key = format!("{namespace}/{name}/{node}");
            match self.failed_pods.attempt(&key, tokio::time::Instant::now()) {
                Ok(()) => failed.push((node.clone(), pod.clone())),
                Err(wait) => {
                    debug!(daemonset = %name, %node, ?wait, "replacing a failed pod is backing off");
                    again = Some(again.map_or(wait, |a| a.min(wait)));
                }
            }
        }
        let acted = !(manage.create.is_empty()
            && manage.delete.is_empty()
            && manage.orphaned.is_empty()
            && failed.is_empty());
        for pod in &manage.orphaned {
            info!(daemonset = %name, %pod, "removing a pod whose node no longer exists");
            self.objects.delete(pods_rt, Some(namespace), pod).await?;
        }
        for (node, pod) in &failed {
            let message = format!(
                "Found failed daemon pod {namespace}/{pod} on node {node}, will try to kill it"
            );
            self.objects
                .event(&ds_obj, true, "FailedDaemonPod", &message, COMPONENT)
                .await;
        }
        let mut delete: Vec<String> = failed.into_iter().map(|(_, pod)| pod).collect();
        delete.extend(manage.delete);
        let mut create = manage.create;
        // Upstream updates only once the manage pass has nothing in flight.
        if !acted && matches!(ds.strategy, Strategy::RollingUpdate { .. }) {
            let rolling = plan::rolling_update(&ds, &fits, &pods, &history.hash, now);
            delete.extend(rolling.delete);
            create.extend(rolling.create);
        }
        let created = self.create_pods(&ds_obj, &ds, &history.hash, &create).await;
        for pod in &delete {
            self.objects.delete_pod(namespace, pod).await?;
            let message = format!("Deleted pod: {pod}");
            self.objects
                .event(&ds_obj, false, "SuccessfulDelete", &message, COMPONENT)
                .await;
        }

        let live: BTreeSet<String> = by_node(&pods, true)
            .values()
            .flatten()
            .filter_map(|p| str_at(p, &format!("/metadata/labels/{HASH_LABEL}")).map(String::from))
            .collect();
        let limit = ds_obj
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10);
        revision::cleanup(&self.objects, namespace, &history.old, limit, &live).await?;

        let status_again = self
            .write_status(&ds_obj, &ds, &fits, &history.hash)
            .await?;
        created?;
        Ok(match (again, status_again) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Creates a pod on each of `nodes` in upstream's slow-start batches;
    /// stops at the first failure (after a FailedCreate event).
    async fn create_pods(
        &self,
        ds_obj: &Value,
        ds: &DaemonSet,
        hash: &str,
        nodes: &[String],
    ) -> Result<(), DaemonSetError> {
        if nodes.is_empty() {
            return Ok(());
        }
        let template = pod_template(ds_obj, ds, hash);
        let mut nodes = nodes.iter();
        for batch in slow_start_batches(nodes.len()) {
            for node in nodes.by_ref().take(batch) {
                let pod = new_pod(ds_obj, &template, node);
                create_pod(&self.objects, ds_obj, pod, COMPONENT)
                    .await
                    .map_err(DaemonSetError::Create)?;
            }
        }
        Ok(())
    }

    /// Counts the pods as they are after this sync's writes and writes the
    /// status; returns when to look again for pods still short of
    /// `minReadySeconds`.
    async fn write_status(
        &self,
        ds_obj: &Value,
        ds: &DaemonSet,
        fits: &std::collections::BTreeMap<String, eligibility::Fit>,
        hash: &str,
    ) -> Result<Option<Duration>, DaemonSetError> {
        let (_, pods) = self.owned_pods(ds_obj, ds).await?;
        let pods: Vec<&Value> = pods.iter().collect();
        let s = plan::status(ds, fits, &pods, hash, chrono::Utc::now());
        let generation = ds_obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let always = [
            ("currentNumberScheduled", s.current),
            ("numberMisscheduled", s.misscheduled),
            ("desiredNumberScheduled", s.desired),
            ("numberReady", s.ready),
        ];
        // Upstream omits these zero counts (omitempty).
        let counts = [
            ("observedGeneration", generation),
            ("updatedNumberScheduled", s.updated),
            ("numberAvailable", s.available),
            ("numberUnavailable", s.unavailable()),
        ];
        let daemonsets = kinds::DAEMONSETS;
        self.objects
            .update(
                daemonsets,
                Some(meta::namespace(ds_obj)),
                meta::name(ds_obj),
                |obj| {
                    edit_status(obj, &ds.uid, |status| {
                        for (field, value) in always {
                            status[field] = json!(value);
                        }
                        for (field, value) in counts {
                            set_count(status, field, value);
                        }
                    })
                },
            )
            .await?;
        let waiting = ds.min_ready_seconds > 0 && s.ready != s.available;
        Ok(waiting.then(|| Duration::from_secs(ds.min_ready_seconds.unsigned_abs())))
    }
}

/// What of a node decides where daemons run: its labels and taints.
fn node_fingerprint(node: &Value) -> String {
    json!([
        node.pointer("/metadata/labels"),
        node.pointer("/spec/taints")
    ])
    .to_string()
}

#[cfg(test)]
mod tests;
