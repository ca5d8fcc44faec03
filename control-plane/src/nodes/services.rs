//! Services and EndpointSlices as each node needs them
//! (`NodeRegistry.WatchServices`): its service proxy programs rules from
//! them and its kubelet sets pods' service environment variables, as
//! upstream's kube-proxy and kubelet each watch both kinds.
//!
//! One feed per node stream: it follows both store prefixes, keeps the
//! objects as stored (bytes, not decoded), and sends only what changed
//! since its last update, so a burst of writes costs one update.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use skiff_proto::node::v1 as pb;
use tokio::sync::mpsc;
use tracing::debug;

use crate::registry::kinds;
use crate::registry::watch::watch_prefix;
use crate::store::{Event, EventKind, Store};

/// The two kinds a feed follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Service,
    Slice,
}

/// What a store watch tells the feed.
enum Input {
    /// The watch (re)started: re-list this kind.
    Relist(Kind),
    Changed(Kind, Event),
}

/// Objects by `(kind, namespace/name)`, with the revision of their last
/// write.
type Objects = HashMap<(Kind, String), (u64, Bytes)>;

fn prefix(kind: Kind) -> String {
    match kind {
        Kind::Service => kinds::SERVICES.prefix(),
        Kind::Slice => kinds::ENDPOINTSLICES.prefix(),
    }
}

fn name_of(kind: Kind, key: &str) -> String {
    let prefix = prefix(kind);
    key.strip_prefix(&prefix).unwrap_or(key).to_string()
}

/// Sends every Service and EndpointSlice, then their changes, to `out`
/// until it closes.
pub async fn follow(
    store: Arc<dyn Store>,
    out: mpsc::Sender<Result<pb::ServiceUpdate, tonic::Status>>,
) {
    let (tx, mut inputs) = mpsc::unbounded_channel();
    let mut watches = Vec::new();
    for kind in [Kind::Service, Kind::Slice] {
        let tx = tx.clone();
        watches.push(watch_prefix(store.clone(), prefix(kind), move |event| {
            let input = match event {
                None => Input::Relist(kind),
                Some(e) => Input::Changed(kind, e),
            };
            tx.send(input).is_ok()
        }));
    }
    drop(tx);
    let mut feed = Feed::default();
    let mut listed = [false, false];
    loop {
        let input = tokio::select! {
            input = inputs.recv() => input,
            () = out.closed() => None,
        };
        let Some(input) = input else { break };
        feed.take(&store, input, &mut listed).await;
        // A burst becomes one update.
        while let Ok(input) = inputs.try_recv() {
            feed.take(&store, input, &mut listed).await;
        }
        if listed != [true, true] {
            continue;
        }
        if let Some(update) = feed.update()
            && out.send(Ok(update)).await.is_err()
        {
            break;
        }
    }
    for watch in watches {
        watch.abort();
    }
}

/// The objects a feed knows and what it last sent.
#[derive(Default)]
struct Feed {
    now: Objects,
    sent: Objects,
    /// An update was sent: later ones carry only changes (the first
    /// resets the node's copy).
    started: bool,
}

impl Feed {
    async fn take(&mut self, store: &Arc<dyn Store>, input: Input, listed: &mut [bool; 2]) {
        match input {
            Input::Changed(kind, e) => {
                let key = (kind, name_of(kind, &e.key));
                if self.now.get(&key).is_some_and(|(r, _)| *r >= e.revision) {
                    return;
                }
                if e.kind == EventKind::Deleted {
                    self.now.remove(&key);
                } else {
                    self.now.insert(key, (e.revision, e.value));
                }
            }
            Input::Relist(kind) => {
                let Ok(listing) = store.list(&prefix(kind)).await else {
                    return;
                };
                // Listed at `revision`: what it lacks is gone unless a newer
                // event brought it.
                let names: std::collections::HashSet<String> = listing
                    .items
                    .iter()
                    .map(|kv| name_of(kind, &kv.key))
                    .collect();
                self.now.retain(|(k, name), (r, _)| {
                    *k != kind || names.contains(name) || *r > listing.revision
                });
                for kv in listing.items {
                    let key = (kind, name_of(kind, &kv.key));
                    if self.now.get(&key).is_none_or(|(r, _)| *r < kv.revision) {
                        self.now.insert(key, (kv.revision, Bytes::from(kv.value)));
                    }
                }
                listed[usize::from(kind == Kind::Slice)] = true;
            }
        }
    }

