//! One sync of one Job, in upstream's order (`syncJob`): count finished
//! pods, decide whether the Job fails (back-off limit, deadline) or
//! succeeds, otherwise create or delete pods toward `parallelism` (after
//! the failure back-off), then record the counts with upstream's tracking
//! protocol — finished pods go into `status.uncountedTerminatedPods`, lose
//! the `batch.kubernetes.io/job-tracking` finalizer, and only then are
//! added to `succeeded`/`failed`, so a pod is counted exactly once even if
//! it is deleted afterwards. The terminal condition (`Complete`/`Failed`)
//! follows the interim one (`SuccessCriteriaMet`/`FailureTarget`) once no
//! pod is terminating, as since Kubernetes 1.31. A finished Job with
//! `ttlSecondsAfterFinished` is deleted, with its pods, when that expires.

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use skiff_api_rules::workloads::selector_matches;
use tracing::{debug, info};

use super::backoff::Backoff;
use super::pods;
use super::status::{self, JobView};
use super::{COMPONENT, JobError, delete_job};
use crate::clock::SharedClock;
use crate::controllers::batch::{record, write_status};
use crate::controllers::claim;
use crate::controllers::fields::{object_at, unless_gone};
use crate::controllers::pod::{create_pod, deletion_order, slow_start_batches};
use crate::meta::{controller_uid, labels as pod_labels};
use crate::registry::deletion::Propagation;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// Upstream's `MaxPodCreateDeletePerSync`.
const MAX_PER_SYNC: usize = 500;

/// How the Job ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Finish {
    Success { reason: String, message: String },
    Failure { reason: String, message: String },
}

