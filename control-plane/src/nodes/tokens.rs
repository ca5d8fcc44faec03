//! What a pod's projected volumes need from the control plane, asked by
//! the node running the pod: a ServiceAccount token bound to the pod
//! (issued as `serviceaccounts/token` issues it) and the data of a
//! ConfigMap the pod's projected volumes name (`kube-root-ca.crt`).
//! Only the node the pod is bound to gets answers, as upstream's Node
//! authorizer lets a kubelet read only its own pods' tokens and ConfigMaps,
//! and a token only for an audience the pod's own projected
//! `serviceAccountToken` volumes name (upstream's
//! ServiceAccountNodeAudienceRestriction): a node holds its pods' tokens
//! for what the pods use, not for any service that trusts the cluster's
//! tokens.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;
use skiff_proto::node::v1 as pb;
use tonic::Status;

use crate::auth::token_request::{self, BoundObject, IssueError, Spec};
use crate::auth::tokens::TokenSigner;
use crate::registry::kinds;
use crate::registry::objects::Objects;

/// The pod `namespace/name` with `uid`, if it is bound to `node`.
async fn own_pod(
    objects: &Objects,
    node: &str,
    namespace: &str,
    name: &str,
    uid: &str,
) -> Result<Value, Status> {
    let pod = objects
        .find(kinds::PODS, Some(namespace), name)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    pod.filter(|p| {
        crate::meta::uid(p) == uid
            && p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
    })
    .ok_or_else(|| {
        Status::permission_denied(format!(
            "no pod {namespace}/{name} with uid {uid} is bound to node {node}"
        ))
    })
}

/// Whether one of `pod`'s projected `serviceAccountToken` sources is for
/// `audience` ("" is the API server's own, a source without one). As
/// upstream's kubelet asks for a default source's token with no audience,
/// an explicit ask for one of the API server's `api_audiences` is the same
/// token and passes when a source uses the default.
fn projects_audience(pod: &Value, audience: &str, api_audiences: &[String]) -> bool {
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
    let mut sources = volumes.into_iter().flatten().flat_map(|v| {
        v.pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
    });
    sources.any(|s| {
        let Some(token) = s.get("serviceAccountToken") else {
            return false;
        };
        let named = token.get("audience").and_then(Value::as_str).unwrap_or("");
        named == audience || (named.is_empty() && api_audiences.iter().any(|a| a == audience))
    })
}

/// Upstream's NodeRestriction check of a node's TokenRequest: 0 or 1
/// audiences, and that one named by a projected token volume of the pod
/// (Skiff grants no `request-serviceaccounts-token-audience` through RBAC,
/// so nothing else allows it). Upstream's words on refusal.
fn check_node_audience(
    pod: &Value,
    account: &str,
    node: &str,
    audiences: &[String],
    api_audiences: &[String],
) -> Result<(), Status> {
    let forbidden = |why: String| {
        Status::permission_denied(format!("serviceaccounts \"{account}\" is forbidden: {why}"))
    };
    let audience = match audiences {
        [] => "",
        [one] => one.as_str(),
        _ => return Err(forbidden("node may only request 0 or 1 audiences".into())),
    };
    if projects_audience(pod, audience, api_audiences) {
        return Ok(());
    }
    Err(forbidden(format!(
        "audience {audience:?} not found in pod spec volume, {}{node} is not authorized to request tokens for this audience",
        crate::auth::user::NODE_PREFIX
    )))
}

