//! What a PodDisruptionBudget's status should be, as upstream's disruption
//! controller computes it: the pods its selector matches, how many of them
//! are healthy (ready, not being deleted, not just evicted), how many must
//! stay healthy, and so how many may be disrupted now. Pure: the actor
//! reads the objects, this decides.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Map, Value, json};

/// How long an eviction's entry in `disruptedPods` keeps its pod out of
/// the healthy count (upstream's `DeletionTimeout`).
pub const DELETION_TIMEOUT_SECONDS: i64 = 120;

/// The condition type the controller and the eviction handler keep.
pub const CONDITION: &str = "DisruptionAllowed";

/// Whether `pdb`'s selector matches `pod`: in `policy/v1` an empty
/// selector matches every pod of the namespace, a missing one none.
pub fn selects(pdb: &Value, pod: &Value) -> bool {
    let Some(selector) = pdb.pointer("/spec/selector").filter(|s| !s.is_null()) else {
        return false;
    };
    let Ok(selector) = serde_json::from_value::<LabelSelector>(selector.clone()) else {
        return false;
    };
    let labels: BTreeMap<String, String> = pod
        .pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default();
    skiff_api_rules::workloads::selector_matches(&selector, &labels)
}

/// Upstream's `IsPodReady`: the Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Whether the pod has a `deletionTimestamp`.
pub fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

fn time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn int(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_i64).unwrap_or(0)
}

/// The expected number of pods from the pods' controllers' scale: their
/// sum, and the names of matched pods without a controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedScale {
    /// Sum of the controllers' `spec.replicas`.
    pub expected: i64,
    /// Pods without a controller (counted in no scale).
    pub unmanaged: Vec<String>,
}

/// Upstream's `GetScaledValueFromIntOrPercent` rounding up: an int as is,
/// a percent of `total`.
fn scaled(value: &Value, total: i64) -> Result<i64, String> {
    match value {
        Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| format!("invalid value for IntOrString: {n}")),
        Value::String(s) => {
            let percent: i64 = s
                .strip_suffix('%')
                .and_then(|d| d.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            Ok((percent * total + 99) / 100)
        }
        other => Err(format!("invalid type: neither int nor percentage: {other}")),
    }
}

/// Upstream's `getExpectedPodCount`: `(expectedPods, desiredHealthy)`.
/// Only an integer `minAvailable` needs no controller: then the matched
/// pods are what is expected.
pub fn expected_and_desired(
    spec: &Value,
    matched: usize,
    scale: &Result<ExpectedScale, String>,
) -> Result<(i64, i64), String> {
    let scale_expected = || scale.as_ref().map(|s| s.expected).map_err(Clone::clone);
    if let Some(max) = spec.get("maxUnavailable").filter(|v| !v.is_null()) {
        let expected = scale_expected()?;
        let max = scaled(max, expected)?;
        return Ok((expected, (expected - max).max(0)));
    }
    match spec.get("minAvailable") {
        Some(Value::Number(n)) => Ok((
            i64::try_from(matched).unwrap_or(i64::MAX),
            n.as_i64().unwrap_or(0),
        )),
        Some(min @ Value::String(_)) => {
            let expected = scale_expected()?;
            Ok((expected, scaled(min, expected)?))
        }
        _ => Ok((0, 0)),
    }
}

/// Upstream's `SetStatusCondition`: the transition time moves only when
/// the status flips.
pub fn set_condition(
    status: &mut Value,
    allowed: bool,
    reason: &str,
    message: &str,
    now: DateTime<Utc>,
) {
    let observed = status.get("observedGeneration").cloned();
    let flag = if allowed { "True" } else { "False" };
    let stamp = now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if !status.get("conditions").is_some_and(Value::is_array) {
        status["conditions"] = json!([]);
    }
    let Some(conditions) = status["conditions"].as_array_mut() else {
        return;
    };
    let existing = conditions.iter_mut().find(|c| c["type"] == CONDITION);
    let condition = match existing {
        Some(c) => c,
        None => {
            conditions.push(json!({"type": CONDITION, "lastTransitionTime": stamp}));
            let last = conditions.len() - 1;
            &mut conditions[last]
        }
    };
    if condition["status"] != flag {
        condition["lastTransitionTime"] = json!(stamp);
    }
    condition["status"] = json!(flag);
    condition["reason"] = json!(reason);
    condition["message"] = json!(message);
    match observed {
        Some(g) if g != json!(0) => condition["observedGeneration"] = g,
        _ => {
            if let Some(m) = condition.as_object_mut() {
                m.remove("observedGeneration");
            }
        }
    }
}

