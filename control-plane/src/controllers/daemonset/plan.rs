//! What one DaemonSet sync should do, from the DaemonSet, the nodes and the
//! pods of its namespace alone, as upstream's daemon controller: claim pods
//! ([`claim`]), keep one pod per eligible node ([`manage`]), replace
//! out-of-date pods within the rolling budget ([`rolling_update`]) and
//! count what exists ([`status`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use skiff_api_rules::workloads::selector_matches;

use super::eligibility::{Fit, add_daemon_tolerations, node_fit, target_node};
use crate::controllers::intstr::scaled_value;
use crate::controllers::pod::ready_transition;
use crate::meta::{self, deleting};
use crate::meta::{controller_uid, labels as pod_labels};
use crate::registry::kinds::daemonset::TEMPLATE_GENERATION;

/// Upstream's `burstReplicas` for DaemonSets: at most this many creates
/// (and as many deletes) per sync.
pub const BURST_REPLICAS: usize = 250;

/// The label with the hash of the template (the ControllerRevision) a pod
/// was made from.
pub const HASH_LABEL: &str = "controller-revision-hash";

/// The label with the DaemonSet's template generation a pod was made from.
pub const GENERATION_LABEL: &str = "pod-template-generation";

/// `spec.updateStrategy`.
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// Pods are replaced only when someone deletes them.
    OnDelete,
    /// Pods are replaced by the controller within a budget.
    RollingUpdate {
        /// `maxSurge` (int or percent of the desired pods).
        max_surge: Option<Value>,
        /// `maxUnavailable` (int or percent of the desired pods).
        max_unavailable: Option<Value>,
    },
}

/// The DaemonSet as far as a sync needs it.
#[derive(Debug, Clone)]
pub struct DaemonSet {
    /// Its uid (what pods' controller references point to).
    pub uid: String,
    /// Its selector (validated non-empty).
    pub selector: LabelSelector,
    /// The template's pod spec with the daemon tolerations: what node
    /// eligibility is judged by.
    pub pod_spec: Value,
    /// The `deprecated.daemonset.template.generation` annotation.
    pub template_generation: Option<i64>,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i64,
    /// `spec.updateStrategy`.
    pub strategy: Strategy,
}

impl DaemonSet {
    /// Reads a DaemonSet object; `None` if its selector is unusable.
    pub fn from_object(obj: &Value) -> Option<Self> {
        let spec = obj.get("spec")?;
        let selector: LabelSelector = serde_json::from_value(spec.get("selector")?.clone()).ok()?;
        let empty = selector
            .match_labels
            .as_ref()
            .is_none_or(BTreeMap::is_empty)
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(Vec::is_empty);
        if empty {
            return None;
        }
        let mut pod_spec = spec
            .pointer("/template/spec")
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}));
        add_daemon_tolerations(&mut pod_spec);
        let strategy = match spec.pointer("/updateStrategy/type").and_then(Value::as_str) {
            Some("OnDelete") => Strategy::OnDelete,
            _ => Strategy::RollingUpdate {
                max_surge: spec
                    .pointer("/updateStrategy/rollingUpdate/maxSurge")
                    .cloned(),
                max_unavailable: spec
                    .pointer("/updateStrategy/rollingUpdate/maxUnavailable")
                    .cloned(),
            },
        };
        Some(Self {
            uid: obj.pointer("/metadata/uid")?.as_str()?.to_string(),
            selector,
            pod_spec,
            template_generation: obj
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(TEMPLATE_GENERATION))
                .and_then(Value::as_str)
                .and_then(|g| g.parse().ok()),
            min_ready_seconds: spec
                .get("minReadySeconds")
                .and_then(Value::as_i64)
                .unwrap_or(0),
            strategy,
        })
    }

    /// Upstream's `IsPodUpdated`: made from the current revision (hash) or
    /// the current template generation.
    pub fn is_updated(&self, pod: &Value, hash: &str) -> bool {
        let labels = pod_labels(pod);
        let hash_matches =
            !hash.is_empty() && labels.get(HASH_LABEL).map(String::as_str) == Some(hash);
        let generation_matches = self
            .template_generation
            .is_some_and(|g| labels.get(GENERATION_LABEL) == Some(&g.to_string()));
        hash_matches || generation_matches
    }

    /// How every node fits this DaemonSet, by node name.
    pub fn fits(&self, nodes: &[Value]) -> BTreeMap<String, Fit> {
        nodes
            .iter()
            .filter_map(|n| {
                let name = n.pointer("/metadata/name")?.as_str()?.to_string();
                Some((name, node_fit(&self.pod_spec, n)))
            })
            .collect()
    }
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn terminal(pod: &Value) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn bound(pod: &Value) -> bool {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty())
}

