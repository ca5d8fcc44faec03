//! Keeps the RBAC [`Index`](super::index::Index) following the four RBAC
//! kinds of the store (see [`feed`] for how a feed lists, watches and
//! re-lists).

use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use tracing::warn;

use super::Rbac;
use crate::registry::feed::{self, Follower, decode, decode_all};
use crate::registry::kinds;
use crate::registry::resource_type::ResourceType;
use crate::store::{Event, EventKind, KeyValue, Store};

/// The kinds followed, by slot.
const KINDS: [&ResourceType; 4] = [
    kinds::CLUSTERROLES,
    kinds::ROLES,
    kinds::CLUSTERROLEBINDINGS,
    kinds::ROLEBINDINGS,
];

/// Follows the RBAC kinds into `rbac` until the task is dropped. `ready`
/// is told once every kind has been listed (the API may then authorize).
pub async fn follow(
    store: Arc<dyn Store>,
    rbac: Arc<Rbac>,
    ready: Option<tokio::sync::oneshot::Sender<()>>,
) {
    let prefixes = KINDS.iter().map(|rt| rt.prefix()).collect();
    feed::follow(store, prefixes, "RBAC", RbacFeed(rbac), ready).await;
}

struct RbacFeed(Arc<Rbac>);

impl Follower for RbacFeed {
    fn listed(&mut self, slot: usize, items: &[KeyValue]) {
        let rbac = &self.0;
        match slot {
            0 => {
                let items: Vec<ClusterRole> = decode_all(items);
                rbac.update(|i| i.replace_cluster_roles(&items));
            }
            1 => {
                let items: Vec<Role> = decode_all(items);
                rbac.update(|i| i.replace_roles(&items));
            }
            2 => {
                let items: Vec<ClusterRoleBinding> = decode_all(items);
                rbac.update(|i| i.replace_cluster_bindings(&items));
            }
            _ => {
                let items: Vec<RoleBinding> = decode_all(items);
                rbac.update(|i| i.replace_role_bindings(&items));
            }
        }
    }

    fn changed(&mut self, slot: usize, event: &Event) {
        apply(&self.0, slot, event);
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
