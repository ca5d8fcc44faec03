//! The in-memory index the DNS server answers from: per Service what a
//! name can resolve to (type, cluster IPs, ports, externalName, ready
//! endpoints with their hostnames) and the reverse maps for PTR.
//!
//! Why its own shape rather than the decoded objects: a query must cost
//! a hash lookup or two, never a store read or a JSON walk, and 1,000
//! Services with 10,000 endpoints must stay a few MB. So only what DNS
//! uses is kept, in compact types (`Arc<str>` names shared between the
//! forward and reverse maps, boxed slices, only ready endpoints), and the
//! index is updated incrementally from watch events, one object at a time.
//!
//! Slices belong to their Service through the `kubernetes.io/service-name`
//! label, as CoreDNS and kube-proxy read it; a slice may arrive before its
//! Service (it is kept and used once the Service comes).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service's `spec.type`, as DNS sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// ClusterIP, NodePort or LoadBalancer with a cluster IP: the name is
    /// the cluster IPs.
    ClusterIp,
    /// `clusterIP: None`: the name is the ready endpoints.
    Headless,
    /// A CNAME to `spec.externalName`.
    ExternalName,
}

/// A port's protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `TCP` (the default).
    Tcp,
    /// `UDP`.
    Udp,
    /// `SCTP`.
    Sctp,
}

impl Protocol {
    fn parse(text: Option<&str>) -> Self {
        match text {
            Some("UDP") => Self::Udp,
            Some("SCTP") => Self::Sctp,
            _ => Self::Tcp,
        }
    }

    /// The SRV label without its underscore (`tcp`).
    pub fn label(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One of a Service's ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// `name`, lower-cased; `None` when unnamed (no `_name._proto` SRV).
    pub name: Option<Arc<str>>,
    /// `protocol`.
    pub protocol: Protocol,
    /// `port`.
    pub port: u16,
}

/// What DNS needs of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRecord {
    /// How the name resolves.
    pub kind: ServiceKind,
    /// `spec.clusterIPs` (or `spec.clusterIP`); empty when headless or
    /// ExternalName.
    pub cluster_ips: Box<[IpAddr]>,
    /// `spec.ports`.
    pub ports: Box<[Port]>,
    /// `spec.externalName`, as written.
    pub external_name: Option<Arc<str>>,
}

/// A ready endpoint address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The address.
    pub ip: IpAddr,
    /// The endpoint's `hostname` (StatefulSet pods), lower-cased.
    pub hostname: Option<Arc<str>>,
}

impl Endpoint {
    /// The endpoint's label under its Service's name: its hostname, else
    /// its address with dashes (`10-244-1-5`), as CoreDNS names it.
    pub fn label(&self) -> std::borrow::Cow<'_, str> {
        match &self.hostname {
            Some(h) => std::borrow::Cow::Borrowed(h),
            None => std::borrow::Cow::Owned(dashed(self.ip)),
        }
    }
}

/// `10.244.1.5` → `10-244-1-5`; IPv6 `fd00::1` → `fd00--1`.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// A Service name and the slices that name it.
#[derive(Debug, Default)]
pub struct Entry {
    /// The Service, once seen (slices may come first).
    pub service: Option<ServiceRecord>,
    /// Ready endpoints by slice name.
    slices: Vec<(Arc<str>, Box<[Endpoint]>)>,
}

impl Entry {
    /// Every ready endpoint of every slice (an address in two slices, as
    /// while an endpoint moves between them, comes twice).
    pub fn endpoints(&self) -> impl Iterator<Item = &Endpoint> {
        self.slices.iter().flat_map(|(_, eps)| eps.iter())
    }

    /// Whether any slice has a ready endpoint.
    pub fn has_endpoints(&self) -> bool {
        self.slices.iter().any(|(_, eps)| !eps.is_empty())
    }
}