fn is_ready(pod: &Value) -> bool {
    ready_transition(pod).is_some()
}

/// Upstream's `IsPodAvailable`: Ready for at least `minReadySeconds`.
pub fn is_available(pod: &Value, min_ready_seconds: i64, now: DateTime<Utc>) -> bool {
    match ready_transition(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(since) => {
            since.is_some_and(|t| t + chrono::Duration::seconds(min_ready_seconds) < now)
        }
    }
}

/// Upstream's `podByCreationTimestampAndPhase`: scheduled first, then
/// oldest, then by name.
fn oldest_first(a: &&Value, b: &&Value) -> Ordering {
    let created = |p: &Value| {
        p.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    bound(b)
        .cmp(&bound(a))
        .then_with(|| created(a).cmp(&created(b)))
        .then_with(|| meta::name(a).to_string().cmp(&meta::name(b).to_string()))
}

/// Pods to take over and to let go.
#[derive(Debug, Default, PartialEq)]
pub struct Claim {
    /// Orphans the selector matches (names).
    pub adopt: Vec<String>,
    /// Owned pods the selector no longer matches (names).
    pub release: Vec<String>,
}

/// Upstream's `ClaimPods`: returns what to adopt and release, and the pods
/// that are this DaemonSet's once that is done.
pub fn claim<'a>(ds: &DaemonSet, pods: &'a [Value]) -> (Claim, Vec<&'a Value>) {
    let mut result = Claim::default();
    let mut mine = Vec::new();
    for pod in pods {
        let selected = selector_matches(&ds.selector, &pod_labels(pod));
        match controller_uid(pod) {
            Some(uid) if uid == ds.uid => {
                if selected {
                    mine.push(pod);
                } else {
                    result.release.push(meta::name(pod).to_string());
                }
            }
            Some(_) => {}
            None if selected && !deleting(pod) => {
                result.adopt.push(meta::name(pod).to_string());
                mine.push(pod);
            }
            None => {}
        }
    }
    (result, mine)
}

/// Upstream's `getNodesToDaemonPods`: the DaemonSet's pods by the node they
/// are (or are to be) on. Finished pods that are being deleted are left out
/// unless asked for: nothing is left to do with them.
pub fn by_node<'a>(
    pods: &[&'a Value],
    include_deleted_terminal: bool,
) -> BTreeMap<String, Vec<&'a Value>> {
    let mut map: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for pod in pods {
        if !include_deleted_terminal && terminal(pod) && deleting(pod) {
            continue;
        }
        if let Some(node) = target_node(pod) {
            map.entry(node).or_default().push(pod);
        }
    }
    map
}

/// What [`manage`] decided.
#[derive(Debug, Default, PartialEq)]
pub struct Manage {
    /// Nodes that need a daemon pod.
    pub create: Vec<String>,
    /// Pods to delete (names).
    pub delete: Vec<String>,
    /// Failed pods to delete and replace, if their node is not in
    /// back-off: `(node, pod)`.
    pub failed: Vec<(String, String)>,
    /// Pods on nodes that no longer exist (names): removed at once, as
    /// upstream's pod garbage collector does, since no kubelet will ever
    /// confirm their end.
    pub orphaned: Vec<String>,
}

