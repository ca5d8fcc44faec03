//! Reserved values in the store: one key per cluster IP and per nodePort
//! (as upstream ≥ 1.33 keeps one IPAddress object per address), naming the
//! Service that holds it. A Service and the keys of its new values are
//! written in one store transaction: a key that exists already fails the
//! whole write (`AlreadyExists`), so two Services never get one value and
//! a refused Service reserves nothing.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::bands::random_seed;
use super::service::{
    self, Held, IpRequest, PortRequest, check_fields, health_check_request, held, ip_request,
    port_requests, set_health_check_port, set_ip, set_node_port,
};
use super::{AllocError, Refusal, ServiceRanges};
use crate::registry::kinds::SERVICES;
use crate::store::{Store, StoreError, Write};

/// Where reservations live (a group no API serves).
pub const PREFIX: &str = "/registry/skiff.dev/serviceallocations/";
const IPS: &str = "ips/";
const PORTS: &str = "nodeports/";

/// How often a write is tried again after losing an automatic pick to a
/// concurrent writer.
const ATTEMPTS: usize = 16;

/// One reservable value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// A cluster IP.
    Ip(Ipv4Addr),
    /// A nodePort.
    NodePort(u16),
}

impl Reserved {
    /// Its store key.
    pub fn key(self) -> String {
        match self {
            Self::Ip(ip) => format!("{PREFIX}{IPS}{ip}"),
            Self::NodePort(port) => format!("{PREFIX}{PORTS}{port}"),
        }
    }

    /// The value a store key reserves.
    pub fn from_key(key: &str) -> Option<Self> {
        let rest = key.strip_prefix(PREFIX)?;
        if let Some(ip) = rest.strip_prefix(IPS) {
            return ip.parse().ok().map(Self::Ip);
        }
        rest.strip_prefix(PORTS)?.parse().ok().map(Self::NodePort)
    }

    fn held_in(self, held: &Held) -> bool {
        match self {
            Self::Ip(ip) => held.ip == Some(ip),
            Self::NodePort(port) => held.node_ports.contains(&port),
        }
    }

    fn all_of(held: &Held) -> impl Iterator<Item = Self> + '_ {
        held.ip
            .map(Self::Ip)
            .into_iter()
            .chain(held.node_ports.iter().copied().map(Self::NodePort))
    }
}

/// Who holds a reservation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// The Service's namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its uid: a Service made again under the same name is another owner.
    pub uid: String,
}

