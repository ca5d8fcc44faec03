//! From the cluster's Services and EndpointSlices (the node's
//! [`ServiceCache`]) to the proxy's model, and on to the proxy actor: each
//! change of the cache is turned into `ServiceChanged`/`ServiceRemoved`
//! messages for the Services whose ports or endpoints differ from what the
//! proxy was last told, so a change to one Service costs one Service's
//! rules, as kube-proxy's change trackers do.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Service, ServicePort as SpecPort};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::sync::watch;
use tracing::warn;

use super::ProxyHandle;
use super::model::{
    DEFAULT_AFFINITY_TIMEOUT_SECONDS, Endpoint, Protocol, ServicePort, ServicePortName,
};
use crate::services::ServiceCache;

fn parse_protocol(p: Option<&str>) -> Option<Protocol> {
    match p.unwrap_or("TCP") {
        "TCP" => Some(Protocol::Tcp),
        "UDP" => Some(Protocol::Udp),
        "SCTP" => Some(Protocol::Sctp),
        _ => None,
    }
}

fn ipv4s<'a>(list: impl IntoIterator<Item = &'a String>) -> Vec<Ipv4Addr> {
    list.into_iter().filter_map(|ip| ip.parse().ok()).collect()
}

fn port_u16(p: i32) -> Option<u16> {
    u16::try_from(p).ok().filter(|p| *p != 0)
}

/// The Service's cluster IPs (IPv4); empty for headless, ExternalName and
/// not-yet-allocated Services, which the proxy leaves alone.
fn cluster_ips(service: &Service) -> Vec<Ipv4Addr> {
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return Vec::new();
    }
    match &spec.cluster_ips {
        Some(ips) if !ips.is_empty() => ipv4s(ips),
        _ => ipv4s(spec.cluster_ip.iter()),
    }
}

/// Endpoints of the Service port named `name` with `protocol`, from the
/// Service's EndpointSlices.
fn endpoints<'a>(
    slices: impl Iterator<Item = &'a std::sync::Arc<EndpointSlice>>,
    name: &str,
    protocol: Protocol,
) -> Vec<Endpoint> {
    let mut out = Vec::new();
    for slice in slices {
        if slice.address_type != "IPv4" {
            continue;
        }
        let Some(port) = slice.ports.iter().flatten().find(|p| {
            p.name.as_deref().unwrap_or("") == name
                && parse_protocol(p.protocol.as_deref()) == Some(protocol)
        }) else {
            continue;
        };
        let Some(number) = port.port.and_then(port_u16) else {
            continue;
        };
        for ep in &slice.endpoints {
            let Some(ip) = ep.addresses.first().and_then(|a| a.parse().ok()) else {
                continue;
            };
            let conditions = ep.conditions.as_ref();
            // Unset conditions mean ready/serving, as upstream reads them.
            let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
            let serving = conditions.and_then(|c| c.serving).unwrap_or(ready);
            let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
            out.push(Endpoint {
                ip,
                port: number,
                ready,
                serving,
                terminating,
                node: ep.node_name.clone(),
            });
        }
    }
    out.sort_by_key(|e| (e.ip, e.port));
    out.dedup_by_key(|e| (e.ip, e.port));
    out
}

