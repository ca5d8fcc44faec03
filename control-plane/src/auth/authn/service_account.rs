//! The ServiceAccount token authenticator, as upstream's: a token of this
//! cluster's signer is valid while it is in time, meant for the API, and
//! the ServiceAccount (and the pod or Secret it is bound to) still exists
//! with the uid the token names. Its user is
//! `system:serviceaccount:<namespace>:<name>` in the ServiceAccount groups,
//! with the bound pod and node as extra attributes.
//!
//! With a [`BoundObjects`] index the objects are looked up there, and the
//! store is read only when the index cannot vouch for one (see
//! [`super::bound_objects`]).

use std::sync::Arc;

use serde_json::Value;

use super::bound_objects::{BoundObjects, Entry};
use crate::auth::tokens::{Claims, ObjectClaim, TokenError, TokenSigner};
use crate::auth::user::{SERVICE_ACCOUNT_PREFIX, SERVICE_ACCOUNTS, UserInfo};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::registry::resource_type::ResourceType;
use crate::store::StoreError;

/// Upstream's extra keys of a ServiceAccount user.
pub const EXTRA_POD_NAME: &str = "authentication.kubernetes.io/pod-name";
/// The bound pod's uid.
pub const EXTRA_POD_UID: &str = "authentication.kubernetes.io/pod-uid";
/// The bound pod's node.
pub const EXTRA_NODE_NAME: &str = "authentication.kubernetes.io/node-name";
/// The bound pod's node's uid.
pub const EXTRA_NODE_UID: &str = "authentication.kubernetes.io/node-uid";
/// The token's id (`JTI=<jti>`).
pub const EXTRA_CREDENTIAL_ID: &str = "authentication.kubernetes.io/credential-id";

/// Seconds a deleted pod's tokens stay valid after its `deletionTimestamp`.
const DELETED_POD_GRACE: i64 = 60;

/// Why a token is not accepted (all 401 at the API).
#[derive(Debug, thiserror::Error)]
pub enum Invalid {
    /// The token itself is bad.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The ServiceAccount or a bound object is gone or was replaced.
    #[error("{kind} {namespace}/{name} (uid {uid}) no longer exists")]
    Gone {
        /// `ServiceAccount`, `Pod` or `Secret`.
        kind: &'static str,
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
        /// The uid the token names.
        uid: String,
    },
    /// The store could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The group of a namespace's ServiceAccounts.
pub fn namespace_group(namespace: &str) -> String {
    format!("{SERVICE_ACCOUNTS}:{namespace}")
}

/// Checks tokens against the signer and the store.
#[derive(Clone)]
pub struct ServiceAccountTokens {
    signer: Arc<TokenSigner>,
    objects: Objects,
    index: Option<Arc<BoundObjects>>,
}

impl std::fmt::Debug for ServiceAccountTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountTokens")
            .field("signer", &self.signer)
            .finish_non_exhaustive()
    }
}

impl ServiceAccountTokens {
    /// Tokens of `signer`, whose objects are looked up in `objects`.
    pub fn new(signer: Arc<TokenSigner>, objects: Objects) -> Self {
        Self {
            signer,
            objects,
            index: None,
        }
    }

    /// Looks objects up in `index` first, the store only when the index
    /// cannot vouch for one.
    pub fn with_index(mut self, index: Arc<BoundObjects>) -> Self {
        self.index = Some(index);
        self
    }

