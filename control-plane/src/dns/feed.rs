//! Keeps the [`DnsIndex`] following Services and EndpointSlices in the
//! store (see [`feed`] for how a feed lists, watches and re-lists).
//!
//! Each change is applied as it comes (one object decoded, the index
//! locked for a few microseconds), so a new Service resolves as soon as
//! the store has it, well within the 1 s the cluster expects.

use std::sync::{Arc, PoisonError};

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tracing::warn;

use super::server::SharedIndex;
use crate::registry::feed::{self, Follower, decode, decode_all};
use crate::registry::kinds;
use crate::store::{Event, EventKind, KeyValue, Store};

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
}

/// `namespace/name` of a key under `prefix`.
fn split_key<'a>(prefix: &str, key: &'a str) -> Option<(&'a str, &'a str)> {
    key.strip_prefix(prefix)?.split_once('/')
}

/// Follows Services and EndpointSlices into `index` until the task is
/// dropped or the store's watches end for good.
pub async fn follow(store: Arc<dyn Store>, index: SharedIndex) {
    let prefixes = KINDS.iter().map(|k| k.prefix()).collect();
    feed::follow(store, prefixes, "DNS", DnsFeed(index), None).await;
}

/// The kinds, by slot.
const KINDS: [Kind; 2] = [Kind::Service, Kind::Slice];

struct DnsFeed(SharedIndex);

impl Follower for DnsFeed {
    fn listed(&mut self, slot: usize, items: &[KeyValue]) {
        let mut index = self.0.write().unwrap_or_else(PoisonError::into_inner);
        match KINDS[slot] {
            Kind::Service => index.replace_services(&decode_all::<Service>(items)),
            Kind::Slice => index.replace_slices(&decode_all::<EndpointSlice>(items)),
        }
    }

    fn changed(&mut self, slot: usize, event: &Event) {
        apply(&self.0, KINDS[slot], event);
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
