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

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::warn;

pub use self::backoff::Backoff;
use self::sync::JobSync;
use super::runtime::queue::{WorkQueue, retry_delay};
use super::{metadata_of, object_of, watch_prefix};
use crate::api::deletion::{DeleteOptions, Propagation};
use crate::api::internal::Objects;
use crate::api::resources::{self, ResourceType};
use crate::clock::SharedClock;
use crate::store::{EventKind, StoreError};

/// The event source upstream's Job controller uses.
pub const COMPONENT: &str = "job-controller";

/// What can go wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A resource type is missing from the served table.
    #[error("resource type {0} is not served")]
    MissingType(&'static str),
}

/// The served `jobs` type.
pub fn jobs_rt() -> Result<&'static ResourceType, JobError> {
    resources::find("batch", "v1", "jobs").ok_or(JobError::MissingType("jobs"))
}

/// The served `pods` type.
pub fn pods_rt() -> Result<&'static ResourceType, JobError> {
    resources::find("", "v1", "pods").ok_or(JobError::MissingType("pods"))
}

/// Deletes a Job (if it still has `uid`) with `propagation`; the garbage
/// collector takes its pods, whose tracking finalizers the controller drops
/// once the Job is gone or finished.
pub async fn delete_job(
    objects: &Objects,
    namespace: &str,
    name: &str,
    uid: &str,
    propagation: Propagation,
) -> Result<(), JobError> {
    let options = DeleteOptions {
        propagation: Some(propagation),
        uid: Some(uid.to_string()),
        ..DeleteOptions::default()
    };
    objects
        .delete_with(jobs_rt()?, Some(namespace), name, &options)
        .await?;
    Ok(())
}

/// A Job's identity: namespace, name.
pub type JobKey = (String, String);

/// Messages of the controller.
#[derive(Debug)]
pub enum JobMsg {
    /// A Job was added, changed or deleted.
    JobChanged(EventKind, JobKey),
    /// A pod changed: its Job (if controlled by one) and, for orphans,
    /// every Job of its namespace may need a sync.
    PodChanged {
        /// The pod's namespace.
        namespace: String,
        /// The name of its controlling Job, if any.
        job: Option<String>,
        /// It has no controller (adoptable).
        orphan: bool,
    },
    /// A pod that still carries the tracking finalizer is being deleted
    /// or has no controller: unless its Job still runs, the finalizer goes
    /// (upstream's orphan pod cleanup), so the pod is not held forever.
    OrphanPod {
        /// The pod's namespace.
        namespace: String,
        /// The pod's name.
        pod: String,
        /// Its controlling Job (name, uid), if any.
        job: Option<(String, String)>,
    },
    /// The pod watch (re)started: look for such pods among all pods.
    ScanOrphans,
    /// A watch (re)started: re-list the Jobs and sync them all.
    Resync,
    /// Work through the queue.
    Drain,
    /// Sync one Job again (after a failure, or at a time it asked for).
    Wake(JobKey),
}

/// The controller actor.
pub struct JobController;

/// Its state.
pub struct JobState {
    objects: Objects,
    sync: JobSync,
    /// Known Jobs by namespace (for orphans to find candidates).
    known: HashMap<String, BTreeSet<String>>,
    /// Keys to sync, and failures in a row for the retry back-off.
    queue: WorkQueue<JobKey>,
    /// The earliest wake-up already scheduled per Job.
    wakeups: HashMap<JobKey, tokio::time::Instant>,
}

impl JobState {
    fn enqueue(&mut self, me: &ActorRef<JobMsg>, key: JobKey) {
        if self.queue.add(key) {
            let _ = me.cast(JobMsg::Drain);
        }
    }

    /// Schedules a sync after `delay`, unless an earlier one is pending.
    fn wake_after(&mut self, me: &ActorRef<JobMsg>, key: JobKey, delay: Duration) {
        let now = tokio::time::Instant::now();
        // A little late rather than early: the sync compares with the clock.
        let at = now + delay + Duration::from_millis(50);
        if let Some(pending) = self.wakeups.get(&key)
            && *pending > now
            && *pending <= at
        {
            return;
        }
        self.wakeups.insert(key.clone(), at);
        me.send_after(at - now, move || JobMsg::Wake(key));
    }

    async fn relist(&mut self, me: &ActorRef<JobMsg>) -> Result<(), ActorProcessingErr> {
        self.known.clear();
        let (items, _) = self.objects.list(jobs_rt()?).await?;
        for job in items {
            let key = key_of(&job);
            self.known
                .entry(key.0.clone())
                .or_default()
                .insert(key.1.clone());
            self.enqueue(me, key);
        }
        Ok(())
    }
}

