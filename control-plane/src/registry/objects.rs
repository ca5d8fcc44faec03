//! The API for the control plane's own actors (scheduler, node actors):
//! the same objects, keys, metadata and revisions as the HTTP API, without
//! HTTP. Updates are read-modify-write loops that retry on conflicts, the
//! way client-go's `RetryOnConflict` is used by upstream controllers.

use std::sync::Arc;

use serde_json::{Value, json};

use super::deletion::{self, DeleteOptions};
use super::events::{EventStore, InvolvedObject, NewEvent, Recorder};
use super::resources::ResourceType;
use super::strategy;
use crate::store::{Store, StoreError, Write};

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// The object is gone from the store.
    Removed,
    /// The object stays, marked for deletion (grace period or finalizers).
    Marked,
    /// It was on its way out already; nothing changed.
    Pending,
    /// No such object (or, with a uid precondition, another one of that name).
    Absent,
}

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

/// The stored form: without `resourceVersion` (the store's revision is).
/// Taken out and put back rather than serialising a copy: objects are
/// written at scheduler rates, and a deep clone costs as much as the write.
fn encode(obj: &mut Value) -> Vec<u8> {
    let version = obj
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .and_then(|m| m.remove("resourceVersion"));
    let bytes = serde_json::to_vec(obj).unwrap_or_default();
    if let Some(version) = version {
        obj["metadata"]["resourceVersion"] = version;
    }
    bytes
}

