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

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use self::backoff::Backoff;
use self::eligibility::pin_to_node;
use self::plan::{DaemonSet, GENERATION_LABEL, HASH_LABEL, Strategy, by_node, claim};
use super::pod::slow_start_batches;
use super::runtime::queue::{WorkQueue, retry_delay};
use super::{metadata_of, object_of, watch_prefix};
use crate::api::internal::Objects;
use crate::api::resources::{self, ResourceType};
use crate::meta::controller_uid;
use crate::store::{EventKind, StoreError};

/// The event source upstream's daemon controller uses.
const COMPONENT: &str = "daemonset-controller";

/// A DaemonSet's identity: namespace, name.
pub type DaemonSetKey = (String, String);

/// Messages of the controller.
#[derive(Debug)]
pub enum DaemonSetMsg {
    /// A DaemonSet was added, changed or deleted.
    Changed(EventKind, DaemonSetKey),
    /// A pod or ControllerRevision changed: its DaemonSet or, for an
    /// orphan (adoptable), every DaemonSet of the namespace may care.
    Dependent {
        /// Its namespace.
        namespace: String,
        /// Its controlling DaemonSet, if any.
        owner: Option<String>,
    },
    /// Nodes came, went, or changed labels or taints: every DaemonSet.
    NodesChanged,
    /// A watch (re)started: re-list DaemonSets and sync them all.
    Resync,
    /// Work through the queue.
    Drain,
    /// Sync one DaemonSet again (after a failure or at a deadline).
    Retry(DaemonSetKey),
}

