//! The API for the control plane's own actors (scheduler, node actors):
//! the same objects, keys, metadata and revisions as the HTTP API, without
//! HTTP. Updates are read-modify-write loops that retry on conflicts, the
//! way client-go's `RetryOnConflict` is used by upstream controllers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::events::{InvolvedObject, NewEvent, Recorder};
use super::objects;
use super::resources::ResourceType;
use crate::store::{Store, StoreError};

/// In-process access to API objects. Clones share one event [`Recorder`].
#[derive(Clone)]
pub struct Objects {
    store: Arc<dyn Store>,
    recorder: Arc<Recorder>,
}

fn decode(bytes: &[u8], revision: u64) -> Result<Value, StoreError> {
    let mut obj: Value =
        serde_json::from_slice(bytes).map_err(|e| StoreError::Backend(e.to_string()))?;
    obj["metadata"]["resourceVersion"] = json!(revision.to_string());
    Ok(obj)
}

fn encode(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}

impl Objects {
    /// Objects in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            recorder: Arc::new(Recorder::new()),
        }
    }

    /// The store underneath (for watches).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// One object.
    pub async fn get(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, StoreError> {
        let kv = self.store.get(&rt.key(namespace, name)).await?;
        decode(&kv.value, kv.revision)
    }

    /// Every object of a type (all namespaces), with the list revision.
    pub async fn list(&self, rt: &ResourceType) -> Result<(Vec<Value>, u64), StoreError> {
        let listing = self.store.list(&rt.prefix()).await?;
        let items = listing
            .items
            .iter()
            .filter_map(|kv| decode(&kv.value, kv.revision).ok())
            .collect();
        Ok((items, listing.revision))
    }

    /// Creates an object, filling server-owned metadata and defaults.
    pub async fn create(&self, rt: &ResourceType, mut obj: Value) -> Result<Value, StoreError> {
        obj["kind"] = json!(rt.kind);
        obj["apiVersion"] = json!(rt.api_version());
        let meta = &mut obj["metadata"];
        if meta
            .get("name")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
            && let Some(prefix) = meta
                .get("generateName")
                .and_then(Value::as_str)
                .map(String::from)
        {
            meta["name"] = json!(format!("{prefix}{}", objects::random_suffix()));
        }
        meta["uid"] = json!(objects::uuid());
        meta["creationTimestamp"] = json!(objects::now());
        objects::apply_defaults(rt, &mut obj);
        let name = obj["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let namespace = obj["metadata"]["namespace"].as_str().map(String::from);
        let revision = self
            .store
            .create(&rt.key(namespace.as_deref(), &name), encode(&obj))
            .await?;
        obj["metadata"]["resourceVersion"] = json!(revision.to_string());
        Ok(obj)
    }

    /// Read-modify-write: `change` edits the object (returning `false` to
    /// leave it alone); conflicts are retried on fresh reads.
    pub async fn update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        mut change: impl FnMut(&mut Value) -> bool,
    ) -> Result<Option<Value>, StoreError> {
        let key = rt.key(namespace, name);
        for _ in 0..16 {
            let kv = self.store.get(&key).await?;
            let mut obj = decode(&kv.value, kv.revision)?;
            if !change(&mut obj) {
                return Ok(None);
            }
            match self.store.update(&key, kv.revision, encode(&obj)).await {
                Ok(revision) => {
                    obj["metadata"]["resourceVersion"] = json!(revision.to_string());
                    return Ok(Some(obj));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Backend(format!(
            "{key}: too many conflicting writers"
        )))
    }

    /// Binds a pod to a node (the `pods/binding` subresource): sets
    /// `spec.nodeName` and the PodScheduled condition. `Ok(None)` when the
    /// pod is already bound (to the node it is bound to).
    pub async fn bind(
        &self,
        namespace: &str,
        name: &str,
        node: &str,
    ) -> Result<Result<Value, String>, StoreError> {
        let Some(rt) = super::resources::find("", "v1", "pods") else {
            return Err(StoreError::Backend("pods type".into()));
        };
        let mut already = None;
        let bound = self
            .update(rt, Some(namespace), name, |pod| {
                if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    already = Some(current.to_string());
                    return false;
                }
                pod["spec"]["nodeName"] = json!(node);
                crate::controllers::scheduler::set_condition(
                    pod,
                    "PodScheduled",
                    "True",
                    None,
                    None,
                );
                true
            })
            .await?;
        Ok(match (bound, already) {
            (Some(pod), _) => Ok(pod),
            (None, Some(current)) => Err(format!(
                "pod {name} is already assigned to node \"{current}\""
            )),
            (None, None) => Err(format!("pod {name} cannot be bound")),
        })
    }

    /// Deletes an object (idempotent).
    pub async fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), StoreError> {
        match self.store.delete(&rt.key(namespace, name), None).await {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records a Kubernetes Event about `object`, now, from a control-plane
    /// `component`.
    pub async fn event(
        &self,
        object: &Value,
        warning: bool,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        self.record(NewEvent {
            object: InvolvedObject::of(object),
            warning,
            reason: reason.to_string(),
            message: message.to_string(),
            component: component.to_string(),
            host: String::new(),
            time: chrono::Utc::now(),
        })
        .await;
    }

    /// Records an Event, counting repeats on the existing one (see
    /// [`super::events`]).
    pub async fn record(&self, event: NewEvent) {
        self.recorder.record(self, event).await;
    }
}
