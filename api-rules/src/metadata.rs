//! Object metadata as the API server validates it for every kind: names,
//! generateName, labels, annotations, finalizers and owner references.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::names::{is_dns1123_label, is_dns1123_subdomain};

/// Upstream's limit on the summed length of annotation keys and values.
pub const TOTAL_ANNOTATION_SIZE: usize = 256 * 1024;

const LABEL_KEY_REGEX: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const DNS1123_LABEL_REGEX: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_SUBDOMAIN_REGEX: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_WITH_UNDERSCORE_REGEX: &str =
    "_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*";
const DNS1035_LABEL_REGEX: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";

/// Upstream's way of quoting a regex with examples in a message: each
/// example followed by `', '` and joined with ` or `, hence the double space.
fn regex_error(message: &str, regex: &str, examples: &[&str]) -> String {
    let examples: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{message} (e.g. {}regex used for validation is '{regex}')",
        examples.join(" or ")
    )
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} bytes")
}

/// A label key's name part: alphanumerics, '-', '_', '.', alphanumeric at
/// both ends.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Messages for a DNS-1123 subdomain (empty when valid).
pub fn dns1123_subdomain_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 253 {
        errors.push(max_len_error(253));
    }
    if !is_dns1123_subdomain_syntax(value) {
        errors.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_REGEX,
            &["example.com"],
        ));
    }
    errors
}

/// Upstream's relaxed subdomain (`IsDNS1123SubdomainWithUnderscore`),
/// used for pod DNS search domains (`_sip._tcp.example.com` is a real
/// search domain): labels may contain '_' and start with one.
pub fn dns1123_subdomain_with_underscore_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 253 {
        errors.push(max_len_error(253));
    }
    let label_ok = |l: &str| {
        let l = l.strip_prefix('_').unwrap_or(l);
        let b = l.as_bytes();
        !b.is_empty()
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
    };
    if value.is_empty() || !value.split('.').all(label_ok) {
        errors.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN_WITH_UNDERSCORE_REGEX,
            &["example.com"],
        ));
    }
    errors
}

fn is_dns1123_label_chars(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The subdomain regex alone, without its length limit.
fn is_dns1123_subdomain_syntax(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(is_dns1123_label_chars)
}

/// Messages for a DNS-1123 label (empty when valid).
pub fn dns1123_label_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push(max_len_error(63));
    }
    if !is_dns1123_label_chars(value) {
        if is_dns1123_subdomain_syntax(value) {
            errors.push("must not contain dots".to_string());
        } else {
            errors.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                DNS1123_LABEL_REGEX,
                &["my-name", "123-abc"],
            ));
        }
    }
    errors
}

/// Messages for a DNS-1035 label (Service names; empty when valid).
pub fn dns1035_label_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push(max_len_error(63));
    }
    if !(is_dns1123_label_chars(value) && value.starts_with(|c: char| c.is_ascii_lowercase())) {
        errors.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            DNS1035_LABEL_REGEX,
            &["my-name", "abc-123"],
        ));
    }
    errors
}

/// Messages for a qualified name (label and annotation keys, finalizers):
/// an optional DNS subdomain prefix and '/', then a name part.
pub fn qualified_name_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = value.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_string());
            } else {
                errors.extend(
                    dns1123_subdomain_errors(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errors.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                    LABEL_KEY_REGEX,
                    &["MyName", "my.name", "123-abc"],
                )
            ));
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errors.push(format!("name part {}", max_len_error(63)));
    }
    if !is_label_name(name) {
        errors.push(format!(
            "name part {}",
            regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                LABEL_KEY_REGEX,
                &["MyName", "my.name", "123-abc"],
            )
        ));
    }
    errors
}

/// Messages for a label value (empty when valid).
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push(max_len_error(63));
    }
    if !value.is_empty() && !is_label_name(value) {
        errors.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            &format!("({LABEL_KEY_REGEX})?"),
            &["MyValue", "my_value", "12345"],
        ));
    }
    errors
}

/// Go's `%q` of a string (what `Invalid value: "..."` shows).
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn invalid(path: &str, value: &str, message: &str) -> String {
    format!("{path}: Invalid value: {}: {message}", go_quote(value))
}

/// Label keys and values under `path` (`metadata.labels`).
pub fn validate_labels(path: &str, labels: &BTreeMap<String, String>) -> Vec<String> {
    let mut errors = Vec::new();
    for (key, value) in labels {
        for m in qualified_name_errors(key) {
            errors.push(invalid(path, key, &m));
        }
        for m in label_value_errors(value) {
            errors.push(invalid(path, value, &m));
        }
    }
    errors
}

