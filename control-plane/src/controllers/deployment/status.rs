//! A Deployment's status and conditions from its sets' counts, as
//! upstream's `calculateStatus` and `syncRolloutStatus`. `kubectl rollout
//! status` reads exactly these fields, so their rules follow upstream's.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// What the status is computed from.
#[derive(Debug, Clone, Default)]
pub struct Input {
    /// `metadata.generation` of the Deployment.
    pub generation: i64,
    /// `spec.replicas`.
    pub replicas: i64,
    /// Resolved `maxUnavailable` (0 for Recreate).
    pub max_unavailable: i64,
    /// `spec.paused`.
    pub paused: bool,
    /// `spec.progressDeadlineSeconds`.
    pub progress_deadline: Option<i64>,
    /// The new set's name, if it exists.
    pub new_set: Option<String>,
    /// Whether this sync created the new set.
    pub created_new: bool,
    /// Sum of the sets' `spec.replicas`.
    pub desired_total: i64,
    /// Sum of the sets' `status.replicas`.
    pub replicas_now: i64,
    /// The new set's `status.replicas`.
    pub updated: i64,
    /// Sum of `status.readyReplicas`.
    pub ready: i64,
    /// Sum of `status.availableReplicas`.
    pub available: i64,
    /// `status.collisionCount`.
    pub collision_count: Option<u32>,
}

const PROGRESSING: &str = "Progressing";
const AVAILABLE: &str = "Available";
/// The reason of a rollout that is done.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// The reason `kubectl rollout status` fails on.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
const PAUSED: &str = "DeploymentPaused";

fn count(status: &Value, field: &str) -> i64 {
    status.get(field).and_then(Value::as_i64).unwrap_or(0)
}

