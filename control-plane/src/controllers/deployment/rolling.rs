//! The arithmetic of a rollout, as upstream's `rolling.go`, `recreate.go`
//! and `sync.go`: pure functions from the sets' counts to the next replica
//! counts, so step tables can be checked without a cluster.

use serde_json::Value;

/// One ReplicaSet of a Deployment, as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Its name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i64,
    /// `status.availableReplicas`.
    pub available: i64,
}

/// A replica count change: set `name` to `replicas`.
pub type Scale = (String, i64);

/// An int-or-percent (`maxSurge`, `maxUnavailable`) against `total`;
/// percentages round up or down as asked. A malformed value counts as 0.
pub fn scaled_value(v: Option<&Value>, total: i64, round_up: bool) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => {
            if let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
                let x = p * total;
                if round_up {
                    (x + 99).div_euclid(100)
                } else {
                    x.div_euclid(100)
                }
            } else {
                s.parse().unwrap_or(0)
            }
        }
        _ => 0,
    }
}

/// `(maxSurge, maxUnavailable)` for `replicas`: surge rounds up,
/// unavailable down, and both 0 would never progress, so unavailable is 1.
pub fn fenceposts(surge: Option<&Value>, unavailable: Option<&Value>, replicas: i64) -> (i64, i64) {
    let s = scaled_value(surge, replicas, true).max(0);
    let u = scaled_value(unavailable, replicas, false).max(0);
    if s == 0 && u == 0 {
        (0, 1)
    } else {
        (s, u.min(replicas))
    }
}

fn total(sets: &[&Set]) -> i64 {
    sets.iter().map(|s| s.replicas).sum()
}

/// Upstream's `NewRSNewReplicas` for RollingUpdate: how big the new set may
/// be now, with every set's pods counted against `replicas + maxSurge`.
pub fn new_set_target(replicas: i64, max_surge: i64, new: &Set, olds: &[Set]) -> i64 {
    let current = new.replicas + olds.iter().map(|s| s.replicas).sum::<i64>();
    let max_total = replicas + max_surge;
    if current >= max_total {
        return new.replicas;
    }
    let up = (max_total - current).min(replicas - new.replicas).max(0);
    new.replicas + up
}

/// One RollingUpdate step (`reconcileNewReplicaSet`, then, if that did
/// nothing, `reconcileOldReplicaSets`). `olds` oldest first.
pub fn rolling_step(
    replicas: i64,
    max_surge: i64,
    max_unavailable: i64,
    new: &Set,
    olds: &[Set],
) -> Vec<Scale> {
    if new.replicas > replicas {
        return vec![(new.name.clone(), replicas)];
    }
    if new.replicas < replicas {
        let target = new_set_target(replicas, max_surge, new, olds);
        if target != new.replicas {
            return vec![(new.name.clone(), target)];
        }
    }
    reconcile_olds(replicas, max_unavailable, new, olds)
}

fn reconcile_olds(replicas: i64, max_unavailable: i64, new: &Set, olds: &[Set]) -> Vec<Scale> {
    let old_refs: Vec<&Set> = olds.iter().collect();
    if total(&old_refs) == 0 {
        return Vec::new();
    }
    let all = total(&old_refs) + new.replicas;
    let min_available = replicas - max_unavailable;
    let new_unavailable = new.replicas - new.available;
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Vec::new();
    }
    let mut olds: Vec<Set> = olds.to_vec();
    let mut changes: Vec<Scale> = Vec::new();
    // Unhealthy old pods first: removing them costs no availability, and
    // it unblocks a rollout whose old set never became ready.
    let mut cleaned = 0;
    for s in olds.iter_mut() {
        if cleaned >= max_scaled_down {
            break;
        }
        let unhealthy = s.replicas - s.available;
        if s.replicas == 0 || unhealthy <= 0 {
            continue;
        }
        let down = (max_scaled_down - cleaned).min(unhealthy);
        s.replicas -= down;
        cleaned += down;
        changes.push((s.name.clone(), s.replicas));
    }
    // Then healthy ones, keeping `min_available` available overall.
    let available: i64 = new.available
        + olds
            .iter()
            .map(|s| s.available.min(s.replicas))
            .sum::<i64>();
    if available > min_available {
        let mut budget = available - min_available;
        for s in olds.iter_mut() {
            if budget <= 0 {
                break;
            }
            if s.replicas == 0 {
                continue;
            }
            let down = s.replicas.min(budget);
            s.replicas -= down;
            budget -= down;
            changes.retain(|(n, _)| n != &s.name);
            changes.push((s.name.clone(), s.replicas));
        }
    }
    changes
}

