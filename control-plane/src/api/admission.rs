//! Admission steps that read other objects (upstream's admission plugins
//! of that kind): DefaultStorageClass, which gives a new claim without a
//! class the cluster's default StorageClass. Both the HTTP API and the
//! control plane's own creates (a StatefulSet's claims) go through it.

use serde_json::Value;

use super::resources;
use crate::store::{Store, StoreError};

/// The annotation marking a StorageClass as the default.
pub const DEFAULT_CLASS: &str = "storageclass.kubernetes.io/is-default-class";
const DEFAULT_CLASS_BETA: &str = "storageclass.beta.kubernetes.io/is-default-class";

fn is_default(class: &Value) -> bool {
    let annotations = class.pointer("/metadata/annotations");
    [DEFAULT_CLASS, DEFAULT_CLASS_BETA]
        .iter()
        .any(|k| annotations.and_then(|a| a.get(*k)).and_then(Value::as_str) == Some("true"))
}

/// Sets `spec.storageClassName` of a new claim that has none (an explicit
/// `""` means "no class" and is kept) to the default class; with several
/// defaults the newest wins, as upstream since 1.26.
pub async fn default_storage_class(store: &dyn Store, claim: &mut Value) -> Result<(), StoreError> {
    let unset = claim
        .pointer("/spec/storageClassName")
        .is_none_or(Value::is_null)
        && claim
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .is_none();
    let Some(rt) = resources::find("storage.k8s.io", "v1", "storageclasses") else {
        return Ok(());
    };
    if !unset || !claim["spec"].is_object() {
        return Ok(());
    }
    let listing = store.list(&rt.prefix()).await?;
    let newest = listing
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter(is_default)
        .max_by(|a, b| {
            let created = |v: &Value| {
                v.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            created(a).cmp(&created(b))
        });
    if let Some(class) = newest.and_then(|c| c.pointer("/metadata/name").cloned()) {
        claim["spec"]["storageClassName"] = class;
    }
    Ok(())
}

/// Runs the admission steps of `kind` on a new object.
pub async fn admit_create(
    store: &dyn Store,
    kind: &str,
    obj: &mut Value,
) -> Result<(), StoreError> {
    if kind == "PersistentVolumeClaim" {
        default_storage_class(store, obj).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::store::memory::MemoryStore;

    async fn class(store: &MemoryStore, name: &str, default: bool, created: &str) {
        let rt = resources::find("storage.k8s.io", "v1", "storageclasses").expect("type");
        let mut obj = json!({"metadata": {"name": name, "creationTimestamp": created},
            "provisioner": "x"});
        if default {
            obj["metadata"]["annotations"] = json!({DEFAULT_CLASS: "true"});
        }
        store
            .create(&rt.key(None, name), serde_json::to_vec(&obj).expect("json"))
            .await
            .expect("create");
    }

    #[tokio::test]
    async fn claims_without_a_class_get_the_newest_default() {
        let store = Arc::new(MemoryStore::new());
        let mut claim = json!({"spec": {"accessModes": ["ReadWriteOnce"]}});
        default_storage_class(store.as_ref(), &mut claim)
            .await
            .expect("admit");
        assert!(
            claim["spec"].get("storageClassName").is_none(),
            "no class yet"
        );
        class(&store, "slow", false, "2024-01-01T00:00:00Z").await;
        class(&store, "old", true, "2024-01-01T00:00:00Z").await;
        class(&store, "new", true, "2024-02-01T00:00:00Z").await;
        admit_create(store.as_ref(), "PersistentVolumeClaim", &mut claim)
            .await
            .expect("admit");
        assert_eq!(claim["spec"]["storageClassName"], "new");
        // An explicit empty class means none, and a named one is kept.
        for given in ["", "slow"] {
            let mut claim = json!({"spec": {"storageClassName": given}});
            default_storage_class(store.as_ref(), &mut claim)
                .await
                .expect("admit");
            assert_eq!(claim["spec"]["storageClassName"], given);
        }
    }
}
