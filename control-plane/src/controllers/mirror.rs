//! Mirror pods: how static pods (from a node's manifests folder) show up in
//! the API, as upstream's kubelet makes them. The mirror carries the static
//! pod's spec and status, the annotation `kubernetes.io/config.mirror` with
//! the static pod's config hash, and the Node as its owner. It is a picture,
//! not a request: it is never pushed to a node, deleting it only makes the
//! node actor draw it again, and it disappears when the manifest does.

use serde_json::{Value, json};

/// The annotation that marks a mirror pod; its value is the config hash.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// The config hash of a mirror pod, `None` for every other pod.
pub fn mirror_hash(pod: &Value) -> Option<&str> {
    pod.pointer("/metadata/annotations")?
        .get(MIRROR_ANNOTATION)?
        .as_str()
}

/// The mirror of `static_pod` (as the node runs it, its uid being the config
/// hash) owned by `node`.
pub fn mirror_of(static_pod: &Value, status: &Value, node: &Value) -> Value {
    let hash = static_pod
        .pointer("/metadata/uid")
        .cloned()
        .unwrap_or(Value::Null);
    let mut metadata = json!({
        "name": static_pod.pointer("/metadata/name"),
        "namespace": static_pod.pointer("/metadata/namespace").cloned().unwrap_or(json!("default")),
        "annotations": static_pod.pointer("/metadata/annotations").cloned().unwrap_or(json!({})),
        "ownerReferences": [{
            "apiVersion": "v1",
            "kind": "Node",
            "name": node.pointer("/metadata/name"),
            "uid": node.pointer("/metadata/uid"),
            "controller": true,
        }],
    });
    if let Some(labels) = static_pod.pointer("/metadata/labels") {
        metadata["labels"] = labels.clone();
    }
    metadata["annotations"][MIRROR_ANNOTATION] = hash;
    json!({
        "metadata": metadata,
        "spec": static_pod.get("spec").cloned().unwrap_or(json!({})),
        "status": status,
    })
}

/// What to do with the stored pod of a static pod's name.
#[derive(Debug, PartialEq, Eq)]
pub enum MirrorAction {
    /// No pod of that name: create the mirror.
    Create,
    /// The mirror of an older manifest: replace it.
    Replace,
    /// The mirror is current; refresh its status if it changed.
    UpdateStatus,
    /// A pod of that name that is not a mirror: leave it alone.
    Leave,
}

/// Decides how the stored pod (if any) relates to the static pod `hash`.
pub fn reconcile(stored: Option<&Value>, hash: &str) -> MirrorAction {
    match stored {
        None => MirrorAction::Create,
        Some(pod) => match mirror_hash(pod) {
            Some(h) if h == hash => MirrorAction::UpdateStatus,
            Some(_) => MirrorAction::Replace,
            None => MirrorAction::Leave,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn static_pod(uid: &str) -> Value {
        json!({
            "metadata": {"name": "web-node1", "namespace": "default", "uid": uid,
                         "labels": {"app": "web"},
                         "annotations": {"kubernetes.io/config.source": "file", "kubernetes.io/config.hash": uid}},
            "spec": {"nodeName": "node1", "containers": [{"name": "web", "image": "busybox"}]},
        })
    }

    #[test]
    fn a_mirror_copies_the_static_pod_and_is_owned_by_its_node() {
        let node = json!({"metadata": {"name": "node1", "uid": "node-uid"}});
        let status = json!({"phase": "Running"});
        let mirror = mirror_of(&static_pod("hash-1"), &status, &node);
        assert_eq!(mirror_hash(&mirror), Some("hash-1"));
        assert_eq!(mirror["metadata"]["name"], "web-node1");
        assert_eq!(mirror["metadata"]["labels"]["app"], "web");
        assert_eq!(mirror["metadata"]["ownerReferences"][0]["kind"], "Node");
        assert_eq!(mirror["metadata"]["ownerReferences"][0]["uid"], "node-uid");
        assert_eq!(mirror["spec"]["nodeName"], "node1");
        assert_eq!(mirror["status"]["phase"], "Running");
        // The API server gives the mirror its own uid.
        assert!(mirror["metadata"].get("uid").is_none());
    }

    #[test]
    fn the_stored_pod_decides_create_replace_update_or_leave() {
        let node = json!({"metadata": {"name": "node1", "uid": "u"}});
        let current = mirror_of(&static_pod("h2"), &json!({}), &node);
        let old = mirror_of(&static_pod("h1"), &json!({}), &node);
        let user_pod = json!({"metadata": {"name": "web-node1"}});
        assert_eq!(reconcile(None, "h2"), MirrorAction::Create);
        assert_eq!(reconcile(Some(&current), "h2"), MirrorAction::UpdateStatus);
        assert_eq!(reconcile(Some(&old), "h2"), MirrorAction::Replace);
        assert_eq!(reconcile(Some(&user_pod), "h2"), MirrorAction::Leave);
    }
}