    /// Whether `obj` of `rt` still exists with `claim`'s uid at `now`; a
    /// pod being deleted keeps its tokens for a minute after its
    /// `deletionTimestamp`, as upstream's validator allows.
    async fn still_there(
        &self,
        rt: &ResourceType,
        namespace: &str,
        claim: &ObjectClaim,
        now: i64,
    ) -> Result<(), Invalid> {
        let indexed = self
            .index
            .as_ref()
            .and_then(|i| i.get(rt, namespace, &claim.name));
        let mut same = indexed.is_some_and(|e| still_valid(&e, claim, now));
        if !same {
            let found = self.objects.find(rt, Some(namespace), &claim.name).await?;
            same = found.is_some_and(|o| {
                let entry = Entry::new(
                    crate::meta::uid(&o).to_string(),
                    o.pointer("/metadata/deletionTimestamp")
                        .and_then(Value::as_str),
                );
                still_valid(&entry, claim, now)
            });
        }
        if same {
            Ok(())
        } else {
            Err(Invalid::Gone {
                kind: rt.kind,
                namespace: namespace.to_string(),
                name: claim.name.clone(),
                uid: claim.uid.clone(),
            })
        }
    }

    /// The user of `token` at `now` (Unix seconds), as the API's own
    /// audience.
    pub async fn user(&self, token: &str, now: i64) -> Result<UserInfo, Invalid> {
        let (user, _) = self
            .user_for(token, now, self.signer.api_audiences())
            .await?;
        Ok(user)
    }

    /// The API server's audiences, the ones a token is checked for when a
    /// review names none.
    pub fn api_audiences(&self) -> &[String] {
        self.signer.api_audiences()
    }

    /// The user of `token` at `now` if it was issued for one of
    /// `audiences`, and those of `audiences` it was issued for.
    pub async fn user_for(
        &self,
        token: &str,
        now: i64,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>), Invalid> {
        let claims = self.signer.verify(token, now, audiences)?;
        let k = &claims.kubernetes;
        self.still_there(kinds::SERVICEACCOUNTS, &k.namespace, &k.serviceaccount, now)
            .await?;
        if let Some(pod) = &k.pod {
            self.still_there(kinds::PODS, &k.namespace, pod, now)
                .await?;
        }
        if let Some(secret) = &k.secret {
            self.still_there(kinds::SECRETS, &k.namespace, secret, now)
                .await?;
        }
        let valid_for = audiences
            .iter()
            .filter(|a| claims.aud.contains(a))
            .cloned()
            .collect();
        Ok((user_of(&claims), valid_for))
    }
}

/// Whether `entry` is the object `claim` names (same uid) and not deleted
/// more than [`DELETED_POD_GRACE`] before `now`.
fn still_valid(entry: &Entry, claim: &ObjectClaim, now: i64) -> bool {
    entry.uid == claim.uid
        && entry
            .deleted_at
            .is_none_or(|t| t + DELETED_POD_GRACE >= now)
}

