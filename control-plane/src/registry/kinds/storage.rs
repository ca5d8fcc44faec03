//! Storage: PersistentVolumes, PersistentVolumeClaims, StorageClasses.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use serde_json::{Value, json};
use skiff_api_rules::storage::validate_claim_spec;

use super::PLAIN;
use super::printing::{age_of, col, s, text};
use super::support::{decode, round, set_default};
use crate::registry::resource_type::{Behaviour, Columns, ResourceType, rt};

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
    &["status"],
    &VOLUME_BEHAVIOUR,
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
    &["status"],
    &CLAIM_BEHAVIOUR,
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
    &[],
    &CLASS_BEHAVIOUR,
);

fn volume_defaults(obj: &mut Value) {
    set_default(
        obj,
        &["spec", "persistentVolumeReclaimPolicy"],
        json!("Retain"),
    );
    set_default(obj, &["spec", "volumeMode"], json!("Filesystem"));
    set_default(obj, &["status", "phase"], json!("Pending"));
}

fn volume_initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({"phase": "Pending"}))
}

fn volume_validate(_rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::volume::validate_persistent_volume(obj))
}

fn volume_validate_update(
    _rt: &ResourceType,
    old: &Value,
    new: &Value,
) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::volume::validate_persistent_volume_update(
        old, new,
    ))
}

fn volume_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let spec = &obj["spec"];
    let status = &obj["status"];
    let claim = match spec.get("claimRef").filter(|c| c.is_object()) {
        Some(c) => format!("{}/{}", text(c.get("namespace")), text(c.get("name"))),
        None => String::new(),
    };
    (
        vec![
            col("Name", 0),
            col("Capacity", 0),
            col("Access Modes", 0),
            col("Reclaim Policy", 0),
            col("Status", 0),
            col("Claim", 0),
            col("StorageClass", 0),
            col("VolumeAttributesClass", 0),
            col("Reason", 0),
            col("Age", 0),
            col("VolumeMode", 1),
        ],
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

const VOLUME_BEHAVIOUR: Behaviour = Behaviour {
    defaults: volume_defaults,
    initial_status: volume_initial_status,
    validate: volume_validate,
    validate_update: volume_validate_update,
    round_trip: round::<k8s_openapi::api::core::v1::PersistentVolume>,
    columns: volume_columns,
    ..PLAIN
};

fn claim_defaults(obj: &mut Value) {
    default_claim(obj);
}

fn claim_initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({"phase": "Pending"}))
}

fn claim_validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let c: PersistentVolumeClaim = decode(rt, obj)?;
    errors.extend(validate_claim_spec("spec", &c.spec.unwrap_or_default()));

    Ok(errors)
}

fn claim_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let spec = &obj["spec"];
    let status = &obj["status"];
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
        vec![
            col("Name", 0),
            col("Status", 0),
            col("Volume", 0),
            col("Capacity", 0),
            col("Access Modes", 0),
            col("StorageClass", 0),
            col("VolumeAttributesClass", 0),
            col("Age", 0),
            col("VolumeMode", 1),
        ],
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

const CLAIM_BEHAVIOUR: Behaviour = Behaviour {
    defaults: claim_defaults,
    initial_status: claim_initial_status,
    validate: claim_validate,
    round_trip: round::<k8s_openapi::api::core::v1::PersistentVolumeClaim>,
    columns: claim_columns,
    ..PLAIN
};

fn class_defaults(obj: &mut Value) {
    set_default(obj, &["reclaimPolicy"], json!("Delete"));
    set_default(obj, &["volumeBindingMode"], json!("Immediate"));
}

fn class_validate(_rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::volume::validate_storage_class(obj))
}

fn class_validate_update(
    _rt: &ResourceType,
    old: &Value,
    new: &Value,
) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::volume::validate_storage_class_update(
        old, new,
    ))
}

fn class_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let default = obj
        .pointer("/metadata/annotations")
        .and_then(|a| {
            a.get("storageclass.kubernetes.io/is-default-class")
                .or_else(|| a.get("storageclass.beta.kubernetes.io/is-default-class"))
        })
        .and_then(Value::as_str)
        == Some("true");
    (
        vec![
            col("Name", 0),
            col("Provisioner", 0),
            col("ReclaimPolicy", 0),
            col("VolumeBindingMode", 0),
            col("AllowVolumeExpansion", 0),
            col("Age", 0),
        ],
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

const CLASS_BEHAVIOUR: Behaviour = Behaviour {
    defaults: class_defaults,
    validate: class_validate,
    validate_update: class_validate_update,
    round_trip: round::<k8s_openapi::api::storage::v1::StorageClass>,
    columns: class_columns,
    ..PLAIN
};

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
