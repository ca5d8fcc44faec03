//! Which nodes a DaemonSet runs on, as upstream's `NodeShouldRunDaemonPod`:
//! the template's `nodeName`, `nodeSelector` and required node affinity,
//! and the node's taints against the template's tolerations plus the ones
//! every daemon pod gets ([`add_daemon_tolerations`]). Also how a daemon
//! pod is pinned to its node ([`pin_to_node`]) and found there again
//! ([`target_node`]).

use serde_json::{Value, json};

use crate::controllers::affinity::{Labels, NodeAffinity};

/// Upstream's taint keys that daemon pods tolerate.
const NOT_READY: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";
const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";

/// What a node means for a DaemonSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fit {
    /// A daemon pod should be created here (if there is none).
    pub should_run: bool,
    /// A daemon pod already here may stay (it tolerates every NoExecute
    /// taint, e.g. of an unreachable node, even if new ones would not land).
    pub should_continue: bool,
}

impl Fit {
    const NO: Self = Self {
        should_run: false,
        should_continue: false,
    };
    const YES: Self = Self {
        should_run: true,
        should_continue: true,
    };
}

/// Upstream's `AddOrUpdateTolerationInPodSpec`: a toleration with the same
/// key, operator, value and effect is replaced (so a user's
/// `tolerationSeconds` does not shorten a daemon's stay), else appended.
fn add_or_update(spec: &mut Value, toleration: Value) {
    let same = |t: &Value| {
        ["key", "operator", "value", "effect"].iter().all(|f| {
            t.get(*f).and_then(Value::as_str).unwrap_or("") == toleration[*f].as_str().unwrap_or("")
        })
    };
    let mut list = spec["tolerations"].as_array().cloned().unwrap_or_default();
    if list.contains(&toleration) {
        return;
    }
    let mut replaced = false;
    for t in list.iter_mut().filter(|t| same(t)) {
        *t = toleration.clone();
        replaced = true;
    }
    if !replaced {
        list.push(toleration);
    }
    spec["tolerations"] = Value::Array(list);
}

/// Upstream's `AddOrUpdateDaemonPodTolerations`: daemon pods stay on nodes
/// that are not ready or unreachable (no eviction), and land on nodes under
/// pressure, cordoned, or (host network) without a pod network.
pub fn add_daemon_tolerations(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    let exists =
        |key: &str, effect: &str| json!({"key": key, "operator": "Exists", "effect": effect});
    for (key, effect) in [
        (NOT_READY, "NoExecute"),
        (UNREACHABLE, "NoExecute"),
        (DISK_PRESSURE, "NoSchedule"),
        (MEMORY_PRESSURE, "NoSchedule"),
        (PID_PRESSURE, "NoSchedule"),
        (UNSCHEDULABLE, "NoSchedule"),
    ] {
        add_or_update(spec, exists(key, effect));
    }
    if spec["hostNetwork"] == json!(true) {
        add_or_update(spec, exists(NETWORK_UNAVAILABLE, "NoSchedule"));
    }
}

/// Upstream's `ToleratesTaint`: an empty effect or key matches any, an
/// `Exists` toleration any value, an `Equal` (or unset) one the same value.
fn tolerates(toleration: &Value, taint: &Value) -> bool {
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
    let effect = text(toleration, "effect");
    if !effect.is_empty() && effect != text(taint, "effect") {
        return false;
    }
    let key = text(toleration, "key");
    if !key.is_empty() && key != text(taint, "key") {
        return false;
    }
    match toleration
        .get("operator")
        .and_then(Value::as_str)
        .unwrap_or("")
    {
        "Exists" => true,
        "" | "Equal" => text(toleration, "value") == text(taint, "value"),
        _ => false,
    }
}

/// Whether some taint with one of `effects` is tolerated by none of `spec`'s tolerations.
fn untolerated(spec: &Value, taints: &[Value], effects: &[&str]) -> bool {
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    taints
        .iter()
        .filter(|t| effects.contains(&t["effect"].as_str().unwrap_or("")))
        .any(|t| !tolerations.iter().any(|tol| tolerates(tol, t)))
}

