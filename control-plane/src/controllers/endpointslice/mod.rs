//! The EndpointSlice controller (`discovery.k8s.io/v1`): keeps the
//! slices of every Service with a selector listing the addresses of the
//! pods it selects, with their readiness, as upstream's
//! `endpointslice-controller.k8s.io` does. Slices it manages carry its
//! managed-by label and the Service as controller owner (so the garbage
//! collector deletes them with it); slices without that label (written by
//! hand for a selectorless Service, or by another manager) are never
//! touched.
//!
//! Level-triggered: a Service change queues it; a pod change queues the
//! Services of its namespace that select it now or listed it at their
//! last sync ([`Memberships`]); a change to a managed slice queues its
//! Service. A sync reads the Service, its namespace's pods, their nodes
//! and its slices afresh and writes only what differs ([`plan`]).

pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use tracing::{debug, info};

use self::plan::{SERVICE_NAME_LABEL, Write, Zones};
use super::fields::unless_gone;
use super::namespace_objects;
use super::runtime::{Action, Controller, ObjectRef, OwnerIndex, Reconciler, Trigger};
use super::service_pods::{self, Memberships, PodChange, SERVICE};
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, StoreError};

/// How soon a Service whose pods wait for their Node is looked at again.
const MISSING_NODE_RETRY: Duration = Duration::from_secs(5);

/// Failures of a sync.
#[derive(Debug, thiserror::Error)]
pub enum EndpointSliceError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The controller actor.
pub type EndpointSliceController = Controller<EndpointSlices>;

/// The reconciler of Services' EndpointSlices.
pub struct EndpointSlices {
    objects: Objects,
    members: Memberships,
}

/// What the watches other than the Services' decode to.
#[derive(Debug)]
pub enum SliceChange {
    /// A Service was deleted: its key, to clean up after it.
    ServiceGone(ObjectRef),
    /// A pod changed.
    Pod(PodChange),
    /// A managed slice of this Service changed or went.
    Slice(ObjectRef),
}

/// The watches, in `decode`'s order.
const WATCHES: [&crate::registry::resources::ResourceType; 3] =
    [kinds::SERVICES, kinds::PODS, kinds::ENDPOINTSLICES];

impl Reconciler for EndpointSlices {
    type Key = ObjectRef;
    type Change = SliceChange;
    type Error = EndpointSliceError;
    const NAME: &'static str = "endpointslice";