impl Owner {
    fn of(obj: &Value) -> Self {
        let text = |field: &str| {
            obj.pointer(&format!("/metadata/{field}"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        Self {
            namespace: text("namespace"),
            name: text("name"),
            uid: text("uid"),
        }
    }

    fn bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Whether the reservation `kv` of `value` is in force: its Service exists
/// with the uid it names and still holds the value. Any other is stale.
async fn in_force(store: &dyn Store, value: Reserved, bytes: &[u8]) -> Result<bool, StoreError> {
    let Ok(owner) = serde_json::from_slice::<Owner>(bytes) else {
        return Ok(false);
    };
    let key = SERVICES.key(Some(&owner.namespace), &owner.name);
    let kv = match store.get(&key).await {
        Ok(kv) => kv,
        Err(StoreError::NotFound(_)) => return Ok(false),
        Err(e) => return Err(e),
    };
    let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) else {
        return Ok(false);
    };
    Ok(
        svc.pointer("/metadata/uid").and_then(Value::as_str) == Some(owner.uid.as_str())
            && value.held_in(&held(&svc)),
    )
}

/// The write taking `value` for `owner`: a create when it is free, an
/// update over a stale reservation (compare-and-swap on its revision);
/// `None` while another Service holds it.
async fn claim(
    store: &dyn Store,
    value: Reserved,
    owner: &Owner,
) -> Result<Option<Write>, StoreError> {
    let key = value.key();
    match store.get(&key).await {
        Err(StoreError::NotFound(_)) => Ok(Some(Write::Create {
            key,
            value: owner.bytes(),
        })),
        Err(e) => Err(e),
        Ok(kv) if in_force(store, value, &kv.value).await? => Ok(None),
        Ok(kv) => Ok(Some(Write::Update {
            key,
            expected: kv.revision,
            value: owner.bytes(),
        })),
    }
}

/// The keys reserved under `kind` (`ips/`, `nodeports/`).
async fn taken(store: &dyn Store, kind: &str) -> Result<HashSet<String>, StoreError> {
    let listing = store.list(&format!("{PREFIX}{kind}")).await?;
    Ok(listing.items.into_iter().map(|kv| kv.key).collect())
}

/// The reservations one write of a Service makes.
#[derive(Debug, Default)]
pub struct Plan {
    writes: Vec<Write>,
}

impl Plan {
    fn owns(&self, key: &str) -> bool {
        self.writes.iter().any(|w| match w {
            Write::Create { key: k, .. } | Write::Update { key: k, .. } => k == key,
        })
    }

    /// The writes, for the Service's transaction.
    pub fn writes(&self) -> &[Write] {
        &self.writes
    }
}

/// Fills `obj`'s cluster IP and nodePorts (explicit ones checked, missing
/// ones picked, dynamic band first) and returns the reservations to write
/// with it. `old` is the stored Service on update: what it holds already
/// is kept without a new reservation. Nothing is written.
pub async fn plan(
    store: &dyn Store,
    ranges: &ServiceRanges,
    old: Option<&Value>,
    obj: &mut Value,
    seed: u64,
) -> Result<Plan, AllocError> {
    check_fields(obj)?;
    let owner = Owner::of(obj);
    let kept = old.map(held).unwrap_or_default();
    let mut plan = Plan::default();
    match ip_request(obj) {
        IpRequest::NoIp => {}
        IpRequest::Headless => set_ip(obj, None),
        IpRequest::Explicit(text) => {
            let refused = |refusal| AllocError::Ip {
                ip: text.clone(),
                refusal,
            };
            // check_fields refused what does not parse already.
            let ip: Ipv4Addr = text.parse().map_err(|_| service::invalid_ip(&text))?;
            if kept.ip != Some(ip) {
                if ranges.ips.offset(ip).is_none() {
                    return Err(refused(Refusal::IpNotInRange {
                        ip,
                        range: ranges.ips,
                    }));
                }
                let write = claim(store, Reserved::Ip(ip), &owner)
                    .await?
                    .ok_or_else(|| refused(Refusal::IpAllocated))?;
                plan.writes.push(write);
            }
            set_ip(obj, Some(ip));
        }
        IpRequest::Auto => {
            let taken = taken(store, IPS).await?;
            let ip = ranges
                .ips
                .bands()
                .automatic_order(seed)
                .map(|offset| ranges.ips.at(offset))
                // The cluster DNS address is kept for `kube-dns`.
                .filter(|ip| Some(*ip) != ranges.ips.dns())
                .find(|ip| !taken.contains(&Reserved::Ip(*ip).key()))
                .ok_or(AllocError::IpRangeFull)?;
            plan.writes.push(Write::Create {
                key: Reserved::Ip(ip).key(),
                value: owner.bytes(),
            });
            set_ip(obj, Some(ip));
        }
    }
    let requests = port_requests(obj);
    let mut claimed: BTreeSet<u16> = BTreeSet::new();
    // Explicit ports first, so an automatic pick never takes one the same
    // Service asks for further down.
    for (index, request) in &requests {
        let PortRequest::Explicit(port) = *request else {
            continue;
        };
        let refused = |refusal| AllocError::NodePort {
            index: *index,
            port,
            refusal,
        };
        let Some(number) = ranges
            .node_ports
            .offset(port)
            .and_then(|_| u16::try_from(port).ok())
        else {
            return Err(refused(Refusal::PortNotInRange {
                range: ranges.node_ports,
            }));
        };
        // Kept from before, or already claimed for another protocol.
        if kept.node_ports.contains(&number) || !claimed.insert(number) {
            continue;
        }
        let write = claim(store, Reserved::NodePort(number), &owner)
            .await?
            .ok_or_else(|| refused(Refusal::PortAllocated))?;
        plan.writes.push(write);
    }
    let mut by_service_port: HashMap<i64, u16> = HashMap::new();
    let mut taken_ports: Option<HashSet<String>> = None;
    for (index, request) in requests {
        if request != PortRequest::Auto {
            continue;
        }
        // One service port under several protocols shares its nodePort.
        let service_port = service::service_port(obj, index);
        if let Some(port) = by_service_port.get(&service_port) {
            set_node_port(obj, index, *port);
            continue;
        }
        let taken = match &mut taken_ports {
            Some(t) => t,
            None => taken_ports.insert(taken(store, PORTS).await?),
        };
        let port = ranges
            .node_ports
            .bands()
            .automatic_order(seed.rotate_left(17))
            .map(|offset| ranges.node_ports.at(offset))
            .find(|p| !claimed.contains(p) && !taken.contains(&Reserved::NodePort(*p).key()))
            .ok_or(AllocError::PortRangeFull)?;
        claimed.insert(port);
        by_service_port.insert(service_port, port);
        plan.writes.push(Write::Create {
            key: Reserved::NodePort(port).key(),
            value: owner.bytes(),
        });
        set_node_port(obj, index, port);
    }
    match health_check_request(obj) {
        None => {}
        Some(PortRequest::Explicit(port)) => {
            let refused = |refusal| AllocError::HealthCheckPort { port, refusal };
            let Some(number) = ranges
                .node_ports
                .offset(port)
                .and_then(|_| u16::try_from(port).ok())
            else {
                return Err(refused(Refusal::PortNotInRange {
                    range: ranges.node_ports,
                }));
            };
            if !kept.node_ports.contains(&number) {
                if claimed.contains(&number) {
                    return Err(refused(Refusal::PortAllocated));
                }
                let write = claim(store, Reserved::NodePort(number), &owner)
                    .await?
                    .ok_or_else(|| refused(Refusal::PortAllocated))?;
                plan.writes.push(write);
            }
        }
        Some(PortRequest::Auto) => {
            let taken = match &mut taken_ports {
                Some(t) => t,
                None => taken_ports.insert(taken(store, PORTS).await?),
            };
            let port = ranges
                .node_ports
                .bands()
                .automatic_order(seed.rotate_left(31))
                .map(|offset| ranges.node_ports.at(offset))
                .find(|p| !claimed.contains(p) && !taken.contains(&Reserved::NodePort(*p).key()))
                .ok_or(AllocError::PortRangeFull)?;
            plan.writes.push(Write::Create {
                key: Reserved::NodePort(port).key(),
                value: owner.bytes(),
            });
            set_health_check_port(obj, port);
        }
    }
    Ok(plan)
}

/// Stores the Service `obj` (created, or updated over `old` read at its
/// revision) with the reservations of its new values, in one transaction,
/// and releases what an update no longer holds. An automatic pick taken
/// meanwhile by another writer is picked again. Returns the Service's
/// revision; `obj` is what was stored.
pub async fn store_service(
    store: &dyn Store,
    ranges: &ServiceRanges,
    old: Option<(&Value, u64)>,
    obj: &mut Value,
    encode: impl Fn(&Value) -> Vec<u8>,
) -> Result<u64, AllocError> {
    let asked = obj.clone();
    let key = SERVICES.key(
        obj.pointer("/metadata/namespace").and_then(Value::as_str),
        crate::meta::name(obj),
    );
    let mut repaired = false;
    for _ in 0..ATTEMPTS {
        obj.clone_from(&asked);
        let plan = match plan(store, ranges, old.map(|(o, _)| o), obj, random_seed()).await {
            Ok(plan) => plan,
            // Automatic picks skip every reservation, stale ones too: before
            // calling a range full, take back what is stale (a release lost
            // to a crash) and look again.
            Err(AllocError::IpRangeFull | AllocError::PortRangeFull) if !repaired => {
                repaired = true;
                repair(store).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let service = match old {
            None => Write::Create {
                key: key.clone(),
                value: encode(obj),
            },
            Some((_, revision)) => Write::Update {
                key: key.clone(),
                expected: revision,
                value: encode(obj),
            },
        };
        let mut writes = Vec::with_capacity(plan.writes.len() + 1);
        writes.push(service);
        writes.extend(plan.writes.iter().cloned());
        match store.write_all(writes).await {
            Ok(revisions) => {
                if let Some((old, _)) = old {
                    release_unheld(store, old, obj).await;
                }
                return Ok(revisions.first().copied().unwrap_or_default());
            }
            Err(
                StoreError::AlreadyExists(k)
                | StoreError::NotFound(k)
                | StoreError::Conflict { key: k, .. },
            ) if plan.owns(&k) => {
                tracing::debug!(key = %k, "allocation lost a race; picking again");
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(AllocError::Contended)
}

/// Deletes the reservation of `value` if `uid`'s Service holds it (best
/// effort: a reservation left behind is stale, and taken back later).
async fn release_value(store: &dyn Store, value: Reserved, uid: &str) {
    let key = value.key();
    let kv = match store.get(&key).await {
        Ok(kv) => kv,
        Err(StoreError::NotFound(_)) => return,
        Err(e) => {
            tracing::warn!(%key, error = %e, "reading a reservation to release it");
            return;
        }
    };
    let owned = serde_json::from_slice::<Owner>(&kv.value).is_ok_and(|o| o.uid == uid);
    if !owned {
        return;
    }
    match store.delete(&key, Some(kv.revision)).await {
        Ok(_) | Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => {}
        Err(e) => tracing::warn!(%key, error = %e, "releasing a reservation"),
    }
}

fn uid(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// Releases what `old` held and `new` (the same Service, updated) does
/// not: nodePorts on a change to ClusterIP, the address on a change to
/// ExternalName.
pub async fn release_unheld(store: &dyn Store, old: &Value, new: &Value) {
    let now = held(new);
    for value in Reserved::all_of(&held(old)) {
        if !value.held_in(&now) {
            release_value(store, value, uid(old)).await;
        }
    }
}

/// Releases everything the deleted Service `obj` held.
pub async fn release(store: &dyn Store, obj: &Value) {
    for value in Reserved::all_of(&held(obj)) {
        release_value(store, value, uid(obj)).await;
    }
}

/// What the start-up repair did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Repaired {
    /// Stale reservations deleted.
    pub released: usize,
    /// Values Services held without a reservation (stored before
    /// allocation existed, or written around it), now reserved.
    pub adopted: usize,
}

/// The start-up repair, as upstream's repair controllers do it: deletes
/// every reservation not in force (its Service gone, made again, or no
/// longer holding the value, as after a crash between a Service's deletion
/// and its release), and reserves what Services hold without a
/// reservation. A value two Services hold is left to the first and
/// reported.
pub async fn repair(store: &dyn Store) -> Result<Repaired, StoreError> {
    let mut done = Repaired::default();
    let listing = store.list(PREFIX).await?;
    for kv in listing.items {
        let Some(value) = Reserved::from_key(&kv.key) else {
            continue;
        };
        if in_force(store, value, &kv.value).await? {
            continue;
        }
        match store.delete(&kv.key, Some(kv.revision)).await {
            Ok(_) => done.released += 1,
            Err(StoreError::NotFound(_) | StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let services = store.list(&SERVICES.prefix()).await?;
    for kv in services.items {
        let Ok(svc) = serde_json::from_slice::<Value>(&kv.value) else {
            continue;
        };
        let owner = Owner::of(&svc);
        for value in Reserved::all_of(&held(&svc)) {
            match claim(store, value, &owner).await? {
                // Reserved for this Service already, or held by another.
                None => {
                    let holder = match store.get(&value.key()).await {
                        Ok(kv) => serde_json::from_slice::<Owner>(&kv.value).ok(),
                        Err(_) => None,
                    };
                    if holder.is_some_and(|h| h.uid != owner.uid) {
                        tracing::warn!(
                            service = %format!("{}/{}", owner.namespace, owner.name),
                            ?value,
                            "a value two Services hold; recreate one of them"
                        );
                    }
                }
                Some(write) => match store.write_all(vec![write]).await {
                    Ok(_) => done.adopted += 1,
                    Err(StoreError::AlreadyExists(_) | StoreError::Conflict { .. }) => {}
                    Err(e) => return Err(e),
                },
            }
        }
    }
    if done != Repaired::default() {
        tracing::info!(
            released = done.released,
            adopted = done.adopted,
            "repaired Service allocations"
        );
    }
    Ok(done)
}

/// The reserved values, for tests and diagnostics.
pub async fn reserved(store: &dyn Store) -> Result<Vec<Reserved>, StoreError> {
    let listing = store.list(PREFIX).await?;
    Ok(listing
        .items
        .iter()
        .filter_map(|kv| Reserved::from_key(&kv.key))
        .collect())
}

#[cfg(test)]
mod tests;