/// Upstream's `UpdateDisruptionAllowedCondition`, from the status's own count.
pub fn update_allowed_condition(status: &mut Value, now: DateTime<Utc>) {
    if int(status.get("disruptionsAllowed")) > 0 {
        set_condition(status, true, "SufficientPods", "", now);
    } else {
        set_condition(status, false, "InsufficientPods", "", now);
    }
}

/// The status `pdb` should have with these matched `pods` (`scale`: what
/// their controllers expect), as upstream's `trySync` and
/// `updatePdbStatus` compute it. `disruptedPods` entries of pods still
/// there and younger than the deletion timeout are kept.
pub fn status(
    pdb: &Value,
    pods: &[&Value],
    scale: &Result<ExpectedScale, String>,
    now: DateTime<Utc>,
) -> Result<Value, String> {
    let (expected, desired) = expected_and_desired(&pdb["spec"], pods.len(), scale)?;
    let recorded = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object);
    let mut disrupted = Map::new();
    for pod in pods.iter().filter(|p| !deleting(p)) {
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(at) = recorded.and_then(|r| r.get(name)) else {
            continue;
        };
        let fresh =
            time(at).is_some_and(|t| t + chrono::Duration::seconds(DELETION_TIMEOUT_SECONDS) > now);
        if fresh {
            disrupted.insert(name.to_string(), at.clone());
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| !deleting(p))
        .filter(|p| {
            let name = p
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            !disrupted.contains_key(name)
        })
        .filter(|p| pod_ready(p))
        .count();
    let healthy = i64::try_from(healthy).unwrap_or(i64::MAX);
    let allowed = if expected <= 0 {
        0
    } else {
        (healthy - desired).max(0)
    };
    let mut next = json!({
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
    });
    if !disrupted.is_empty() {
        next["disruptedPods"] = Value::Object(disrupted);
    }
    let generation = int(pdb.pointer("/metadata/generation"));
    if generation != 0 {
        next["observedGeneration"] = json!(generation);
    }
    if let Some(conditions) = pdb.pointer("/status/conditions").filter(|c| c.is_array()) {
        next["conditions"] = conditions.clone();
    }
    update_allowed_condition(&mut next, now);
    Ok(next)
}

