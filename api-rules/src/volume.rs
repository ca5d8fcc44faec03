//! PersistentVolumes and StorageClasses: what a volume offers (capacity,
//! access modes, exactly one source, where it can be used) and how a
//! class provisions them. Claims are in [`crate::storage`].

use std::collections::BTreeMap;

use serde_json::Value;

use crate::metadata::{
    dns1123_subdomain_errors, go_quote, label_value_errors, qualified_name_errors,
};
use crate::storage::not_positive;

/// Volume sources of a PV, in the order upstream checks them (the second
/// one found is the one reported), with the field path upstream reports a
/// second one at (`cephfs` as `cephFS`).
const SOURCES: [(&str, &str); 22] = [
    ("hostPath", "hostPath"),
    ("gcePersistentDisk", "gcePersistentDisk"),
    ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("glusterfs", "glusterfs"),
    ("flocker", "flocker"),
    ("nfs", "nfs"),
    ("rbd", "rbd"),
    ("quobyte", "quobyte"),
    ("cephfs", "cephFS"),
    ("iscsi", "iscsi"),
    ("cinder", "cinder"),
    ("fc", "fc"),
    ("flexVolume", ""),
    ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"),
    ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"),
    ("azureDisk", "azureDisk"),
    ("scaleIO", "scaleIO"),
    ("local", "local"),
    ("storageos", "storageos"),
    ("csi", "csi"),
];

const HOST_PATH_TYPES: [&str; 8] = [
    "",
    "BlockDevice",
    "CharDevice",
    "Directory",
    "DirectoryOrCreate",
    "File",
    "FileOrCreate",
    "Socket",
];

/// StorageClass parameters: at most this many, and this many bytes of
/// keys and values together.
const MAX_PARAMETERS: usize = 512;
const MAX_PARAMETER_BYTES: usize = 256 * 1024;

fn text<'a>(obj: &'a Value, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn items<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn invalid(path: &str, value: &str, message: &str) -> String {
    format!("{path}: Invalid value: {}: {message}", go_quote(value))
}

fn quoted_list(values: &[&str]) -> String {
    values
        .iter()
        .map(|v| go_quote(v))
        .collect::<Vec<_>>()
        .join(", ")
}

fn unsupported(path: &str, value: &str, supported: &[&str]) -> String {
    format!(
        "{path}: Unsupported value: {}: supported values: {}",
        go_quote(value),
        quoted_list(supported)
    )
}

/// Upstream's `validatePathNoBacksteps`.
fn backstep_errors(path: &str, value: &str) -> Vec<String> {
    if value.split('/').any(|part| part == "..") {
        vec![invalid(path, value, "must not contain '..'")]
    } else {
        Vec::new()
    }
}

fn source_errors(path: &str, kind: &str, source: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    match kind {
        "hostPath" | "local" => {
            let p = text(source, "path");
            if p.is_empty() {
                errors.push(format!("{path}.path: Required value"));
                return errors;
            }
            errors.extend(backstep_errors(&format!("{path}.path"), p));
            if kind == "hostPath" {
                let t = text(source, "type");
                if !HOST_PATH_TYPES.contains(&t) {
                    errors.push(unsupported(&format!("{path}.type"), t, &HOST_PATH_TYPES));
                }
            }
        }
        "nfs" => {
            if text(source, "server").is_empty() {
                errors.push(format!("{path}.server: Required value"));
            }
            let p = text(source, "path");
            if p.is_empty() {
                errors.push(format!("{path}.path: Required value"));
            }
            if !p.starts_with('/') {
                errors.push(invalid(
                    &format!("{path}.path"),
                    p,
                    "must be an absolute path",
                ));
            }
        }
        // Upstream wants the driver to be a DNS subdomain; Skiff's own
        // provisioner drives its volumes as `skiff.io/node-local` (a
        // qualified name, like a StorageClass provisioner), and those
        // volumes must stay editable, so a prefixed name is let through.
        "csi" => {
            let driver = text(source, "driver");
            let at = format!("{path}.driver");
            if driver.is_empty() {
                errors.push(format!("{at}: Required value"));
            }
            if driver.len() > 63 {
                errors.push(format!("{at}: Too long: must have at most 63 bytes"));
            }
            if !driver.contains('/') {
                for m in dns1123_subdomain_errors(&driver.to_lowercase()) {
                    errors.push(invalid(&at, driver, &m));
                }
            }
            if text(source, "volumeHandle").is_empty() {
                errors.push(format!("{path}.volumeHandle: Required value"));
            }
        }
        _ => {}
    }
    errors
}

