//! ConfigMaps and Secrets: key syntax, size, Secret types and the
//! `immutable` flag, with the API server's wording.

use k8s_openapi::api::core::v1::{ConfigMap, Secret};

use crate::metadata::go_quote;

/// Upstream's limit on a ConfigMap's or Secret's data, in bytes.
pub const MAX_DATA_SIZE: usize = 1024 * 1024;

const IMMUTABLE_SET: &str = "Forbidden: field is immutable when `immutable` is set";

/// Messages for a ConfigMap or Secret key (empty when valid).
pub fn config_key_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if key.len() > 253 {
        errors.push("must be no more than 253 bytes".to_string());
    }
    let charset_ok = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if !charset_ok {
        errors.push("a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string());
    }
    if key == "." {
        errors.push("must not be '.'".to_string());
    } else if key == ".." {
        errors.push("must not be '..'".to_string());
    } else if key.starts_with("..") {
        errors.push("must not start with '..'".to_string());
    }
    errors
}

fn key_errors(field: &str, key: &str, errors: &mut Vec<String>) {
    for m in config_key_errors(key) {
        errors.push(format!(
            "{field}[{key}]: Invalid value: {}: {m}",
            go_quote(key)
        ));
    }
}

/// Every problem with a ConfigMap's contents (metadata aside).
pub fn validate_config_map(cm: &ConfigMap) -> Vec<String> {
    let mut errors = Vec::new();
    let mut total = 0;
    let binary = cm.binary_data.as_ref();
    for (key, value) in cm.data.iter().flatten() {
        key_errors("data", key, &mut errors);
        if binary.is_some_and(|b| b.contains_key(key)) {
            errors.push(format!(
                "data[{key}]: Invalid value: {}: duplicate of key present in binaryData",
                go_quote(key)
            ));
        }
        total += value.len();
    }
    for (key, value) in binary.into_iter().flatten() {
        key_errors("binaryData", key, &mut errors);
        total += value.0.len();
    }
    if total > MAX_DATA_SIZE {
        // Upstream names the whole object with an empty path, printed `[]`.
        errors.push(format!(
            "[]: Too long: must have at most {MAX_DATA_SIZE} bytes"
        ));
    }
    errors
}

/// What may not change once a ConfigMap is `immutable`.
pub fn validate_config_map_update(old: &ConfigMap, new: &ConfigMap) -> Vec<String> {
    let mut errors = Vec::new();
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errors.push(format!("immutable: {IMMUTABLE_SET}"));
        }
        if old.data != new.data {
            errors.push(format!("data: {IMMUTABLE_SET}"));
        }
        if old.binary_data != new.binary_data {
            errors.push(format!("binaryData: {IMMUTABLE_SET}"));
        }
    }
    errors
}

/// Go's `encoding/json` verdict on a docker config: `None` when it is a JSON
/// object, else the error text Go would give.
fn docker_config_error(bytes: &[u8]) -> Option<String> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    match serde_json::from_slice::<serde_json::Value>(bytes) {
        Ok(serde_json::Value::Object(_)) => None,
        Ok(other) => {
            let kind = match other {
                serde_json::Value::Array(_) => "array",
                serde_json::Value::String(_) => "string",
                serde_json::Value::Bool(_) => "bool",
                serde_json::Value::Number(_) => "number",
                _ => return None, // null leaves the map nil: accepted
            };
            Some(format!(
                "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            ))
        }
        Err(e) if e.is_eof() => Some("unexpected end of JSON input".into()),
        Err(_) => match first {
            Some(c) if !b"{[\"-0123456789tfn".contains(c) => Some(format!(
                "invalid character '{}' looking for beginning of value",
                *c as char
            )),
            _ => Some("invalid character in JSON input".into()),
        },
    }
}

/// Every problem with a Secret's contents (metadata aside): keys, size and
/// the keys its `type` requires.
pub fn validate_secret(secret: &Secret) -> Vec<String> {
    let mut errors = Vec::new();
    let empty = Default::default();
    let data = secret.data.as_ref().unwrap_or(&empty);
    let mut total = 0;
    for (key, value) in data {
        key_errors("data", key, &mut errors);
        total += value.0.len();
    }
    if total > MAX_DATA_SIZE {
        errors.push(format!(
            "data: Too long: must have at most {MAX_DATA_SIZE} bytes"
        ));
    }
    let required = |key: &str| format!("data[{key}]: Required value");
    match secret.type_.as_deref().unwrap_or_default() {
        "kubernetes.io/service-account-token" => {
            let name = secret
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"));
            if name.is_none_or(|n| n.is_empty()) {
                errors.push(
                    "metadata.annotations[kubernetes.io/service-account.name]: Required value"
                        .into(),
                );
            }
        }
        kind @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if kind == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.get(key) {
                None => errors.push(required(key)),
                Some(bytes) => {
                    if let Some(e) = docker_config_error(&bytes.0) {
                        errors.push(format!(
                            "data[{key}]: Invalid value: \"<secret contents redacted>\": {e}"
                        ));
                    }
                }
            }
        }
        // Upstream builds these paths with a literal `data[%s]`.
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            errors.push("data[%s][username]: Required value".into());
            errors.push("data[%s][password]: Required value".into());
        }
        "kubernetes.io/ssh-auth" if data.get("ssh-privatekey").is_none_or(|v| v.0.is_empty()) => {
            errors.push("data[%s][ssh-privatekey]: Required value".into());
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !data.contains_key(key) {
                    errors.push(required(key));
                }
            }
        }
        _ => {}
    }
    errors
}