/// Every port of `service` as the proxy models it (empty when the Service
/// is not proxied).
pub fn service_ports(cache: &ServiceCache, service: &Service) -> Vec<ServicePort> {
    let ips = cluster_ips(service);
    let Some(spec) = service.spec.as_ref() else {
        return Vec::new();
    };
    if ips.is_empty() {
        return Vec::new();
    }
    let namespace = service.metadata.namespace.as_deref().unwrap_or("default");
    let name = service.metadata.name.as_deref().unwrap_or_default();
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|t| u32::try_from(t).ok())
            .unwrap_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS)
    });
    let load_balancer_ips = service
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|ingress| ipv4s(ingress.iter().filter_map(|i| i.ip.as_ref())))
        .unwrap_or_default();
    let external_ips = ipv4s(spec.external_ips.iter().flatten());
    let local = spec.external_traffic_policy.as_deref() == Some("Local");
    spec.ports
        .iter()
        .flatten()
        .filter_map(|p: &SpecPort| {
            let protocol = parse_protocol(p.protocol.as_deref())?;
            let port_name = p.name.clone().unwrap_or_default();
            Some(ServicePort {
                name: ServicePortName::new(namespace, name, &port_name, protocol),
                cluster_ips: ips.clone(),
                port: port_u16(p.port)?,
                node_port: p.node_port.and_then(port_u16),
                load_balancer_ips: load_balancer_ips.clone(),
                external_ips: external_ips.clone(),
                session_affinity: affinity,
                external_traffic_local: local,
                endpoints: endpoints(cache.slices_of(namespace, name), &port_name, protocol),
            })
        })
        .collect()
}

/// The ports of the Service with key `namespace/name` (empty when it is
/// gone or not proxied).
fn ports_of(cache: &ServiceCache, key: &str) -> Vec<ServicePort> {
    let Some((namespace, name)) = key.split_once('/') else {
        return Vec::new();
    };
    cache
        .service(namespace, name)
        .map(|s| service_ports(cache, s))
        .unwrap_or_default()
}

/// What the proxy was last told: each Service key's cache revision and
/// its ports (only proxied Services have ports here).
#[derive(Default)]
struct Told {
    revisions: HashMap<String, u64>,
    ports: HashMap<String, Vec<ServicePort>>,
}

impl Told {
    /// Everything in `cache` as one snapshot (the first full set, which
    /// replaces whatever the table had).
    fn snapshot(cache: &ServiceCache, proxy: &ProxyHandle) -> super::Result<Self> {
        let mut told = Told::default();
        for (key, revision) in cache.revisions() {
            told.revisions.insert(key.to_string(), revision);
            let ports = ports_of(cache, key);
            if !ports.is_empty() {
                told.ports.insert(key.to_string(), ports);
            }
        }
        proxy.snapshot(told.ports.values().flatten().cloned().collect())?;
        Ok(told)
    }

    /// Tells `proxy` the Services whose revision moved since last time,
    /// and only those whose ports differ (a slice change that keeps every
    /// ready address sends nothing).
    fn tell_changes(&mut self, cache: &ServiceCache, proxy: &ProxyHandle) -> super::Result<()> {
        let mut changed: Vec<String> = cache
            .revisions()
            .filter(|(key, revision)| self.revisions.get(*key) != Some(revision))
            .map(|(key, _)| key.to_string())
            .collect();
        changed.extend(
            self.revisions
                .keys()
                .filter(|k| cache.revision(k).is_none())
                .cloned(),
        );
        for key in changed {
            match cache.revision(&key) {
                Some(revision) => self.revisions.insert(key.clone(), revision),
                None => self.revisions.remove(&key),
            };
            let ports = ports_of(cache, &key);
            let Some((namespace, name)) = key.split_once('/') else {
                continue;
            };
            if ports.is_empty() {
                if self.ports.remove(&key).is_some() {
                    proxy.service_removed(namespace, name)?;
                }
            } else if self.ports.get(&key) != Some(&ports) {
                proxy.service_changed(namespace, name, ports.clone())?;
                self.ports.insert(key, ports);
            }
        }
        Ok(())
    }
}

/// Tells `proxy` every change of `services` until the cache's sender goes.
pub async fn follow(mut services: watch::Receiver<ServiceCache>, proxy: ProxyHandle) {
    let mut told: Option<Told> = None;
    loop {
        let sent = {
            let cache = services.borrow_and_update();
            match told.as_mut() {
                _ if !cache.synced() => Ok(()),
                None => Told::snapshot(&cache, &proxy).map(|t| told = Some(t)),
                Some(told) => told.tell_changes(&cache, &proxy),
            }
        };
        if let Err(e) = sent {
            warn!(error = %e, "the service proxy is gone");
            return;
        }
        if services.changed().await.is_err() {
            return;
        }
    }
}