impl Manage {
    /// Whether the sync has nothing to do here (then a rolling update may
    /// run, as upstream's runs only with no create or delete outstanding).
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.delete.is_empty()
            && self.failed.is_empty()
            && self.orphaned.is_empty()
    }
}

/// Upstream's `manage` (`podsShouldBeOnNode` for every node): create where a
/// pod should run and there is none, delete where none should continue,
/// replace failed pods, and keep one pod per node (the oldest), or with
/// surge one old and one new.
pub fn manage(
    ds: &DaemonSet,
    fits: &BTreeMap<String, Fit>,
    pods: &[&Value],
    hash: &str,
    now: DateTime<Utc>,
) -> Manage {
    let mut result = Manage::default();
    let by_node = by_node(pods, false);
    let surge = allows_surge(ds);
    for (node, fit) in fits {
        let here = by_node.get(node);
        if fit.should_run && here.is_none() {
            result.create.push(node.clone());
            continue;
        }
        let Some(here) = here else { continue };
        if !fit.should_continue {
            result.delete.extend(
                here.iter()
                    .filter(|p| !deleting(p))
                    .map(|p| meta::name(p).to_string()),
            );
            continue;
        }
        let mut running: Vec<&Value> = Vec::new();
        for pod in here.iter().filter(|p| !deleting(p)) {
            match phase(pod) {
                "Failed" => result
                    .failed
                    .push((node.clone(), meta::name(pod).to_string())),
                "Succeeded" => result.delete.push(meta::name(pod).to_string()),
                _ => running.push(pod),
            }
        }
        if running.len() <= 1 {
            if running.is_empty() && surge && fit.should_run {
                result.create.push(node.clone());
            }
            continue;
        }
        running.sort_by(oldest_first);
        if !surge {
            result
                .delete
                .extend(running[1..].iter().map(|p| meta::name(p).to_string()));
            continue;
        }
        // With surge, an old and a new pod may share the node while the new
        // one comes up: keep the oldest of each, drop the old one once the
        // new one is available (or the old one is no longer ready).
        let (mut oldest_new, mut oldest_old) = (None, None);
        for pod in running {
            let slot = if ds.is_updated(pod, hash) {
                &mut oldest_new
            } else {
                &mut oldest_old
            };
            if slot.is_none() {
                *slot = Some(pod);
            } else {
                result.delete.push(meta::name(pod).to_string());
            }
        }
        if let (Some(new), Some(old)) = (oldest_new, oldest_old)
            && (!is_ready(old) || is_available(new, ds.min_ready_seconds, now))
        {
            result.delete.push(meta::name(old).to_string());
        }
    }
    for (node, here) in &by_node {
        if !fits.contains_key(node) {
            result
                .orphaned
                .extend(here.iter().map(|p| meta::name(p).to_string()));
        }
    }
    result.create.truncate(BURST_REPLICAS);
    result.delete.truncate(BURST_REPLICAS);
    result
}

/// Upstream's `AllowsSurge`: a rolling update whose `maxSurge` is not 0
/// (any percentage of one node rounds up to one).
fn allows_surge(ds: &DaemonSet) -> bool {
    match &ds.strategy {
        Strategy::RollingUpdate { max_surge, .. } => scaled_value(max_surge.as_ref(), 1, true) > 0,
        Strategy::OnDelete => false,
    }
}

/// `(maxSurge, maxUnavailable)` against the number of nodes that should
/// run a pod (upstream's `updatedDesiredNodeCounts`): percentages round up,
/// and with both 0 one pod may be unavailable.
pub fn budget(ds: &DaemonSet, fits: &BTreeMap<String, Fit>) -> (usize, usize) {
    let Strategy::RollingUpdate {
        max_surge,
        max_unavailable,
    } = &ds.strategy
    else {
        return (0, 0);
    };
    let desired = fits.values().filter(|f| f.should_run).count() as i64;
    let unavailable = scaled_value(
        max_unavailable.as_ref().or(Some(&Value::from(1))),
        desired,
        true,
    )
    .max(0);
    let surge = scaled_value(max_surge.as_ref(), desired, true).max(0);
    if desired > 0 && unavailable == 0 && surge == 0 {
        return (0, 1);
    }
    (surge as usize, unavailable as usize)
}

