//! Keeping an in-memory index following some kinds of the store, as cluster
//! DNS and the RBAC authorizer do: each kind listed, then watched through
//! [`watch_prefix`]; a watch that restarts (fell behind, store closed)
//! re-lists its kind, which replaces that kind in the index.
//!
//! Each change is applied as it comes, and events that a listing already
//! reflects (revision at or below the listing's) are skipped, so an old
//! event queued behind a listing never undoes a newer state.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use super::watch::watch_prefix;
use crate::store::{Event, KeyValue, Store};

/// An index that follows kinds of the store; each kind is known by its
/// position (`slot`) in the prefixes given to [`follow`].
pub trait Follower: Send {
    /// `items` are all objects of kind `slot` now: replace what the index
    /// holds of that kind.
    fn listed(&mut self, slot: usize, items: &[KeyValue]);
    /// One change of kind `slot`, newer than its last listing.
    fn changed(&mut self, slot: usize, event: &Event);
}

/// What a store watch tells the feed.
enum Input {
    /// The watch (re)started: re-list this kind.
    Relist(usize),
    Changed(usize, Event),
}

/// Follows the kinds under `prefixes` into `follower` until the task is
/// dropped or the store's watches end for good. `ready` is told once every
/// kind has been listed. `index` names the index in logs.
pub async fn follow(
    store: Arc<dyn Store>,
    prefixes: Vec<String>,
    index: &'static str,
    mut follower: impl Follower,
    mut ready: Option<oneshot::Sender<()>>,
) {
    let (tx, mut inputs) = mpsc::unbounded_channel();
    let mut watches = Vec::new();
    for (slot, prefix) in prefixes.iter().enumerate() {
        let tx = tx.clone();
        watches.push(watch_prefix(store.clone(), prefix.clone(), move |event| {
            let input = match event {
                None => Input::Relist(slot),
                Some(e) => Input::Changed(slot, e),
            };
            tx.send(input).is_ok()
        }));
    }
    drop(tx);
    let _watches = AbortOnDrop(watches);
    let mut listed_at = vec![0u64; prefixes.len()];
    let mut listed = vec![false; prefixes.len()];
    while let Some(input) = inputs.recv().await {
        match input {
            Input::Relist(slot) => {
                let prefix = &prefixes[slot];
                let listing = match store.list(prefix).await {
                    Ok(l) => l,
                    Err(error) => {
                        warn!(%error, %prefix, index, "listing failed");
                        continue;
                    }
                };
                listed_at[slot] = listing.revision;
                listed[slot] = true;
                follower.listed(slot, &listing.items);
                debug!(%prefix, index, items = listing.items.len(), "re-listed");
                if listed.iter().all(|l| *l)
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
            Input::Changed(slot, event) => {
                if event.revision > listed_at[slot] {
                    follower.changed(slot, &event);
                }
            }
        }
    }
}

/// A stored object as its `k8s-openapi` type (which insists on
/// `apiVersion` and `kind`: set here in case the stored form lacks them).
pub fn decode<T: k8s_openapi::Resource + serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("apiVersion".into(), T::API_VERSION.into());
        obj.insert("kind".into(), T::KIND.into());
    }
    serde_json::from_value(value)
}

/// Every listed object that decodes as `T` (an undecodable one is left
/// out, as the index cannot use it).
pub fn decode_all<T: k8s_openapi::Resource + serde::de::DeserializeOwned>(
    items: &[KeyValue],
) -> Vec<T> {
    items
        .iter()
        .filter_map(|kv| decode(&kv.value).ok())
        .collect()
}

/// Aborts the watch tasks when dropped.
struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for watch in &self.0 {
            watch.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::registry::kinds;
    use crate::registry::objects::Objects;
    use crate::store::memory::MemoryStore;

    /// What the feed told the follower: `(slot, keys)` per listing, keys
    /// per change.
    #[derive(Default)]
    struct Seen {
        listed: Vec<(usize, Vec<String>)>,
        changed: Vec<(usize, String)>,
    }

    struct Recorder(Arc<Mutex<Seen>>);

    impl Follower for Recorder {
        fn listed(&mut self, slot: usize, items: &[KeyValue]) {
            let keys = items.iter().map(|kv| kv.key.clone()).collect();
            self.0.lock().expect("seen").listed.push((slot, keys));
        }
        fn changed(&mut self, slot: usize, event: &Event) {
            let key = event.key.clone();
            self.0.lock().expect("seen").changed.push((slot, key));
        }
    }

    fn object(name: &str) -> serde_json::Value {
        json!({"metadata": {"name": name, "namespace": "default"}})
    }

    #[tokio::test]
    async fn each_kind_is_listed_then_followed_and_ready_waits_for_all() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let objects = Objects::new(store.clone());
        objects
            .create(kinds::CONFIGMAPS, object("before"))
            .await
            .expect("configmap");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (ready, listed) = oneshot::channel();
        let prefixes = vec![kinds::CONFIGMAPS.prefix(), kinds::SECRETS.prefix()];
        let task = tokio::spawn(follow(
            store.clone(),
            prefixes,
            "test",
            Recorder(seen.clone()),
            Some(ready),
        ));
        tokio::time::timeout(Duration::from_secs(2), listed)
            .await
            .expect("ready in time")
            .expect("ready sent");
        {
            let seen = seen.lock().expect("seen");
            let mut slots: Vec<usize> = seen.listed.iter().map(|(s, _)| *s).collect();
            slots.sort_unstable();
            assert_eq!(slots, [0, 1], "both kinds listed once");
            let configmaps = seen.listed.iter().find(|(s, _)| *s == 0).expect("slot 0");
            assert_eq!(configmaps.1.len(), 1, "the listing holds what was there");
            assert!(seen.changed.is_empty(), "nothing changed since the listing");
        }
        objects
            .create(kinds::SECRETS, object("after"))
            .await
            .expect("secret");
        for _ in 0..200 {
            if !seen.lock().expect("seen").changed.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let changed = seen.lock().expect("seen").changed.clone();
        assert_eq!(changed.len(), 1, "{:?}", changed);
        assert_eq!(changed[0].0, 1, "the Secret is slot 1");
        assert!(changed[0].1.ends_with("default/after"), "{}", changed[0].1);
        task.abort();
    }
}