impl Objects {
    /// Objects in `store`.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            recorder: Arc::new(Recorder::new()),
        }
    }

    /// Over a fresh in-memory store: what unit tests start from.
    #[cfg(test)]
    pub fn in_memory() -> Self {
        Self::new(Arc::new(crate::store::memory::MemoryStore::new()))
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

    /// One object, `None` if there is none: for readers to whom a missing
    /// object is an answer, not a failure.
    pub async fn find(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, StoreError> {
        match self.get(rt, namespace, name).await {
            Ok(obj) => Ok(Some(obj)),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
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
        crate::registry::meta::generate_name(meta);
        meta["uid"] = json!(crate::registry::meta::uuid());
        meta["creationTimestamp"] = json!(crate::registry::meta::now());
        // Controllers' objects start with their kind's status, as through
        // the API; a mirror pod keeps the status its node reported.
        if obj.get("status").is_none_or(Value::is_null)
            && let Some(status) = strategy::initial_status(rt, &obj)
        {
            obj["status"] = status;
        }
        strategy::apply_defaults(rt, &mut obj);
        super::admission::admit_create(self.store.as_ref(), rt.kind, &mut obj).await?;
        if rt.kind == "Pod" {
            // A controller's pod whose account is missing fails its
            // reconcile, which retries, as a refused create does upstream.
            super::service_account::admit(self.store.as_ref(), &mut obj)
                .await
                .map_err(|e| match e {
                    super::service_account::AdmissionError::Store(e) => e,
                    e => StoreError::Backend(e.to_string()),
                })?;
        }
        if rt.namespaced {
            self.check_namespace_open(crate::meta::namespace(&obj))
                .await?;
        }
        if rt.kind == "Pod" {
            super::pod_security::enforce_pod(self.store.as_ref(), &obj).await?;
        }
        let name = crate::meta::name(&obj).to_string();
        let namespace = obj["metadata"]["namespace"].as_str().map(String::from);
        let revision = if super::allocation::applies_to(rt) {
            // Services hold their cluster IP and nodePorts however made.
            let ranges = super::allocation::ranges();
            super::allocation::reservations::store_service(
                self.store.as_ref(),
                &ranges,
                None,
                &mut obj,
                |o| encode(&mut o.clone()),
            )
            .await
            .map_err(|e| match e {
                super::allocation::AllocError::Store(e) => e,
                other => StoreError::Backend(other.to_string()),
            })?
        } else {
            self.store
                .create(&rt.key(namespace.as_deref(), &name), encode(&mut obj))
                .await?
        };
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
            if deletion::finished(&obj) {
                // The last finalizer is gone: the update completes the deletion.
                match self.store.delete(&key, Some(kv.revision)).await {
                    Ok(_) => {
                        if super::allocation::applies_to(rt) {
                            super::allocation::reservations::release(self.store.as_ref(), &obj)
                                .await;
                        }
                        return Ok(Some(obj));
                    }
                    Err(StoreError::Conflict { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
            match self.store.update(&key, kv.revision, encode(&mut obj)).await {
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
        let rt = crate::registry::kinds::PODS;
        let mut already = None;
        let bound = self
            .update(rt, Some(namespace), name, |pod| {
                if let Some(current) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
                    already = Some(current.to_string());
                    return false;
                }
                pod["spec"]["nodeName"] = json!(node);
                super::kinds::pod::set_condition(pod, "PodScheduled", "True", None, None);
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

    /// Binds many pods at once, each to its node, in one store transaction:
    /// the scheduler's fast path. Each pod is given as last read (its
    /// `resourceVersion` current) and must still be unbound. If any of them
    /// changed meanwhile, the batch is not written and each pod is bound
    /// on its own through [`Objects::bind`]. Returns, per pod, the bound
    /// object or why it could not be bound.
    pub async fn bind_all(
        &self,
        binds: Vec<(Value, String)>,
    ) -> Result<Vec<Result<Value, String>>, StoreError> {
        let rt = crate::registry::kinds::PODS;
        let mut bound = Vec::with_capacity(binds.len());
        let mut writes = Vec::with_capacity(binds.len());
        for (mut pod, node) in binds {
            let namespace = pod["metadata"]["namespace"].as_str().map(String::from);
            let name = crate::meta::name(&pod).to_string();
            let expected = pod["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let unbound = pod["spec"]["nodeName"].as_str().is_none_or(str::is_empty);
            if unbound {
                pod["spec"]["nodeName"] = json!(node);
                super::kinds::pod::set_condition(&mut pod, "PodScheduled", "True", None, None);
            }
            writes.push(Write::Update {
                key: rt.key(namespace.as_deref(), &name),
                expected,
                value: encode(&mut pod),
            });
            bound.push((pod, namespace, name, node, unbound));
        }
        let all_unbound = bound.iter().all(|b| b.4);
        if all_unbound {
            match self.store.write_all(writes).await {
                Ok(revisions) => {
                    return Ok(bound
                        .into_iter()
                        .zip(revisions)
                        .map(|((mut pod, ..), revision)| {
                            pod["metadata"]["resourceVersion"] = json!(revision.to_string());
                            Ok(pod)
                        })
                        .collect());
                }
                Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let mut results = Vec::with_capacity(bound.len());
        for (_, namespace, name, node, _) in bound {
            let result = match self
                .bind(namespace.as_deref().unwrap_or("default"), &name, &node)
                .await
            {
                Err(StoreError::NotFound(_)) => Err(format!("pods \"{name}\" not found")),
                other => other?,
            };
            results.push(result);
        }
        Ok(results)
    }

    /// Deletes an object as a client asking for `gracePeriodSeconds=0`
    /// does (a node confirming a pod is gone, a controller pruning):
    /// removed unless finalizers hold it (idempotent).
    pub async fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), StoreError> {
        let options = DeleteOptions {
            grace_period_seconds: Some(0),
            ..DeleteOptions::default()
        };
        self.delete_with(rt, namespace, name, &options).await?;
        Ok(())
    }

    /// Deletes an object as the API's `DELETE` does (see
    /// [`deletion::plan`]), retrying on conflicting writes.
    pub async fn delete_with(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Deleted, StoreError> {
        let key = rt.key(namespace, name);
        for _ in 0..16 {
            let kv = match self.store.get(&key).await {
                Ok(kv) => kv,
                Err(StoreError::NotFound(_)) => return Ok(Deleted::Absent),
                Err(e) => return Err(e),
            };
            let mut obj = decode(&kv.value, kv.revision)?;
            if let Some(uid) = &options.uid
                && obj["metadata"]["uid"].as_str() != Some(uid)
            {
                return Ok(Deleted::Absent);
            }
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let written = match deletion::plan(rt.kind, &obj, options, chrono::Utc::now()) {
                deletion::Plan::Pending => return Ok(Deleted::Pending),
                deletion::Plan::Remove => {
                    let removed = self.store.delete(&key, Some(kv.revision)).await;
                    if removed.is_ok() && super::allocation::applies_to(rt) {
                        super::allocation::reservations::release(self.store.as_ref(), &obj).await;
                    }
                    removed.map(|_| Deleted::Removed)
                }
                deletion::Plan::Keep(mut kept) => self
                    .store
                    .update(&key, kv.revision, encode(&mut kept))
                    .await
                    .map(|_| Deleted::Marked),
            };
            match written {
                Err(StoreError::Conflict { .. }) => continue,
                Err(StoreError::NotFound(_)) => return Ok(Deleted::Absent),
                other => return other,
            }
        }
        Err(StoreError::Backend(format!(
            "{key}: too many conflicting writers"
        )))
    }

    /// Creating in a terminating namespace is refused, as the API server's
    /// NamespaceLifecycle admission does. (The API edge also refuses a
    /// missing namespace; components inside only act on existing owners.)
    async fn check_namespace_open(&self, namespace: &str) -> Result<(), StoreError> {
        let rt = crate::registry::kinds::NAMESPACES;
        let ns = match self.get(rt, None, namespace).await {
            Ok(ns) => ns,
            Err(StoreError::NotFound(_)) => return Ok(()),
            Err(e) => return Err(e),
        };
        if ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
            return Err(StoreError::Backend(format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            )));
        }
        Ok(())
    }

    /// Deletes a pod as `kubectl delete pod` does: a pod on a node gets a
    /// `deletionTimestamp` (Terminating) with its own grace period and its
    /// node removes it once the containers are gone; others go at once.
    pub async fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), StoreError> {
        let rt = crate::registry::kinds::PODS;
        self.delete_with(rt, Some(namespace), name, &DeleteOptions::default())
            .await?;
        Ok(())
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

    /// Records many Normal events of one component in one transaction
    /// (best effort, like upstream's event recorder: a failure is dropped).
    /// For events that never repeat (one `Scheduled` per pod), so they
    /// skip the recorder's counting.
    pub async fn events(&self, events: &[(&Value, &str, String)], component: &str) {
        let rt = crate::registry::kinds::EVENTS;
        let writes = events
            .iter()
            .map(|(object, reason, message)| {
                let mut event = event_object(object, false, reason, message, component);
                event["kind"] = json!(rt.kind);
                event["apiVersion"] = json!(rt.api_version());
                event["metadata"]["uid"] = json!(crate::registry::meta::uuid());
                event["metadata"]["creationTimestamp"] = json!(crate::registry::meta::now());
                strategy::apply_defaults(rt, &mut event);
                let namespace = event["metadata"]["namespace"].as_str().map(String::from);
                let name = crate::meta::name(&event).to_string();
                Write::Create {
                    key: rt.key(namespace.as_deref(), &name),
                    value: encode(&mut event),
                }
            })
            .collect();
        if let Err(e) = self.store.write_all(writes).await {
            tracing::debug!(error = %e, "events dropped");
        }
    }
}

/// An Event object (without server-owned metadata) about `object`.
fn event_object(
    object: &Value,
    warning: bool,
    reason: &str,
    message: &str,
    component: &str,
) -> Value {
    let namespace = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default");
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let now = crate::registry::meta::now();
    json!({
        "metadata": {"name": format!("{name}.{}", crate::registry::meta::random_suffix()), "namespace": namespace},
        "involvedObject": {
            "kind": object.get("kind"), "apiVersion": object.get("apiVersion"),
            "namespace": namespace, "name": name,
            "uid": object.pointer("/metadata/uid"),
        },
        "reason": reason,
        "message": message,
        "type": if warning { "Warning" } else { "Normal" },
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
    })
}

#[async_trait::async_trait]
impl EventStore for Objects {
    async fn create_event(&self, event: Value) -> Result<(), StoreError> {
        self.create(crate::registry::kinds::EVENTS, event)
            .await
            .map(drop)
    }

    async fn count_event(
        &self,
        namespace: &str,
        name: &str,
        change: &mut (dyn for<'v> FnMut(&'v mut Value) + Send),
    ) -> Result<(), StoreError> {
        let rt = crate::registry::kinds::EVENTS;
        self.update(rt, Some(namespace), name, |stored: &mut Value| {
            change(stored);
            true
        })
        .await
        .map(drop)
    }

    async fn events_named(&self, namespace: &str, prefix: &str) -> Result<Vec<Value>, StoreError> {
        let rt = crate::registry::kinds::EVENTS;
        let listing = self
            .store
            .list(&format!("{}{namespace}/{prefix}", rt.prefix()))
            .await?;
        Ok(listing
            .items
            .iter()
            .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
            .collect())
    }
}
