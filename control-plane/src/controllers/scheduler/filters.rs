//! The filters: whether a node can take a pod, and if not, why, in
//! upstream's words. Pods and nodes are compiled once ([`PodInfo`],
//! [`NodeInfo`]) so that a filter pass over many nodes reads no JSON.

use std::collections::HashMap;
use std::fmt;

use serde_json::Value;

use super::resources::{Allocatable, Resources, insufficient, pod_requests};
use crate::controllers::affinity::{Labels, NodeAffinity};

/// A taint's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// `NoSchedule`
    NoSchedule,
    /// `PreferNoSchedule` (a preference only: never filters).
    PreferNoSchedule,
    /// `NoExecute`
    NoExecute,
}

impl Effect {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "NoSchedule" => Some(Self::NoSchedule),
            "PreferNoSchedule" => Some(Self::PreferNoSchedule),
            "NoExecute" => Some(Self::NoExecute),
            _ => None,
        }
    }
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    key: String,
    value: String,
    effect: Option<Effect>,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Toleration {
    key: String,
    exists: bool,
    value: String,
    effect: Option<Effect>,
}

impl Toleration {
    /// Upstream's `ToleratesTaint`: an empty key with `Exists` matches
    /// every key, an empty effect every effect.
    fn tolerates(&self, taint: &Taint) -> bool {
        (self.effect.is_none() || self.effect == taint.effect)
            && (self.key.is_empty() || self.key == taint.key)
            && (self.exists || self.value == taint.value)
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

/// Key of the taint that cordoned (unschedulable) nodes carry upstream.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// What the filters need of a pod.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    node_name: Option<String>,
    node_selector: Vec<(String, String)>,
    /// Node affinity (required terms filter, preferred terms score).
    pub affinity: NodeAffinity,
    tolerations: Vec<Toleration>,
    /// The effective resource request.
    pub requests: Resources,
    /// `preemptionPolicy: Never`.
    pub never_preempts: bool,
}

impl PodInfo {
    /// Compiles a pod object.
    pub fn of_pod(pod: &Value) -> Self {
        let spec = &pod["spec"];
        Self {
            node_name: spec["nodeName"]
                .as_str()
                .filter(|n| !n.is_empty())
                .map(String::from),
            node_selector: spec["nodeSelector"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect(),
            affinity: NodeAffinity::of_spec(spec),
            tolerations: spec["tolerations"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| Toleration {
                    key: text(&t["key"]),
                    exists: t["operator"] == "Exists",
                    value: text(&t["value"]),
                    effect: t["effect"].as_str().and_then(Effect::parse),
                })
                .collect(),
            requests: pod_requests(spec),
            never_preempts: spec["preemptionPolicy"] == "Never",
        }
    }

    fn tolerates(&self, taint: &Taint) -> bool {
        self.tolerations.iter().any(|t| t.tolerates(taint))
    }
}

/// What the filters need of a node object.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// `metadata.name`.
    pub name: String,
    ready: bool,
    unschedulable: bool,
    /// `metadata.labels`.
    pub labels: Labels,
    taints: Vec<Taint>,
    /// What pods may use.
    pub allocatable: Allocatable,
}

impl NodeInfo {
    /// Compiles a node object.
    pub fn of_node(node: &Value) -> Self {
        Self {
            name: text(&node["metadata"]["name"]),
            ready: node["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True"),
            unschedulable: node["spec"]["unschedulable"] == true,
            labels: node["metadata"]["labels"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect(),
            taints: node["spec"]["taints"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| Taint {
                    key: text(&t["key"]),
                    value: text(&t["value"]),
                    effect: t["effect"].as_str().and_then(Effect::parse),
                })
                .collect(),
            allocatable: Allocatable::of_node(node),
        }
    }
}

/// What is already placed on a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Sum of the requests of its (non-terminal) pods.
    pub requested: Resources,
    /// How many (non-terminal) pods it has.
    pub pods: i64,
}

/// Why a node cannot take a pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// Skiff's own check before upstream's plugins: the Ready condition.
    NotReady,
    /// NodeUnschedulable.
    Unschedulable,
    /// NodeName.
    NodeName,
    /// TaintToleration: the first untolerated taint.
    Taint {
        /// Its key.
        key: String,
        /// Its value.
        value: String,
    },
    /// NodeAffinity (nodeSelector or required node affinity).
    Affinity,
    /// NodeResourcesFit: `Too many pods`, `Insufficient cpu`, ...
    Fit(&'static str),
    /// VolumeBinding: a bound volume's node affinity excludes the node.
    VolumeNodeAffinity,
}

impl Reason {
    /// Whether evicting pods could make room (upstream: the plugin returned
    /// `Unschedulable`, not `UnschedulableAndUnresolvable`).
    pub fn preemption_might_help(&self) -> bool {
        matches!(self, Self::Fit(_))
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotReady => f.write_str("node(s) were not ready"),
            Self::Unschedulable => f.write_str("node(s) were unschedulable"),
            Self::NodeName => f.write_str("node(s) didn't match the requested node name"),
            Self::Taint { key, value } => {
                write!(f, "node(s) had untolerated taint {{{key}: {value}}}")
            }
            Self::Affinity => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Self::Fit(r) => f.write_str(r),
            Self::VolumeNodeAffinity => f.write_str("node(s) had volume node affinity conflict"),
        }
    }
}