/// What may not change on a Secret update: its `type`, and its data once
/// `immutable`.
pub fn validate_secret_update(old: &Secret, new: &Secret) -> Vec<String> {
    let mut errors = Vec::new();
    if old.type_ != new.type_ {
        errors.push(format!(
            "type: Invalid value: {}: field is immutable",
            go_quote(new.type_.as_deref().unwrap_or_default())
        ));
    }
    if old.immutable == Some(true) {
        if new.immutable != Some(true) {
            errors.push(format!("immutable: {IMMUTABLE_SET}"));
        }
        if old.data != new.data {
            errors.push(format!("data: {IMMUTABLE_SET}"));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;

    fn cm(yaml: &str) -> ConfigMap {
        serde_yaml::from_str(yaml).expect("configmap")
    }

    #[test]
    fn config_map_keys_duplicates_and_size() {
        let errors = validate_config_map(&cm(
            "{metadata: {name: c}, data: {'bad key': x, dup: y, '..x': z}, binaryData: {dup: eHg=}}",
        ));
        assert!(errors.contains(&"data[bad key]: Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')".to_string()), "{errors:#?}");
        assert!(
            errors.contains(
                &"data[dup]: Invalid value: \"dup\": duplicate of key present in binaryData"
                    .to_string()
            ),
            "{errors:#?}"
        );
        assert!(
            errors.contains(
                &"data[..x]: Invalid value: \"..x\": must not start with '..'".to_string()
            ),
            "{errors:#?}"
        );
        let mut big = cm("{metadata: {name: c}}");
        big.data = Some([("a".to_string(), "x".repeat(MAX_DATA_SIZE))].into());
        assert!(validate_config_map(&big).is_empty());
        big.binary_data = Some([("b".to_string(), ByteString(vec![1]))].into());
        assert_eq!(
            validate_config_map(&big),
            ["[]: Too long: must have at most 1048576 bytes"]
        );
    }

    #[test]
    fn immutable_config_maps_keep_their_data() {
        let old = cm("{metadata: {name: c}, immutable: true, data: {a: x}}");
        assert!(validate_config_map_update(&old, &old).is_empty());
        let new = cm("{metadata: {name: c}, data: {a: y}}");
        assert_eq!(
            validate_config_map_update(&old, &new),
            [
                "immutable: Forbidden: field is immutable when `immutable` is set",
                "data: Forbidden: field is immutable when `immutable` is set"
            ]
        );
    }

    fn secret(yaml: &str) -> Secret {
        serde_yaml::from_str(yaml).expect("secret")
    }

    #[test]
    fn secret_types_require_their_keys() {
        assert_eq!(
            validate_secret(&secret("{type: kubernetes.io/tls, data: {tls.crt: eA==}}")),
            ["data[tls.key]: Required value"]
        );
        assert_eq!(
            validate_secret(&secret("{type: kubernetes.io/basic-auth}")),
            [
                "data[%s][username]: Required value",
                "data[%s][password]: Required value"
            ]
        );
        assert!(
            validate_secret(&secret(
                "{type: kubernetes.io/basic-auth, data: {username: eA==}}"
            ))
            .is_empty()
        );
        assert_eq!(
            validate_secret(&secret("{type: kubernetes.io/ssh-auth}")),
            ["data[%s][ssh-privatekey]: Required value"]
        );
        assert_eq!(
            validate_secret(&secret("{type: kubernetes.io/dockerconfigjson}")),
            ["data[.dockerconfigjson]: Required value"]
        );
        // "e30=" is `{}`; "eA==" is `x`.
        assert!(
            validate_secret(&secret(
                "{type: kubernetes.io/dockerconfigjson, data: {.dockerconfigjson: e30=}}"
            ))
            .is_empty()
        );
        assert_eq!(
            validate_secret(&secret(
                "{type: kubernetes.io/dockerconfigjson, data: {.dockerconfigjson: eA==}}"
            )),
            [
                "data[.dockerconfigjson]: Invalid value: \"<secret contents redacted>\": invalid character 'x' looking for beginning of value"
            ]
        );
        assert_eq!(
            validate_secret(&secret("{type: kubernetes.io/service-account-token}")),
            ["metadata.annotations[kubernetes.io/service-account.name]: Required value"]
        );
    }

    #[test]
    fn secret_type_is_immutable_and_so_is_immutable_data() {
        let old = secret("{type: Opaque, immutable: true, data: {a: eA==}}");
        let new = secret("{type: kubernetes.io/tls, immutable: true, data: {a: eQ==}}");
        assert_eq!(
            validate_secret_update(&old, &new),
            [
                "type: Invalid value: \"kubernetes.io/tls\": field is immutable",
                "data: Forbidden: field is immutable when `immutable` is set"
            ]
        );
        let mut big = secret("{}");
        big.data = Some([("a".to_string(), ByteString(vec![0; MAX_DATA_SIZE + 1]))].into());
        assert_eq!(
            validate_secret(&big),
            ["data: Too long: must have at most 1048576 bytes"]
        );
    }
}