/// How `node` fits a daemon pod of `spec` (the template's pod spec with
/// [`add_daemon_tolerations`] applied).
pub fn node_fit(spec: &Value, node: &Value) -> Fit {
    let name = node
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if spec["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty() && n != name)
    {
        return Fit::NO;
    }
    let labels: Labels = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
        .collect();
    let selector_ok = spec["nodeSelector"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let affinity_ok = NodeAffinity::of_spec(spec)
        .required
        .is_none_or(|r| r.matches(name, &labels));
    if !(selector_ok && affinity_ok) {
        return Fit::NO;
    }
    let taints = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if untolerated(spec, &taints, &["NoSchedule", "NoExecute"]) {
        return Fit {
            should_run: false,
            should_continue: !untolerated(spec, &taints, &["NoExecute"]),
        };
    }
    Fit::YES
}

/// Upstream's `ReplaceDaemonSetPodNodeNameNodeAffinity`: the pod's required
/// node affinity becomes "the node named `node`" (the controller already
/// checked the rest), so the scheduler binds it there and nowhere else.
pub fn pin_to_node(spec: &mut Value, node: &str) {
    if !spec.is_object() {
        return;
    }
    let term = json!({"matchFields": [
        {"key": "metadata.name", "operator": "In", "values": [node]}]});
    if !spec["affinity"].is_object() {
        spec["affinity"] = json!({});
    }
    if !spec["affinity"]["nodeAffinity"].is_object() {
        spec["affinity"]["nodeAffinity"] = json!({});
    }
    let affinity = &mut spec["affinity"]["nodeAffinity"];
    if !affinity["requiredDuringSchedulingIgnoredDuringExecution"].is_object() {
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = json!({});
    }
    affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] = json!([term]);
}

/// Upstream's `GetTargetNodeName`: the node a daemon pod is bound to, or,
/// not yet scheduled, the one its `matchFields` pin names.
pub fn target_node(pod: &Value) -> Option<String> {
    if let Some(n) = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    {
        return Some(n.to_string());
    }
    let terms = pod
        .pointer("/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")?
        .as_array()?;
    terms.iter().find_map(|term| {
        let e = term["matchFields"]
            .as_array()?
            .iter()
            .find(|e| e["key"] == "metadata.name" && e["operator"] == "In")?;
        match e["values"].as_array()?.as_slice() {
            [one] => one.as_str().map(String::from),
            _ => None,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, labels: Value, taints: Value) -> Value {
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"taints": taints}})
    }

    fn daemon_spec(mut spec: Value) -> Value {
        add_daemon_tolerations(&mut spec);
        spec
    }

    #[test]
    fn daemon_pods_get_upstreams_tolerations_once() {
        let mut spec = json!({"containers": [], "tolerations": [
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5},
            {"key": "dedicated", "operator": "Equal", "value": "mon", "effect": "NoSchedule"}]});
        add_daemon_tolerations(&mut spec);
        let again = {
            let mut s = spec.clone();
            add_daemon_tolerations(&mut s);
            s
        };
        assert_eq!(spec, again, "idempotent");
        let keys: Vec<(&str, &str)> = spec["tolerations"]
            .as_array()
            .expect("tolerations")
            .iter()
            .map(|t| {
                (
                    t["key"].as_str().unwrap_or(""),
                    t["effect"].as_str().unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            keys,
            [
                (UNREACHABLE, "NoExecute"),
                ("dedicated", "NoSchedule"),
                (NOT_READY, "NoExecute"),
                (DISK_PRESSURE, "NoSchedule"),
                (MEMORY_PRESSURE, "NoSchedule"),
                (PID_PRESSURE, "NoSchedule"),
                (UNSCHEDULABLE, "NoSchedule"),
            ]
        );
        // The user's limited stay on unreachable nodes became unlimited.
        assert!(spec["tolerations"][0].get("tolerationSeconds").is_none());
        let mut host = json!({"hostNetwork": true});
        add_daemon_tolerations(&mut host);
        assert!(
            host["tolerations"]
                .as_array()
                .expect("tolerations")
                .iter()
                .any(|t| t["key"] == NETWORK_UNAVAILABLE)
        );
    }

    #[test]
    fn node_selector_and_required_affinity_choose_nodes() {
        let spec = daemon_spec(json!({"nodeSelector": {"disk": "ssd"}}));
        assert_eq!(
            node_fit(&spec, &node("a", json!({"disk": "ssd"}), json!([]))),
            Fit::YES
        );
        assert_eq!(
            node_fit(&spec, &node("b", json!({"disk": "hdd"}), json!([]))),
            Fit::NO
        );
        assert_eq!(node_fit(&spec, &node("c", json!({}), json!([]))), Fit::NO);
        let affinity = daemon_spec(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["x", "y"]}]}]}}}}));
        assert!(node_fit(&affinity, &node("a", json!({"zone": "y"}), json!([]))).should_run);
        assert!(!node_fit(&affinity, &node("a", json!({"zone": "z"}), json!([]))).should_continue);
        let named = daemon_spec(json!({"nodeName": "a"}));
        assert!(node_fit(&named, &node("a", json!({}), json!([]))).should_run);
        assert_eq!(node_fit(&named, &node("b", json!({}), json!([]))), Fit::NO);
    }

    #[test]
    fn taints_keep_new_pods_out_but_tolerated_no_execute_lets_old_ones_stay() {
        let spec = daemon_spec(json!({}));
        // Unreachable: Skiff's node lifecycle sets both effects.
        let lost = node(
            "a",
            json!({}),
            json!([
            {"key": UNREACHABLE, "effect": "NoExecute"},
            {"key": UNREACHABLE, "effect": "NoSchedule"}]),
        );
        assert_eq!(
            node_fit(&spec, &lost),
            Fit {
                should_run: false,
                should_continue: true
            }
        );
        // Cordoned and under pressure: daemons still land.
        let busy = node(
            "b",
            json!({}),
            json!([
            {"key": UNSCHEDULABLE, "effect": "NoSchedule"},
            {"key": DISK_PRESSURE, "effect": "NoSchedule"},
            {"key": "soft", "effect": "PreferNoSchedule"}]),
        );
        assert_eq!(node_fit(&spec, &busy), Fit::YES);
        // A user's NoExecute taint evicts, a NoSchedule one only keeps new pods out.
        let evicting = node(
            "c",
            json!({}),
            json!([{"key": "gpu", "value": "x", "effect": "NoExecute"}]),
        );
        assert_eq!(node_fit(&spec, &evicting), Fit::NO);
        let closed = node(
            "d",
            json!({}),
            json!([{"key": "gpu", "value": "x", "effect": "NoSchedule"}]),
        );
        assert_eq!(
            node_fit(&spec, &closed),
            Fit {
                should_run: false,
                should_continue: true
            }
        );
        let tolerant = daemon_spec(json!({"tolerations": [
            {"key": "gpu", "operator": "Equal", "value": "x"}]}));
        assert_eq!(node_fit(&tolerant, &evicting), Fit::YES);
        let wrong_value = daemon_spec(json!({"tolerations": [
            {"key": "gpu", "operator": "Equal", "value": "y"}]}));
        assert_eq!(node_fit(&wrong_value, &evicting), Fit::NO);
        let everything = daemon_spec(json!({"tolerations": [{"operator": "Exists"}]}));
        assert_eq!(node_fit(&everything, &lost), Fit::YES);
    }

    #[test]
    fn pods_are_pinned_to_their_node_and_found_there() {
        let mut spec = json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}]},
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}]}}});
        pin_to_node(&mut spec, "n7");
        let affinity = &spec["affinity"]["nodeAffinity"];
        assert_eq!(
            affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"],
            json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}])
        );
        assert!(affinity["preferredDuringSchedulingIgnoredDuringExecution"].is_array());
        let pod = json!({"spec": spec});
        assert_eq!(target_node(&pod).as_deref(), Some("n7"));
        let mut bound = pod.clone();
        bound["spec"]["nodeName"] = json!("n8");
        assert_eq!(target_node(&bound).as_deref(), Some("n8"));
        let mut plain = json!({"spec": {}});
        pin_to_node(&mut plain["spec"], "n1");
        assert_eq!(target_node(&plain).as_deref(), Some("n1"));
        assert_eq!(target_node(&json!({"spec": {}})), None);
        // The scheduler reads the pin as a node-name constraint.
        let required = NodeAffinity::of_spec(&plain["spec"])
            .required
            .expect("required");
        assert!(required.matches("n1", &Labels::new()));
        assert!(!required.matches("n2", &Labels::new()));
    }
}
