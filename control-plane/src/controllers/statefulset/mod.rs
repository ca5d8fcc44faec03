//! The StatefulSet controller: pods `<set>-0..N-1` with a stable identity
//! (hostname, subdomain, labels) and storage (one claim per
//! `volumeClaimTemplates` entry and ordinal, kept when the pod goes), made
//! and replaced in ordinal order ([`plan`]), with the set's template
//! history in ControllerRevisions ([`revision`]). Level-triggered like the
//! ReplicaSet controller: a change to a set or to one of its pods queues
//! the set, and a sync reads the set, its revisions and its pods afresh.
//!
//! A pod is never replaced while its object exists: a pod on a lost node
//! stays `Terminating` until the node confirms or its Node object is
//! deleted, and only then is its ordinal created again, so two pods of one
//! ordinal never run at once (upstream's at-most-one guarantee).

pub mod plan;
pub mod pods;
pub mod revision;

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};
use skiff_api_rules::workloads::selector_matches;
use tracing::{debug, info};

use self::plan::{Action, Revision, SetSpec, Strategy};
use self::revision::{Choice, HASH_LABEL, Known};
use super::claim;
use super::fields::{
    Named, create_named, edit_status, object_at, record_collision, set_count, unless_gone,
};
use super::namespace_objects;
use super::runtime::{self, Controller, ObjectRef, Owners, Reconciler, Trigger};
use crate::meta::{self, controller_uid, deleting, labels as labels_of, str_at};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

const COMPONENT: &str = "statefulset-controller";

/// The operations [`StatefulSets::tell`] tells of: the verb of the
/// message and the operation of the reason.
const CREATE: (&str, &str) = ("create", "Create");
const DELETE: (&str, &str) = ("delete", "Delete");

const STATEFUL_SET: &str = "StatefulSet";
const OWNERS: Owners = Owners(&[(STATEFUL_SET, kinds::STATEFULSETS)]);

