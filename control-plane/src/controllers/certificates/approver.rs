//! Auto-approval, as upstream's `csrapproving` controller (`sarapprove`):
//! a request for a kubelet client certificate (signer
//! `kube-apiserver-client-kubelet`, the subject and usages a node's) is
//! approved when its requester may `create` the
//! `certificatesigningrequests/selfnodeclient` subresource (the request
//! names the requester itself) or `.../nodeclient` (any node), asked of
//! the API server's authorizer as upstream asks a SubjectAccessReview.
//! The default ClusterRole for the first is bound to `system:nodes` at
//! bootstrap, as kubeadm does; delete that binding and nodes' renewals
//! wait for a person. Every other request waits for a person.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::{CsrName, KUBE_APISERVER_CLIENT_KUBELET, kubelet_client_errors, usages};
use crate::auth::authz::{Authorizer, Decision};
use crate::auth::request_info::RequestInfo;
use crate::auth::user::UserInfo;
use crate::controllers::runtime::{self, Reconciler, Trigger};
use crate::registry::kinds::{self, certificates as csrs};
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

/// How soon a recognized request the requester may not have approved is
/// looked at again: a binding added later is no change to the request,
/// and upstream's controller retries too.
const RECHECK: Duration = Duration::from_secs(30);

static AUTHORIZER: OnceLock<Arc<dyn Authorizer>> = OnceLock::new();

/// Sets the authorizer the approver asks (once, at start; none: nothing
/// is approved, as with an authorizer that allows nothing).
pub fn configure(authorizer: Arc<dyn Authorizer>) {
    let _ = AUTHORIZER.set(authorizer);
}

/// One kind of request the approver knows, and the permission its
/// requester needs for it to be approved.
struct Recognizer {
    recognize: fn(&Value, &skiff_pki::csr::Csr) -> bool,
    /// The subresource of `certificatesigningrequests` to `create`.
    subresource: &'static str,
    message: &'static str,
}

/// Upstream's recognizers, in its order.
const RECOGNIZERS: [Recognizer; 2] = [
    Recognizer {
        recognize: is_self_node_client,
        subresource: "selfnodeclient",
        message: "Auto approving self kubelet client certificate after SubjectAccessReview.",
    },
    Recognizer {
        recognize: is_node_client,
        subresource: "nodeclient",
        message: "Auto approving kubelet client certificate after SubjectAccessReview.",
    },
];

/// The reconciler.
pub struct Approver {
    objects: Objects,
    authorizer: Option<Arc<dyn Authorizer>>,
}

impl Approver {
    /// Approves through `objects` what `authorizer` allows.
    pub fn new(objects: Objects, authorizer: Option<Arc<dyn Authorizer>>) -> Self {
        Self {
            objects,
            authorizer,
        }
    }

    /// With the authorizer set by [`configure`], if any.
    pub fn configured(objects: Objects) -> Self {
        Self::new(objects, AUTHORIZER.get().cloned())
    }
}

/// Whether `csr` asks for a node's client certificate (upstream's
/// `isNodeClientCert`).
fn is_node_client(csr: &Value, request: &skiff_pki::csr::Csr) -> bool {
    csr.pointer("/spec/signerName").and_then(Value::as_str) == Some(KUBE_APISERVER_CLIENT_KUBELET)
        && kubelet_client_errors(request, &usages(csr)).is_none()
}

/// Whether `csr` is a node asking for its own client certificate: the
/// requester is the subject (upstream's `isSelfNodeClientCert`).
fn is_self_node_client(csr: &Value, request: &skiff_pki::csr::Csr) -> bool {
    csr.pointer("/spec/username").and_then(Value::as_str) == Some(request.common_name.as_str())
        && is_node_client(csr, request)
}

