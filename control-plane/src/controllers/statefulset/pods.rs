//! The objects a StatefulSet makes, as upstream's `newStatefulSetPod` and
//! `getPersistentVolumeClaims` make them: pod `<set>-<ordinal>` with its
//! stable identity (hostname, subdomain, labels) and one claim
//! `<template>-<set>-<ordinal>` per `volumeClaimTemplates` entry, mounted
//! in place of any pod volume of the same name.

use crate::controllers::pod::template_metadata;
use crate::meta;
use serde_json::{Map, Value, json};

/// The label naming the pod (what a per-pod Service selects).
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
/// The label with the pod's ordinal.
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";
/// The label with the name of the pod's ControllerRevision.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The reference that makes the set a pod's (or revision's) controller.
pub fn controller_ref(set: &Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "name": meta::str_at(set, "/metadata/name").unwrap_or_default(), "uid": meta::str_at(set, "/metadata/uid").unwrap_or_default(),
        "controller": true, "blockOwnerDeletion": true,
    })
}

/// `<template>-<set>-<ordinal>`.
pub fn claim_name(template: &str, set: &str, ordinal: usize) -> String {
    format!("{template}-{set}-{ordinal}")
}

/// The set's claim templates (each with a name).
fn claim_templates(set: &Value) -> impl Iterator<Item = &Value> {
    set.pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|t| {
            !meta::str_at(t, "/metadata/name")
                .unwrap_or_default()
                .is_empty()
        })
}

