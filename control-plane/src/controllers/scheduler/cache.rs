//! The scheduler's view of the cluster, kept from watch events (upstream's
//! scheduler cache plus scheduling queue): compiled nodes with running
//! totals of what their pods request, and the queue of pods waiting for a
//! node. Placing a pod reads only this, never the store, so its cost does
//! not grow with the number of pods.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::filters::{Diagnosis, NodeInfo, PodInfo, Usage, filter};
use super::resources::Resources;
use super::score::{Score, better, score};
use super::volumes::VolumeFit;
use crate::controllers::head::PodPlace;

/// `namespace/name` of a pod.
pub fn pod_key(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn owner_of(pod: &Value) -> Option<String> {
    pod.pointer("/metadata/ownerReferences/0/uid")
        .and_then(Value::as_str)
        .map(String::from)
}

fn terminal(pod: &Value) -> bool {
    matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    )
}

/// Whether this scheduler should place the pod now.
fn wants_scheduling(pod: &Value) -> bool {
    pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty)
        && pod
            .pointer("/metadata/deletionTimestamp")
            .is_none_or(Value::is_null)
        && pod["spec"]["schedulerName"]
            .as_str()
            .is_none_or(|s| s == "default-scheduler")
        // Upstream leaves gated pods alone until every gate is removed.
        && pod["spec"]["schedulingGates"]
            .as_array()
            .is_none_or(Vec::is_empty)
        && !terminal(pod)
}

/// The message of the pod's `PodScheduled=False` condition, if any.
fn reported_failure(pod: &Value) -> Option<String> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "PodScheduled" && c["status"] == "False")
        .and_then(|c| c["message"].as_str().map(String::from))
}

#[derive(Debug, Default)]
struct NodeSlot {
    /// `None` while pods name a node that has no (or no more) object.
    info: Option<NodeInfo>,
    revision: u64,
    usage: Usage,
}

/// A pod counted against a node.
#[derive(Debug, Clone)]
struct Placement {
    node: usize,
    requests: Resources,
    owner: Option<String>,
}

/// A pod waiting for a node.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The object as last seen (its `resourceVersion` is current).
    pub object: Value,
    /// Compiled.
    pub info: PodInfo,
    owner: Option<String>,
    /// Message of the FailedScheduling state already written, if any.
    pub reported: Option<String>,
    seq: u64,
}

#[derive(Debug, Default)]
struct PodEntry {
    revision: u64,
    placed: Option<Placement>,
    pending: Option<Pending>,
    /// Placed by this scheduler, the bind not yet confirmed.
    assumed: Option<Pending>,
}

/// What a change means for waiting pods.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// A pod is newly waiting (or changed while waiting).
    pub queued: bool,
    /// Something that could let an unschedulable pod fit now: a node
    /// appeared or changed, or a placed pod went away.
    pub room: bool,
}

/// The outcome of looking for a node.
#[derive(Debug)]
pub enum Decision {
    /// The best node (slot, name).
    Node(usize, String),
    /// No node fits.
    Unschedulable(Diagnosis),
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Cache {
    nodes: Vec<NodeSlot>,
    by_name: HashMap<String, usize>,
    pods: HashMap<String, PodEntry>,
    /// Pods of each owner on each node slot (for spreading).
    owners: HashMap<String, HashMap<usize, u32>>,
    /// Waiting pods to try, oldest first.
    active: BTreeMap<u64, String>,
    /// Waiting pods that fit nowhere last time.
    unschedulable: BTreeMap<u64, String>,
    next_seq: u64,
    pods_synced: u64,
    nodes_synced: u64,
    /// Node slot the next search starts at.
    next_start: usize,
    /// Both nodes and pods were listed at least once.
    nodes_listed: bool,
    pods_listed: bool,
}

impl Cache {
    fn slot(&mut self, name: &str) -> usize {
        if let Some(i) = self.by_name.get(name) {
            return *i;
        }
        self.nodes.push(NodeSlot::default());
        let i = self.nodes.len() - 1;
        self.by_name.insert(name.to_string(), i);
        i
    }

    fn account(&mut self, p: &Placement, sign: i64) {
        let usage = &mut self.nodes[p.node].usage;
        usage.pods += sign;
        usage.requested = if sign > 0 {
            usage.requested.plus(p.requests)
        } else {
            usage.requested.minus(p.requests)
        };
        if let Some(owner) = &p.owner {
            let per_node = self.owners.entry(owner.clone()).or_default();
            let n = per_node.entry(p.node).or_default();
            *n = n.saturating_add_signed(sign as i32);
            if *n == 0 {
                per_node.remove(&p.node);
                if per_node.is_empty() {
                    self.owners.remove(owner);
                }
            }
        }
    }

