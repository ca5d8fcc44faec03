//! What the Job and CronJob controllers both know of Jobs: the served
//! type, how a Job is deleted, its terminal conditions and timestamps.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;

use crate::controllers::fields::{edit_status, unless_gone};
use crate::meta;
use crate::registry::deletion::{DeleteOptions, Propagation};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::StoreError;

/// What can go wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes `status` as the status of `obj` (of `rt`, as the sync read
/// it) if that object is still there and its status differs: the Job and
/// CronJob syncs build the whole status first. The written object; `None`
/// if nothing was written or the object is gone.
pub async fn write_status(
    objects: &Objects,
    rt: &ResourceType,
    obj: &Value,
    status: &Value,
) -> Result<Option<Value>, StoreError> {
    let uid = meta::str_at(obj, "/metadata/uid").unwrap_or_default();
    let updated = objects
        .update(rt, Some(meta::namespace(obj)), meta::name(obj), |stored| {
            edit_status(stored, uid, |s| *s = status.clone())
        })
        .await;
    Ok(unless_gone(updated)?.flatten())
}

/// Records a sync's `events` (warning, reason, message) on `about` (the
/// object as last written, so the events carry its latest version).
pub async fn record(
    objects: &Objects,
    about: &Value,
    events: Vec<(bool, &str, String)>,
    component: &str,
) {
    for (warning, reason, message) in events {
        objects
            .event(about, warning, reason, &message, component)
            .await;
    }
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
        .delete_with(kinds::JOBS, Some(namespace), name, &options)
        .await?;
    Ok(())
}

/// The Job completed (a terminal condition type).
pub const COMPLETE: &str = "Complete";
/// The Job failed.
pub const FAILED: &str = "Failed";

/// Kubernetes' timestamp format.
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a timestamp field.
pub fn time_of(v: Option<&Value>) -> Option<DateTime<Utc>> {
    v.and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// The condition of `kind`, if any.
pub fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// The condition of `kind` is `True`.
pub fn is_true(status: &Value, kind: &str) -> bool {
    condition(status, kind).is_some_and(|c| c["status"] == "True")
}

/// The Job and CronJob tests' world: an in-memory store, a fake clock and
/// the controller's sync on both.
#[cfg(test)]
pub struct TestEnv<S> {
    pub objects: Objects,
    pub clock: std::sync::Arc<crate::clock::FakeClock>,
    pub sync: S,
}

/// A [`TestEnv`] whose clock starts at `now`, with the sync `new` makes.
#[cfg(test)]
pub fn test_env<S>(
    now: DateTime<Utc>,
    new: impl FnOnce(Objects, crate::clock::SharedClock) -> S,
) -> TestEnv<S> {
    let store = crate::store::memory::MemoryStore::new();
    let objects = Objects::new(std::sync::Arc::new(store));
    let clock = std::sync::Arc::new(crate::clock::FakeClock::new(now));
    TestEnv {
        sync: new(objects.clone(), clock.clone()),
        objects,
        clock,
    }
}
