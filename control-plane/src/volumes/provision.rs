//! Node-local provisioning: a claim of a StorageClass whose provisioner is
//! [`PROVISIONER`] gets a PersistentVolume on the node its first pod was
//! scheduled to (`volumeBindingMode: WaitForFirstConsumer`). Upstream
//! splits this between the scheduler's VolumeBinding plugin (which
//! annotates the claim with the chosen node and waits), the PV controller
//! and an external provisioner; Skiff's scheduler calls [`provision`] in
//! its binding cycle, before it binds the pod, so a pod is never on a node
//! with its claims still unbound.
//!
//! The volume is a directory that the node agent keeps under its state
//! folder, named by the volume's handle (`<state-dir>/volumes/<handle>`):
//! the PV carries it as a CSI source (`driver: skiff.io/node-local`,
//! `volumeHandle: pvc-<claim uid>`) and a required node affinity on
//! `kubernetes.io/hostname`, which the scheduler honours for later pods.

use serde_json::{Value, json};
use tracing::info;

use super::{PROVISIONER, VolumeError};
use crate::meta::str_at;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// The PersistentVolume for `claim` on `node` with `class`'s policy.
pub fn volume_for(claim: &Value, class: &Value, node: &str) -> Value {
    let uid = str_at(claim, "/metadata/uid").unwrap_or_default();
    let name = format!("pvc-{uid}");
    let spec = &claim["spec"];
    let storage = spec
        .pointer("/resources/requests/storage")
        .cloned()
        .unwrap_or(json!("0"));
    json!({
        "metadata": {
            "name": name,
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "accessModes": spec.get("accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"])),
            "capacity": {"storage": storage},
            "claimRef": {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "namespace": claim.pointer("/metadata/namespace"),
                "name": claim.pointer("/metadata/name"),
                "uid": uid,
                "resourceVersion": claim.pointer("/metadata/resourceVersion"),
            },
            "csi": {"driver": PROVISIONER, "volumeHandle": name},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
            "persistentVolumeReclaimPolicy": class.get("reclaimPolicy").cloned().unwrap_or(json!("Delete")),
            "storageClassName": class.pointer("/metadata/name"),
            "volumeMode": spec.get("volumeMode").cloned().unwrap_or(json!("Filesystem")),
        },
        "status": {"phase": "Bound"},
    })
}

/// Marks `claim` bound to `volume` (what upstream's PV controller writes).
/// `false` if the claim was bound meanwhile (to whatever).
pub fn bind_claim(claim: &mut Value, volume: &Value, node: &str) -> bool {
    if str_at(claim, "/spec/volumeName").is_some_and(|v| !v.is_empty()) {
        return false;
    }
    claim["spec"]["volumeName"] = volume["metadata"]["name"].clone();
    if !claim["metadata"]["annotations"].is_object() {
        claim["metadata"]["annotations"] = json!({});
    }
    let annotations = &mut claim["metadata"]["annotations"];
    annotations["pv.kubernetes.io/bind-completed"] = json!("yes");
    annotations["pv.kubernetes.io/bound-by-controller"] = json!("yes");
    annotations["volume.beta.kubernetes.io/storage-provisioner"] = json!(PROVISIONER);
    annotations["volume.kubernetes.io/storage-provisioner"] = json!(PROVISIONER);
    annotations["volume.kubernetes.io/selected-node"] = json!(node);
    claim["status"] = json!({
        "phase": "Bound",
        "accessModes": volume["spec"]["accessModes"],
        "capacity": volume["spec"]["capacity"],
    });
    true
}

