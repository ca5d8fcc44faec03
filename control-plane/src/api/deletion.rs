//! `DeleteOptions` as the HTTP edge receives them: a typed body and the
//! query string, validated as upstream's `ValidateDeleteOptions` into the
//! registry's [`DeleteOptions`].

use serde::Deserialize;
use serde_json::json;

use super::query::Query;
use crate::registry::deletion::{DeleteOptions, Propagation};
use crate::registry::error::ApiError;

/// A `DeleteOptions` body as clients send it, decoded by type: a field of
/// the wrong type refuses the delete instead of being ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeleteOptionsBody {
    /// `DeleteOptions`.
    pub kind: Option<String>,
    /// `v1` or `meta.k8s.io/v1`.
    pub api_version: Option<String>,
    /// Seconds before a pod is killed.
    pub grace_period_seconds: Option<i64>,
    /// What the object must still be.
    pub preconditions: Option<Preconditions>,
    /// The deprecated boolean form of `propagationPolicy`.
    pub orphan_dependents: Option<bool>,
    /// `Orphan`, `Background` or `Foreground`.
    pub propagation_policy: Option<String>,
    /// `["All"]` for a dry run.
    pub dry_run: Option<Vec<String>>,
    /// Accepted and ignored (Skiff's store has no unreadable objects).
    pub ignore_store_read_error_with_cluster_breaking_potential: Option<bool>,
}

/// `DeleteOptions.preconditions`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Preconditions {
    /// The object's uid.
    pub uid: Option<String>,
    /// The object's resourceVersion.
    pub resource_version: Option<String>,
}

fn invalid_options(field: &str, message: String) -> ApiError {
    ApiError {
        code: 422,
        reason: "Invalid",
        message: format!("DeleteOptions.meta.k8s.io \"\" is invalid: {field}: {message}"),
        details: json!({"group": "meta.k8s.io", "kind": "DeleteOptions", "causes": [
            {"reason": if message.starts_with("Unsupported") { "FieldValueNotSupported" } else { "FieldValueInvalid" },
             "message": message, "field": field}
        ]}),
    }
}

impl DeleteOptions {
    /// From a `DeleteOptions` body (possibly empty) and the query string
    /// (kubectl sends the body; the query form is accepted as upstream does),
    /// validated as upstream's `ValidateDeleteOptions`.
    pub fn from_request(body: &DeleteOptionsBody, query: &Query) -> Result<Self, ApiError> {
        let policy = body
            .propagation_policy
            .clone()
            .or_else(|| query.propagation_policy.clone());
        let orphan = body.orphan_dependents.or(query.orphan_dependents);
        if let (Some(p), Some(_)) = (&policy, orphan) {
            return Err(invalid_options(
                "propagationPolicy",
                format!(
                    "Invalid value: \"{p}\": orphanDependents and deletionPropagation cannot be both set"
                ),
            ));
        }
        let propagation = match policy {
            Some(p) => Some(Propagation::parse(&p).ok_or_else(|| {
                invalid_options(
                    "propagationPolicy",
                    format!(
                        "Unsupported value: \"{p}\": supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""
                    ),
                )
            })?),
            None => match orphan {
                Some(true) => Some(Propagation::Orphan),
                Some(false) => Some(Propagation::Background),
                None => None,
            },
        };
        let grace_period_seconds = body.grace_period_seconds.or(query.grace_period_seconds);
        let preconditions = body.preconditions.clone().unwrap_or_default();
        let resource_version = match preconditions.resource_version.as_deref() {
            Some(rv) => Some(rv.parse().map_err(|_| {
                ApiError::bad_request(format!("invalid precondition resourceVersion {rv:?}"))
            })?),
            None => None,
        };
        Ok(Self {
            propagation,
            grace_period_seconds,
            uid: preconditions.uid,
            resource_version,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn body(v: Value) -> DeleteOptionsBody {
        serde_json::from_value(v).expect("body")
    }

    #[test]
    fn options_come_from_the_body_or_the_query() {
        let none = Query::default();
        let b = body(
            json!({"propagationPolicy": "Foreground", "gracePeriodSeconds": 5,
                          "preconditions": {"uid": "u1", "resourceVersion": "42"}}),
        );
        let o = DeleteOptions::from_request(&b, &none).expect("options");
        assert_eq!(
            o,
            DeleteOptions {
                propagation: Some(Propagation::Foreground),
                grace_period_seconds: Some(5),
                uid: Some("u1".into()),
                resource_version: Some(42),
            }
        );
        let query = Query::parse(Some("propagationPolicy=Orphan")).expect("query");
        let o = DeleteOptions::from_request(&body(json!({})), &query).expect("options");
        assert_eq!(o.propagation, Some(Propagation::Orphan));
        let o = DeleteOptions::from_request(&body(json!({"orphanDependents": true})), &none)
            .expect("options");
        assert_eq!(o.propagation, Some(Propagation::Orphan));
        let e = DeleteOptions::from_request(&body(json!({"propagationPolicy": "Sideways"})), &none)
            .expect_err("sideways");
        assert_eq!(e.code, 422);
        let both = body(json!({"propagationPolicy": "Orphan", "orphanDependents": true}));
        assert_eq!(
            DeleteOptions::from_request(&both, &none)
                .expect_err("both")
                .code,
            422
        );
        assert!(
            serde_json::from_value::<DeleteOptionsBody>(json!({"gracePeriodSeconds": "soon"}))
                .is_err()
        );
    }
}