/// Who an address belongs to, for PTR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PtrTarget {
    /// The Service's namespace.
    pub namespace: Arc<str>,
    /// The Service's name.
    pub service: Arc<str>,
    /// `None`: a cluster IP of the Service; `Some`: an endpoint of this
    /// slice.
    pub slice: Option<Arc<str>>,
    /// The endpoint's hostname (`None` for cluster IPs and endpoints
    /// named by their address).
    pub hostname: Option<Arc<str>>,
}

/// The index: Services by namespace and name, and addresses for PTR.
#[derive(Debug, Default)]
pub struct DnsIndex {
    namespaces: HashMap<Arc<str>, HashMap<Arc<str>, Entry>>,
    /// `(namespace, slice)` → the Service it names.
    slice_owner: HashMap<(Arc<str>, Arc<str>), Arc<str>>,
    reverse: HashMap<IpAddr, Vec<PtrTarget>>,
    /// Unix seconds of the last change (the SOA serial, as CoreDNS's).
    serial: u32,
}

impl DnsIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// The SOA serial: when the index last changed.
    pub fn serial(&self) -> u32 {
        self.serial
    }

    fn touch(&mut self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX));
        self.serial = now.max(self.serial.saturating_add(1));
    }

    /// The entry of a Service name (`namespace`, `name` lower-case).
    pub fn entry(&self, namespace: &str, name: &str) -> Option<&Entry> {
        self.namespaces.get(namespace)?.get(name)
    }

    /// The Service of a name, if it exists.
    pub fn service(&self, namespace: &str, name: &str) -> Option<(&ServiceRecord, &Entry)> {
        let entry = self.entry(namespace, name)?;
        Some((entry.service.as_ref()?, entry))
    }

    /// Whether `namespace` has a Service (so `ns.svc.<domain>` exists).
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces
            .get(namespace)
            .is_some_and(|services| services.values().any(|e| e.service.is_some()))
    }

    /// Who holds `ip`, for PTR.
    pub fn reverse(&self, ip: IpAddr) -> &[PtrTarget] {
        self.reverse.get(&ip).map_or(&[], Vec::as_slice)
    }

    /// How many Services the index holds.
    pub fn service_count(&self) -> usize {
        self.namespaces
            .values()
            .flat_map(HashMap::values)
            .filter(|e| e.service.is_some())
            .count()
    }

    /// The shared copy of a namespace name (the map's key), made if new.
    fn intern_namespace(&mut self, namespace: &str) -> Arc<str> {
        match self.namespaces.get_key_value(namespace) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(namespace);
                self.namespaces.insert(k.clone(), HashMap::new());
                k
            }
        }
    }

    /// The entry of a Service name, made if new, with the shared names.
    fn entry_mut(&mut self, namespace: &str, name: &str) -> (Arc<str>, Arc<str>, &mut Entry) {
        let ns = self.intern_namespace(namespace);
        let services = self.namespaces.entry(ns.clone()).or_default();
        let svc = match services.get_key_value(name) {
            Some((k, _)) => k.clone(),
            None => {
                let k: Arc<str> = Arc::from(name);
                services.insert(k.clone(), Entry::default());
                k
            }
        };
        let entry = services.entry(svc.clone()).or_default();
        (ns, svc, entry)
    }

    /// Drops an entry with neither a Service nor slices, and an empty
    /// namespace.
    fn prune(&mut self, namespace: &str, name: &str) {
        if let Some(services) = self.namespaces.get_mut(namespace) {
            if services
                .get(name)
                .is_some_and(|e| e.service.is_none() && e.slices.is_empty())
            {
                services.remove(name);
            }
            if services.is_empty() {
                self.namespaces.remove(namespace);
            }
        }
    }

    fn unlink(&mut self, ip: IpAddr, keep: impl Fn(&PtrTarget) -> bool) {
        if let Some(targets) = self.reverse.get_mut(&ip) {
            targets.retain(keep);
            if targets.is_empty() {
                self.reverse.remove(&ip);
            }
        }
    }

    fn link(&mut self, ip: IpAddr, target: PtrTarget) {
        let targets = self.reverse.entry(ip).or_default();
        targets.push(target);
        targets.shrink_to_fit();
    }

    /// Adds or replaces a Service (one without a namespace or name is
    /// ignored).
    pub fn upsert_service(&mut self, service: &Service) {
        let (Some(namespace), Some(name)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
        ) else {
            return;
        };
        let record = service_record(service);
        let (ns, svc, entry) = self.entry_mut(namespace, name);
        if entry.service.as_ref() == Some(&record) {
            return;
        }
        let old = entry.service.replace(record.clone());
        let is_cluster_ip =
            |t: &PtrTarget| t.slice.is_none() && t.namespace == ns && t.service == svc;
        for ip in old.iter().flat_map(|o| o.cluster_ips.iter()) {
            self.unlink(*ip, |t| !is_cluster_ip(t));
        }
        for ip in record.cluster_ips.iter() {
            self.link(
                *ip,
                PtrTarget {
                    namespace: ns.clone(),
                    service: svc.clone(),
                    slice: None,
                    hostname: None,
                },
            );
        }
        self.touch();
    }

    /// Removes a Service (its slices stay until they go too).
    pub fn remove_service(&mut self, namespace: &str, name: &str) {
        let Some(entry) = self
            .namespaces
            .get_mut(namespace)
            .and_then(|s| s.get_mut(name))
        else {
            return;
        };
        let Some(old) = entry.service.take() else {
            return;
        };
        for ip in old.cluster_ips.iter() {
            self.unlink(*ip, |t| {
                !(t.slice.is_none() && &*t.namespace == namespace && &*t.service == name)
            });
        }
        self.prune(namespace, name);
        self.touch();
    }

    /// Adds or replaces an EndpointSlice (keeping its ready endpoints).
    pub fn upsert_slice(&mut self, slice: &EndpointSlice) {
        let (Some(namespace), Some(name)) = (
            slice.metadata.namespace.as_deref(),
            slice.metadata.name.as_deref(),
        ) else {
            return;
        };
        let owner = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .map(|s| s.to_ascii_lowercase());
        // The label may have changed: the slice leaves its old Service.
        self.remove_slice(namespace, name);
        let Some(owner) = owner else {
            return;
        };
        let endpoints = ready_endpoints(slice);
        let (ns, svc, entry) = self.entry_mut(namespace, &owner);
        let slice_name: Arc<str> = Arc::from(name);
        entry.slices.push((slice_name.clone(), endpoints.clone()));
        self.slice_owner
            .insert((ns.clone(), slice_name.clone()), svc.clone());
        for ep in endpoints.iter() {
            self.link(
                ep.ip,
                PtrTarget {
                    namespace: ns.clone(),
                    service: svc.clone(),
                    slice: Some(slice_name.clone()),
                    hostname: ep.hostname.clone(),
                },
            );
        }
        self.touch();
    }

    /// Removes an EndpointSlice.
    pub fn remove_slice(&mut self, namespace: &str, name: &str) {
        let key = (Arc::<str>::from(namespace), Arc::<str>::from(name));
        let Some(owner) = self.slice_owner.remove(&key) else {
            return;
        };
        let Some(entry) = self
            .namespaces
            .get_mut(namespace)
            .and_then(|s| s.get_mut(&*owner))
        else {
            return;
        };
        let mut gone = Vec::new();
        entry.slices.retain(|(slice, eps)| {
            if &**slice == name {
                gone.extend(eps.iter().map(|e| e.ip));
                false
            } else {
                true
            }
        });
        for ip in gone {
            self.unlink(ip, |t| {
                !(t.slice.as_deref() == Some(name)
                    && &*t.namespace == namespace
                    && t.service == owner)
            });
        }
        self.prune(namespace, &owner);
        self.touch();
    }

    /// Replaces every Service with `services` (after a re-list).
    pub fn replace_services<'a>(&mut self, services: impl IntoIterator<Item = &'a Service>) {
        let mut keep: std::collections::HashSet<(String, String)> = Default::default();
        for s in services {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                keep.insert((ns.clone(), name.clone()));
            }
            self.upsert_service(s);
        }
        let gone: Vec<(Arc<str>, Arc<str>)> = self
            .namespaces
            .iter()
            .flat_map(|(ns, services)| {
                services
                    .iter()
                    .filter(|(_, e)| e.service.is_some())
                    .map(move |(name, _)| (ns.clone(), name.clone()))
            })
            .filter(|(ns, name)| !keep.contains(&(ns.to_string(), name.to_string())))
            .collect();
        for (ns, name) in gone {
            self.remove_service(&ns, &name);
        }
    }

    /// Replaces every EndpointSlice with `slices` (after a re-list).
    pub fn replace_slices<'a>(&mut self, slices: impl IntoIterator<Item = &'a EndpointSlice>) {
        let mut keep: std::collections::HashSet<(String, String)> = Default::default();
        for s in slices {
            if let (Some(ns), Some(name)) = (&s.metadata.namespace, &s.metadata.name) {
                keep.insert((ns.clone(), name.clone()));
            }
            self.upsert_slice(s);
        }
        let gone: Vec<(Arc<str>, Arc<str>)> = self
            .slice_owner
            .keys()
            .filter(|(ns, name)| !keep.contains(&(ns.to_string(), name.to_string())))
            .cloned()
            .collect();
        for (ns, name) in gone {
            self.remove_slice(&ns, &name);
        }
    }
}