/// Annotation keys (qualified names, case-insensitive) and their total size.
pub fn validate_annotations(path: &str, annotations: &BTreeMap<String, String>) -> Vec<String> {
    let mut errors = Vec::new();
    for key in annotations.keys() {
        for m in qualified_name_errors(&key.to_lowercase()) {
            errors.push(invalid(path, key, &m));
        }
    }
    let total: usize = annotations.iter().map(|(k, v)| k.len() + v.len()).sum();
    if total > TOTAL_ANNOTATION_SIZE {
        errors.push(format!(
            "{path}: Too long: must have at most {TOTAL_ANNOTATION_SIZE} bytes"
        ));
    }
    errors
}

/// Finalizer names: qualified names, and a name without a prefix must be one
/// of the standard ones.
pub fn validate_finalizers(path: &str, finalizers: &[String]) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, f) in finalizers.iter().enumerate() {
        for m in qualified_name_errors(f) {
            errors.push(invalid(path, f, &m));
        }
        if !f.contains('/') && !matches!(f.as_str(), "kubernetes" | "orphan" | "foregroundDeletion")
        {
            errors.push(invalid(
                &format!("{path}[{i}]"),
                f,
                "name is neither a standard finalizer name nor is it fully qualified",
            ));
        }
    }
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        errors.push(format!(
            "{path}: Invalid value: []string{{{}}}: finalizer orphan and foregroundDeletion cannot be both set",
            finalizers
                .iter()
                .map(|f| go_quote(f))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    errors
}

/// Owner references: apiVersion, kind, name and uid set; at most one
/// controller.
pub fn validate_owner_references(path: &str, refs: &[OwnerReference]) -> Vec<String> {
    let mut errors = Vec::new();
    let mut controller: Option<String> = None;
    for r in refs {
        // apiVersion is `group/version` or `version`; the version part is
        // what must be there.
        let version = r.api_version.rsplit('/').next().unwrap_or_default();
        if version.is_empty() {
            errors.push(invalid(
                &format!("{path}.apiVersion"),
                &r.api_version,
                "version must not be empty",
            ));
        }
        for (field, value) in [("kind", &r.kind), ("name", &r.name), ("uid", &r.uid)] {
            if value.is_empty() {
                errors.push(invalid(
                    &format!("{path}.{field}"),
                    value,
                    "must not be empty",
                ));
            }
        }
        if r.api_version == "v1" && r.kind == "Event" {
            errors.push(format!(
                "{path}: Invalid value: \"{}\": /v1, Kind=Event is disallowed from being an owner",
                r.name
            ));
        }
        if r.controller == Some(true) {
            let this = format!("{}/{}", r.kind, r.name);
            match &controller {
                Some(first) => errors.push(format!(
                    "{path}: Invalid value: \"[]\": Only one reference can have Controller set to true. Found \"true\" in references for {first} and {this}"
                )),
                None => controller = Some(this),
            }
        }
    }
    errors
}

/// How a kind's names are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// A DNS-1123 subdomain (most kinds).
    Subdomain,
    /// A DNS-1123 label (Namespaces).
    Label,
    /// A DNS-1035 label (Services).
    Dns1035,
    /// Anything usable as one URL path segment (RBAC kinds, whose names
    /// hold `:`), as upstream's `IsValidPathSegmentName`.
    PathSegment,
}

/// Upstream's `IsValidPathSegmentName` messages.
pub fn path_segment_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value == "." || value == ".." {
        errors.push(format!("may not be '{value}'"));
    }
    for c in ['/', '%'] {
        if value.contains(c) {
            errors.push(format!("may not contain '{c}'"));
        }
    }
    errors
}

impl NameRule {
    fn errors(self, value: &str) -> Vec<String> {
        match self {
            NameRule::Subdomain => dns1123_subdomain_errors(value),
            NameRule::Label => dns1123_label_errors(value),
            NameRule::Dns1035 => dns1035_label_errors(value),
            NameRule::PathSegment => path_segment_errors(value),
        }
    }
}

/// Every problem with an object's metadata (`metadata.…` lines), after
/// name generation.
pub fn validate_object_meta(meta: &ObjectMeta, rule: NameRule) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(generate) = meta.generate_name.as_deref().filter(|g| !g.is_empty()) {
        // A prefix may end in '-': the random suffix follows it.
        let masked = match generate.strip_suffix('-') {
            Some(stem) => format!("{stem}a"),
            None => generate.to_string(),
        };
        for m in rule.errors(&masked) {
            errors.push(invalid("metadata.generateName", generate, &m));
        }
    }
    match meta.name.as_deref().filter(|n| !n.is_empty()) {
        None => errors
            .push("metadata.name: Required value: name or generateName is required".to_string()),
        Some(name) => {
            for m in rule.errors(name) {
                errors.push(invalid("metadata.name", name, &m));
            }
        }
    }
    if let Some(labels) = &meta.labels {
        errors.extend(validate_labels("metadata.labels", labels));
    }
    if let Some(annotations) = &meta.annotations {
        errors.extend(validate_annotations("metadata.annotations", annotations));
    }
    if let Some(refs) = &meta.owner_references {
        errors.extend(validate_owner_references("metadata.ownerReferences", refs));
    }
    if let Some(finalizers) = &meta.finalizers {
        errors.extend(validate_finalizers("metadata.finalizers", finalizers));
    }
    errors
}