/// Answers `RequestPodToken`.
pub async fn request_pod_token(
    objects: &Objects,
    signer: Option<&Arc<TokenSigner>>,
    node: &str,
    request: pb::PodTokenRequest,
) -> Result<pb::PodTokenResponse, Status> {
    let signer = signer.ok_or_else(|| Status::unimplemented("no service account tokens"))?;
    let pod = own_pod(
        objects,
        node,
        &request.namespace,
        &request.pod_name,
        &request.pod_uid,
    )
    .await?;
    let account = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    // An empty audience is no audience: the API server's own.
    let audiences: Vec<String> = request
        .audiences
        .into_iter()
        .filter(|a| !a.is_empty())
        .collect();
    check_node_audience(&pod, account, node, &audiences, signer.api_audiences())?;
    let spec = Spec {
        audiences,
        expiration_seconds: request.expiration_seconds,
        bound: Some(BoundObject {
            kind: "Pod".into(),
            name: request.pod_name.clone(),
            uid: Some(request.pod_uid.clone()),
        }),
    };
    let now = chrono::Utc::now().timestamp();
    let issued = token_request::issue(signer, objects, &request.namespace, account, &spec, now)
        .await
        .map_err(|e| match e {
            IssueError::Store(e) => Status::unavailable(e.to_string()),
            IssueError::Sign(e) => Status::internal(e.to_string()),
            IssueError::NotFound { .. } => Status::not_found(e.to_string()),
            e => Status::invalid_argument(e.to_string()),
        })?;
    Ok(pb::PodTokenResponse {
        token: issued.token,
        expiration_unix: issued.expires,
    })
}

/// Whether one of `pod`'s projected volumes names ConfigMap `name`.
fn projects_config_map(pod: &Value, name: &str) -> bool {
    let volumes = pod.pointer("/spec/volumes").and_then(Value::as_array);
    volumes.into_iter().flatten().any(|v| {
        let sources = v.pointer("/projected/sources").and_then(Value::as_array);
        sources
            .into_iter()
            .flatten()
            .any(|s| s.pointer("/configMap/name").and_then(Value::as_str) == Some(name))
    })
}

