//! Upstream's ServiceAccount admission plugin for new pods: the pod's
//! account must exist (the `default` one is waited for a moment, its
//! controller may not have made it yet), and unless the pod or its account
//! opts out (`automountServiceAccountToken: false`), the pod gets the
//! projected volume `kube-api-access-<5 chars>` (token, `ca.crt`,
//! `namespace`) mounted read-only at
//! `/var/run/secrets/kubernetes.io/serviceaccount` in every container and
//! init container. Mirror pods are left alone, as upstream does.
//!
//! It runs in the binary only ([`enable`]): in-memory unit tests of the
//! controllers have no accounts.

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::registry::kinds;
use crate::store::{Store, StoreError};

/// Where the token, `ca.crt` and `namespace` appear in containers.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The projected volume's name prefix.
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The projected token's lifetime (upstream's: an hour and seven seconds,
/// which the kubelet refreshes well before).
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;
/// The annotation of mirror pods.
const MIRROR: &str = "kubernetes.io/config.mirror";
/// How often, and how far apart, a missing `default` account is looked
/// for again.
const DEFAULT_ATTEMPTS: u32 = 10;
const RETRY_INTERVAL: Duration = Duration::from_millis(150);

static ENABLED: OnceLock<bool> = OnceLock::new();

/// Turns the plugin on for this process (once, at start-up).
pub fn enable() {
    let _ = ENABLED.set(true);
}

fn enabled() -> bool {
    ENABLED.get().copied().unwrap_or(false)
}

/// Why a pod was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdmissionError {
    /// The pod's ServiceAccount does not exist (403 at the API).
    #[error(
        "pods \"{pod}\" is forbidden: error looking up service account {namespace}/{account}: serviceaccount \"{account}\" not found"
    )]
    MissingAccount {
        /// The pod.
        pod: String,
        /// Its namespace.
        namespace: String,
        /// The account it names.
        account: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

async fn find_account(
    store: &dyn Store,
    namespace: &str,
    name: &str,
) -> Result<Option<Value>, StoreError> {
    let key = kinds::SERVICEACCOUNTS.key(Some(namespace), name);
    let attempts = if name == "default" {
        DEFAULT_ATTEMPTS
    } else {
        1
    };
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(RETRY_INTERVAL).await;
        }
        match store.get(&key).await {
            Ok(kv) => {
                return serde_json::from_slice(&kv.value)
                    .map(Some)
                    .map_err(|e| StoreError::Backend(e.to_string()));
            }
            Err(StoreError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Admits a new pod (already defaulted: `serviceAccountName` set), when
/// the plugin is on.
pub async fn admit(store: &dyn Store, pod: &mut Value) -> Result<(), AdmissionError> {
    if !enabled() {
        return Ok(());
    }
    admit_pod(store, pod).await
}

/// The plugin's work on one pod.
pub async fn admit_pod(store: &dyn Store, pod: &mut Value) -> Result<(), AdmissionError> {
    if pod
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR))
        .is_some()
    {
        return Ok(());
    }
    let namespace = crate::meta::namespace(pod).to_string();
    let account_name = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("default")
        .to_string();
    let Some(account) = find_account(store, &namespace, &account_name).await? else {
        return Err(AdmissionError::MissingAccount {
            pod: crate::meta::name(pod).to_string(),
            namespace,
            account: account_name,
        });
    };
    let automount = pod
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| account["automountServiceAccountToken"].as_bool())
        .unwrap_or(true);
    if automount {
        mount_token(pod, &crate::registry::meta::random_suffix());
    }
    Ok(())
}

