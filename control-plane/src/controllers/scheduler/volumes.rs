//! The VolumeBinding plugin: a pod's `persistentVolumeClaim` volumes.
//! Its pre-filter reads the claims (only for pods that have some, so other
//! pods still read no store): a missing or deleting claim, or an unbound
//! one that no provisioner here will bind, makes the pod unschedulable
//! everywhere. Its filter keeps a pod off nodes outside the node affinity
//! of the volumes its claims are bound to (a node-local volume pins its
//! pod to its node); claims that wait for their first consumer fit any
//! node and are provisioned on the chosen one before the bind
//! ([`crate::volumes::provision`]).

use serde_json::Value;

use super::filters::{NodeInfo, Reason};
use crate::controllers::affinity::NodeSelector;
use crate::meta::str_at;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;
use crate::volumes::PROVISIONER;
use crate::volumes::mounts::claim_volumes;

/// What the pod's claims ask of a node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeFit {
    /// Node affinity of each volume a claim is bound to.
    pub bound: Vec<NodeSelector>,
    /// Claims to provision on the chosen node.
    pub provision: Vec<String>,
}

impl VolumeFit {
    /// The filter: every bound volume must be reachable from the node.
    pub fn filter(&self, node: &NodeInfo) -> Result<(), Vec<Reason>> {
        if self
            .bound
            .iter()
            .all(|s| s.matches(&node.name, &node.labels))
        {
            Ok(())
        } else {
            Err(vec![Reason::VolumeNodeAffinity])
        }
    }
}

/// The pre-filter's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// Nodes are filtered with this.
    Fit(VolumeFit),
    /// No node can take the pod now, for this reason (upstream's wording).
    Unresolvable(String),
}

/// Whether the pod has claims (only then is the store read).
pub fn has_claims(pod: &Value) -> bool {
    !claim_volumes(pod).is_empty()
}

/// Reads the pod's claims and their volumes.
pub async fn check(objects: &Objects, pod: &Value) -> Result<Check, StoreError> {
    let (claims_rt, volumes_rt, classes_rt) = (
        kinds::PERSISTENTVOLUMECLAIMS,
        kinds::PERSISTENTVOLUMES,
        kinds::STORAGECLASSES,
    );
    let namespace = str_at(pod, "/metadata/namespace").unwrap_or("default");
    let mut fit = VolumeFit::default();
    for (_, claim) in claim_volumes(pod) {
        let Some(pvc) = objects.find(claims_rt, Some(namespace), &claim).await? else {
            return Ok(Check::Unresolvable(format!(
                "persistentvolumeclaim \"{claim}\" not found"
            )));
        };
        if pvc
            .pointer("/metadata/deletionTimestamp")
            .is_some_and(|t| !t.is_null())
        {
            return Ok(Check::Unresolvable(format!(
                "persistentvolumeclaim \"{claim}\" is being deleted"
            )));
        }
        if let Some(pv_name) = str_at(&pvc, "/spec/volumeName").filter(|v| !v.is_empty()) {
            let Some(pv) = objects.find(volumes_rt, None, pv_name).await? else {
                return Ok(Check::Unresolvable(format!(
                    "persistentvolume \"{pv_name}\" not found"
                )));
            };
            if let Some(required) = pv.pointer("/spec/nodeAffinity/required") {
                fit.bound.push(NodeSelector::of_terms(required));
            }
            continue;
        }
        let immediate =
            || Check::Unresolvable("pod has unbound immediate PersistentVolumeClaims".into());
        let Some(class_name) = str_at(&pvc, "/spec/storageClassName").filter(|c| !c.is_empty())
        else {
            return Ok(immediate());
        };
        let Some(class) = objects.find(classes_rt, None, class_name).await? else {
            return Ok(Check::Unresolvable(format!(
                "storageclass.storage.k8s.io \"{class_name}\" not found"
            )));
        };
        if class.get("volumeBindingMode").and_then(Value::as_str) != Some("WaitForFirstConsumer") {
            return Ok(immediate());
        }
        if class.get("provisioner").and_then(Value::as_str) != Some(PROVISIONER) {
            return Ok(Check::Unresolvable(format!(
                "storage class \"{class_name}\" is not provisioned by {PROVISIONER}"
            )));
        }
        fit.provision.push(claim);
    }
    Ok(Check::Fit(fit))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::volumes::testing::claim;
    use crate::volumes::{ensure_default_class, provision::provision};

    fn node(name: &str) -> NodeInfo {
        NodeInfo::of_node(&json!({"metadata": {"name": name,
            "labels": {"kubernetes.io/hostname": name}}, "spec": {},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}}))
    }

    fn pod(claim: &str) -> Value {
        json!({"metadata": {"name": "web-0", "namespace": "default"}, "spec": {
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]}})
    }

    #[tokio::test]
    async fn claims_decide_where_a_pod_may_go() {
        let objects = Objects::in_memory();
        assert!(!has_claims(
            &json!({"spec": {"volumes": [{"name": "x", "emptyDir": {}}]}})
        ));
        assert_eq!(
            check(&objects, &pod("data-web-0")).await.expect("check"),
            Check::Unresolvable("persistentvolumeclaim \"data-web-0\" not found".into())
        );
        // No default class yet: the claim has none, so it is "immediate".
        claim(&objects, "plain", json!({})).await;
        assert_eq!(
            check(&objects, &pod("plain")).await.expect("check"),
            Check::Unresolvable("pod has unbound immediate PersistentVolumeClaims".into())
        );
        ensure_default_class(&objects).await.expect("class");
        claim(&objects, "data-web-0", json!({})).await;
        let Check::Fit(fit) = check(&objects, &pod("data-web-0")).await.expect("check") else {
            panic!("a waiting claim fits anywhere");
        };
        assert_eq!(fit.provision, ["data-web-0"]);
        assert!(fit.filter(&node("a")).is_ok() && fit.filter(&node("b")).is_ok());
        provision(&objects, "default", "data-web-0", "b")
            .await
            .expect("provision");
        let Check::Fit(fit) = check(&objects, &pod("data-web-0")).await.expect("check") else {
            panic!("bound claims fit their node");
        };
        assert!(fit.provision.is_empty());
        assert_eq!(
            fit.filter(&node("a")),
            Err(vec![Reason::VolumeNodeAffinity])
        );
        assert!(fit.filter(&node("b")).is_ok());
        assert_eq!(
            Reason::VolumeNodeAffinity.to_string(),
            "node(s) had volume node affinity conflict"
        );
    }
}
