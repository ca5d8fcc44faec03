//! What one ReplicaSet (or ReplicationController) sync should do, computed
//! from the owner and the pods of its namespace alone, as upstream's
//! `syncReplicaSet`: claim pods (adopt matching orphans, release pods whose
//! labels no longer match), then create or delete the difference, and
//! report status from what exists now.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use skiff_api_rules::workloads::selector_matches;

use crate::controllers::pod::{deletion_order, is_active, ready_since};
use crate::meta::{controller_uid, labels as pod_labels};

fn name(pod: &Value) -> String {
    crate::meta::name(pod).to_string()
}

/// Upstream's `burstReplicas`: at most this many creates or deletes per sync.
pub const BURST_REPLICAS: usize = 500;

/// How an owner selects its pods.
#[derive(Debug, Clone)]
pub enum Selector {
    /// ReplicaSet: `matchLabels` and `matchExpressions`, ANDed.
    Set(LabelSelector),
    /// ReplicationController: a plain equality map.
    Map(BTreeMap<String, String>),
}

impl Selector {
    /// Whether a pod's labels are selected. An empty selector selects
    /// nothing (validation rejects it; this keeps a bad object harmless).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        match self {
            Self::Set(s) => {
                let empty = s.match_labels.as_ref().is_none_or(BTreeMap::is_empty)
                    && s.match_expressions.as_ref().is_none_or(Vec::is_empty);
                !empty && selector_matches(s, labels)
            }
            Self::Map(m) => !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)),
        }
    }
}

/// The owner as far as a sync needs it.
#[derive(Debug, Clone)]
pub struct Owner {
    /// Its uid (what pods' controller references point to).
    pub uid: String,
    /// `spec.replicas` (default 1).
    pub replicas: usize,
    /// Its selector.
    pub selector: Selector,
    /// The template's labels (for `fullyLabeledReplicas`).
    pub template_labels: BTreeMap<String, String>,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i64,
    /// `metadata.generation`.
    pub generation: i64,
    /// Being deleted: adopt nothing, create nothing.
    pub deleting: bool,
}

impl Owner {
    /// Reads an RS or RC object; `None` if its spec is unusable.
    pub fn from_object(obj: &Value) -> Option<Self> {
        let spec = obj.get("spec")?;
        let selector = match obj["kind"].as_str() {
            Some("ReplicationController") => {
                let map: BTreeMap<String, String> = spec
                    .get("selector")
                    .and_then(|s| serde_json::from_value(s.clone()).ok())
                    .or_else(|| labels_at(spec, "/template/metadata/labels"))?;
                Selector::Map(map)
            }
            _ => Selector::Set(serde_json::from_value(spec.get("selector")?.clone()).ok()?),
        };
        Some(Self {
            uid: obj.pointer("/metadata/uid")?.as_str()?.to_string(),
            replicas: spec
                .get("replicas")
                .and_then(Value::as_u64)
                .map_or(1, |r| r as usize),
            selector,
            template_labels: labels_at(spec, "/template/metadata/labels").unwrap_or_default(),
            min_ready_seconds: spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            generation: obj
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1),
            deleting: obj
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null()),
        })
    }
}

fn labels_at(v: &Value, pointer: &str) -> Option<BTreeMap<String, String>> {
    serde_json::from_value(v.pointer(pointer)?.clone()).ok()
}

/// What the sync will do.
#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Orphans to adopt (names).
    pub adopt: Vec<String>,
    /// Owned pods whose labels no longer match, to release (names).
    pub release: Vec<String>,
    /// How many pods to create.
    pub create: usize,
    /// Pods to delete (names), in order.
    pub delete: Vec<String>,
    /// `status.replicas`.
    pub replicas: usize,
    /// `status.fullyLabeledReplicas`.
    pub fully_labeled: usize,
    /// `status.readyReplicas`.
    pub ready: usize,
    /// `status.availableReplicas`.
    pub available: usize,
    /// When the next ready pod becomes available (`minReadySeconds`).
    pub next_available: Option<Duration>,
}

