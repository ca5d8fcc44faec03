//! The Endpoints controller: keeps the legacy `v1 Endpoints` object of
//! every Service with a selector (same name as the Service) listing the
//! addresses of the pods it selects, ready ones under `addresses` and the
//! others under `notReadyAddresses`, as upstream's `endpoint-controller`
//! does (with its `endpoints.kubernetes.io/managed-by` label). Endpoints
//! of selectorless and ExternalName Services are written by hand and
//! never touched; a deleted Service's Endpoints go if this controller
//! wrote them.
//!
//! Level-triggered, like the EndpointSlice controller: a Service change
//! queues it, a pod change the Services that select it now or listed it
//! at their last sync, an Endpoints change its Service; a sync reads all
//! afresh and writes only when the subsets or labels differ ([`plan`]).

pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use tracing::{debug, info};

use self::plan::Write;
use super::fields::unless_gone;
use super::namespace_objects;
use super::runtime::{Action, Controller, ObjectRef, OwnerIndex, Reconciler, Trigger};
use super::service_pods::{self, Memberships, PodChange, SERVICE};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::{Event, StoreError};

/// Failures of a sync.
#[derive(Debug, thiserror::Error)]
pub enum EndpointsError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The controller actor.
pub type EndpointsController = Controller<EndpointsReconciler>;

/// The reconciler of Services' Endpoints.
pub struct EndpointsReconciler {
    objects: Objects,
    members: Memberships,
}

/// What the watches other than the Services' decode to.
#[derive(Debug)]
pub enum EndpointsChange {
    /// A Service was deleted: its key, to clean up after it.
    ServiceGone(ObjectRef),
    /// A pod changed.
    Pod(PodChange),
    /// The Endpoints named as this Service changed or went.
    Endpoints(ObjectRef),
}

/// The watches, in `decode`'s order.
const WATCHES: [&ResourceType; 3] = [kinds::SERVICES, kinds::PODS, kinds::ENDPOINTS];

impl Reconciler for EndpointsReconciler {
    type Key = ObjectRef;
    type Change = EndpointsChange;
    type Error = EndpointsError;
    const NAME: &'static str = "endpoints";

    fn watches(&self) -> Result<Vec<String>, EndpointsError> {
        Ok(WATCHES.iter().map(|rt| rt.prefix()).collect())
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<ObjectRef, EndpointsChange>> {
        match (watch, event) {
            (0, None) => Some(Trigger::Resync),
            // The runtime forgets a deleted key without a reconcile; this
            // one still has an Endpoints object to delete.
            (0, Some(e)) if service_pods::deleted(e) => Some(Trigger::Change(
                EndpointsChange::ServiceGone(service_pods::service_key(e)?),
            )),
            (0, Some(e)) => Some(Trigger::Object(e.kind, service_pods::service_key(e)?)),
            (1, Some(e)) => Some(Trigger::Change(EndpointsChange::Pod(PodChange::of(e)?))),
            // Endpoints are named as their Service.
            (2, Some(e)) => Some(Trigger::Change(EndpointsChange::Endpoints(
                service_pods::service_key(e)?,
            ))),
            // Pods and Endpoints: the Services' resync covers a re-list.
            _ => None,
        }
    }

    async fn changes(
        &mut self,
        change: EndpointsChange,
        _owners: &OwnerIndex<ObjectRef>,
    ) -> Result<Vec<ObjectRef>, EndpointsError> {
        Ok(match change {
            EndpointsChange::ServiceGone(key) => {
                self.members.forget(&key);
                vec![key]
            }
            EndpointsChange::Pod(pod) => self.members.concerned(&pod),
            EndpointsChange::Endpoints(key) => vec![key],
        })
    }

    async fn list(&mut self) -> Result<Vec<ObjectRef>, EndpointsError> {
        let (services, _) = self.objects.list(kinds::SERVICES).await?;
        let mut keys: BTreeSet<ObjectRef> =
            services.iter().map(|s| ObjectRef::of(SERVICE, s)).collect();
        // Endpoints this controller wrote whose Service went while nobody
        // watched (upstream's `checkLeftoverEndpoints`).
        let (endpoints, _) = self.objects.list(kinds::ENDPOINTS).await?;
        keys.extend(
            endpoints
                .iter()
                .filter(|e| plan::is_managed(e))
                .map(|e| ObjectRef::of(SERVICE, e)),
        );
        Ok(keys.into_iter().collect())
    }

    async fn reconcile(&mut self, key: &ObjectRef) -> Result<Action, EndpointsError> {
        self.sync(key).await?;
        Ok(Action::await_change())
    }

    fn forget(&mut self, key: &ObjectRef) {
        self.members.forget(key);
    }
}

impl EndpointsReconciler {
    /// The reconciler, writing through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self {
            objects,
            members: Memberships::default(),
        }
    }

    /// One sync.
    async fn sync(&mut self, key: &ObjectRef) -> Result<(), EndpointsError> {
        let (namespace, name) = (key.namespace.as_str(), key.name.as_str());
        let rt = kinds::ENDPOINTS;
        let service = unless_gone(
            self.objects
                .get(kinds::SERVICES, Some(namespace), name)
                .await,
        )?;
        let existing = self.objects.find(rt, Some(namespace), name).await?;
        let Some(service) = service else {
            self.members.forget(key);
            if existing.as_ref().is_some_and(plan::is_managed) {
                info!("deleting the endpoints of a deleted service");
                self.objects.delete(rt, Some(namespace), name).await?;
            }
            return Ok(());
        };
        let Some(selector) = service_pods::managed_selector(&service) else {
            // Selectorless or ExternalName: written by hand, if at all.
            self.members.forget(key);
            return Ok(());
        };
        let pods = namespace_objects(&self.objects, kinds::PODS, namespace).await?;
        let desired = plan::subsets(&service, &pods);
        self.members.record(key, selector, desired.pods.clone());
        match plan::decide(&service, desired, existing.as_ref()) {
            None => {}
            Some(Write::Create(obj)) => {
                info!("creating endpoints");
                match self.objects.create(rt, obj).await {
                    // Written meanwhile (by hand or a racing sync): the
                    // watch brings the Service back here.
                    Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                    Err(e)
                        if service_pods::namespace_terminating(&self.objects, namespace)
                            .await? =>
                    {
                        debug!(error = %e, "namespace terminating, no endpoints created");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Some(Write::Update(content)) => {
                debug!("updating endpoints");
                let updated = self
                    .objects
                    .update(rt, Some(namespace), name, |e| content.apply(e))
                    .await;
                unless_gone(updated)?;
            }
        }
        Ok(())
    }
}
