//! What one StatefulSet sync should do, computed from the set and its pods
//! alone, as upstream's `updateStatefulSet`: first the replicas in
//! ordinal order (create the missing, recreate the failed; under
//! `OrderedReady` stop at the first that is not Running and Ready), then
//! the condemned ordinals beyond `replicas` from the highest down, then
//! the rolling update from the highest ordinal down to the partition, one
//! pod at a time. Status counts come from the same pods.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::pods::REVISION_LABEL;
use crate::controllers::pod;
use crate::meta::{self, str_at};

/// `spec.updateStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Replace pods from the highest ordinal down to `partition`.
    RollingUpdate {
        /// Ordinals below this keep the current revision.
        partition: usize,
    },
    /// Pods are replaced only when someone deletes them.
    OnDelete,
}

/// The set as far as a sync needs it.
#[derive(Debug, Clone)]
pub struct SetSpec {
    /// `metadata.name` (pods are `<name>-<ordinal>`).
    pub name: String,
    /// `spec.replicas`.
    pub replicas: usize,
    /// `spec.ordinals.start`.
    pub start: usize,
    /// `podManagementPolicy: Parallel`.
    pub parallel: bool,
    /// `spec.updateStrategy`.
    pub strategy: Strategy,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i64,
}

fn usize_at(v: &Value, pointer: &str) -> Option<usize> {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
}

impl SetSpec {
    /// Reads a StatefulSet object (defaults as the API server applies them).
    pub fn from_object(obj: &Value) -> Self {
        let strategy = match obj
            .pointer("/spec/updateStrategy/type")
            .and_then(Value::as_str)
        {
            Some("OnDelete") => Strategy::OnDelete,
            _ => Strategy::RollingUpdate {
                partition: usize_at(obj, "/spec/updateStrategy/rollingUpdate/partition")
                    .unwrap_or(0),
            },
        };
        Self {
            name: meta::name(obj).to_string(),
            replicas: usize_at(obj, "/spec/replicas").unwrap_or(1),
            start: usize_at(obj, "/spec/ordinals/start").unwrap_or(0),
            parallel: obj
                .pointer("/spec/podManagementPolicy")
                .and_then(Value::as_str)
                == Some("Parallel"),
            strategy,
            min_ready_seconds: obj
                .pointer("/spec/minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0),
        }
    }

    /// Which revision a new pod of `ordinal` is made from (upstream's
    /// `newVersionedStatefulSetPod`): below the partition the current one.
    pub fn revision_for(&self, ordinal: usize) -> Revision {
        match self.strategy {
            Strategy::RollingUpdate { partition } if ordinal < partition => Revision::Current,
            _ => Revision::Update,
        }
    }
}

/// Which of the set's two revisions a pod is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revision {
    /// `status.currentRevision`.
    Current,
    /// `status.updateRevision` (the set's template now).
    Update,
}

/// One step of a sync, in the order they are to be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Create the pod of `ordinal` (and its claims) from `revision`.
    Create {
        /// The ordinal.
        ordinal: usize,
        /// Its revision.
        revision: Revision,
    },
    /// Delete a pod that finished (Failed or Succeeded), then create it again.
    Recreate {
        /// The pod's name.
        pod: String,
        /// Its ordinal.
        ordinal: usize,
        /// The revision of the new pod.
        revision: Revision,
        /// Whether it failed (a Warning) or succeeded.
        failed: bool,
    },
    /// Restore the identity labels of a pod that lost them.
    Relabel {
        /// The pod's name.
        pod: String,
        /// Its ordinal.
        ordinal: usize,
    },
    /// Delete a pod beyond `replicas`.
    ScaleDown {
        /// The pod's name.
        pod: String,
    },
    /// Delete a pod of an old revision so that it comes back updated.
    Update {
        /// The pod's name.
        pod: String,
    },
}

/// What a sync does, and what it then waits for (for the log).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Steps, in order.
    pub actions: Vec<Action>,
    /// The pod the set waits for, and why.
    pub waiting: Option<String>,
}

