//! Issuing a ServiceAccount token, as upstream's TokenRequest
//! (`serviceaccounts/token`): checks the request (expiry limits, the bound
//! object exists, with its uid, and runs as the ServiceAccount) and signs
//! the claims. The API ([`crate::api::token_request`]) and the node RPC
//! that hands pods their projected tokens ([`crate::nodes::tokens`]) both
//! issue through here.

use serde_json::Value;

use crate::auth::tokens::{Claims, KubernetesClaims, ObjectClaim, TokenError, TokenSigner};
use crate::auth::user::SERVICE_ACCOUNT_PREFIX;
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// Upstream's default lifetime of a requested token.
pub const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a request may ask for (10 minutes).
pub const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (2^32 seconds).
pub const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

/// The object a token is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundObject {
    /// `Pod` or `Secret`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// The uid the requester expects, if it names one.
    pub uid: Option<String>,
}

/// What a token is requested for (a TokenRequest's spec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Audiences; empty means the API's own.
    pub audiences: Vec<String>,
    /// Lifetime in seconds.
    pub expiration_seconds: i64,
    /// The object it dies with.
    pub bound: Option<BoundObject>,
}

/// Why no token was issued; each maps to upstream's status at the edge.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The spec breaks a rule (422): the field and message.
    #[error("{0}")]
    Invalid(String),
    /// The ServiceAccount or the bound object does not exist (404).
    #[error("{plural} \"{name}\" not found")]
    NotFound {
        /// `serviceaccounts`, `pods`, `secrets`.
        plural: &'static str,
        /// Its name.
        name: String,
    },
    /// The bound object is another one than the requester meant (409).
    #[error(
        "the UID in the bound object reference ({0}) does not match the UID in record. The object might have been deleted and then recreated"
    )]
    UidMismatch(String),
    /// The request cannot be served as asked (400).
    #[error("{0}")]
    BadRequest(String),
    /// The store or the signer failed (500).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing failed (500).
    #[error(transparent)]
    Sign(#[from] TokenError),
}

/// A signed token and when it expires (Unix seconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issued {
    /// The JWT.
    pub token: String,
    /// Its `exp`.
    pub expires: i64,
    /// The audiences it carries.
    pub audiences: Vec<String>,
}

/// Upstream's limits of `expirationSeconds`.
pub fn validate(spec: &Spec) -> Result<(), IssueError> {
    let secs = spec.expiration_seconds;
    if secs < MIN_EXPIRATION_SECONDS {
        return Err(IssueError::Invalid(format!(
            "spec.expirationSeconds: Invalid value: {secs}: may not specify a duration less than 10 minutes"
        )));
    }
    if secs > MAX_EXPIRATION_SECONDS {
        return Err(IssueError::Invalid(format!(
            "spec.expirationSeconds: Invalid value: {secs}: may not specify a duration larger than 2^32 seconds"
        )));
    }
    Ok(())
}

async fn must_find(
    objects: &Objects,
    rt: &'static crate::registry::resource_type::ResourceType,
    namespace: Option<&str>,
    name: &str,
) -> Result<Value, IssueError> {
    objects
        .find(rt, namespace, name)
        .await?
        .ok_or_else(|| IssueError::NotFound {
            plural: rt.plural,
            name: name.to_string(),
        })
}

/// Issues a token of ServiceAccount `namespace/name` for `spec` at `now`.
pub async fn issue(
    signer: &TokenSigner,
    objects: &Objects,
    namespace: &str,
    name: &str,
    spec: &Spec,
    now: i64,
) -> Result<Issued, IssueError> {
    validate(spec)?;
    let account = must_find(objects, kinds::SERVICEACCOUNTS, Some(namespace), name).await?;
    let mut claims = KubernetesClaims {
        namespace: namespace.to_string(),
        serviceaccount: claim_of(&account),
        ..KubernetesClaims::default()
    };
    if let Some(bound) = &spec.bound {
        let rt = match bound.kind.as_str() {
            "Pod" => kinds::PODS,
            "Secret" => kinds::SECRETS,
            other => {
                return Err(IssueError::BadRequest(format!(
                    "cannot bind token against kind {other:?}"
                )));
            }
        };
        let object = must_find(objects, rt, Some(namespace), &bound.name).await?;
        if let Some(uid) = &bound.uid
            && !uid.is_empty()
            && uid != meta::uid(&object)
        {
            return Err(IssueError::UidMismatch(uid.clone()));
        }
        if rt.kind == "Pod" {
            if object
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                != Some(name)
            {
                return Err(IssueError::BadRequest(format!(
                    "cannot bind token for serviceaccount {name:?} to pod running with different serviceaccount name."
                )));
            }
            if let Some(node) = object
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
            {
                // A node that is gone is still named, without a uid.
                let uid = objects
                    .find(kinds::NODES, None, node)
                    .await?
                    .map(|n| meta::uid(&n).to_string())
                    .unwrap_or_default();
                claims.node = Some(ObjectClaim {
                    name: node.to_string(),
                    uid,
                });
            }
            claims.pod = Some(claim_of(&object));
        } else {
            claims.secret = Some(claim_of(&object));
        }
    }
    let audiences = if spec.audiences.is_empty() {
        signer.api_audiences().to_vec()
    } else {
        spec.audiences.clone()
    };
    let claims = Claims {
        aud: audiences.clone(),
        exp: now + spec.expiration_seconds,
        iat: now,
        iss: signer.issuer().to_string(),
        jti: crate::registry::meta::uuid(),
        nbf: now,
        sub: format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}"),
        kubernetes: claims,
    };
    Ok(Issued {
        token: signer.sign(&claims)?,
        expires: claims.exp,
        audiences,
    })
}

