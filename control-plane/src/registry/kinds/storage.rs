//! Storage: PersistentVolumes, PersistentVolumeClaims, StorageClasses.

use crate::registry::resource_type::{ResourceType, rt};

/// `persistentvolumes` in `v1`.
pub const PERSISTENTVOLUMES: &ResourceType = &rt!(
    "",
    "v1",
    "persistentvolumes",
    "persistentvolume",
    "PersistentVolume",
    false,
    &["pv"],
    &[],
    &["status"]
);

/// `persistentvolumeclaims` in `v1`.
pub const PERSISTENTVOLUMECLAIMS: &ResourceType = &rt!(
    "",
    "v1",
    "persistentvolumeclaims",
    "persistentvolumeclaim",
    "PersistentVolumeClaim",
    true,
    &["pvc"],
    &[],
    &["status"]
);

/// `storageclasses.storage.k8s.io` in `storage.k8s.io/v1`.
pub const STORAGECLASSES: &ResourceType = &rt!(
    "storage.k8s.io",
    "v1",
    "storageclasses",
    "storageclass",
    "StorageClass",
    false,
    &["sc"],
    &[],
    &[]
);