/// The ordinal of a pod of set `set`: `<set>-<digits>`, else `None` (the
/// pod is not a member, upstream's `isMemberOf`).
pub fn ordinal_of(set: &str, pod: &str) -> Option<usize> {
    let digits = pod.strip_prefix(set)?.strip_prefix('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn phase(pod: &Value) -> Option<&str> {
    str_at(pod, "/status/phase")
}

/// Being deleted (has a `deletionTimestamp`).
pub fn is_terminating(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The `controller-revision-hash` label of a pod.
pub fn revision_of(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/labels")
        .and_then(|l| l.get(REVISION_LABEL))
        .and_then(Value::as_str)
}

/// When the pod's Ready condition turned True, if the pod is Running and Ready.
fn ready_since(pod: &Value) -> Option<DateTime<Utc>> {
    if phase(pod) != Some("Running") {
        return None;
    }
    pod::ready_since(pod)
}

/// Upstream's `isRunningAndReady`.
pub fn is_running_and_ready(pod: &Value) -> bool {
    ready_since(pod).is_some()
}

/// Upstream's `isRunningAndAvailable`: Ready for `min_ready_seconds`.
pub fn is_available(pod: &Value, min_ready_seconds: i64, now: DateTime<Utc>) -> bool {
    ready_since(pod).is_some_and(|since| {
        min_ready_seconds <= 0 || since + chrono::Duration::seconds(min_ready_seconds) <= now
    })
}

/// Upstream's `isHealthy`: Running, Ready and not being deleted.
fn is_healthy(pod: &Value) -> bool {
    is_running_and_ready(pod) && !is_terminating(pod)
}

fn identity_matches(set: &SetSpec, pod: &Value, ordinal: usize) -> bool {
    let labels = pod.pointer("/metadata/labels");
    let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    label(super::pods::POD_NAME_LABEL) == Some(meta::name(pod).to_string().as_str())
        && label(super::pods::POD_INDEX_LABEL) == Some(ordinal.to_string().as_str())
        && ordinal_of(&set.name, meta::name(pod)) == Some(ordinal)
}

/// A replica slot: the pod there, or one this plan creates.
enum Slot<'a> {
    Pod(&'a Value),
    New(Revision),
}

/// Plans one sync of `set` given its pods (owned and members), the names
/// of its current and update revisions, at `now`.
pub fn plan(
    set: &SetSpec,
    pods: &[Value],
    current: &str,
    update: &str,
    now: DateTime<Utc>,
) -> Plan {
    let monotonic = !set.parallel;
    let mut out = Plan::default();
    let end = set.start + set.replicas;
    let mut replicas: Vec<Option<&Value>> = vec![None; set.replicas];
    let mut condemned: Vec<(usize, &Value)> = Vec::new();
    for pod in pods {
        let Some(ordinal) = ordinal_of(&set.name, meta::name(pod)) else {
            continue;
        };
        if (set.start..end).contains(&ordinal) {
            replicas[ordinal - set.start] = Some(pod);
        } else {
            condemned.push((ordinal, pod));
        }
    }
    // Highest ordinal first: that is the order they go in.
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    // The first unhealthy pod by ordinal (a missing replica counts as
    // unhealthy): under OrderedReady it is the only unhealthy condemned
    // pod that may be deleted, so a broken set can still scale down.
    let first_unhealthy = replicas
        .iter()
        .enumerate()
        .find(|(_, p)| p.is_none_or(|p| !is_healthy(p)))
        .map(|(i, _)| set.start + i)
        .or_else(|| {
            condemned
                .iter()
                .rev()
                .find(|(_, p)| !is_healthy(p))
                .map(|(o, _)| *o)
        });
    let wait = |out: &mut Plan, why: String| out.waiting = Some(why);

    let mut slots: Vec<Slot> = Vec::with_capacity(set.replicas);
    for (i, pod) in replicas.iter().enumerate() {
        let ordinal = set.start + i;
        let pod_name = format!("{}-{ordinal}", set.name);
        let Some(pod) = *pod else {
            let revision = set.revision_for(ordinal);
            out.actions.push(Action::Create { ordinal, revision });
            slots.push(Slot::New(revision));
            if monotonic {
                wait(&mut out, format!("{pod_name} to be created"));
                return out;
            }
            continue;
        };
        let finished = matches!(phase(pod), Some("Failed" | "Succeeded"));
        if finished && !is_terminating(pod) {
            let revision = set.revision_for(ordinal);
            out.actions.push(Action::Recreate {
                pod: pod_name.clone(),
                ordinal,
                revision,
                failed: phase(pod) == Some("Failed"),
            });
            slots.push(Slot::New(revision));
            if monotonic {
                wait(&mut out, format!("{pod_name} to be recreated"));
                return out;
            }
            continue;
        }
        slots.push(Slot::Pod(pod));
        if is_terminating(pod) && monotonic {
            wait(&mut out, format!("{pod_name} to terminate"));
            return out;
        }
        if !is_running_and_ready(pod) && monotonic {
            wait(&mut out, format!("{pod_name} to be Running and Ready"));
            return out;
        }
        if !is_available(pod, set.min_ready_seconds, now) && monotonic {
            wait(&mut out, format!("{pod_name} to be available"));
            return out;
        }
        if !is_terminating(pod) && !identity_matches(set, pod, ordinal) {
            out.actions.push(Action::Relabel {
                pod: pod_name,
                ordinal,
            });
        }
    }

    for (ordinal, pod) in &condemned {
        let pod_name = meta::name(pod).to_string();
        if is_terminating(pod) {
            if monotonic {
                wait(&mut out, format!("{pod_name} to terminate"));
                return out;
            }
            continue;
        }
        let unhealthy =
            !is_running_and_ready(pod) || !is_available(pod, set.min_ready_seconds, now);
        if monotonic && unhealthy && first_unhealthy != Some(*ordinal) {
            wait(&mut out, format!("{pod_name} to be Running and Ready"));
            return out;
        }
        out.actions.push(Action::ScaleDown { pod: pod_name });
        if monotonic {
            return out;
        }
    }

    let Strategy::RollingUpdate { partition } = set.strategy else {
        return out;
    };
    for target in (partition..slots.len()).rev() {
        let pod_name = format!("{}-{}", set.name, set.start + target);
        let (revision, healthy, terminating) = match &slots[target] {
            Slot::Pod(p) => (
                revision_of(p).map(String::from),
                is_healthy(p),
                is_terminating(p),
            ),
            Slot::New(r) => {
                let name = match r {
                    Revision::Current => current,
                    Revision::Update => update,
                };
                (Some(name.to_string()), false, false)
            }
        };
        if revision.as_deref() != Some(update) && !terminating {
            out.actions.push(Action::Update { pod: pod_name });
            return out;
        }
        if !healthy {
            wait(&mut out, format!("{pod_name} to update"));
            return out;
        }
    }
    out
}

/// The pod counts of `status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Pods that exist (`status.replicas`).
    pub replicas: usize,
    /// Running and Ready.
    pub ready: usize,
    /// Ready for `minReadySeconds`.
    pub available: usize,
    /// Of the current revision, not being deleted.
    pub current: usize,
    /// Of the update revision, not being deleted.
    pub updated: usize,
}

/// Upstream's `computeReplicaStatus` over the set's pods.
pub fn counts(
    pods: &[Value],
    current: &str,
    update: &str,
    min_ready_seconds: i64,
    now: DateTime<Utc>,
) -> Counts {
    let mut c = Counts::default();
    for pod in pods {
        // Created: the API server gave it a phase.
        if phase(pod).is_none() {
            continue;
        }
        c.replicas += 1;
        if is_running_and_ready(pod) {
            c.ready += 1;
            if is_available(pod, min_ready_seconds, now) {
                c.available += 1;
            }
        }
        if !is_terminating(pod) {
            let revision = revision_of(pod);
            if revision == Some(current) {
                c.current += 1;
            }
            if revision == Some(update) {
                c.updated += 1;
            }
        }
    }
    c
}

/// When the set should be looked at again for a pod to become available
/// (Ready pods not yet `minReadySeconds` old), if any.
pub fn next_availability(
    pods: &[Value],
    min_ready_seconds: i64,
    now: DateTime<Utc>,
) -> Option<std::time::Duration> {
    if min_ready_seconds <= 0 {
        return None;
    }
    pods.iter()
        .filter_map(ready_since)
        .map(|since| since + chrono::Duration::seconds(min_ready_seconds) - now)
        .filter(|left| *left > chrono::Duration::zero())
        .min()
        .and_then(|left| left.to_std().ok())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::controllers::statefulset::pods::{POD_INDEX_LABEL, POD_NAME_LABEL};

    const CUR: &str = "web-aaa";
    const UPD: &str = "web-bbb";

    fn set(replicas: usize) -> SetSpec {
        SetSpec {
            name: "web".into(),
            replicas,
            start: 0,
            parallel: false,
            strategy: Strategy::RollingUpdate { partition: 0 },
            min_ready_seconds: 0,
        }
    }

    fn pod(ordinal: usize, revision: &str, state: &str) -> Value {
        let name = format!("web-{ordinal}");
        let mut p = json!({
            "metadata": {"name": name, "labels": {
                POD_NAME_LABEL: name, POD_INDEX_LABEL: ordinal.to_string(),
                REVISION_LABEL: revision}},
            "status": {"phase": "Pending"},
        });
        match state {
            "ready" => {
                p["status"] = json!({"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]});
            }
            "running" => p["status"] = json!({"phase": "Running"}),
            "failed" => p["status"] = json!({"phase": "Failed"}),
            "terminating" => {
                p["status"] = json!({"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": "2024-01-01T00:00:00Z"}]});
                p["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
            }
            _ => {}
        }
        p
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2024-01-01T00:10:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    fn run(s: &SetSpec, pods: &[Value]) -> Plan {
        plan(s, pods, CUR, UPD, now())
    }

    fn create(ordinal: usize) -> Action {
        Action::Create {
            ordinal,
            revision: Revision::Update,
        }
    }

    #[test]
    fn ordinals_come_from_member_names_only() {
        assert_eq!(ordinal_of("web", "web-0"), Some(0));
        assert_eq!(ordinal_of("web", "web-12"), Some(12));
        assert_eq!(ordinal_of("web", "web-x"), None);
        assert_eq!(ordinal_of("web", "web-"), None);
        assert_eq!(ordinal_of("web", "webby-1"), None);
        assert_eq!(ordinal_of("web", "web-1-2"), None);
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time_waiting_for_readiness() {
        let s = set(3);
        let p = run(&s, &[]);
        assert_eq!(p.actions, [create(0)]);
        // web-0 exists but is not Ready: nothing else happens.
        let p = run(&s, &[pod(0, UPD, "pending")]);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.waiting.as_deref(), Some("web-0 to be Running and Ready"));
        let p = run(&s, &[pod(0, UPD, "running")]);
        assert!(p.actions.is_empty(), "Running but not Ready: {p:?}");
        let p = run(&s, &[pod(0, UPD, "ready")]);
        assert_eq!(p.actions, [create(1)]);
        // A gap is filled before anything above it is touched.
        let p = run(&s, &[pod(0, UPD, "ready"), pod(2, UPD, "ready")]);
        assert_eq!(p.actions, [create(1)]);
        let all = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "ready"),
            pod(2, UPD, "ready"),
        ];
        assert_eq!(run(&s, &all), Plan::default());
    }

    #[test]
    fn parallel_creates_every_missing_pod_at_once() {
        let mut s = set(3);
        s.parallel = true;
        let p = run(&s, &[pod(1, UPD, "pending")]);
        assert_eq!(p.actions, [create(0), create(2)]);
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first_one_at_a_time() {
        let s = set(1);
        let pods = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "ready"),
            pod(2, UPD, "ready"),
        ];
        let p = run(&s, &pods);
        assert_eq!(
            p.actions,
            [Action::ScaleDown {
                pod: "web-2".into()
            }]
        );
        // web-2 terminating: web-1 waits for it to be gone.
        let pods = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "ready"),
            pod(2, UPD, "terminating"),
        ];
        let p = run(&s, &pods);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.waiting.as_deref(), Some("web-2 to terminate"));
        let p = run(&s, &pods[..2]);
        assert_eq!(
            p.actions,
            [Action::ScaleDown {
                pod: "web-1".into()
            }]
        );
        // Parallel: all at once, terminating ones skipped.
        let mut par = set(1);
        par.parallel = true;
        let pods = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "ready"),
            pod(2, UPD, "terminating"),
            pod(3, UPD, "ready"),
        ];
        assert_eq!(
            run(&par, &pods).actions,
            [
                Action::ScaleDown {
                    pod: "web-3".into()
                },
                Action::ScaleDown {
                    pod: "web-1".into()
                }
            ]
        );
    }

    #[test]
    fn scale_down_waits_for_unready_replicas_but_may_remove_the_first_unhealthy() {
        let s = set(1);
        // A replica that is not Ready blocks scale-down.
        let pods = [pod(0, UPD, "pending"), pod(1, UPD, "ready")];
        assert!(run(&s, &pods).actions.is_empty());
        // An unhealthy condemned pod that is the first unhealthy one goes.
        let pods = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "ready"),
            pod(2, UPD, "pending"),
        ];
        assert_eq!(
            run(&s, &pods).actions,
            [Action::ScaleDown {
                pod: "web-2".into()
            }]
        );
        // web-1 unhealthy is the first; web-2 (healthy, higher) goes first anyway.
        let pods = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "pending"),
            pod(2, UPD, "ready"),
        ];
        assert_eq!(
            run(&s, &pods).actions,
            [Action::ScaleDown {
                pod: "web-2".into()
            }]
        );
        // web-2 unhealthy but web-1 is the first unhealthy: wait.
        let pods = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "pending"),
            pod(2, UPD, "pending"),
        ];
        assert!(run(&s, &pods).actions.is_empty());
    }

    #[test]
    fn a_failed_pod_is_recreated_and_a_terminating_one_waited_for() {
        let s = set(2);
        let pods = [pod(0, UPD, "ready"), pod(1, UPD, "failed")];
        assert_eq!(
            run(&s, &pods).actions,
            [Action::Recreate {
                pod: "web-1".into(),
                ordinal: 1,
                revision: Revision::Update,
                failed: true
            }]
        );
        // The old pod object still exists (a lost node): no second web-1.
        let pods = [pod(0, UPD, "ready"), pod(1, UPD, "terminating")];
        let p = run(&s, &pods);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.waiting.as_deref(), Some("web-1 to terminate"));
        let mut par = s.clone();
        par.parallel = true;
        assert!(run(&par, &pods).actions.is_empty(), "parallel waits too");
    }

    #[test]
    fn rolling_update_goes_from_the_top_one_pod_at_a_time() {
        let s = set(3);
        let old = [
            pod(0, CUR, "ready"),
            pod(1, CUR, "ready"),
            pod(2, CUR, "ready"),
        ];
        assert_eq!(
            run(&s, &old).actions,
            [Action::Update {
                pod: "web-2".into()
            }]
        );
        // web-2 was recreated updated but is not Ready yet: wait.
        let pods = [
            pod(0, CUR, "ready"),
            pod(1, CUR, "ready"),
            pod(2, UPD, "running"),
        ];
        let p = run(&s, &pods);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.waiting.as_deref(), Some("web-2 to be Running and Ready"));
        // Parallel: the replicas do not wait, the update does.
        let mut par = s.clone();
        par.parallel = true;
        let p = run(&par, &pods);
        assert!(p.actions.is_empty(), "{p:?}");
        assert_eq!(p.waiting.as_deref(), Some("web-2 to update"));
        let pods = [
            pod(0, CUR, "ready"),
            pod(1, CUR, "ready"),
            pod(2, UPD, "ready"),
        ];
        assert_eq!(
            run(&s, &pods).actions,
            [Action::Update {
                pod: "web-1".into()
            }]
        );
        let done = [
            pod(0, UPD, "ready"),
            pod(1, UPD, "ready"),
            pod(2, UPD, "ready"),
        ];
        assert_eq!(run(&s, &done), Plan::default());
    }

    #[test]
    fn a_partition_keeps_lower_ordinals_on_the_current_revision() {
        let mut s = set(3);
        s.strategy = Strategy::RollingUpdate { partition: 2 };
        let old = [
            pod(0, CUR, "ready"),
            pod(1, CUR, "ready"),
            pod(2, CUR, "ready"),
        ];
        assert_eq!(
            run(&s, &old).actions,
            [Action::Update {
                pod: "web-2".into()
            }]
        );
        let pods = [
            pod(0, CUR, "ready"),
            pod(1, CUR, "ready"),
            pod(2, UPD, "ready"),
        ];
        assert_eq!(run(&s, &pods), Plan::default());
        // A pod below the partition that is recreated keeps the current revision.
        assert_eq!(
            run(&s, &[pod(1, CUR, "ready"), pod(2, UPD, "ready")]).actions,
            [Action::Create {
                ordinal: 0,
                revision: Revision::Current
            }]
        );
    }

    #[test]
    fn on_delete_never_deletes_for_an_update() {
        let mut s = set(2);
        s.strategy = Strategy::OnDelete;
        let old = [pod(0, CUR, "ready"), pod(1, CUR, "ready")];
        assert_eq!(run(&s, &old), Plan::default());
        // A deleted pod comes back at the update revision.
        assert_eq!(run(&s, &old[..1]).actions, [create(1)]);
    }

    #[test]
    fn lost_labels_are_restored() {
        let s = set(1);
        let mut p = pod(0, UPD, "ready");
        p["metadata"]["labels"]
            .as_object_mut()
            .expect("labels")
            .remove(POD_INDEX_LABEL);
        assert_eq!(
            run(&s, &[p]).actions,
            [Action::Relabel {
                pod: "web-0".into(),
                ordinal: 0
            }]
        );
    }

    #[test]
    fn counts_follow_upstream() {
        let pods = [
            pod(0, CUR, "ready"),
            pod(1, UPD, "ready"),
            pod(2, UPD, "pending"),
            pod(3, CUR, "terminating"),
        ];
        assert_eq!(
            counts(&pods, CUR, UPD, 0, now()),
            Counts {
                replicas: 4,
                ready: 3,
                available: 3,
                current: 1,
                updated: 2
            }
        );
        // minReadySeconds: Ready since 00:00, now 00:10.
        assert_eq!(counts(&pods, CUR, UPD, 601, now()).available, 0);
        assert_eq!(
            next_availability(&pods, 601, now()),
            Some(std::time::Duration::from_secs(1))
        );
        assert_eq!(next_availability(&pods, 0, now()), None);
    }
}
