//! Recording core/v1 Events the way upstream's client-go recorder does, so
//! a repeat does not become a new object each time:
//!
//! - **Repeats**: an event identical to one seen before (same source
//!   component and host, involved object kind, namespace, name, uid,
//!   apiVersion and fieldPath, type, reason and message) updates the stored
//!   Event: `count` + 1, `lastTimestamp` moved on, name and `firstTimestamp`
//!   kept. kubectl then shows `5s (x4 over 40s)`.
//! - **Similar events**: once [`MAX_SIMILAR`] events that differ only in
//!   their message arrive within [`SIMILAR_WINDOW`] of each other, further
//!   ones go to a single Event whose message reads `(combined from similar
//!   events): <latest message>`.
//!
//! Every component of the control plane records through one [`Recorder`].
//! Its memory of what it recorded is a bounded cache; after a restart the
//! Events of an involved object are read from the store once (upstream's
//! recorder never reads them), so counting carries on from what is stored
//! rather than starting a second Event. Later keys of an object already
//! read are not looked up again: as upstream, a key evicted from the cache
//! meanwhile starts a new Event.
//!
//! Upstream's third stage, a per-object spam filter that drops events, is
//! not implemented: Skiff's components do not emit at rates that need it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tracing::warn;

use crate::store::StoreError;

/// Distinct messages of similar events after which they are combined
/// (upstream's `defaultAggregateMaxEvents`).
pub const MAX_SIMILAR: usize = 10;

/// How long similar events are remembered after the last of them
/// (upstream's `defaultAggregateIntervalInSeconds`).
pub const SIMILAR_WINDOW: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Entries each cache keeps (upstream's `maxLruCacheEntries`).
pub const CACHE_ENTRIES: usize = 4096;

/// The prefix of combined events' messages, as upstream words it.
pub const COMBINED_PREFIX: &str = "(combined from similar events): ";

/// What an event is about: the fields of an `ObjectReference` that tell
/// events apart.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvolvedObject {
    /// `Pod`, `Node`, ...
    pub kind: String,
    /// `v1`, `apps/v1`, ...
    pub api_version: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Uid.
    pub uid: String,
    /// The part of the object, e.g. `spec.containers{web}`; may be empty.
    pub field_path: String,
}

impl InvolvedObject {
    /// A reference to an API object (kind, apiVersion and metadata).
    pub fn of(object: &Value) -> Self {
        let text = |pointer: &str| {
            object
                .pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Self {
            kind: text("/kind"),
            api_version: text("/apiVersion"),
            namespace: text("/metadata/namespace"),
            name: text("/metadata/name"),
            uid: text("/metadata/uid"),
            field_path: String::new(),
        }
    }
}

/// One occurrence of an event, before correlation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// What it is about.
    pub object: InvolvedObject,
    /// `Warning` (true) or `Normal`.
    pub warning: bool,
    /// `Scheduled`, `BackOff`, ...
    pub reason: String,
    /// Human-readable message.
    pub message: String,
    /// Reporting component (`kubelet`, `default-scheduler`, ...).
    pub component: String,
    /// Node of the reporting component; empty for control-plane components.
    pub host: String,
    /// When it happened.
    pub time: DateTime<Utc>,
}

impl NewEvent {
    /// The Event object as first created (count 1), with `message`.
    fn to_object(&self, name: &str, message: &str) -> Value {
        let o = &self.object;
        let mut involved =
            json!({"kind": o.kind, "apiVersion": o.api_version, "name": o.name, "uid": o.uid});
        if !o.namespace.is_empty() {
            involved["namespace"] = json!(o.namespace);
        }
        if !o.field_path.is_empty() {
            involved["fieldPath"] = json!(o.field_path);
        }
        let mut source = json!({"component": self.component});
        let time = timestamp(self.time);
        let mut event = json!({
            "metadata": {"name": name, "namespace": self.namespace()},
            "involvedObject": involved,
            "reason": self.reason,
            "message": message,
            "type": if self.warning { "Warning" } else { "Normal" },
            "firstTimestamp": time,
            "lastTimestamp": time,
            "count": 1,
            "reportingComponent": self.component,
        });
        if !self.host.is_empty() {
            source["host"] = json!(self.host);
            event["reportingInstance"] = json!(self.host);
        }
        event["source"] = source;
        event
    }

