//! The arithmetic of a rollout, as upstream's `rolling.go`, `recreate.go`
//! and `sync.go`: pure functions from the sets' counts to the next replica
//! counts, so step tables can be checked without a cluster.

use serde_json::Value;

use crate::controllers::intstr::scaled_value;

/// One ReplicaSet of a Deployment, as the rollout sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    /// Its name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i64,
    /// `status.availableReplicas`.
    pub available: i64,
    /// Its `deployment.kubernetes.io/max-replicas` annotation: the
    /// Deployment's size (with surge) when this set was last scaled.
    pub max_replicas: Option<i64>,
}

/// A replica count change: set `name` to `replicas`.
pub type Scale = (String, i64);

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

/// The Deployment's side of a scaling event.
#[derive(Debug, Clone, Copy)]
pub struct Scaling {
    /// `spec.replicas`.
    pub replicas: i64,
    /// Resolved `maxSurge` (0 for Recreate).
    pub max_surge: i64,
    /// `status.replicas` (the size a set without annotation is taken from).
    pub status_replicas: i64,
    /// RollingUpdate (Recreate has no proportional scaling).
    pub rolling: bool,
}

/// A scaling event (`spec.replicas` changed, or paused), as upstream's
/// `scale`: one active set takes the new count; a saturated new set
/// retires the olds; otherwise, in a RollingUpdate, the difference to
/// `replicas + maxSurge` is spread over the active sets in proportion to
/// their size, so a rollout caught mid-way keeps its shape. `olds` oldest
/// first.
pub fn scale_step(d: Scaling, new: Option<&Set>, olds: &[Set]) -> Vec<Scale> {
    // Oldest first, the new set last: the index is the age order.
    let all: Vec<&Set> = olds.iter().chain(new).collect();
    let active: Vec<(usize, &Set)> = all
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| s.replicas > 0)
        .collect();
    if active.len() <= 1 {
        let target = active.first().map(|(_, s)| *s).or(all.last().copied());
        return match target {
            Some(t) if t.replicas != d.replicas => vec![(t.name.clone(), d.replicas)],
            _ => Vec::new(),
        };
    }
    if let Some(n) = new
        && n.replicas == d.replicas
        && n.available >= d.replicas
    {
        return olds
            .iter()
            .filter(|s| s.replicas > 0)
            .map(|s| (s.name.clone(), 0))
            .collect();
    }
    if !d.rolling {
        return Vec::new();
    }
    let current: i64 = active.iter().map(|(_, s)| s.replicas).sum();
    let allowed = if d.replicas > 0 {
        d.replicas + d.max_surge
    } else {
        0
    };
    let to_add = allowed - current;
    if to_add == 0 {
        return Vec::new();
    }
    let mut order = active;
    // Largest first; ties go to the newer set when adding, the older when
    // removing (upstream's ReplicaSetsBySizeNewer / BySizeOlder).
    order.sort_by(|(ia, a), (ib, b)| {
        b.replicas
            .cmp(&a.replicas)
            .then(if to_add > 0 { ib.cmp(ia) } else { ia.cmp(ib) })
    });
    let mut sizes: Vec<(String, i64, i64)> = Vec::new();
    let mut added = 0;
    for (_, s) in &order {
        let share = proportion(s, d, to_add, added);
        added += share;
        sizes.push((s.name.clone(), s.replicas, s.replicas + share));
    }
    // Rounding leaves a rest; the largest set takes it.
    if let Some(first) = sizes.first_mut() {
        first.2 = (first.2 + to_add - added).max(0);
    }
    sizes
        .into_iter()
        .filter(|(_, from, to)| from != to)
        .map(|(name, _, to)| (name, to))
        .collect()
}

/// Upstream's `GetProportion`: this set's share of `to_add`, scaled from
/// the Deployment size it last saw, bounded by what is left to add.
fn proportion(s: &Set, d: Scaling, to_add: i64, added: i64) -> i64 {
    if s.replicas == 0 || to_add == added {
        return 0;
    }
    let fraction = if d.replicas == 0 {
        -s.replicas
    } else {
        let was = s.max_replicas.unwrap_or(d.status_replicas);
        if was <= 0 {
            0
        } else {
            let size = (s.replicas * (d.replicas + d.max_surge)) as f64 / was as f64;
            size.round() as i64 - s.replicas
        }
    };
    let left = to_add - added;
    if to_add > 0 {
        fraction.min(left)
    } else {
        fraction.max(left)
    }
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
            max_replicas: None,
        }
    }

    fn scaling(replicas: i64, max_surge: i64) -> Scaling {
        Scaling {
            replicas,
            max_surge,
            status_replicas: 0,
            rolling: true,
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
        assert_eq!(
            scale_step(scaling(5, 1), Some(&new), &olds),
            vec![("new".into(), 5)]
        );
        assert!(scale_step(scaling(3, 1), Some(&new), &olds).is_empty());
        // Nothing active (paused Recreate): the newest set takes it.
        let olds = [set("older", 0, 0), set("old", 0, 0)];
        assert_eq!(
            scale_step(scaling(2, 0), None, &olds),
            vec![("old".into(), 2)]
        );
    }

    #[test]
    fn scaling_mid_rollout_is_proportional() {
        // Upstream's documented example: 10 replicas, maxSurge 3, a rollout
        // at old 8 / new 5, scaled to 15: 3 more old, 2 more new.
        let mut new = set("new", 5, 0);
        new.max_replicas = Some(13);
        let mut old = set("old", 8, 8);
        old.max_replicas = Some(13);
        // The sizes the step gives the old and the new set.
        let sizes = |changes: Vec<(String, i64)>| {
            let size = |n: &str| changes.iter().find(|c| c.0 == n).map(|c| c.1);
            (size("old"), size("new"))
        };
        let changes = scale_step(scaling(15, 3), Some(&new), &[old.clone()]);
        assert_eq!(sizes(changes), (Some(11), Some(7)));
        // And back down: the largest loses the rounding rest.
        let changes = scale_step(scaling(5, 2), Some(&new), &[old]);
        assert_eq!(sizes(changes), (Some(4), Some(3)));
    }

    #[test]
    fn a_saturated_new_set_retires_the_olds_on_scaling() {
        let changes = scale_step(scaling(3, 1), Some(&set("new", 3, 3)), &[set("old", 1, 1)]);
        assert_eq!(changes, vec![("old".into(), 0)]);
    }
}