/// Plans one sync of `owner` given every pod of its namespace.
pub fn plan(owner: &Owner, pods: &[Value], now: DateTime<Utc>) -> Plan {
    let mut result = Plan::default();
    let mut mine: Vec<&Value> = Vec::new();
    for pod in pods {
        let labels = pod_labels(pod);
        let selected = owner.selector.matches(&labels);
        match controller_uid(pod) {
            Some(uid) if uid == owner.uid => {
                if selected {
                    mine.push(pod);
                } else {
                    result.release.push(name(pod));
                }
            }
            Some(_) => {}
            None if selected && !owner.deleting && is_active(pod) => {
                result.adopt.push(name(pod));
                mine.push(pod);
            }
            None => {}
        }
    }
    let mut active: Vec<&Value> = mine.into_iter().filter(|p| is_active(p)).collect();
    result.replicas = active.len();
    result.fully_labeled = active
        .iter()
        .filter(|p| {
            let labels = pod_labels(p);
            owner
                .template_labels
                .iter()
                .all(|(k, v)| labels.get(k) == Some(v))
        })
        .count();
    let min_ready = chrono::Duration::seconds(owner.min_ready_seconds);
    let ready: Vec<DateTime<Utc>> = active.iter().filter_map(|p| ready_since(p)).collect();
    result.ready = ready.len();
    result.available = ready
        .iter()
        .filter(|since| owner.min_ready_seconds == 0 || **since + min_ready <= now)
        .count();
    result.next_available = ready
        .iter()
        .filter(|_| owner.min_ready_seconds > 0)
        .filter_map(|since| (*since + min_ready - now).to_std().ok())
        .filter(|left| !left.is_zero())
        .min();
    if owner.deleting {
        return result;
    }
    if active.len() < owner.replicas {
        result.create = (owner.replicas - active.len()).min(BURST_REPLICAS);
    } else if active.len() > owner.replicas {
        let surplus = (active.len() - owner.replicas).min(BURST_REPLICAS);
        active.sort_by(|a, b| deletion_order(a, b));
        result.delete = active.iter().take(surplus).map(|p| name(p)).collect();
    }
    result
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn owner(replicas: usize) -> Owner {
        Owner::from_object(&json!({
            "kind": "ReplicaSet",
            "metadata": {"name": "rs", "uid": "rs-uid", "generation": 2},
            "spec": {"replicas": replicas,
                     "selector": {"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["db"]}]},
                     "template": {"metadata": {"labels": {"app": "web", "env": "prod"}}}},
        }))
        .expect("owner")
    }

    fn pod(name: &str, labels: Value, owner: Option<&str>) -> Value {
        let mut p = json!({
            "metadata": {"name": name, "labels": labels, "creationTimestamp": format!("2026-01-01T00:00:0{}Z", name.len() % 10)},
            "spec": {"nodeName": "n1"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}]},
        });
        if let Some(uid) = owner {
            p["metadata"]["ownerReferences"] =
                json!([{"kind": "ReplicaSet", "name": "rs", "uid": uid, "controller": true}]);
        }
        p
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T01:00:00Z".parse().expect("time")
    }

    #[test]
    fn missing_pods_are_created_and_status_counts_what_exists() {
        let pods = vec![pod(
            "a",
            json!({"app": "web", "env": "prod"}),
            Some("rs-uid"),
        )];
        let p = plan(&owner(3), &pods, now());
        assert_eq!(p.create, 2);
        assert_eq!(
            (p.replicas, p.fully_labeled, p.ready, p.available),
            (1, 1, 1, 1)
        );
    }

    #[test]
    fn orphans_are_adopted_and_relabelled_pods_released() {
        let pods = vec![
            pod("orphan", json!({"app": "web"}), None),
            pod("zombie", json!({"app": "other"}), Some("rs-uid")),
            pod("excluded", json!({"app": "web", "tier": "db"}), None),
            pod("someone-elses", json!({"app": "web"}), Some("other-uid")),
        ];
        let p = plan(&owner(1), &pods, now());
        assert_eq!(p.adopt, vec!["orphan"]);
        assert_eq!(p.release, vec!["zombie"]);
        assert_eq!((p.create, p.delete.len(), p.replicas), (0, 0, 1));
        // Adopted, but its labels are not the template's.
        assert_eq!(p.fully_labeled, 0);
    }

    #[test]
    fn surplus_deletes_unscheduled_then_not_ready_then_newest() {
        let labels = json!({"app": "web", "env": "prod"});
        let mut unscheduled = pod("unscheduled", labels.clone(), Some("rs-uid"));
        unscheduled["spec"] = json!({});
        unscheduled["status"] = json!({"phase": "Pending"});
        let mut not_ready = pod("notready", labels.clone(), Some("rs-uid"));
        not_ready["status"]["conditions"][0]["status"] = json!("False");
        let old = pod("old", labels.clone(), Some("rs-uid"));
        let mut newer = pod("newer", labels.clone(), Some("rs-uid"));
        newer["metadata"]["creationTimestamp"] = json!("2026-01-01T00:00:09Z");
        newer["status"]["conditions"][0]["lastTransitionTime"] = json!("2026-01-01T00:00:09Z");
        let pods = vec![old, newer, not_ready, unscheduled];
        let p = plan(&owner(1), &pods, now());
        assert_eq!(p.delete, vec!["unscheduled", "notready", "newer"]);
    }

    #[test]
    fn finished_and_terminating_pods_do_not_count() {
        let labels = json!({"app": "web", "env": "prod"});
        let mut done = pod("done", labels.clone(), Some("rs-uid"));
        done["status"]["phase"] = json!("Succeeded");
        let mut going = pod("going", labels.clone(), Some("rs-uid"));
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let p = plan(&owner(2), &[done, going], now());
        assert_eq!((p.create, p.replicas), (2, 0));
    }

    #[test]
    fn available_waits_for_min_ready_seconds() {
        let mut o = owner(1);
        o.min_ready_seconds = 7200;
        let pods = vec![pod("a", json!({"app": "web"}), Some("rs-uid"))];
        let p = plan(&o, &pods, now());
        assert_eq!((p.ready, p.available), (1, 0));
        // Ready at 00:00, now 01:00: available at 02:00.
        assert_eq!(p.next_available, Some(Duration::from_secs(3600)));
        o.min_ready_seconds = 60;
        let p = plan(&o, &pods, now());
        assert_eq!((p.available, p.next_available), (1, None));
    }

    #[test]
    fn a_deleting_owner_adopts_and_creates_nothing() {
        let mut o = owner(3);
        o.deleting = true;
        let p = plan(&o, &[pod("orphan", json!({"app": "web"}), None)], now());
        assert_eq!(p, Plan::default());
    }

    #[test]
    fn replication_controllers_select_by_equality_map() {
        let rc = Owner::from_object(&json!({
            "kind": "ReplicationController",
            "metadata": {"name": "rc", "uid": "rc-uid"},
            "spec": {"replicas": 2, "selector": {"app": "web"},
                     "template": {"metadata": {"labels": {"app": "web"}}}},
        }))
        .expect("rc");
        let pods = vec![
            pod("a", json!({"app": "web", "x": "y"}), None),
            pod("b", json!({"app": "api"}), None),
        ];
        let p = plan(&rc, &pods, now());
        assert_eq!((p.adopt.clone(), p.create), (vec!["a".to_string()], 1));
    }
}