/// Runs the filters in upstream's plugin order (NodeUnschedulable,
/// NodeName, TaintToleration, NodeAffinity, NodeResourcesFit), stopping
/// at the first plugin that fails, as upstream does. Only the fit plugin
/// reports several reasons at once.
pub fn filter(pod: &PodInfo, node: &NodeInfo, usage: &Usage) -> Result<(), Vec<Reason>> {
    if !node.ready {
        return Err(vec![Reason::NotReady]);
    }
    if node.unschedulable
        && !pod.tolerates(&Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            value: String::new(),
            effect: Some(Effect::NoSchedule),
        })
    {
        return Err(vec![Reason::Unschedulable]);
    }
    if pod.node_name.as_ref().is_some_and(|n| *n != node.name) {
        return Err(vec![Reason::NodeName]);
    }
    if let Some(taint) = node.taints.iter().find(|t| {
        matches!(t.effect, Some(Effect::NoSchedule | Effect::NoExecute)) && !pod.tolerates(t)
    }) {
        return Err(vec![Reason::Taint {
            key: taint.key.clone(),
            value: taint.value.clone(),
        }]);
    }
    let selector_ok = pod
        .node_selector
        .iter()
        .all(|(k, v)| node.labels.get(k) == Some(v));
    let affinity_ok = pod
        .affinity
        .required
        .as_ref()
        .is_none_or(|r| r.matches(&node.name, &node.labels));
    if !(selector_ok && affinity_ok) {
        return Err(vec![Reason::Affinity]);
    }
    let fit = insufficient(pod.requests, &node.allocatable, usage.requested, usage.pods);
    if !fit.is_empty() {
        return Err(fit.into_iter().map(Reason::Fit).collect());
    }
    Ok(())
}

/// Why a pod fit no node: each reason with the number of nodes that gave
/// it, and how many nodes failed only for lack of room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnosis {
    reasons: HashMap<Reason, usize>,
    preemption_might_help: usize,
}

impl Diagnosis {
    /// Records the reasons one node gave.
    pub fn record(&mut self, reasons: Vec<Reason>) {
        if reasons.iter().all(Reason::preemption_might_help) {
            self.preemption_might_help += 1;
        }
        for r in reasons {
            *self.reasons.entry(r).or_default() += 1;
        }
    }
}

/// `1 Insufficient cpu, 10 node(s) were not ready`: upstream formats each
/// entry and sorts them as strings (so "10 ..." sorts before "2 ...").
fn histogram(entries: impl Iterator<Item = (String, usize)>) -> String {
    let mut parts: Vec<String> = entries
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    parts.sort();
    parts.join(", ")
}

