//! Partial decoding of stored objects: the few fields a watch reads,
//! without building a JSON tree of the rest (`spec`, `status` and
//! `managedFields` are skipped by the parser). Upstream's controllers use
//! metadata-only informers for the same reason: every pod change reaches
//! half a dozen watches, and most of them only ask whose it is.

use serde::Deserialize;
use serde_json::{Map, Value};

/// One `metadata.ownerReferences` entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OwnerRef {
    /// `apps/v1`.
    pub api_version: String,
    /// `ReplicaSet`.
    pub kind: String,
    /// The owner's name.
    pub name: String,
    /// The owner's uid: the only thing that makes it that owner.
    pub uid: String,
    /// Whether the owner is the managing controller.
    pub controller: Option<bool>,
    /// Whether a foreground deletion of the owner waits for this dependent.
    pub block_owner_deletion: Option<bool>,
}

/// The metadata owners and the garbage collector read.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Meta {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: Option<String>,
    /// `metadata.uid`.
    pub uid: String,
    /// `metadata.ownerReferences`.
    pub owner_references: Vec<OwnerRef>,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `metadata.deletionTimestamp`.
    pub deletion_timestamp: Option<String>,
}

impl Meta {
    /// From an object's bytes; `None` if they are not a JSON object.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        #[derive(Deserialize)]
        struct Head {
            #[serde(default)]
            metadata: Meta,
        }
        serde_json::from_slice::<Head>(bytes)
            .ok()
            .map(|h| h.metadata)
    }

    /// As an object holding only this metadata, for code that reads
    /// `obj["metadata"][…]` of whole objects.
    pub fn into_object(self) -> Value {
        let mut meta = Map::new();
        meta.insert("name".into(), Value::String(self.name));
        if let Some(ns) = self.namespace {
            meta.insert("namespace".into(), Value::String(ns));
        }
        if !self.uid.is_empty() {
            meta.insert("uid".into(), Value::String(self.uid));
        }
        if !self.owner_references.is_empty() {
            let refs = self.owner_references.into_iter().map(|r| {
                let mut o = Map::new();
                o.insert("apiVersion".into(), Value::String(r.api_version));
                o.insert("kind".into(), Value::String(r.kind));
                o.insert("name".into(), Value::String(r.name));
                o.insert("uid".into(), Value::String(r.uid));
                if let Some(c) = r.controller {
                    o.insert("controller".into(), Value::Bool(c));
                }
                if let Some(b) = r.block_owner_deletion {
                    o.insert("blockOwnerDeletion".into(), Value::Bool(b));
                }
                Value::Object(o)
            });
            meta.insert("ownerReferences".into(), Value::Array(refs.collect()));
        }
        if !self.finalizers.is_empty() {
            let list = self.finalizers.into_iter().map(Value::String).collect();
            meta.insert("finalizers".into(), Value::Array(list));
        }
        if let Some(t) = self.deletion_timestamp {
            meta.insert("deletionTimestamp".into(), Value::String(t));
        }
        let mut object = Map::new();
        object.insert("metadata".into(), Value::Object(meta));
        Value::Object(object)
    }
}

/// What says where a pod is and whether it still holds its node: the
/// scheduler and the node actors' router need no more of a pod they
/// already know.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PodPlace {
    /// `spec.nodeName`, when set.
    pub node: Option<String>,
    /// `status.phase`.
    pub phase: Option<String>,
    /// The uid of its first owner reference (what spreading counts).
    pub owner: Option<String>,
}

impl PodPlace {
    /// From a pod's bytes; `None` if they are not a JSON object.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        #[derive(Deserialize, Default)]
        #[serde(default, rename_all = "camelCase")]
        struct Spec {
            node_name: Option<String>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default)]
        struct Status {
            phase: Option<String>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default, rename_all = "camelCase")]
        struct Owners {
            owner_references: Vec<Owner>,
        }
        #[derive(Deserialize)]
        struct Owner {
            #[serde(default)]
            uid: Option<String>,
        }
        #[derive(Deserialize)]
        struct Pod {
            #[serde(default)]
            metadata: Owners,
            #[serde(default)]
            spec: Spec,
            #[serde(default)]
            status: Status,
        }
        let pod: Pod = serde_json::from_slice(bytes).ok()?;
        Some(Self {
            node: pod.spec.node_name.filter(|n| !n.is_empty()),
            phase: pod.status.phase,
            owner: pod
                .metadata
                .owner_references
                .into_iter()
                .next()
                .and_then(|o| o.uid),
        })
    }

    /// Succeeded or Failed: the pod no longer counts on its node.
    pub fn terminal(&self) -> bool {
        matches!(self.phase.as_deref(), Some("Succeeded" | "Failed"))
    }
}

