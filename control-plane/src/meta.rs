//! Typed accessors for the object metadata the controllers read (name,
//! namespace, uid, labels, owner references), so that a JSON pointer into
//! `metadata` is spelled in one place rather than in every controller.
//!
//! Missing fields read as empty: the controllers only see objects the API
//! server validated, where a missing name or uid means "not this object".

use std::collections::BTreeMap;

use serde_json::Value;

/// The string at `pointer`, if there is one.
pub fn str_at<'a>(obj: &'a Value, pointer: &str) -> Option<&'a str> {
    obj.pointer(pointer).and_then(Value::as_str)
}

/// The integer at `pointer`, or 0.
pub fn int_at(obj: &Value, pointer: &str) -> i64 {
    obj.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// `metadata.name` (empty if missing).
pub fn name(obj: &Value) -> &str {
    str_at(obj, "/metadata/name").unwrap_or_default()
}

/// `metadata.namespace`, `default` if missing (as the API server defaults it).
pub fn namespace(obj: &Value) -> &str {
    str_at(obj, "/metadata/namespace").unwrap_or("default")
}

/// `metadata.uid` (empty if missing).
pub fn uid(obj: &Value) -> &str {
    str_at(obj, "/metadata/uid").unwrap_or_default()
}

/// `metadata.labels` (empty if missing or malformed).
pub fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// `metadata.annotations[key]`.
pub fn annotation<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get("metadata")?.get("annotations")?.get(key)?.as_str()
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// `metadata.ownerReferences`.
pub fn owner_references(obj: &Value) -> impl Iterator<Item = &Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The owner reference with `controller: true`, if any.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    owner_references(obj).find(|r| r["controller"] == Value::Bool(true))
}

/// The uid of the object's controller.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    controller_ref(obj)?["uid"].as_str()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn accessors_read_metadata_and_default_what_is_missing() {
        let obj = json!({"metadata": {
            "name": "web", "uid": "u1", "labels": {"app": "web"},
            "annotations": {"a": "b"}, "deletionTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [
                {"kind": "Deployment", "name": "d", "uid": "d1"},
                {"kind": "ReplicaSet", "name": "rs", "uid": "rs1", "controller": true},
            ],
        }});
        assert_eq!(name(&obj), "web");
        assert_eq!(namespace(&obj), "default");
        assert_eq!(uid(&obj), "u1");
        assert_eq!(labels(&obj).get("app").map(String::as_str), Some("web"));
        assert_eq!(annotation(&obj, "a"), Some("b"));
        assert!(deleting(&obj));
        assert_eq!(owner_references(&obj).count(), 2);
        assert_eq!(controller_ref(&obj).map(|r| &r["name"]), Some(&json!("rs")));
        assert_eq!(controller_uid(&obj), Some("rs1"));
        let empty = json!({});
        assert_eq!((name(&empty), uid(&empty)), ("", ""));
        assert!(labels(&empty).is_empty() && !deleting(&empty));
        assert_eq!(controller_uid(&empty), None);
        assert_eq!(int_at(&empty, "/spec/replicas"), 0);
    }
}