/// Upstream's `ValidateNodeSelector` (as a PV's node affinity uses it).
fn node_selector_errors(path: &str, selector: &Value) -> Vec<String> {
    let terms_path = format!("{path}.nodeSelectorTerms");
    let terms = items(selector, "nodeSelectorTerms");
    if terms.is_empty() {
        return vec![format!(
            "{terms_path}: Required value: must have at least one node selector term"
        )];
    }
    let mut errors = Vec::new();
    for (i, term) in terms.iter().enumerate() {
        // matchFields (only `metadata.name`) are left to the scheduler.
        {
            let field = "matchExpressions";
            for (j, rq) in items(term, field).iter().enumerate() {
                let at = format!("{terms_path}[{i}].{field}[{j}]");
                let values: Vec<&str> = items(rq, "values")
                    .iter()
                    .map(|v| v.as_str().unwrap_or_default())
                    .collect();
                let operator = text(rq, "operator");
                match operator {
                    "In" | "NotIn" if values.is_empty() => errors.push(format!(
                        "{at}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
                    )),
                    "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(format!(
                        "{at}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
                    )),
                    "Gt" | "Lt" if values.len() != 1 => errors.push(format!(
                        "{at}.values: Required value: must be specified single value when `operator` is 'Lt' or 'Gt'"
                    )),
                    "In" | "NotIn" | "Exists" | "DoesNotExist" | "Gt" | "Lt" => {}
                    other => errors.push(invalid(
                        &format!("{at}.operator"),
                        other,
                        "not a valid selector operator",
                    )),
                }
                let key = text(rq, "key");
                for m in qualified_name_errors(key) {
                    errors.push(invalid(&format!("{at}.key"), key, &m));
                }
                for (k, v) in values.iter().enumerate() {
                    for m in label_value_errors(v) {
                        errors.push(invalid(&format!("{at}.values[{k}]"), v, &m));
                    }
                }
            }
        }
    }
    errors
}