fn claim_of(obj: &Value) -> ObjectClaim {
    ObjectClaim {
        name: meta::name(obj).to_string(),
        uid: meta::uid(obj).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::auth::authn::service_account::ServiceAccountTokens;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    fn spec(secs: i64, bound: Option<BoundObject>) -> Spec {
        Spec {
            audiences: Vec::new(),
            expiration_seconds: secs,
            bound,
        }
    }

    fn pod_ref(name: &str) -> Option<BoundObject> {
        Some(BoundObject {
            kind: "Pod".into(),
            name: name.into(),
            uid: None,
        })
    }

    #[tokio::test]
    async fn a_pod_bound_token_names_the_pod_and_its_node_and_authenticates() {
        let objects = Objects::in_memory();
        let signer = Arc::new(TokenSigner::generate(ISSUER).expect("key"));
        for sa in ["default", "robot"] {
            objects
                .create(
                    kinds::SERVICEACCOUNTS,
                    json!({"metadata": {"name": sa, "namespace": "lab"}}),
                )
                .await
                .expect("sa");
        }
        let pod = objects
            .create(
                kinds::PODS,
                json!({"metadata": {"name": "p", "namespace": "lab"},
                    "spec": {"serviceAccountName": "robot", "nodeName": "n1",
                        "containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .await
            .expect("pod");
        let issued = issue(
            &signer,
            &objects,
            "lab",
            "robot",
            &spec(3607, pod_ref("p")),
            1_000,
        )
        .await
        .expect("issued");
        assert_eq!(issued.expires, 4_607);
        assert_eq!(issued.audiences, vec![ISSUER.to_string()]);
        let user = ServiceAccountTokens::new(signer.clone(), objects.clone())
            .user(&issued.token, 1_001)
            .await
            .expect("valid");
        assert_eq!(user.name, "system:serviceaccount:lab:robot");
        assert_eq!(
            user.extra["authentication.kubernetes.io/pod-uid"],
            vec![meta::uid(&pod).to_string()]
        );
        assert_eq!(
            user.extra["authentication.kubernetes.io/node-name"],
            vec!["n1".to_string()]
        );
        // The pod runs as robot, not default.
        let other = issue(
            &signer,
            &objects,
            "lab",
            "default",
            &spec(3600, pod_ref("p")),
            1_000,
        )
        .await
        .expect_err("other account");
        assert!(
            other
                .to_string()
                .contains("to pod running with different serviceaccount name"),
            "{other}"
        );
        let stale = Some(BoundObject {
            uid: Some("old".into()),
            ..pod_ref("p").expect("ref")
        });
        assert!(matches!(
            issue(&signer, &objects, "lab", "robot", &spec(3600, stale), 1_000).await,
            Err(IssueError::UidMismatch(_))
        ));
    }

    #[tokio::test]
    async fn limits_and_missing_objects_are_refused_as_upstream() {
        let objects = Objects::in_memory();
        let signer = TokenSigner::generate(ISSUER).expect("key");
        let short = issue(&signer, &objects, "lab", "default", &spec(599, None), 0)
            .await
            .expect_err("short");
        assert_eq!(
            short.to_string(),
            "spec.expirationSeconds: Invalid value: 599: may not specify a duration less than 10 minutes"
        );
        assert!(matches!(
            issue(&signer, &objects, "lab", "default", &spec(1 << 33, None), 0).await,
            Err(IssueError::Invalid(_))
        ));
        let missing = issue(&signer, &objects, "lab", "default", &spec(600, None), 0)
            .await
            .expect_err("no account");
        assert_eq!(missing.to_string(), "serviceaccounts \"default\" not found");
    }
}
