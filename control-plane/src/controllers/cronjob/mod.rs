//! The CronJob controller (batch/v1): starts a Job at each time of a cron
//! schedule (5 fields or `@hourly`-style macros, in the CronJob's
//! `timeZone`), by its `concurrencyPolicy`, within `startingDeadlineSeconds`,
//! keeping `successfulJobsHistoryLimit`/`failedJobsHistoryLimit` finished
//! Jobs. Level-triggered: a change to a CronJob or to one of its Jobs
//! queues it, and each [`sync::CronJobSync`] asks to be woken at the next
//! schedule time, read from a [`crate::clock::Clock`].

pub mod sync;
#[cfg(test)]
mod tests;

use self::sync::CronJobSync;
use super::batch::JobError;
use super::runtime::list_refs;
use super::runtime::{Action, Controlled, Controller, ObjectRef, OwnerIndex, Reconciler, Trigger};
use super::{metadata_of, object_of};
use crate::clock::SharedClock;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

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
}

const CRON_JOB: &str = "CronJob";

/// The controller actor.
pub type CronJobController = Controller<CronJobs>;

/// The reconciler of CronJobs.
pub struct CronJobs {
    objects: Objects,
    sync: CronJobSync,
}

impl CronJobs {
    /// The reconciler, writing through `objects`, reading time from `clock`.
    pub fn new(objects: Objects, clock: SharedClock) -> Self {
        Self {
            sync: CronJobSync::new(objects.clone(), clock),
            objects,
        }
    }
}

impl Reconciler for CronJobs {
    type Key = ObjectRef;
    /// A Job a CronJob controls changed.
    type Change = ObjectRef;
    type Error = CronJobError;
    const NAME: &'static str = "cronjob";

    fn watches(&self) -> Result<Vec<String>, CronJobError> {
        Ok(vec![kinds::CRONJOBS.prefix(), kinds::JOBS.prefix()])
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, ObjectRef>> {
        match (watch, event) {
            (0, None) => Some(Trigger::Resync),
            (0, Some(e)) => Some(Trigger::Object(
                e.kind,
                ObjectRef::of(CRON_JOB, &object_of(e)?),
            )),
            (_, None) => None,
            (_, Some(e)) => match Controlled::of(&metadata_of(e)?, &[CRON_JOB])? {
                Controlled::By(owner) => Some(Trigger::Change(owner)),
                // A CronJob adopts no Job.
                Controlled::Orphan(_) => None,
            },
        }
    }

    async fn changes(
        &mut self,
        owner: ObjectRef,
        _: &OwnerIndex<ObjectRef>,
    ) -> Result<Vec<ObjectRef>, CronJobError> {
        Ok(vec![owner])
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, CronJobError> {
        Ok(list_refs(&self.objects, kinds::CRONJOBS, CRON_JOB).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, CronJobError> {
        let wake = self.sync.sync(&key.namespace, &key.name).await?;
        Ok(Action::requeue_opt(wake))
    }
}
