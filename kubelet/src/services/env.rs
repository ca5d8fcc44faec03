//! Service environment variables, as upstream's kubelet sets them: for
//! each Service with a cluster IP that a pod may see, `{SVC}_SERVICE_HOST`
//! and `_SERVICE_PORT` (the first port), `_SERVICE_PORT_{NAME}` per named
//! port, and the Docker-link style `{SVC}_PORT` and `{SVC}_PORT_{port}_{PROTO}`
//! with `_PROTO`, `_PORT`, `_ADDR`.
//!
//! Which Services: the `kubernetes` Service of `default` always; those of
//! the pod's own namespace when `enableServiceLinks` (default true), one of
//! them named `kubernetes` taking the place of the default one. Headless
//! and ExternalName Services have no cluster IP and give nothing.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;

use super::ServiceCache;

/// The namespace whose `kubernetes` Service every pod sees.
const MASTER_NAMESPACE: &str = "default";
const MASTER_SERVICE: &str = "kubernetes";

fn variable_name(name: &str) -> String {
    name.to_uppercase().replace('-', "_")
}

fn cluster_ip(service: &Service) -> Option<&str> {
    service
        .spec
        .as_ref()?
        .cluster_ip
        .as_deref()
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

/// The variables of one Service, in upstream's order.
fn of_service(service: &Service) -> Vec<(String, String)> {
    let Some(ip) = cluster_ip(service) else {
        return Vec::new();
    };
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_deref())
        .unwrap_or_default();
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let prefix = variable_name(service.metadata.name.as_deref().unwrap_or_default());
    let mut vars = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_string()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for port in ports {
        if let Some(name) = port.name.as_deref().filter(|n| !n.is_empty()) {
            vars.push((
                format!("{prefix}_SERVICE_PORT_{}", variable_name(name)),
                port.port.to_string(),
            ));
        }
    }
    let host_port = |port: i32| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    for (i, port) in ports.iter().enumerate() {
        let protocol = port.protocol.as_deref().unwrap_or("TCP");
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{}", host_port(port.port));
        if i == 0 {
            vars.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", port.port, protocol.to_uppercase());
        vars.push((port_prefix.clone(), url));
        vars.push((format!("{port_prefix}_PROTO"), lower));
        vars.push((format!("{port_prefix}_PORT"), port.port.to_string()));
        vars.push((format!("{port_prefix}_ADDR"), ip.to_string()));
    }
    vars
}

/// The service variables of a pod in `namespace`. Services are taken in
/// name order, so a pod's environment does not depend on arrival order.
pub fn service_environment(
    cache: &ServiceCache,
    namespace: &str,
    enable_service_links: bool,
) -> Vec<(String, String)> {
    let mut chosen: BTreeMap<&str, &Service> = BTreeMap::new();
    for service in cache.services() {
        let ns = service.metadata.namespace.as_deref().unwrap_or("default");
        let name = service.metadata.name.as_deref().unwrap_or_default();
        if cluster_ip(service).is_none() {
            continue;
        }
        if ns == MASTER_NAMESPACE && name == MASTER_SERVICE {
            chosen.entry(name).or_insert(service);
        } else if ns == namespace && enable_service_links {
            chosen.insert(name, service);
        }
    }
    chosen.values().flat_map(|s| of_service(s)).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use skiff_proto::node::v1 as pb;

    use super::*;

    fn cache(services: Vec<serde_json::Value>) -> ServiceCache {
        let mut cache = ServiceCache::default();
        cache.apply(&pb::ServiceUpdate {
            reset: true,
            services: services
                .iter()
                .map(|s| serde_json::to_vec(s).expect("json"))
                .collect(),
            ..Default::default()
        });
        cache
    }

    fn svc(ns: &str, name: &str, ip: &str, ports: serde_json::Value) -> serde_json::Value {
        json!({"metadata": {"name": name, "namespace": ns},
               "spec": {"clusterIP": ip, "ports": ports}})
    }

    fn get<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_service_gives_upstreams_variables() {
        let c = cache(vec![svc(
            "default",
            "webui-svc",
            "10.96.12.34",
            json!([{"name": "http", "port": 80, "targetPort": 8080},
                   {"name": "dns", "port": 53, "protocol": "UDP"}]),
        )]);
        let env = service_environment(&c, "default", true);
        let expect = [
            ("WEBUI_SVC_SERVICE_HOST", "10.96.12.34"),
            ("WEBUI_SVC_SERVICE_PORT", "80"),
            ("WEBUI_SVC_SERVICE_PORT_HTTP", "80"),
            ("WEBUI_SVC_SERVICE_PORT_DNS", "53"),
            ("WEBUI_SVC_PORT", "tcp://10.96.12.34:80"),
            ("WEBUI_SVC_PORT_80_TCP", "tcp://10.96.12.34:80"),
            ("WEBUI_SVC_PORT_80_TCP_PROTO", "tcp"),
            ("WEBUI_SVC_PORT_80_TCP_PORT", "80"),
            ("WEBUI_SVC_PORT_80_TCP_ADDR", "10.96.12.34"),
            ("WEBUI_SVC_PORT_53_UDP", "udp://10.96.12.34:53"),
            ("WEBUI_SVC_PORT_53_UDP_PROTO", "udp"),
            ("WEBUI_SVC_PORT_53_UDP_PORT", "53"),
            ("WEBUI_SVC_PORT_53_UDP_ADDR", "10.96.12.34"),
        ];
        let got: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        assert_eq!(got, expect);
    }

    #[test]
    fn which_services_a_pod_sees() {
        let port = json!([{"port": 443}]);
        let c = cache(vec![
            svc("default", "kubernetes", "10.96.0.1", port.clone()),
            svc("default", "web", "10.96.0.20", port.clone()),
            svc("lab", "db", "10.96.0.30", port.clone()),
            svc("lab", "headless", "None", port.clone()),
            json!({"metadata": {"name": "ext", "namespace": "lab"},
                   "spec": {"type": "ExternalName", "externalName": "example.org"}}),
        ]);
        let lab = service_environment(&c, "lab", true);
        assert_eq!(get(&lab, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(get(&lab, "DB_SERVICE_HOST"), Some("10.96.0.30"));
        assert_eq!(get(&lab, "WEB_SERVICE_HOST"), None, "other namespace");
        assert!(lab.iter().all(|(n, _)| !n.starts_with("HEADLESS_")));
        assert!(lab.iter().all(|(n, _)| !n.starts_with("EXT_")));
        // enableServiceLinks: false keeps only the kubernetes Service.
        let off = service_environment(&c, "lab", false);
        assert!(off.iter().all(|(n, _)| n.starts_with("KUBERNETES_")));
        assert_eq!(get(&off, "KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        // A namespace's own `kubernetes` Service wins over default's.
        let own = cache(vec![
            svc("default", "kubernetes", "10.96.0.1", port.clone()),
            svc("lab", "kubernetes", "10.96.0.99", port),
        ]);
        let env = service_environment(&own, "lab", true);
        assert_eq!(get(&env, "KUBERNETES_SERVICE_HOST"), Some("10.96.0.99"));
        assert_eq!(
            env.iter()
                .filter(|(n, _)| n == "KUBERNETES_SERVICE_HOST")
                .count(),
            1
        );
    }
}
