//! Admission steps that read other objects (upstream's admission plugins
//! of that kind): DefaultStorageClass, which gives a new claim without a
//! class the cluster's default StorageClass. Both the HTTP API and the
//! control plane's own creates (a StatefulSet's claims) go through it.

use serde_json::Value;

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
    let rt = crate::registry::kinds::STORAGECLASSES;
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

/// `--default-not-ready-toleration-seconds` and
/// `--default-unreachable-toleration-seconds` (upstream's
/// DefaultTolerationSeconds admission plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TolerationSeconds {
    /// Seconds a pod tolerates `node.kubernetes.io/not-ready:NoExecute`.
    pub not_ready: i64,
    /// Seconds a pod tolerates `node.kubernetes.io/unreachable:NoExecute`.
    pub unreachable: i64,
}

impl Default for TolerationSeconds {
    fn default() -> Self {
        Self {
            not_ready: 300,
            unreachable: 300,
        }
    }
}

static TOLERATION_SECONDS: std::sync::OnceLock<TolerationSeconds> = std::sync::OnceLock::new();

/// Sets the process's toleration defaults (once, at start-up).
pub fn set_toleration_seconds(seconds: TolerationSeconds) {
    let _ = TOLERATION_SECONDS.set(seconds);
}

fn tolerates(tolerations: &[Value], key: &str) -> bool {
    tolerations.iter().any(|t| {
        let key_matches = t["key"] == key || (t["key"].is_null() && t["operator"] == "Exists");
        key_matches && (t["effect"].is_null() || t["effect"] == "NoExecute")
    })
}

/// Upstream's pod admission defaults: ServiceAccount (`serviceAccountName`
/// `default`, mirrored into the deprecated `serviceAccount`), Priority
/// (`priority: 0` without a class) and DefaultTolerationSeconds (NoExecute
/// tolerations of `not-ready` and `unreachable` for the configured seconds,
/// unless the pod already tolerates them). DaemonSet pods tolerate both
/// forever already, so they get neither.
pub fn default_pod(pod: &mut Value, seconds: TolerationSeconds) {
    let Some(spec) = pod.get_mut("spec").filter(|s| s.is_object()) else {
        return;
    };
    let account = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .or_else(|| {
            spec.get("serviceAccount")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = Value::from(account.clone());
    spec["serviceAccount"] = Value::from(account);
    if spec.get("enableServiceLinks").is_none_or(Value::is_null) {
        spec["enableServiceLinks"] = Value::Bool(true);
    }
    if spec.get("priority").is_none_or(Value::is_null)
        && spec
            .get("priorityClassName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        spec["priority"] = Value::from(0);
    }
    if !spec["tolerations"].is_array() {
        spec["tolerations"] = Value::Array(Vec::new());
    }
    let mut added = Vec::new();
    if let Some(tolerations) = spec["tolerations"].as_array() {
        for (key, secs) in [
            ("node.kubernetes.io/not-ready", seconds.not_ready),
            ("node.kubernetes.io/unreachable", seconds.unreachable),
        ] {
            if !tolerates(tolerations, key) {
                added.push(serde_json::json!({"key": key, "operator": "Exists",
                    "effect": "NoExecute", "tolerationSeconds": secs}));
            }
        }
    }
    if let Some(tolerations) = spec["tolerations"].as_array_mut() {
        tolerations.extend(added);
    }
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
    if kind == "Pod" {
        default_pod(obj, TOLERATION_SECONDS.get().copied().unwrap_or_default());
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
        let rt = crate::registry::kinds::STORAGECLASSES;
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

    #[test]
    fn pods_get_upstream_admission_defaults() {
        let seconds = TolerationSeconds {
            not_ready: 300,
            unreachable: 7,
        };
        let mut pod = json!({"spec": {"containers": [{"name": "c"}]}});
        default_pod(&mut pod, seconds);
        assert_eq!(pod["spec"]["serviceAccountName"], "default");
        assert_eq!(pod["spec"]["serviceAccount"], "default");
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        assert_eq!(pod["spec"]["priority"], 0);
        assert_eq!(
            pod["spec"]["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 7},
            ])
        );
        // A pod that tolerates a taint keeps its own toleration only.
        let own = json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute"});
        let mut pod = json!({"spec": {"serviceAccountName": "robot", "tolerations": [own]}});
        default_pod(&mut pod, seconds);
        assert_eq!(pod["spec"]["serviceAccount"], "robot");
        let tolerations = pod["spec"]["tolerations"].as_array().expect("list");
        assert_eq!(tolerations.len(), 2);
        assert_eq!(tolerations[0], own);
        assert_eq!(tolerations[1]["key"], "node.kubernetes.io/not-ready");
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
