//! What upstream's typed JSON decoder refuses but a `serde_json::Value`
//! keeps: label and annotation values that are not strings, ConfigMap and
//! Secret values of the wrong type, Secret and binaryData values that are
//! not base64. Each is a 400 worded as Go's `encoding/json` words it
//! (`json: cannot unmarshal number into Go struct field
//! ObjectMeta.metadata.labels of type string`), prefixed as upstream's
//! handlers prefix decode errors. Also Secret `stringData`, which upstream
//! folds into `data` while decoding.

use base64::Engine;
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::ResourceType;

/// Go's name for the JSON type of `v`.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn unmarshal(found: &Value, owner: &str, field: &str, go_type: &str) -> String {
    format!(
        "json: cannot unmarshal {} into Go struct field {owner}.{field} of type {go_type}",
        json_kind(found)
    )
}

/// Where Go's base64 decoder (standard alphabet, padded, newlines ignored)
/// fails on `s`: `Some(byte offset)`, as `illegal base64 data at input
/// byte N` reports it.
pub fn base64_error_offset(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let valid = |c: u8| c.is_ascii_alphanumeric() || c == b'+' || c == b'/';
    let skip_newlines = |mut i: usize| {
        while i < b.len() && (b[i] == b'\n' || b[i] == b'\r') {
            i += 1;
        }
        i
    };
    let mut i = 0;
    loop {
        let mut j = 0;
        while j < 4 {
            i = skip_newlines(i);
            if i == b.len() {
                return match j {
                    0 => None,
                    // A padded encoding needs whole quanta.
                    _ => Some(i - j),
                };
            }
            let c = b[i];
            i += 1;
            if c == b'=' {
                match j {
                    0 | 1 => return Some(i - 1),
                    2 => {
                        i = skip_newlines(i);
                        if i == b.len() {
                            return Some(b.len());
                        }
                        if b[i] != b'=' {
                            return Some(i - 1);
                        }
                        i += 1;
                    }
                    _ => {}
                }
                i = skip_newlines(i);
                return (i < b.len()).then_some(i);
            }
            if !valid(c) {
                return Some(i - 1);
            }
            j += 1;
        }
    }
}

/// Checks the field types upstream's decoder checks; `Err` is a 400.
pub fn check(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    check_inner(rt, obj).map_err(|message| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {message}",
            rt.kind, rt.version, rt.kind
        ))
    })
}

fn string_map(v: Option<&Value>, owner: &str, field: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) => {
            for value in m.values() {
                if !value.is_string() && !value.is_null() {
                    return Err(unmarshal(value, owner, field, "string"));
                }
            }
            Ok(())
        }
        Some(other) => Err(unmarshal(other, owner, field, "map[string]string")),
    }
}

fn bytes_map(v: Option<&Value>, owner: &str, field: &str) -> Result<(), String> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Object(m)) => {
            for value in m.values() {
                match value {
                    Value::Null => {}
                    Value::String(s) => {
                        if let Some(at) = base64_error_offset(s) {
                            return Err(format!("illegal base64 data at input byte {at}"));
                        }
                    }
                    other => return Err(unmarshal(other, owner, field, "[]uint8")),
                }
            }
            Ok(())
        }
        Some(other) => Err(unmarshal(other, owner, field, "map[string][]uint8")),
    }
}

fn metadata(meta: Option<&Value>, path: &str) -> Result<(), String> {
    let Some(meta) = meta else { return Ok(()) };
    string_map(meta.get("labels"), "ObjectMeta", &format!("{path}.labels"))?;
    string_map(
        meta.get("annotations"),
        "ObjectMeta",
        &format!("{path}.annotations"),
    )
}

fn check_inner(rt: &ResourceType, obj: &Value) -> Result<(), String> {
    metadata(obj.get("metadata"), "metadata")?;
    for template in [
        "/spec/template/metadata",
        "/spec/jobTemplate/spec/template/metadata",
    ] {
        metadata(obj.pointer(template), &template[1..].replace('/', "."))?;
    }
    match rt.kind {
        "ConfigMap" => {
            string_map(obj.get("data"), "ConfigMap", "data")?;
            bytes_map(obj.get("binaryData"), "ConfigMap", "binaryData")
        }
        "Secret" => {
            bytes_map(obj.get("data"), "Secret", "data")?;
            string_map(obj.get("stringData"), "Secret", "stringData")
        }
        _ => Ok(()),
    }
}