/// Upstream's `failSafe`: no disruption allowed while the status cannot
/// be computed, and why.
pub fn fail_safe(pdb: &Value, message: &str, now: DateTime<Utc>) -> Value {
    let mut next = pdb
        .get("status")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    next["disruptionsAllowed"] = json!(0);
    set_condition(&mut next, false, "SyncFailed", message, now);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ready: bool) -> Value {
        json!({"metadata": {"name": name, "labels": {"app": "web"}},
               "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}})
    }

    fn pdb(spec: Value) -> Value {
        json!({"metadata": {"name": "b", "generation": 3}, "spec": spec})
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-01-01T00:10:00Z")
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn empty_selector_matches_all_and_missing_matches_none() {
        let p = pod("a", true);
        assert!(selects(&pdb(json!({"selector": {}})), &p));
        assert!(!selects(&pdb(json!({})), &p));
        assert!(selects(
            &pdb(json!({"selector": {"matchLabels": {"app": "web"}}})),
            &p
        ));
        assert!(!selects(
            &pdb(json!({"selector": {"matchLabels": {"app": "db"}}})),
            &p
        ));
    }

    #[test]
    fn integer_min_available_counts_matched_pods() {
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let refs: Vec<&Value> = pods.iter().collect();
        let s = status(
            &pdb(json!({"minAvailable": 1})),
            &refs,
            &Err("no controllers".into()),
            now(),
        )
        .expect("status");
        assert_eq!(s["expectedPods"], 3);
        assert_eq!(s["currentHealthy"], 2);
        assert_eq!(s["desiredHealthy"], 1);
        assert_eq!(s["disruptionsAllowed"], 1);
        assert_eq!(s["observedGeneration"], 3);
        assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
        assert_eq!(s["conditions"][0]["status"], "True");
    }

    #[test]
    fn max_unavailable_and_percents_use_the_controllers_scale() {
        let pods = [pod("a", true), pod("b", true), pod("c", true)];
        let refs: Vec<&Value> = pods.iter().collect();
        let scale = Ok(ExpectedScale {
            expected: 4,
            unmanaged: vec![],
        });
        let s =
            status(&pdb(json!({"maxUnavailable": "50%"})), &refs, &scale, now()).expect("status");
        assert_eq!(
            (s["expectedPods"].clone(), s["desiredHealthy"].clone()),
            (json!(4), json!(2))
        );
        assert_eq!(s["disruptionsAllowed"], 1);
        // Percents round up, as upstream.
        let s = status(&pdb(json!({"minAvailable": "60%"})), &refs, &scale, now()).expect("status");
        assert_eq!(s["desiredHealthy"], 3);
        assert_eq!(s["disruptionsAllowed"], 0);
        assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
        assert!(
            status(
                &pdb(json!({"maxUnavailable": 1})),
                &refs,
                &Err("found no controllers for pod \"a\"".into()),
                now()
            )
            .is_err()
        );
    }

    #[test]
    fn recently_evicted_pods_are_not_healthy_and_old_entries_expire() {
        let pods = [pod("a", true), pod("b", true), pod("c", true)];
        let refs: Vec<&Value> = pods.iter().collect();
        let mut budget = pdb(json!({"minAvailable": 1}));
        budget["status"] = json!({"disruptedPods": {"a": "2026-01-01T00:09:30Z", "b": "2026-01-01T00:01:00Z", "gone": "2026-01-01T00:09:59Z"}});
        let s = status(&budget, &refs, &Err(String::new()), now()).expect("status");
        assert_eq!(s["disruptedPods"], json!({"a": "2026-01-01T00:09:30Z"}));
        assert_eq!(s["currentHealthy"], 2);
        assert_eq!(s["disruptionsAllowed"], 1);
    }

    #[test]
    fn nothing_expected_allows_nothing() {
        let s = status(
            &pdb(json!({"maxUnavailable": 1})),
            &[],
            &Ok(ExpectedScale {
                expected: 0,
                unmanaged: vec![],
            }),
            now(),
        )
        .expect("status");
        assert_eq!(s["disruptionsAllowed"], 0);
    }

    #[test]
    fn condition_transition_time_moves_only_on_flips() {
        let mut s = json!({"disruptionsAllowed": 1, "observedGeneration": 2});
        update_allowed_condition(&mut s, now());
        let first = s["conditions"][0]["lastTransitionTime"].clone();
        let later = now() + chrono::Duration::seconds(60);
        update_allowed_condition(&mut s, later);
        assert_eq!(s["conditions"][0]["lastTransitionTime"], first);
        s["disruptionsAllowed"] = json!(0);
        update_allowed_condition(&mut s, later);
        assert_ne!(s["conditions"][0]["lastTransitionTime"], first);
        assert_eq!(s["conditions"][0]["status"], "False");
        assert_eq!(s["conditions"][0]["observedGeneration"], 2);
        let failed = fail_safe(&json!({"status": s}), "boom", later);
        assert_eq!(
            (
                failed["conditions"][0]["reason"].clone(),
                failed["conditions"][0]["message"].clone()
            ),
            (json!("SyncFailed"), json!("boom"))
        );
    }
}
