//! The CronJob controller (batch/v1): starts a Job at each time of a cron
//! schedule (5 fields or `@hourly`-style macros, in the CronJob's
//! `timeZone`), by its `concurrencyPolicy`, within `startingDeadlineSeconds`,
//! keeping `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` finished
//! Jobs. Level-triggered: a change to a CronJob or to one of its Jobs
//! queues it, and each [`sync::CronJobSync`] asks to be woken at the next
//! schedule time, read from a [`crate::clock::Clock`].

pub mod schedule;
pub mod sync;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde_json::{Value, json};
use tracing::warn;

use self::sync::CronJobSync;
use super::job::{JobError, jobs_rt};
use super::runtime::queue::{WorkQueue, retry_delay};
use super::{object_of, watch_prefix};
use crate::api::internal::Objects;
use crate::api::resources::{self, ResourceType};
use crate::clock::SharedClock;
use crate::store::{EventKind, StoreError};

/// The event source upstream's CronJob controller uses.
pub const COMPONENT: &str = "cronjob-controller";

/// What can go wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum CronJobError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Deleting or reading a Job failed.
    #[error(transparent)]
    Job(#[from] JobError),
    /// A resource type is missing from the served table.
    #[error("resource type {0} is not served")]
    MissingType(&'static str),
}

/// The served `cronjobs` type.
pub fn cronjobs_rt() -> Result<&'static ResourceType, CronJobError> {
    resources::find("batch", "v1", "cronjobs").ok_or(CronJobError::MissingType("cronjobs"))
}

/// A CronJob's identity: namespace, name.
pub type CronJobKey = (String, String);

/// Messages of the controller.
#[derive(Debug)]
pub enum CronJobMsg {
    /// A CronJob was added, changed or deleted.
    Changed(EventKind, CronJobKey),
    /// A Job controlled by this CronJob changed.
    JobChanged(CronJobKey),
    /// A watch (re)started: re-list the CronJobs and sync them all.
    Resync,
    /// Work through the queue.
    Drain,
    /// Sync one CronJob again (after a failure or at its next time).
    Wake(CronJobKey),
}

/// The controller actor.
pub struct CronJobController;

/// Its state.
pub struct CronJobState {
    objects: Objects,
    sync: CronJobSync,
    /// Keys to sync, and failures in a row for the retry back-off.
    queue: WorkQueue<CronJobKey>,
    /// The earliest wake-up already scheduled per CronJob.
    wakeups: HashMap<CronJobKey, tokio::time::Instant>,
}

fn key_of(obj: &Value) -> CronJobKey {
    (
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string(),
        obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

impl CronJobState {
    fn enqueue(&mut self, me: &ActorRef<CronJobMsg>, key: CronJobKey) {
        if self.queue.add(key) {
            let _ = me.cast(CronJobMsg::Drain);
        }
    }

    fn wake_after(&mut self, me: &ActorRef<CronJobMsg>, key: CronJobKey, delay: Duration) {
        let now = tokio::time::Instant::now();
        let at = now + delay;
        if let Some(pending) = self.wakeups.get(&key)
            && *pending > now
            && *pending <= at
        {
            return;
        }
        self.wakeups.insert(key.clone(), at);
        me.send_after(delay, move || CronJobMsg::Wake(key));
    }
}

impl Actor for CronJobController {
    type Msg = CronJobMsg;
    type State = CronJobState;
    type Arguments = (Objects, SharedClock);

    async fn pre_start(
        &self,
        myself: ActorRef<CronJobMsg>,
        (objects, clock): Self::Arguments,
    ) -> Result<CronJobState, ActorProcessingErr> {
        let me = myself.clone();
        watch_prefix(
            objects.store().clone(),
            cronjobs_rt()?.prefix(),
            move |event| {
                let msg = match event {
                    None => CronJobMsg::Resync,
                    Some(e) => match object_of(&e) {
                        Some(cj) => CronJobMsg::Changed(e.kind, key_of(&cj)),
                        None => return true,
                    },
                };
                me.cast(msg).is_ok()
            },
        );
        let me = myself.clone();
        watch_prefix(objects.store().clone(), jobs_rt()?.prefix(), move |event| {
            let Some(job) = event.as_ref().and_then(object_of) else {
                return true;
            };
            let owner = job["metadata"]["ownerReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["controller"] == json!(true) && r["kind"] == "CronJob")
                .and_then(|r| r["name"].as_str().map(String::from));
            match owner {
                Some(name) => me
                    .cast(CronJobMsg::JobChanged((key_of(&job).0, name)))
                    .is_ok(),
                None => true,
            }
        });
        // A safety net: every CronJob is synced now and then.
        myself.send_interval(Duration::from_secs(30), || CronJobMsg::Resync);
        Ok(CronJobState {
            sync: CronJobSync::new(objects.clone(), clock),
            objects,
            queue: WorkQueue::default(),
            wakeups: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<CronJobMsg>,
        msg: CronJobMsg,
        state: &mut CronJobState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CronJobMsg::Resync => {
                let (items, _) = state.objects.list(cronjobs_rt()?).await?;
                for cj in items {
                    state.enqueue(&myself, key_of(&cj));
                }
            }
            CronJobMsg::Changed(EventKind::Deleted, key) => {
                state.queue.forget(&key);
                state.wakeups.remove(&key);
            }
            CronJobMsg::Changed(_, key) | CronJobMsg::JobChanged(key) => {
                state.enqueue(&myself, key)
            }
            CronJobMsg::Wake(key) => {
                let now = tokio::time::Instant::now();
                if state.wakeups.get(&key).is_some_and(|at| *at <= now) {
                    state.wakeups.remove(&key);
                }
                state.enqueue(&myself, key);
            }
            CronJobMsg::Drain => {
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
                            warn!(cronjob = %format!("{}/{}", key.0, key.1), error = %e, retry_in = ?delay, "sync failed");
                            state.wake_after(&myself, key, delay);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}
