//! The ReplicaSet controller, which also runs ReplicationControllers (as
//! upstream, where the RC controller is the RS controller with an equality
//! selector). Level-triggered: any change to an owner or to a pod queues the
//! owners it may concern; a sync reads the owner and its namespace's pods
//! afresh from the store, so re-running it is always safe and our own
//! writes are seen by the next sync without bookkeeping.

pub mod plan;

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use self::plan::{Owner, controller_uid};
use super::work_queue::WorkQueue;
use super::{metadata_of, object_of, watch_prefix};
use crate::registry::objects::Objects;
use crate::registry::resources::{self, ResourceType};
use crate::store::{EventKind, StoreError};

/// Which kind an owner is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerKind {
    /// apps/v1 ReplicaSet.
    ReplicaSet,
    /// v1 ReplicationController.
    ReplicationController,
}

impl OwnerKind {
    fn of(kind: &str) -> Option<Self> {
        match kind {
            "ReplicaSet" => Some(Self::ReplicaSet),
            "ReplicationController" => Some(Self::ReplicationController),
            _ => None,
        }
    }

    fn resource(self) -> Option<&'static ResourceType> {
        match self {
            Self::ReplicaSet => resources::find("apps", "v1", "replicasets"),
            Self::ReplicationController => resources::find("", "v1", "replicationcontrollers"),
        }
    }

    /// The event source name upstream uses.
    fn component(self) -> &'static str {
        match self {
            Self::ReplicaSet => "replicaset-controller",
            Self::ReplicationController => "replication-controller",
        }
    }
}

/// An owner's identity: kind, namespace, name.
pub type OwnerKey = (OwnerKind, String, String);

/// Messages of the controller.
#[derive(Debug)]
pub enum ReplicaSetMsg {
    /// An owner was added, changed or deleted.
    OwnerChanged(EventKind, OwnerKey),
    /// A pod changed: its controller (if an RS/RC) and, for orphans, every
    /// owner of its namespace may need a sync.
    PodChanged {
        /// The pod's namespace.
        namespace: String,
        /// Its controller, if it has one of our kinds.
        controller: Option<(OwnerKind, String)>,
        /// Whether it has no controller at all (adoptable).
        orphan: bool,
    },
    /// A watch (re)started: re-list the owners and sync them all.
    Resync,
    /// Work through the queue.
    Drain,
    /// Sync one owner again (after a failure).
    Retry(OwnerKey),
}

/// The controller actor.
pub struct ReplicaSetController;

/// Its state.
pub struct ReplicaSetState {
    objects: Objects,
    /// Known owners by namespace (for orphans to find candidates).
    owners: HashMap<String, BTreeSet<OwnerKey>>,
    /// Keys to sync, and failures in a row for the retry back-off.
    queue: WorkQueue<OwnerKey>,
}

fn pods_rt() -> Result<&'static ResourceType, ActorProcessingErr> {
    Ok(resources::find("", "v1", "pods").ok_or("pods type")?)
}