/// Upstream's decoding of a Secret: each `stringData` entry is encoded into
/// `data` (replacing a key already there) and `stringData` is dropped, so
/// it is never stored or returned. Left alone when `stringData` holds
/// something other than strings; [`check`] refuses that.
pub fn fold_string_data(obj: &mut Value) {
    let Some(string_data) = obj.get("stringData").and_then(Value::as_object) else {
        if obj.get("stringData").is_some_and(Value::is_null)
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("stringData");
        }
        return;
    };
    if !string_data.values().all(|v| v.is_string() || v.is_null()) {
        return;
    }
    let encoded: Vec<(String, Value)> = string_data
        .iter()
        .filter_map(|(k, v)| {
            let s = v.as_str()?;
            Some((
                k.clone(),
                json!(base64::engine::general_purpose::STANDARD.encode(s)),
            ))
        })
        .collect();
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in encoded {
        obj["data"][k] = v;
    }
    if let Some(m) = obj.as_object_mut() {
        m.remove("stringData");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_errors_name_the_byte_go_names() {
        assert_eq!(base64_error_offset("aGVsbG8="), None);
        assert_eq!(base64_error_offset("aGVs\nbG8="), None);
        assert_eq!(base64_error_offset(""), None);
        assert_eq!(base64_error_offset("not base64!"), Some(3));
        assert_eq!(base64_error_offset("abc"), Some(0));
        assert_eq!(base64_error_offset("abcde"), Some(4));
        assert_eq!(base64_error_offset("a==="), Some(1));
        assert_eq!(base64_error_offset("ab="), Some(3));
        assert_eq!(base64_error_offset("ab==x"), Some(4));
    }

    #[test]
    fn wrong_types_are_decode_errors() {
        let cm = crate::registry::kinds::CONFIGMAPS;
        let err =
            check(cm, &json!({"metadata": {"name": "a", "labels": {"a": 1}}})).expect_err("labels");
        assert_eq!(err.code, 400);
        assert_eq!(
            err.message,
            "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"
        );
        let (secret, deploy) = (
            crate::registry::kinds::SECRETS,
            crate::registry::kinds::DEPLOYMENTS,
        );
        for (rt, obj, ending) in [
            (
                cm,
                json!({"metadata": {"annotations": {"a": true}}}),
                "cannot unmarshal bool into Go struct field ObjectMeta.metadata.annotations of type string",
            ),
            (
                cm,
                json!({"data": {"k": {"x": 1}}}),
                "cannot unmarshal object into Go struct field ConfigMap.data of type string",
            ),
            (
                cm,
                json!({"binaryData": {"k": "%%%"}}),
                ": illegal base64 data at input byte 0",
            ),
            (
                secret,
                json!({"stringData": {"k": 5}}),
                "Go struct field Secret.stringData of type string",
            ),
            (
                deploy,
                json!({"spec": {"template": {"metadata": {"labels": {"a": [1]}}}}}),
                "cannot unmarshal array into Go struct field ObjectMeta.spec.template.metadata.labels of type string",
            ),
        ] {
            let err = check(rt, &obj).expect_err(ending);
            assert!(err.message.ends_with(ending), "{}", err.message);
        }
        let err = check(secret, &json!({"data": {"k": "not base64!"}})).expect_err("secret");
        assert_eq!(
            err.message,
            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3"
        );
        assert!(
            check(
                secret,
                &json!({"data": {"k": "eA=="}, "stringData": {"a": "b"}})
            )
            .is_ok()
        );
    }

    #[test]
    fn string_data_is_folded_into_data() {
        let mut s =
            json!({"data": {"a": "eA==", "b": "eA=="}, "stringData": {"b": "hello", "c": ""}});
        fold_string_data(&mut s);
        assert_eq!(s, json!({"data": {"a": "eA==", "b": "aGVsbG8=", "c": ""}}));
        let mut only = json!({"stringData": {"k": "v"}});
        fold_string_data(&mut only);
        assert_eq!(only, json!({"data": {"k": "dg=="}}));
        let mut bad = json!({"stringData": {"k": 1}});
        fold_string_data(&mut bad);
        assert!(bad.get("stringData").is_some());
    }
}