/// The requester a request records (`spec.username`, `uid`, `groups`,
/// `extra`), whom the authorizer is asked about.
fn requester(csr: &Value) -> UserInfo {
    let spec = &csr["spec"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    UserInfo {
        name: spec["username"].as_str().unwrap_or_default().to_string(),
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        groups: strings(&spec["groups"]),
        extra: spec["extra"]
            .as_object()
            .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
            .unwrap_or_default(),
    }
}

/// `create` on `certificatesigningrequests/<subresource>`, as upstream's
/// SubjectAccessReview asks it.
fn permission(subresource: &str) -> RequestInfo {
    RequestInfo {
        is_resource_request: true,
        verb: "create".into(),
        api_group: kinds::CERTIFICATESIGNINGREQUESTS.group.into(),
        resource: kinds::CERTIFICATESIGNINGREQUESTS.plural.into(),
        subresource: subresource.into(),
        ..RequestInfo::default()
    }
}

/// What the approver decides for `csr`: the approval message, or the
/// subresources it was recognized for but not allowed (none: not a
/// request it knows).
fn decide(authorizer: &dyn Authorizer, csr: &Value) -> Result<&'static str, Vec<&'static str>> {
    let Some(request) = csrs::request_pem(csr).and_then(|p| skiff_pki::csr::parse(&p).ok()) else {
        return Err(Vec::new());
    };
    let user = requester(csr);
    let mut tried = Vec::new();
    for r in &RECOGNIZERS {
        if !(r.recognize)(csr, &request) {
            continue;
        }
        tried.push(r.subresource);
        if authorizer.authorize(&user, &permission(r.subresource)) == Decision::Allow {
            return Ok(r.message);
        }
    }
    Err(tried)
}

impl Reconciler for Approver {
    type Key = CsrName;
    type Change = Infallible;
    type Error = StoreError;
    const NAME: &'static str = "csrapproving";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![kinds::CERTIFICATESIGNINGREQUESTS.prefix()])
    }

    fn decode(_: usize, event: Option<&Event>) -> Option<Trigger<CsrName, Infallible>> {
        super::decode(event)
    }

    async fn list(&mut self) -> Result<Vec<CsrName>, StoreError> {
        super::names(&self.objects).await
    }

    async fn reconcile(&mut self, key: &CsrName) -> Result<runtime::Action, StoreError> {
        let Some(authorizer) = self.authorizer.clone() else {
            return Ok(runtime::Action::await_change());
        };
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        let Some(csr) = self.objects.find(rt, None, &key.0).await? else {
            return Ok(runtime::Action::await_change());
        };
        let decided =
            csrs::has_condition(&csr, csrs::APPROVED) || csrs::has_condition(&csr, csrs::DENIED);
        if decided || csrs::certificate(&csr).is_some() {
            return Ok(runtime::Action::await_change());
        }
        let message = match decide(authorizer.as_ref(), &csr) {
            Ok(message) => message,
            Err(tried) if tried.is_empty() => return Ok(runtime::Action::await_change()),
            Err(tried) => {
                debug!(csr = %key.0, ?tried, "recognized, but the subject access review was not approved");
                return Ok(runtime::Action::requeue(RECHECK));
            }
        };
        let now = crate::registry::meta::now();
        let result = self
            .objects
            .update(rt, None, &key.0, |c| {
                if csrs::has_condition(c, csrs::APPROVED) || csrs::has_condition(c, csrs::DENIED) {
                    return false;
                }
                let condition = json!({
                    "type": csrs::APPROVED, "status": "True", "reason": "AutoApproved",
                    "message": message,
                    "lastUpdateTime": now, "lastTransitionTime": now,
                });
                match c["status"]["conditions"].as_array_mut() {
                    Some(list) => list.push(condition),
                    None => c["status"]["conditions"] = json!([condition]),
                }
                true
            })
            .await;
        match result {
            Ok(_) => info!(csr = %key.0, %message, "approved"),
            Err(StoreError::NotFound(_)) => {}
            Err(e) => {
                warn!(csr = %key.0, error = %e, "approving");
                return Err(e);
            }
        }
        Ok(runtime::Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

    use super::*;
    use crate::auth::authz::rbac::Rbac;
    use crate::auth::authz::{Authorization, Mode, bootstrap};

    fn csr(name: &str, user: &str, groups: &[&str], cn: &str) -> Value {
        let (_, pem) = skiff_pki::csr::new_request(cn, &["system:nodes"]).expect("csr");
        json!({
            "metadata": {"name": name},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": KUBE_APISERVER_CLIENT_KUBELET,
                "usages": ["digital signature", "client auth"],
                "username": user, "groups": groups,
            },
            "status": {},
        })
    }

    /// The API server's authorizer (Node, RBAC) over the roles and
    /// bindings stored in `objects`, as the RBAC feed would load them.
    async fn authorizer(objects: &Objects) -> Arc<dyn Authorizer> {
        let (roles, _) = objects.list(kinds::CLUSTERROLES).await.expect("roles");
        let (bindings, _) = objects
            .list(kinds::CLUSTERROLEBINDINGS)
            .await
            .expect("bindings");
        let roles: Vec<ClusterRole> = roles
            .iter()
            .map(|r| serde_json::from_value(r.clone()).expect("role"))
            .collect();
        let bindings: Vec<ClusterRoleBinding> = bindings
            .iter()
            .map(|b| serde_json::from_value(b.clone()).expect("binding"))
            .collect();
        let rbac = Arc::new(Rbac::default());
        rbac.update(|i| {
            i.replace_cluster_roles(&roles);
            i.replace_cluster_bindings(&bindings);
        });
        Arc::new(Authorization::new(&[Mode::Node, Mode::Rbac], rbac).chain)
    }

    /// Creates `obj`, reconciles it with `authorizer`; whether it was
    /// approved, and the approval's message.
    async fn approve(
        objects: &Objects,
        authorizer: &Arc<dyn Authorizer>,
        obj: Value,
    ) -> (bool, Value) {
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        let name = obj["metadata"]["name"].as_str().expect("name").to_string();
        objects.create(rt, obj).await.expect("create");
        let mut approver = Approver::new(objects.clone(), Some(authorizer.clone()));
        approver
            .reconcile(&CsrName(name.clone()))
            .await
            .expect("reconcile");
        let stored = objects.get(rt, None, &name).await.expect("get");
        (
            csrs::has_condition(&stored, csrs::APPROVED),
            stored["status"]["conditions"][0]["message"].clone(),
        )
    }

    #[tokio::test]
    async fn approval_follows_the_requesters_permissions_as_upstream() {
        let objects = Objects::in_memory();
        bootstrap::ensure(&objects).await.expect("defaults");
        bootstrap::create_initial(&objects)
            .await
            .expect("kubeadm's");
        let authz = authorizer(&objects).await;
        let node = ["system:nodes", "system:authenticated"];
        let (approved, message) = approve(
            &objects,
            &authz,
            csr("self", "system:node:a", &node, "system:node:a"),
        )
        .await;
        assert!(approved, "a node renewing itself");
        assert_eq!(
            message,
            "Auto approving self kubelet client certificate after SubjectAccessReview."
        );
        // Another node's certificate takes `nodeclient`, which nodes lack.
        let (approved, _) = approve(
            &objects,
            &authz,
            csr("other", "system:node:a", &node, "system:node:b"),
        )
        .await;
        assert!(!approved, "a node asking for another's");
        // Someone who may do anything may ask for any node's, as upstream.
        let (approved, message) = approve(
            &objects,
            &authz,
            csr(
                "admin",
                "kubernetes-admin",
                &["system:masters"],
                "system:node:a",
            ),
        )
        .await;
        assert!(approved, "cluster-admin");
        assert_eq!(
            message,
            "Auto approving kubelet client certificate after SubjectAccessReview."
        );
        // Not a kubelet's client certificate: a person decides.
        let mut serving = csr("serving", "system:node:a", &node, "system:node:a");
        serving["spec"]["signerName"] = json!(super::super::KUBELET_SERVING);
        let (approved, _) = approve(&objects, &authz, serving).await;
        assert!(!approved, "another signer");
        // No authorizer: nothing is approved.
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        objects
            .create(rt, csr("unasked", "system:node:a", &node, "system:node:a"))
            .await
            .expect("create");
        Approver::new(objects.clone(), None)
            .reconcile(&CsrName("unasked".into()))
            .await
            .expect("reconcile");
        let stored = objects.get(rt, None, "unasked").await.expect("get");
        assert!(!csrs::has_condition(&stored, csrs::APPROVED));
    }

    #[tokio::test]
    async fn without_kubeadms_binding_nodes_renewals_wait() {
        let objects = Objects::in_memory();
        bootstrap::ensure(&objects).await.expect("defaults");
        bootstrap::create_initial(&objects)
            .await
            .expect("kubeadm's");
        objects
            .delete(
                kinds::CLUSTERROLEBINDINGS,
                None,
                bootstrap::NODE_AUTOAPPROVE_CERTIFICATE_ROTATION,
            )
            .await
            .expect("delete the binding");
        // Reconciling the defaults does not bring it back.
        bootstrap::ensure(&objects).await.expect("defaults again");
        let authz = authorizer(&objects).await;
        let node = ["system:nodes", "system:authenticated"];
        let obj = csr("self", "system:node:a", &node, "system:node:a");
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        objects.create(rt, obj).await.expect("create");
        let mut approver = Approver::new(objects.clone(), Some(authz));
        let action = approver
            .reconcile(&CsrName("self".into()))
            .await
            .expect("reconcile");
        let stored = objects.get(rt, None, "self").await.expect("get");
        assert!(!csrs::has_condition(&stored, csrs::APPROVED));
        // Looked at again later: a binding added then is no change to it.
        assert_eq!(action.requeue_after(), Some(RECHECK));
    }
}