/// The condition of `kind` in a status.
pub fn condition<'a>(status: &'a Value, kind: &str) -> Option<&'a Value> {
    status
        .get("conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Upstream's `SetDeploymentCondition`: the same status and reason is no
/// change at all; the same status keeps its transition time.
fn set_condition(
    status: &mut Value,
    kind: &str,
    state: &str,
    reason: &str,
    message: &str,
    now: &str,
) {
    let previous = condition(status, kind).cloned();
    if let Some(p) = &previous
        && p["status"] == state
        && p["reason"] == reason
    {
        return;
    }
    let transition = match &previous {
        Some(p) if p["status"] == state => p["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let cond = json!({
        "type": kind, "status": state, "lastUpdateTime": now,
        "lastTransitionTime": transition, "reason": reason, "message": message,
    });
    replace_condition(status, kind, cond);
}

fn replace_condition(status: &mut Value, kind: &str, cond: Value) {
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    conditions.retain(|c| c["type"] != kind);
    conditions.push(cond);
    status["conditions"] = Value::Array(conditions);
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(v.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The next status, given the current one.
pub fn next_status(previous: &Value, input: &Input, now: DateTime<Utc>) -> Value {
    let stamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut status = json!({"observedGeneration": input.generation});
    if let Some(c) = previous.get("conditions") {
        status["conditions"] = c.clone();
    }
    let unavailable = (input.desired_total - input.available).max(0);
    for (field, value) in [
        ("replicas", input.replicas_now),
        ("updatedReplicas", input.updated),
        ("readyReplicas", input.ready),
        ("availableReplicas", input.available),
        ("unavailableReplicas", unavailable),
    ] {
        // Upstream's fields are all omitempty.
        if value != 0 {
            status[field] = json!(value);
        }
    }
    if let Some(c) = input.collision_count {
        status["collisionCount"] = json!(c);
    }
    if input.available >= input.replicas - input.max_unavailable {
        set_condition(
            &mut status,
            AVAILABLE,
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            &stamp,
        );
    } else {
        set_condition(
            &mut status,
            AVAILABLE,
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            &stamp,
        );
    }
    let set_name = input.new_set.clone().unwrap_or_default();
    if input.paused {
        if condition(&status, PROGRESSING).is_none_or(|c| c["reason"] != PAUSED) {
            set_condition(
                &mut status,
                PROGRESSING,
                "Unknown",
                PAUSED,
                "Deployment is paused",
                &stamp,
            );
        }
        return status;
    }
    if condition(&status, PROGRESSING).is_some_and(|c| c["reason"] == PAUSED) {
        set_condition(
            &mut status,
            PROGRESSING,
            "Unknown",
            "DeploymentResumed",
            "Deployment is resumed",
            &stamp,
        );
    }
    if input.created_new {
        let message = format!("Created new replica set {set_name:?}");
        set_condition(
            &mut status,
            PROGRESSING,
            "True",
            "NewReplicaSetCreated",
            &message,
            &stamp,
        );
    } else if input.new_set.is_some() && condition(&status, PROGRESSING).is_none() {
        let message = format!("Found new replica set {set_name:?}");
        set_condition(
            &mut status,
            PROGRESSING,
            "True",
            "FoundNewReplicaSet",
            &message,
            &stamp,
        );
    }
    let Some(deadline) = input.progress_deadline else {
        if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
            conditions.retain(|c| c["type"] != PROGRESSING);
        }
        return status;
    };
    progress(&mut status, previous, input, deadline, now);
    status
}

/// The `Progressing` condition of a rollout with a progress deadline:
/// complete, progressing (which moves the deadline on) or timed out.
fn progress(
    status: &mut Value,
    previous: &Value,
    input: &Input,
    deadline: i64,
    now: DateTime<Utc>,
) {
    let stamp = now.to_rfc3339_opts(SecondsFormat::Secs, true);
    let set_name = input.new_set.clone().unwrap_or_default();
    let current = condition(status, PROGRESSING).cloned();
    let already_complete = input.replicas_now == input.updated
        && current
            .as_ref()
            .is_some_and(|c| c["reason"] == NEW_RS_AVAILABLE);
    if already_complete {
        return;
    }
    let complete = input.updated == input.replicas
        && input.replicas_now == input.replicas
        && input.available == input.replicas;
    let old_now = input.replicas_now - input.updated;
    let old_before = count(previous, "replicas") - count(previous, "updatedReplicas");
    let progressing = input.updated > count(previous, "updatedReplicas")
        || old_now < old_before
        || input.ready > count(previous, "readyReplicas")
        || input.available > count(previous, "availableReplicas");
    if complete {
        let message = format!("ReplicaSet {set_name:?} has successfully progressed.");
        set_condition(
            status,
            PROGRESSING,
            "True",
            NEW_RS_AVAILABLE,
            &message,
            &stamp,
        );
    } else if progressing {
        // Progress moves lastUpdateTime on (the deadline counts from it)
        // even when the reason stays the same.
        let message = format!("ReplicaSet {set_name:?} is progressing.");
        let transition = match &current {
            Some(c) if c["status"] == "True" => c["lastTransitionTime"].clone(),
            _ => json!(stamp),
        };
        replace_condition(
            status,
            PROGRESSING,
            json!({
                "type": PROGRESSING, "status": "True", "lastUpdateTime": stamp,
                "lastTransitionTime": transition, "reason": "ReplicaSetUpdated", "message": message,
            }),
        );
    } else if let Some(c) = &current
        && c["reason"] != NEW_RS_AVAILABLE
        && (c["reason"] == TIMED_OUT
            || parse_time(&c["lastUpdateTime"])
                .is_some_and(|t| t + chrono::Duration::seconds(deadline) < now))
    {
        let message = format!("ReplicaSet {set_name:?} has timed out progressing.");
        set_condition(status, PROGRESSING, "False", TIMED_OUT, &message, &stamp);
    }
}

/// When a rollout still in progress would pass its deadline, so it is
/// looked at again then even if nothing else happens.
pub fn deadline_in(
    status: &Value,
    input: &Input,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    let deadline = input.progress_deadline?;
    if input.paused {
        return None;
    }
    let c = condition(status, PROGRESSING)?;
    if c["status"] != "True" || c["reason"] == NEW_RS_AVAILABLE {
        return None;
    }
    let at = parse_time(&c["lastUpdateTime"])? + chrono::Duration::seconds(deadline);
    let left = (at - now).num_milliseconds().max(0) as u64 + 1000;
    Some(std::time::Duration::from_millis(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(updated: i64, available: i64) -> Input {
        Input {
            generation: 2,
            replicas: 3,
            progress_deadline: Some(600),
            new_set: Some("web-abc".into()),
            desired_total: 3,
            replicas_now: 3,
            updated,
            ready: available,
            available,
            ..Input::default()
        }
    }

    #[test]
    fn a_finished_rollout_reports_new_replica_set_available() {
        let s = next_status(&json!({}), &input(3, 3), Utc::now());
        assert_eq!(s["observedGeneration"], 2);
        assert_eq!(s["updatedReplicas"], 3);
        assert_eq!(
            condition(&s, "Available").map(|c| c["reason"].clone()),
            Some(json!("MinimumReplicasAvailable"))
        );
        assert_eq!(
            condition(&s, "Progressing").map(|c| c["reason"].clone()),
            Some(json!(NEW_RS_AVAILABLE))
        );
        assert!(s.get("unavailableReplicas").is_none());
    }

    #[test]
    fn a_stuck_rollout_times_out_after_its_deadline() {
        let start = Utc::now();
        let mut i = input(1, 2);
        i.created_new = true;
        // Counts as before: creating the set is all that happened.
        let before = json!({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2});
        let s = next_status(&before, &i, start);
        assert_eq!(
            condition(&s, "Progressing").map(|c| c["reason"].clone()),
            Some(json!("NewReplicaSetCreated"))
        );
        i.created_new = false;
        let s = next_status(&s, &i, start + chrono::Duration::seconds(10));
        assert_eq!(
            condition(&s, "Progressing").map(|c| c["status"].clone()),
            Some(json!("True"))
        );
        assert!(deadline_in(&s, &i, start).is_some());
        let s = next_status(&s, &i, start + chrono::Duration::seconds(601));
        let c = condition(&s, "Progressing").cloned().unwrap_or_default();
        assert_eq!(
            (c["status"].clone(), c["reason"].clone()),
            (json!("False"), json!(TIMED_OUT))
        );
        assert_eq!(
            condition(&s, "Available").map(|c| c["status"].clone()),
            Some(json!("False"))
        );
    }

    #[test]
    fn paused_deployments_say_so_and_do_not_time_out() {
        let mut i = input(1, 2);
        i.paused = true;
        let s = next_status(&json!({}), &i, Utc::now());
        assert_eq!(
            condition(&s, "Progressing").map(|c| c["reason"].clone()),
            Some(json!(PAUSED))
        );
        assert!(deadline_in(&s, &i, Utc::now()).is_none());
    }
}
