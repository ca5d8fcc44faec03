//! Storage: PersistentVolumes, PersistentVolumeClaims, StorageClasses.

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use serde_json::{Value, json};
use skiff_api_rules::storage::validate_claim_spec;
use skiff_api_rules::volume::{
    validate_persistent_volume, validate_persistent_volume_update, validate_storage_class,
    validate_storage_class_update,
};

use super::printing::{Columns, header, row, text};
use super::support::{json_rules, set_default, typed_schema, validate_spec};
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `persistentvolumes` in `v1`.
pub const PERSISTENTVOLUMES: &ResourceType = &rt! {
    "", "v1", "persistentvolumes", "persistentvolume", "PersistentVolume", false, &["pv"], &[],
    &["status"], &PersistentVolumeRules
};

/// `persistentvolumeclaims` in `v1`.
pub const PERSISTENTVOLUMECLAIMS: &ResourceType = &rt! {
    "", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true,
    &["pvc"], &[], &["status"], &PersistentVolumeClaimRules
};

/// `storageclasses.storage.k8s.io` in `storage.k8s.io/v1`.
pub const STORAGECLASSES: &ResourceType = &rt! {
    "storage.k8s.io", "v1", "storageclasses", "storageclass", "StorageClass", false, &["sc"],
    &[], &[], &StorageClassRules
};

/// What the registry does with PersistentVolumes.
pub struct PersistentVolumeRules;

impl Behaviour for PersistentVolumeRules {
    fn defaults(&self, obj: &mut Value) {
        set_default(
            obj,
            &["spec", "persistentVolumeReclaimPolicy"],
            json!("Retain"),
        );
        set_default(obj, &["spec", "volumeMode"], json!("Filesystem"));
        set_default(obj, &["status", "phase"], json!("Pending"));
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({"phase": "Pending"}))
    }

    json_rules!(
        validate_persistent_volume,
        validate_persistent_volume_update
    );

    typed_schema!(PersistentVolume);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let claim = match spec.get("claimRef").filter(|c| c.is_object()) {
            Some(c) => format!("{}/{}", text(c.get("namespace")), text(c.get("name"))),
            None => String::new(),
        };
        (
            header(
                "Name|Capacity|Access Modes|Reclaim Policy|Status|Claim|StorageClass|VolumeAttributesClass|Reason|Age|*VolumeMode",
            ),
            vec![
                name,
                text(spec.pointer("/capacity/storage")).to_string(),
                access_modes(spec.get("accessModes")),
                text(spec.get("persistentVolumeReclaimPolicy")).to_string(),
                volume_phase(obj),
                claim,
                storage_class(obj, spec),
                unset(spec.get("volumeAttributesClassName")),
                text(status.get("reason")).to_string(),
                age,
                unset(spec.get("volumeMode")),
            ],
        )
    }
}

/// What the registry does with PersistentVolumeClaims.
pub struct PersistentVolumeClaimRules;

impl Behaviour for PersistentVolumeClaimRules {
    fn defaults(&self, obj: &mut Value) {
        default_claim(obj);
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({"phase": "Pending"}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_spec::<PersistentVolumeClaim>(rt, obj, |spec| validate_claim_spec("spec", spec))
    }

    typed_schema!(PersistentVolumeClaim);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let bound = !text(spec.get("volumeName")).is_empty();
        let (capacity, modes) = if bound {
            (
                text(status.pointer("/capacity/storage")).to_string(),
                access_modes(status.get("accessModes")),
            )
        } else {
            (String::new(), String::new())
        };
        (
            header(
                "Name|Status|Volume|Capacity|Access Modes|StorageClass|VolumeAttributesClass|Age|*VolumeMode",
            ),
            vec![
                name,
                volume_phase(obj),
                text(spec.get("volumeName")).to_string(),
                capacity,
                modes,
                storage_class(obj, spec),
                unset(spec.get("volumeAttributesClassName")),
                age,
                unset(spec.get("volumeMode")),
            ],
        )
    }
}

/// What the registry does with StorageClasss.
pub struct StorageClassRules;

impl Behaviour for StorageClassRules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["reclaimPolicy"], json!("Delete"));
        set_default(obj, &["volumeBindingMode"], json!("Immediate"));
    }

    json_rules!(validate_storage_class, validate_storage_class_update);

    typed_schema!(StorageClass);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        let default = obj
            .pointer("/metadata/annotations")
            .and_then(|a| {
                a.get("storageclass.kubernetes.io/is-default-class")
                    .or_else(|| a.get("storageclass.beta.kubernetes.io/is-default-class"))
            })
            .and_then(Value::as_str)
            == Some("true");
        (
            header("Name|Provisioner|ReclaimPolicy|VolumeBindingMode|AllowVolumeExpansion|Age"),
            vec![
                if default {
                    format!("{name} (default)")
                } else {
                    name
                },
                text(obj.get("provisioner")).to_string(),
                obj.get("reclaimPolicy")
                    .and_then(Value::as_str)
                    .unwrap_or("Delete")
                    .to_string(),
                obj.get("volumeBindingMode")
                    .and_then(Value::as_str)
                    .unwrap_or("Immediate")
                    .to_string(),
                obj.get("allowVolumeExpansion")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
                age,
            ],
        )
    }
}

/// Upstream defaults of a PersistentVolumeClaim (also of a StatefulSet's
/// claim templates).
pub(super) fn default_claim(claim: &mut Value) {
    set_default(claim, &["spec", "volumeMode"], json!("Filesystem"));
    set_default(claim, &["status", "phase"], json!("Pending"));
}

/// Upstream's `GetAccessModesAsString`: `RWO,ROX,RWX,RWOP`, in that order.
fn access_modes(modes: Option<&Value>) -> String {
    let has = |m: &str| {
        modes
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == m))
    };
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A claim's or volume's phase, `Terminating` while it is being deleted.
fn volume_phase(obj: &Value) -> String {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return "Terminating".into();
    }
    text(obj.pointer("/status/phase")).to_string()
}

/// The storage class: the beta annotation first, as upstream.
fn storage_class(obj: &Value, spec: &Value) -> String {
    obj.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .or_else(|| spec.get("storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn unset(v: Option<&Value>) -> String {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("<unset>")
        .to_string()
}
