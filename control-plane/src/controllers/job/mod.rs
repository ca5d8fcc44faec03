//! The Job controller (batch/v1): runs a Job's pods to completion —
//! `completions` successes with at most `parallelism` pods at a time, or a
//! work queue (no `completions`) done when a pod succeeded and the rest
//! finished; replaces failed pods after a doubling back-off until
//! `backoffLimit` (failed pods with `restartPolicy: Never`, container
//! restarts with `OnFailure`); `activeDeadlineSeconds`, `suspend`,
//! Indexed completion and `ttlSecondsAfterFinished`.
//!
//! Level-triggered like the ReplicaSet controller: a change to a Job or to
//! one of its pods queues the Job, and [`sync::JobSync`] reads everything
//! afresh. Syncs that wait for a time (deadline, back-off, TTL) ask to be
//! woken then; time comes from a [`crate::clock::Clock`].

pub mod backoff;
pub mod pods;
pub mod status;
pub mod sync;
#[cfg(test)]
mod tests;

use std::time::Duration;

use serde_json::Value;

pub use self::backoff::Backoff;
use self::sync::JobSync;
use super::metadata_of;
use super::runtime::{
    Action, Controlled, Controller, ObjectRef, OwnerIndex, Owners, Reconciler, Trigger,
};
use crate::clock::SharedClock;
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::Event;

/// The event source upstream's Job controller uses.
pub const COMPONENT: &str = "job-controller";

pub use super::batch::{JobError, delete_job};

const JOB: &str = "Job";
const OWNERS: Owners = Owners(&[(JOB, kinds::JOBS)]);

/// A pod that still carries the tracking finalizer and is being deleted
/// or has no controller: unless its Job still runs, the finalizer goes
/// (upstream's orphan pod cleanup), so the pod is not held forever.
#[derive(Debug)]
pub struct OrphanPod {
    namespace: String,
    pod: String,
    /// Its controlling Job (name, uid), if any.
    job: Option<(String, String)>,
}

/// A change of pods, as far as Jobs are concerned.
#[derive(Debug)]
pub enum JobChange {
    /// A pod changed: its Job (if controlled by one) and, for orphans,
    /// every Job of its namespace may need a sync; a held orphan loses
    /// its finalizer.
    Pod {
        /// Who the change concerns, unless another kind controls the pod.
        controlled: Option<Controlled>,
        /// The orphan check the pod needs, if any.
        orphan: Option<OrphanPod>,
    },
    /// The pod watch (re)started: look for held orphans among all pods.
    ScanOrphans,
}

/// The controller actor.
pub type JobController = Controller<Jobs>;

/// The reconciler of Jobs.
pub struct Jobs {
    objects: Objects,
    sync: JobSync,
}

impl Jobs {
    /// The reconciler, writing through `objects`, reading time from `clock`.
    pub fn new(objects: Objects, backoff: Backoff, clock: SharedClock) -> Self {
        Self {
            sync: JobSync::new(objects.clone(), clock, backoff),
            objects,
        }
    }

    async fn release(&self, orphan: OrphanPod) -> Result<Option<ObjectRef>, JobError> {
        let job = self
            .sync
            .release_orphan(&orphan.namespace, &orphan.pod, orphan.job.as_ref())
            .await?;
        // Its Job still runs: the Job's sync counts it.
        Ok(job.map(|name| ObjectRef::new(JOB, orphan.namespace, name)))
    }
}

impl Reconciler for Jobs {
    type Key = ObjectRef;
    type Change = JobChange;
    type Error = JobError;
    const NAME: &'static str = "job";

    fn watches(&self) -> Result<Vec<String>, JobError> {
        Ok(OWNERS.watches(&[kinds::PODS]))
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, JobChange>> {
        OWNERS.decode(watch, event, |_, event| match event {
            // The Jobs' resync covers every pod but held orphans.
            None => Some(Trigger::Change(JobChange::ScanOrphans)),
            Some(e) => {
                let pod = metadata_of(e)?;
                Some(Trigger::Change(JobChange::Pod {
                    controlled: Controlled::of(&pod, &[JOB]),
                    orphan: orphan_check(&pod),
                }))
            }
        })
    }

    async fn changes(
        &mut self,
        change: JobChange,
        owners: &OwnerIndex<ObjectRef>,
    ) -> Result<Vec<ObjectRef>, JobError> {
        let mut keys = Vec::new();
        match change {
            JobChange::Pod { controlled, orphan } => {
                if let Some(orphan) = orphan {
                    keys.extend(self.release(orphan).await?);
                }
                keys.extend(controlled.map(|c| owners.concerned(c)).unwrap_or_default());
            }
            JobChange::ScanOrphans => {
                let (pods, _) = self.objects.list(kinds::PODS).await?;
                for orphan in pods.iter().filter_map(orphan_check) {
                    keys.extend(self.release(orphan).await?);
                }
            }
        }
        Ok(keys)
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, JobError> {
        Ok(OWNERS.list(&self.objects).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, JobError> {
        let wake = self.sync.sync(&key.namespace, &key.name).await?;
        // A little late rather than early: the sync compares with the clock.
        Ok(Action::requeue_opt(
            wake.map(|delay| delay + Duration::from_millis(50)),
        ))
    }
}

/// The orphan check a pod needs, if it carries the tracking finalizer and
/// is being deleted or has no controller.
fn orphan_check(pod: &Value) -> Option<OrphanPod> {
    if !pods::tracked(pod) {
        return None;
    }
    let controller = meta::controller_ref(pod);
    if controller.is_some() && !pods::deleting(pod) {
        return None;
    }
    Some(OrphanPod {
        namespace: meta::namespace(pod).to_string(),
        pod: meta::name(pod).to_string(),
        job: controller.filter(|r| r["kind"] == JOB).and_then(|r| {
            Some((
                r["name"].as_str()?.to_string(),
                r["uid"].as_str()?.to_string(),
            ))
        }),
    })
}