/// The user a valid token's claims name.
pub fn user_of(claims: &Claims) -> UserInfo {
    let k = &claims.kubernetes;
    let name = format!(
        "{SERVICE_ACCOUNT_PREFIX}{}:{}",
        k.namespace, k.serviceaccount.name
    );
    let own = namespace_group(&k.namespace);
    let mut user = UserInfo::authenticated(name, &[SERVICE_ACCOUNTS, &own]);
    user.uid = k.serviceaccount.uid.clone();
    let mut extra = |key: &str, value: &str| {
        user.extra.insert(key.to_string(), vec![value.to_string()]);
    };
    if let Some(pod) = &k.pod {
        extra(EXTRA_POD_NAME, &pod.name);
        extra(EXTRA_POD_UID, &pod.uid);
    }
    if let Some(node) = &k.node {
        extra(EXTRA_NODE_NAME, &node.name);
        if !node.uid.is_empty() {
            extra(EXTRA_NODE_UID, &node.uid);
        }
    }
    if !claims.jti.is_empty() {
        extra(EXTRA_CREDENTIAL_ID, &format!("JTI={}", claims.jti));
    }
    user
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::auth::tokens::KubernetesClaims;
    use crate::auth::user::AUTHENTICATED;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    async fn setup() -> (ServiceAccountTokens, Objects, String, String) {
        let objects = Objects::in_memory();
        let sa = objects
            .create(
                kinds::SERVICEACCOUNTS,
                json!({"metadata": {"name": "robot", "namespace": "lab"}}),
            )
            .await
            .expect("sa");
        let pod = objects
            .create(
                kinds::PODS,
                json!({"metadata": {"name": "p", "namespace": "lab"},
                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .await
            .expect("pod");
        let signer = Arc::new(TokenSigner::generate(ISSUER).expect("key"));
        (
            ServiceAccountTokens::new(signer, objects.clone()),
            objects,
            crate::meta::uid(&sa).to_string(),
            crate::meta::uid(&pod).to_string(),
        )
    }

    fn claims(sa_uid: &str, pod_uid: &str) -> Claims {
        Claims {
            aud: vec![ISSUER.into()],
            exp: 2_000,
            iat: 1_000,
            iss: ISSUER.into(),
            jti: "j1".into(),
            nbf: 1_000,
            sub: "system:serviceaccount:lab:robot".into(),
            kubernetes: KubernetesClaims {
                namespace: "lab".into(),
                serviceaccount: ObjectClaim {
                    name: "robot".into(),
                    uid: sa_uid.into(),
                },
                pod: Some(ObjectClaim {
                    name: "p".into(),
                    uid: pod_uid.into(),
                }),
                node: Some(ObjectClaim {
                    name: "n1".into(),
                    uid: "nu".into(),
                }),
                ..KubernetesClaims::default()
            },
        }
    }

    #[tokio::test]
    async fn a_valid_token_is_its_service_account_with_upstreams_groups_and_extra() {
        let (tokens, _, sa_uid, pod_uid) = setup().await;
        let token = tokens
            .signer
            .sign(&claims(&sa_uid, &pod_uid))
            .expect("sign");
        let user = tokens.user(&token, 1_500).await.expect("valid");
        assert_eq!(user.name, "system:serviceaccount:lab:robot");
        assert_eq!(user.uid, sa_uid);
        assert_eq!(user.service_account(), Some(("lab", "robot")));
        for g in [
            SERVICE_ACCOUNTS,
            "system:serviceaccounts:lab",
            AUTHENTICATED,
        ] {
            assert!(user.in_group(g), "{g} in {:?}", user.groups);
        }
        assert_eq!(user.extra[EXTRA_POD_NAME], vec!["p".to_string()]);
        assert_eq!(user.extra[EXTRA_POD_UID], vec![pod_uid]);
        assert_eq!(user.extra[EXTRA_NODE_NAME], vec!["n1".to_string()]);
        assert_eq!(user.extra[EXTRA_CREDENTIAL_ID], vec!["JTI=j1".to_string()]);
    }

    #[tokio::test]
    async fn a_token_dies_with_its_service_account_or_pod_and_with_time() {
        let (tokens, objects, sa_uid, pod_uid) = setup().await;
        let token = tokens
            .signer
            .sign(&claims(&sa_uid, &pod_uid))
            .expect("sign");
        assert!(matches!(
            tokens.user(&token, 2_000).await,
            Err(Invalid::Token(TokenError::Expired))
        ));
        // A ServiceAccount of the same name made again is another one.
        let replaced = tokens
            .signer
            .sign(&claims("older-uid", &pod_uid))
            .expect("sign");
        assert!(matches!(
            tokens.user(&replaced, 1_500).await,
            Err(Invalid::Gone {
                kind: "ServiceAccount",
                ..
            })
        ));
        objects.delete_pod("lab", "p").await.expect("delete");
        assert!(matches!(
            tokens.user(&token, 1_500).await,
            Err(Invalid::Gone { kind: "Pod", .. })
        ));
    }

    #[tokio::test]
    async fn a_terminating_pods_token_lasts_a_minute_past_its_deletion() {
        let (tokens, objects, sa_uid, _) = setup().await;
        let pod = objects
            .create(
                kinds::PODS,
                json!({"metadata": {"name": "bound", "namespace": "lab"},
                    "spec": {"nodeName": "n1",
                        "containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .await
            .expect("pod");
        let now = chrono::Utc::now().timestamp();
        let mut c = claims(&sa_uid, crate::meta::uid(&pod));
        if let Some(p) = c.kubernetes.pod.as_mut() {
            p.name = "bound".into();
        }
        (c.iat, c.nbf, c.exp) = (now, now, now + 3600);
        let token = tokens.signer.sign(&c).expect("sign");
        objects
            .delete_pod("lab", "bound")
            .await
            .expect("terminating");
        let terminating = objects
            .get(kinds::PODS, Some("lab"), "bound")
            .await
            .expect("still there");
        assert!(terminating.pointer("/metadata/deletionTimestamp").is_some());
        assert!(tokens.user(&token, now + 1).await.is_ok());
        assert!(matches!(
            tokens.user(&token, now + 120).await,
            Err(Invalid::Gone { kind: "Pod", .. })
        ));
    }

    /// Tokens checked against an index following `objects`' store, whose
    /// own store is empty: a valid answer came from the index alone.
    async fn indexed(objects: &Objects) -> (ServiceAccountTokens, tokio::task::JoinHandle<()>) {
        let index = Arc::new(BoundObjects::default());
        let task = tokio::spawn(super::super::bound_objects::follow(
            objects.store().clone(),
            index.clone(),
        ));
        for _ in 0..200 {
            if index.get(kinds::PODS, "lab", "p").is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let signer = Arc::new(TokenSigner::generate(ISSUER).expect("key"));
        let tokens = ServiceAccountTokens::new(signer, Objects::in_memory()).with_index(index);
        (tokens, task)
    }

    #[tokio::test]
    async fn an_indexed_token_is_checked_without_the_store() {
        let (_, objects, sa_uid, pod_uid) = setup().await;
        let (tokens, task) = indexed(&objects).await;
        let token = tokens
            .signer
            .sign(&claims(&sa_uid, &pod_uid))
            .expect("sign");
        let user = tokens
            .user(&token, 1_500)
            .await
            .expect("valid from the index");
        assert_eq!(user.uid, sa_uid);
        let replaced = tokens
            .signer
            .sign(&claims("older-uid", &pod_uid))
            .expect("sign");
        assert!(matches!(
            tokens.user(&replaced, 1_500).await,
            Err(Invalid::Gone {
                kind: "ServiceAccount",
                ..
            })
        ));
        task.abort();
    }

    #[tokio::test]
    async fn an_indexed_token_dies_once_the_index_sees_its_account_or_pod_go() {
        for kind in ["ServiceAccount", "Pod"] {
            let (_, objects, sa_uid, pod_uid) = setup().await;
            let (tokens, task) = indexed(&objects).await;
            let token = tokens
                .signer
                .sign(&claims(&sa_uid, &pod_uid))
                .expect("sign");
            assert!(tokens.user(&token, 1_500).await.is_ok());
            let started = std::time::Instant::now();
            if kind == "Pod" {
                // Past the deleted pod's minute of grace.
                objects.delete_pod("lab", "p").await.expect("delete");
            } else {
                objects
                    .delete(kinds::SERVICEACCOUNTS, Some("lab"), "robot")
                    .await
                    .expect("delete");
            }
            let now = chrono::Utc::now().timestamp() + 120;
            let token_for = |at: i64| {
                let mut c = claims(&sa_uid, &pod_uid);
                (c.iat, c.nbf, c.exp) = (at - 200, at - 200, at + 3600);
                tokens.signer.sign(&c).expect("sign")
            };
            let late = token_for(now);
            loop {
                match tokens.user(&late, now).await {
                    Err(Invalid::Gone { kind: k, .. }) => {
                        assert_eq!(k, kind);
                        break;
                    }
                    other => assert!(
                        other.is_ok() && started.elapsed().as_secs() < 2,
                        "{kind}: {other:?}"
                    ),
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            task.abort();
        }
    }
}