/// One Recreate step: every old set to 0; once no old pod is left, the
/// new set to `replicas`. `None` for the new set means it is still to be
/// created (which the caller does only when this returns the go-ahead).
pub fn recreate_step(
    replicas: i64,
    new: Option<&Set>,
    olds: &[Set],
    old_pods_running: bool,
) -> RecreateStep {
    let down: Vec<Scale> = olds
        .iter()
        .filter(|s| s.replicas > 0)
        .map(|s| (s.name.clone(), 0))
        .collect();
    if !down.is_empty() {
        return RecreateStep::ScaleDown(down);
    }
    if old_pods_running {
        return RecreateStep::Wait;
    }
    match new {
        Some(n) if n.replicas == replicas => RecreateStep::Done,
        Some(n) => RecreateStep::ScaleUp(n.name.clone(), replicas),
        None => RecreateStep::Create(replicas),
    }
}

/// What a Recreate sync does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecreateStep {
    /// Old sets down to 0.
    ScaleDown(Vec<Scale>),
    /// Old pods are still terminating.
    Wait,
    /// Create the new set with this many replicas.
    Create(i64),
    /// Scale the new set up.
    ScaleUp(String, i64),
    /// Nothing to do.
    Done,
}

/// A pure scaling event (`spec.replicas` changed, or paused): upstream's
/// `scale`, simplified. One active set takes the new count; otherwise the
/// difference to `replicas + max_surge` is added to the newest set or taken
/// from the largest sets first (upstream spreads it proportionally).
pub fn scale_step(replicas: i64, max_surge: i64, new: Option<&Set>, olds: &[Set]) -> Vec<Scale> {
    let mut all: Vec<&Set> = olds.iter().collect();
    if let Some(n) = new {
        all.push(n);
    }
    let active: Vec<&&Set> = all.iter().filter(|s| s.replicas > 0).collect();
    if active.len() <= 1 {
        let target = match (active.first(), new) {
            (Some(a), _) => *a,
            (None, Some(n)) => n,
            (None, None) => match olds.last() {
                Some(o) => o,
                None => return Vec::new(),
            },
        };
        if target.replicas == replicas {
            return Vec::new();
        }
        return vec![(target.name.clone(), replicas)];
    }
    if let Some(n) = new
        && n.replicas == replicas
        && n.available >= replicas
    {
        return olds
            .iter()
            .filter(|s| s.replicas > 0)
            .map(|s| (s.name.clone(), 0))
            .collect();
    }
    let allowed = replicas + max_surge;
    let diff = allowed - total(&all);
    if diff > 0 {
        let target = new.or(olds.last());
        return target
            .map(|t| vec![(t.name.clone(), t.replicas + diff)])
            .unwrap_or_default();
    }
    let mut by_size: Vec<Set> = all.iter().map(|s| (*s).clone()).collect();
    by_size.sort_by_key(|s| std::cmp::Reverse(s.replicas));
    let mut remove = -diff;
    let mut changes = Vec::new();
    for s in by_size {
        if remove == 0 {
            break;
        }
        let down = s.replicas.min(remove);
        if down > 0 {
            remove -= down;
            changes.push((s.name.clone(), s.replicas - down));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(name: &str, replicas: i64, available: i64) -> Set {
        Set {
            name: name.into(),
            replicas,
            available,
        }
    }

    #[test]
    fn fenceposts_round_surge_up_and_unavailable_down() {
        let p = json!("25%");
        assert_eq!(fenceposts(Some(&p), Some(&p), 4), (1, 1));
        assert_eq!(fenceposts(Some(&p), Some(&p), 3), (1, 0));
        assert_eq!(fenceposts(Some(&p), Some(&p), 1), (1, 0));
        assert_eq!(fenceposts(Some(&p), Some(&p), 10), (3, 2));
        assert_eq!(fenceposts(Some(&json!(0)), Some(&json!(0)), 5), (0, 1));
        assert_eq!(
            fenceposts(Some(&json!("0%")), Some(&json!("0%")), 5),
            (0, 1)
        );
        assert_eq!(fenceposts(Some(&json!(2)), Some(&json!("50%")), 5), (2, 2));
        assert_eq!(fenceposts(None, None, 3), (0, 1));
    }

    /// Runs a rolling update of 3 replicas to the end: each round applies
    /// the controller's step, then every pod of a set becomes available.
    /// Returns `(old, new)` replica counts after each step.
    fn roll(surge: i64, unavailable: i64) -> Vec<(i64, i64)> {
        let mut old = set("old", 3, 3);
        let mut new = set("new", 0, 0);
        let mut table = Vec::new();
        for _ in 0..20 {
            let changes = rolling_step(3, surge, unavailable, &new, std::slice::from_ref(&old));
            if changes.is_empty() {
                break;
            }
            for (name, r) in changes {
                if name == "new" {
                    new.replicas = r;
                } else {
                    old.replicas = r;
                }
            }
            table.push((old.replicas, new.replicas));
            // Old pods stay available until removed; new ones come up.
            old.available = old.available.min(old.replicas);
            new.available = new.replicas;
        }
        table
    }

    #[test]
    fn surge_one_unavailable_zero_adds_before_it_removes() {
        assert_eq!(
            roll(1, 0),
            vec![(3, 1), (2, 1), (2, 2), (1, 2), (1, 3), (0, 3)]
        );
    }

    #[test]
    fn surge_zero_unavailable_one_removes_before_it_adds() {
        assert_eq!(
            roll(0, 1),
            vec![(2, 0), (2, 1), (1, 1), (1, 2), (0, 2), (0, 3)]
        );
    }

    #[test]
    fn the_new_set_waits_for_availability_before_olds_go() {
        // Surge 1, unavailable 0: the new pod is not available yet.
        let new = set("new", 1, 0);
        let olds = [set("old", 3, 3)];
        assert!(rolling_step(3, 1, 0, &new, &olds).is_empty());
    }

    #[test]
    fn unhealthy_old_pods_are_cleaned_up_first() {
        // Two old sets; the older one never became available.
        let new = set("new", 1, 1);
        let olds = [set("broken", 2, 0), set("good", 2, 2)];
        let changes = rolling_step(3, 1, 1, &new, &olds);
        assert_eq!(changes.first(), Some(&("broken".to_string(), 0)));
    }

    #[test]
    fn recreate_removes_every_old_pod_before_creating() {
        let olds = [set("old", 3, 3)];
        assert_eq!(
            recreate_step(3, None, &olds, true),
            RecreateStep::ScaleDown(vec![("old".into(), 0)])
        );
        let olds = [set("old", 0, 0)];
        assert_eq!(recreate_step(3, None, &olds, true), RecreateStep::Wait);
        assert_eq!(
            recreate_step(3, None, &olds, false),
            RecreateStep::Create(3)
        );
        let new = set("new", 0, 0);
        assert_eq!(
            recreate_step(3, Some(&new), &olds, false),
            RecreateStep::ScaleUp("new".into(), 3)
        );
        let new = set("new", 3, 3);
        assert_eq!(
            recreate_step(3, Some(&new), &olds, false),
            RecreateStep::Done
        );
    }

    #[test]
    fn scaling_goes_to_the_only_active_set() {
        let new = set("new", 3, 3);
        let olds = [set("old", 0, 0)];
        assert_eq!(scale_step(5, 1, Some(&new), &olds), vec![("new".into(), 5)]);
        assert!(scale_step(3, 1, Some(&new), &olds).is_empty());
    }

    #[test]
    fn scaling_mid_rollout_adds_to_the_new_set_and_removes_from_the_largest() {
        let new = set("new", 1, 0);
        let olds = [set("old", 3, 3)];
        assert_eq!(scale_step(5, 2, Some(&new), &olds), vec![("new".into(), 4)]);
        assert_eq!(scale_step(2, 1, Some(&new), &olds), vec![("old".into(), 2)]);
    }
}
