//! Registry errors as Kubernetes `Status` objects, with upstream's codes,
//! reasons and wording (`pods "web" not found`).

use serde_json::{Value, json};

use super::resources::ResourceType;
use crate::store::StoreError;

/// An error the API answers with.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub code: u16,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, ...
    pub reason: &'static str,
    /// The message kubectl prints.
    pub message: String,
    /// `details` of the Status.
    pub details: Value,
}

/// A field error's cause reason, by how its message starts (upstream's
/// `field.ErrorType`); any other message is `FieldValueInvalid`.
const CAUSE_REASONS: [(&str, &str); 7] = [
    ("Required value", "FieldValueRequired"),
    ("Unsupported value", "FieldValueNotSupported"),
    ("Duplicate value", "FieldValueDuplicate"),
    ("Forbidden", "FieldValueForbidden"),
    ("Too long", "FieldValueTooLong"),
    ("Too many", "FieldValueTooMany"),
    ("Not found", "FieldValueNotFound"),
];

#[cfg(test)]
impl ApiError {
    /// Fails the test, showing the whole message, unless it holds `part`.
    pub fn assert_says(&self, part: &str) {
        assert!(self.message.contains(part), "{}", self.message);
    }
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: json!({}),
        }
    }

    fn details(rt: &ResourceType, name: &str) -> Value {
        let mut d = json!({"name": name, "kind": rt.plural});
        if !rt.group.is_empty() {
            d["group"] = json!(rt.group);
        }
        d
    }

    /// 404 for an object.
    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Self::details(rt, name),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", rt.qualified()),
            )
        }
    }

    /// 409 for an existing object.
    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Self::details(rt, name),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", rt.qualified()),
            )
        }
    }

    /// 409 for a stale resourceVersion.
    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        Self {
            details: Self::details(rt, name),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    rt.qualified()
                ),
            )
        }
    }

    /// 409 for a server-side apply that would change fields other managers
    /// own (`causes` of type `FieldManagerConflict`).
    pub fn apply_conflict(message: String, causes: Vec<Value>) -> Self {
        Self {
            details: json!({"causes": causes}),
            ..Self::new(409, "Conflict", message)
        }
    }

    /// 422 with field causes (`field: message` lines).
    pub fn invalid(rt: &ResourceType, name: &str, errors: &[String]) -> Self {
        let causes: Vec<Value> = errors
            .iter()
            .map(|e| {
                let fe = skiff_api_rules::FieldError::parse(e);
                let reason = CAUSE_REASONS
                    .iter()
                    .find(|(prefix, _)| fe.message.starts_with(prefix))
                    .map_or("FieldValueInvalid", |(_, reason)| reason);
                json!({"reason": reason, "message": fe.message, "field": fe.field})
            })
            .collect();
        let mut details = Self::details(rt, name);
        details["kind"] = json!(rt.kind);
        details["causes"] = json!(causes);
        let message = if errors.len() == 1 {
            format!(
                "{} \"{name}\" is invalid: {}",
                rt.qualified_kind(),
                errors[0]
            )
        } else {
            format!(
                "{} \"{name}\" is invalid: [{}]",
                rt.qualified_kind(),
                errors.join(", ")
            )
        };
        Self {
            details,
            ..Self::new(422, "Invalid", message)
        }
    }

    /// 403 for a write an admission step refuses: `pods "x" is forbidden:
    /// <why>`.
    pub fn refused(rt: &ResourceType, name: &str, why: &str) -> Self {
        Self {
            details: Self::details(rt, name),
            ..Self::new(
                403,
                "Forbidden",
                format!("{} \"{name}\" is forbidden: {why}", rt.qualified()),
            )
        }
    }

    /// 409 with a message of its own (a stale uid in a reference).
    pub fn conflict_message(message: impl Into<String>) -> Self {
        Self::new(409, "Conflict", message)
    }

    /// 401, as upstream answers missing or wrong credentials (the message
    /// says no more, on purpose).
    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 `Forbidden` with upstream's message (`pods is forbidden: User
    /// "jane" cannot list resource "pods" ...`).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, "Forbidden", message)
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    /// 404 for a path that names nothing.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    }

    /// 405.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    /// 415.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml (got {content_type})"
            ),
        )
    }

    /// 410 Expired (watch too old).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// 429 `TooManyRequests`.
    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    /// 500.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 501.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(501, "NotImplemented", message)
    }

    /// Maps a store error for an object of `rt` named `name`.
    pub fn from_store(e: StoreError, rt: &ResourceType, name: &str) -> Self {
        match e {
            StoreError::NotFound(_) => Self::not_found(rt, name),
            StoreError::AlreadyExists(_) => Self::already_exists(rt, name),
            StoreError::Conflict { .. } => Self::conflict(rt, name),
            StoreError::Expired { requested, oldest } => {
                Self::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            StoreError::Backend(m) => Self::internal(m),
            StoreError::Refused(m) => Self::forbidden(m),
        }
    }

    /// The `Status` body.
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cause_carries_upstreams_reason_for_its_message() {
        let rt = crate::registry::kinds::CONFIGMAPS;
        let err = ApiError::invalid(
            rt,
            "a",
            &[
                "metadata.name: Required value".to_string(),
                "spec.x: Too long: may not be more than 63 bytes".to_string(),
                "spec.y: Too many: 21: must have at most 20 items".to_string(),
                "spec.z: Not found: \"q\"".to_string(),
                "spec.w: Invalid value: 1: bad".to_string(),
            ],
        );
        let reasons: Vec<&str> = err.details["causes"]
            .as_array()
            .expect("causes")
            .iter()
            .filter_map(|c| c["reason"].as_str())
            .collect();
        assert_eq!(
            reasons,
            [
                "FieldValueRequired",
                "FieldValueTooLong",
                "FieldValueTooMany",
                "FieldValueNotFound",
                "FieldValueInvalid"
            ]
        );
    }
}
