//! The objects a ServiceAccount token names, kept in memory so that
//! checking a token reads no store, as upstream's authenticator checks
//! tokens through informer caches. ServiceAccounts, Pods and Secrets are
//! followed through the store's list/watch [`feed`]; each is known by
//! namespace and name with its uid and `deletionTimestamp`.
//!
//! As upstream's token getter, the index answers first and the store is
//! asked only when the index cannot vouch for the object (missing, another
//! uid, deleted too long ago): a pod made a moment ago is then seen at
//! once, and only a token that is refused costs a store read. A deletion
//! refuses tokens once the index has seen it (as upstream's caches, a
//! watch event later).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde::Deserialize;
use tracing::warn;

use crate::registry::feed::{self, Follower};
use crate::registry::kinds;
use crate::registry::resource_type::ResourceType;
use crate::store::{Event, EventKind, KeyValue, Store};

/// The kinds followed, by slot.
const KINDS: [&ResourceType; 3] = [kinds::SERVICEACCOUNTS, kinds::PODS, kinds::SECRETS];

/// What a token check needs of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its uid.
    pub uid: String,
    /// Its `deletionTimestamp` (Unix seconds), if it is being deleted.
    pub deleted_at: Option<i64>,
}

/// The stored form, as far as an [`Entry`] needs it.
#[derive(Deserialize)]
struct Stored {
    #[serde(default)]
    metadata: StoredMeta,
}

#[derive(Deserialize, Default)]
struct StoredMeta {
    #[serde(default)]
    uid: String,
    #[serde(default, rename = "deletionTimestamp")]
    deletion_timestamp: Option<String>,
}

impl Entry {
    /// The entry of a stored object (JSON bytes).
    fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let stored: Stored = serde_json::from_slice(bytes)?;
        Ok(Self::new(
            stored.metadata.uid,
            stored.metadata.deletion_timestamp.as_deref(),
        ))
    }

    /// The entry of an object with `uid` and `deletionTimestamp` (RFC 3339).
    pub fn new(uid: String, deletion_timestamp: Option<&str>) -> Self {
        let deleted_at = deletion_timestamp
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp());
        Self { uid, deleted_at }
    }
}

/// ServiceAccounts, Pods and Secrets by kind, then `namespace/name` (the
/// part of the store key after the kind's prefix).
#[derive(Debug, Default)]
pub struct BoundObjects {
    kinds: [RwLock<HashMap<String, Entry>>; 3],
}

impl BoundObjects {
    /// The slot of `rt`, if it is followed.
    fn slot(rt: &ResourceType) -> Option<usize> {
        KINDS.iter().position(|k| k.kind == rt.kind)
    }

    /// What the index holds of `namespace/name` of kind `rt`.
    pub fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<Entry> {
        let slot = Self::slot(rt)?;
        let objects = self.kinds[slot].read().unwrap_or_else(|p| p.into_inner());
        objects.get(&format!("{namespace}/{name}")).cloned()
    }

    fn replace(&self, slot: usize, items: &[KeyValue]) {
        let prefix = KINDS[slot].prefix();
        let fresh: HashMap<String, Entry> = items
            .iter()
            .filter_map(|kv| {
                let key = kv.key.strip_prefix(&prefix)?;
                Some((key.to_string(), Entry::decode(&kv.value).ok()?))
            })
            .collect();
        *self.kinds[slot].write().unwrap_or_else(|p| p.into_inner()) = fresh;
    }

    fn apply(&self, slot: usize, event: &Event) {
        let Some(key) = event.key.strip_prefix(&KINDS[slot].prefix()) else {
            return;
        };
        let mut objects = self.kinds[slot].write().unwrap_or_else(|p| p.into_inner());
        if event.kind == EventKind::Deleted {
            objects.remove(key);
            return;
        }
        match Entry::decode(&event.value) {
            Ok(entry) => {
                objects.insert(key.to_string(), entry);
            }
            Err(error) => {
                // Left out: the store is asked for it instead.
                objects.remove(key);
                warn!(%error, key = %event.key, "undecodable object for token checks");
            }
        }
    }
}

/// Follows the kinds into `index` until the task is dropped.
pub async fn follow(store: Arc<dyn Store>, index: Arc<BoundObjects>) {
    let prefixes = KINDS.iter().map(|rt| rt.prefix()).collect();
    feed::follow(
        store,
        prefixes,
        "ServiceAccount tokens",
        BoundFeed(index),
        None,
    )
    .await;
}

struct BoundFeed(Arc<BoundObjects>);