/// The orphan check a pod needs, if it carries the tracking finalizer and
/// is being deleted or has no controller.
fn orphan_check(pod: &Value) -> Option<JobMsg> {
    if !pods::tracked(pod) {
        return None;
    }
    let controller = pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == json!(true));
    if controller.is_some() && !pods::deleting(pod) {
        return None;
    }
    Some(JobMsg::OrphanPod {
        namespace: key_of(pod).0,
        pod: pods::name(pod).to_string(),
        job: controller.filter(|r| r["kind"] == "Job").and_then(|r| {
            Some((
                r["name"].as_str()?.to_string(),
                r["uid"].as_str()?.to_string(),
            ))
        }),
    })
}

fn key_of(obj: &Value) -> JobKey {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        pods::name(obj).to_string(),
    )
}

impl Actor for JobController {
    type Msg = JobMsg;
    type State = JobState;
    type Arguments = (Objects, Backoff, SharedClock);

    async fn pre_start(
        &self,
        myself: ActorRef<JobMsg>,
        (objects, backoff, clock): Self::Arguments,
    ) -> Result<JobState, ActorProcessingErr> {
        let me = myself.clone();
        watch_prefix(objects.store().clone(), jobs_rt()?.prefix(), move |event| {
            let msg = match event {
                None => JobMsg::Resync,
                Some(e) => match object_of(&e) {
                    Some(job) => JobMsg::JobChanged(e.kind, key_of(&job)),
                    None => return true,
                },
            };
            me.cast(msg).is_ok()
        });
        let me = myself.clone();
        watch_prefix(objects.store().clone(), pods_rt()?.prefix(), move |event| {
            let Some(pod) = event.as_ref().and_then(metadata_of) else {
                // The Jobs' resync covers every pod but held orphans.
                return me.cast(JobMsg::ScanOrphans).is_ok();
            };
            if let Some(msg) = orphan_check(&pod)
                && me.cast(msg).is_err()
            {
                return false;
            }
            let controller = pod["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["controller"] == json!(true));
            let msg = JobMsg::PodChanged {
                namespace: key_of(&pod).0,
                job: controller
                    .filter(|r| r["kind"] == "Job")
                    .and_then(|r| r["name"].as_str().map(String::from)),
                orphan: controller.is_none(),
            };
            me.cast(msg).is_ok()
        });
        // A safety net: every Job is synced now and then (level-triggered).
        myself.send_interval(Duration::from_secs(30), || JobMsg::Resync);
        Ok(JobState {
            sync: JobSync::new(objects.clone(), clock, backoff),
            objects,
            known: HashMap::new(),
            queue: WorkQueue::default(),
            wakeups: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<JobMsg>,
        msg: JobMsg,
        state: &mut JobState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            JobMsg::Resync => state.relist(&myself).await?,
            JobMsg::JobChanged(kind, key) => {
                let known = state.known.entry(key.0.clone()).or_default();
                if kind == EventKind::Deleted {
                    known.remove(&key.1);
                    state.queue.forget(&key);
                    state.wakeups.remove(&key);
                } else {
                    known.insert(key.1.clone());
                    state.enqueue(&myself, key);
                }
            }
            JobMsg::PodChanged {
                namespace,
                job,
                orphan,
            } => {
                if let Some(name) = job {
                    state.enqueue(&myself, (namespace.clone(), name));
                }
                if orphan {
                    let names: Vec<String> = state
                        .known
                        .get(&namespace)
                        .map(|s| s.iter().cloned().collect())
                        .unwrap_or_default();
                    for name in names {
                        state.enqueue(&myself, (namespace.clone(), name));
                    }
                }
            }
            JobMsg::OrphanPod {
                namespace,
                pod,
                job,
            } => {
                if let Some(name) = state
                    .sync
                    .release_orphan(&namespace, &pod, job.as_ref())
                    .await?
                {
                    // Its Job still runs: the Job's sync counts it.
                    state.enqueue(&myself, (namespace, name));
                }
            }
            JobMsg::ScanOrphans => {
                let (pods, _) = state.objects.list(pods_rt()?).await?;
                for pod in pods {
                    if let Some(msg) = orphan_check(&pod) {
                        let _ = myself.cast(msg);
                    }
                }
            }
            JobMsg::Wake(key) => {
                let now = tokio::time::Instant::now();
                if state.wakeups.get(&key).is_some_and(|at| *at <= now) {
                    state.wakeups.remove(&key);
                }
                state.enqueue(&myself, key);
            }
            JobMsg::Drain => {
                // Coalesced: each Job syncs once however many changes queued it.
                for key in state.queue.take() {
                    match state.sync.sync(&key.0, &key.1).await {
                        Ok(wake) => {
                            state.queue.succeeded(&key);
                            if let Some(delay) = wake {
                                state.wake_after(&myself, key, delay);
                            }
                        }
                        Err(e) => {
                            let delay = retry_delay(state.queue.failed(&key));
                            warn!(job = %format!("{}/{}", key.0, key.1), error = %e, retry_in = ?delay, "sync failed");
                            state.wake_after(&myself, key, delay);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
