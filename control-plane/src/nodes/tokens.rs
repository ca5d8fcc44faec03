//! What a pod's projected volumes need from the control plane, asked by
//! the node running the pod: a ServiceAccount token bound to the pod
//! (issued as `serviceaccounts/token` issues it) and the data of a
//! ConfigMap the pod's projected volumes name (`kube-root-ca.crt`).
//! Only the node the pod is bound to gets answers, as upstream's Node
//! authorizer lets a kubelet read only its own pods' tokens and ConfigMaps.

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
    let spec = Spec {
        audiences: request.audiences,
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
                            {"configMap": {"name": "kube-root-ca.crt"}}]}}]}}),
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
}