/// Answers `GetPodConfigMap`.
pub async fn get_pod_config_map(
    objects: &Objects,
    node: &str,
    request: pb::PodConfigMapRequest,
) -> Result<pb::PodConfigMapResponse, Status> {
    let pod = own_pod(
        objects,
        node,
        &request.namespace,
        &request.pod_name,
        &request.pod_uid,
    )
    .await?;
    if !projects_config_map(&pod, &request.name) {
        return Err(Status::permission_denied(format!(
            "pod {}/{} projects no ConfigMap {:?}",
            request.namespace, request.pod_name, request.name
        )));
    }
    let config_map = objects
        .find(kinds::CONFIGMAPS, Some(&request.namespace), &request.name)
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?
        .ok_or_else(|| Status::not_found(format!("configmap \"{}\" not found", request.name)))?;
    let data: BTreeMap<String, String> = config_map
        .get("data")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    Ok(pb::PodConfigMapResponse {
        data: data.into_iter().collect(),
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";

    async fn setup() -> (Objects, String) {
        let objects = Objects::in_memory();
        objects
            .create(
                kinds::SERVICEACCOUNTS,
                json!({"metadata": {"name": "default", "namespace": "lab"}}),
            )
            .await
            .expect("sa");
        objects
            .create(
                kinds::CONFIGMAPS,
                json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "lab"},
                    "data": {"ca.crt": "PEM"}}),
            )
            .await
            .expect("cm");
        let pod = objects
            .create(
                kinds::PODS,
                json!({"metadata": {"name": "p", "namespace": "lab"},
                    "spec": {"nodeName": "n1", "serviceAccountName": "default",
                        "containers": [{"name": "c", "image": "busybox"}],
                        "volumes": [{"name": "v", "projected": {"sources": [
                            {"serviceAccountToken": {"path": "token"}},
                            {"configMap": {"name": "kube-root-ca.crt"}}]}},
                            {"name": "vault", "projected": {"sources": [
                            {"serviceAccountToken": {"path": "t", "audience": "vault"}}]}}]}}),
            )
            .await
            .expect("pod");
        (objects, crate::meta::uid(&pod).to_string())
    }

    #[tokio::test]
    async fn only_the_pods_node_gets_its_token_and_config_map() {
        let (objects, uid) = setup().await;
        let signer = Arc::new(TokenSigner::generate(ISSUER).expect("key"));
        let ask = |node: &str| pb::PodTokenRequest {
            node_name: node.into(),
            pod_uid: uid.clone(),
            audiences: vec![],
            expiration_seconds: 3607,
            namespace: "lab".into(),
            pod_name: "p".into(),
        };
        let answer = request_pod_token(&objects, Some(&signer), "n1", ask("n1"))
            .await
            .expect("token");
        let claims = signer
            .verify(
                &answer.token,
                answer.expiration_unix - 1,
                signer.api_audiences(),
            )
            .expect("valid");
        assert_eq!(claims.kubernetes.pod.map(|p| p.uid), Some(uid.clone()));
        // The caller is the node its certificate names, whatever the
        // request says.
        for (caller, claimed) in [("n2", "n2"), ("n2", "n1")] {
            let refused = request_pod_token(&objects, Some(&signer), caller, ask(claimed))
                .await
                .expect_err("another node");
            assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        }
        let cm = |name: &str, node: &str| pb::PodConfigMapRequest {
            node_name: node.into(),
            pod_uid: uid.clone(),
            name: name.into(),
            namespace: "lab".into(),
            pod_name: "p".into(),
        };
        let data = get_pod_config_map(&objects, "n1", cm("kube-root-ca.crt", "n1"))
            .await
            .expect("data");
        assert_eq!(data.data.get("ca.crt").map(String::as_str), Some("PEM"));
        for (name, node) in [("kube-root-ca.crt", "n2"), ("other", "n1")] {
            let e = get_pod_config_map(&objects, node, cm(name, "n1"))
                .await
                .expect_err("refused");
            assert_eq!(e.code(), tonic::Code::PermissionDenied, "{name} {node}");
        }
    }

    #[tokio::test]
    async fn a_node_gets_tokens_only_for_audiences_its_pod_projects() {
        let (objects, uid) = setup().await;
        let signer = Arc::new(TokenSigner::generate(ISSUER).expect("key"));
        let ask = |audiences: &[&str]| pb::PodTokenRequest {
            node_name: "n1".into(),
            pod_uid: uid.clone(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            expiration_seconds: 3600,
            namespace: "lab".into(),
            pod_name: "p".into(),
        };
        for allowed in [&[][..], &["vault"], &[ISSUER], &[""]] {
            let answer = request_pod_token(&objects, Some(&signer), "n1", ask(allowed))
                .await
                .unwrap_or_else(|e| panic!("{allowed:?}: {e:?}"));
            let want = match allowed {
                ["vault"] => vec!["vault".to_string()],
                _ => signer.api_audiences().to_vec(),
            };
            signer
                .verify(&answer.token, answer.expiration_unix - 1, &want)
                .unwrap_or_else(|e| panic!("{allowed:?}: {e:?}"));
        }
        let refused = request_pod_token(&objects, Some(&signer), "n1", ask(&["bank"]))
            .await
            .expect_err("a foreign audience");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            refused.message(),
            "serviceaccounts \"default\" is forbidden: audience \"bank\" not found in pod spec volume, \
             system:node:n1 is not authorized to request tokens for this audience"
        );
        let two = request_pod_token(&objects, Some(&signer), "n1", ask(&["vault", ISSUER]))
            .await
            .expect_err("two audiences");
        assert_eq!(
            two.message(),
            "serviceaccounts \"default\" is forbidden: node may only request 0 or 1 audiences"
        );
        // A pod without a default token volume gives no API token to its
        // node either.
        let bare = objects
            .create(
                kinds::PODS,
                json!({"metadata": {"name": "bare", "namespace": "lab"},
                    "spec": {"nodeName": "n1", "serviceAccountName": "default",
                        "containers": [{"name": "c", "image": "busybox"}]}}),
            )
            .await
            .expect("pod");
        let mut request = ask(&[]);
        request.pod_name = "bare".into();
        request.pod_uid = crate::meta::uid(&bare).to_string();
        let e = request_pod_token(&objects, Some(&signer), "n1", request)
            .await
            .expect_err("no token volume");
        assert!(
            e.message()
                .contains("audience \"\" not found in pod spec volume"),
            "{e:?}"
        );
    }
}