    fn watches(&self) -> Result<Vec<String>, EndpointSliceError> {
        Ok(WATCHES.iter().map(|rt| rt.prefix()).collect())
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, SliceChange>> {
        match (watch, event) {
            (0, None) => Some(Trigger::Resync),
            // The runtime forgets a deleted key without a reconcile; this
            // one still has slices to clean up.
            (0, Some(e)) if service_pods::deleted(e) => Some(Trigger::Change(
                SliceChange::ServiceGone(service_pods::service_key(e)?),
            )),
            (0, Some(e)) => Some(Trigger::Object(e.kind, service_pods::service_key(e)?)),
            (1, Some(e)) => Some(Trigger::Change(SliceChange::Pod(PodChange::of(e)?))),
            (2, Some(e)) => {
                let slice = super::object_of(e)?;
                if !plan::is_managed(&slice) {
                    return None;
                }
                let service = meta::labels(&slice).remove(SERVICE_NAME_LABEL)?;
                let key = ObjectRef::new(SERVICE, meta::namespace(&slice), service);
                Some(Trigger::Change(SliceChange::Slice(key)))
            }
            // Pods and slices: the Services' resync covers a re-list.
            _ => None,
        }
    }

    async fn changes(
        &mut self,
        change: SliceChange,
        _owners: &OwnerIndex<ObjectRef>,
    ) -> Result<Vec<ObjectRef>, EndpointSliceError> {
        Ok(match change {
            SliceChange::ServiceGone(key) => {
                self.members.forget(&key);
                vec![key]
            }
            SliceChange::Pod(pod) => self.members.concerned(&pod),
            SliceChange::Slice(key) => vec![key],
        })
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, EndpointSliceError> {
        let (services, _) = self.objects.list(kinds::SERVICES).await?;
        let mut keys: BTreeSet<ObjectRef> =
            services.iter().map(|s| ObjectRef::of(SERVICE, s)).collect();
        // Managed slices whose Service went while nobody watched.
        let (slices, _) = self.objects.list(kinds::ENDPOINTSLICES).await?;
        keys.extend(
            slices
                .iter()
                .filter(|s| plan::is_managed(s))
                .filter_map(|s| {
                    let service = meta::labels(s).remove(SERVICE_NAME_LABEL)?;
                    Some(ObjectRef::new(SERVICE, meta::namespace(s), service))
                }),
        );
        Ok(keys.into_iter().collect())
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, EndpointSliceError> {
        self.sync(key).await.map(Action::requeue_opt)
    }

    fn forget(&mut self, key: &ObjectRef) {
        self.members.forget(key);
    }
}

impl EndpointSlices {
    /// The reconciler, writing through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self {
            objects,
            members: Memberships::default(),
        }
    }

    /// The managed slices of Service `name` in `namespace`.
    async fn slices_of(&self, namespace: &str, name: &str) -> Result<Vec<Value>, StoreError> {
        let all = namespace_objects(&self.objects, kinds::ENDPOINTSLICES, namespace).await?;
        Ok(all
            .into_iter()
            .filter(|s| {
                plan::is_managed(s)
                    && meta::labels(s).get(SERVICE_NAME_LABEL).map(String::as_str) == Some(name)
            })
            .collect())
    }

    /// The zone of every node `pods` are bound to that exists.
    async fn zones(&self, pods: &[Value]) -> Result<Zones, StoreError> {
        let mut zones = Zones::new();
        let names: BTreeSet<&str> = pods.iter().filter_map(service_pods::node_name).collect();
        for name in names {
            if let Some(node) = self.objects.find(kinds::NODES, None, name).await? {
                let zone = meta::labels(&node).remove("topology.kubernetes.io/zone");
                zones.insert(name.to_string(), zone);
            }
        }
        Ok(zones)
    }

    /// One sync; returns when to look again if nothing else happens.
    async fn sync(&mut self, key: &ObjectRef) -> Result<Option<Duration>, EndpointSliceError> {
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        let service = unless_gone(
            self.objects
                .get(kinds::SERVICES, Some(namespace), name)
                .await,
        )?;
        let existing = self.slices_of(namespace, name).await?;
        let Some(service) = service else {
            // The garbage collector would delete them too (they name the
            // Service as owner); doing it here does not wait for it.
            self.members.forget(key);
            for slice in existing {
                self.delete(namespace, meta::name(&slice)).await?;
            }
            return Ok(None);
        };
        let Some(selector) = service_pods::managed_selector(&service) else {
            // Selectorless or ExternalName: its slices are written by
            // hand; upstream leaves even its own earlier ones alone.
            self.members.forget(key);
            return Ok(None);
        };
        let pods = namespace_objects(&self.objects, kinds::PODS, namespace).await?;
        let zones = self.zones(&pods).await?;
        let desired = plan::desired(&service, &pods, &zones);
        self.members.record(key, selector, desired.pods.clone());
        let retry = if desired.missing_nodes.is_empty() {
            None
        } else {
            debug!(pods = ?desired.missing_nodes, "pods wait for their node");
            Some(MISSING_NODE_RETRY)
        };
        let uid = meta::uid(&service).to_string();
        for write in plan::plan(&service, desired, &existing) {
            self.write(namespace, &uid, write).await?;
        }
        Ok(retry)
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), StoreError> {
        info!(slice = %name, "deleting endpoint slice");
        self.objects
            .delete(kinds::ENDPOINTSLICES, Some(namespace), name)
            .await
    }

    /// Carries out one write of the plan.
    async fn write(&self, namespace: &str, uid: &str, write: Write) -> Result<(), StoreError> {
        let rt = kinds::ENDPOINTSLICES;
        match write {
            Write::Create(slice) => match self.objects.create(rt, slice).await {
                Ok(created) => info!(slice = %meta::name(&created), "created endpoint slice"),
                Err(e) if service_pods::namespace_terminating(&self.objects, namespace).await? => {
                    debug!(error = %e, "namespace terminating, no slice created");
                }
                Err(e) => return Err(e),
            },
            Write::Update { name, content } => {
                debug!(slice = %name, "updating endpoint slice");
                let updated = self
                    .objects
                    .update(rt, Some(namespace), &name, |slice| {
                        // Not another Service's (made again under the name
                        // since the sync read it).
                        plan::owned_by(slice, uid) && content.apply(slice)
                    })
                    .await;
                unless_gone(updated)?;
            }
            Write::Delete(name) => self.delete(namespace, &name).await?,
        }
        Ok(())
    }
}
