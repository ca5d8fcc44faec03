//! The Job as the controller reads it (spec fields with upstream's
//! defaults) and the pieces of its status it writes: counters, conditions
//! (`lastProbeTime`/`lastTransitionTime` as upstream's `newCondition`),
//! and completed indexes in upstream's interval notation (`0,2-4`).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

pub use crate::controllers::batch::{COMPLETE, FAILED, condition, is_true, time_of, timestamp};

/// Interim: the Job will fail once its pods are gone.
pub const FAILURE_TARGET: &str = "FailureTarget";
/// Interim: the Job will complete once its pods are gone.
pub const SUCCESS_CRITERIA_MET: &str = "SuccessCriteriaMet";
/// The Job is suspended (or was, with status False).
pub const SUSPENDED: &str = "Suspended";

/// The Job's spec as the controller uses it.
#[derive(Debug, Clone)]
pub struct JobView {
    /// `metadata.uid`.
    pub uid: String,
    /// `spec.completions` (`None`: a work queue).
    pub completions: Option<i64>,
    /// `spec.parallelism`.
    pub parallelism: i64,
    /// `spec.backoffLimit`.
    pub backoff_limit: i64,
    /// `spec.activeDeadlineSeconds`.
    pub active_deadline: Option<i64>,
    /// `spec.ttlSecondsAfterFinished`.
    pub ttl: Option<i64>,
    /// `spec.suspend`.
    pub suspend: bool,
    /// `spec.completionMode: Indexed`.
    pub indexed: bool,
    /// The template's `restartPolicy` is `OnFailure`.
    pub restart_on_failure: bool,
    /// `spec.selector`.
    pub selector: Option<LabelSelector>,
    /// Has a `deletionTimestamp`.
    pub deleting: bool,
}

impl JobView {
    /// Reads a Job object; `None` without a uid.
    pub fn read(job: &Value) -> Option<Self> {
        let spec = &job["spec"];
        let int = |f: &str| spec.get(f).and_then(Value::as_i64);
        Some(Self {
            uid: job.pointer("/metadata/uid")?.as_str()?.to_string(),
            completions: int("completions"),
            parallelism: int("parallelism").unwrap_or(1).max(0),
            backoff_limit: int("backoffLimit").unwrap_or(6).max(0),
            active_deadline: int("activeDeadlineSeconds"),
            ttl: int("ttlSecondsAfterFinished"),
            suspend: spec["suspend"].as_bool().unwrap_or(false),
            indexed: spec["completionMode"] == "Indexed",
            restart_on_failure: spec.pointer("/template/spec/restartPolicy")
                == Some(&json!("OnFailure")),
            selector: spec
                .get("selector")
                .and_then(|s| serde_json::from_value(s.clone()).ok()),
            deleting: job
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null()),
        })
    }
}

/// Complete or Failed: nothing more to do but the TTL.
pub fn finished(status: &Value) -> bool {
    is_true(status, COMPLETE) || is_true(status, FAILED)
}

/// When the Job finished (its terminal condition's transition).
pub fn finish_time(status: &Value) -> Option<DateTime<Utc>> {
    [COMPLETE, FAILED]
        .iter()
        .filter_map(|k| condition(status, k).filter(|c| c["status"] == "True"))
        .find_map(|c| time_of(c.get("lastTransitionTime")))
}

