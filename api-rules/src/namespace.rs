//! Namespaces: the finalizers in `spec` (what must finish before a
//! namespace is gone), judged like metadata finalizers but reported under
//! the list itself, as upstream does.

use serde_json::Value;

use crate::metadata::{go_quote, qualified_name_errors};

/// Finalizer names upstream knows without a prefix.
const STANDARD: [&str; 3] = ["kubernetes", "orphan", "foregroundDeletion"];

/// Every problem with a Namespace's spec.
pub fn validate_namespace(namespace: &Value) -> Vec<String> {
    let path = "spec.finalizers";
    let mut errors = Vec::new();
    let finalizers = namespace
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    for f in finalizers.iter().map(|f| f.as_str().unwrap_or_default()) {
        for m in qualified_name_errors(f) {
            errors.push(format!("{path}: Invalid value: {}: {m}", go_quote(f)));
        }
        if !f.contains('/') && !STANDARD.contains(&f) {
            errors.push(format!(
                "{path}: Invalid value: {}: name is neither a standard finalizer name nor is it fully qualified",
                go_quote(f)
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finalizers_are_standard_or_qualified() {
        assert!(
            validate_namespace(
                &json!({"spec": {"finalizers": ["kubernetes", "example.com/cleanup"]}})
            )
            .is_empty()
        );
        assert_eq!(
            validate_namespace(&json!({"spec": {"finalizers": ["cleanup", "a/b/c"]}})),
            [
                "spec.finalizers: Invalid value: \"cleanup\": name is neither a standard finalizer name nor is it fully qualified",
                "spec.finalizers: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
            ]
        );
    }
}
