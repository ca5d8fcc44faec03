//! Keeps the [`DnsIndex`] following the store: a list, then the watch of
//! Services and of EndpointSlices, through the same
//! [`watch_prefix`](crate::registry::watch::watch_prefix) the node feeds
//! and the controllers use. A watch that restarts (fell behind, store
//! closed) re-lists and replaces that kind in the index.
//!
//! Each change is applied as it comes (one object decoded, the index
//! locked for a few microseconds), so a new Service resolves as soon as
//! the store has it, well within the 1 s the cluster expects.
//!
//! Events that a re-list already reflects (revision at or below the
//! listing's) are skipped, so an old event queued behind the listing
//! never undoes a newer state.

use std::sync::{Arc, PoisonError};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::server::SharedIndex;
use crate::registry::kinds;
use crate::registry::watch::watch_prefix;
use crate::store::{Event, EventKind, Store};

/// The two kinds the index follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Service,
    Slice,
}

impl Kind {
    fn prefix(self) -> String {
        match self {
            Self::Service => kinds::SERVICES.prefix(),
            Self::Slice => kinds::ENDPOINTSLICES.prefix(),
        }
    }

    fn slot(self) -> usize {
        usize::from(self == Self::Slice)
    }
}

/// What a store watch tells the feed.
enum Input {
    /// The watch (re)started: re-list this kind.
    Relist(Kind),
    Changed(Kind, Event),
}

/// `namespace/name` of a key under `prefix`.
fn split_key<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

/// Follows Services and EndpointSlices into `index` until the task is
/// dropped or the store's watches end for good.
pub async fn follow(store: Arc<dyn Store>, index: SharedIndex) {
    let (tx, mut inputs) = mpsc::unbounded_channel();
    let mut watches = Vec::new();
    for kind in [Kind::Service, Kind::Slice] {
        let tx = tx.clone();
        watches.push(watch_prefix(store.clone(), kind.prefix(), move |event| {
            let input = match event {
                None => Input::Relist(kind),
                Some(e) => Input::Changed(kind, e),
            };
            tx.send(input).is_ok()
        }));
    }
    drop(tx);
    // Aborts the watches when this task is dropped.
    let _guard = AbortOnDrop(watches);
    let mut listed_at = [0u64; 2];
    while let Some(input) = inputs.recv().await {
        match input {
            Input::Relist(kind) => {
                let listing = match store.list(&kind.prefix()).await {
                    Ok(l) => l,
                    Err(error) => {
                        warn!(%error, ?kind, "listing for DNS failed");
                        continue;
                    }
                };
                listed_at[kind.slot()] = listing.revision;
                let mut index = index.write().unwrap_or_else(PoisonError::into_inner);
                match kind {
                    Kind::Service => {
                        let services: Vec<Service> = listing
                            .items
                            .iter()
                            .filter_map(|kv| decode(&kv.value).ok())
                            .collect();
                        index.replace_services(&services);
                    }
                    Kind::Slice => {
                        let slices: Vec<EndpointSlice> = listing
                            .items
                            .iter()
                            .filter_map(|kv| decode(&kv.value).ok())
                            .collect();
                        index.replace_slices(&slices);
                    }
                }
                debug!(?kind, items = listing.items.len(), "DNS index re-listed");
            }
            Input::Changed(kind, event) => {
                if event.revision <= listed_at[kind.slot()] {
                    continue;
                }
                apply(&index, kind, &event);
            }
        }
    }
}

/// Applies one store event to the index.
fn apply(index: &SharedIndex, kind: Kind, event: &Event) {
    let Some((namespace, name)) = split_key(&kind.prefix(), &event.key) else {
        return;
    };
    let mut index = index.write().unwrap_or_else(PoisonError::into_inner);
    match (kind, event.kind == EventKind::Deleted) {
        (Kind::Service, true) => index.remove_service(namespace, name),
        (Kind::Slice, true) => index.remove_slice(namespace, name),
        (Kind::Service, false) => match decode::<Service>(&event.value) {
            Ok(service) => index.upsert_service(&service),
            Err(error) => warn!(%error, key = %event.key, "undecodable Service"),
        },
        (Kind::Slice, false) => match decode::<EndpointSlice>(&event.value) {
            Ok(slice) => index.upsert_slice(&slice),
            Err(error) => warn!(%error, key = %event.key, "undecodable EndpointSlice"),
        },
    }
}

/// A stored object as its `k8s-openapi` type (which insists on
/// `apiVersion` and `kind`: set here in case the stored form lacks them).
fn decode<T: k8s_openapi::Resource + serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, serde_json::Error> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(obj) = value.as_object_mut() {
        obj.insert("apiVersion".into(), T::API_VERSION.into());
        obj.insert("kind".into(), T::KIND.into());
    }
    serde_json::from_value(value)
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
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::dns::index::DnsIndex;
    use crate::registry::objects::Objects;
    use crate::store::memory::MemoryStore;

    async fn until(index: &SharedIndex, what: &str, check: impl Fn(&DnsIndex) -> bool) {
        for _ in 0..200 {
            if check(&index.read().unwrap_or_else(PoisonError::into_inner)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("{what}: not within 1 s");
    }

    #[tokio::test]
    async fn the_index_follows_services_and_slices() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let client = Objects::new(store.clone());
        client
            .create(
                kinds::SERVICES,
                json!({"metadata": {"name": "old", "namespace": "default"},
                       "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}}),
            )
            .await
            .expect("old");
        let index: SharedIndex = Arc::default();
        let task = tokio::spawn(follow(store.clone(), index.clone()));
        until(&index, "listed", |i| i.service("default", "old").is_some()).await;
        client
            .create(
                kinds::SERVICES,
                json!({"metadata": {"name": "db", "namespace": "default"},
                       "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}}),
            )
            .await
            .expect("db");
        client
            .create(
                kinds::ENDPOINTSLICES,
                json!({"metadata": {"name": "db-1", "namespace": "default",
                                    "labels": {"kubernetes.io/service-name": "db"}},
                       "addressType": "IPv4",
                       "endpoints": [{"addresses": ["10.244.0.9"], "conditions": {"ready": true}}]}),
            )
            .await
            .expect("slice");
        until(&index, "slice", |i| {
            i.entry("default", "db").is_some_and(|e| e.has_endpoints())
        })
        .await;
        client
            .delete(kinds::ENDPOINTSLICES, Some("default"), "db-1")
            .await
            .expect("delete slice");
        client
            .delete(kinds::SERVICES, Some("default"), "old")
            .await
            .expect("delete");
        until(&index, "deletions", |i| {
            i.service("default", "old").is_none()
                && !i.entry("default", "db").is_some_and(|e| e.has_endpoints())
        })
        .await;
        task.abort();
    }
}