    fn enqueue(&mut self, key: &str) -> u64 {
        self.next_seq += 1;
        self.active.insert(self.next_seq, key.to_string());
        self.next_seq
    }

    fn dequeue(&mut self, seq: u64) {
        self.active.remove(&seq);
        self.unschedulable.remove(&seq);
    }

    /// Whether a change of pod `key` at `revision` is no newer than what
    /// the cache holds (such as the watch event of a bind it confirmed):
    /// [`Cache::apply_pod`] would ignore it, so it need not be decoded.
    pub fn is_stale(&self, key: &str, revision: u64) -> bool {
        revision <= self.pods_synced || self.pods.get(key).is_some_and(|e| revision <= e.revision)
    }

    /// A change at `revision` to a pod the cache holds as placed (its bind
    /// confirmed), whose stored bytes say it is still on that node, with
    /// the same owner, and not finished, changes nothing the scheduler
    /// counts: the revision is taken and `true` returned, so the pod need
    /// not be decoded whole. (Most pod changes are the kubelets' status
    /// reports of running pods.) Other pods' bytes are not read at all.
    pub fn keep_placed(&mut self, key: &str, revision: u64, pod: &[u8]) -> bool {
        if self.is_stale(key, revision) {
            return false;
        }
        let Some(entry) = self.pods.get_mut(key) else {
            return false;
        };
        let Some(placed) = entry
            .placed
            .as_ref()
            .filter(|_| entry.assumed.is_none() && entry.pending.is_none())
        else {
            return false;
        };
        let Some(place) = PodPlace::from_json(pod) else {
            return false;
        };
        let same_node = place
            .node
            .as_deref()
            .and_then(|n| self.by_name.get(n))
            .is_some_and(|slot| *slot == placed.node);
        if !same_node || place.owner != placed.owner || place.terminal() {
            return false;
        }
        entry.revision = revision;
        true
    }

    /// Applies a pod change at `revision`: `None` means deleted. Changes
    /// not newer than what the cache holds are ignored.
    pub fn apply_pod(&mut self, key: &str, revision: u64, pod: Option<&Value>) -> Change {
        self.apply_pod_owned(key, revision, pod.cloned())
    }

    /// [`Cache::apply_pod`] taking the object, which a waiting pod keeps
    /// (no copy of every pending pod).
    pub fn apply_pod_owned(&mut self, key: &str, revision: u64, pod: Option<Value>) -> Change {
        let mut change = Change::default();
        if self.is_stale(key, revision) {
            return change;
        }
        let mut entry = self.pods.remove(key).unwrap_or_default();
        entry.revision = revision;
        entry.assumed = None;
        if let Some(old) = entry.placed.take() {
            self.account(&old, -1);
            change.room = true;
        }
        let old_pending = entry.pending.take();
        let was_unschedulable = old_pending
            .as_ref()
            .is_some_and(|p| self.unschedulable.contains_key(&p.seq));
        if let Some(p) = &old_pending {
            self.dequeue(p.seq);
        }
        let Some(pod) = pod else {
            return change;
        };
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
            && !terminal(&pod)
        {
            let placed = Placement {
                node: self.slot(node),
                requests: PodInfo::of_pod(&pod).requests,
                owner: owner_of(&pod),
            };
            self.account(&placed, 1);
            // The same pod on the same node frees nothing.
            change.room = false;
            entry.placed = Some(placed);
        } else if wants_scheduling(&pod) {
            let info = PodInfo::of_pod(&pod);
            // A waiting pod whose spec did not change keeps its place (and
            // stays unschedulable): our own status writes come back here.
            let seq = match &old_pending {
                Some(p) if p.info == info => {
                    let queue = if was_unschedulable {
                        &mut self.unschedulable
                    } else {
                        &mut self.active
                    };
                    queue.insert(p.seq, key.to_string());
                    p.seq
                }
                _ => {
                    change.queued = true;
                    self.enqueue(key)
                }
            };
            let owner = owner_of(&pod);
            let reported = reported_failure(&pod);
            entry.pending = Some(Pending {
                object: pod,
                info,
                owner,
                reported,
                seq,
            });
        }
        self.pods.insert(key.to_string(), entry);
        change
    }

