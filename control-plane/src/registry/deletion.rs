//! What a delete does to an object, decided as upstream's registry decides
//! it, for the HTTP API and the control plane's own actors alike:
//!
//! - a pod on a node is deleted gracefully: it gets a `deletionTimestamp`
//!   (Terminating) and stays until its node confirms, or a shorter grace
//!   period (down to 0) is asked for;
//! - the propagation policy becomes a finalizer for the garbage collector:
//!   `Orphan` adds `orphan`, `Foreground` adds `foregroundDeletion`,
//!   `Background` (kubectl's default) adds neither;
//! - an object with finalizers is never removed by a delete: it is marked
//!   (`deletionTimestamp`, `deletionGracePeriodSeconds: 0`) and goes when an
//!   update empties its finalizers ([`finished`]).

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The finalizer of a foreground deletion: the garbage collector removes it
/// once the owner's blocking dependents are gone.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion: the garbage collector removes it
/// once no dependent refers to the owner any more.
pub const ORPHAN: &str = "orphan";

/// `propagationPolicy` of a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents stay, without their reference to the owner.
    Orphan,
    /// The owner goes now, its dependents after it.
    Background,
    /// The dependents go first, the owner once they are gone.
    Foreground,
}

impl Propagation {
    /// Parses the API's spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Orphan" => Some(Self::Orphan),
            "Background" => Some(Self::Background),
            "Foreground" => Some(Self::Foreground),
            _ => None,
        }
    }

    /// The API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Orphan => "Orphan",
            Self::Background => "Background",
            Self::Foreground => "Foreground",
        }
    }
}

/// `DeleteOptions`, as far as they change what a delete does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteOptions {
    /// Unset: the object's own GC finalizers decide, else `Background`.
    pub propagation: Option<Propagation>,
    /// Unset: the pod's `terminationGracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// Precondition: the object must have this uid.
    pub uid: Option<String>,
    /// Precondition: the object must be at this revision.
    pub resource_version: Option<u64>,
}

/// What a delete does.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Remove the object from the store now.
    Remove,
    /// Write this version of the object, which stays (graceful deletion
    /// started or shortened, or finalizers pending).
    Keep(Value),
    /// Nothing changes: the object is already on its way out.
    Pending,
}

/// The finalizers of `obj`.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

/// Sets `obj`'s finalizers (an empty list is omitted, as upstream serializes it).
pub fn set_finalizers(obj: &mut Value, finalizers: Vec<String>) {
    if finalizers.is_empty() {
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("finalizers");
        }
    } else {
        obj["metadata"]["finalizers"] = json!(finalizers);
    }
}

/// Whether `obj` has a `deletionTimestamp`.
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Whether an object written in this state is to be removed instead: it is
/// being deleted, its finalizers are all gone, and no grace period is still
/// running (a terminating pod waits for its node).
pub fn finished(obj: &Value) -> bool {
    is_deleting(obj)
        && finalizers(obj).is_empty()
        && obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(0)
}

