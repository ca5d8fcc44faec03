//! Ranking the nodes that passed the filters. Skiff ranks
//! lexicographically rather than by upstream's weighted sum of plugin
//! scores: preferred node affinity first (the user asked for it), then
//! spreading the pod's owner (upstream's default topology spreading by
//! hostname), then the fewest pods (upstream's least-allocated, for pods
//! of similar size), then the node name so that equal nodes are chosen
//! deterministically (in a large cluster, searched only in part, the
//! first node found instead: see [`super::cache::Cache::find_node`]).

use std::cmp::Ordering;

use super::filters::{NodeInfo, PodInfo, Usage};

/// How good a node is for a pod: smaller is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Score {
    /// Negated sum of matched preferred-affinity weights.
    unpreferred: i64,
    /// Pods of the same owner already on the node.
    owner_pods: u32,
    /// Pods on the node.
    pods: i64,
}

/// Scores `node` for `pod`.
pub fn score(pod: &PodInfo, node: &NodeInfo, usage: &Usage, owner_pods: u32) -> Score {
    let preference = if pod.affinity.preferred.is_empty() {
        0
    } else {
        pod.affinity.preference(&node.name, &node.labels)
    };
    Score {
        unpreferred: -preference,
        owner_pods,
        pods: usage.pods,
    }
}

/// Orders candidates `(score, node name)`: better first.
pub fn better(a: (Score, &str), b: (Score, &str)) -> bool {
    a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)) == Ordering::Less
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, labels: serde_json::Value) -> NodeInfo {
        NodeInfo::of_node(&json!({"metadata": {"name": name, "labels": labels}}))
    }

    fn usage(pods: i64) -> Usage {
        Usage {
            pods,
            ..Usage::default()
        }
    }

    #[test]
    fn spreading_an_owner_beats_emptiness() {
        let pod = PodInfo::of_pod(&json!({"spec": {}}));
        let (a, b) = (node("a", json!({})), node("b", json!({})));
        let busy_but_new = score(&pod, &a, &usage(10), 0);
        let idle_but_owned = score(&pod, &b, &usage(1), 1);
        assert!(better((busy_but_new, "a"), (idle_but_owned, "b")));
        assert!(better(
            (score(&pod, &a, &usage(1), 0), "a"),
            (score(&pod, &b, &usage(2), 0), "b")
        ));
        // Ties go to the smaller name.
        let s = score(&pod, &a, &usage(1), 0);
        assert!(better((s, "a"), (s, "b")));
        assert!(!better((s, "b"), (s, "a")));
    }

    #[test]
    fn preferred_affinity_comes_first() {
        let pod = PodInfo::of_pod(&json!({"spec": {"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]}}}}));
        let (a, b) = (node("a", json!({"zone": "a"})), node("b", json!({})));
        assert!(better(
            (score(&pod, &a, &usage(50), 3), "a"),
            (score(&pod, &b, &usage(0), 0), "b")
        ));
    }
}
