//! Node-local persistent volumes, the storage model the scheduler, the
//! PersistentVolume controller and the node actors share: the default
//! StorageClass ([`DEFAULT_CLASS_NAME`], provisioner [`PROVISIONER`],
//! binding when the first pod is scheduled), provisioning
//! ([`provision`], called by the scheduler when it binds such a pod) and
//! telling a node where a pod's claims live ([`mounts`]). A library, not a
//! controller: it sits beside the registry so that no controller imports
//! another's internals.
//!
//! The data of a deleted volume stays in the node's folder: the node agent
//! is not told to remove it (an operator can, under
//! `<state-dir>/volumes/<pv-name>`).

pub mod mounts;
pub mod provision;

use serde_json::json;
use tracing::info;

use crate::registry::admission::DEFAULT_CLASS;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// The provisioner (and CSI driver) name of node-local volumes.
pub const PROVISIONER: &str = "skiff.io/node-local";
/// The StorageClass the control plane creates, marked default.
pub const DEFAULT_CLASS_NAME: &str = "skiff-local";
/// What can go wrong with volumes.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// The claim's class does not exist.
    #[error("storageclass.storage.k8s.io \"{0}\" not found")]
    NoClass(String),
    /// The claim's class is provisioned by someone else.
    #[error("storage class \"{0}\" is not provisioned by {PROVISIONER}")]
    NotOurs(String),
    /// The claim was replaced while it was being provisioned.
    #[error("persistentvolumeclaim \"{0}\" changed while it was provisioned")]
    ClaimChanged(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creates the default StorageClass unless it exists.
pub async fn ensure_default_class(objects: &Objects) -> Result<(), VolumeError> {
    let class = json!({
        "metadata": {
            "name": DEFAULT_CLASS_NAME,
            "annotations": {DEFAULT_CLASS: "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    });
    match objects.create(kinds::STORAGECLASSES, class).await {
        Ok(_) => {
            info!(
                class = DEFAULT_CLASS_NAME,
                "created the default storage class"
            );
            Ok(())
        }
        Err(StoreError::AlreadyExists(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// What the storage tests start from.
#[cfg(test)]
pub mod testing {
    use serde_json::{Value, json};

    use crate::registry::kinds;
    use crate::registry::objects::Objects;

    /// An in-memory store holding the default StorageClass.
    pub async fn store_with_default_class() -> Objects {
        let objects = Objects::in_memory();
        super::ensure_default_class(&objects).await.expect("class");
        objects
    }

    /// Creates claim `name` in `default` with `spec`; what was stored.
    pub async fn claim(objects: &Objects, name: &str, spec: Value) -> Value {
        let claim = json!({"metadata": {"name": name, "namespace": "default"}, "spec": spec});
        let rt = kinds::PERSISTENTVOLUMECLAIMS;
        objects.create(rt, claim).await.expect("claim")
    }
}