    /// Events about cluster-scoped objects live in `default`, as upstream.
    fn namespace(&self) -> &str {
        if self.object.namespace.is_empty() {
            "default"
        } else {
            &self.object.namespace
        }
    }
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The identity fields of a stored or new Event, in a fixed order. NUL
/// separators keep `("ab", "c")` and `("a", "bc")` apart.
fn identity(event: &Value, with_field_path: bool, with_message: bool) -> String {
    let text = |pointer: &str| event.pointer(pointer).and_then(Value::as_str);
    let mut parts = vec![
        text("/source/component"),
        text("/source/host"),
        text("/involvedObject/kind"),
        text("/involvedObject/namespace"),
        text("/involvedObject/name"),
        text("/involvedObject/uid"),
        text("/involvedObject/apiVersion"),
        text("/type"),
        text("/reason"),
    ];
    if with_field_path {
        parts.push(text("/involvedObject/fieldPath"));
    }
    if with_message {
        parts.push(text("/message"));
    }
    parts
        .into_iter()
        .map(Option::unwrap_or_default)
        .collect::<Vec<_>>()
        .join("\0")
}

/// The key of repeats: everything, message included.
fn repeat_key(event: &Value) -> String {
    format!("repeat\0{}", identity(event, true, true))
}

/// The key of similar events: everything but the message and the field
/// path (upstream's `EventAggregatorByReasonFunc`).
fn similar_key(event: &Value) -> String {
    format!("similar\0{}", identity(event, false, false))
}

/// The key a stored Event is counted under.
fn stored_key(event: &Value) -> String {
    let combined = event
        .get("message")
        .and_then(Value::as_str)
        .is_some_and(|m| m.starts_with(COMBINED_PREFIX));
    if combined {
        similar_key(event)
    } else {
        repeat_key(event)
    }
}

/// A map that forgets its least recently used entries beyond a capacity.
struct Lru<V> {
    entries: HashMap<String, (V, u64)>,
    clock: u64,
    capacity: usize,
}

impl<V> Lru<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            clock: 0,
            capacity: capacity.max(4),
        }
    }

    fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.clock += 1;
        let clock = self.clock;
        self.entries.get_mut(key).map(|(v, used)| {
            *used = clock;
            v
        })
    }

    fn put(&mut self, key: String, value: V) {
        self.clock += 1;
        self.entries.insert(key, (value, self.clock));
        if self.entries.len() > self.capacity {
            // Forget the oldest quarter at once: eviction stays rare and
            // linear instead of a scan per insert.
            let mut uses: Vec<u64> = self.entries.values().map(|(_, u)| *u).collect();
            let cut = self.entries.len() - self.capacity * 3 / 4;
            let (_, nth, _) = uses.select_nth_unstable(cut - 1);
            let threshold = *nth;
            self.entries.retain(|_, (_, used)| *used > threshold);
        }
    }

    fn take(&mut self, key: &str) -> Option<V> {
        self.entries.remove(key).map(|(v, _)| v)
    }
}

/// Messages seen recently for one similar-events key.
struct Similar {
    messages: HashSet<String>,
    last: DateTime<Utc>,
}

/// Where an occurrence goes: the cache key and the message to write.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Correlation {
    key: String,
    message: String,
}

/// The in-memory part of correlation (no I/O).
struct Correlator {
    similar: Lru<Similar>,
    /// Cache key → name of the Event counting it.
    recorded: Lru<String>,
    /// Uids of involved objects whose stored Events were read once: every
    /// Event about them since went through this recorder, so a key it
    /// does not hold has none stored (a new Pod's second and third kubelet
    /// events need no store read). Smaller than `recorded`, so an object
    /// is forgotten before most of its keys are.
    looked_up: Lru<()>,
}