/// What DNS keeps of a Service.
fn service_record(service: &Service) -> ServiceRecord {
    let spec = service.spec.as_ref();
    let type_ = spec.and_then(|s| s.type_.as_deref());
    let external_name = spec
        .and_then(|s| s.external_name.as_deref())
        .filter(|n| !n.is_empty());
    let ips: Vec<&str> = match spec {
        Some(s) => match &s.cluster_ips {
            Some(ips) if !ips.is_empty() => ips.iter().map(String::as_str).collect(),
            _ => s.cluster_ip.as_deref().into_iter().collect(),
        },
        None => Vec::new(),
    };
    let kind = if type_ == Some("ExternalName") {
        ServiceKind::ExternalName
    } else if ips.is_empty() || ips.iter().any(|ip| ip.eq_ignore_ascii_case("None")) {
        ServiceKind::Headless
    } else {
        ServiceKind::ClusterIp
    };
    let cluster_ips: Box<[IpAddr]> = if kind == ServiceKind::ClusterIp {
        ips.iter().filter_map(|ip| ip.parse().ok()).collect()
    } else {
        Box::default()
    };
    let ports = spec
        .and_then(|s| s.ports.as_ref())
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    Some(Port {
                        name: p
                            .name
                            .as_deref()
                            .filter(|n| !n.is_empty())
                            .map(|n| Arc::from(n.to_ascii_lowercase())),
                        protocol: Protocol::parse(p.protocol.as_deref()),
                        port: u16::try_from(p.port).ok()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    ServiceRecord {
        kind,
        cluster_ips,
        ports,
        external_name: if kind == ServiceKind::ExternalName {
            external_name.map(Arc::from)
        } else {
            None
        },
    }
}

/// A slice's ready endpoints (`ready` unset counts as ready, as the API
/// documents it).
fn ready_endpoints(slice: &EndpointSlice) -> Box<[Endpoint]> {
    slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .flat_map(|e| {
            let hostname: Option<Arc<str>> = e
                .hostname
                .as_deref()
                .filter(|h| !h.is_empty())
                .map(|h| Arc::from(h.to_ascii_lowercase()));
            e.addresses.iter().filter_map(move |a| {
                Some(Endpoint {
                    ip: a.parse().ok()?,
                    hostname: hostname.clone(),
                })
            })
        })
        .collect()
}