impl Follower for BoundFeed {
    fn listed(&mut self, slot: usize, items: &[KeyValue]) {
        self.0.replace(slot, items);
    }

    fn changed(&mut self, slot: usize, event: &Event) {
        self.0.apply(slot, event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::registry::objects::Objects;

    async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
        for _ in 0..200 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what} never happened");
    }

    #[tokio::test]
    async fn follows_creates_deletion_timestamps_deletes_and_recreates() {
        let objects = Objects::in_memory();
        let before = objects
            .create(
                kinds::SERVICEACCOUNTS,
                json!({"metadata": {"name": "robot", "namespace": "lab"}}),
            )
            .await
            .expect("sa");
        let index = Arc::new(BoundObjects::default());
        let task = tokio::spawn(follow(objects.store().clone(), index.clone()));
        let uid = crate::meta::uid(&before).to_string();
        eventually("the listing", || {
            index
                .get(kinds::SERVICEACCOUNTS, "lab", "robot")
                .map(|e| e.uid)
                == Some(uid.clone())
        })
        .await;
        assert_eq!(index.get(kinds::SERVICEACCOUNTS, "other", "robot"), None);
        assert_eq!(index.get(kinds::NODES, "lab", "robot"), None);

        let pod = objects
            .create(
                kinds::PODS,
                json!({"metadata": {"name": "p", "namespace": "lab"},
                    "spec": {"nodeName": "n1",
                        "containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .await
            .expect("pod");
        let pod_uid = crate::meta::uid(&pod).to_string();
        eventually("the pod", || {
            index.get(kinds::PODS, "lab", "p").map(|e| e.uid) == Some(pod_uid.clone())
        })
        .await;
        // A bound pod is terminating first, then gone.
        objects.delete_pod("lab", "p").await.expect("terminating");
        eventually("the deletionTimestamp", || {
            index
                .get(kinds::PODS, "lab", "p")
                .is_some_and(|e| e.deleted_at.is_some())
        })
        .await;

        objects
            .delete(kinds::SERVICEACCOUNTS, Some("lab"), "robot")
            .await
            .expect("delete");
        eventually("the deletion", || {
            index.get(kinds::SERVICEACCOUNTS, "lab", "robot").is_none()
        })
        .await;
        let again = objects
            .create(
                kinds::SERVICEACCOUNTS,
                json!({"metadata": {"name": "robot", "namespace": "lab"}}),
            )
            .await
            .expect("sa again");
        let new_uid = crate::meta::uid(&again).to_string();
        assert_ne!(new_uid, uid);
        eventually("the new uid", || {
            index
                .get(kinds::SERVICEACCOUNTS, "lab", "robot")
                .map(|e| e.uid)
                == Some(new_uid.clone())
        })
        .await;
        task.abort();
    }

    #[test]
    fn a_relisting_replaces_the_kind_and_only_that_kind() {
        let index = BoundObjects::default();
        let kv = |rt: &ResourceType, key: &str, uid: &str| KeyValue {
            key: format!("{}{key}", rt.prefix()),
            value: serde_json::to_vec(&json!({"metadata": {"uid": uid}})).expect("json"),
            revision: 1,
        };
        index.replace(0, &[kv(kinds::SERVICEACCOUNTS, "lab/a", "u1")]);
        index.replace(1, &[kv(kinds::PODS, "lab/p", "u2")]);
        index.replace(0, &[kv(kinds::SERVICEACCOUNTS, "lab/b", "u3")]);
        assert_eq!(index.get(kinds::SERVICEACCOUNTS, "lab", "a"), None);
        assert_eq!(
            index.get(kinds::SERVICEACCOUNTS, "lab", "b").map(|e| e.uid),
            Some("u3".to_string())
        );
        assert_eq!(
            index.get(kinds::PODS, "lab", "p").map(|e| e.uid),
            Some("u2".to_string())
        );
    }

    #[test]
    fn an_undecodable_change_leaves_the_object_to_the_store() {
        let index = BoundObjects::default();
        let key = format!("{}lab/a", kinds::SECRETS.prefix());
        let put = |value: &[u8]| Event {
            kind: EventKind::Modified,
            key: key.clone(),
            value: bytes::Bytes::copy_from_slice(value),
            revision: 2,
        };
        index.apply(2, &put(br#"{"metadata": {"uid": "u1"}}"#));
        assert!(index.get(kinds::SECRETS, "lab", "a").is_some());
        index.apply(2, &put(b"not json"));
        assert_eq!(index.get(kinds::SECRETS, "lab", "a"), None);
    }
}