fn name_of(v: &Value) -> String {
    v.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

impl ReplicaSetState {
    fn enqueue(&mut self, me: &ActorRef<ReplicaSetMsg>, key: OwnerKey) {
        if self.queue.add(key) {
            let _ = me.cast(ReplicaSetMsg::Drain);
        }
    }

    async fn relist(&mut self, me: &ActorRef<ReplicaSetMsg>) -> Result<(), ActorProcessingErr> {
        self.owners.clear();
        for kind in [OwnerKind::ReplicaSet, OwnerKind::ReplicationController] {
            let rt = kind.resource().ok_or("owner type")?;
            let (items, _) = self.objects.list(rt).await?;
            for obj in items {
                let ns = obj["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                let key = (kind, ns.clone(), name_of(&obj));
                self.owners.entry(ns).or_default().insert(key.clone());
                self.enqueue(me, key);
            }
        }
        Ok(())
    }

    /// One sync: claim, create or delete, report status.
    async fn sync(&self, key: &OwnerKey) -> Result<(), ActorProcessingErr> {
        let (kind, namespace, name) = key;
        let rt = kind.resource().ok_or("owner type")?;
        let owner_obj = match self.objects.get(rt, Some(namespace), name).await {
            Ok(o) => o,
            // Gone: its pods are the garbage collector's business.
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let Some(owner) = Owner::from_object(&owner_obj) else {
            return Ok(());
        };
        let pods = self.namespace_pods(namespace).await?;
        let plan = plan::plan(&owner, &pods, chrono::Utc::now());
        let pods_rt = pods_rt()?;
        let reference = json!({
            "apiVersion": owner_obj["apiVersion"], "kind": owner_obj["kind"],
            "name": name, "uid": owner.uid,
            "controller": true, "blockOwnerDeletion": true,
        });
        for pod in &plan.adopt {
            self.objects
                .update(pods_rt, Some(namespace), pod, |p| {
                    if controller_uid(p).is_some() {
                        return false;
                    }
                    let refs = p["metadata"]["ownerReferences"].as_array_mut();
                    match refs {
                        Some(refs) => refs.push(reference.clone()),
                        None => p["metadata"]["ownerReferences"] = json!([reference.clone()]),
                    }
                    true
                })
                .await?;
            debug!(owner = %format!("{namespace}/{name}"), %pod, "adopted pod");
        }
        for pod in &plan.release {
            self.objects
                .update(pods_rt, Some(namespace), pod, |p| {
                    let Some(refs) = p["metadata"]["ownerReferences"].as_array_mut() else {
                        return false;
                    };
                    let before = refs.len();
                    refs.retain(|r| r["uid"] != json!(owner.uid));
                    if before == refs.len() {
                        return false;
                    }
                    // An empty list is omitted, as upstream serializes it.
                    if refs.is_empty()
                        && let Some(m) = p["metadata"].as_object_mut()
                    {
                        m.remove("ownerReferences");
                    }
                    true
                })
                .await?;
            info!(owner = %format!("{namespace}/{name}"), %pod, "released pod whose labels no longer match");
        }
        let mut failure = None;
        'create: for batch in plan::slow_start_batches(plan.create) {
            for _ in 0..batch {
                let pod = pod_from_template(&owner_obj, &reference);
                match self.objects.create(pods_rt, pod).await {
                    Ok(created) => {
                        let message = format!("Created pod: {}", name_of(&created));
                        self.objects
                            .event(
                                &owner_obj,
                                false,
                                "SuccessfulCreate",
                                &message,
                                kind.component(),
                            )
                            .await;
                    }
                    Err(e) => {
                        let message = format!("Error creating: {e}");
                        self.objects
                            .event(&owner_obj, true, "FailedCreate", &message, kind.component())
                            .await;
                        failure = Some(e);
                        break 'create;
                    }
                }
            }
        }
        for pod in &plan.delete {
            self.objects.delete_pod(namespace, pod).await?;
            let message = format!("Deleted pod: {pod}");
            self.objects
                .event(
                    &owner_obj,
                    false,
                    "SuccessfulDelete",
                    &message,
                    kind.component(),
                )
                .await;
        }
        self.write_status(rt, key, &owner, &plan).await?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    async fn namespace_pods(&self, namespace: &str) -> Result<Vec<Value>, ActorProcessingErr> {
        let prefix = format!("{}{namespace}/", pods_rt()?.prefix());
        let listing = self.objects.store().list(&prefix).await?;
        Ok(listing
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect())
    }

    async fn write_status(
        &self,
        rt: &ResourceType,
        (_, namespace, name): &OwnerKey,
        owner: &Owner,
        plan: &plan::Plan,
    ) -> Result<(), ActorProcessingErr> {
        let fields = [
            ("replicas", plan.replicas),
            ("fullyLabeledReplicas", plan.fully_labeled),
            ("readyReplicas", plan.ready),
            ("availableReplicas", plan.available),
        ];
        self.objects
            .update(rt, Some(namespace), name, |obj| {
                if obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(&owner.uid) {
                    return false;
                }
                let mut status = obj
                    .get("status")
                    .cloned()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({}));
                for (field, value) in fields {
                    // Upstream omits zero counts (omitempty), except replicas.
                    if value == 0 && field != "replicas" {
                        if let Some(m) = status.as_object_mut() {
                            m.remove(field);
                        }
                    } else {
                        status[field] = json!(value);
                    }
                }
                status["observedGeneration"] = json!(owner.generation);
                if obj.get("status") == Some(&status) {
                    return false;
                }
                obj["status"] = status;
                true
            })
            .await?;
        Ok(())
    }
}

/// A new pod from the owner's template, named `<owner>-<5 random chars>`.
fn pod_from_template(owner: &Value, reference: &Value) -> Value {
    let template = owner.pointer("/spec/template").cloned().unwrap_or_default();
    let mut metadata = template
        .get("metadata")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let Some(m) = metadata.as_object_mut() {
        m.remove("name");
        m.remove("creationTimestamp");
    }
    metadata["generateName"] = json!(format!("{}-", name_of(owner)));
    metadata["namespace"] = owner["metadata"]["namespace"].clone();
    metadata["ownerReferences"] = json!([reference]);
    json!({
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

impl Actor for ReplicaSetController {
    type Msg = ReplicaSetMsg;
    type State = ReplicaSetState;
    type Arguments = Objects;

    async fn pre_start(
        &self,
        myself: ActorRef<ReplicaSetMsg>,
        objects: Objects,
    ) -> Result<ReplicaSetState, ActorProcessingErr> {
        for kind in [OwnerKind::ReplicaSet, OwnerKind::ReplicationController] {
            let rt = kind.resource().ok_or("owner type")?;
            let me = myself.clone();
            watch_prefix(objects.store().clone(), rt.prefix(), move |event| {
                let msg = match event {
                    None => ReplicaSetMsg::Resync,
                    Some(e) => match object_of(&e) {
                        Some(obj) => {
                            let ns = obj["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("default")
                                .to_string();
                            ReplicaSetMsg::OwnerChanged(e.kind, (kind, ns, name_of(&obj)))
                        }
                        None => return true,
                    },
                };
                me.cast(msg).is_ok()
            });
        }
        let me = myself.clone();
        watch_prefix(objects.store().clone(), pods_rt()?.prefix(), move |event| {
            let msg = match event {
                // The owners' resync covers every pod.
                None => return true,
                Some(e) => match metadata_of(&e) {
                    Some(pod) => {
                        let refs = pod["metadata"]["ownerReferences"].as_array();
                        let controller = refs
                            .into_iter()
                            .flatten()
                            .find(|r| r["controller"] == json!(true));
                        ReplicaSetMsg::PodChanged {
                            namespace: pod["metadata"]["namespace"]
                                .as_str()
                                .unwrap_or("default")
                                .to_string(),
                            controller: controller.and_then(|r| {
                                Some((
                                    OwnerKind::of(r["kind"].as_str()?)?,
                                    r["name"].as_str()?.to_string(),
                                ))
                            }),
                            orphan: controller.is_none(),
                        }
                    }
                    None => return true,
                },
            };
            me.cast(msg).is_ok()
        });
        // A safety net: every owner is synced now and then (level-triggered).
        myself.send_interval(Duration::from_secs(30), || ReplicaSetMsg::Resync);
        Ok(ReplicaSetState {
            objects,
            owners: HashMap::new(),
            queue: WorkQueue::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<ReplicaSetMsg>,
        msg: ReplicaSetMsg,
        state: &mut ReplicaSetState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ReplicaSetMsg::Resync => state.relist(&myself).await?,
            ReplicaSetMsg::OwnerChanged(kind, key) => {
                let known = state.owners.entry(key.1.clone()).or_default();
                if kind == EventKind::Deleted {
                    known.remove(&key);
                    state.queue.forget(&key);
                } else {
                    known.insert(key.clone());
                    state.enqueue(&myself, key);
                }
            }
            ReplicaSetMsg::PodChanged {
                namespace,
                controller,
                orphan,
            } => {
                if let Some((kind, name)) = controller {
                    state.enqueue(&myself, (kind, namespace.clone(), name));
                }
                if orphan {
                    let candidates: Vec<OwnerKey> = state
                        .owners
                        .get(&namespace)
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    for key in candidates {
                        state.enqueue(&myself, key);
                    }
                }
            }
            ReplicaSetMsg::Retry(key) => state.enqueue(&myself, key),
            ReplicaSetMsg::Drain => {
                // Coalesced: each owner syncs once however many changes queued it.
                for key in state.queue.take() {
                    match state.sync(&key).await {
                        Ok(()) => {
                            state.queue.succeeded(&key);
                        }
                        Err(e) => {
                            let delay = state.queue.failed(&key);
                            warn!(owner = %format!("{}/{}", key.1, key.2), error = %e, retry_in = ?delay, "sync failed");
                            myself.send_after(delay, move || ReplicaSetMsg::Retry(key));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
