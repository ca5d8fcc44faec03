//! `POST serviceaccounts/{name}/token` (authentication.k8s.io/v1
//! TokenRequest, what `kubectl create token` sends), and the issuer's
//! OpenID discovery documents (`/.well-known/openid-configuration`,
//! `/openid/v1/jwks`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::error::ApiResult;
use crate::auth::token_request::{self, BoundObject, IssueError, Spec};
use crate::registry::error::ApiError;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::registry::resource_type::{Behaviour, ResourceType, rt};

/// TokenRequest: only ever created, through `serviceaccounts/token`.
pub const TOKENREQUESTS: &ResourceType = &rt! {
    "authentication.k8s.io", "v1", "tokenrequests", "tokenrequest", "TokenRequest", true,
    &[], &[], &[], &TokenRequestRules
};

/// TokenRequests are never stored; nothing to default or validate here.
pub struct TokenRequestRules;

impl Behaviour for TokenRequestRules {}

pub(crate) fn spec_of(request: &Value) -> ApiResult<Spec> {
    let spec = &request["spec"];
    let audiences = match &spec["audiences"] {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .iter()
            .map(|a| a.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| ApiError::bad_request("spec.audiences: must be strings"))?,
        _ => return Err(ApiError::bad_request("spec.audiences: must be a list")),
    };
    let expiration_seconds = match &spec["expirationSeconds"] {
        Value::Null => token_request::DEFAULT_EXPIRATION_SECONDS,
        v => v
            .as_i64()
            .ok_or_else(|| ApiError::bad_request("spec.expirationSeconds: must be an integer"))?,
    };
    let bound = match &spec["boundObjectRef"] {
        Value::Null => None,
        r => Some(BoundObject {
            kind: r["kind"].as_str().unwrap_or_default().to_string(),
            name: r["name"].as_str().unwrap_or_default().to_string(),
            uid: r["uid"].as_str().map(str::to_string),
        }),
    };
    Ok(Spec {
        audiences,
        expiration_seconds,
        bound,
    })
}

pub(crate) fn status_of(e: IssueError, name: &str) -> ApiError {
    match e {
        IssueError::Invalid(message) => ApiError::invalid(TOKENREQUESTS, name, &[message]),
        IssueError::NotFound { plural, name } => {
            let rt = match plural {
                "pods" => kinds::PODS,
                "secrets" => kinds::SECRETS,
                _ => kinds::SERVICEACCOUNTS,
            };
            ApiError::not_found(rt, &name)
        }
        e @ IssueError::UidMismatch(_) => ApiError::conflict_message(e.to_string()),
        IssueError::BadRequest(message) => ApiError::bad_request(message),
        e => ApiError::internal(e.to_string()),
    }
}

/// Issues the token a TokenRequest `request` asks for.
pub async fn create(
    state: &Arc<ApiState>,
    namespace: &str,
    name: &str,
    request: &Value,
) -> ApiResult<Response> {
    let Some(signer) = &state.token_signer else {
        return Err(ApiError::not_found(TOKENREQUESTS, name));
    };
    if !matches!(request["kind"].as_str(), None | Some("TokenRequest")) {
        return Err(ApiError::bad_request(format!(
            "expected TokenRequest, got {}",
            request["kind"]
        )));
    }
    let spec = spec_of(request)?;
    let objects = Objects::new(state.store.clone());
    let now = chrono::Utc::now();
    let issued = token_request::issue(signer, &objects, namespace, name, &spec, now.timestamp())
        .await
        .map_err(|e| status_of(e, name))?;
    let expires = chrono::DateTime::from_timestamp(issued.expires, 0)
        .unwrap_or(now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut body = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": namespace,
            "creationTimestamp": crate::registry::meta::now()},
        "spec": {
            "audiences": issued.audiences,
            "expirationSeconds": spec.expiration_seconds,
            "boundObjectRef": request["spec"]["boundObjectRef"],
        },
        "status": {"token": issued.token, "expirationTimestamp": expires},
    });
    if body["spec"]["boundObjectRef"].is_null()
        && let Some(spec) = body["spec"].as_object_mut()
    {
        spec.remove("boundObjectRef");
    }
    Ok((
        StatusCode::CREATED,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response())
}

/// `/.well-known/openid-configuration`.
pub async fn openid_configuration(State(state): State<Arc<ApiState>>) -> Response {
    match &state.token_signer {
        Some(signer) => axum::Json(signer.discovery()).into_response(),
        None => ApiError::no_route("/.well-known/openid-configuration").into_response(),
    }
}

/// `/openid/v1/jwks`.
pub async fn jwks(State(state): State<Arc<ApiState>>) -> Response {
    match &state.token_signer {
        Some(signer) => (
            [(axum::http::header::CONTENT_TYPE, "application/jwk-set+json")],
            signer.jwks().to_string(),
        )
            .into_response(),
        None => ApiError::no_route("/openid/v1/jwks").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_a_spec_gets_upstreams_defaults() {
        let spec = spec_of(&json!({"kind": "TokenRequest"})).expect("spec");
        assert_eq!(spec.expiration_seconds, 3600);
        assert!(spec.audiences.is_empty() && spec.bound.is_none());
        let spec = spec_of(
            &json!({"spec": {"audiences": ["vault"], "expirationSeconds": 700,
            "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p", "uid": "u"}}}),
        )
        .expect("spec");
        assert_eq!(spec.audiences, vec!["vault".to_string()]);
        assert_eq!(
            spec.bound,
            Some(BoundObject {
                kind: "Pod".into(),
                name: "p".into(),
                uid: Some("u".into())
            })
        );
        let invalid = status_of(
            IssueError::Invalid("spec.expirationSeconds: Invalid value: 5: x".into()),
            "default",
        );
        assert_eq!(invalid.code, 422);
        assert!(
            invalid
                .message
                .starts_with("TokenRequest.authentication.k8s.io \"default\" is invalid"),
            "{}",
            invalid.message
        );
    }
}
