//! The Deployment controller: keeps one ReplicaSet per pod template
//! (`<deployment>-<pod-template-hash>`) and moves replicas from the old
//! sets to the new one by the Deployment's strategy. Level-triggered like
//! the ReplicaSet controller: a change to a Deployment, to one of its sets
//! or to a pod queues the Deployment, and a sync reads everything afresh.
//! The pods themselves are the ReplicaSet controller's business.

pub mod rolling;
pub mod status;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};
use skiff_api_rules::workloads::selector_matches;
use tracing::debug;

use self::rolling::{RecreateStep, Set, fenceposts};
use super::claim;
use super::fields::{Named, create_named, record_collision, unless_gone};
use super::runtime::{Action, Controller, ObjectRef, Owners, Reconciler, Trigger};
use super::template_hash::{HASH_LABEL, template_hash, templates_equal};
use super::{metadata_of, namespace_objects};
use crate::meta::{self, annotation, controller_uid, int_at, labels as labels_of, str_at};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, EventKind, StoreError};

const COMPONENT: &str = "deployment-controller";
const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of the Deployment that are not copied to its sets (upstream's
/// `skipCopyAnnotation`): ours, and what `kubectl apply` keeps.
const NOT_COPIED: [&str; 6] = [
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX,
    "kubectl.kubernetes.io/last-applied-configuration",
    "deprecated.deployment.rollback.to",
];

const OWNERS: Owners = Owners(&[("Deployment", kinds::DEPLOYMENTS)]);

/// The controller actor.
pub type DeploymentController = Controller<Deployments>;

/// The reconciler of Deployments.
pub struct Deployments {
    objects: Objects,
}

/// Failures of a sync that are not the store's.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The set's name is taken by a set with another template; the
    /// collision count was raised so the next try uses another hash.
    #[error("replica set {0} exists with another template (hash collision)")]
    Collision(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn revision_of(rs: &Value) -> i64 {
    rs.pointer(&format!(
        "/metadata/annotations/{}",
        REVISION.replace('/', "~1")
    ))
    .and_then(Value::as_str)
    .and_then(|r| r.parse().ok())
    .unwrap_or(0)
}

fn set_of(rs: &Value) -> Set {
    Set {
        name: meta::name(rs).to_string(),
        replicas: int_at(rs, "/spec/replicas"),
        available: int_at(rs, "/status/availableReplicas"),
        max_replicas: annotation(rs, MAX).and_then(|v| v.parse().ok()),
    }
}

/// What one sync decided about the rollout, for the status.
struct Outcome {
    new_set: Option<Value>,
    created_new: bool,
}

impl Reconciler for Deployments {
    type Key = ObjectRef;
    type Change = Infallible;
    type Error = DeploymentError;
    const NAME: &'static str = "deployment";

    fn watches(&self) -> Result<Vec<String>, DeploymentError> {
        Ok(OWNERS.watches(&[kinds::REPLICASETS, kinds::PODS]))
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, Infallible>> {
        OWNERS.decode(watch, event, |dependent, event| {
            // The Deployments' resync covers a re-list.
            let e = event?;
            match dependent {
                // A ReplicaSet: its Deployment, or for an orphan every one
                // of the namespace, may care.
                0 => OWNERS.dependent(e),
                // A pod went away: Recreate waits for that.
                _ if e.kind == EventKind::Deleted => {
                    let pod = metadata_of(e)?;
                    Some(Trigger::Namespace(meta::namespace(&pod).to_string()))
                }
                _ => None,
            }
        })
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, DeploymentError> {
        Ok(OWNERS.list(&self.objects).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, DeploymentError> {
        self.sync(&key.namespace, &key.name)
            .await
            .map(Action::requeue_opt)
    }
}

impl Deployments {
    /// The reconciler, writing through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }

    /// One sync; returns when to look again if nothing else happens.
    async fn sync(&self, namespace: &str, name: &str) -> Result<Option<Duration>, DeploymentError> {
        let deployments = kinds::DEPLOYMENTS;
        // Gone: its sets are the garbage collector's business.
        let Some(d) = unless_gone(self.objects.get(deployments, Some(namespace), name).await)?
        else {
            return Ok(None);
        };
        if meta::deleting(&d) {
            return Ok(None);
        }
        let Some(selector) = claim::selector_of(&d) else {
            return Ok(None);
        };
        let uid = str_at(&d, "/metadata/uid").unwrap_or_default().to_string();
        let sets = self.claim_sets(&d, &uid, &selector, namespace).await?;
        let outcome = self.rollout(&d, sets, namespace).await?;
        self.write_status(&d, namespace, outcome).await
    }

    /// The sets this Deployment controls, adopting matching orphans.
    async fn claim_sets(
        &self,
        d: &Value,
        uid: &str,
        selector: &LabelSelector,
        namespace: &str,
    ) -> Result<Vec<Value>, DeploymentError> {
        let replicasets = kinds::REPLICASETS;
        let mut owned = Vec::new();
        for rs in namespace_objects(&self.objects, replicasets, namespace).await? {
            match controller_uid(&rs) {
                Some(c) if c == uid => owned.push(rs),
                Some(_) => {}
                None => {
                    let deleting = rs
                        .pointer("/metadata/deletionTimestamp")
                        .is_some_and(|v| !v.is_null());
                    if deleting || !selector_matches(selector, &labels_of(&rs)) {
                        continue;
                    }
                    let reference = owner_reference(d);
                    let adopted = self
                        .objects
                        .update(replicasets, Some(namespace), meta::name(&rs), |r| {
                            claim::adopt(r, &reference)
                        })
                        .await?;
                    if let Some(rs) = adopted {
                        debug!(deployment = %meta::name(d), set = %meta::name(&rs), "adopted replica set");
                        owned.push(rs);
                    }
                }
            }
        }
        owned.sort_by(|a, b| {
            let key = |v: &Value| {
                (
                    str_at(v, "/metadata/creationTimestamp")
                        .unwrap_or("")
                        .to_string(),
                    meta::name(v).to_string(),
                )
            };
            key(a).cmp(&key(b))
        });
        Ok(owned)
    }

    async fn rollout(
        &self,
        d: &Value,
        sets: Vec<Value>,
        namespace: &str,
    ) -> Result<Outcome, DeploymentError> {
        let template = d
            .pointer("/spec/template")
            .cloned()
            .unwrap_or_else(|| json!({}));
        // The oldest set with the template is the new one (a rollback
        // finds its old set here); any later duplicate is retired as old.
        let mut new_rs: Option<Value> = None;
        let mut olds = Vec::new();
        for rs in sets {
            let same = rs
                .pointer("/spec/template")
                .is_some_and(|t| templates_equal(t, &template));
            if same && new_rs.is_none() {
                new_rs = Some(rs);
            } else {
                olds.push(rs);
            }
        }
        let replicas = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let recreate = str_at(d, "/spec/strategy/type") == Some("Recreate");
        let (surge, unavailable) = if recreate {
            (0, 0)
        } else {
            fenceposts(
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                replicas,
            )
        };
        let paused = d
            .pointer("/spec/paused")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let old_sets: Vec<Set> = olds.iter().map(set_of).collect();
        let max_old_revision = olds.iter().map(revision_of).max().unwrap_or(0);
        if let Some(rs) = &new_rs {
            new_rs = Some(
                self.sync_new_annotations(d, rs, max_old_revision + 1, namespace)
                    .await?,
            );
        }
        // A changed `spec.replicas` (or a pause) only resizes the sets.
        let scaling = olds.iter().chain(new_rs.iter()).any(|rs| {
            int_at(rs, "/spec/replicas") > 0
                && annotation(rs, DESIRED).and_then(|v| v.parse::<i64>().ok()) != Some(replicas)
        });
        let mut created_new = false;
        let new_set = new_rs.as_ref().map(set_of);
        let changes: Vec<(String, i64)> = if paused || scaling {
            let d_scaling = rolling::Scaling {
                replicas,
                max_surge: surge,
                status_replicas: int_at(d, "/status/replicas"),
                rolling: !recreate,
            };
            let mut changes = rolling::scale_step(d_scaling, new_set.as_ref(), &old_sets);
            // Every active set learns the new size (its annotations), even
            // one whose count stays; else the scaling event never ends and
            // the rollout it interrupted never resumes.
            for s in old_sets.iter().chain(new_set.iter()) {
                if s.replicas > 0 && !changes.iter().any(|(n, _)| n == &s.name) {
                    changes.push((s.name.clone(), s.replicas));
                }
            }
            changes
        } else if recreate {
            let running = !olds.is_empty() && self.old_pods_running(&olds, namespace).await?;
            match rolling::recreate_step(replicas, new_set.as_ref(), &old_sets, running) {
                RecreateStep::ScaleDown(c) => c,
                RecreateStep::ScaleUp(n, r) => vec![(n, r)],
                RecreateStep::Create(r) => {
                    new_rs = Some(
                        self.create_new(d, &template, r, surge, max_old_revision + 1, namespace)
                            .await?,
                    );
                    created_new = true;
                    Vec::new()
                }
                RecreateStep::Wait | RecreateStep::Done => Vec::new(),
            }
        } else if let Some(n) = &new_set {
            rolling::rolling_step(replicas, surge, unavailable, n, &old_sets)
        } else {
            let empty = Set {
                name: String::new(),
                replicas: 0,
                available: 0,
                max_replicas: None,
            };
            let target = rolling::new_set_target(replicas, surge, &empty, &old_sets);
            new_rs = Some(
                self.create_new(d, &template, target, surge, max_old_revision + 1, namespace)
                    .await?,
            );
            created_new = true;
            Vec::new()
        };
        for (set, to) in changes {
            let Some(rs) = olds
                .iter()
                .chain(new_rs.iter())
                .find(|r| meta::name(r) == set)
            else {
                continue;
            };
            self.scale(d, rs, to, replicas, surge, namespace).await?;
        }
        let history = d
            .pointer("/spec/revisionHistoryLimit")
            .and_then(Value::as_i64)
            .unwrap_or(10);
        if !paused {
            self.prune(&olds, history, namespace).await?;
        }
        Ok(Outcome {
            new_set: new_rs,
            created_new,
        })
    }

    /// Upstream's `SetNewReplicaSetAnnotations` on an existing new set: it
    /// becomes the newest revision (a rollback), and takes the
    /// Deployment's annotations (`kubernetes.io/change-cause`).
    async fn sync_new_annotations(
        &self,
        d: &Value,
        rs: &Value,
        revision: i64,
        namespace: &str,
    ) -> Result<Value, DeploymentError> {
        let replicasets = kinds::REPLICASETS;
        let copied = copied_annotations(d);
        let min_ready = int_at(d, "/spec/minReadySeconds");
        let updated = self
            .objects
            .update(replicasets, Some(namespace), meta::name(rs), |r| {
                let mut changed = false;
                let current = revision_of(r);
                if r["metadata"]["annotations"].as_object().is_none() {
                    r["metadata"]["annotations"] = json!({});
                }
                let annotations = &mut r["metadata"]["annotations"];
                for (k, v) in &copied {
                    if annotations.get(k) != Some(v) {
                        annotations[k] = v.clone();
                        changed = true;
                    }
                }
                if current < revision {
                    if current > 0 {
                        let history =
                            match annotations.get(REVISION_HISTORY).and_then(Value::as_str) {
                                Some(h) if !h.is_empty() => format!("{h},{current}"),
                                _ => current.to_string(),
                            };
                        annotations[REVISION_HISTORY] = json!(history);
                    }
                    annotations[REVISION] = json!(revision.to_string());
                    changed = true;
                }
                if int_at(r, "/spec/minReadySeconds") != min_ready {
                    r["spec"]["minReadySeconds"] = json!(min_ready);
                    bump_generation(r);
                    changed = true;
                }
                changed
            })
            .await?;
        Ok(updated.unwrap_or_else(|| rs.clone()))
    }

    async fn create_new(
        &self,
        d: &Value,
        template: &Value,
        replicas: i64,
        surge: i64,
        revision: i64,
        namespace: &str,
    ) -> Result<Value, DeploymentError> {
        let replicasets = kinds::REPLICASETS;
        let collisions = d
            .pointer("/status/collisionCount")
            .and_then(Value::as_u64)
            .and_then(|c| u32::try_from(c).ok());
        let hash = template_hash(template, collisions);
        let name = format!("{}-{hash}", meta::name(d));
        let mut template = template.clone();
        template["metadata"]["labels"][HASH_LABEL] = json!(hash);
        let mut selector = d
            .pointer("/spec/selector")
            .cloned()
            .unwrap_or_else(|| json!({}));
        selector["matchLabels"][HASH_LABEL] = json!(hash);
        let mut annotations: serde_json::Map<String, Value> =
            copied_annotations(d).into_iter().collect();
        let desired = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        annotations.insert(REVISION.into(), json!(revision.to_string()));
        annotations.insert(DESIRED.into(), json!(desired.to_string()));
        annotations.insert(MAX.into(), json!((desired + surge).to_string()));
        let rs = json!({
            "metadata": {
                "name": name, "namespace": namespace,
                "labels": template["metadata"]["labels"].clone(),
                "annotations": annotations,
                "ownerReferences": [owner_reference(d)],
                "generation": 1,
            },
            "spec": {
                "replicas": replicas,
                "minReadySeconds": d.pointer("/spec/minReadySeconds").cloned().unwrap_or(json!(0)),
                "selector": selector,
                "template": template,
            },
        });
        match create_named(&self.objects, replicasets, (namespace, &name), rs).await? {
            Named::Created(created) => {
                if replicas > 0 {
                    let message = format!("Scaled up replica set {name} from 0 to {replicas}");
                    self.objects
                        .event(d, false, "ScalingReplicaSet", &message, COMPONENT)
                        .await;
                }
                Ok(created)
            }
            Named::Taken(existing) => {
                let ours = controller_uid(&existing) == str_at(d, "/metadata/uid");
                let same = existing
                    .pointer("/spec/template")
                    .is_some_and(|t| templates_equal(t, &template));
                if ours && same {
                    return Ok(existing);
                }
                let count = collisions.unwrap_or(0).saturating_add(1);
                record_collision(&self.objects, kinds::DEPLOYMENTS, d, count).await?;
                Err(DeploymentError::Collision(name))
            }
        }
    }

    async fn scale(
        &self,
        d: &Value,
        rs: &Value,
        to: i64,
        desired: i64,
        surge: i64,
        namespace: &str,
    ) -> Result<(), DeploymentError> {
        let replicasets = kinds::REPLICASETS;
        let from = int_at(rs, "/spec/replicas");
        let set = meta::name(rs);
        self.objects
            .update(replicasets, Some(namespace), set, |r| {
                let mut changed = false;
                if int_at(r, "/spec/replicas") != to {
                    r["spec"]["replicas"] = json!(to);
                    bump_generation(r);
                    changed = true;
                }
                if r["metadata"]["annotations"].as_object().is_none() {
                    r["metadata"]["annotations"] = json!({});
                }
                for (k, v) in [(DESIRED, desired), (MAX, desired + surge)] {
                    let v = json!(v.to_string());
                    if r["metadata"]["annotations"].get(k) != Some(&v) {
                        r["metadata"]["annotations"][k] = v;
                        changed = true;
                    }
                }
                changed
            })
            .await?;
        if from != to {
            let direction = if to > from { "up" } else { "down" };
            let message = format!("Scaled {direction} replica set {set} from {from} to {to}");
            self.objects
                .event(d, false, "ScalingReplicaSet", &message, COMPONENT)
                .await;
        }
        Ok(())
    }

    /// Whether any pod of the old sets is still there (Recreate waits until
    /// none is, so old and new never run side by side).
    async fn old_pods_running(
        &self,
        olds: &[Value],
        namespace: &str,
    ) -> Result<bool, DeploymentError> {
        let uids: BTreeSet<&str> = olds
            .iter()
            .filter_map(|r| str_at(r, "/metadata/uid"))
            .collect();
        let pods = namespace_objects(&self.objects, kinds::PODS, namespace).await?;
        Ok(pods.iter().any(|p| {
            controller_uid(p).is_some_and(|u| uids.contains(u))
                && !matches!(str_at(p, "/status/phase"), Some("Succeeded" | "Failed"))
        }))
    }

    /// Deletes the oldest empty old sets beyond `revisionHistoryLimit`.
    async fn prune(
        &self,
        olds: &[Value],
        limit: i64,
        namespace: &str,
    ) -> Result<(), DeploymentError> {
        let mut empty: Vec<&Value> = olds
            .iter()
            .filter(|r| {
                int_at(r, "/spec/replicas") == 0
                    && int_at(r, "/status/replicas") == 0
                    && r.pointer("/metadata/deletionTimestamp")
                        .is_none_or(Value::is_null)
            })
            .collect();
        let excess = empty.len() as i64 - limit.max(0);
        if excess <= 0 {
            return Ok(());
        }
        empty.sort_by_key(|r| revision_of(r));
        let replicasets = kinds::REPLICASETS;
        for rs in empty.into_iter().take(excess as usize) {
            debug!(set = %meta::name(rs), "pruning old replica set beyond the history limit");
            self.objects
                .delete(replicasets, Some(namespace), meta::name(rs))
                .await?;
        }
        Ok(())
    }

    async fn write_status(
        &self,
        d: &Value,
        namespace: &str,
        outcome: Outcome,
    ) -> Result<Option<Duration>, DeploymentError> {
        let deployments = kinds::DEPLOYMENTS;
        let uid = str_at(d, "/metadata/uid").unwrap_or_default().to_string();
        // Counts from the sets as they are now, after this sync's writes.
        let sets: Vec<Value> = namespace_objects(&self.objects, kinds::REPLICASETS, namespace)
            .await?
            .into_iter()
            .filter(|r| controller_uid(r) == Some(uid.as_str()))
            .collect();
        let new_name = outcome.new_set.as_ref().map(|s| meta::name(s).to_string());
        let sum = |pointer: &str| sets.iter().map(|r| int_at(r, pointer)).sum::<i64>();
        let replicas = d
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let recreate = str_at(d, "/spec/strategy/type") == Some("Recreate");
        let max_unavailable = if recreate {
            0
        } else {
            fenceposts(
                d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
                d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                replicas,
            )
            .1
        };
        let input = status::Input {
            generation: int_at(d, "/metadata/generation").max(1),
            replicas,
            max_unavailable,
            paused: d
                .pointer("/spec/paused")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            progress_deadline: d
                .pointer("/spec/progressDeadlineSeconds")
                .and_then(Value::as_i64),
            new_set: new_name.clone(),
            created_new: outcome.created_new,
            desired_total: sum("/spec/replicas"),
            replicas_now: sum("/status/replicas"),
            updated: sets
                .iter()
                .filter(|r| Some(meta::name(r)) == new_name.as_deref())
                .map(|r| int_at(r, "/status/replicas"))
                .sum(),
            ready: sum("/status/readyReplicas"),
            available: sum("/status/availableReplicas"),
            collision_count: d
                .pointer("/status/collisionCount")
                .and_then(Value::as_u64)
                .and_then(|c| u32::try_from(c).ok()),
        };
        let now = chrono::Utc::now();
        let revision = outcome.new_set.as_ref().map(revision_of).filter(|r| *r > 0);
        let mut written = None;
        self.objects
            .update(deployments, Some(namespace), meta::name(d), |obj| {
                if str_at(obj, "/metadata/uid") != Some(uid.as_str()) {
                    return false;
                }
                let previous = obj.get("status").cloned().unwrap_or_else(|| json!({}));
                let mut next = status::next_status(&previous, &input, now);
                // A concurrent collision bump must not be lost.
                if let Some(c) = previous.get("collisionCount") {
                    next["collisionCount"] = c.clone();
                }
                let mut changed = false;
                if let Some(r) = revision {
                    let r = json!(r.to_string());
                    if annotation(obj, REVISION).map(|v| json!(v)) != Some(r.clone()) {
                        if obj["metadata"]["annotations"].as_object().is_none() {
                            obj["metadata"]["annotations"] = json!({});
                        }
                        obj["metadata"]["annotations"][REVISION] = r;
                        changed = true;
                    }
                }
                written = Some(next.clone());
                if previous != next {
                    obj["status"] = next;
                    changed = true;
                }
                changed
            })
            .await?;
        Ok(written.and_then(|s| status::deadline_in(&s, &input, now)))
    }
}

fn bump_generation(r: &mut Value) {
    // Internal writes skip the API server, which would do this on a spec change.
    let g = int_at(r, "/metadata/generation");
    r["metadata"]["generation"] = json!(g + 1);
}

fn owner_reference(d: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "name": meta::name(d), "uid": d.pointer("/metadata/uid"),
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn copied_annotations(d: &Value) -> Vec<(String, Value)> {
    d.pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}