    /// Applies a node change at `revision` (`None`: deleted).
    pub fn apply_node(&mut self, name: &str, revision: u64, node: Option<&Value>) -> Change {
        if revision <= self.nodes_synced {
            return Change::default();
        }
        let i = self.slot(name);
        let slot = &mut self.nodes[i];
        if revision <= slot.revision {
            return Change::default();
        }
        slot.revision = revision;
        let info = node.map(NodeInfo::of_node);
        // Heartbeats change nothing the filters read.
        let changed = slot.info != info;
        slot.info = info;
        Change {
            queued: false,
            room: changed && slot.info.is_some(),
        }
    }

    /// Replaces every pod with a fresh listing taken at `revision`.
    pub fn reset_pods(&mut self, pods: &[Value], revision: u64) {
        self.reset_pods_owned(pods.to_vec(), revision);
    }

    /// [`Cache::reset_pods`] taking the listing.
    pub fn reset_pods_owned(&mut self, mut pods: Vec<Value>, revision: u64) {
        self.pods.clear();
        self.owners.clear();
        self.active.clear();
        self.unschedulable.clear();
        for slot in &mut self.nodes {
            slot.usage = Usage::default();
        }
        self.pods_synced = 0;
        // Oldest first, as they would have been queued.
        fn created(p: &Value) -> &str {
            p["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or_default()
        }
        pods.sort_by(|a, b| {
            created(a)
                .cmp(created(b))
                .then_with(|| resource_version(a).cmp(&resource_version(b)))
        });
        for pod in pods {
            let rv = resource_version(&pod).min(revision);
            self.apply_pod_owned(&pod_key(&pod), rv, Some(pod));
        }
        self.pods_synced = revision;
        self.pods_listed = true;
    }

    /// Replaces every node with a fresh listing taken at `revision`.
    pub fn reset_nodes(&mut self, nodes: &[Value], revision: u64) {
        for slot in &mut self.nodes {
            slot.info = None;
            slot.revision = 0;
        }
        self.nodes_synced = 0;
        for node in nodes {
            let name = node["metadata"]["name"].as_str().unwrap_or_default();
            self.apply_node(name, resource_version(node).min(revision), Some(node));
        }
        self.nodes_synced = revision;
        self.nodes_listed = true;
    }

    /// Whether nodes and pods have both been listed: until then a pod
    /// would be judged against part of the cluster (upstream's scheduler
    /// likewise waits for its informers to sync).
    pub fn synced(&self) -> bool {
        self.nodes_listed && self.pods_listed
    }

    /// Node objects known.
    pub fn node_count(&self) -> usize {
        self.nodes.iter().filter(|s| s.info.is_some()).count()
    }

    /// Whether pods wait to be tried.
    pub fn has_active(&self) -> bool {
        !self.active.is_empty()
    }

    /// How many pods wait to be tried.
    pub fn active_len(&self) -> usize {
        self.active.len()
    }

    /// Gives unschedulable pods another try.
    pub fn retry_unschedulable(&mut self) {
        let retry = std::mem::take(&mut self.unschedulable);
        self.active.extend(retry);
    }

    /// The next waiting pod to try (it stays waiting until placed or
    /// marked unschedulable).
    pub fn pop_active(&mut self) -> Option<String> {
        self.active.pop_first().map(|(_, key)| key)
    }

    /// The waiting pod `key`.
    pub fn pending(&self, key: &str) -> Option<&Pending> {
        self.pods.get(key).and_then(|e| e.pending.as_ref())
    }

    /// Finds the best node for the waiting pod `key`; `None` if it is not
    /// waiting (any more). As upstream's default (adaptive
    /// `percentageOfNodesToScore`), a large cluster is searched only until
    /// [`feasible_nodes_to_find`] nodes passed the filters, starting where
    /// the previous search stopped, so that every node gets its turn.
    pub fn find_node(&mut self, key: &str) -> Option<Decision> {
        self.find_node_for(key, None)
    }

    /// [`Cache::find_node`] with the pod's volume constraints (the
    /// VolumeBinding filter, run after upstream's other filters).
    pub fn find_node_for(&mut self, key: &str, volumes: Option<&VolumeFit>) -> Option<Decision> {
        let pending = self.pending(key)?;
        let owned = pending.owner.as_ref().and_then(|o| self.owners.get(o));
        let slots = self.nodes.len();
        let count = self.node_count();
        let wanted = feasible_nodes_to_find(count);
        // Equal nodes: the smaller name when every node is searched; in a
        // partial search the first found, or the smaller names would win
        // every search that wraps around past them (upstream picks at
        // random).
        let by_name = wanted >= count;
        let mut best: Option<(Score, usize)> = None;
        let mut diagnosis = Diagnosis::default();
        let mut feasible = 0;
        let mut looked = 0;
        for step in 0..slots {
            if feasible == wanted {
                break;
            }
            looked = step + 1;
            let i = (self.next_start + step) % slots;
            let slot = &self.nodes[i];
            let Some(node) = &slot.info else { continue };
            let verdict = filter(&pending.info, node, &slot.usage)
                .and_then(|()| volumes.map_or(Ok(()), |v| v.filter(node)));
            match verdict {
                Ok(()) => {
                    feasible += 1;
                    let owner_pods = owned.and_then(|o| o.get(&i)).copied().unwrap_or(0);
                    let s = score(&pending.info, node, &slot.usage, owner_pods);
                    let replace = best.is_none_or(|(bs, bi)| {
                        if by_name {
                            better((s, &node.name), (bs, self.node_name(bi)))
                        } else {
                            s < bs
                        }
                    });
                    if replace {
                        best = Some((s, i));
                    }
                }
                Err(reasons) => diagnosis.record(reasons),
            }
        }
        if slots > 0 {
            self.next_start = (self.next_start + looked) % slots;
        }
        Some(match best {
            Some((_, i)) => Decision::Node(i, self.node_name(i).to_string()),
            None => Decision::Unschedulable(diagnosis),
        })
    }

    fn node_name(&self, i: usize) -> &str {
        self.nodes[i].info.as_ref().map_or("", |n| n.name.as_str())
    }

    /// Counts the waiting pod `key` on node slot `node` before the bind is
    /// written, so the next pods see it (upstream's "assume").
    pub fn assume(&mut self, key: &str, node: usize) {
        let Some(mut entry) = self.pods.remove(key) else {
            return;
        };
        if let Some(p) = entry.pending.take() {
            self.dequeue(p.seq);
            let placed = Placement {
                node,
                requests: p.info.requests,
                owner: p.owner.clone(),
            };
            self.account(&placed, 1);
            entry.placed = Some(placed);
            entry.assumed = Some(p);
        }
        self.pods.insert(key.to_string(), entry);
    }

    /// The bind of an assumed pod was written at `revision`.
    pub fn confirm(&mut self, key: &str, revision: u64) {
        if let Some(entry) = self.pods.get_mut(key)
            && entry.assumed.take().is_some()
        {
            entry.revision = entry.revision.max(revision);
        }
    }

    /// The bind of an assumed pod failed: it waits again (unless a watch
    /// event already told what became of it).
    pub fn forget(&mut self, key: &str) {
        let Some(mut entry) = self.pods.remove(key) else {
            return;
        };
        if let Some(mut p) = entry.assumed.take() {
            if let Some(placed) = entry.placed.take() {
                self.account(&placed, -1);
            }
            self.next_seq += 1;
            p.seq = self.next_seq;
            self.unschedulable.insert(p.seq, key.to_string());
            entry.pending = Some(p);
        }
        self.pods.insert(key.to_string(), entry);
    }

    /// The waiting pod `key` fits nowhere. `reported`: the pod as written
    /// with the FailedScheduling condition, when a write was needed.
    pub fn mark_unschedulable(&mut self, key: &str, reported: Option<Value>) {
        let Some(entry) = self.pods.get_mut(key) else {
            return;
        };
        let Some(p) = entry.pending.as_mut() else {
            return;
        };
        if let Some(pod) = reported {
            entry.revision = entry.revision.max(resource_version(&pod));
            p.reported = reported_failure(&pod);
            p.object = pod;
        }
        let seq = p.seq;
        self.active.remove(&seq);
        self.unschedulable.insert(seq, key.to_string());
    }

    /// Usage of the node named `name` (tests and diagnostics).
    pub fn usage(&self, name: &str) -> Option<Usage> {
        self.by_name.get(name).map(|i| self.nodes[*i].usage)
    }
}

/// How many feasible nodes a search stops at in a cluster of `nodes`:
/// upstream's adaptive default, all nodes up to 100, then 50% less one
/// percent per 125 nodes (at least 5%), but never fewer than 100.
pub fn feasible_nodes_to_find(nodes: usize) -> usize {
    const MIN_FEASIBLE: usize = 100;
    if nodes < MIN_FEASIBLE {
        return nodes;
    }
    let percentage = 50usize.saturating_sub(nodes / 125).max(5);
    (nodes * percentage / 100).max(MIN_FEASIBLE)
}

fn resource_version(obj: &Value) -> u64 {
    obj["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
