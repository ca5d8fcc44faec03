//! Pod helpers the controllers that own pods share: which pods count,
//! when a pod became ready, which to delete first, and how to batch
//! creations.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::fields::object_at;
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// Creates `pod` for `owner` and tells of it as upstream's controllers
/// do: a SuccessfulCreate or FailedCreate event on the owner, from
/// `component`.
pub async fn create_pod(
    objects: &Objects,
    owner: &Value,
    pod: Value,
    component: &str,
) -> Result<Value, StoreError> {
    let created = objects.create(kinds::PODS, pod).await;
    let (warning, reason, message) = match &created {
        Ok(pod) => (
            false,
            "SuccessfulCreate",
            format!("Created pod: {}", meta::name(pod)),
        ),
        Err(e) => (true, "FailedCreate", format!("Error creating: {e}")),
    };
    objects
        .event(owner, warning, reason, &message, component)
        .await;
    created
}

/// A template's metadata as a new object starts from: an object, without
/// the name and creation time the API server assigns.
pub fn template_metadata(template: &Value) -> Value {
    let mut metadata = object_at(template, "/metadata");
    if let Some(m) = metadata.as_object_mut() {
        m.remove("name");
        m.remove("creationTimestamp");
    }
    metadata
}

/// Not finished and not being deleted: the pods that count.
pub fn is_active(pod: &Value) -> bool {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    !matches!(phase, Some("Succeeded" | "Failed"))
        && pod
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
}

/// `Some` if the pod is Ready, of when its Ready condition turned True;
/// that is `None` when the condition has no readable time (controllers
/// differ on what such a pod counts as).
pub fn ready_transition(pod: &Value) -> Option<Option<DateTime<Utc>>> {
    let ready = pod
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?;
    Some(
        ready["lastTransitionTime"]
            .as_str()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&Utc)),
    )
}

/// When the pod became Ready, if it is; an unknown time counts as long
/// ago.
pub fn ready_since(pod: &Value) -> Option<DateTime<Utc>> {
    ready_transition(pod).map(|since| since.unwrap_or(DateTime::<Utc>::MIN_UTC))
}

fn restarts(pod: &Value) -> i64 {
    pod.pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["restartCount"].as_i64()).sum())
        .unwrap_or(0)
}

fn created(pod: &Value) -> String {
    pod.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Upstream's `ActivePods` order: the pods to delete first come first —
/// unscheduled, then pending, not ready, ready for less time, more
/// restarts, newer.
pub fn deletion_order(a: &Value, b: &Value) -> Ordering {
    let assigned = |p: &Value| {
        p["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    };
    let phase_rank = |p: &Value| match p.pointer("/status/phase").and_then(Value::as_str) {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        _ => 2,
    };
    assigned(a)
        .cmp(&assigned(b))
        .then(phase_rank(a).cmp(&phase_rank(b)))
        .then(ready_since(a).is_some().cmp(&ready_since(b).is_some()))
        // Both ready: the more recently ready goes first.
        .then(ready_since(b).cmp(&ready_since(a)))
        .then(restarts(b).cmp(&restarts(a)))
        .then(created(b).cmp(&created(a)))
}

/// Upstream's slow start: batches of 1, 2, 4, ... up to `total`, so a
/// template that cannot be created fails once, not `total` times.
pub fn slow_start_batches(total: usize) -> Vec<usize> {
    let mut batches = Vec::new();
    let (mut size, mut left) = (1, total);
    while left > 0 {
        let n = size.min(left);
        batches.push(n);
        left -= n;
        size *= 2;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_start_doubles_batches() {
        assert_eq!(slow_start_batches(0), Vec::<usize>::new());
        assert_eq!(slow_start_batches(1), vec![1]);
        assert_eq!(slow_start_batches(10), vec![1, 2, 4, 3]);
    }
}
