//! The LoadBalancer controller: gives every `type: LoadBalancer` Service an
//! address of the `--load-balancer-pool` (MetalLB's controller, for a lab
//! network without a cloud provider), written to
//! `status.loadBalancer.ingress`; the nodes' kubelets announce it (ARP) and
//! their service proxies forward it. The Services' status is the only
//! record: a restarted control plane reads what is taken from it, and a
//! deleted Service's address, or one that stopped being a LoadBalancer, is
//! free again. Without a pool nothing happens: the Services stay
//! `<pending>`, as upstream's do without a cloud provider.
//!
//! [`plan`] decides per Service (lowest free address, an explicit
//! `spec.loadBalancerIP` if free, or why none); this module reads and writes.

pub mod plan;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::{Value, json};
use tracing::{info, warn};

use self::plan::{Plan, held, plan, status_for, wants_address};
use super::metadata_of;
use super::runtime::{self, Key, OwnerIndex, Reconciler, Trigger};
use crate::meta;
use crate::registry::allocation::lb_pool::LbPool;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, EventKind, StoreError};

const COMPONENT: &str = "loadbalancer-controller";

/// How long a Service without an address waits before it is tried again
/// even if no address was freed meanwhile (a safety net: frees requeue the
/// waiting Services at once).
pub const PENDING_RETRY: Duration = Duration::from_secs(30);

/// A Service, by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

impl ServiceName {
    fn of(service: &Value) -> Self {
        Self {
            namespace: meta::namespace(service).to_string(),
            name: meta::name(service).to_string(),
        }
    }
}

impl Key for ServiceName {
    fn kind(&self) -> &str {
        "Service"
    }

    fn object_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn namespace(&self) -> Option<&str> {
        Some(&self.namespace)
    }
}

/// A watch event the runtime does not handle itself.
#[derive(Debug)]
pub enum Change {
    /// The Service was deleted: its address is free.
    Deleted(ServiceName),
}

/// The reconciler.
pub struct LoadBalancers {
    objects: Objects,
    pool: Option<LbPool>,
    /// Pool addresses held, by Service: rebuilt from every Service's status
    /// at each (re)list, then kept from this controller's own writes, so
    /// two Services never get the same address.
    assigned: HashMap<ServiceName, Ipv4Addr>,
    /// Services that want an address and got none: retried when one frees.
    pending: BTreeSet<ServiceName>,
    /// `assigned` was built from a full listing.
    synced: bool,
    /// An address was freed since the last look at `pending`.
    freed: bool,
}

impl LoadBalancers {
    /// Hands out addresses of `pool` (none: does nothing), writing
    /// through `objects`.
    pub fn new(objects: Objects, pool: Option<LbPool>) -> Self {
        Self {
            objects,
            pool,
            assigned: HashMap::new(),
            pending: BTreeSet::new(),
            synced: false,
            freed: false,
        }
    }

    /// Addresses held by Services other than `me`, with their holders.
    fn others(&self, me: &ServiceName) -> HashMap<Ipv4Addr, String> {
        self.assigned
            .iter()
            .filter(|(k, _)| *k != me)
            .map(|(k, ip)| (*ip, k.object_ref()))
            .collect()
    }

    fn release(&mut self, key: &ServiceName) {
        self.pending.remove(key);
        if self.assigned.remove(key).is_some() {
            self.freed = true;
        }
    }

    /// Rebuilds `assigned` from every Service as stored: the restart-safe
    /// record. Returns every Service's key.
    async fn relist(&mut self) -> Result<Vec<ServiceName>, StoreError> {
        let (services, _) = self.objects.list(kinds::SERVICES).await?;
        self.assigned.clear();
        if let Some(pool) = &self.pool {
            for s in &services {
                if let Some(ip) = held(s, pool) {
                    self.assigned.insert(ServiceName::of(s), ip);
                }
            }
        }
        self.synced = true;
        Ok(services.iter().map(ServiceName::of).collect())
    }

