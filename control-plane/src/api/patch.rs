//! The four PATCH flavours kubectl sends: JSON merge (RFC 7386), JSON patch
//! (RFC 6902), strategic merge (lists of objects merged by key, `$patch`,
//! `$retainKeys`, `$setElementOrder`, `$deleteFromPrimitiveList`) and
//! server-side apply (merged into the live object, created if absent).

use serde_json::{Map, Value};

/// The merge key of a list field in strategic merge patches, by field name.
fn merge_key(field: &str) -> Option<&'static str> {
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "env"
        | "volumes"
        | "imagePullSecrets" => Some("name"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "conditions" => Some("type"),
        "hostAliases" => Some("ip"),
        "tolerations" => Some("key"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

/// `ports` merge by `containerPort` in containers and by `port` in services.
fn ports_key(items: &[Value]) -> &'static str {
    if items.iter().any(|p| p.get("containerPort").is_some()) {
        "containerPort"
    } else {
        "port"
    }
}

/// The merge key of the list `field` holding `items`, if it is merged by
/// key rather than replaced.
pub(crate) fn list_merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    match field {
        "ports" => Some(ports_key(items)),
        _ => merge_key(field),
    }
}

fn merge_list(field: &str, target: &mut Vec<Value>, patch: Vec<Value>) {
    let key = list_merge_key(field, &patch);
    let Some(key) = key else {
        *target = patch.into_iter().filter(|v| !v.is_null()).collect();
        return;
    };
    if !patch.iter().all(Value::is_object) {
        *target = patch;
        return;
    }
    for item in patch {
        let directive = item.get("$patch").and_then(Value::as_str).map(String::from);
        let id = item.get(key).cloned();
        let existing = target
            .iter()
            .position(|t| id.is_some() && t.get(key) == id.as_ref());
        match (directive.as_deref(), existing) {
            (Some("delete"), Some(i)) => {
                target.remove(i);
            }
            (Some("delete"), None) => {}
            (Some("replace"), Some(i)) => {
                let mut item = item;
                if let Some(o) = item.as_object_mut() {
                    o.remove("$patch");
                }
                target[i] = item;
            }
            (_, Some(i)) => strategic_merge(&mut target[i], item),
            (_, None) => {
                let mut fresh = Value::Object(Map::new());
                strategic_merge(&mut fresh, item);
                target.push(fresh);
            }
        }
    }
}

/// Applies a strategic merge patch to `target`.
pub fn strategic_merge(target: &mut Value, patch: Value) {
    let Value::Object(patch) = patch else {
        *target = patch;
        return;
    };
    if patch.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut p = patch;
        p.remove("$patch");
        *target = Value::Object(p);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let retain: Option<Vec<String>> =
        patch
            .get("$retainKeys")
            .and_then(Value::as_array)
            .map(|keys| {
                keys.iter()
                    .filter_map(|k| k.as_str().map(String::from))
                    .collect()
            });
    let Some(obj) = target.as_object_mut() else {
        return;
    };
    for (k, v) in patch {
        if k == "$patch" || k == "$retainKeys" || k.starts_with("$setElementOrder/") {
            continue;
        }
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(Value::Array(list)), Value::Array(remove)) = (obj.get_mut(field), &v) {
                list.retain(|x| !remove.contains(x));
            }
            continue;
        }
        match v {
            Value::Null => {
                obj.remove(&k);
            }
            Value::Object(_) => {
                let entry = obj.entry(k).or_insert(Value::Object(Map::new()));
                strategic_merge(entry, v);
            }
            Value::Array(items) => {
                let entry = obj.entry(k.clone()).or_insert(Value::Array(Vec::new()));
                if let Value::Array(list) = entry {
                    merge_list(&k, list, items);
                } else {
                    *entry = Value::Array(items);
                }
            }
            other => {
                obj.insert(k, other);
            }
        }
    }
    if let Some(keys) = retain {
        obj.retain(|k, _| keys.contains(k));
    }
}

/// RFC 7386 merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// Why a JSON patch was not applied.
#[derive(Debug, thiserror::Error)]
pub enum JsonPatchError {
    /// The body is not a list of operations.
    #[error("{0}")]
    Decode(String),
    /// An operation failed (a `test` that did not hold, a missing path).
    #[error("{0}")]
    Apply(String),
}

/// RFC 6902 JSON patch; `target` is unchanged when an operation fails.
pub fn json_patch(target: &mut Value, patch: &Value) -> Result<(), JsonPatchError> {
    let ops: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| JsonPatchError::Decode(e.to_string()))?;
    json_patch::patch(target, &ops).map_err(|e| JsonPatchError::Apply(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectl_apply_patch_updates_the_container_by_name() {
        let mut live = json!({"spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80, "protocol": "TCP"}]},
            {"name": "side", "image": "busybox"}
        ]}}}});
        let patch = json!({"metadata": {"annotations": {"a": "b"}}, "spec": {"replicas": 3, "template": {"spec": {
            "$setElementOrder/containers": [{"name": "nginx"}, {"name": "side"}],
            "containers": [{"image": "nginx:1.26", "name": "nginx"}]}}}});
        strategic_merge(&mut live, patch);
        assert_eq!(live["spec"]["replicas"], 3);
        let containers = live["spec"]["template"]["spec"]["containers"]
            .as_array()
            .expect("list");
        assert_eq!(containers.len(), 2);
        assert_eq!(containers[0]["image"], "nginx:1.26");
        assert_eq!(
            containers[0]["ports"][0]["containerPort"], 80,
            "untouched fields stay"
        );
        assert!(
            live["spec"]["template"]["spec"]
                .get("$setElementOrder/containers")
                .is_none()
        );
    }

    #[test]
    fn nulls_delete_and_directives_apply() {
        let mut live = json!({"spec": {"paused": true, "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}], "args": ["x", "y"]}});
        strategic_merge(
            &mut live,
            json!({"spec": {"paused": null, "env": [{"name": "A", "$patch": "delete"}], "$deleteFromPrimitiveList/args": ["x"]}}),
        );
        assert!(live["spec"].get("paused").is_none());
        assert_eq!(live["spec"]["env"], json!([{"name": "B", "value": "2"}]));
        assert_eq!(live["spec"]["args"], json!(["y"]));
    }

    #[test]
    fn merge_and_json_patch() {
        let mut obj = json!({"metadata": {"labels": {"app": "x", "old": "y"}}});
        merge_patch(
            &mut obj,
            &json!({"metadata": {"labels": {"app": "z", "old": null}}}),
        );
        assert_eq!(obj["metadata"]["labels"], json!({"app": "z"}));
        json_patch(
            &mut obj,
            &json!([{"op": "replace", "path": "/metadata/labels/app", "value": "w"}]),
        )
        .expect("patch");
        assert_eq!(obj["metadata"]["labels"]["app"], "w");
        assert!(matches!(
            json_patch(&mut obj, &json!([{"op": "remove", "path": "/nope"}])),
            Err(JsonPatchError::Apply(_))
        ));
        assert!(matches!(
            json_patch(
                &mut obj,
                &json!([{"op": "test", "path": "/metadata/labels/app", "value": "no"}])
            ),
            Err(JsonPatchError::Apply(_))
        ));
        assert!(matches!(
            json_patch(&mut obj, &json!({"op": "add"})),
            Err(JsonPatchError::Decode(_))
        ));
    }
}
