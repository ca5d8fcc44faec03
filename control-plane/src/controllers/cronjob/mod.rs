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

use std::convert::Infallible;

use self::sync::CronJobSync;
use super::batch::JobError;
use super::runtime::{Action, Controlled, Controller, ObjectRef, Owners, Reconciler, Trigger};
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

const OWNERS: Owners = Owners(&[("CronJob", kinds::CRONJOBS)]);

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
    type Change = Infallible;
    type Error = CronJobError;
    const NAME: &'static str = "cronjob";

    fn watches(&self) -> Result<Vec<String>, CronJobError> {
        Ok(OWNERS.watches(&[kinds::JOBS]))
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, Infallible>> {
        OWNERS.decode(watch, event, |_, job| match OWNERS.controlled(job?)? {
            owner @ Controlled::By(_) => Some(Trigger::Dependent(owner)),
            // A CronJob adopts no Job.
            Controlled::Orphan(_) => None,
        })
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, CronJobError> {
        Ok(OWNERS.list(&self.objects).await?)
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, CronJobError> {
        let wake = self.sync.sync(&key.namespace, &key.name).await?;
        Ok(Action::requeue_opt(wake))
    }
}