/// Provisions a volume for the claim `namespace/claim` on `node` and binds
/// the claim to it; returns the volume's name. A claim already bound is
/// left as it is (its volume's name is returned).
pub async fn provision(
    objects: &Objects,
    namespace: &str,
    claim: &str,
    node: &str,
) -> Result<String, VolumeError> {
    let claims = kinds::PERSISTENTVOLUMECLAIMS;
    let volumes = kinds::PERSISTENTVOLUMES;
    let pvc = objects.get(claims, Some(namespace), claim).await?;
    if let Some(bound) = str_at(&pvc, "/spec/volumeName").filter(|v| !v.is_empty()) {
        return Ok(bound.to_string());
    }
    let class_name = str_at(&pvc, "/spec/storageClassName").unwrap_or_default();
    let Some(class) = objects
        .find(kinds::STORAGECLASSES, None, class_name)
        .await?
    else {
        return Err(VolumeError::NoClass(class_name.to_string()));
    };
    if class.get("provisioner").and_then(Value::as_str) != Some(PROVISIONER) {
        return Err(VolumeError::NotOurs(class_name.to_string()));
    }
    let volume = volume_for(&pvc, &class, node);
    let pv_name = str_at(&volume, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    match objects.create(volumes, volume.clone()).await {
        Ok(_) => {}
        // A previous attempt made it (its bind of the claim failed).
        Err(StoreError::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut bound_elsewhere = None;
    let updated = objects
        .update(claims, Some(namespace), claim, |c| {
            if str_at(c, "/metadata/uid") != str_at(&pvc, "/metadata/uid") {
                return false;
            }
            let bound = bind_claim(c, &volume, node);
            if !bound {
                bound_elsewhere = str_at(c, "/spec/volumeName").map(String::from);
            }
            bound
        })
        .await?;
    match (updated, bound_elsewhere) {
        (Some(bound), _) => {
            info!(claim = %format!("{namespace}/{claim}"), volume = %pv_name, %node, "provisioned node-local volume");
            objects
                .event(
                    &bound,
                    false,
                    "ProvisioningSucceeded",
                    &format!("Successfully provisioned volume {pv_name}"),
                    PROVISIONER,
                )
                .await;
            Ok(pv_name)
        }
        (None, Some(other)) => {
            objects.delete(volumes, None, &pv_name).await?;
            Ok(other)
        }
        // The claim was replaced by another of the same name meanwhile.
        (None, None) => {
            objects.delete(volumes, None, &pv_name).await?;
            Err(VolumeError::ClaimChanged(claim.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::testing::{claim, store_with_default_class};

    #[tokio::test]
    async fn a_claim_gets_a_volume_pinned_to_the_node() {
        let objects = store_with_default_class().await;
        let claims = kinds::PERSISTENTVOLUMECLAIMS;
        claim(&objects, "data-web-0", json!({"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}})).await;
        let pvc = objects
            .get(claims, Some("default"), "data-web-0")
            .await
            .expect("claim");
        // The default class was given by admission.
        assert_eq!(
            pvc["spec"]["storageClassName"],
            crate::volumes::DEFAULT_CLASS_NAME
        );
        let pv = provision(&objects, "default", "data-web-0", "node-a")
            .await
            .expect("provisioned");
        let uid = pvc["metadata"]["uid"].as_str().expect("uid");
        assert_eq!(pv, format!("pvc-{uid}"));
        let volume = objects
            .get(kinds::PERSISTENTVOLUMES, None, &pv)
            .await
            .expect("pv");
        assert_eq!(volume["status"]["phase"], "Bound");
        // What Skiff makes, a client may write back unchanged.
        assert_eq!(
            skiff_api_rules::volume::validate_persistent_volume(&volume),
            Vec::<String>::new()
        );
        let class = objects
            .get(
                kinds::STORAGECLASSES,
                None,
                crate::volumes::DEFAULT_CLASS_NAME,
            )
            .await
            .expect("class");
        assert_eq!(
            skiff_api_rules::volume::validate_storage_class(&class),
            Vec::<String>::new()
        );
        assert_eq!(volume["spec"]["claimRef"]["name"], "data-web-0");
        assert_eq!(volume["spec"]["capacity"]["storage"], "1Gi");
        assert_eq!(volume["spec"]["persistentVolumeReclaimPolicy"], "Delete");
        assert_eq!(volume["spec"]["csi"]["volumeHandle"], pv.as_str());
        assert_eq!(
            volume.pointer(
                "/spec/nodeAffinity/required/nodeSelectorTerms/0/matchExpressions/0/values/0"
            ),
            Some(&json!("node-a"))
        );
        let pvc = objects
            .get(claims, Some("default"), "data-web-0")
            .await
            .expect("claim");
        assert_eq!(pvc["spec"]["volumeName"], pv.as_str());
        assert_eq!(pvc["status"]["phase"], "Bound");
        assert_eq!(pvc["status"]["capacity"]["storage"], "1Gi");
        assert_eq!(
            pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"],
            "node-a"
        );
        // Again (another node asked): the claim keeps its volume.
        let again = provision(&objects, "default", "data-web-0", "node-b")
            .await
            .expect("bound");
        assert_eq!(again, pv);
        let (all, _) = objects.list(kinds::PERSISTENTVOLUMES).await.expect("list");
        assert_eq!(all.len(), 1);
    }

    #[tokio::test]
    async fn claims_of_other_classes_are_not_provisioned() {
        let objects = Objects::in_memory();
        claim(&objects, "c", json!({"storageClassName": "fast"})).await;
        let err = provision(&objects, "default", "c", "n")
            .await
            .expect_err("no class");
        assert!(
            matches!(err, VolumeError::NoClass(ref c) if c == "fast"),
            "{err}"
        );
    }
}
