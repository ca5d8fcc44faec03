//! One sync of one CronJob, as upstream's `syncCronJob`: reconcile
//! `status.active` with the Jobs that exist, prune finished Jobs beyond the
//! history limits, then, unless suspended, start the Job of the most
//! recent due schedule time (named `<cronjob>-<minutes since epoch>`, so a
//! time is never run twice) by the concurrency policy, and say when the
//! next time comes.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use tracing::info;

use super::{COMPONENT, CronJobError};
use crate::clock::SharedClock;
use crate::controllers::batch::{
    self as job_status, delete_job, record, time_of, timestamp, write_status,
};
use crate::controllers::fields::{object_at, unless_gone};
use crate::meta;
use crate::meta::controller_uid;
use crate::registry::deletion::Propagation;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::registry::schedule::{Missed, Schedule};
use crate::store::StoreError;

/// Annotation with the schedule time a Job was started for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Syncs CronJobs against the store.
#[derive(Clone)]
pub struct CronJobSync {
    objects: Objects,
    clock: SharedClock,
}

fn uid_of(v: &Value) -> &str {
    v.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// The name of the Job for a schedule time.
pub fn job_name(cronjob: &str, scheduled: DateTime<Utc>) -> String {
    format!("{cronjob}-{}", scheduled.timestamp().div_euclid(60))
}

/// The terminal condition of a Job (`Complete` or `Failed`), if finished.
fn finished_as(job: &Value) -> Option<&'static str> {
    [job_status::COMPLETE, job_status::FAILED]
        .into_iter()
        .find(|k| job_status::is_true(&job["status"], k))
}

/// Go's `time.RFC1123Z`, as upstream's MissSchedule event prints times.
fn rfc1123z(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S %z").to_string()
}

impl CronJobSync {
    /// A syncer over `objects`, timed by `clock`.
    pub fn new(objects: Objects, clock: SharedClock) -> Self {
        Self { objects, clock }
    }

