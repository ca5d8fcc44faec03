//! Auto-approval, as upstream's `csrapproving` controller with its
//! `selfnodeclient` recognizer: a node (`system:node:X` in
//! `system:nodes`) asking for a kube-apiserver-client-kubelet certificate
//! for itself is approved; every other request waits for a person.

use std::convert::Infallible;

use serde_json::{Value, json};
use tracing::info;

use super::{CsrName, KUBE_APISERVER_CLIENT_KUBELET, kubelet_client_errors, usages};
use crate::controllers::runtime::{self, Reconciler, Trigger};
use crate::registry::kinds::{self, certificates as csrs};
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

/// The reconciler.
pub struct Approver {
    objects: Objects,
}

impl Approver {
    /// Approves through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self { objects }
    }
}

/// Whether `csr` is a node renewing its own client certificate.
pub fn is_self_node_client(csr: &Value) -> bool {
    if csr.pointer("/spec/signerName").and_then(Value::as_str)
        != Some(KUBE_APISERVER_CLIENT_KUBELET)
    {
        return false;
    }
    let Some(request) = csrs::request_pem(csr).and_then(|p| skiff_pki::csr::parse(&p).ok()) else {
        return false;
    };
    let username = csr.pointer("/spec/username").and_then(Value::as_str);
    let in_nodes = csr
        .pointer("/spec/groups")
        .and_then(Value::as_array)
        .is_some_and(|g| g.iter().any(|g| g == crate::auth::user::NODES));
    username == Some(request.common_name.as_str())
        && in_nodes
        && kubelet_client_errors(&request, &usages(csr)).is_none()
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
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        let Some(csr) = self.objects.find(rt, None, &key.0).await? else {
            return Ok(runtime::Action::await_change());
        };
        let decided =
            csrs::has_condition(&csr, csrs::APPROVED) || csrs::has_condition(&csr, csrs::DENIED);
        if decided || !is_self_node_client(&csr) {
            return Ok(runtime::Action::await_change());
        }
        let now = crate::registry::meta::now();
        self.objects
            .update(rt, None, &key.0, |c| {
                if csrs::has_condition(c, csrs::APPROVED) || csrs::has_condition(c, csrs::DENIED) {
                    return false;
                }
                let condition = json!({
                    "type": csrs::APPROVED, "status": "True", "reason": "AutoApproved",
                    "message": "Auto approving self kubelet client certificate after SubjectAccessReview.",
                    "lastUpdateTime": now, "lastTransitionTime": now,
                });
                match c["status"]["conditions"].as_array_mut() {
                    Some(list) => list.push(condition),
                    None => c["status"]["conditions"] = json!([condition]),
                }
                true
            })
            .await?;
        info!(csr = %key.0, "approved a node's renewal of its client certificate");
        Ok(runtime::Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;

    use super::*;

    fn csr(user: &str, groups: &[&str], cn: &str) -> Value {
        let (_, pem) = skiff_pki::csr::new_request(cn, &["system:nodes"]).expect("csr");
        json!({
            "metadata": {"name": "renew"},
            "spec": {
                "request": base64::engine::general_purpose::STANDARD.encode(pem),
                "signerName": KUBE_APISERVER_CLIENT_KUBELET,
                "usages": ["digital signature", "client auth"],
                "username": user, "groups": groups,
            },
            "status": {},
        })
    }

    #[tokio::test]
    async fn a_node_renewing_itself_is_approved_and_no_one_else() {
        let objects = Objects::in_memory();
        let rt = kinds::CERTIFICATESIGNINGREQUESTS;
        let mut approver = Approver::new(objects.clone());
        let cases = [
            (
                "self",
                csr("system:node:a", &["system:nodes"], "system:node:a"),
                true,
            ),
            (
                "other",
                csr("system:node:a", &["system:nodes"], "system:node:b"),
                false,
            ),
            (
                "admin",
                csr("kubernetes-admin", &["system:masters"], "system:node:a"),
                false,
            ),
        ];
        for (name, mut obj, approved) in cases {
            obj["metadata"]["name"] = json!(name);
            objects.create(rt, obj).await.expect("create");
            approver
                .reconcile(&CsrName(name.into()))
                .await
                .expect("reconcile");
            let stored = objects.get(rt, None, name).await.expect("get");
            assert_eq!(
                csrs::has_condition(&stored, csrs::APPROVED),
                approved,
                "{name}"
            );
        }
    }
}