/// The FailedScheduling message: upstream's FitError text, then what its
/// DefaultPreemption post-filter adds. Skiff neither preempts nor has pod
/// priorities, which upstream treats alike: nodes that lack room hold no
/// lower-priority victim. The post-filter's own text ends with a period
/// before the separator adds one: upstream's events really end in "..".
pub fn failure_message(total_nodes: usize, pod: &PodInfo, diagnosis: &Diagnosis) -> String {
    if total_nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    let filters = histogram(diagnosis.reasons.iter().map(|(r, n)| (r.to_string(), *n)));
    with_preemption(total_nodes, pod, diagnosis, &filters)
}

/// The FailedScheduling message when a pre-filter turned the pod away
/// (every node unresolvable): its message instead of the filters'.
pub fn prefilter_failure_message(total_nodes: usize, pod: &PodInfo, message: &str) -> String {
    if total_nodes == 0 {
        return "no nodes available to schedule pods".into();
    }
    with_preemption(total_nodes, pod, &Diagnosis::default(), message)
}

fn with_preemption(
    total_nodes: usize,
    pod: &PodInfo,
    diagnosis: &Diagnosis,
    filters: &str,
) -> String {
    let preemption = if pod.never_preempts {
        "not eligible due to preemptionPolicy=Never.".to_string()
    } else {
        let helpful = diagnosis.preemption_might_help.min(total_nodes);
        let entries = [
            (
                "No preemption victims found for incoming pod".to_string(),
                helpful,
            ),
            (
                "Preemption is not helpful for scheduling".to_string(),
                total_nodes - helpful,
            ),
        ];
        format!(
            "0/{total_nodes} nodes are available: {}.",
            histogram(entries.into_iter())
        )
    };
    format!("0/{total_nodes} nodes are available: {filters}. preemption: {preemption}.")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(name: &str, ready: bool, labels: Value) -> NodeInfo {
        NodeInfo::of_node(&json!({
        "metadata": {"name": name, "labels": labels}, "spec": {},
        "status": {
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "Unknown" }}],
            "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        }}))
    }

    fn reasons(pod: &Value, node: &NodeInfo, usage: Usage) -> Vec<String> {
        match filter(&PodInfo::of_pod(pod), node, &usage) {
            Ok(()) => Vec::new(),
            Err(rs) => rs.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn filters_explain_themselves_like_upstream() {
        let pod = json!({"spec": {"nodeSelector": {"disk": "ssd"}}});
        let idle = Usage::default();
        assert!(reasons(&pod, &node("a", true, json!({"disk": "ssd"})), idle).is_empty());
        assert_eq!(
            reasons(&pod, &node("b", true, json!({})), idle),
            ["node(s) didn't match Pod's node affinity/selector"]
        );
        assert_eq!(
            reasons(&pod, &node("c", false, json!({"disk": "ssd"})), idle),
            ["node(s) were not ready"]
        );
        let full = Usage {
            requested: Resources::default(),
            pods: 110,
        };
        assert_eq!(
            reasons(&pod, &node("a", true, json!({"disk": "ssd"})), full),
            ["Too many pods"]
        );
        let named = json!({"spec": {"nodeName": "x"}});
        assert_eq!(
            reasons(&named, &node("a", true, json!({})), idle),
            ["node(s) didn't match the requested node name"]
        );
    }

    #[test]
    fn taints_need_tolerations() {
        let mut tainted = node("d", true, json!({}));
        tainted.taints = vec![Taint {
            key: "node.kubernetes.io/unreachable".into(),
            value: String::new(),
            effect: Some(Effect::NoExecute),
        }];
        let pod = json!({"spec": {}});
        assert_eq!(
            reasons(&pod, &tainted, Usage::default()),
            ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"]
        );
        for toleration in [
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}),
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists"}),
            json!({"operator": "Exists"}),
            json!({"key": "node.kubernetes.io/unreachable", "value": "", "effect": "NoExecute"}),
        ] {
            let pod = json!({"spec": {"tolerations": [toleration]}});
            assert!(
                reasons(&pod, &tainted, Usage::default()).is_empty(),
                "{pod}"
            );
        }
        for toleration in [
            json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoSchedule"}),
            json!({"key": "other", "operator": "Exists"}),
            json!({"key": "node.kubernetes.io/unreachable", "value": "x"}),
        ] {
            let pod = json!({"spec": {"tolerations": [toleration]}});
            assert_eq!(reasons(&pod, &tainted, Usage::default()).len(), 1, "{pod}");
        }
        // PreferNoSchedule only weighs on scores.
        tainted.taints[0].effect = Some(Effect::PreferNoSchedule);
        assert!(reasons(&json!({"spec": {}}), &tainted, Usage::default()).is_empty());
    }

    #[test]
    fn cordoned_nodes_take_only_pods_tolerating_it() {
        let mut cordoned = node("c", true, json!({}));
        cordoned.unschedulable = true;
        assert_eq!(
            reasons(&json!({"spec": {}}), &cordoned, Usage::default()),
            ["node(s) were unschedulable"]
        );
        let tolerant = json!({"spec": {"tolerations": [
            {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"}]}});
        assert!(reasons(&tolerant, &cordoned, Usage::default()).is_empty());
    }

    #[test]
    fn required_affinity_and_node_selector_both_apply() {
        let pod = json!({"spec": {
            "nodeSelector": {"disk": "ssd"},
            "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}}}});
        let n = |labels| reasons(&pod, &node("n", true, labels), Usage::default());
        assert!(n(json!({"disk": "ssd", "zone": "a"})).is_empty());
        let affinity = ["node(s) didn't match Pod's node affinity/selector"];
        assert_eq!(n(json!({"disk": "ssd", "zone": "b"})), affinity);
        assert_eq!(n(json!({"zone": "a"})), affinity);
    }

    #[test]
    fn requests_must_fit_what_is_left() {
        let pod = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}}]}});
        let n = node("n", true, json!({}));
        let used = |milli_cpu, memory| Usage {
            requested: Resources { milli_cpu, memory },
            pods: 3,
        };
        assert!(reasons(&pod, &n, used(1500, 3 << 30)).is_empty());
        assert_eq!(reasons(&pod, &n, used(1501, 0)), ["Insufficient cpu"]);
        assert_eq!(
            reasons(&pod, &n, used(2000, 4 << 30)),
            ["Insufficient cpu", "Insufficient memory"]
        );
    }

    #[test]
    fn messages_match_upstream() {
        let pod = PodInfo::of_pod(&json!({"spec": {}}));
        let mut d = Diagnosis::default();
        d.record(vec![Reason::Fit("Insufficient cpu")]);
        d.record(vec![Reason::Affinity]);
        d.record(vec![Reason::Affinity]);
        assert_eq!(
            failure_message(3, &pod, &d),
            "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling.."
        );
        let mut d = Diagnosis::default();
        d.record(vec![Reason::NotReady]);
        d.record(vec![Reason::Affinity]);
        d.record(vec![Reason::Affinity]);
        assert_eq!(
            failure_message(3, &pod, &d),
            "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.."
        );
        // Entries sort as strings, and a node may give several fit reasons.
        let mut d = Diagnosis::default();
        for _ in 0..10 {
            d.record(vec![
                Reason::Fit("Insufficient cpu"),
                Reason::Fit("Insufficient memory"),
            ]);
        }
        d.record(vec![Reason::Unschedulable]);
        d.record(vec![Reason::Unschedulable]);
        assert_eq!(
            failure_message(12, &pod, &d),
            "0/12 nodes are available: 10 Insufficient cpu, 10 Insufficient memory, 2 node(s) were unschedulable. \
             preemption: 0/12 nodes are available: 10 No preemption victims found for incoming pod, \
             2 Preemption is not helpful for scheduling.."
        );
        let never = PodInfo::of_pod(&json!({"spec": {"preemptionPolicy": "Never"}}));
        let mut d = Diagnosis::default();
        d.record(vec![Reason::Fit("Insufficient cpu")]);
        assert_eq!(
            failure_message(1, &never, &d),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.."
        );
        assert_eq!(
            failure_message(0, &pod, &Diagnosis::default()),
            "no nodes available to schedule pods"
        );
        assert_eq!(
            prefilter_failure_message(2, &pod, "persistentvolumeclaim \"data-web-0\" not found"),
            "0/2 nodes are available: persistentvolumeclaim \"data-web-0\" not found. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
        );
    }
}
