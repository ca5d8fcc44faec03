//! Node objects as last stored, kept from a watch (an informer, in
//! upstream's terms): the registry compares each heartbeat with the stored
//! status and the node-lifecycle actor looks at every node twice a second,
//! and with a thousand nodes reading the store for either would cost more
//! than everything else the control plane does while idle. Now that
//! heartbeats rarely write, the watch rarely has anything to decode.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};

use serde_json::Value;

use crate::registry::watch::{object_of, watch_prefix};
use crate::store::{EventKind, Store};

const PREFIX: &str = "/registry/core/nodes/";

/// See the module documentation. Shared as `Arc<NodeView>`.
#[derive(Debug)]
pub struct NodeView {
    nodes: Mutex<HashMap<String, (u64, Arc<Value>)>>,
    /// A full listing has been applied.
    synced: AtomicBool,
    /// Counts applied changes, so followers (the pod network's watchers)
    /// wake on a change instead of polling.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for NodeView {
    fn default() -> Self {
        Self {
            nodes: Mutex::default(),
            synced: AtomicBool::default(),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl NodeView {
    /// A view kept up to date from `store` for as long as it is shared.
    pub fn start(store: Arc<dyn Store>) -> Arc<Self> {
        let view = Arc::new(Self::default());
        let weak = Arc::downgrade(&view);
        let lister = store.clone();
        watch_prefix(store, PREFIX.into(), move |event| {
            let Some(view) = weak.upgrade() else {
                return false;
            };
            match event {
                // Re-listed on its own task; revisions keep the newer of a
                // listed and a watched version.
                None => {
                    let store = lister.clone();
                    let weak = Weak::clone(&weak);
                    tokio::spawn(async move {
                        if let Ok(listing) = store.list(PREFIX).await
                            && let Some(view) = weak.upgrade()
                        {
                            view.reset(
                                listing
                                    .items
                                    .iter()
                                    .filter_map(|kv| {
                                        let node: Value = serde_json::from_slice(&kv.value).ok()?;
                                        Some((name_of(&kv.key), kv.revision, node))
                                    })
                                    .collect(),
                                listing.revision,
                            );
                        }
                    });
                }
                Some(e) => {
                    let node = (e.kind != EventKind::Deleted)
                        .then(|| object_of(&e))
                        .flatten();
                    view.apply(&name_of(&e.key), e.revision, node);
                }
            }
            true
        });
        view
    }

    /// The node `name` as last stored, once the view has it.
    pub fn get(&self, name: &str) -> Option<Arc<Value>> {
        self.lock().get(name).map(|(_, n)| n.clone())
    }

    /// Every node, or `None` until the first listing arrived.
    pub fn all(&self) -> Option<Vec<Arc<Value>>> {
        if !self.synced.load(Ordering::Acquire) {
            return None;
        }
        Some(self.lock().values().map(|(_, n)| n.clone()).collect())
    }

    /// A receiver that sees a new value after every change the view
    /// applies (and after each full listing).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// A change of node `name` at `revision` (`None`: deleted); older
    /// than what the view holds, it is ignored.
    pub fn apply(&self, name: &str, revision: u64, node: Option<Value>) {
        {
            let mut nodes = self.lock();
            if nodes.get(name).is_some_and(|(r, _)| *r >= revision) {
                return;
            }
            match node {
                Some(mut node) => {
                    node["metadata"]["resourceVersion"] = Value::from(revision.to_string());
                    nodes.insert(name.to_string(), (revision, Arc::new(node)));
                }
                None => {
                    nodes.remove(name);
                }
            }
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// A full listing taken at `revision`: nodes it lacks are gone unless
    /// a newer watch event brought them.
    pub fn reset(&self, listed: Vec<(String, u64, Value)>, revision: u64) {
        {
            let mut nodes = self.lock();
            let names: std::collections::HashSet<&str> =
                listed.iter().map(|(n, ..)| n.as_str()).collect();
            nodes.retain(|name, (r, _)| names.contains(name.as_str()) || *r > revision);
        }
        for (name, rev, node) in listed {
            self.apply(&name, rev, Some(node));
        }
        self.synced.store(true, Ordering::Release);
        self.changes.send_modify(|n| *n += 1);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u64, Arc<Value>)>> {
        // Entries are replaced whole: a panic elsewhere leaves none half made.
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn name_of(key: &str) -> String {
    key.strip_prefix(PREFIX).unwrap_or(key).to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::objects::Objects;
    use crate::store::memory::MemoryStore;

    fn node(name: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name},
               "status": {"conditions": [{"type": "Ready", "status": ready}]}})
    }

    #[test]
    fn newer_versions_win_and_listings_drop_the_gone() {
        let view = NodeView::default();
        assert!(view.all().is_none());
        view.apply("a", 5, Some(node("a", "True")));
        view.apply("a", 4, Some(node("a", "Unknown")));
        let a = view.get("a").expect("a");
        assert_eq!(a["status"]["conditions"][0]["status"], "True");
        assert_eq!(a["metadata"]["resourceVersion"], "5");
        view.apply("b", 6, Some(node("b", "True")));
        view.apply("c", 9, Some(node("c", "True")));
        // Listed at 8: b is gone, c came after the listing.
        view.reset(vec![("a".into(), 5, node("a", "True"))], 8);
        let mut names: Vec<String> = view
            .all()
            .expect("synced")
            .iter()
            .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
            .collect();
        names.sort();
        assert_eq!(names, ["a", "c"]);
        view.apply("a", 10, None);
        assert!(view.get("a").is_none());
    }

    #[tokio::test]
    async fn follows_the_store() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let objects = Objects::new(store.clone());
        let rt = crate::registry::kinds::NODES;
        objects.create(rt, node("n1", "True")).await.expect("n1");
        let view = NodeView::start(store);
        objects.create(rt, node("n2", "True")).await.expect("n2");
        objects
            .update(rt, None, "n1", |n| {
                n["status"]["conditions"][0]["status"] = json!("Unknown");
                true
            })
            .await
            .expect("n1 changed");
        for _ in 0..200 {
            let ready = |name| {
                view.get(name)
                    .map(|n| n["status"]["conditions"][0]["status"].clone())
            };
            if view.all().is_some_and(|a| a.len() == 2)
                && ready("n1") == Some(json!("Unknown"))
                && ready("n2") == Some(json!("True"))
            {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("view did not follow: {:?}", view.all());
    }
}
