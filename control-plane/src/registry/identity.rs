//! A body's `apiVersion` and `kind` against the URL, refused as upstream's
//! decoder refuses them: a body may leave them out (the URL supplies them)
//! but may not name another type or hold something other than strings.

use serde_json::Value;

use super::error::ApiError;
use super::resources::{self, ResourceType};

/// Upstream's short form of a body in decode errors: JSON objects cut to 30
/// bytes, anything else as hex.
fn summarize(obj: &Value) -> String {
    let text = obj.to_string();
    if !text.starts_with('{') {
        let hex: String = text.bytes().take(30).map(|b| format!("{b:02x}")).collect();
        return if text.len() > 30 {
            format!("{hex} ...")
        } else {
            hex
        };
    }
    if text.len() <= 30 {
        return text;
    }
    let mut cut = 30;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{} ...", &text[..cut])
}

fn unrecognized(rt: &ResourceType, obj: &Value, why: String) -> ApiError {
    ApiError::bad_request(format!(
        "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: {why} ({})",
        rt.kind,
        summarize(obj)
    ))
}

/// Go's package name of the internal type a kind converts to.
fn internal_package(group: &str) -> &str {
    if group.is_empty() || group == "events.k8s.io" {
        "core"
    } else {
        group.split('.').next().unwrap_or(group)
    }
}

/// Checks `obj`'s `apiVersion` and `kind` against `rt` (from the URL).
pub fn check(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(unrecognized(
            rt,
            obj,
            format!(
                "json: cannot unmarshal {} into Go value of type struct {{ APIVersion string \"json:\\\"apiVersion,omitempty\\\"\"; Kind string \"json:\\\"kind,omitempty\\\"\" }}",
                crate::registry::typecheck::json_kind(obj)
            ),
        ));
    }
    let field = |name: &str| -> Result<Option<&str>, ApiError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
            Some(other) => Err(unrecognized(
                rt,
                obj,
                format!(
                    "json: cannot unmarshal {} into Go struct field .{name} of type string",
                    crate::registry::typecheck::json_kind(other)
                ),
            )),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let expected = rt.api_version();
    let api_version = api_version.unwrap_or(&expected);
    let kind = kind.unwrap_or(rt.kind);
    if api_version == expected && kind == rt.kind {
        return Ok(());
    }
    let version = api_version.rsplit('/').next().unwrap_or(api_version);
    let Some(body_type) = resources::by_kind(api_version, kind) else {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {}: no kind \"{kind}\" is registered for version \"{api_version}\" in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
            rt.kind
        )));
    };
    if body_type.kind != rt.kind {
        return Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {}: converting ({version}.{kind}) to ({}.{}): unknown conversion",
            rt.kind,
            internal_package(rt.group),
            rt.kind
        )));
    }
    Err(ApiError::bad_request(format!(
        "the API version in the data ({api_version}) does not match the expected API version ({expected})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identities_are_checked_not_rewritten() {
        let pods = crate::registry::kinds::PODS;
        assert!(check(pods, &json!({"metadata": {}})).is_ok());
        assert!(check(pods, &json!({"apiVersion": "v1", "kind": "Pod"})).is_ok());
        assert!(check(pods, &json!({"apiVersion": "", "kind": ""})).is_ok());
        let err = check(pods, &json!({"apiVersion": "v1", "kind": "Service"})).expect_err("kind");
        assert_eq!(
            err.message,
            "Service in version \"v1\" cannot be handled as a Pod: converting (v1.Service) to (core.Pod): unknown conversion"
        );
        let err =
            check(pods, &json!({"apiVersion": "apps/v1", "kind": "Pod"})).expect_err("version");
        assert_eq!(
            err.message,
            "Pod in version \"v1\" cannot be handled as a Pod: no kind \"Pod\" is registered for version \"apps/v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\""
        );
        let err = check(pods, &json!({"apiVersion": "v1", "kind": 7})).expect_err("number");
        assert_eq!(err.code, 400);
        assert!(
            err.message.starts_with("the object provided is unrecognized (must be of type Pod): couldn't get version/kind; json parse error: json: cannot unmarshal number into Go struct field .kind of type string ({\"apiVersion\":\"v1\",\"kind\":7}"),
            "{}",
            err.message
        );
        let err = check(pods, &json!([1, 2])).expect_err("array");
        assert!(
            err.message
                .contains("cannot unmarshal array into Go value of type struct"),
            "{}",
            err.message
        );
        let deployments = crate::registry::kinds::DEPLOYMENTS;
        let err = check(
            deployments,
            &json!({"apiVersion": "apps/v1", "kind": "ReplicaSet"}),
        )
        .expect_err("rs");
        assert!(
            err.message
                .ends_with("converting (v1.ReplicaSet) to (apps.Deployment): unknown conversion"),
            "{}",
            err.message
        );
    }
}