/// Adds the projected volume named with `suffix` and its mounts (to
/// containers that do not mount something there already).
pub fn mount_token(pod: &mut Value, suffix: &str) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let mounts_there = |c: &Value| {
        c["volumeMounts"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m["mountPath"] == MOUNT_PATH))
    };
    let containers = ["initContainers", "containers"];
    let needed = containers.iter().any(|k| {
        spec.get(*k)
            .and_then(Value::as_array)
            .is_some_and(|cs| cs.iter().any(|c| !mounts_there(c)))
    });
    if !needed {
        return;
    }
    let name = format!("{VOLUME_PREFIX}{suffix}");
    for key in containers {
        for container in spec
            .get_mut(key)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if mounts_there(container) {
                continue;
            }
            let mount = json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH});
            match container["volumeMounts"].as_array_mut() {
                Some(mounts) => mounts.push(mount),
                None => container["volumeMounts"] = json!([mount]),
            }
        }
    }
    let volume = json!({"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt",
            "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}});
    match spec.get_mut("volumes").and_then(Value::as_array_mut) {
        Some(volumes) => volumes.push(volume),
        None => {
            spec.insert("volumes".into(), json!([volume]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    async fn account(store: &MemoryStore, name: &str, automount: Option<bool>) {
        let mut sa = json!({"metadata": {"name": name, "namespace": "lab"}});
        if let Some(a) = automount {
            sa["automountServiceAccountToken"] = json!(a);
        }
        store
            .create(
                &kinds::SERVICEACCOUNTS.key(Some("lab"), name),
                serde_json::to_vec(&sa).expect("json"),
            )
            .await
            .expect("create");
    }

    fn pod(account: &str) -> Value {
        json!({"metadata": {"name": "web", "namespace": "lab"},
            "spec": {"serviceAccountName": account,
                "initContainers": [{"name": "init"}],
                "containers": [{"name": "a"},
                    {"name": "b", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}})
    }

    #[tokio::test]
    async fn every_container_mounts_the_projected_token_volume() {
        let store = MemoryStore::new();
        account(&store, "robot", None).await;
        let mut p = pod("robot");
        admit_pod(&store, &mut p).await.expect("admitted");
        let volumes = p["spec"]["volumes"].as_array().expect("volumes");
        assert_eq!(volumes.len(), 1);
        let name = volumes[0]["name"].as_str().expect("name");
        assert!(name.starts_with(VOLUME_PREFIX) && name.len() == VOLUME_PREFIX.len() + 5);
        let sources = &volumes[0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["items"][0]["key"], "ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        for c in [
            &p["spec"]["initContainers"][0],
            &p["spec"]["containers"][0],
            &p["spec"]["containers"][1],
        ] {
            let mounts = c["volumeMounts"].as_array().expect("mounts");
            assert!(
                mounts.contains(&json!({"name": name, "readOnly": true, "mountPath": MOUNT_PATH})),
                "{c}"
            );
        }
        assert_eq!(
            p["spec"]["containers"][1]["volumeMounts"][0]["name"],
            "data"
        );
    }

    #[tokio::test]
    async fn opting_out_by_pod_or_account_mounts_nothing() {
        let store = MemoryStore::new();
        account(&store, "quiet", Some(false)).await;
        account(&store, "robot", None).await;
        let mut p = pod("quiet");
        admit_pod(&store, &mut p).await.expect("admitted");
        assert!(p["spec"].get("volumes").is_none());
        // The pod's own setting wins over the account's.
        let mut p = pod("quiet");
        p["spec"]["automountServiceAccountToken"] = json!(true);
        admit_pod(&store, &mut p).await.expect("admitted");
        assert_eq!(p["spec"]["volumes"].as_array().map(Vec::len), Some(1));
        let mut p = pod("robot");
        p["spec"]["automountServiceAccountToken"] = json!(false);
        admit_pod(&store, &mut p).await.expect("admitted");
        assert!(p["spec"].get("volumes").is_none());
    }

    #[tokio::test]
    async fn a_missing_account_refuses_the_pod_with_upstreams_message() {
        let store = MemoryStore::new();
        let mut p = pod("ghost");
        let e = admit_pod(&store, &mut p).await.expect_err("refused");
        assert_eq!(
            e.to_string(),
            "pods \"web\" is forbidden: error looking up service account lab/ghost: serviceaccount \"ghost\" not found"
        );
        // Mirror pods are not asked.
        let mut p = pod("ghost");
        p["metadata"]["annotations"] = json!({MIRROR: "x"});
        admit_pod(&store, &mut p).await.expect("mirror");
    }
}