impl Correlator {
    fn new(capacity: usize) -> Self {
        Self {
            similar: Lru::new(capacity),
            recorded: Lru::new(capacity),
            looked_up: Lru::new(capacity / 4),
        }
    }

    /// Upstream's `EventAggregate`: remembers the message under the
    /// similar-events key, and past [`MAX_SIMILAR`] distinct messages sends
    /// the occurrence to the combined Event.
    fn correlate(&mut self, event: &Value, time: DateTime<Utc>) -> Correlation {
        let message = event
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let similar = similar_key(event);
        let mut record = self
            .similar
            .take(&similar)
            .filter(|r| time - r.last <= SIMILAR_WINDOW)
            .unwrap_or_else(|| Similar {
                messages: HashSet::new(),
                last: time,
            });
        record.messages.insert(message.clone());
        record.last = record.last.max(time);
        let combine = record.messages.len() >= MAX_SIMILAR;
        if combine {
            // Keep the set bounded, as upstream does.
            if let Some(any) = record.messages.iter().next().cloned() {
                record.messages.remove(&any);
            }
        }
        self.similar.put(similar.clone(), record);
        if combine {
            Correlation {
                key: similar,
                message: format!("{COMBINED_PREFIX}{message}"),
            }
        } else {
            Correlation {
                key: repeat_key(event),
                message,
            }
        }
    }
}

/// Locks that serialise the recording of one correlation key (striped by
/// its hash): two components reporting the same event at once must not
/// both create it, while events of different objects are written side by
/// side (one lock for every event made 1,000 nodes' kubelet events wait
/// for each other's store writes, ~35 s for 10,000 pods).
const KEY_LOCKS: usize = 64;

/// Where the recorder keeps Events: the registry's objects in the control
/// plane. Kept as a trait so this module needs nothing of the registry's
/// object access, which itself owns a recorder.
#[async_trait::async_trait]
pub trait EventStore: Send + Sync {
    /// Creates `event` as is (its name chosen by the recorder).
    async fn create_event(&self, event: Value) -> Result<(), StoreError>;

    /// Changes the stored Event `namespace/name` with `change`.
    async fn count_event(
        &self,
        namespace: &str,
        name: &str,
        change: &mut (dyn for<'v> FnMut(&'v mut Value) + Send),
    ) -> Result<(), StoreError>;

    /// The stored Events in `namespace` whose names start with `prefix`.
    async fn events_named(&self, namespace: &str, prefix: &str) -> Result<Vec<Value>, StoreError>;
}

/// Records Events for the control plane's components (see the module
/// documentation).
pub struct Recorder {
    /// Held only while the caches are read or changed, never across a
    /// store call.
    correlator: std::sync::Mutex<Correlator>,
    key_locks: Vec<Mutex<()>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// A recorder with upstream's cache sizes.
    pub fn new() -> Self {
        Self::with_capacity(CACHE_ENTRIES)
    }