/// Failures of a sync that are not the store's.
#[derive(Debug, thiserror::Error)]
pub enum StatefulSetError {
    /// The revision name is taken by another set's or template's revision;
    /// the collision count was raised so the next try uses another hash.
    #[error("controller revision {0} exists with other data (hash collision)")]
    Collision(String),
    /// A claim the pod needs is being deleted.
    #[error("pvc {0} is being deleted")]
    ClaimDeleting(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The controller actor.
pub type StatefulSetController = Controller<StatefulSets>;

/// The reconciler of StatefulSets.
pub struct StatefulSets {
    objects: Objects,
}

/// The set's two revisions as this sync uses them.
struct Revisions {
    current: Known,
    update: Known,
    all: Vec<Known>,
    collisions: u32,
}

impl Reconciler for StatefulSets {
    type Key = ObjectRef;
    type Change = Infallible;
    type Error = StatefulSetError;
    const NAME: &'static str = "statefulset";

    fn watches(&self) -> Result<Vec<String>, StatefulSetError> {
        Ok(OWNERS.watches(&[kinds::PODS]))
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, Infallible>> {
        // The sets' resync covers every pod.
        OWNERS.decode(watch, event, |_, pod| OWNERS.dependent(pod?))
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, StatefulSetError> {
        Ok(OWNERS.list(&self.objects).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<runtime::Action, StatefulSetError> {
        self.sync(key).await.map(runtime::Action::requeue_opt)
    }
}

impl StatefulSets {
    /// The reconciler, writing through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }

    /// One sync; returns when to look again if nothing else happens.
    async fn sync(&self, key: &ObjectRef) -> Result<Option<Duration>, StatefulSetError> {
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        let sets = kinds::STATEFULSETS;
        // Gone: its pods are the garbage collector's, its claims stay.
        let Some(set) = unless_gone(self.objects.get(sets, Some(namespace), name).await)? else {
            return Ok(None);
        };
        let Some(selector) = claim::selector_of(&set) else {
            return Ok(None);
        };
        let revisions = self.revisions(&set, namespace).await?;
        let pods = self.claim_pods(&set, &selector, namespace).await?;
        let spec = SetSpec::from_object(&set);
        let now = chrono::Utc::now();
        if !deleting(&set) {
            let plan = plan::plan(
                &spec,
                &pods,
                &revisions.current.name,
                &revisions.update.name,
                now,
            );
            if let Some(why) = &plan.waiting {
                debug!("waiting for {why}");
            }
            self.ensure_claims_of_pending(&set, &pods).await?;
            self.execute(&set, &revisions, plan.actions).await?;
        }
        self.write_status(&set, &spec, &pods, &revisions).await?;
        Ok(plan::next_availability(&pods, spec.min_ready_seconds, now))
    }

    /// The set's revisions, making (or renumbering) the one of its template.
    async fn revisions(&self, set: &Value, namespace: &str) -> Result<Revisions, StatefulSetError> {
        let crs = kinds::CONTROLLERREVISIONS;
        let uid = str_at(set, "/metadata/uid").unwrap_or_default();
        let mut all: Vec<Known> = namespace_objects(&self.objects, crs, namespace)
            .await?
            .iter()
            .filter(|r| controller_uid(r) == Some(uid))
            .map(Known::of)
            .collect();
        revision::sort(&mut all);
        let data = revision::patch_of(set);
        let mut collisions = set
            .pointer("/status/collisionCount")
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok())
            .unwrap_or(0);
        let update = match revision::choose(&all, &data) {
            Choice::Latest(name) => all.iter().find(|r| r.name == name).cloned(),
            Choice::Renumber { name, to } => {
                self.objects
                    .update(crs, Some(namespace), &name, |r| {
                        if r["revision"] == json!(to) {
                            return false;
                        }
                        r["revision"] = json!(to);
                        true
                    })
                    .await?;
                let found = all.iter_mut().find(|r| r.name == name).map(|r| {
                    r.number = to;
                    r.clone()
                });
                revision::sort(&mut all);
                found
            }
            Choice::Create { number } => {
                let created = self
                    .create_revision(set, &data, number, &mut collisions, namespace)
                    .await?;
                all.push(created.clone());
                revision::sort(&mut all);
                Some(created)
            }
        };
        let update =
            update.ok_or_else(|| StatefulSetError::Collision(meta::name(set).to_string()))?;
        let current = str_at(set, "/status/currentRevision")
            .and_then(|c| all.iter().find(|r| r.name == c))
            .cloned()
            .unwrap_or_else(|| update.clone());
        Ok(Revisions {
            current,
            update,
            all,
            collisions,
        })
    }

    async fn create_revision(
        &self,
        set: &Value,
        data: &Value,
        number: i64,
        collisions: &mut u32,
        namespace: &str,
    ) -> Result<Known, StatefulSetError> {
        let crs = kinds::CONTROLLERREVISIONS;
        let set_name = meta::name(set);
        let hash = revision::hash(data, *collisions);
        let name = revision::name(set_name, &hash);
        let mut labels = object_at(set, "/spec/template/metadata/labels");
        labels[HASH_LABEL] = json!(hash);
        let mut metadata = json!({
            "name": name, "namespace": namespace, "labels": labels,
            "ownerReferences": [pods::controller_ref(set)],
        });
        // Upstream copies every annotation of the set (kubectl's
        // change-cause among them) onto its revisions.
        if let Some(a) = set
            .pointer("/metadata/annotations")
            .filter(|a| a.is_object())
        {
            metadata["annotations"] = a.clone();
        }
        let cr = json!({"metadata": metadata, "data": data, "revision": number});
        match create_named(&self.objects, crs, (namespace, &name), cr).await? {
            Named::Created(created) => Ok(Known::of(&created)),
            Named::Taken(existing) => {
                if controller_uid(&existing) == str_at(set, "/metadata/uid")
                    && existing.get("data") == Some(data)
                {
                    return Ok(Known::of(&existing));
                }
                *collisions = collisions.saturating_add(1);
                record_collision(&self.objects, kinds::STATEFULSETS, set, *collisions).await?;
                Err(StatefulSetError::Collision(name))
            }
        }
    }

    /// The set's member pods: owned ones that still match, plus matching
    /// orphans it adopts; owned pods that no longer match are released.
    async fn claim_pods(
        &self,
        set: &Value,
        selector: &LabelSelector,
        namespace: &str,
    ) -> Result<Vec<Value>, StatefulSetError> {
        let pods_rt = kinds::PODS;
        let uid = str_at(set, "/metadata/uid").unwrap_or_default().to_string();
        let set_name = meta::name(set);
        let mut mine = Vec::new();
        for pod in namespace_objects(&self.objects, pods_rt, namespace).await? {
            let matches = selector_matches(selector, &labels_of(&pod))
                && plan::ordinal_of(set_name, meta::name(&pod)).is_some();
            match controller_uid(&pod) {
                Some(c) if c == uid && matches => mine.push(pod),
                Some(c) if c == uid => {
                    self.objects
                        .update(pods_rt, Some(namespace), meta::name(&pod), |p| {
                            claim::release(p, |owner| owner == uid)
                        })
                        .await?;
                    info!(set = %set_name, pod = %meta::name(&pod), "released pod that no longer matches");
                }
                Some(_) => {}
                None if matches && !deleting(set) && !deleting(&pod) => {
                    let reference = pods::controller_ref(set);
                    let adopted = self
                        .objects
                        .update(pods_rt, Some(namespace), meta::name(&pod), |p| {
                            claim::adopt(p, &reference)
                        })
                        .await?;
                    if let Some(p) = adopted {
                        debug!(set = %set_name, pod = %meta::name(&p), "adopted pod");
                        mine.push(p);
                    }
                }
                None => {}
            }
        }
        Ok(mine)
    }

    /// Creates the claims of the pod of `ordinal` that do not exist yet.
    async fn ensure_claims(&self, set: &Value, ordinal: usize) -> Result<(), StatefulSetError> {
        let claims_rt = kinds::PERSISTENTVOLUMECLAIMS;
        let pod_name = format!("{}-{ordinal}", meta::name(set));
        for (_, claim) in pods::claims(set, ordinal) {
            let namespace = str_at(&claim, "/metadata/namespace").unwrap_or("default");
            let claim_name = meta::name(&claim).to_string();
            match self
                .objects
                .get(claims_rt, Some(namespace), &claim_name)
                .await
            {
                Ok(existing) if deleting(&existing) => {
                    return Err(StatefulSetError::ClaimDeleting(claim_name));
                }
                Ok(_) => continue,
                Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
            match self.objects.create(claims_rt, claim).await {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => {
                    let message = format!(
                        "create Claim {claim_name} Pod {pod_name} in StatefulSet {} success",
                        meta::name(set)
                    );
                    self.objects
                        .event(set, false, "SuccessfulCreate", &message, COMPONENT)
                        .await;
                }
                Err(e) => {
                    let what = format!("Claim {claim_name} for Pod {pod_name}");
                    self.tell(set, CREATE, &what, Some(&e)).await;
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }

    /// Upstream re-creates the claims of pods still Pending (a claim
    /// deleted by hand would otherwise leave its pod waiting forever).
    async fn ensure_claims_of_pending(
        &self,
        set: &Value,
        pods: &[Value],
    ) -> Result<(), StatefulSetError> {
        if pods::claims(set, 0).is_empty() {
            return Ok(());
        }
        let set_name = meta::name(set);
        for pod in pods {
            if str_at(pod, "/status/phase") != Some("Pending") || deleting(pod) {
                continue;
            }
            if let Some(ordinal) = plan::ordinal_of(set_name, meta::name(pod)) {
                self.ensure_claims(set, ordinal).await?;
            }
        }
        Ok(())
    }

    async fn execute(
        &self,
        set: &Value,
        revisions: &Revisions,
        actions: Vec<Action>,
    ) -> Result<(), StatefulSetError> {
        let namespace = meta::namespace(set);
        let set_name = meta::name(set);
        let pods_rt = kinds::PODS;
        for action in actions {
            match action {
                Action::Create { ordinal, revision } => {
                    self.create_pod(set, revisions, ordinal, revision).await?;
                }
                Action::Recreate {
                    pod,
                    ordinal,
                    revision,
                    failed,
                } => {
                    let (warning, reason, what) = if failed {
                        (true, "RecreatingFailedPod", "failed")
                    } else {
                        (false, "RecreatingTerminatedPod", "terminated")
                    };
                    let message = format!(
                        "StatefulSet {namespace}/{set_name} is recreating {what} Pod {pod}"
                    );
                    self.objects
                        .event(set, warning, reason, &message, COMPONENT)
                        .await;
                    self.delete_pod(set, &pod).await?;
                    self.create_pod(set, revisions, ordinal, revision).await?;
                }
                Action::Relabel { pod, ordinal } => {
                    self.objects
                        .update(pods_rt, Some(namespace), &pod, |p| {
                            pods::set_identity(p, ordinal)
                        })
                        .await?;
                }
                Action::ScaleDown { pod } => {
                    info!(set = %format!("{namespace}/{set_name}"), %pod, "terminating pod for scale down");
                    self.delete_pod(set, &pod).await?;
                }
                Action::Update { pod } => {
                    info!(set = %format!("{namespace}/{set_name}"), %pod, "terminating pod for update");
                    self.delete_pod(set, &pod).await?;
                }
            }
        }
        Ok(())
    }

    async fn create_pod(
        &self,
        set: &Value,
        revisions: &Revisions,
        ordinal: usize,
        revision: Revision,
    ) -> Result<(), StatefulSetError> {
        let (from, revision_name) = match revision {
            Revision::Current => (
                revision::applied(set, &revisions.current.data),
                &revisions.current.name,
            ),
            Revision::Update => (set.clone(), &revisions.update.name),
        };
        let pod = pods::new_pod(&from, ordinal, revision_name);
        let pod_name = meta::name(&pod).to_string();
        let what = format!("Pod {pod_name}");
        if let Err(e) = self.ensure_claims(set, ordinal).await {
            self.tell(set, CREATE, &what, Some(&e)).await;
            return Err(e);
        }
        match self.objects.create(kinds::PODS, pod).await {
            // The old pod is still going (a recreate): its removal queues
            // the set again.
            Err(StoreError::AlreadyExists(_)) => Ok(()),
            created => {
                let failure = created.as_ref().err();
                self.tell(set, CREATE, &what, failure).await;
                created.map(drop).map_err(Into::into)
            }
        }
    }

    async fn delete_pod(&self, set: &Value, pod: &str) -> Result<(), StatefulSetError> {
        let deleted = self.objects.delete_pod(meta::namespace(set), pod).await;
        let failure = deleted.as_ref().err();
        self.tell(set, DELETE, &format!("Pod {pod}"), failure).await;
        Ok(deleted?)
    }

    /// Tells of creating or deleting `what` (`Pod web-0`) as upstream's
    /// StatefulSet controller does: `Successful<Op>`, or a `Failed<Op>`
    /// warning with the `failure`.
    async fn tell<E: std::fmt::Display + Sync>(
        &self,
        set: &Value,
        (verb, op): (&str, &str),
        what: &str,
        failure: Option<&E>,
    ) {
        let set_name = meta::name(set);
        let (warning, reason, message) = match failure {
            None => (
                false,
                format!("Successful{op}"),
                format!("{verb} {what} in StatefulSet {set_name} successful"),
            ),
            Some(e) => (
                true,
                format!("Failed{op}"),
                format!("{verb} {what} in StatefulSet {set_name} failed error: {e}"),
            ),
        };
        self.objects
            .event(set, warning, &reason, &message, COMPONENT)
            .await;
    }

    async fn write_status(
        &self,
        set: &Value,
        spec: &SetSpec,
        pods: &[Value],
        revisions: &Revisions,
    ) -> Result<(), StatefulSetError> {
        let namespace = meta::namespace(set);
        let uid = str_at(set, "/metadata/uid").unwrap_or_default().to_string();
        let (mut current, update) = (&revisions.current.name, &revisions.update.name);
        let mut c = plan::counts(
            pods,
            current,
            update,
            spec.min_ready_seconds,
            chrono::Utc::now(),
        );
        // Upstream's `completeRollingUpdate`: every pod updated and Ready.
        if matches!(spec.strategy, Strategy::RollingUpdate { .. })
            && c.updated == c.replicas
            && c.ready == c.replicas
        {
            c.current = c.updated;
            current = update;
        }
        let generation = set
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let collisions = revisions.collisions;
        let (current, update) = (current.clone(), update.clone());
        self.objects
            .update(
                kinds::STATEFULSETS,
                Some(namespace),
                meta::name(set),
                |obj| {
                    edit_status(obj, &uid, |status| {
                        // `omitempty` as upstream's StatefulSetStatus, except these.
                        status["replicas"] = json!(c.replicas);
                        status["availableReplicas"] = json!(c.available);
                        set_count(status, "readyReplicas", c.ready);
                        set_count(status, "currentReplicas", c.current);
                        set_count(status, "updatedReplicas", c.updated);
                        status["observedGeneration"] = json!(generation);
                        status["currentRevision"] = json!(current);
                        status["updateRevision"] = json!(update);
                        // A concurrent collision bump must not be lost.
                        let stored = status
                            .get("collisionCount")
                            .and_then(Value::as_u64)
                            .unwrap_or(0);
                        status["collisionCount"] = json!(stored.max(u64::from(collisions)));
                    })
                },
            )
            .await?;
        self.truncate_history(set, pods, revisions, &current).await
    }

    async fn truncate_history(
        &self,
        set: &Value,
        pods: &[Value],
        revisions: &Revisions,
        current: &str,
    ) -> Result<(), StatefulSetError> {
        let limit = set
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_u64)
            .unwrap_or(10);
        let mut live: HashSet<String> = pods
            .iter()
            .filter_map(|p| plan::revision_of(p).map(String::from))
            .collect();
        live.insert(current.to_string());
        live.insert(revisions.current.name.clone());
        live.insert(revisions.update.name.clone());
        let namespace = meta::namespace(set);
        let crs = kinds::CONTROLLERREVISIONS;
        for name in revision::history_to_delete(&revisions.all, &live, limit as usize) {
            debug!(set = %meta::name(set), revision = %name, "pruning revision beyond the history limit");
            self.objects.delete(crs, Some(namespace), &name).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