impl Finish {
    fn failure(reason: &str, message: &str) -> Self {
        Self::Failure {
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn success(reason: &str, message: &str) -> Self {
        Self::Success {
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn parts(&self) -> (&str, &str) {
        match self {
            Self::Success { reason, message } | Self::Failure { reason, message } => {
                (reason, message)
            }
        }
    }
}

/// What the pods of one sync add up to.
struct Counts {
    active: i64,
    ready: i64,
    terminating: i64,
}

/// Syncs Jobs against the store.
#[derive(Clone)]
pub struct JobSync {
    objects: Objects,
    clock: SharedClock,
    backoff: Backoff,
}

fn min_delay(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(String::from))
        .collect()
}

impl JobSync {
    /// A syncer over `objects`, timed by `clock`.
    pub fn new(objects: Objects, clock: SharedClock, backoff: Backoff) -> Self {
        Self {
            objects,
            clock,
            backoff,
        }
    }

    /// Syncs the Job `namespace/name`; returns when it wants to be synced
    /// again (deadline, back-off, TTL), if at all.
    pub async fn sync(&self, namespace: &str, name: &str) -> Result<Option<Duration>, JobError> {
        let rt = kinds::JOBS;
        // Gone: its pods went with it (cascade) or are orphans now.
        let Some(job_obj) = unless_gone(self.objects.get(rt, Some(namespace), name).await)? else {
            return Ok(None);
        };
        let Some(job) = JobView::read(&job_obj) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let stored_status = object_at(&job_obj, "/status");
        let owned = self.owned_pods(namespace, &job_obj, &job).await?;
        if status::finished(&stored_status) {
            self.untrack_all(namespace, &owned).await?;
            return self.expire(&job_obj, &job, &stored_status, now).await;
        }
        let completions = job.completions.unwrap_or(0);
        let valid_index = |p: &Value| {
            !job.indexed || pods::completion_index(p).is_some_and(|i| (i as i64) < completions)
        };
        let mut status = stored_status.clone();
        let mut tracking = Tracking::read(&status, &owned);
        tracking.count_released(&mut status);
        let (new_ok, new_failed) = tracking.newly_finished(&owned, valid_index);
        let mut succeeded = status::count(&status, "succeeded") + new_ok + tracking.ok.len() as i64;
        let failed = status::count(&status, "failed") + new_failed + tracking.failed.len() as i64;
        if status.get("startTime").is_none() && !job.suspend {
            status["startTime"] = json!(status::timestamp(now));
        }
        // A Job being resumed starts its deadline afresh (its startTime is
        // reset below), however long it was suspended.
        let resuming = !job.suspend && status::is_true(&status, status::SUSPENDED);
        let (mut finish, mut requeue) = decide_finish(&job, &status, &owned, failed, resuming, now);
        let mut succeeded_indexes = BTreeSet::new();
        if job.indexed {
            succeeded_indexes = succeeded_indexes_of(&status, &owned, completions);
            succeeded = succeeded_indexes.len() as i64;
        }
        let active_pods: Vec<&Value> = owned.iter().filter(|p| pods::active(p)).collect();
        let mut counts = Counts {
            active: active_pods.len() as i64,
            ready: active_pods.iter().filter(|p| pods::ready(p)).count() as i64,
            terminating: owned.iter().filter(|p| pods::terminating(p)).count() as i64,
        };
        let mut events: Vec<(bool, &str, String)> = Vec::new();
        if finish.is_some() {
            // The Job is done: its running pods go, keeping their
            // finalizers; they are counted as failed below.
            for pod in &active_pods {
                self.delete_pod(&job_obj, pod, false).await?;
                counts.active -= 1;
                counts.terminating += i64::from(on_a_node(pod));
                counts.ready -= i64::from(pods::ready(pod));
            }
        } else {
            let mut manage_called = false;
            if !job.deleting {
                let wait = self
                    .manage(
                        &job_obj,
                        &job,
                        &owned,
                        &active_pods,
                        succeeded,
                        &succeeded_indexes,
                        &mut counts,
                        now,
                    )
                    .await?;
                requeue = min_delay(requeue, wait);
                manage_called = true;
            }
            let complete = match job.completions {
                None => succeeded > 0 && counts.active == 0,
                Some(c) => succeeded >= c && counts.active == 0,
            };
            if complete {
                finish = Some(Finish::success(
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                ));
            } else if manage_called {
                events.extend(suspension(job.suspend, &mut status, now));
            }
        }
        status::set_count(&mut status, "active", counts.active);
        status["ready"] = json!(counts.ready.max(0));
        status["terminating"] = json!(counts.terminating.max(0));

        // Count finished pods: record them as uncounted, then drop their
        // finalizers, then move them into the counters.
        let untrack = tracking.record(&owned, &job, finish.as_ref(), valid_index);
        if job.indexed {
            status["completedIndexes"] = json!(status::format_indexes(&succeeded_indexes));
            status::set_count(&mut status, "succeeded", succeeded);
        }
        let terminal = finish
            .as_ref()
            .map(|f| interim_condition(f, &mut status, now));
        tracking.write(&mut status);
        write_status(&self.objects, kinds::JOBS, &job_obj, &status).await?;
        for pod in untrack {
            if self.untrack(namespace, pods::name(pod)).await? {
                tracking.with_finalizer.remove(pods::uid(pod));
            }
        }
        tracking.count_released(&mut status);
        tracking.write(&mut status);
        let mut finished_now = false;
        if let (Some(kind), Some(finish)) = (terminal, &finish)
            && tracking.is_empty()
            && counts.terminating <= 0
        {
            let (reason, message) = finish.parts();
            status::ensure_condition(&mut status, kind, "True", reason, message, now);
            if kind == status::COMPLETE {
                status["completionTime"] = json!(status::timestamp(now));
                events.push((false, "Completed", "Job completed".into()));
            } else {
                events.push((true, reason, message.to_string()));
            }
            finished_now = true;
        }
        let written = write_status(&self.objects, kinds::JOBS, &job_obj, &status).await?;
        let about = written.unwrap_or(job_obj);
        record(&self.objects, &about, events, COMPONENT).await;
        if finished_now {
            info!(job = %format!("{namespace}/{name}"), condition = terminal.unwrap_or_default(), "job finished");
            let ttl = job.ttl.map(|t| Duration::from_secs(t.max(0) as u64));
            requeue = min_delay(requeue, ttl);
        }
        Ok(requeue)
    }

    /// Creates or deletes pods toward the wanted number of active ones
    /// (upstream's `manageJob`); returns the back-off wait, if any.
    #[allow(clippy::too_many_arguments)]
    async fn manage(
        &self,
        job_obj: &Value,
        job: &JobView,
        owned: &[Value],
        active_pods: &[&Value],
        succeeded: i64,
        succeeded_indexes: &BTreeSet<usize>,
        counts: &mut Counts,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>, JobError> {
        let mut by_order: Vec<&Value> = active_pods.to_vec();
        by_order.sort_by(|a, b| deletion_order(a, b));
        if job.suspend {
            for pod in by_order {
                self.delete_pod(job_obj, pod, true).await?;
                counts.active -= 1;
                counts.terminating += i64::from(on_a_node(pod));
                counts.ready -= i64::from(pods::ready(pod));
            }
            return Ok(None);
        }
        let active = counts.active;
        let want = match job.completions {
            None if succeeded > 0 => active,
            None => job.parallelism,
            Some(c) => (c - succeeded).min(job.parallelism).max(0),
        };
        if active > want {
            let surplus = ((active - want) as usize).min(MAX_PER_SYNC);
            for pod in by_order.into_iter().take(surplus) {
                self.delete_pod(job_obj, pod, true).await?;
                counts.active -= 1;
                counts.terminating += i64::from(on_a_node(pod));
                counts.ready -= i64::from(pods::ready(pod));
            }
            return Ok(None);
        }
        let diff = ((want - active).max(0) as usize).min(MAX_PER_SYNC);
        if diff == 0 {
            return Ok(None);
        }
        let all: Vec<&Value> = owned.iter().collect();
        let wait = self.backoff.remaining(&all, now);
        if !wait.is_zero() {
            debug!(job = %pods::name(job_obj), ?wait, "pod failure back-off");
            return Ok(Some(wait));
        }
        let mut indexes: Vec<Option<usize>> = if job.indexed {
            let running: BTreeSet<usize> = active_pods
                .iter()
                .filter_map(|p| pods::completion_index(p))
                .collect();
            (0..job.completions.unwrap_or(0).max(0) as usize)
                .filter(|i| !succeeded_indexes.contains(i) && !running.contains(i))
                .take(diff)
                .map(Some)
                .collect()
        } else {
            vec![None; diff]
        };
        indexes.reverse();
        let reference = owner_reference(job_obj, &job.uid);
        for batch in slow_start_batches(indexes.len()) {
            for _ in 0..batch {
                let Some(index) = indexes.pop() else { break };
                let pod = pods::from_template(job_obj, &reference, index);
                create_pod(&self.objects, job_obj, pod, COMPONENT).await?;
                counts.active += 1;
            }
        }
        Ok(None)
    }

    /// Drops the tracking finalizer of a pod whose Job is gone, another
    /// (same name, new uid), finished, or that has no Job; returns the
    /// name of its Job when that one still runs (and will count the pod).
    pub async fn release_orphan(
        &self,
        namespace: &str,
        pod: &str,
        job: Option<&(String, String)>,
    ) -> Result<Option<String>, JobError> {
        if let Some((name, uid)) = job {
            match self.objects.get(kinds::JOBS, Some(namespace), name).await {
                Ok(j)
                    if j.pointer("/metadata/uid").and_then(Value::as_str) == Some(uid)
                        && !status::finished(&j["status"]) =>
                {
                    return Ok(Some(name.clone()));
                }
                Ok(_) | Err(StoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        debug!(pod = %format!("{namespace}/{pod}"), "dropping the tracking finalizer of an orphan");
        self.untrack(namespace, pod).await?;
        Ok(None)
    }

    /// The pods this Job controls, adopting orphans its selector matches.
    async fn owned_pods(
        &self,
        namespace: &str,
        job_obj: &Value,
        job: &JobView,
    ) -> Result<Vec<Value>, JobError> {
        let prefix = format!("{}{namespace}/", kinds::PODS.prefix());
        let listing = self.objects.store().list(&prefix).await?;
        let mut owned = Vec::new();
        let adopt_allowed = !job.deleting && !status::finished(&job_obj["status"]);
        for kv in listing.items {
            let Ok(pod) = serde_json::from_slice::<Value>(&kv.value) else {
                continue;
            };
            match controller_uid(&pod) {
                Some(uid) if uid == job.uid => owned.push(pod),
                Some(_) => {}
                None if adopt_allowed && pods::active(&pod) && self.selects(job, &pod) => {
                    if let Some(adopted) = self.adopt(namespace, job_obj, &job.uid, &pod).await? {
                        owned.push(adopted);
                    }
                }
                None => {}
            }
        }
        Ok(owned)
    }

    fn selects(&self, job: &JobView, pod: &Value) -> bool {
        job.selector.as_ref().is_some_and(|s| {
            let empty = s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                && s.match_expressions.as_ref().is_none_or(Vec::is_empty);
            !empty && selector_matches(s, &pod_labels(pod))
        })
    }

    /// Adopts an orphan (controller reference and tracking finalizer), as
    /// upstream's `ClaimPods`.
    async fn adopt(
        &self,
        namespace: &str,
        job_obj: &Value,
        uid: &str,
        pod: &Value,
    ) -> Result<Option<Value>, JobError> {
        let reference = owner_reference(job_obj, uid);
        let updated = self
            .objects
            .update(kinds::PODS, Some(namespace), pods::name(pod), |p| {
                if !claim::adopt(p, &reference) {
                    return false;
                }
                match p["metadata"]["finalizers"].as_array_mut() {
                    Some(f) => f.push(json!(pods::TRACKING_FINALIZER)),
                    None => p["metadata"]["finalizers"] = json!([pods::TRACKING_FINALIZER]),
                }
                true
            })
            .await;
        Ok(unless_gone(updated)?.flatten())
    }

    /// Deletes a pod of the Job (with an event). `untrack_first` drops its
    /// finalizer before, so the pod is not counted as a failure (scale
    /// down, suspend), as upstream's `deleteJobPods`.
    async fn delete_pod(
        &self,
        job_obj: &Value,
        pod: &Value,
        untrack_first: bool,
    ) -> Result<(), JobError> {
        let namespace = job_obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        let name = pods::name(pod);
        if untrack_first {
            self.untrack(namespace, name).await?;
        }
        self.objects.delete_pod(namespace, name).await?;
        let message = format!("Deleted pod: {name}");
        self.objects
            .event(job_obj, false, "SuccessfulDelete", &message, COMPONENT)
            .await;
        Ok(())
    }

    /// Drops the tracking finalizer; `true` once it is gone (or the pod is).
    async fn untrack(&self, namespace: &str, name: &str) -> Result<bool, JobError> {
        match self
            .objects
            .update(kinds::PODS, Some(namespace), name, pods::untrack)
            .await
        {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(true),
            Err(e) => Err(e.into()),
        }
    }

    async fn untrack_all(&self, namespace: &str, owned: &[Value]) -> Result<(), JobError> {
        for pod in owned.iter().filter(|p| pods::tracked(p)) {
            self.untrack(namespace, pods::name(pod)).await?;
        }
        Ok(())
    }

    /// `ttlSecondsAfterFinished`: deletes the finished Job (and its pods)
    /// once it expires, else says when to look again.
    async fn expire(
        &self,
        job_obj: &Value,
        job: &JobView,
        status: &Value,
        now: DateTime<Utc>,
    ) -> Result<Option<Duration>, JobError> {
        let (Some(ttl), Some(finished)) = (job.ttl, status::finish_time(status)) else {
            return Ok(None);
        };
        if job.deleting {
            return Ok(None);
        }
        let expires = finished + chrono::Duration::seconds(ttl.max(0));
        if now < expires {
            return Ok((expires - now).to_std().ok());
        }
        let namespace = job_obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default");
        info!(job = %format!("{namespace}/{}", pods::name(job_obj)), ttl, "deleting finished job after its TTL");
        // As upstream's TTL-after-finished controller: the pods first.
        delete_job(
            &self.objects,
            namespace,
            pods::name(job_obj),
            &job.uid,
            Propagation::Foreground,
        )
        .await?;
        Ok(None)
    }
}

/// The controller reference a Job puts on its pods.
pub fn owner_reference(job_obj: &Value, uid: &str) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "name": job_obj["metadata"]["name"], "uid": uid,
        "controller": true, "blockOwnerDeletion": true,
    })
}

fn on_a_node(pod: &Value) -> bool {
    pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty())
}

/// Upstream's `pastBackoffLimitOnFailure`: with `restartPolicy: OnFailure`
/// the kubelet restarts failed containers in place, and their restarts
/// count against `backoffLimit`.
fn past_backoff_limit_on_failure(job: &JobView, owned: &[Value]) -> bool {
    if !job.restart_on_failure {
        return false;
    }
    let restarts: i64 = owned.iter().map(pods::restarts).sum();
    if job.backoff_limit == 0 {
        restarts > 0
    } else {
        restarts >= job.backoff_limit
    }
}

/// Time left before `activeDeadlineSeconds` (zero: past it); `None` when
/// there is no deadline running (none set, suspended, not started).
fn deadline_left(
    job: &JobView,
    status: &Value,
    resuming: bool,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let deadline = job.active_deadline?;
    if job.suspend {
        return None;
    }
    let started = if resuming {
        now
    } else {
        status::time_of(status.get("startTime"))?
    };
    let ends = started + chrono::Duration::seconds(deadline);
    Some((ends - now).to_std().unwrap_or(Duration::ZERO))
}

/// Upstream's finished-pod bookkeeping: the uids in
/// `status.uncountedTerminatedPods`, and which pods still carry the
/// tracking finalizer.
struct Tracking {
    ok: Vec<String>,
    failed: Vec<String>,
    with_finalizer: HashSet<String>,
}

impl Tracking {
    fn read(status: &Value, owned: &[Value]) -> Self {
        let uncounted = &status["uncountedTerminatedPods"];
        Self {
            ok: strings(&uncounted["succeeded"]),
            failed: strings(&uncounted["failed"]),
            with_finalizer: owned
                .iter()
                .filter(|p| pods::tracked(p))
                .map(|p| pods::uid(p).to_string())
                .collect(),
        }
    }

    /// Finished tracked pods not recorded yet: (succeeded, failed).
    fn newly_finished(&self, owned: &[Value], valid_index: impl Fn(&Value) -> bool) -> (i64, i64) {
        let (mut ok, mut failed) = (0, 0);
        for pod in owned.iter().filter(|p| pods::tracked(p) && valid_index(p)) {
            let uid = pods::uid(pod).to_string();
            if pods::succeeded(pod) && !self.ok.contains(&uid) && !self.failed.contains(&uid) {
                ok += 1;
            } else if pods::failed(pod) && !self.failed.contains(&uid) {
                failed += 1;
            }
        }
        (ok, failed)
    }

    /// Records the pods whose finalizer can go now (finished, or the Job
    /// ends or is deleted: then every unfinished pod counts as failed when
    /// the Job fails); returns them.
    fn record<'a>(
        &mut self,
        owned: &'a [Value],
        job: &JobView,
        finish: Option<&Finish>,
        valid_index: impl Fn(&Value) -> bool,
    ) -> Vec<&'a Value> {
        let failing = matches!(finish, Some(Finish::Failure { .. }));
        let mut release = Vec::new();
        for pod in owned.iter().filter(|p| pods::tracked(p)) {
            let uid = pods::uid(pod).to_string();
            let considered_failed = pods::failed(pod);
            if !(finish.is_some() || job.deleting || pods::succeeded(pod) || considered_failed) {
                continue;
            }
            release.push(pod);
            if pods::succeeded(pod) && !self.failed.contains(&uid) {
                // Indexed Jobs count by index instead.
                if !job.indexed && !self.ok.contains(&uid) {
                    self.ok.push(uid);
                }
            } else if (considered_failed || failing)
                && valid_index(pod)
                && !self.failed.contains(&uid)
            {
                self.failed.push(uid);
            }
        }
        release
    }

    /// Moves the recorded pods whose finalizer is gone into the counters
    /// (upstream's `cleanUncountedPodsWithoutFinalizers`).
    fn count_released(&mut self, status: &mut Value) {
        let before = (self.ok.len(), self.failed.len());
        self.ok.retain(|u| self.with_finalizer.contains(u));
        self.failed.retain(|u| self.with_finalizer.contains(u));
        let succeeded = status::count(status, "succeeded") + (before.0 - self.ok.len()) as i64;
        let failed = status::count(status, "failed") + (before.1 - self.failed.len()) as i64;
        status::set_count(status, "succeeded", succeeded);
        status::set_count(status, "failed", failed);
    }

    fn is_empty(&self) -> bool {
        self.ok.is_empty() && self.failed.is_empty()
    }

    fn write(&self, status: &mut Value) {
        let mut u = json!({});
        if !self.ok.is_empty() {
            u["succeeded"] = json!(self.ok);
        }
        if !self.failed.is_empty() {
            u["failed"] = json!(self.failed);
        }
        status["uncountedTerminatedPods"] = u;
    }
}

/// Whether the Job is ending (an interim condition already says so, the
/// back-off limit or the deadline is passed), and when the deadline comes
/// otherwise.
fn decide_finish(
    job: &JobView,
    status: &Value,
    owned: &[Value],
    failed: i64,
    resuming: bool,
    now: DateTime<Utc>,
) -> (Option<Finish>, Option<Duration>) {
    let interim = |kind: &str| {
        status::condition(status, kind)
            .filter(|c| c["status"] == "True")
            .map(|c| {
                (
                    c["reason"].as_str().unwrap_or_default(),
                    c["message"].as_str().unwrap_or_default(),
                )
            })
    };
    if let Some((reason, message)) = interim(status::SUCCESS_CRITERIA_MET) {
        return (Some(Finish::success(reason, message)), None);
    }
    if let Some((reason, message)) = interim(status::FAILURE_TARGET) {
        return (Some(Finish::failure(reason, message)), None);
    }
    if failed > job.backoff_limit || past_backoff_limit_on_failure(job, owned) {
        let finish = Finish::failure(
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
        );
        return (Some(finish), None);
    }
    match deadline_left(job, status, resuming, now) {
        Some(left) if left.is_zero() => {
            let finish = Finish::failure(
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            );
            (Some(finish), None)
        }
        left => (None, left),
    }
}

/// The completed indexes of an Indexed Job: those recorded, and those of
/// succeeded pods.
fn succeeded_indexes_of(status: &Value, owned: &[Value], completions: i64) -> BTreeSet<usize> {
    let mut indexes = status::parse_indexes(
        status["completedIndexes"].as_str().unwrap_or_default(),
        completions,
    );
    indexes.extend(
        owned
            .iter()
            .filter(|p| pods::succeeded(p))
            .filter_map(pods::completion_index)
            .filter(|i| (*i as i64) < completions),
    );
    indexes
}

/// The `Suspended` condition of a managed Job; the event to record if it
/// changed.
fn suspension(
    suspend: bool,
    status: &mut Value,
    now: DateTime<Utc>,
) -> Option<(bool, &'static str, String)> {
    if suspend {
        let changed = status::ensure_condition(
            status,
            status::SUSPENDED,
            "True",
            "JobSuspended",
            "Job suspended",
            now,
        );
        return changed.then(|| (false, "Suspended", "Job suspended".into()));
    }
    let changed = status::ensure_condition(
        status,
        status::SUSPENDED,
        "False",
        "JobResumed",
        "Job resumed",
        now,
    );
    if changed {
        // The deadline counts continuous activity: it restarts.
        status["startTime"] = json!(status::timestamp(now));
    }
    changed.then(|| (false, "Resumed", "Job resumed".into()))
}

/// Sets the interim condition of how the Job ends (`FailureTarget` or
/// `SuccessCriteriaMet`) unless set; returns the terminal condition that
/// follows it once no pod is left to count.
fn interim_condition(finish: &Finish, status: &mut Value, now: DateTime<Utc>) -> &'static str {
    let (interim, terminal, reason, message) = match finish {
        Finish::Failure { reason, message } => {
            (status::FAILURE_TARGET, status::FAILED, reason, message)
        }
        Finish::Success { reason, message } => (
            status::SUCCESS_CRITERIA_MET,
            status::COMPLETE,
            reason,
            message,
        ),
    };
    if !status::is_true(status, interim) {
        status::ensure_condition(status, interim, "True", reason, message, now);
    }
    terminal
}