/// The finalizers an update adds to an object that is being deleted (which
/// upstream refuses: deletion only ever removes them).
pub fn added_while_deleting(old: &Value, new: &Value) -> Vec<String> {
    if !is_deleting(old) {
        return Vec::new();
    }
    let before = finalizers(old);
    finalizers(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect()
}

fn timestamp(t: DateTime<Utc>) -> Value {
    json!(t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn bump_generation(obj: &mut Value) {
    if let Some(g) = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .filter(|g| *g > 0)
    {
        obj["metadata"]["generation"] = json!(g + 1);
    }
}

/// Graceful deletion of a pod (upstream's `BeforeDelete` with the pod
/// strategy). Returns (graceful, already pending): pending when a grace
/// period runs already and the request does not shorten it.
fn before_delete_pod(pod: &mut Value, options: &DeleteOptions, now: DateTime<Utc>) -> (bool, bool) {
    // A negative period counts as one second on the delete path.
    let requested = options
        .grace_period_seconds
        .map(|g| if g < 0 { 1 } else { g });
    if is_deleting(pod) {
        let current = pod
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if current == 0 {
            return (false, false);
        }
        // Only a shorter grace period may be asked for.
        let Some(period) = requested.filter(|p| *p < current) else {
            return (false, true);
        };
        let deadline = pod
            .pointer("/metadata/deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(now, |t| t.with_timezone(&Utc));
        let shortened = deadline - chrono::Duration::seconds(current - period);
        pod["metadata"]["deletionTimestamp"] = timestamp(shortened);
        pod["metadata"]["deletionGracePeriodSeconds"] = json!(period);
        return (true, false);
    }
    let mut period = requested
        .or_else(|| pod["spec"]["terminationGracePeriodSeconds"].as_i64())
        .unwrap_or(30)
        .max(0);
    // Nothing runs yet, or nothing runs any more: no need to wait.
    let unscheduled = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
    let terminated = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    if unscheduled || terminated {
        period = 0;
    }
    pod["metadata"]["deletionTimestamp"] = timestamp(now + chrono::Duration::seconds(period));
    pod["metadata"]["deletionGracePeriodSeconds"] = json!(period);
    bump_generation(pod);
    (true, false)
}

/// The finalizers the propagation policy asks for, in place of the GC
/// finalizers `obj` has. Returns whether they changed.
fn set_gc_finalizers(obj: &mut Value, propagation: Option<Propagation>) -> bool {
    let old = finalizers(obj);
    let has = |f: &str| old.iter().any(|o| o == f);
    // Without a policy, a GC finalizer already there stands; every kind
    // served here defaults to Background.
    let (orphan, foreground) = match propagation {
        Some(p) => (p == Propagation::Orphan, p == Propagation::Foreground),
        None => {
            let first = old.iter().find(|f| *f == ORPHAN || *f == FOREGROUND);
            (
                first.is_some_and(|f| f == ORPHAN),
                first.is_some_and(|f| f == FOREGROUND),
            )
        }
    };
    if orphan == has(ORPHAN) && foreground == has(FOREGROUND) {
        return false;
    }
    let mut new: Vec<String> = old
        .iter()
        .filter(|f| *f != ORPHAN && *f != FOREGROUND)
        .cloned()
        .collect();
    if orphan {
        new.push(ORPHAN.into());
    }
    if foreground {
        new.push(FOREGROUND.into());
    }
    set_finalizers(obj, new);
    true
}

/// Marks an object that cannot go yet because of its finalizers.
fn mark_as_deleting(obj: &mut Value, now: DateTime<Utc>) {
    let existing = obj
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    if existing.is_none() {
        bump_generation(obj);
    }
    if existing.is_none_or(|t| t > now) {
        obj["metadata"]["deletionTimestamp"] = timestamp(now);
    }
    obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
}

/// What deleting `obj` (of `kind`) with `options` does at `now`.
/// Preconditions are the caller's to check.
pub fn plan(kind: &str, obj: &Value, options: &DeleteOptions, now: DateTime<Utc>) -> Plan {
    let mut next = obj.clone();
    let (graceful, pending) = if kind == "Pod" {
        before_delete_pod(&mut next, options, now)
    } else {
        (false, false)
    };
    // Finalizers cannot be changed through a delete while a grace period runs.
    if pending {
        return Plan::Pending;
    }
    set_gc_finalizers(&mut next, options.propagation);
    let pending_finalizers = !finalizers(&next).is_empty();
    let outcome = if !graceful {
        if !pending_finalizers {
            return Plan::Remove;
        }
        mark_as_deleting(&mut next, now);
        next
    } else {
        let grace = next
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if !pending_finalizers && grace == 0 {
            return Plan::Remove;
        }
        next
    };
    if outcome == *obj {
        Plan::Pending
    } else {
        Plan::Keep(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T10:00:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn cm(finalizers: &[&str]) -> Value {
        let mut o = json!({"metadata": {"name": "c", "uid": "u"}});
        if !finalizers.is_empty() {
            o["metadata"]["finalizers"] = json!(finalizers);
        }
        o
    }

    fn pod_on_node(grace: i64) -> Value {
        json!({"metadata": {"name": "p", "uid": "u"},
               "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": grace},
               "status": {"phase": "Running"}})
    }

    fn opts(propagation: Option<Propagation>) -> DeleteOptions {
        DeleteOptions {
            propagation,
            ..DeleteOptions::default()
        }
    }

    #[test]
    fn background_without_finalizers_removes_at_once() {
        assert_eq!(
            plan(
                "ConfigMap",
                &cm(&[]),
                &opts(Some(Propagation::Background)),
                now()
            ),
            Plan::Remove
        );
        assert_eq!(
            plan("ConfigMap", &cm(&[]), &opts(None), now()),
            Plan::Remove
        );
    }

    #[test]
    fn a_custom_finalizer_keeps_the_object_marked_with_grace_zero() {
        let Plan::Keep(kept) = plan("ConfigMap", &cm(&["example.com/hold"]), &opts(None), now())
        else {
            panic!("kept");
        };
        assert_eq!(
            kept["metadata"]["deletionTimestamp"],
            "2026-03-01T10:00:00Z"
        );
        assert_eq!(kept["metadata"]["deletionGracePeriodSeconds"], 0);
        assert_eq!(finalizers(&kept), vec!["example.com/hold"]);
        assert!(!finished(&kept));
        // Deleting again changes nothing.
        assert_eq!(plan("ConfigMap", &kept, &opts(None), now()), Plan::Pending);
        // Once an update empties the finalizers, it is done.
        let mut emptied = kept.clone();
        set_finalizers(&mut emptied, Vec::new());
        assert!(finished(&emptied));
    }

    #[test]
    fn propagation_policies_become_gc_finalizers() {
        let Plan::Keep(fg) = plan(
            "ReplicaSet",
            &cm(&[]),
            &opts(Some(Propagation::Foreground)),
            now(),
        ) else {
            panic!("foreground keeps");
        };
        assert_eq!(finalizers(&fg), vec![FOREGROUND]);
        let Plan::Keep(or) = plan(
            "ReplicaSet",
            &cm(&["x"]),
            &opts(Some(Propagation::Orphan)),
            now(),
        ) else {
            panic!("orphan keeps");
        };
        assert_eq!(finalizers(&or), vec!["x", ORPHAN]);
        // A later delete switches the policy; without one, the finalizer stands.
        let Plan::Keep(switched) = plan("ReplicaSet", &fg, &opts(Some(Propagation::Orphan)), now())
        else {
            panic!("switch");
        };
        assert_eq!(finalizers(&switched), vec![ORPHAN]);
        assert_eq!(plan("ReplicaSet", &fg, &opts(None), now()), Plan::Pending);
        // Background drops a GC finalizer; with none other left, it goes.
        assert_eq!(
            plan(
                "ReplicaSet",
                &fg,
                &opts(Some(Propagation::Background)),
                now()
            ),
            Plan::Remove
        );
    }

    #[test]
    fn a_pod_on_a_node_terminates_gracefully_and_may_be_shortened() {
        let Plan::Keep(terminating) = plan("Pod", &pod_on_node(30), &opts(None), now()) else {
            panic!("graceful");
        };
        assert_eq!(
            terminating["metadata"]["deletionTimestamp"],
            "2026-03-01T10:00:30Z"
        );
        assert_eq!(terminating["metadata"]["deletionGracePeriodSeconds"], 30);
        assert!(!finished(&terminating));
        // Asking again with the same or a longer period changes nothing.
        assert_eq!(plan("Pod", &terminating, &opts(None), now()), Plan::Pending);
        let longer = DeleteOptions {
            grace_period_seconds: Some(60),
            ..DeleteOptions::default()
        };
        assert_eq!(plan("Pod", &terminating, &longer, now()), Plan::Pending);
        // A shorter one moves the deadline.
        let shorter = DeleteOptions {
            grace_period_seconds: Some(10),
            ..DeleteOptions::default()
        };
        let Plan::Keep(short) = plan("Pod", &terminating, &shorter, now()) else {
            panic!("shortened");
        };
        assert_eq!(
            short["metadata"]["deletionTimestamp"],
            "2026-03-01T10:00:10Z"
        );
        // The node's confirmation (grace 0) removes it.
        let confirm = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        assert_eq!(plan("Pod", &short, &confirm, now()), Plan::Remove);
    }

    #[test]
    fn pods_that_run_nothing_go_at_once_unless_finalized() {
        let mut unscheduled = pod_on_node(30);
        unscheduled["spec"]["nodeName"] = json!("");
        assert_eq!(plan("Pod", &unscheduled, &opts(None), now()), Plan::Remove);
        let mut done = pod_on_node(30);
        done["status"]["phase"] = json!("Succeeded");
        assert_eq!(plan("Pod", &done, &opts(None), now()), Plan::Remove);
        // A confirmed pod with a finalizer stays until it is removed.
        let mut held = pod_on_node(30);
        held["metadata"]["finalizers"] = json!(["example.com/hold"]);
        let Plan::Keep(terminating) = plan("Pod", &held, &opts(None), now()) else {
            panic!("graceful");
        };
        let confirm = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        let Plan::Keep(confirmed) = plan("Pod", &terminating, &confirm, now()) else {
            panic!("finalizer holds it");
        };
        assert_eq!(confirmed["metadata"]["deletionGracePeriodSeconds"], 0);
        let mut emptied = confirmed;
        set_finalizers(&mut emptied, Vec::new());
        assert!(finished(&emptied));
    }

    #[test]
    fn no_finalizer_may_be_added_while_deleting() {
        let Plan::Keep(kept) = plan("ConfigMap", &cm(&["a"]), &opts(None), now()) else {
            panic!("kept");
        };
        let mut more = kept.clone();
        set_finalizers(&mut more, vec!["a".into(), "b".into()]);
        assert_eq!(added_while_deleting(&kept, &more), vec!["b"]);
        assert!(added_while_deleting(&cm(&["a"]), &more).is_empty());
    }
}