/// What a node's kubelet is sent of a pod: the node it is bound to, and a
/// fingerprint of its `metadata` and `spec` as stored. Two versions with
/// the same fingerprint differ at most in `status`, which the kubelet
/// reports itself, so the node actors need not hear of the newer one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForKubelet {
    /// `spec.nodeName`, when set.
    pub node: Option<String>,
    /// A hash of the raw `metadata` and `spec` text.
    pub fingerprint: u64,
}

impl ForKubelet {
    /// From a pod's bytes; `None` if they are not a JSON object. `status`
    /// is skipped, not parsed into a tree.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        use serde_json::value::RawValue;
        use std::hash::{Hash, Hasher};
        #[derive(Deserialize)]
        struct Pod<'a> {
            #[serde(borrow, default)]
            metadata: Option<&'a RawValue>,
            #[serde(borrow, default)]
            spec: Option<&'a RawValue>,
        }
        #[derive(Deserialize, Default)]
        #[serde(default, rename_all = "camelCase")]
        struct Spec {
            node_name: Option<String>,
        }
        // Serde would also read a struct from a JSON array.
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            return None;
        }
        let pod: Pod = serde_json::from_slice(bytes).ok()?;
        let spec: Spec = match pod.spec {
            Some(raw) => serde_json::from_str(raw.get()).ok()?,
            None => Spec::default(),
        };
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        pod.metadata.map(RawValue::get).hash(&mut hasher);
        pod.spec.map(RawValue::get).hash(&mut hasher);
        Some(Self {
            node: spec.node_name.filter(|n| !n.is_empty()),
            fingerprint: hasher.finish(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_keeps_what_owners_read_and_drops_the_rest() {
        let pod = json!({
            "metadata": {
                "name": "web-1", "namespace": "ns", "uid": "u1",
                "labels": {"app": "web"},
                "managedFields": [{"manager": "kubectl"}],
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web", "uid": "o1", "controller": true}],
                "finalizers": ["batch.kubernetes.io/job-tracking"],
                "deletionTimestamp": "2026-11-23T00:00:00Z"
            },
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running"}
        });
        let bytes = serde_json::to_vec(&pod).expect("encode");
        let head = Meta::from_json(&bytes).expect("meta").into_object();
        assert_eq!(
            head,
            json!({"metadata": {
                "name": "web-1", "namespace": "ns", "uid": "u1",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "name": "web", "uid": "o1", "controller": true}],
                "finalizers": ["batch.kubernetes.io/job-tracking"],
                "deletionTimestamp": "2026-11-23T00:00:00Z"
            }})
        );
        let place = PodPlace::from_json(&bytes).expect("place");
        assert_eq!(place.node.as_deref(), Some("n1"));
        assert_eq!(place.owner.as_deref(), Some("o1"));
        assert!(!place.terminal());
    }

    #[test]
    fn the_kubelet_view_changes_with_metadata_or_spec_but_not_status() {
        let pod = json!({
            "metadata": {"name": "web-1", "uid": "u1", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Pending"}
        });
        let view = |p: &Value| ForKubelet::from_json(&serde_json::to_vec(p).expect("encode"));
        let sent = view(&pod).expect("view");
        assert_eq!(sent.node.as_deref(), Some("n1"));
        let mut running = pod.clone();
        running["status"] = json!({"phase": "Running", "containerStatuses": [{"name": "c"}]});
        assert_eq!(view(&running), Some(sent.clone()));
        let mut relabelled = running.clone();
        relabelled["metadata"]["labels"]["app"] = json!("db");
        assert_ne!(
            view(&relabelled).expect("view").fingerprint,
            sent.fingerprint
        );
        let mut deleting = running.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2026-11-23T00:00:00Z");
        assert_ne!(view(&deleting).expect("view").fingerprint, sent.fingerprint);
        let mut debugged = running;
        debugged["spec"]["ephemeralContainers"] = json!([{"name": "d", "image": "i"}]);
        assert_ne!(view(&debugged).expect("view").fingerprint, sent.fingerprint);
        let unbound = view(&json!({"spec": {"nodeName": ""}})).expect("view");
        assert_eq!(unbound.node, None);
        assert!(ForKubelet::from_json(b"[1]").is_none());
    }

    #[test]
    fn absent_fields_stay_absent() {
        let head = Meta::from_json(br#"{"metadata":{"name":"n"}}"#)
            .expect("meta")
            .into_object();
        assert_eq!(head, json!({"metadata": {"name": "n"}}));
        assert!(head["metadata"]["namespace"].as_str().is_none());
        let place = PodPlace::from_json(br#"{"spec":{"nodeName":""},"status":{"phase":"Failed"}}"#)
            .expect("place");
        assert_eq!(place.node, None);
        assert!(place.terminal());
        assert!(Meta::from_json(b"[1]").is_none());
    }
}
