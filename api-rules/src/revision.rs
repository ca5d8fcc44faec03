//! ControllerRevisions (`apps/v1`): the snapshot a StatefulSet or
//! DaemonSet rolls back to. It must carry data, a non-negative revision,
//! and its data never changes once written.

use serde_json::Value;

fn data(revision: &Value) -> Option<&Value> {
    revision.get("data").filter(|d| !d.is_null())
}

/// Every problem with a ControllerRevision.
pub fn validate_controller_revision(revision: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    if data(revision).is_none() {
        errors.push("data: Required value: data is mandatory".to_string());
    }
    if let Some(n) = revision
        .get("revision")
        .and_then(Value::as_i64)
        .filter(|n| *n < 0)
    {
        errors.push(format!(
            "revision: Invalid value: {n}: must be greater than or equal to 0"
        ));
    }
    errors
}

/// An update may change metadata and the revision number, never the data.
/// Upstream prints the Go value of the data; Skiff shows its JSON.
pub fn validate_controller_revision_update(old: &Value, new: &Value) -> Vec<String> {
    let (before, after) = (data(old), data(new));
    if before == after {
        return Vec::new();
    }
    vec![format!(
        "data: Invalid value: {}: field is immutable",
        after.cloned().unwrap_or(Value::Null)
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn data_is_required_and_fixed() {
        let good = json!({"data": {"spec": {"template": {}}}, "revision": 1});
        assert!(validate_controller_revision(&good).is_empty());
        assert_eq!(
            validate_controller_revision(&json!({"revision": -1})),
            [
                "data: Required value: data is mandatory",
                "revision: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
        let mut renumbered = good.clone();
        renumbered["revision"] = json!(4);
        assert!(validate_controller_revision_update(&good, &renumbered).is_empty());
        assert_eq!(
            validate_controller_revision_update(&good, &json!({"data": {"x": 1}, "revision": 1})),
            ["data: Invalid value: {\"x\":1}: field is immutable"]
        );
    }
}
