//! The root CA publisher: every active namespace has the ConfigMap
//! `kube-root-ca.crt` holding the cluster CA (`ca.crt`), as upstream's,
//! which pods' projected ServiceAccount volumes mount to verify the API.
//! A changed or deleted one is put back.

use std::convert::Infallible;
use std::sync::OnceLock;

use serde_json::{Value, json};

use super::namespace_key::{self, NamespaceName};
use super::runtime::{self, Reconciler, Trigger};
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its key.
pub const KEY: &str = "ca.crt";
/// The annotation saying what it is for.
const DESCRIPTION: &str = "kubernetes.io/description";
const DESCRIBED: &str = "The cluster CA bundle, for clients inside the cluster to verify the \
    API server at kubernetes.default.svc or the kubernetes Service's IP.";

static ROOT_CA: OnceLock<String> = OnceLock::new();

/// Sets the cluster CA (PEM) the controller publishes (once, at start).
pub fn set_root_ca(pem: String) {
    let _ = ROOT_CA.set(pem);
}

/// The cluster CA set at start, if any (no CA: no publisher).
pub fn root_ca() -> Option<&'static str> {
    ROOT_CA.get().map(String::as_str)
}

/// The reconciler.
pub struct RootCaPublisher {
    objects: Objects,
    ca: String,
}

impl RootCaPublisher {
    /// Publishes `ca_pem` through `objects`.
    pub fn new(objects: Objects, ca_pem: &str) -> Self {
        Self {
            objects,
            ca: ca_pem.to_string(),
        }
    }

    fn is_current(&self, config_map: &Value) -> bool {
        config_map.pointer("/data/ca.crt").and_then(Value::as_str) == Some(self.ca.as_str())
    }
}

impl Reconciler for RootCaPublisher {
    type Key = NamespaceName;
    type Change = Infallible;
    type Error = StoreError;
    const NAME: &'static str = "root-ca-cert-publisher";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![kinds::NAMESPACES.prefix(), kinds::CONFIGMAPS.prefix()])
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<NamespaceName, Infallible>> {
        namespace_key::decode(watch, event, CONFIG_MAP)
    }

    async fn list(&mut self) -> Result<Vec<NamespaceName>, StoreError> {
        let (namespaces, _) = self.objects.list(kinds::NAMESPACES).await?;
        Ok(namespaces
            .iter()
            .map(|n| NamespaceName(meta::name(n).to_string()))
            .collect())
    }

    async fn reconcile(&mut self, key: &NamespaceName) -> Result<runtime::Action, StoreError> {
        if self.ca.is_empty() {
            // A control plane without a CA (in-process tests) has none to publish.
            return Ok(runtime::Action::await_change());
        }
        let namespace = self.objects.find(kinds::NAMESPACES, None, &key.0).await?;
        if !namespace.as_ref().is_some_and(namespace_key::is_active) {
            return Ok(runtime::Action::await_change());
        }
        let rt = kinds::CONFIGMAPS;
        match self.objects.find(rt, Some(&key.0), CONFIG_MAP).await? {
            Some(current) if self.is_current(&current) => {}
            Some(_) => {
                let ca = self.ca.clone();
                self.objects
                    .update(rt, Some(&key.0), CONFIG_MAP, |cm| {
                        cm["data"] = json!({KEY: ca});
                        true
                    })
                    .await?;
            }
            None => {
                let config_map = json!({
                    "metadata": {"name": CONFIG_MAP, "namespace": key.0,
                        "annotations": {DESCRIPTION: DESCRIBED}},
                    "data": {KEY: self.ca},
                });
                match self.objects.create(rt, config_map).await {
                    Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(runtime::Action::await_change())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_namespace_gets_the_ca_and_edits_are_undone() {
        let objects = Objects::in_memory();
        objects
            .create(kinds::NAMESPACES, json!({"metadata": {"name": "lab"}}))
            .await
            .expect("namespace");
        let mut controller = RootCaPublisher::new(objects.clone(), "PEM");
        let lab = NamespaceName("lab".into());
        controller.reconcile(&lab).await.expect("reconcile");
        let rt = kinds::CONFIGMAPS;
        let cm = objects
            .get(rt, Some("lab"), CONFIG_MAP)
            .await
            .expect("made");
        assert_eq!(cm["data"], json!({"ca.crt": "PEM"}));
        objects
            .update(rt, Some("lab"), CONFIG_MAP, |cm| {
                cm["data"]["ca.crt"] = json!("edited");
                true
            })
            .await
            .expect("edit");
        controller.reconcile(&lab).await.expect("again");
        let cm = objects
            .get(rt, Some("lab"), CONFIG_MAP)
            .await
            .expect("kept");
        assert_eq!(cm["data"]["ca.crt"], "PEM");
        objects
            .delete(rt, Some("lab"), CONFIG_MAP)
            .await
            .expect("delete");
        controller.reconcile(&lab).await.expect("remade");
        assert!(
            objects
                .find(rt, Some("lab"), CONFIG_MAP)
                .await
                .expect("read")
                .is_some()
        );
    }
}