/// Starts the node's service proxy once the pod network (its cluster
/// CIDR) is known, then keeps it told of every change of `services`.
pub async fn run(
    node_name: String,
    mut network: crate::network::NodeNetworkRx,
    services: watch::Receiver<ServiceCache>,
) {
    let cidr = loop {
        let known = network
            .borrow_and_update()
            .as_ref()
            .and_then(|n| n.cluster_net().ok());
        if let Some(cidr) = known {
            break cidr;
        }
        if network.changed().await.is_err() {
            return;
        }
    };
    let mut config = super::ProxyConfig::new(&node_name);
    config.cluster_cidr = (cidr.network(), cidr.prefix_len());
    let proxy = match super::ServiceProxy::spawn(config).await {
        Ok(proxy) => proxy,
        Err(e) => {
            warn!(error = %e, "cannot start the service proxy");
            return;
        }
    };
    tracing::info!(node = %node_name, cluster_cidr = %cidr, "service proxy started");
    follow(services, proxy).await;
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use skiff_proto::node::v1 as pb;

    use super::*;

    fn cache(objects: &[(bool, serde_json::Value)]) -> ServiceCache {
        let mut update = pb::ServiceUpdate {
            reset: true,
            ..Default::default()
        };
        for (is_service, o) in objects {
            let bytes = serde_json::to_vec(o).expect("json");
            if *is_service {
                update.services.push(bytes);
            } else {
                update.endpoint_slices.push(bytes);
            }
        }
        let mut cache = ServiceCache::default();
        cache.apply(&update);
        cache
    }

    #[test]
    fn services_and_slices_become_the_proxys_ports() {
        let svc = json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"],
                     "sessionAffinity": "ClientIP", "externalTrafficPolicy": "Local",
                     "ports": [{"name": "http", "port": 80, "targetPort": "http", "nodePort": 30123},
                               {"name": "dns", "port": 53, "protocol": "UDP"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.29.1.240"}]}}});
        let slice = json!({"metadata": {"name": "web-abcde", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "conditions": {"ready": true}, "nodeName": "node2"},
            {"addresses": ["10.244.2.7"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        ]});
        let headless = json!({"metadata": {"name": "h", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        let c = cache(&[(true, svc), (false, slice), (true, headless)]);
        let ports: HashMap<String, Vec<ServicePort>> = c
            .revisions()
            .map(|(key, _)| (key.to_string(), ports_of(&c, key)))
            .filter(|(_, ports)| !ports.is_empty())
            .collect();
        assert_eq!(ports.len(), 1, "headless Services are not proxied");
        let web = &ports["default/web"];
        assert_eq!(web.len(), 2);
        let http = &web[0];
        assert_eq!(
            http.name,
            ServicePortName::new("default", "web", "http", Protocol::Tcp)
        );
        assert_eq!(http.cluster_ips, [Ipv4Addr::new(10, 96, 0, 20)]);
        assert_eq!((http.port, http.node_port), (80, Some(30123)));
        assert_eq!(http.load_balancer_ips, [Ipv4Addr::new(172, 29, 1, 240)]);
        assert_eq!(
            http.session_affinity,
            Some(DEFAULT_AFFINITY_TIMEOUT_SECONDS)
        );
        assert!(http.external_traffic_local);
        assert_eq!(http.endpoints.len(), 2);
        assert_eq!(http.endpoints[0].port, 8080);
        assert!(http.endpoints[0].ready);
        assert_eq!(http.endpoints[0].node.as_deref(), Some("node2"));
        let terminating = &http.endpoints[1];
        assert!(!terminating.ready && terminating.serving && terminating.terminating);
        // The UDP port has no endpoints: the slice names none for it.
        assert_eq!(web[1].name.protocol, Protocol::Udp);
        assert!(web[1].endpoints.is_empty());
    }
}