    /// A recorder whose caches keep `capacity` entries.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            correlator: std::sync::Mutex::new(Correlator::new(capacity)),
            key_locks: (0..KEY_LOCKS).map(|_| Mutex::new(())).collect(),
        }
    }

    fn correlator(&self) -> std::sync::MutexGuard<'_, Correlator> {
        self.correlator.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one occurrence: a new Event, or a count on an existing one.
    /// Failures are logged, never returned: an event is not worth failing
    /// the caller's work for.
    pub async fn record(&self, objects: &dyn EventStore, event: NewEvent) {
        if let Err(e) = self.try_record(objects, &event).await {
            warn!(reason = %event.reason, object = %event.object.name, error = %e, "event not recorded");
        }
    }

    async fn try_record(
        &self,
        objects: &dyn EventStore,
        event: &NewEvent,
    ) -> Result<(), StoreError> {
        let namespace = event.namespace().to_string();
        let probe = event.to_object("", &event.message);
        let Correlation { key, message } = self.correlator().correlate(&probe, event.time);
        let _same_key = self.key_locks[stripe(&key)].lock().await;
        // Read after the key's lock: a recording of the same key that just
        // finished has named its Event.
        let uid = &event.object.uid;
        let (known, looked_up) = {
            let mut c = self.correlator();
            let known = c.recorded.get_mut(&key).cloned();
            (known, !uid.is_empty() && c.looked_up.get_mut(uid).is_some())
        };
        let existing = match known {
            Some(name) => Some(name),
            None if looked_up => None,
            None => {
                let stored = find_stored(objects, &namespace, &event.object.name).await?;
                let found = stored.get(&key).cloned();
                let mut c = self.correlator();
                for (key, name) in stored {
                    c.recorded.put(key, name);
                }
                if !uid.is_empty() {
                    c.looked_up.put(uid.clone(), ());
                }
                found
            }
        };
        if let Some(name) = existing {
            let time = timestamp(event.time);
            let counted = objects
                .count_event(&namespace, &name, &mut |stored: &mut Value| {
                    let count = stored.get("count").and_then(Value::as_i64).unwrap_or(1);
                    stored["count"] = json!(count + 1);
                    let later = stored
                        .get("lastTimestamp")
                        .and_then(Value::as_str)
                        .is_none_or(|last| last <= time.as_str());
                    if later {
                        stored["lastTimestamp"] = json!(time);
                    }
                    stored["message"] = json!(message);
                })
                .await;
            match counted {
                Ok(_) => {
                    self.correlator().recorded.put(key, name);
                    return Ok(());
                }
                // Deleted meanwhile: start a new Event, as upstream does.
                Err(StoreError::NotFound(_)) => {
                    self.correlator().recorded.take(&key);
                }
                Err(e) => return Err(e),
            }
        }
        let mut nanos = event.time.timestamp_nanos_opt().unwrap_or_default();
        for _ in 0..8 {
            // Upstream's naming: `<involved object>.<unix nanoseconds in hex>`.
            let name = format!("{}.{nanos:x}", event.object.name);
            match objects.create_event(event.to_object(&name, &message)).await {
                Ok(_) => {
                    self.correlator().recorded.put(key, name);
                    return Ok(());
                }
                Err(StoreError::AlreadyExists(_)) => nanos += 1,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Backend("no free event name".into()))
    }
}

/// Which of the [`KEY_LOCKS`] serialises `key`.
fn stripe(key: &str) -> usize {
    use std::hash::{DefaultHasher, Hash, Hasher};
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    (h.finish() % KEY_LOCKS as u64) as usize
}