    /// Writes `status.loadBalancer` of `key` if `still` holds for the
    /// fresh read. `Ok(false)`: not written (gone, or changed meanwhile).
    async fn write_status(
        &self,
        key: &ServiceName,
        load_balancer: &Value,
        still: impl Fn(&Value) -> bool,
    ) -> Result<bool, StoreError> {
        let written = self
            .objects
            .update(kinds::SERVICES, Some(&key.namespace), &key.name, |s| {
                if !still(s) || s["status"]["loadBalancer"] == *load_balancer {
                    return false;
                }
                s["status"]["loadBalancer"] = load_balancer.clone();
                true
            })
            .await;
        match written {
            Ok(w) => Ok(w.is_some()),
            Err(StoreError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn apply(
        &mut self,
        key: &ServiceName,
        service: &Value,
        pool: &LbPool,
    ) -> Result<runtime::Action, StoreError> {
        let decision = plan(service, pool, &self.others(key));
        match decision {
            Plan::Ignore => self.release(key),
            Plan::Keep(ip) => {
                self.pending.remove(key);
                self.assigned.insert(key.clone(), ip);
            }
            Plan::Assign(ip) => {
                // Reserved before the write: a failed write holds it only
                // until the next relist or reconcile of this Service.
                let before = self.assigned.insert(key.clone(), ip);
                self.pending.remove(key);
                if before.is_some_and(|b| b != ip) {
                    self.freed = true;
                }
                if self
                    .write_status(key, &status_for(ip), wants_address)
                    .await?
                {
                    info!(service = %key.object_ref(), ip = %ip, "load balancer address assigned");
                    let message = format!("Assigned IP [\"{ip}\"]");
                    self.objects
                        .event(service, false, "IPAllocated", &message, COMPONENT)
                        .await;
                }
            }
            Plan::Release => {
                let empty = json!({});
                if self
                    .write_status(key, &empty, |s| !wants_address(s))
                    .await?
                {
                    info!(service = %key.object_ref(), "load balancer address released");
                }
                self.release(key);
                self.freed = true;
            }
            Plan::Fail(failure) => {
                self.pending.insert(key.clone());
                let message = format!(
                    "Failed to allocate IP for \"{}\": {failure}",
                    key.object_ref()
                );
                warn!(service = %key.object_ref(), reason = %failure, "no load balancer address");
                self.objects
                    .event(service, true, "AllocationFailed", &message, COMPONENT)
                    .await;
                return Ok(runtime::Action::requeue(PENDING_RETRY));
            }
        }
        Ok(runtime::Action::await_change())
    }
}

impl Reconciler for LoadBalancers {
    type Key = ServiceName;
    type Change = Change;
    type Error = StoreError;
    const NAME: &'static str = "loadbalancer";

    fn watches(&self) -> Result<Vec<String>, StoreError> {
        Ok(vec![kinds::SERVICES.prefix()])
    }

    fn decode(_: usize, event: Option<&Event>) -> Option<Trigger<ServiceName, Change>> {
        let Some(e) = event else {
            return Some(Trigger::Resync);
        };
        let key = ServiceName::of(&metadata_of(e)?);
        Some(match e.kind {
            EventKind::Deleted => Trigger::Change(Change::Deleted(key)),
            kind => Trigger::Object(kind, key),
        })
    }

    async fn changes(
        &mut self,
        change: Change,
        _: &OwnerIndex<ServiceName>,
    ) -> Result<Vec<ServiceName>, StoreError> {
        let Change::Deleted(key) = change;
        self.release(&key);
        Ok(self.follow_ups())
    }

    async fn list(&mut self) -> Result<Vec<ServiceName>, StoreError> {
        self.relist().await
    }

    async fn reconcile(&mut self, key: &ServiceName) -> Result<runtime::Action, StoreError> {
        let Some(pool) = self.pool else {
            // No pool: LoadBalancer Services stay pending, as upstream's
            // without a cloud provider.
            return Ok(runtime::Action::await_change());
        };
        if !self.synced {
            self.relist().await?;
        }
        match self
            .objects
            .get(kinds::SERVICES, Some(&key.namespace), &key.name)
            .await
        {
            Ok(service) => self.apply(key, &service, &pool).await,
            Err(StoreError::NotFound(_)) => {
                self.release(key);
                Ok(runtime::Action::await_change())
            }
            Err(e) => Err(e),
        }
    }

    fn follow_ups(&mut self) -> Vec<ServiceName> {
        if !std::mem::take(&mut self.freed) {
            return Vec::new();
        }
        self.pending.iter().cloned().collect()
    }
}
