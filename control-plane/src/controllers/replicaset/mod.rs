pub mod plan;

use std::convert::Infallible;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{debug, info};

use self::plan::Owner;
use super::claim;
use super::fields::{edit_status, set_count, unless_gone};
use super::namespace_objects;
use super::pod::{create_pod, slow_start_batches, template_metadata};
use super::runtime::{Action, Controller, ObjectRef, Owners, Reconciler, Trigger};
use crate::meta::{self};
use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::{Event, StoreError};

const REPLICA_SET: &str = "ReplicaSet";
const REPLICATION_CONTROLLER: &str = "ReplicationController";
const OWNERS: Owners = Owners(&[
    (REPLICA_SET, crate::registry::kinds::REPLICASETS),
    (
        REPLICATION_CONTROLLER,
        crate::registry::kinds::REPLICATIONCONTROLLERS,
    ),
]);

fn owner_rt(kind: &str) -> &'static ResourceType {
    match kind {
        REPLICA_SET => crate::registry::kinds::REPLICASETS,
        _ => crate::registry::kinds::REPLICATIONCONTROLLERS,
    }
}

/// The event source name upstream uses.
fn component(kind: &str) -> &'static str {
    match kind {
        REPLICA_SET => "replicaset-controller",
        _ => "replication-controller",
    }
}

/// What can go wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaSetError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The controller actor.
pub type ReplicaSetController = Controller<ReplicaSets>;

/// The reconciler of ReplicaSets and ReplicationControllers.
pub struct ReplicaSets {
    objects: Objects,
}

impl Reconciler for ReplicaSets {
    type Key = ObjectRef;
    type Change = Infallible;
    type Error = ReplicaSetError;
    const NAME: &'static str = "replicaset";

    fn watches(&self) -> Result<Vec<String>, ReplicaSetError> {
        Ok(OWNERS.watches(&[crate::registry::kinds::PODS]))
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, Infallible>> {
        // The owners' resync covers every pod.
        OWNERS.decode(watch, event, |_, pod| OWNERS.dependent(pod?))
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, ReplicaSetError> {
        Ok(OWNERS.list(&self.objects).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, ReplicaSetError> {
        self.sync(key).await.map(Action::requeue_opt)
    }
}

impl ReplicaSets {
    /// The reconciler, writing through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }

    /// One sync: claim, create or delete, report status. Returns when a
    /// ready pod becomes available (`minReadySeconds`), for the status.
    pub async fn sync(&self, key: &ObjectRef) -> Result<Option<Duration>, ReplicaSetError> {
        let ObjectRef {
            kind,
            namespace,
            name,
        } = key;
        let rt = owner_rt(kind);
        // Gone: its pods are the garbage collector's business.
        let Some(owner_obj) = unless_gone(self.objects.get(rt, Some(namespace), name).await)?
        else {
            return Ok(None);
        };
        let Some(owner) = Owner::from_object(&owner_obj) else {
            return Ok(None);
        };
        let pods =
            namespace_objects(&self.objects, crate::registry::kinds::PODS, namespace).await?;
        let plan = plan::plan(&owner, &pods, chrono::Utc::now());
        let pods_rt = crate::registry::kinds::PODS;
        let reference = json!({
            "apiVersion": owner_obj["apiVersion"], "kind": owner_obj["kind"],
            "name": name, "uid": owner.uid,
            "controller": true, "blockOwnerDeletion": true,
        });
        for pod in &plan.adopt {
            self.objects
                .update(pods_rt, Some(namespace), pod, |p| {
                    claim::adopt(p, &reference)
                })
                .await?;
            debug!(%pod, "adopted pod");
        }
        for pod in &plan.release {
            self.objects
                .update(pods_rt, Some(namespace), pod, |p| {
                    claim::release(p, |uid| uid == owner.uid)
                })
                .await?;
            info!(%pod, "released pod whose labels no longer match");
        }
        let mut failure = None;
        'create: for batch in slow_start_batches(plan.create) {
            for _ in 0..batch {
                let pod = pod_from_template(&owner_obj, &reference);
                let created = create_pod(&self.objects, &owner_obj, pod, component(kind)).await;
                if let Err(e) = created {
                    failure = Some(e);
                    break 'create;
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
                    component(kind),
                )
                .await;
        }
        self.write_status(rt, key, &owner, &plan).await?;
        match failure {
            Some(e) => Err(e.into()),
            None => Ok(plan.next_available),
        }
    }

    async fn write_status(
        &self,
        rt: &ResourceType,
        ObjectRef {
            namespace, name, ..
        }: &ObjectRef,
        owner: &Owner,
        plan: &plan::Plan,
    ) -> Result<(), ReplicaSetError> {
        let counts = [
            ("fullyLabeledReplicas", plan.fully_labeled),
            ("readyReplicas", plan.ready),
            ("availableReplicas", plan.available),
        ];
        self.objects
            .update(rt, Some(namespace), name, |obj| {
                edit_status(obj, &owner.uid, |status| {
                    // Upstream omits zero counts (omitempty), except replicas.
                    status["replicas"] = json!(plan.replicas);
                    for (field, value) in counts {
                        set_count(status, field, value);
                    }
                    status["observedGeneration"] = json!(owner.generation);
                })
            })
            .await?;
        Ok(())
    }
}

/// A new pod from the owner's template, named `<owner>-<5 random chars>`.
fn pod_from_template(owner: &Value, reference: &Value) -> Value {
    let template = owner.pointer("/spec/template").cloned().unwrap_or_default();
    let mut metadata = template_metadata(&template);
    metadata["generateName"] = json!(format!("{}-", meta::name(owner)));
    metadata["namespace"] = owner["metadata"]["namespace"].clone();
    metadata["ownerReferences"] = json!([reference]);
    json!({
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}

#[cfg(test)]
mod tests;