/// Failures of a sync that are not the store's alone.
#[derive(Debug, thiserror::Error)]
pub enum DaemonSetError {
    /// A resource type is not registered (a build error).
    #[error("resource type {0} is not registered")]
    NoType(&'static str),
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
pub struct DaemonSetController;

/// Its state.
pub struct DaemonSetState {
    objects: Objects,
    /// Known DaemonSets by namespace (for orphans and node changes).
    known: HashMap<String, BTreeSet<String>>,
    /// Keys to sync, and failures in a row for the retry back-off.
    queue: WorkQueue<DaemonSetKey>,
    /// Back-off of failed-pod replacement per DaemonSet and node.
    failed_pods: Backoff,
}

fn rt(group: &str, plural: &'static str) -> Result<&'static ResourceType, DaemonSetError> {
    resources::find(group, "v1", plural).ok_or(DaemonSetError::NoType(plural))
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

fn name_of(v: &Value) -> String {
    str_at(v, "/metadata/name").unwrap_or_default().to_string()
}

fn namespace_of(v: &Value) -> String {
    str_at(v, "/metadata/namespace")
        .unwrap_or("default")
        .to_string()
}

/// The controller reference a DaemonSet puts on its pods and revisions.
pub fn owner_reference(ds: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "name": name_of(ds), "uid": ds.pointer("/metadata/uid"),
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// The template of the DaemonSet's pods: its pod template with the daemon
/// tolerations and the revision and generation labels.
fn pod_template(ds_obj: &Value, ds: &DaemonSet, hash: &str) -> Value {
    let mut template = ds_obj
        .pointer("/spec/template")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
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
    metadata["generateName"] = json!(format!("{}-", name_of(ds_obj)));
    metadata["namespace"] = json!(namespace_of(ds_obj));
    metadata["ownerReferences"] = json!([owner_reference(ds_obj)]);
    let mut spec = template["spec"].clone();
    pin_to_node(&mut spec, node);
    json!({"metadata": metadata, "spec": spec})
}

impl DaemonSetState {
    fn new(objects: Objects) -> Self {
        Self {
            objects,
            known: HashMap::new(),
            queue: WorkQueue::default(),
            failed_pods: Backoff::default(),
        }
    }

    fn enqueue(&mut self, me: &ActorRef<DaemonSetMsg>, key: DaemonSetKey) {
        if self.queue.add(key) {
            let _ = me.cast(DaemonSetMsg::Drain);
        }
    }

    fn enqueue_namespace(&mut self, me: &ActorRef<DaemonSetMsg>, namespace: &str) {
        let names: Vec<String> = self
            .known
            .get(namespace)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        for name in names {
            self.enqueue(me, (namespace.to_string(), name));
        }
    }

    fn enqueue_all(&mut self, me: &ActorRef<DaemonSetMsg>) {
        let keys: Vec<DaemonSetKey> = self
            .known
            .iter()
            .flat_map(|(ns, names)| names.iter().map(|n| (ns.clone(), n.clone())))
            .collect();
        for key in keys {
            self.enqueue(me, key);
        }
    }

    async fn relist(&mut self, me: &ActorRef<DaemonSetMsg>) -> Result<(), DaemonSetError> {
        self.known.clear();
        let (items, _) = self.objects.list(rt("apps", "daemonsets")?).await?;
        for ds in items {
            let ns = namespace_of(&ds);
            let name = name_of(&ds);
            self.known
                .entry(ns.clone())
                .or_default()
                .insert(name.clone());
            self.enqueue(me, (ns, name));
        }
        Ok(())
    }

    async fn namespace_objects(
        &self,
        rt: &ResourceType,
        namespace: &str,
    ) -> Result<Vec<Value>, DaemonSetError> {
        let prefix = format!("{}{namespace}/", rt.prefix());
        let listing = self.objects.store().list(&prefix).await?;
        Ok(listing
            .items
            .iter()
            .filter_map(|kv| {
                let mut v: Value = serde_json::from_slice(&kv.value).ok()?;
                v["metadata"]["resourceVersion"] = json!(kv.revision.to_string());
                Some(v)
            })
            .collect())
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
                Some(reference) => {
                    if controller_uid(obj).is_some() {
                        return false;
                    }
                    match obj["metadata"]["ownerReferences"].as_array_mut() {
                        Some(refs) => refs.push(reference.clone()),
                        None => obj["metadata"]["ownerReferences"] = json!([reference.clone()]),
                    }
                    true
                }
                None => {
                    let Some(refs) = obj["metadata"]["ownerReferences"].as_array_mut() else {
                        return false;
                    };
                    let before = refs.len();
                    refs.retain(|r| r["uid"] != json!(uid));
                    if before == refs.len() {
                        return false;
                    }
                    // An empty list is omitted, as upstream serializes it.
                    if refs.is_empty()
                        && let Some(m) = obj["metadata"].as_object_mut()
                    {
                        m.remove("ownerReferences");
                    }
                    true
                }
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
        let namespace = namespace_of(ds_obj);
        let reference = owner_reference(ds_obj);
        for name in &c.adopt {
            self.set_controller(rt, &namespace, name, Some(&reference), &ds.uid)
                .await?;
            debug!(daemonset = %name_of(ds_obj), %name, kind = rt.kind, "adopted");
        }
        for name in &c.release {
            self.set_controller(rt, &namespace, name, None, &ds.uid)
                .await?;
            info!(daemonset = %name_of(ds_obj), %name, kind = rt.kind, "released: its labels no longer match");
        }
        Ok(())
    }

    /// The DaemonSet's pods as they are now (claimed).
    async fn owned_pods(
        &self,
        ds_obj: &Value,
        ds: &DaemonSet,
    ) -> Result<(plan::Claim, Vec<Value>), DaemonSetError> {
        let pods = self
            .namespace_objects(rt("", "pods")?, &namespace_of(ds_obj))
            .await?;
        let (c, mine) = claim(ds, &pods);
        let mine = mine.into_iter().cloned().collect();
        Ok((c, mine))
    }

    /// One sync; returns when to look again if nothing else happens.
    async fn sync(
        &mut self,
        (namespace, name): &DaemonSetKey,
    ) -> Result<Option<Duration>, DaemonSetError> {
        let daemonsets = rt("apps", "daemonsets")?;
        let ds_obj = match self.objects.get(daemonsets, Some(namespace), name).await {
            Ok(d) => d,
            // Gone: its pods are the garbage collector's business.
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
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
        let pods_rt = rt("", "pods")?;
        let (pod_claim, pods) = self.owned_pods(&ds_obj, &ds).await?;
        self.apply_claim(pods_rt, &ds_obj, &ds, &pod_claim).await?;
        let pods: Vec<&Value> = pods.iter().collect();

        let revisions_rt = rt("apps", "controllerrevisions")?;
        let revisions = self.namespace_objects(revisions_rt, namespace).await?;
        let (revision_claim, mine) = claim(&ds, &revisions);
        self.apply_claim(revisions_rt, &ds_obj, &ds, &revision_claim)
            .await?;
        let mine: Vec<Value> = mine.into_iter().cloned().collect();
        let history = revision::construct(&self.objects, &ds_obj, mine, &pods).await?;

        let (nodes, _) = self.objects.list(rt("", "nodes")?).await?;
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
        let pods_rt = rt("", "pods")?;
        let template = pod_template(ds_obj, ds, hash);
        let mut nodes = nodes.iter();
        for batch in slow_start_batches(nodes.len()) {
            for node in nodes.by_ref().take(batch) {
                match self
                    .objects
                    .create(pods_rt, new_pod(ds_obj, &template, node))
                    .await
                {
                    Ok(pod) => {
                        let message = format!("Created pod: {}", name_of(&pod));
                        self.objects
                            .event(ds_obj, false, "SuccessfulCreate", &message, COMPONENT)
                            .await;
                    }
                    Err(e) => {
                        let message = format!("Error creating: {e}");
                        self.objects
                            .event(ds_obj, true, "FailedCreate", &message, COMPONENT)
                            .await;
                        return Err(DaemonSetError::Create(e));
                    }
                }
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
        let fields = [
            ("currentNumberScheduled", s.current, true),
            ("numberMisscheduled", s.misscheduled, true),
            ("desiredNumberScheduled", s.desired, true),
            ("numberReady", s.ready, true),
            ("observedGeneration", generation, false),
            ("updatedNumberScheduled", s.updated, false),
            ("numberAvailable", s.available, false),
            ("numberUnavailable", s.unavailable(), false),
        ];
        let daemonsets = rt("apps", "daemonsets")?;
        self.objects
            .update(
                daemonsets,
                Some(&namespace_of(ds_obj)),
                &name_of(ds_obj),
                |obj| {
                    if str_at(obj, "/metadata/uid") != Some(ds.uid.as_str()) {
                        return false;
                    }
                    let mut status = obj
                        .get("status")
                        .cloned()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    for (field, value, always) in fields {
                        // Upstream omits these zero counts (omitempty).
                        if value == 0 && !always {
                            if let Some(m) = status.as_object_mut() {
                                m.remove(field);
                            }
                        } else {
                            status[field] = json!(value);
                        }
                    }
                    if obj.get("status") == Some(&status) {
                        return false;
                    }
                    obj["status"] = status;
                    true
                },
            )
            .await?;
        let waiting = ds.min_ready_seconds > 0 && s.ready != s.available;
        Ok(waiting.then(|| Duration::from_secs(ds.min_ready_seconds.unsigned_abs())))
    }
}

/// Who a pod or revision event concerns: `None` if another kind controls it.
fn dependent_msg(obj: &Value) -> Option<DaemonSetMsg> {
    let controller = obj
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == json!(true));
    let owner = match controller {
        Some(r) if r["kind"] == "DaemonSet" => r["name"].as_str().map(String::from),
        Some(_) => return None,
        None => None,
    };
    Some(DaemonSetMsg::Dependent {
        namespace: namespace_of(obj),
        owner,
    })
}

/// What of a node decides where daemons run: its labels and taints.
fn node_fingerprint(node: &Value) -> String {
    json!([
        node.pointer("/metadata/labels"),
        node.pointer("/spec/taints")
    ])
    .to_string()
}

impl Actor for DaemonSetController {
    type Msg = DaemonSetMsg;
    type State = DaemonSetState;
    type Arguments = Objects;

    async fn pre_start(
        &self,
        myself: ActorRef<DaemonSetMsg>,
        objects: Objects,
    ) -> Result<DaemonSetState, ActorProcessingErr> {
        let me = myself.clone();
        watch_prefix(
            objects.store().clone(),
            rt("apps", "daemonsets")?.prefix(),
            move |event| {
                let msg = match event {
                    None => DaemonSetMsg::Resync,
                    Some(e) => match object_of(&e) {
                        Some(d) => DaemonSetMsg::Changed(e.kind, (namespace_of(&d), name_of(&d))),
                        None => return true,
                    },
                };
                me.cast(msg).is_ok()
            },
        );
        for (group, plural) in [("", "pods"), ("apps", "controllerrevisions")] {
            let me = myself.clone();
            watch_prefix(
                objects.store().clone(),
                rt(group, plural)?.prefix(),
                move |event| {
                    let Some(obj) = event.as_ref().and_then(metadata_of) else {
                        return true;
                    };
                    match dependent_msg(&obj) {
                        Some(msg) => me.cast(msg).is_ok(),
                        None => true,
                    }
                },
            );
        }
        let me = myself.clone();
        // Nodes post status often; only labels and taints matter here, so
        // the watch remembers what it last saw of each node.
        let mut seen: HashMap<String, String> = HashMap::new();
        watch_prefix(
            objects.store().clone(),
            rt("", "nodes")?.prefix(),
            move |event| {
                let Some(e) = event else {
                    seen.clear();
                    return me.cast(DaemonSetMsg::NodesChanged).is_ok();
                };
                let Some(node) = object_of(&e) else {
                    return true;
                };
                let name = name_of(&node);
                let changed = if e.kind == EventKind::Deleted {
                    seen.remove(&name).is_some()
                } else {
                    let print = node_fingerprint(&node);
                    seen.insert(name, print.clone()).as_ref() != Some(&print)
                };
                !changed || me.cast(DaemonSetMsg::NodesChanged).is_ok()
            },
        );
        // A safety net, as in the other workload controllers.
        myself.send_interval(Duration::from_secs(30), || DaemonSetMsg::Resync);
        Ok(DaemonSetState::new(objects))
    }

    async fn handle(
        &self,
        myself: ActorRef<DaemonSetMsg>,
        msg: DaemonSetMsg,
        state: &mut DaemonSetState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            DaemonSetMsg::Resync => state.relist(&myself).await?,
            DaemonSetMsg::Changed(kind, key) => {
                let known = state.known.entry(key.0.clone()).or_default();
                if kind == EventKind::Deleted {
                    known.remove(&key.1);
                    state.queue.forget(&key);
                    state.failed_pods.forget(&format!("{}/{}/", key.0, key.1));
                } else {
                    known.insert(key.1.clone());
                    state.enqueue(&myself, key);
                }
            }
            DaemonSetMsg::Dependent { namespace, owner } => match owner {
                Some(name) => state.enqueue(&myself, (namespace, name)),
                None => state.enqueue_namespace(&myself, &namespace),
            },
            DaemonSetMsg::NodesChanged => state.enqueue_all(&myself),
            DaemonSetMsg::Retry(key) => state.enqueue(&myself, key),
            DaemonSetMsg::Drain => {
                // Coalesced: each DaemonSet syncs once however many changes queued it.
                for key in state.queue.take() {
                    match state.sync(&key).await {
                        Ok(again) => {
                            state.queue.succeeded(&key);
                            if let Some(delay) = again {
                                myself.send_after(delay, move || DaemonSetMsg::Retry(key));
                            }
                        }
                        Err(e) => {
                            let delay = retry_delay(state.queue.failed(&key));
                            warn!(daemonset = %format!("{}/{}", key.0, key.1), error = %e, retry_in = ?delay, "sync failed");
                            myself.send_after(delay, move || DaemonSetMsg::Retry(key));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