/// Upstream's `findUpdatedPodsOnNode`: the node's new and old pod (not
/// being deleted), or `None` if it has more than one of either.
fn new_and_old<'a>(
    ds: &DaemonSet,
    pods: &[&'a Value],
    hash: &str,
) -> Option<(Option<&'a Value>, Option<&'a Value>)> {
    let (mut new, mut old) = (None, None);
    for pod in pods.iter().filter(|p| !deleting(p)) {
        let slot = if ds.is_updated(pod, hash) {
            &mut new
        } else {
            &mut old
        };
        if slot.is_some() {
            return None;
        }
        *slot = Some(*pod);
    }
    Some((new, old))
}

/// What [`rolling_update`] decided.
#[derive(Debug, Default, PartialEq)]
pub struct Rolling {
    /// Old pods to delete (names).
    pub delete: Vec<String>,
    /// Nodes to create a new pod on beside the old one (surge).
    pub create: Vec<String>,
}

/// Upstream's `rollingUpdate`: without surge, delete old pods while no more
/// than `maxUnavailable` nodes lack an available new pod (an unavailable
/// old pod is replaced regardless); with surge, start new pods beside old
/// ones, at most `maxSurge` at once, and delete each old pod once its
/// replacement is available.
pub fn rolling_update(
    ds: &DaemonSet,
    fits: &BTreeMap<String, Fit>,
    pods: &[&Value],
    hash: &str,
    now: DateTime<Utc>,
) -> Rolling {
    let mut by_node = by_node(pods, false);
    for (node, fit) in fits {
        if fit.should_run {
            by_node.entry(node.clone()).or_default();
        }
    }
    let (max_surge, max_unavailable) = budget(ds, fits);
    let available = |p: &Value| is_available(p, ds.min_ready_seconds, now);
    let mut result = Rolling::default();
    if max_surge == 0 {
        let mut unavailable = 0;
        let mut candidates = Vec::new();
        for pods in by_node.values() {
            match new_and_old(ds, pods, hash) {
                // Excess pods: the manage pass cleans up; count as unavailable.
                None | Some((None, None) | (Some(_), Some(_))) => unavailable += 1,
                Some((Some(new), None)) => {
                    if !available(new) {
                        unavailable += 1;
                    }
                }
                Some((None, Some(old))) => {
                    if !available(old) {
                        result.delete.push(meta::name(old).to_string());
                    } else if unavailable < max_unavailable {
                        candidates.push(meta::name(old).to_string());
                    }
                }
            }
        }
        let room = max_unavailable
            .saturating_sub(unavailable)
            .min(candidates.len());
        result.delete.extend(candidates.into_iter().take(room));
        return result;
    }
    let mut surging = 0;
    let mut candidates = Vec::new();
    let mut unneeded = Vec::new();
    let mut available_nodes = 0;
    for (node, pods) in &by_node {
        let Some((new, old)) = new_and_old(ds, pods, hash) else {
            surging += 1;
            continue;
        };
        if old.or(new).is_some_and(available) {
            available_nodes += 1;
        }
        let should_run = fits.get(node).is_some_and(|f| f.should_run);
        match (new, old) {
            (_, None) => {}
            (None, Some(old)) => {
                if !available(old) {
                    if should_run {
                        result.create.push(node.clone());
                    } else {
                        result.delete.push(meta::name(old).to_string());
                    }
                } else if !should_run {
                    unneeded.push(meta::name(old).to_string());
                } else if surging < max_surge {
                    candidates.push(node.clone());
                }
            }
            (Some(new), Some(old)) => {
                if available(new) {
                    result.delete.push(meta::name(old).to_string());
                } else {
                    surging += 1;
                }
            }
        }
    }
    let room = max_surge.saturating_sub(surging).min(candidates.len());
    result.create.extend(candidates.into_iter().take(room));
    // Old pods on nodes that should no longer run one go only as far as
    // the unavailability budget allows.
    if !unneeded.is_empty() {
        let desired = fits.values().filter(|f| f.should_run).count();
        let unavailable_now = desired.saturating_sub(available_nodes);
        let room = max_unavailable.saturating_sub(unavailable_now);
        result.delete.extend(unneeded.into_iter().take(room));
    }
    result
}