/// The stored Events named after the involved object: for each key they
/// count, the name of the most recent one.
async fn find_stored(
    objects: &dyn EventStore,
    namespace: &str,
    object: &str,
) -> Result<HashMap<String, String>, StoreError> {
    let listing = objects
        .events_named(namespace, &format!("{object}."))
        .await?;
    let mut best: HashMap<String, (String, String)> = HashMap::new();
    for stored in &listing {
        let key = stored_key(stored);
        let last = stored
            .get("lastTimestamp")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let name = stored
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if best.get(&key).is_none_or(|(l, _)| last >= *l) {
            best.insert(key, (last, name));
        }
    }
    Ok(best
        .into_iter()
        .map(|(key, (_, name))| (key, name))
        .collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::registry::objects::Objects;
    use crate::store::memory::MemoryStore;

    fn pod_event(reason: &str, message: &str, time: DateTime<Utc>) -> NewEvent {
        NewEvent {
            object: InvolvedObject {
                kind: "Pod".into(),
                api_version: "v1".into(),
                namespace: "default".into(),
                name: "web".into(),
                uid: "u-1".into(),
                field_path: "spec.containers{c}".into(),
            },
            warning: true,
            reason: reason.into(),
            message: message.into(),
            component: "kubelet".into(),
            host: "n1".into(),
            time,
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    fn in_memory() -> Objects {
        Objects::new(Arc::new(MemoryStore::new()))
    }

    /// A pod's `BackOff` event `secs` into the test, through `recorder`.
    async fn back_off(recorder: &Recorder, objects: &Objects, secs: i64) {
        recorder
            .record(objects, pod_event("BackOff", "Back-off", at(secs)))
            .await;
    }

    async fn events(objects: &Objects) -> Vec<Value> {
        let rt = crate::registry::kinds::EVENTS;
        objects.list(rt).await.expect("list").0
    }

    /// The one Event the store holds, checked to have counted `count`
    /// occurrences from `first` to `last` seconds into the test.
    async fn only_event(objects: &Objects, count: i64, first: i64, last: i64) -> Value {
        let mut all = events(objects).await;
        assert_eq!(all.len(), 1, "{all:#?}");
        let e = all.remove(0);
        assert_eq!(e["count"], count, "{e:#}");
        assert_eq!(e["firstTimestamp"], timestamp(at(first)), "{e:#}");
        assert_eq!(e["lastTimestamp"], timestamp(at(last)), "{e:#}");
        e
    }

    /// Twelve failed probes of the pod, each with its own message, one
    /// every `every` seconds.
    async fn probe_failures(objects: &Objects, every: i64) {
        let recorder = Recorder::new();
        for i in 0..12 {
            let message = format!("probe failed: {i}");
            let event = pod_event("Unhealthy", &message, at(i * every));
            recorder.record(objects, event).await;
        }
    }

    #[tokio::test]
    async fn a_repeat_counts_on_the_same_event() {
        let objects = in_memory();
        let recorder = Recorder::new();
        back_off(&recorder, &objects, 0).await;
        back_off(&recorder, &objects, 10).await;
        back_off(&recorder, &objects, 40).await;
        let e = only_event(&objects, 3, 0, 40).await;
        let nanos = at(0).timestamp_nanos_opt().expect("nanos");
        assert_eq!(e["metadata"]["name"], format!("web.{nanos:x}"));
        assert_eq!(e["involvedObject"]["fieldPath"], "spec.containers{c}");
        assert_eq!(e["source"], json!({"component": "kubelet", "host": "n1"}));
    }

    #[tokio::test]
    async fn anything_that_differs_makes_another_event() {
        let objects = in_memory();
        let recorder = Recorder::new();
        let base = pod_event("BackOff", "Back-off", at(0));
        let mut other_container = base.clone();
        other_container.object.field_path = "spec.containers{d}".into();
        let mut other_pod = base.clone();
        other_pod.object.uid = "u-2".into();
        let mut other_host = base.clone();
        other_host.host = "n2".into();
        let mut normal = base.clone();
        normal.warning = false;
        for e in [&base, &other_container, &other_pod, &other_host, &normal] {
            recorder.record(&objects, e.clone()).await;
        }
        recorder
            .record(&objects, pod_event("Started", "Started", at(1)))
            .await;
        let all = events(&objects).await;
        assert_eq!(all.len(), 6, "{all:#?}");
        assert!(all.iter().all(|e| e["count"] == 1));
    }

    #[tokio::test]
    async fn counting_resumes_from_the_store_after_a_restart() {
        let objects = in_memory();
        back_off(&Recorder::new(), &objects, 0).await;
        // A fresh recorder remembers nothing: the store tells it.
        let restarted = Recorder::new();
        back_off(&restarted, &objects, 5).await;
        only_event(&objects, 2, 0, 5).await;
    }

    #[tokio::test]
    async fn one_store_read_per_object_finds_every_key_it_counts() {
        let objects = in_memory();
        let before = Recorder::new();
        for (reason, t) in [("BackOff", 0), ("Unhealthy", 1)] {
            before
                .record(&objects, pod_event(reason, reason, at(t)))
                .await;
        }
        let restarted = Recorder::new();
        // The first event after the restart reads the pod's stored Events
        // once; the other key is counted on its stored Event too.
        for (reason, t) in [("Unhealthy", 5), ("BackOff", 6)] {
            restarted
                .record(&objects, pod_event(reason, reason, at(t)))
                .await;
        }
        // A key the pod never had gets a new Event without another read:
        // one made behind the recorder's back is not seen (as upstream's
        // recorder, which never reads the store).
        let rt = crate::registry::kinds::EVENTS;
        let mut stray = pod_event("Killing", "Killing", at(7)).to_object("web.stray", "Killing");
        stray["metadata"]["namespace"] = json!("default");
        objects.create(rt, stray).await.expect("stray event");
        restarted
            .record(&objects, pod_event("Killing", "Killing", at(8)))
            .await;
        let all = events(&objects).await;
        let count = |reason: &str| {
            all.iter()
                .filter(|e| e["reason"] == reason)
                .map(|e| e["count"].as_i64().unwrap_or(0))
                .collect::<Vec<_>>()
        };
        assert_eq!(count("BackOff"), [2], "{all:#?}");
        assert_eq!(count("Unhealthy"), [2], "{all:#?}");
        assert_eq!(count("Killing"), [1, 1], "{all:#?}");
    }

    #[tokio::test]
    async fn a_deleted_event_is_created_again() {
        let objects = in_memory();
        let recorder = Recorder::new();
        back_off(&recorder, &objects, 0).await;
        let rt = crate::registry::kinds::EVENTS;
        let name = events(&objects).await[0]["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        objects
            .delete(rt, Some("default"), &name)
            .await
            .expect("delete");
        back_off(&recorder, &objects, 7).await;
        only_event(&objects, 1, 7, 7).await;
    }

    #[tokio::test]
    async fn many_similar_events_are_combined() {
        let objects = in_memory();
        probe_failures(&objects, 1).await;
        let mut all = events(&objects).await;
        all.retain(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(COMBINED_PREFIX))
        });
        assert_eq!(all.len(), 1, "{all:#?}");
        // The 10th, 11th and 12th occurrences went to the combined Event.
        assert_eq!(all[0]["count"], 3);
        assert_eq!(
            all[0]["message"],
            format!("{COMBINED_PREFIX}probe failed: 11")
        );
        assert_eq!(events(&objects).await.len(), 10);
    }

    #[tokio::test]
    async fn similar_events_far_apart_are_not_combined() {
        let objects = in_memory();
        probe_failures(&objects, 700).await;
        let all = events(&objects).await;
        assert_eq!(all.len(), 12);
        assert!(all.iter().all(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| !m.starts_with(COMBINED_PREFIX))
        }));
    }

    #[test]
    fn the_cache_forgets_the_least_recently_used() {
        let mut lru = Lru::new(8);
        for i in 0..8 {
            lru.put(format!("k{i}"), i);
        }
        // k0 is used again, so it outlives k1..k3.
        assert_eq!(lru.get_mut("k0").copied(), Some(0));
        lru.put("k8".into(), 8);
        assert!(lru.get_mut("k0").is_some());
        assert!(lru.get_mut("k1").is_none());
        assert!(lru.get_mut("k8").is_some());
        assert!(lru.entries.len() <= 8);
    }

    #[test]
    fn cluster_scoped_objects_get_events_in_default() {
        let node =
            json!({"kind": "Node", "apiVersion": "v1", "metadata": {"name": "n1", "uid": "u"}});
        let event = NewEvent {
            object: InvolvedObject::of(&node),
            warning: false,
            reason: "NodeNotReady".into(),
            message: "Node n1 status is now: NodeNotReady".into(),
            component: "node-controller".into(),
            host: String::new(),
            time: at(0),
        };
        let obj = event.to_object("n1.1", &event.message);
        assert_eq!(obj["metadata"]["namespace"], "default");
        assert!(obj["involvedObject"].get("namespace").is_none());
        assert!(obj["source"].get("host").is_none());
    }
}
