//! What a node needs to mount a pod's claims: for each of the pod's
//! `persistentVolumeClaim` volumes bound to a node-local volume, that
//! volume's handle. The node actor puts the map on the pod it sends, in
//! the [`LOCAL_VOLUMES_ANNOTATION`] annotation (the kubelet reads no API
//! objects).

use std::borrow::Cow;

use serde_json::{Map, Value, json};
use skiff_proto::node::LOCAL_VOLUMES_ANNOTATION;

use super::{PROVISIONER, VolumeError};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// `(pod volume name, claim name)` of each claim volume of the pod.
pub fn claim_volumes(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let claim = v.pointer("/persistentVolumeClaim/claimName")?.as_str()?;
            Some((v["name"].as_str()?.to_string(), claim.to_string()))
        })
        .collect()
}

/// The node-local volume handles of the pod's claims that are bound to
/// one (others are left out: the node reports them as not mountable).
pub async fn local_volumes(
    objects: &Objects,
    pod: &Value,
) -> Result<Map<String, Value>, VolumeError> {
    let mut out = Map::new();
    let namespace = pod
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    for (volume, claim) in claim_volumes(pod) {
        let pvc = match objects
            .get(kinds::PERSISTENTVOLUMECLAIMS, Some(namespace), &claim)
            .await
        {
            Ok(c) => c,
            Err(StoreError::NotFound(_)) => continue,
            Err(e) => return Err(e.into()),
        };
        let Some(pv_name) = pvc
            .pointer("/spec/volumeName")
            .and_then(Value::as_str)
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let Some(pv) = objects
            .find(kinds::PERSISTENTVOLUMES, None, pv_name)
            .await?
        else {
            continue;
        };
        let csi = &pv["spec"]["csi"];
        if csi["driver"] == PROVISIONER
            && let Some(handle) = csi["volumeHandle"].as_str()
        {
            out.insert(volume, json!(handle));
        }
    }
    Ok(out)
}

/// The pod as sent to its node: with the annotation naming its node-local
/// volumes (any value the pod came with is replaced, so a pod cannot name
/// another claim's directory).
pub async fn for_node<'a>(
    objects: &Objects,
    pod: &'a Value,
) -> Result<Cow<'a, Value>, VolumeError> {
    // Most pods have no claims and no stale annotation: sent as they are,
    // without a copy.
    let annotated = pod["metadata"]["annotations"]
        .get(LOCAL_VOLUMES_ANNOTATION)
        .is_some();
    if !annotated && claim_volumes(pod).is_empty() {
        return Ok(Cow::Borrowed(pod));
    }
    let mut out = pod.clone();
    let had = out
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
        .and_then(|a| a.remove(LOCAL_VOLUMES_ANNOTATION))
        .is_some();
    if claim_volumes(pod).is_empty() {
        if had
            && out["metadata"]["annotations"]
                .as_object()
                .is_some_and(Map::is_empty)
            && let Some(m) = out["metadata"].as_object_mut()
        {
            m.remove("annotations");
        }
        return Ok(Cow::Owned(out));
    }
    let volumes = local_volumes(objects, pod).await?;
    if !out["metadata"]["annotations"].is_object() {
        out["metadata"]["annotations"] = json!({});
    }
    out["metadata"]["annotations"][LOCAL_VOLUMES_ANNOTATION] =
        json!(Value::Object(volumes).to_string());
    Ok(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volumes::provision::provision;
    use crate::volumes::testing::{claim, store_with_default_class};

    #[tokio::test]
    async fn the_node_is_told_the_handles_of_bound_claims_only() {
        let objects = store_with_default_class().await;
        for name in ["bound", "waiting"] {
            claim(&objects, name, json!({})).await;
        }
        let pv = provision(&objects, "default", "bound", "n1")
            .await
            .expect("provision");
        let pod = json!({"metadata": {"name": "p", "namespace": "default",
                "annotations": {LOCAL_VOLUMES_ANNOTATION: "{\"data\":\"../../etc\"}"}},
            "spec": {"volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "bound"}},
                {"name": "later", "persistentVolumeClaim": {"claimName": "waiting"}},
                {"name": "gone", "persistentVolumeClaim": {"claimName": "missing"}},
                {"name": "tmp", "emptyDir": {}}]}});
        let sent = for_node(&objects, &pod).await.expect("resolve");
        let map: Value = serde_json::from_str(
            sent["metadata"]["annotations"][LOCAL_VOLUMES_ANNOTATION]
                .as_str()
                .expect("annotation"),
        )
        .expect("json");
        assert_eq!(map, json!({"data": pv}));
        // A pod without claims loses a forged annotation.
        let plain = json!({"metadata": {"name": "q",
            "annotations": {LOCAL_VOLUMES_ANNOTATION: "{}"}}, "spec": {}});
        let sent = for_node(&objects, &plain).await.expect("resolve");
        assert!(sent["metadata"].get("annotations").is_none(), "{sent}");
    }
}
