//! The CertificateSigningRequest controllers, as kube-controller-manager's
//! `csrapproving` and `csrsigning`: [`approver`] approves kubelet client
//! certificate requests whose requesters the authorizer allows it for
//! (nothing else), [`signer`] signs
//! approved requests for the signers Skiff holds the keys of. Both key on
//! the request's name and decode the same watch.

pub mod approver;
pub mod signer;

use std::convert::Infallible;

use super::metadata_of;
use super::runtime::{Key, Trigger};
use crate::meta;
use crate::store::Event;

/// A CertificateSigningRequest, by name (cluster-scoped).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CsrName(pub String);

impl Key for CsrName {
    fn kind(&self) -> &str {
        "CertificateSigningRequest"
    }

    fn object_ref(&self) -> String {
        self.0.clone()
    }

    fn namespace(&self) -> Option<&str> {
        None
    }
}

/// The signer names upstream defines.
pub const KUBE_APISERVER_CLIENT: &str = "kubernetes.io/kube-apiserver-client";
/// Kubelets' client certificates.
pub const KUBE_APISERVER_CLIENT_KUBELET: &str = "kubernetes.io/kube-apiserver-client-kubelet";
/// Kubelets' serving certificates.
pub const KUBELET_SERVING: &str = "kubernetes.io/kubelet-serving";

fn decode(event: Option<&Event>) -> Option<Trigger<CsrName, Infallible>> {
    match event {
        None => Some(Trigger::Resync),
        Some(e) => {
            let name = meta::name(&metadata_of(e)?).to_string();
            Some(Trigger::Object(e.kind, CsrName(name)))
        }
    }
}

/// Every stored request, by name: what both controllers resync.
async fn names(
    objects: &crate::registry::objects::Objects,
) -> Result<Vec<CsrName>, crate::store::StoreError> {
    let rt = crate::registry::kinds::CERTIFICATESIGNINGREQUESTS;
    let (all, _) = objects.list(rt).await?;
    Ok(all
        .iter()
        .map(|c| CsrName(meta::name(c).to_string()))
        .collect())
}

/// The usages of a request (`spec.usages`).
fn usages(csr: &serde_json::Value) -> Vec<&str> {
    csr.pointer("/spec/usages")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(serde_json::Value::as_str)
        .collect()
}

/// Upstream's `ValidateKubeletClientCSR`: a node's client certificate
/// names `system:node:<name>` in `system:nodes` alone, no alternative
/// names, and the client usages.
fn kubelet_client_errors(csr: &skiff_pki::csr::Csr, usages: &[&str]) -> Option<String> {
    if csr.organizations != [crate::auth::user::NODES] {
        return Some("subject organization is not system:nodes".into());
    }
    if !csr.common_name.starts_with(crate::auth::user::NODE_PREFIX) {
        return Some("subject common name does not begin with system:node:".into());
    }
    if !csr.alt_names.is_empty() {
        return Some("DNS, email, IP and URI subjectAltNames are not allowed".into());
    }
    let with_encipherment = ["digital signature", "key encipherment", "client auth"];
    let without = ["digital signature", "client auth"];
    let same = |set: &[&str]| usages.len() == set.len() && set.iter().all(|u| usages.contains(u));
    if !(same(&with_encipherment) || same(&without)) {
        return Some(format!(
            "usages did not match [{}] or [{}]",
            with_encipherment.join(" "),
            without.join(" ")
        ));
    }
    None
}