fn new_condition(kind: &str, state: &str, reason: &str, message: &str, now: &str) -> Value {
    let mut c = json!({"type": kind, "status": state,
                       "lastProbeTime": now, "lastTransitionTime": now});
    if !reason.is_empty() {
        c["reason"] = json!(reason);
    }
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

/// Upstream's `ensureJobConditionStatus`: sets the condition when it
/// differs; a `False` condition is only written over an existing one.
/// Returns whether anything changed.
pub fn ensure_condition(
    status: &mut Value,
    kind: &str,
    state: &str,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) -> bool {
    let now = timestamp(now);
    if !status["conditions"].is_array() {
        status["conditions"] = json!([]);
    }
    let Some(list) = status["conditions"].as_array_mut() else {
        return false;
    };
    let changed = if let Some(c) = list.iter_mut().find(|c| c["type"] == kind) {
        let same = c["status"] == state
            && c["reason"].as_str().unwrap_or_default() == reason
            && c["message"].as_str().unwrap_or_default() == message;
        if !same {
            *c = new_condition(kind, state, reason, message, &now);
        }
        !same
    } else if state != "False" {
        list.push(new_condition(kind, state, reason, message, &now));
        true
    } else {
        false
    };
    if list.is_empty()
        && let Some(m) = status.as_object_mut()
    {
        m.remove("conditions");
    }
    changed
}

/// A counter (`0` when absent).
pub fn count(status: &Value, field: &str) -> i64 {
    status[field].as_i64().unwrap_or(0)
}

/// Sets a counter, omitted at zero as upstream's `omitempty`.
pub fn set_count(status: &mut Value, field: &str, n: i64) {
    if n == 0 {
        if let Some(m) = status.as_object_mut() {
            m.remove(field);
        }
    } else {
        status[field] = json!(n);
    }
}

/// Parses `completedIndexes` (`1,3-5`), ignoring indexes `>= completions`.
pub fn parse_indexes(text: &str, completions: i64) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (from, to) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<usize>(), b.parse::<usize>()),
            None => (part.parse::<usize>(), part.parse::<usize>()),
        };
        if let (Ok(from), Ok(to)) = (from, to) {
            out.extend((from..=to).filter(|i| (*i as i64) < completions));
        }
    }
    out
}

/// Formats indexes as upstream: ascending, runs of three or more as
/// `a-b`, pairs listed (`1,2`).
pub fn format_indexes(indexes: &BTreeSet<usize>) -> String {
    let mut parts = Vec::new();
    let mut iter = indexes.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        match last - first {
            0 => parts.push(first.to_string()),
            1 => parts.push(format!("{first},{last}")),
            _ => parts.push(format!("{first}-{last}")),
        }
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2026-01-01T00:00:00Z".parse().expect("time")
    }

    #[test]
    fn conditions_change_only_when_they_differ() {
        let mut status = json!({});
        let resumed = ("False", "JobResumed", "Job resumed");
        let suspended = ("True", "JobSuspended", "Job suspended");
        // A False condition that was never True is not added; then each
        // step changes the status only if it differs from the last.
        for (step, ((value, reason, message), changes)) in [
            (resumed, false),
            (suspended, true),
            (suspended, false),
            (resumed, true),
        ]
        .into_iter()
        .enumerate()
        {
            let changed = ensure_condition(&mut status, SUSPENDED, value, reason, message, now());
            assert_eq!(changed, changes, "step {step}");
            if step == 0 {
                assert!(status.get("conditions").is_none());
            }
        }
        let c = condition(&status, SUSPENDED).expect("condition");
        assert_eq!(
            (c["status"].as_str(), c["reason"].as_str()),
            (Some("False"), Some("JobResumed"))
        );
        assert_eq!(c["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[test]
    fn indexes_round_trip_in_upstream_notation() {
        let set = parse_indexes("0,2-4,7,8", 100);
        assert_eq!(set.iter().copied().collect::<Vec<_>>(), [0, 2, 3, 4, 7, 8]);
        assert_eq!(format_indexes(&set), "0,2-4,7,8");
        assert_eq!(
            parse_indexes("1-9", 3).into_iter().collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(format_indexes(&BTreeSet::new()), "");
    }

    #[test]
    fn the_view_reads_defaults_and_modes() {
        let job = json!({"metadata": {"uid": "u"}, "spec": {
            "completionMode": "Indexed", "completions": 3,
            "template": {"spec": {"restartPolicy": "OnFailure"}}}});
        let v = JobView::read(&job).expect("view");
        assert!(v.indexed && v.restart_on_failure && !v.suspend);
        assert_eq!(
            (v.completions, v.parallelism, v.backoff_limit),
            (Some(3), 1, 6)
        );
    }
}