/// Every problem with a (defaulted) PersistentVolume's spec.
pub fn validate_persistent_volume(pv: &Value) -> Vec<String> {
    let empty = Value::Null;
    let spec = pv.get("spec").unwrap_or(&empty);
    let mut errors = Vec::new();
    let modes: Vec<&str> = items(spec, "accessModes")
        .iter()
        .map(|m| m.as_str().unwrap_or_default())
        .collect();
    if modes.is_empty() {
        errors.push("spec.accessModes: Required value".to_string());
    }
    const MODES: [&str; 4] = [
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    for mode in &modes {
        if !MODES.contains(mode) {
            errors.push(unsupported("spec.accessModes", mode, &MODES));
        }
    }
    if modes.contains(&"ReadWriteOncePod") && modes.len() > 1 {
        errors.push(
            "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes"
                .to_string(),
        );
    }
    let capacity: BTreeMap<&str, &str> = spec
        .get("capacity")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    if capacity.is_empty() {
        errors.push("spec.capacity: Required value".to_string());
    }
    if !capacity.contains_key("storage") || capacity.len() > 1 {
        // Upstream prints the Go map here; its keys are what matter.
        let shown = if capacity.is_empty() {
            "core.ResourceList(nil)".to_string()
        } else {
            format!(
                "core.ResourceList{{{}}}",
                capacity
                    .keys()
                    .map(|k| format!("{}:...", go_quote(k)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        errors.push(format!(
            "spec.capacity: Unsupported value: {shown}: supported values: \"storage\""
        ));
    }
    for (resource, quantity) in &capacity {
        if not_positive(quantity) {
            errors.push(invalid(
                &format!("spec.capacity[{resource}]"),
                quantity,
                "must be greater than zero",
            ));
        }
    }
    let policy = text(spec, "persistentVolumeReclaimPolicy");
    if !policy.is_empty() && !matches!(policy, "Delete" | "Recycle" | "Retain") {
        errors.push(unsupported(
            "spec.persistentVolumeReclaimPolicy",
            policy,
            &["Delete", "Recycle", "Retain"],
        ));
    }
    let affinity = spec.get("nodeAffinity").filter(|a| !a.is_null());
    if let Some(affinity) = affinity {
        match affinity.get("required").filter(|r| !r.is_null()) {
            Some(required) => errors.extend(node_selector_errors(
                "spec.nodeAffinity.required",
                required,
            )),
            None => errors.push(
                "spec.nodeAffinity.required: Required value: must specify required node constraints"
                    .to_string(),
            ),
        }
    }
    let mut found = 0;
    for (kind, reported) in SOURCES {
        let Some(source) = spec.get(kind).filter(|s| !s.is_null()) else {
            continue;
        };
        // Upstream counts a flexVolume without checking for a second source.
        if found > 0 && !reported.is_empty() {
            errors.push(format!(
                "spec.{reported}: Forbidden: may not specify more than 1 volume type"
            ));
            continue;
        }
        found += 1;
        errors.extend(source_errors(&format!("spec.{kind}"), kind, source));
        if kind == "local" && affinity.is_none() {
            errors.push(
                "spec.nodeAffinity: Required value: Local volume requires node affinity"
                    .to_string(),
            );
        }
    }
    if found == 0 {
        errors.push("spec: Required value: must specify a volume type".to_string());
    }
    let host_root = spec
        .pointer("/hostPath/path")
        .and_then(Value::as_str)
        .is_some_and(|p| !p.is_empty() && p.split('/').all(|s| s.is_empty() || s == "."));
    if host_root && policy == "Recycle" {
        errors.push(
            "spec.persistentVolumeReclaimPolicy: Forbidden: may not be 'recycle' for a hostPath mount of '/'"
                .to_string(),
        );
    }
    let class = text(spec, "storageClassName");
    if !class.is_empty() {
        for m in dns1123_subdomain_errors(class) {
            errors.push(invalid("spec.storageClassName", class, &m));
        }
    }
    if let Some(mode) = spec.get("volumeMode").and_then(Value::as_str)
        && !matches!(mode, "Block" | "Filesystem")
    {
        errors.push(unsupported(
            "spec.volumeMode",
            mode,
            &["Block", "Filesystem"],
        ));
    }
    errors
}

/// What a PV update may not change: its source and its volume mode.
/// Upstream appends a Go diff of the source to the first message; Skiff
/// names the field only.
pub fn validate_persistent_volume_update(old: &Value, new: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let sources = |pv: &Value| -> Vec<Option<Value>> {
        SOURCES
            .iter()
            .map(|(kind, _)| {
                pv.pointer(&format!("/spec/{kind}"))
                    .filter(|s| !s.is_null())
                    .cloned()
            })
            .collect()
    };
    if sources(old) != sources(new) {
        errors.push(
            "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation"
                .to_string(),
        );
    }
    let mode = |pv: &Value| {
        pv.pointer("/spec/volumeMode")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    if mode(old) != mode(new) {
        errors.push(match mode(new) {
            Some(m) => invalid("volumeMode", &m, "field is immutable"),
            None => "volumeMode: Invalid value: \"null\": field is immutable".to_string(),
        });
    }
    errors
}

/// Every problem with a (defaulted) StorageClass.
pub fn validate_storage_class(class: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let provisioner = text(class, "provisioner");
    if provisioner.is_empty() {
        errors.push("provisioner: Required value".to_string());
    } else {
        for m in qualified_name_errors(&provisioner.to_lowercase()) {
            errors.push(invalid("provisioner", &provisioner.to_lowercase(), &m));
        }
    }
    if let Some(params) = class.get("parameters").and_then(Value::as_object) {
        if params.len() > MAX_PARAMETERS {
            errors.push(format!(
                "parameters: Too long: must have at most {MAX_PARAMETERS} bytes"
            ));
        } else {
            let mut size = 0;
            for (k, v) in params {
                if k.is_empty() {
                    errors.push(invalid("parameters", k, "field can not be empty."));
                }
                size += k.len() + v.as_str().map_or(0, str::len);
            }
            if size > MAX_PARAMETER_BYTES {
                errors.push(format!(
                    "parameters: Too long: must have at most {MAX_PARAMETER_BYTES} bytes"
                ));
            }
        }
    }
    let policy = text(class, "reclaimPolicy");
    if !policy.is_empty() && !matches!(policy, "Delete" | "Retain") {
        errors.push(unsupported("reclaimPolicy", policy, &["Delete", "Retain"]));
    }
    match class.get("volumeBindingMode").and_then(Value::as_str) {
        None => errors.push("volumeBindingMode: Required value".to_string()),
        Some(mode) if !matches!(mode, "Immediate" | "WaitForFirstConsumer") => {
            errors.push(unsupported(
                "volumeBindingMode",
                mode,
                &["Immediate", "WaitForFirstConsumer"],
            ))
        }
        Some(_) => {}
    }
    errors
}

/// What a StorageClass update may not change: everything that decides how
/// volumes are made.
pub fn validate_storage_class_update(old: &Value, new: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let params = |c: &Value| {
        c.get("parameters")
            .filter(|p| p.as_object().is_some_and(|m| !m.is_empty()))
            .cloned()
    };
    if params(old) != params(new) {
        errors.push("parameters: Forbidden: updates to parameters are forbidden.".to_string());
    }
    for field in ["provisioner", "reclaimPolicy"] {
        if text(old, field) != text(new, field) {
            errors.push(format!(
                "{field}: Forbidden: updates to {field} are forbidden."
            ));
        }
    }
    let mode = text(new, "volumeBindingMode");
    if text(old, "volumeBindingMode") != mode {
        errors.push(invalid("volumeBindingMode", mode, "field is immutable"));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(spec: Value) -> Value {
        json!({ "spec": spec })
    }

    #[test]
    fn volumes_need_capacity_modes_and_one_source() {
        let good = pv(json!({
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
            "storageClassName": "manual", "hostPath": {"path": "/mnt/data"}
        }));
        assert!(validate_persistent_volume(&good).is_empty());
        assert_eq!(
            validate_persistent_volume(&pv(json!({"persistentVolumeReclaimPolicy": "Retain"}))),
            [
                "spec.accessModes: Required value",
                "spec.capacity: Required value",
                "spec.capacity: Unsupported value: core.ResourceList(nil): supported values: \"storage\"",
                "spec: Required value: must specify a volume type"
            ]
        );
        assert_eq!(
            validate_persistent_volume(&pv(json!({
                "capacity": {"storage": "0"}, "accessModes": ["ReadWriteOncePod", "Everyone"],
                "persistentVolumeReclaimPolicy": "Keep", "volumeMode": "Disk",
                "storageClassName": "Fast", "hostPath": {"path": "", "type": "Dir"}, "nfs": {"server": "s", "path": "/x"}
            }))),
            [
                "spec.accessModes: Unsupported value: \"Everyone\": supported values: \"ReadOnlyMany\", \"ReadWriteMany\", \"ReadWriteOnce\", \"ReadWriteOncePod\"",
                "spec.accessModes: Forbidden: may not use ReadWriteOncePod with other access modes",
                "spec.capacity[storage]: Invalid value: \"0\": must be greater than zero",
                "spec.persistentVolumeReclaimPolicy: Unsupported value: \"Keep\": supported values: \"Delete\", \"Recycle\", \"Retain\"",
                "spec.hostPath.path: Required value",
                "spec.nfs: Forbidden: may not specify more than 1 volume type",
                "spec.storageClassName: Invalid value: \"Fast\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.volumeMode: Unsupported value: \"Disk\": supported values: \"Block\", \"Filesystem\""
            ]
        );
    }

    #[test]
    fn sources_and_affinity_are_checked() {
        let base = json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Recycle"});
        let with = |extra: Value| {
            let mut spec = base.clone();
            if let (Some(s), Some(e)) = (spec.as_object_mut(), extra.as_object()) {
                s.extend(e.clone());
            }
            validate_persistent_volume(&pv(spec))
        };
        assert_eq!(
            with(json!({"hostPath": {"path": "/", "type": "Dir"}})),
            [
                "spec.hostPath.type: Unsupported value: \"Dir\": supported values: \"\", \"BlockDevice\", \"CharDevice\", \"Directory\", \"DirectoryOrCreate\", \"File\", \"FileOrCreate\", \"Socket\"",
                "spec.persistentVolumeReclaimPolicy: Forbidden: may not be 'recycle' for a hostPath mount of '/'"
            ]
        );
        assert_eq!(
            with(json!({"local": {"path": "/mnt/../etc"}})),
            [
                "spec.local.path: Invalid value: \"/mnt/../etc\": must not contain '..'",
                "spec.nodeAffinity: Required value: Local volume requires node affinity"
            ]
        );
        assert_eq!(
            with(json!({"nfs": {"path": "data"}})),
            [
                "spec.nfs.server: Required value",
                "spec.nfs.path: Invalid value: \"data\": must be an absolute path"
            ]
        );
        assert_eq!(
            with(
                json!({"csi": {"driver": ""}, "nodeAffinity": {"required": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "Is", "values": ["a"]},
                                      {"key": "zone", "operator": "In"}]}]}}})
            ),
            [
                "spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].operator: Invalid value: \"Is\": not a valid selector operator",
                "spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[1].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
                "spec.csi.driver: Required value",
                "spec.csi.driver: Invalid value: \"\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
                "spec.csi.volumeHandle: Required value"
            ]
        );
        assert_eq!(
            with(
                json!({"csi": {"driver": "skiff.io/node-local", "volumeHandle": "pvc-1"}, "nodeAffinity": {}})
            ),
            ["spec.nodeAffinity.required: Required value: must specify required node constraints"]
        );
    }

    #[test]
    fn sources_and_modes_are_fixed_once_created() {
        let old = pv(
            json!({"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Delete", "volumeMode": "Filesystem",
            "csi": {"driver": "skiff.io/node-local", "volumeHandle": "pvc-1"}}),
        );
        let mut retained = old.clone();
        retained["spec"]["persistentVolumeReclaimPolicy"] = json!("Retain");
        retained["spec"]["capacity"]["storage"] = json!("2Gi");
        assert!(validate_persistent_volume_update(&old, &retained).is_empty());
        let mut moved = old.clone();
        moved["spec"]["csi"]["volumeHandle"] = json!("pvc-2");
        moved["spec"]["volumeMode"] = json!("Block");
        assert_eq!(
            validate_persistent_volume_update(&old, &moved),
            [
                "spec.persistentvolumesource: Forbidden: spec.persistentvolumesource is immutable after creation",
                "volumeMode: Invalid value: \"Block\": field is immutable"
            ]
        );
        let mut flex = old.clone();
        flex["spec"]["csi"] = Value::Null;
        flex["spec"]["hostPath"] = json!({"path": "/a"});
        flex["spec"]["flexVolume"] = json!({"driver": "x"});
        assert_eq!(
            validate_persistent_volume(&flex),
            Vec::<String>::new(),
            "upstream counts a second flexVolume source without refusing it"
        );
        let mut ceph = old.clone();
        ceph["spec"]["cephfs"] = json!({"monitors": ["m"]});
        ceph["spec"]["csi"] = Value::Null;
        ceph["spec"]["hostPath"] = json!({"path": "/a"});
        assert_eq!(
            validate_persistent_volume(&ceph),
            ["spec.cephFS: Forbidden: may not specify more than 1 volume type"]
        );
    }

    #[test]
    fn classes_name_a_provisioner_and_fixed_policies() {
        let good = json!({"provisioner": "skiff.io/node-local", "reclaimPolicy": "Delete",
            "volumeBindingMode": "WaitForFirstConsumer", "parameters": {"type": "ssd"}});
        assert!(validate_storage_class(&good).is_empty());
        assert_eq!(
            validate_storage_class(
                &json!({"reclaimPolicy": "Recycle", "volumeBindingMode": "Later"})
            ),
            [
                "provisioner: Required value",
                "reclaimPolicy: Unsupported value: \"Recycle\": supported values: \"Delete\", \"Retain\"",
                "volumeBindingMode: Unsupported value: \"Later\": supported values: \"Immediate\", \"WaitForFirstConsumer\""
            ]
        );
        assert_eq!(
            validate_storage_class(
                &json!({"provisioner": "a/b/c", "volumeBindingMode": "Immediate"})
            ),
            [
                "provisioner: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        );
        let many: serde_json::Map<String, Value> =
            (0..513).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert_eq!(
            validate_storage_class(
                &json!({"provisioner": "p", "volumeBindingMode": "Immediate", "parameters": many})
            ),
            ["parameters: Too long: must have at most 512 bytes"]
        );
        let big = "x".repeat(MAX_PARAMETER_BYTES);
        assert_eq!(
            validate_storage_class(
                &json!({"provisioner": "p", "volumeBindingMode": "Immediate", "parameters": {"k": big}})
            ),
            ["parameters: Too long: must have at most 262144 bytes"]
        );
        let changed = json!({"provisioner": "other.io/x", "reclaimPolicy": "Retain",
            "volumeBindingMode": "Immediate", "parameters": {"type": "hdd"}});
        assert_eq!(
            validate_storage_class_update(&good, &changed),
            [
                "parameters: Forbidden: updates to parameters are forbidden.",
                "provisioner: Forbidden: updates to provisioner are forbidden.",
                "reclaimPolicy: Forbidden: updates to reclaimPolicy are forbidden.",
                "volumeBindingMode: Invalid value: \"Immediate\": field is immutable"
            ]
        );
        assert!(validate_storage_class_update(&good, &good).is_empty());
    }
}