    /// Syncs the CronJob `namespace/name`; returns when to sync it again.
    pub async fn sync(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Duration>, CronJobError> {
        let rt = kinds::CRONJOBS;
        let Some(cj) = unless_gone(self.objects.get(rt, Some(namespace), name).await)? else {
            return Ok(None);
        };
        let uid = uid_of(&cj).to_string();
        let now = self.clock.now();
        let stored_status = object_at(&cj, "/status");
        let mut status = stored_status.clone();
        let mut events: Vec<(bool, &str, String)> = Vec::new();
        let mut jobs = self.children(namespace, &uid).await?;

        self.prune(&cj, &mut jobs, &mut status, &mut events).await?;

        let mut active: Vec<Value> = status["active"].as_array().cloned().unwrap_or_default();
        for job in &jobs {
            let found = active.iter().any(|r| r["uid"] == uid_of(job));
            let finished = finished_as(job);
            if !found && finished.is_none() {
                events.push((
                    true,
                    "UnexpectedJob",
                    format!(
                        "Saw a job that the controller did not create or forgot: {}",
                        meta::name(job)
                    ),
                ));
            } else if found && let Some(condition) = finished {
                active.retain(|r| r["uid"] != uid_of(job));
                events.push((
                    false,
                    "SawCompletedJob",
                    format!(
                        "Saw completed job: {}, condition: {condition}",
                        meta::name(job)
                    ),
                ));
            } else if finished == Some(job_status::COMPLETE)
                && let Some(done) = time_of(job.pointer("/status/completionTime"))
            {
                let last = time_of(status.get("lastSuccessfulTime"));
                if last.is_none_or(|l| done > l) {
                    status["lastSuccessfulTime"] = json!(timestamp(done));
                }
            }
        }
        // References to Jobs that are gone.
        let mut kept = Vec::new();
        for r in active {
            if jobs.iter().any(|j| uid_of(j) == r["uid"]) {
                kept.push(r);
                continue;
            }
            let job_name = r["name"].as_str().unwrap_or_default();
            match self
                .objects
                .get(kinds::JOBS, Some(namespace), job_name)
                .await
            {
                Err(StoreError::NotFound(_)) => events.push((
                    false,
                    "MissingJob",
                    format!("Active job went missing: {job_name}"),
                )),
                Ok(_) => kept.push(r),
                Err(e) => return Err(e.into()),
            }
        }
        let mut active = kept;

        let requeue = self
            .schedule_next(&cj, &mut status, &mut active, &mut events, now)
            .await;
        set_active(&mut status, &active);
        let written = write_status(&self.objects, kinds::CRONJOBS, &cj, &status).await?;
        record(&self.objects, &written.unwrap_or(cj), events, COMPONENT).await;
        requeue
    }

    /// Starts the due Job, if any, by the concurrency policy; returns when
    /// the next schedule time comes.
    async fn schedule_next(
        &self,
        cj: &Value,
        status: &mut Value,
        active: &mut Vec<Value>,
        events: &mut Vec<(bool, &'static str, String)>,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>, CronJobError> {
        let spec = &cj["spec"];
        let deleting = cj
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null());
        if deleting {
            return Ok(None);
        }
        let time_zone = spec["timeZone"].as_str();
        if let Some(zone) = time_zone
            && zone.parse::<chrono_tz::Tz>().is_err()
        {
            events.push((
                true,
                "UnknownTimeZone",
                format!("invalid timeZone: {zone:?}: unknown time zone {zone}"),
            ));
            return Ok(None);
        }
        if spec["suspend"].as_bool().unwrap_or(false) {
            return Ok(None);
        }
        let text = spec["schedule"].as_str().unwrap_or_default();
        let schedule = match Schedule::parse(text, time_zone) {
            Ok(s) => s,
            Err(e) => {
                events.push((
                    true,
                    "UnparseableSchedule",
                    format!("unparseable schedule: {text:?} : {e}"),
                ));
                return Ok(None);
            }
        };
        let created = time_of(cj.pointer("/metadata/creationTimestamp")).unwrap_or(now);
        let deadline = spec["startingDeadlineSeconds"].as_i64();
        let wake = |status: &Value| {
            schedule.next_wake(created, time_of(status.get("lastScheduleTime")), now)
        };
        let recent = match schedule.most_recent(
            created,
            time_of(status.get("lastScheduleTime")),
            deadline,
            now,
        ) {
            Ok(r) => r,
            Err(e) => {
                events.push((
                    true,
                    "InvalidSchedule",
                    format!("invalid schedule: {text} : {e}"),
                ));
                return Ok(None);
            }
        };
        let Some(scheduled) = recent.most_recent else {
            return Ok(wake(status));
        };
        if recent.missed == Missed::Many {
            events.push((
                true,
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew".into(),
            ));
        }
        if let Some(d) = deadline
            && scheduled + chrono::Duration::seconds(d) < now
        {
            events.push((
                true,
                "MissSchedule",
                format!(
                    "Missed scheduled time to start a job: {}",
                    rfc1123z(scheduled)
                ),
            ));
            return Ok(wake(status));
        }
        let name = job_name(meta::name(cj), scheduled);
        if active.iter().any(|r| r["name"] == name.as_str())
            || time_of(status.get("lastScheduleTime")) == Some(scheduled)
        {
            return Ok(wake(status));
        }
        let namespace = cj["metadata"]["namespace"].as_str().unwrap_or("default");
        match spec["concurrencyPolicy"].as_str().unwrap_or("Allow") {
            "Forbid" if !active.is_empty() => {
                events.push((
                    false,
                    "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
                ));
                return Ok(wake(status));
            }
            "Replace" => {
                for r in std::mem::take(active) {
                    let old = r["name"].as_str().unwrap_or_default();
                    let uid = r["uid"].as_str().unwrap_or_default();
                    delete_job(&self.objects, namespace, old, uid, Propagation::Background).await?;
                    events.push((false, "SuccessfulDelete", format!("Deleted job {old}")));
                }
            }
            _ => {}
        }
        let job = job_from_template(cj, &name, &schedule, scheduled);
        let created_job = match self.objects.create(kinds::JOBS, job).await {
            Ok(j) => {
                events.push((false, "SuccessfulCreate", format!("Created job {name}")));
                info!(cronjob = %format!("{namespace}/{}", meta::name(cj)), job = %name, "created job");
                j
            }
            Err(StoreError::AlreadyExists(_)) => {
                let existing = self
                    .objects
                    .get(kinds::JOBS, Some(namespace), &name)
                    .await?;
                // Another's Job, or ours and already listed: nothing to add.
                if controller_uid(&existing) != Some(uid_of(cj))
                    || active.iter().any(|r| r["uid"] == uid_of(&existing))
                {
                    return Ok(None);
                }
                existing
            }
            Err(e) => {
                events.push((true, "FailedCreate", format!("Error creating job: {e}")));
                return Err(e.into());
            }
        };
        active.push(json!({
            "kind": "Job", "namespace": namespace, "name": name,
            "uid": uid_of(&created_job), "apiVersion": "batch/v1",
            "resourceVersion": created_job["metadata"]["resourceVersion"],
        }));
        status["lastScheduleTime"] = json!(timestamp(scheduled));
        Ok(wake(status))
    }

    /// The Jobs this CronJob controls.
    async fn children(&self, namespace: &str, uid: &str) -> Result<Vec<Value>, CronJobError> {
        let prefix = format!("{}{namespace}/", kinds::JOBS.prefix());
        let listing = self.objects.store().list(&prefix).await?;
        Ok(listing
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
            .filter(|j| controller_uid(j) == Some(uid))
            .collect())
    }

    /// Deletes the oldest finished Jobs beyond `successfulJobsHistoryLimit`
    /// and `failedJobsHistoryLimit` (upstream's `cleanupFinishedJobs`).
    async fn prune(
        &self,
        cj: &Value,
        jobs: &mut Vec<Value>,
        status: &mut Value,
        events: &mut Vec<(bool, &'static str, String)>,
    ) -> Result<(), CronJobError> {
        let namespace = cj["metadata"]["namespace"].as_str().unwrap_or("default");
        let limits = [
            (
                job_status::COMPLETE,
                cj["spec"]["successfulJobsHistoryLimit"].as_i64(),
            ),
            (
                job_status::FAILED,
                cj["spec"]["failedJobsHistoryLimit"].as_i64(),
            ),
        ];
        let mut gone = Vec::new();
        for (kind, limit) in limits {
            let Some(limit) = limit else { continue };
            let mut finished: Vec<&Value> = jobs
                .iter()
                .filter(|j| finished_as(j) == Some(kind))
                .collect();
            let surplus = finished.len().saturating_sub(limit.max(0) as usize);
            // Oldest start first; Jobs that never started last.
            finished.sort_by(|a, b| {
                let (sa, sb) = (
                    time_of(a.pointer("/status/startTime")),
                    time_of(b.pointer("/status/startTime")),
                );
                match (sa, sb) {
                    (Some(x), Some(y)) if x != y => x.cmp(&y),
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    _ => meta::name(a).cmp(meta::name(b)),
                }
            });
            for job in finished.into_iter().take(surplus) {
                delete_job(
                    &self.objects,
                    namespace,
                    meta::name(job),
                    uid_of(job),
                    Propagation::Background,
                )
                .await?;
                events.push((
                    false,
                    "SuccessfulDelete",
                    format!("Deleted job {}", meta::name(job)),
                ));
                gone.push(uid_of(job).to_string());
            }
        }
        if !gone.is_empty() {
            jobs.retain(|j| !gone.iter().any(|g| g == uid_of(j)));
            if let Some(list) = status["active"].as_array_mut() {
                list.retain(|r| !gone.iter().any(|g| r["uid"] == g.as_str()));
            }
        }
        Ok(())
    }
}

fn set_active(status: &mut Value, active: &[Value]) {
    if active.is_empty() {
        if let Some(m) = status.as_object_mut() {
            m.remove("active");
        }
    } else {
        status["active"] = json!(active);
    }
}

/// The Job for one schedule time (upstream's `getJobFromTemplate2`): the
/// template's labels, annotations and spec, the schedule time annotation,
/// the CronJob as controller.
pub fn job_from_template(
    cj: &Value,
    name: &str,
    schedule: &Schedule,
    scheduled: DateTime<Utc>,
) -> Value {
    let template = cj.pointer("/spec/jobTemplate").cloned().unwrap_or_default();
    let mut annotations = object_at(&template, "/metadata/annotations");
    annotations[SCHEDULED_TIMESTAMP] = json!(schedule.local_rfc3339(scheduled));
    let mut metadata = json!({
        "name": name,
        "namespace": cj["metadata"]["namespace"],
        "annotations": annotations,
        "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "CronJob",
            "name": meta::name(cj), "uid": uid_of(cj),
            "controller": true, "blockOwnerDeletion": true,
        }],
    });
    if let Some(labels) = template
        .pointer("/metadata/labels")
        .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
    {
        metadata["labels"] = labels.clone();
    }
    json!({
        "metadata": metadata,
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
    })
}
