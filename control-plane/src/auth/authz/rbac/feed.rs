//! Keeps the RBAC [`Index`](super::index::Index) following the store: a
//! list, then the watch, of each of the four RBAC kinds, as the DNS feed
//! follows Services. A watch that restarts re-lists its kind and replaces
//! it in the index; events the listing already reflects are skipped.

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::Rbac;
use crate::registry::kinds;
use crate::registry::resource_type::ResourceType;
use crate::registry::watch::watch_prefix;
use crate::store::{Event, EventKind, Store};

/// The kinds followed, by slot.
const KINDS: [&ResourceType; 4] = [
    kinds::CLUSTERROLES,
    kinds::ROLES,
    kinds::CLUSTERROLEBINDINGS,
    kinds::ROLEBINDINGS,
];

enum Input {
    Relist(usize),
    Changed(usize, Event),
}

/// Follows the RBAC kinds into `rbac` until the task is dropped. `ready`
/// is told once every kind has been listed (the API may then authorize).
pub async fn follow(
    store: Arc<dyn Store>,
    rbac: Arc<Rbac>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let (tx, mut inputs) = mpsc::unbounded_channel();
    let mut watches = Vec::new();
    for (slot, rt) in KINDS.iter().enumerate() {
        let tx = tx.clone();
        watches.push(watch_prefix(store.clone(), rt.prefix(), move |event| {
            let input = match event {
                None => Input::Relist(slot),
                Some(e) => Input::Changed(slot, e),
            };
            tx.send(input).is_ok()
        }));
    }
    drop(tx);
    let _guard = AbortOnDrop(watches);
    let mut listed_at = [0u64; 4];
    let mut listed = [false; 4];
    let mut ready = ready;
    while let Some(input) = inputs.recv().await {
        match input {
            Input::Relist(slot) => {
                let rt = KINDS[slot];
                let listing = match store.list(&rt.prefix()).await {
                    Ok(l) => l,
                    Err(error) => {
                        warn!(%error, kind = rt.kind, "listing for RBAC failed");
                        continue;
                    }
                };
                listed_at[slot] = listing.revision;
                let values = listing.items.iter().map(|kv| kv.value.as_slice());
                match slot {
                    0 => {
                        let items: Vec<ClusterRole> =
                            values.filter_map(|v| decode(v).ok()).collect();
                        rbac.update(|i| i.replace_cluster_roles(&items));
                    }
                    1 => {
                        let items: Vec<Role> = values.filter_map(|v| decode(v).ok()).collect();
                        rbac.update(|i| i.replace_roles(&items));
                    }
                    2 => {
                        let items: Vec<ClusterRoleBinding> =
                            values.filter_map(|v| decode(v).ok()).collect();
                        rbac.update(|i| i.replace_cluster_bindings(&items));
                    }
                    _ => {
                        let items: Vec<RoleBinding> =
                            values.filter_map(|v| decode(v).ok()).collect();
                        rbac.update(|i| i.replace_role_bindings(&items));
                    }
                }
                listed[slot] = true;
                debug!(
                    kind = rt.kind,
                    items = listing.items.len(),
                    "RBAC index re-listed"
                );
                if listed.iter().all(|l| *l)
                    && let Some(ready) = ready.take()
                {
                    let _ = ready.send(());
                }
            }
            Input::Changed(slot, event) => {
                if event.revision > listed_at[slot] {
                    apply(&rbac, slot, &event);
                }
            }
        }
    }
}

/// Applies one store event to the index.
fn apply(rbac: &Rbac, slot: usize, event: &Event) {
    let rt = KINDS[slot];
    let Some(rest) = event.key.strip_prefix(&rt.prefix()) else {
        return;
    };
    let (namespace, name) = match rest.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, rest),
    };
    if event.kind == EventKind::Deleted {
        rbac.update(|i| match slot {
            0 => i.remove_cluster_role(name),
            1 => i.remove_role(namespace.unwrap_or_default(), name),
            _ => i.remove_binding(namespace, name),
        });
        return;
    }
    let bytes: &[u8] = &event.value;
    let result = match slot {
        0 => decode::<ClusterRole>(bytes).map(|r| rbac.update(|i| i.upsert_cluster_role(&r))),
        1 => decode::<Role>(bytes).map(|r| rbac.update(|i| i.upsert_role(&r))),
        2 => decode::<ClusterRoleBinding>(bytes)
            .map(|b| rbac.update(|i| i.upsert_cluster_binding(&b))),
        _ => decode::<RoleBinding>(bytes).map(|b| rbac.update(|i| i.upsert_role_binding(&b))),
    };
    if let Err(error) = result {
        warn!(%error, key = %event.key, "undecodable RBAC object");
    }
}

/// A stored object as its `k8s-openapi` type (which insists on
/// `apiVersion` and `kind`).
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

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.iter().for_each(tokio::task::JoinHandle::abort);
    }
}