    /// What changed since the last update, or `None` if nothing did.
    fn update(&mut self) -> Option<pb::ServiceUpdate> {
        let mut update = pb::ServiceUpdate {
            reset: !self.started,
            ..Default::default()
        };
        for (key, (revision, value)) in &self.now {
            if self.sent.get(key).is_some_and(|(r, _)| r == revision) {
                continue;
            }
            match key.0 {
                Kind::Service => update.services.push(value.to_vec()),
                Kind::Slice => update.endpoint_slices.push(value.to_vec()),
            }
        }
        for key in self.sent.keys().filter(|k| !self.now.contains_key(k)) {
            match key.0 {
                Kind::Service => update.deleted_services.push(key.1.clone()),
                Kind::Slice => update.deleted_endpoint_slices.push(key.1.clone()),
            }
        }
        let empty = update.services.is_empty()
            && update.endpoint_slices.is_empty()
            && update.deleted_services.is_empty()
            && update.deleted_endpoint_slices.is_empty();
        if empty && self.started {
            return None;
        }
        self.started = true;
        self.sent = self.now.clone();
        debug!(
            services = update.services.len(),
            slices = update.endpoint_slices.len(),
            "services update"
        );
        Some(update)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;
    use crate::registry::objects::Objects as Client;
    use crate::store::memory::MemoryStore;

    async fn next(
        rx: &mut mpsc::Receiver<Result<pb::ServiceUpdate, tonic::Status>>,
    ) -> pb::ServiceUpdate {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("an update in time")
            .expect("open")
            .expect("ok")
    }

    fn names(objects: &[Vec<u8>]) -> Vec<String> {
        let mut names: Vec<String> = objects
            .iter()
            .filter_map(|b| serde_json::from_slice::<Value>(b).ok())
            .map(|o| {
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect();
        names.sort();
        names
    }

    #[tokio::test]
    async fn a_node_gets_everything_then_changes_only() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let client = Client::new(store.clone());
        let svc = |name: &str| {
            json!({"metadata": {"name": name, "namespace": "default"},
                   "spec": {"ports": [{"port": 80}], "selector": {"app": name}}})
        };
        client.create(kinds::SERVICES, svc("a")).await.expect("a");
        let (tx, mut rx) = mpsc::channel(8);
        let task = tokio::spawn(follow(store.clone(), tx));
        let first = next(&mut rx).await;
        assert!(first.reset);
        assert_eq!(names(&first.services), ["a"]);
        client.create(kinds::SERVICES, svc("b")).await.expect("b");
        let second = next(&mut rx).await;
        assert!(!second.reset);
        assert_eq!(names(&second.services), ["b"]);
        let slice = json!({"metadata": {"name": "b-x", "namespace": "default",
                           "labels": {"kubernetes.io/service-name": "b"}},
                           "addressType": "IPv4", "endpoints": []});
        client
            .create(kinds::ENDPOINTSLICES, slice)
            .await
            .expect("slice");
        let third = next(&mut rx).await;
        assert!(third.services.is_empty());
        assert_eq!(names(&third.endpoint_slices), ["b-x"]);
        client
            .delete(kinds::SERVICES, Some("default"), "a")
            .await
            .expect("delete a");
        let fourth = next(&mut rx).await;
        assert_eq!(fourth.deleted_services, ["default/a"]);
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the feed stops when its node goes away")
            .expect("join");
    }
}