/// Whether `name` is valid under `rule` (for callers that only need a yes).
pub fn is_valid_name(name: &str, rule: NameRule) -> bool {
    match rule {
        NameRule::Subdomain => is_dns1123_subdomain(name),
        NameRule::Label => is_dns1123_label(name),
        NameRule::Dns1035 => dns1035_label_errors(name).is_empty(),
        NameRule::PathSegment => path_segment_errors(name).is_empty(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(json: &str) -> ObjectMeta {
        serde_yaml::from_str(json).expect("meta")
    }

    #[test]
    fn label_keys_and_values_use_upstream_wording() {
        let m = meta(
            r#"{name: ok, labels: {"-bad": "x", "a/b/c": "y", "ok": "bad value", "Example.com/x": "v"}}"#,
        );
        let errors = validate_object_meta(&m, NameRule::Subdomain);
        assert!(errors.contains(&"metadata.labels: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string()), "{errors:#?}");
        assert!(errors.contains(&"metadata.labels: Invalid value: \"a/b/c\": a valid label key must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')".to_string()), "{errors:#?}");
        assert!(errors.contains(&"metadata.labels: Invalid value: \"bad value\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string()), "{errors:#?}");
        assert!(
            errors
                .iter()
                .any(|e| e.starts_with("metadata.labels: Invalid value: \"Example.com/x\": prefix part a lowercase RFC 1123 subdomain")),
            "{errors:#?}"
        );
        assert_eq!(errors.len(), 4, "{errors:#?}");
        let long = "a".repeat(64);
        assert_eq!(label_value_errors(&long), ["must be no more than 63 bytes"]);
        assert!(label_value_errors("").is_empty());
        assert!(qualified_name_errors("app.kubernetes.io/name").is_empty());
    }

    #[test]
    fn annotations_are_bounded_and_keys_checked_case_insensitively() {
        let mut a = BTreeMap::new();
        a.insert(
            "Example.COM/Key".to_string(),
            "any value at all".to_string(),
        );
        assert!(validate_annotations("metadata.annotations", &a).is_empty());
        a.insert("big".to_string(), "x".repeat(TOTAL_ANNOTATION_SIZE));
        assert_eq!(
            validate_annotations("metadata.annotations", &a),
            ["metadata.annotations: Too long: must have at most 262144 bytes"]
        );
        let mut bad = BTreeMap::new();
        bad.insert("no spaces".to_string(), String::new());
        assert_eq!(validate_annotations("metadata.annotations", &bad).len(), 1);
    }

    #[test]
    fn finalizers_and_owner_references() {
        let m = meta(
            r#"{name: ok, finalizers: [kubernetes, mine, "example.com/ok", "bad/"],
               ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: a, uid: "1", controller: true},
                                 {apiVersion: "", kind: "", name: b, uid: "", controller: true}]}"#,
        );
        let errors = validate_object_meta(&m, NameRule::Subdomain);
        for expected in [
            "metadata.finalizers[1]: Invalid value: \"mine\": name is neither a standard finalizer name nor is it fully qualified",
            "metadata.finalizers: Invalid value: \"bad/\": name part must be non-empty",
            "metadata.ownerReferences.apiVersion: Invalid value: \"\": version must not be empty",
            "metadata.ownerReferences.kind: Invalid value: \"\": must not be empty",
            "metadata.ownerReferences.uid: Invalid value: \"\": must not be empty",
            "metadata.ownerReferences: Invalid value: \"[]\": Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and /b",
        ] {
            assert!(
                errors.contains(&expected.to_string()),
                "missing {expected:?} in {errors:#?}"
            );
        }
    }

    #[test]
    fn names_and_generate_name() {
        let m = meta("{generateName: web-, name: web-abcde}");
        assert!(validate_object_meta(&m, NameRule::Subdomain).is_empty());
        let m = meta("{generateName: Web-, name: Web-abcde}");
        let errors = validate_object_meta(&m, NameRule::Subdomain);
        assert!(
            errors[0].starts_with(
                "metadata.generateName: Invalid value: \"Web-\": a lowercase RFC 1123 subdomain"
            ),
            "{errors:#?}"
        );
        assert!(
            errors[1].starts_with("metadata.name: Invalid value: \"Web-abcde\""),
            "{errors:#?}"
        );
        assert_eq!(
            validate_object_meta(&meta("{name: a.b}"), NameRule::Label),
            ["metadata.name: Invalid value: \"a.b\": must not contain dots"]
        );
        assert_eq!(
            validate_object_meta(&meta("{}"), NameRule::Label),
            ["metadata.name: Required value: name or generateName is required"]
        );
        assert!(
            validate_object_meta(&meta("{name: 1abc}"), NameRule::Dns1035)[0]
                .contains("a DNS-1035 label must consist of")
        );
    }
}