/// The claims of the pod of `ordinal`: `(pod volume name, claim)`. Labels
/// are the template's plus the set's `matchLabels`, as upstream; the claims
/// have no owner (the default retention policy, Retain, keeps them).
pub fn claims(set: &Value, ordinal: usize) -> Vec<(String, Value)> {
    let set_name = meta::str_at(set, "/metadata/name").unwrap_or_default();
    let namespace = set.pointer("/metadata/namespace").cloned();
    claim_templates(set)
        .map(|template| {
            let volume = meta::str_at(template, "/metadata/name")
                .unwrap_or_default()
                .to_string();
            let mut metadata = template_metadata(template);
            metadata["name"] = json!(claim_name(&volume, set_name, ordinal));
            metadata["namespace"] = namespace.clone().unwrap_or(json!("default"));
            let mut labels = metadata
                .get("labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            if let Some(selector) = set
                .pointer("/spec/selector/matchLabels")
                .and_then(Value::as_object)
            {
                labels.extend(selector.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            if !labels.is_empty() {
                metadata["labels"] = Value::Object(labels);
            }
            let claim = json!({
                "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": metadata,
                "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
            });
            (volume, claim)
        })
        .collect()
}

/// The pod of `ordinal` from `set`'s template (the set as of the pod's
/// revision), labelled with `revision` (a ControllerRevision name).
pub fn new_pod(set: &Value, ordinal: usize, revision: &str) -> Value {
    let set_name = meta::str_at(set, "/metadata/name").unwrap_or_default();
    let name = format!("{set_name}-{ordinal}");
    let template = set.pointer("/spec/template").cloned().unwrap_or_default();
    let mut metadata = Map::new();
    for field in ["labels", "annotations", "finalizers"] {
        if let Some(v) = template.pointer(&format!("/metadata/{field}")) {
            metadata.insert(field.into(), v.clone());
        }
    }
    metadata.insert("name".into(), json!(name));
    metadata.insert("generateName".into(), json!(format!("{set_name}-")));
    metadata.insert(
        "namespace".into(),
        set.pointer("/metadata/namespace")
            .cloned()
            .unwrap_or(json!("default")),
    );
    metadata.insert("ownerReferences".into(), json!([controller_ref(set)]));
    let mut pod = json!({
        "metadata": metadata,
        "spec": template.get("spec").cloned().filter(Value::is_object).unwrap_or_else(|| json!({})),
    });
    set_identity(&mut pod, ordinal);
    pod["metadata"]["labels"][REVISION_LABEL] = json!(revision);
    pod["spec"]["hostname"] = json!(name);
    if let Some(service) = set
        .pointer("/spec/serviceName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        pod["spec"]["subdomain"] = json!(service);
    }
    let claims = claims(set, ordinal);
    if !claims.is_empty() {
        // Claims first, then the template's volumes they do not replace.
        let mut volumes: Vec<Value> = claims
            .iter()
            .map(|(volume, claim)| {
                json!({"name": volume, "persistentVolumeClaim": {
                    "claimName": claim["metadata"]["name"]}})
            })
            .collect();
        volumes.extend(
            pod["spec"]["volumes"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|v| !claims.iter().any(|(n, _)| v["name"] == json!(n)))
                .cloned(),
        );
        pod["spec"]["volumes"] = json!(volumes);
    }
    pod
}

/// Sets the identity labels of the pod of `ordinal` (upstream's
/// `updateIdentity`). Returns whether anything changed.
pub fn set_identity(pod: &mut Value, ordinal: usize) -> bool {
    let name = meta::str_at(pod, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    let labels = &mut pod["metadata"]["labels"];
    let mut changed = false;
    for (k, v) in [
        (POD_NAME_LABEL, name),
        (POD_INDEX_LABEL, ordinal.to_string()),
    ] {
        if labels.get(k).and_then(Value::as_str) != Some(v.as_str()) {
            labels[k] = json!(v);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web() -> Value {
        json!({
            "metadata": {"name": "web", "namespace": "lab", "uid": "u-1"},
            "spec": {
                "serviceName": "nginx",
                "selector": {"matchLabels": {"app": "nginx"}},
                "template": {
                    "metadata": {"labels": {"app": "nginx"}, "annotations": {"a": "b"}},
                    "spec": {
                        "containers": [{"name": "c", "image": "busybox",
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                        "volumes": [{"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}],
                    },
                },
                "volumeClaimTemplates": [{
                    "metadata": {"name": "data", "labels": {"tier": "db"}},
                    "spec": {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": "1Gi"}}},
                }],
            },
        })
    }

    #[test]
    fn pods_get_a_stable_identity_and_their_claims() {
        let pod = new_pod(&web(), 2, "web-abc");
        assert_eq!(pod["metadata"]["name"], "web-2");
        assert_eq!(pod["metadata"]["generateName"], "web-");
        assert_eq!(pod["metadata"]["namespace"], "lab");
        assert_eq!(
            pod["metadata"]["labels"],
            json!({"app": "nginx", POD_NAME_LABEL: "web-2", POD_INDEX_LABEL: "2",
                   REVISION_LABEL: "web-abc"})
        );
        assert_eq!(pod["metadata"]["annotations"], json!({"a": "b"}));
        assert_eq!(pod["metadata"]["ownerReferences"][0]["controller"], true);
        assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "StatefulSet");
        assert_eq!(pod["spec"]["hostname"], "web-2");
        assert_eq!(pod["spec"]["subdomain"], "nginx");
        // The claim replaces the template's volume of the same name.
        assert_eq!(
            pod["spec"]["volumes"],
            json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data-web-2"}},
                   {"name": "tmp", "emptyDir": {}}])
        );
    }

    #[test]
    fn claims_are_named_and_labelled_as_upstream() {
        let claims = claims(&web(), 0);
        assert_eq!(claims.len(), 1);
        let (volume, claim) = &claims[0];
        assert_eq!(volume, "data");
        assert_eq!(claim["metadata"]["name"], "data-web-0");
        assert_eq!(claim["metadata"]["namespace"], "lab");
        assert_eq!(
            claim["metadata"]["labels"],
            json!({"tier": "db", "app": "nginx"})
        );
        assert!(claim["metadata"].get("ownerReferences").is_none());
        assert_eq!(claim["spec"]["resources"]["requests"]["storage"], "1Gi");
    }

    #[test]
    fn identity_labels_are_restored() {
        let mut pod = json!({"metadata": {"name": "web-1", "labels": {"app": "x"}}});
        assert!(set_identity(&mut pod, 1));
        assert_eq!(pod["metadata"]["labels"][POD_INDEX_LABEL], "1");
        assert!(!set_identity(&mut pod, 1));
    }
}