/// `status` of a DaemonSet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// `desiredNumberScheduled`.
    pub desired: i64,
    /// `currentNumberScheduled`.
    pub current: i64,
    /// `numberMisscheduled`.
    pub misscheduled: i64,
    /// `numberReady`.
    pub ready: i64,
    /// `numberAvailable`.
    pub available: i64,
    /// `updatedNumberScheduled`.
    pub updated: i64,
}

impl Status {
    /// `numberUnavailable`.
    pub fn unavailable(&self) -> i64 {
        self.desired - self.available
    }
}

/// Upstream's `updateDaemonSetStatus` counts: per node that should run a
/// pod, whether it has one and whether its oldest is ready, available and
/// up to date; pods on other nodes are misscheduled.
pub fn status(
    ds: &DaemonSet,
    fits: &BTreeMap<String, Fit>,
    pods: &[&Value],
    hash: &str,
    now: DateTime<Utc>,
) -> Status {
    let by_node = by_node(pods, false);
    let mut s = Status::default();
    for (node, fit) in fits {
        let here = by_node.get(node).filter(|p| !p.is_empty());
        if !fit.should_run {
            if here.is_some() {
                s.misscheduled += 1;
            }
            continue;
        }
        s.desired += 1;
        let Some(here) = here else { continue };
        s.current += 1;
        let mut sorted = here.clone();
        sorted.sort_by(oldest_first);
        let pod = sorted[0];
        if is_ready(pod) {
            s.ready += 1;
            if is_available(pod, ds.min_ready_seconds, now) {
                s.available += 1;
            }
        }
        if ds.is_updated(pod, hash) {
            s.updated += 1;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ds(strategy: Value) -> DaemonSet {
        DaemonSet::from_object(&json!({
            "metadata": {"name": "mon", "uid": "ds-uid",
                         "annotations": {TEMPLATE_GENERATION: "2"}},
            "spec": {"selector": {"matchLabels": {"app": "mon"}},
                     "updateStrategy": strategy,
                     "template": {"metadata": {"labels": {"app": "mon"}},
                                  "spec": {"nodeSelector": {"disk": "ssd"}}}},
        }))
        .expect("daemon set")
    }

    fn rolling(surge: Value, unavailable: Value) -> DaemonSet {
        ds(json!({"type": "RollingUpdate",
                  "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}))
    }

    fn node(name: &str, disk: &str) -> Value {
        json!({"metadata": {"name": name, "labels": {"disk": disk}}, "spec": {}})
    }

    /// A running, ready pod of the set on `node`, made from revision `hash`.
    fn pod(name: &str, node: &str, hash: &str) -> Value {
        json!({
            "metadata": {"name": name, "labels": {"app": "mon", HASH_LABEL: hash},
                         "creationTimestamp": "2026-01-01T00:00:00Z",
                         "ownerReferences": [{"kind": "DaemonSet", "uid": "ds-uid", "controller": true}]},
            "spec": {"nodeName": node},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:10Z"}]},
        })
    }

    fn not_ready(mut p: Value) -> Value {
        p["status"]["conditions"][0]["status"] = json!("False");
        p
    }

    fn now() -> DateTime<Utc> {
        "2026-01-01T01:00:00Z".parse().expect("time")
    }

    fn refs(pods: &[Value]) -> Vec<&Value> {
        pods.iter().collect()
    }

    /// A rolling update's expected outcome.
    fn rolled(delete: &[&str], create: &[&str]) -> Rolling {
        let owned = |names: &[&str]| names.iter().map(|n| n.to_string()).collect();
        Rolling {
            delete: owned(delete),
            create: owned(create),
        }
    }

    /// The rolling update of `pods` to template `h2`, now.
    fn roll(d: &DaemonSet, fits: &BTreeMap<String, Fit>, pods: &[Value]) -> Rolling {
        rolling_update(d, fits, &refs(pods), "h2", now())
    }

    #[test]
    fn one_pod_per_eligible_node_and_none_elsewhere() {
        let d = rolling(json!(0), json!(1));
        let nodes = [node("a", "ssd"), node("b", "ssd"), node("c", "hdd")];
        let fits = d.fits(&nodes);
        let pods = vec![pod("on-b", "b", "h1"), pod("on-c", "c", "h1")];
        let m = manage(&d, &fits, &refs(&pods), "h1", now());
        assert_eq!(m.create, ["a"]);
        assert_eq!(m.delete, ["on-c"]);
        let s = status(&d, &fits, &refs(&pods), "h1", now());
        assert_eq!(
            (
                s.desired,
                s.current,
                s.misscheduled,
                s.ready,
                s.updated,
                s.unavailable()
            ),
            (2, 1, 1, 1, 1, 1)
        );
    }

    #[test]
    fn an_unscheduled_pod_counts_for_its_pinned_node() {
        let d = rolling(json!(0), json!(1));
        let fits = d.fits(&[node("a", "ssd")]);
        let mut pending = pod("p", "a", "h1");
        pending["spec"] = json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["a"]}]}]}}}});
        pending["status"] = json!({"phase": "Pending"});
        let pods = vec![pending];
        assert_eq!(
            manage(&d, &fits, &refs(&pods), "h1", now()),
            Manage::default()
        );
        let s = status(&d, &fits, &refs(&pods), "h1", now());
        assert_eq!((s.current, s.ready), (1, 0));
    }

    #[test]
    fn failed_pods_are_replaced_and_extra_pods_pruned_to_the_oldest() {
        let d = rolling(json!(0), json!(1));
        let fits = d.fits(&[node("a", "ssd"), node("b", "ssd"), node("c", "ssd")]);
        let mut failed = pod("failed", "a", "h1");
        failed["status"]["phase"] = json!("Failed");
        let mut gone_failed = pod("gone-failed", "c", "h1");
        gone_failed["status"]["phase"] = json!("Failed");
        gone_failed["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:59:00Z");
        let old = pod("old", "b", "h1");
        let mut newer = pod("newer", "b", "h1");
        newer["metadata"]["creationTimestamp"] = json!("2026-01-01T00:30:00Z");
        let pods = vec![failed, old, newer, gone_failed];
        let m = manage(&d, &fits, &refs(&pods), "h1", now());
        assert_eq!(m.failed, [("a".to_string(), "failed".to_string())]);
        assert_eq!(m.delete, ["newer"]);
        // The deleted failed pod no longer holds its node.
        assert_eq!(m.create, ["c"]);
    }

    #[test]
    fn a_lost_node_keeps_its_pod_and_a_terminating_pod_holds_its_node() {
        let d = rolling(json!(0), json!(1));
        let mut lost = node("a", "ssd");
        lost["spec"]["taints"] = json!([
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}]);
        let fits = d.fits(&[lost, node("b", "ssd")]);
        let mut going = pod("going", "b", "h1");
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:59:00Z");
        let pods = vec![pod("stays", "a", "h1"), going];
        assert_eq!(
            manage(&d, &fits, &refs(&pods), "h1", now()),
            Manage::default()
        );
        let s = status(&d, &fits, &refs(&pods), "h1", now());
        assert_eq!((s.desired, s.current, s.misscheduled), (1, 1, 1));
    }

    #[test]
    fn pods_of_deleted_nodes_are_orphaned() {
        let d = rolling(json!(0), json!(1));
        let fits = d.fits(&[node("a", "ssd")]);
        let pods = vec![pod("here", "a", "h1"), pod("ghost", "gone", "h1")];
        let m = manage(&d, &fits, &refs(&pods), "h1", now());
        assert_eq!(
            (m.orphaned.clone(), m.create.len()),
            (vec!["ghost".to_string()], 0)
        );
    }

    #[test]
    fn claim_adopts_orphans_and_releases_relabelled_pods() {
        let d = rolling(json!(0), json!(1));
        let mut orphan = pod("orphan", "a", "h1");
        orphan["metadata"]
            .as_object_mut()
            .expect("meta")
            .remove("ownerReferences");
        let mut relabelled = pod("relabelled", "a", "h1");
        relabelled["metadata"]["labels"]["app"] = json!("no-app");
        let mut others = pod("others", "a", "h1");
        others["metadata"]["ownerReferences"][0]["uid"] = json!("rs-uid");
        let pods = vec![orphan, relabelled, others, pod("mine", "b", "h1")];
        let (c, mine) = claim(&d, &pods);
        assert_eq!(
            (c.adopt, c.release),
            (vec!["orphan".into()], vec!["relabelled".into()])
        );
        let names: Vec<String> = mine.iter().map(|p| meta::name(p).to_string()).collect();
        assert_eq!(names, ["orphan", "mine"]);
    }

    #[test]
    fn up_to_date_means_the_hash_or_the_template_generation() {
        let d = rolling(json!(0), json!(1));
        assert!(d.is_updated(&pod("p", "a", "h2"), "h2"));
        assert!(!d.is_updated(&pod("p", "a", "h1"), "h2"));
        let mut by_generation = pod("p", "a", "h1");
        by_generation["metadata"]["labels"][GENERATION_LABEL] = json!("2");
        assert!(d.is_updated(&by_generation, "h2"));
    }

    #[test]
    fn budgets_scale_percentages_up_and_never_stall() {
        let nodes: Vec<Value> = (0..10).map(|i| node(&format!("n{i}"), "ssd")).collect();
        let budget_of = |d: DaemonSet| budget(&d, &d.fits(&nodes));
        assert_eq!(budget_of(rolling(json!(0), json!(1))), (0, 1));
        assert_eq!(budget_of(rolling(json!(0), json!("25%"))), (0, 3));
        assert_eq!(budget_of(rolling(json!("10%"), json!(0))), (1, 0));
        assert_eq!(budget_of(rolling(json!(0), json!("0%"))), (0, 1));
        assert_eq!(budget_of(ds(json!({"type": "OnDelete"}))), (0, 0));
        // Defaults: maxUnavailable 1.
        assert_eq!(budget_of(ds(json!({"type": "RollingUpdate"}))), (0, 1));
    }

    #[test]
    fn rolling_update_replaces_one_pod_at_a_time() {
        let d = rolling(json!(0), json!(1));
        let fits = d.fits(&[node("a", "ssd"), node("b", "ssd"), node("c", "ssd")]);
        let pods = vec![
            pod("a1", "a", "h1"),
            pod("b1", "b", "h1"),
            pod("c1", "c", "h1"),
        ];
        assert_eq!(roll(&d, &fits, &pods), rolled(&["a1"], &[]));
        // a1 terminating: its node counts as unavailable, nothing more goes.
        let mut going = pod("a1", "a", "h1");
        going["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:59:00Z");
        let pods = vec![going, pod("b1", "b", "h1"), pod("c1", "c", "h1")];
        assert_eq!(roll(&d, &fits, &pods), Rolling::default());
        // The replacement on a is up but not ready yet: still nothing.
        let pods = vec![
            not_ready(pod("a2", "a", "h2")),
            pod("b1", "b", "h1"),
            pod("c1", "c", "h1"),
        ];
        assert_eq!(roll(&d, &fits, &pods), Rolling::default());
        // Ready: the next node's turn.
        let pods = vec![
            pod("a2", "a", "h2"),
            pod("b1", "b", "h1"),
            pod("c1", "c", "h1"),
        ];
        let r = roll(&d, &fits, &pods);
        assert_eq!(r.delete, ["b1"]);
    }

    #[test]
    fn unavailable_old_pods_are_replaced_regardless_of_the_budget() {
        let d = rolling(json!(0), json!(1));
        let fits = d.fits(&[node("a", "ssd"), node("b", "ssd"), node("c", "ssd")]);
        let pods = vec![
            not_ready(pod("a1", "a", "h1")),
            not_ready(pod("b1", "b", "h1")),
            pod("c1", "c", "h1"),
        ];
        let r = roll(&d, &fits, &pods);
        assert_eq!(r.delete, ["a1", "b1", "c1"]);
        // Two unavailable new pods use up the budget for the ready old one.
        let pods = vec![
            not_ready(pod("a2", "a", "h2")),
            not_ready(pod("b2", "b", "h2")),
            pod("c1", "c", "h1"),
        ];
        assert_eq!(roll(&d, &fits, &pods).delete.len(), 0);
    }

    #[test]
    fn a_bigger_budget_replaces_more_at_once_and_min_ready_seconds_delays() {
        let d = rolling(json!(0), json!("50%"));
        let fits = d.fits(&[
            node("a", "ssd"),
            node("b", "ssd"),
            node("c", "ssd"),
            node("d", "ssd"),
        ]);
        let pods = vec![
            pod("a1", "a", "h1"),
            pod("b1", "b", "h1"),
            pod("c1", "c", "h1"),
            pod("d1", "d", "h1"),
        ];
        assert_eq!(roll(&d, &fits, &pods).delete.len(), 2);
        let mut slow = rolling(json!(0), json!(1));
        slow.min_ready_seconds = 7200;
        // Ready an hour: not available for two, so it is simply replaced.
        let pods = vec![pod("a1", "a", "h1"), pod("b2", "b", "h2")];
        let fits = slow.fits(&[node("a", "ssd"), node("b", "ssd")]);
        let s = status(&slow, &fits, &refs(&pods), "h2", now());
        assert_eq!((s.ready, s.available, s.updated), (2, 0, 1));
    }

    #[test]
    fn surge_starts_new_pods_beside_old_ones() {
        let d = rolling(json!(1), json!(0));
        let fits = d.fits(&[node("a", "ssd"), node("b", "ssd")]);
        let pods = vec![pod("a1", "a", "h1"), pod("b1", "b", "h1")];
        assert_eq!(roll(&d, &fits, &pods), rolled(&[], &["a"]));
        // The new pod on a is not ready: both stay, no second surge.
        let pods = vec![
            pod("a1", "a", "h1"),
            not_ready(pod("a2", "a", "h2")),
            pod("b1", "b", "h1"),
        ];
        assert_eq!(roll(&d, &fits, &pods), Rolling::default());
        assert_eq!(
            manage(&d, &fits, &refs(&pods), "h2", now()),
            Manage::default()
        );
        // Ready: the old one goes (manage sees it too), b surges next.
        let pods = vec![
            pod("a1", "a", "h1"),
            pod("a2", "a", "h2"),
            pod("b1", "b", "h1"),
        ];
        assert_eq!(roll(&d, &fits, &pods), rolled(&["a1"], &["b"]));
        assert_eq!(manage(&d, &fits, &refs(&pods), "h2", now()).delete, ["a1"]);
    }

    #[test]
    fn on_delete_never_replaces_pods_by_itself() {
        let d = ds(json!({"type": "OnDelete"}));
        let fits = d.fits(&[node("a", "ssd")]);
        let pods = vec![pod("a1", "a", "h1")];
        assert_eq!(
            manage(&d, &fits, &refs(&pods), "h2", now()),
            Manage::default()
        );
        let s = status(&d, &fits, &refs(&pods), "h2", now());
        assert_eq!((s.current, s.updated), (1, 0));
    }
}
