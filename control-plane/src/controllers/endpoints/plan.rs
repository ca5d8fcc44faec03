//! The Endpoints controller's decisions, free of the store: the subsets a
//! Service's pods make ([`subsets`], in upstream's repacked form: one
//! subset per group of ports that the same addresses serve) and whether
//! the Service's Endpoints object must be created or rewritten
//! ([`decide`]).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::controllers::service_pods::{
    self, copied_labels, find_port, hostname_for, ipv4_addresses, is_ready, node_name, protocol,
    publish_not_ready, should_be_endpoint, target_ref,
};
use crate::meta;

/// The label marking Endpoints this controller writes (Kubernetes 1.33+).
pub const MANAGED_BY_LABEL: &str = "endpoints.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`].
pub const CONTROLLER_NAME: &str = "endpoint-controller";

/// Upstream's `maxCapacity`: the most addresses one Endpoints object
/// holds; beyond, it is truncated and says so.
pub const MAX_CAPACITY: usize = 1000;
/// The annotation a truncated Endpoints object carries.
pub const OVER_CAPACITY_ANNOTATION: &str = "endpoints.kubernetes.io/over-capacity";

/// What a Service's pods make of its Endpoints.
#[derive(Debug, Default, PartialEq)]
pub struct Desired {
    /// `subsets`, repacked and sorted.
    pub subsets: Vec<Value>,
    /// The pods that are addresses (for the pod-change index).
    pub pods: BTreeSet<String>,
}

/// One address with whether it is ready, comparable: (ip, pod uid).
type AddressKey = (String, String);

/// Every port (`None`: a headless Service without ports) with the
/// addresses that serve it.
type ByPort = BTreeMap<Option<PortKey>, BTreeMap<AddressKey, (Value, bool)>>;

/// (name, port, protocol, appProtocol).
type PortKey = (String, i64, String, String);

fn port_json((name, port, protocol, app): &PortKey) -> Value {
    let mut p = json!({"port": port, "protocol": protocol});
    if !name.is_empty() {
        p["name"] = json!(name);
    }
    if !app.is_empty() {
        p["appProtocol"] = json!(app);
    }
    p
}

/// Upstream's `podToEndpointAddressForService`, with the hostname.
fn address(pod: &Value, service: &Value, ip: &str) -> Value {
    let mut a = json!({"ip": ip, "targetRef": target_ref(pod)});
    if let Some(node) = node_name(pod) {
        a["nodeName"] = json!(node);
    }
    if let Some(hostname) = hostname_for(pod, service) {
        a["hostname"] = json!(hostname);
    }
    a
}

/// The subsets `pods` (the Service's namespace's) give a managed Service:
/// selected pods with an address, not finished, and not terminating
/// (unless the Service publishes not-ready addresses); each under
/// `addresses` when Ready (or published anyway), else
/// `notReadyAddresses`; a port whose named target the pod lacks leaves
/// the pod out of that port only.
pub fn subsets(service: &Value, pods: &[Value]) -> Desired {
    let mut out = Desired::default();
    let Some(selector) = service_pods::managed_selector(service) else {
        return out;
    };
    let publish = publish_not_ready(service);
    let service_ports: Vec<&Value> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let headless = !service_pods::has_cluster_ip(service);
    let mut by_port = ByPort::new();
    for pod in pods {
        if !service_pods::selects(&selector, &meta::labels(pod))
            || !should_be_endpoint(pod, publish)
        {
            continue;
        }
        let Some(ip) = ipv4_addresses(pod).into_iter().next() else {
            continue;
        };
        let entry = (
            (ip.clone(), meta::uid(pod).to_string()),
            (address(pod, service, &ip), publish || is_ready(pod)),
        );
        let ports: Vec<Option<PortKey>> = if service_ports.is_empty() {
            // Only a headless Service may go without ports.
            if !headless {
                continue;
            }
            vec![None]
        } else {
            service_ports
                .iter()
                .filter_map(|sp| {
                    let number = find_port(pod, sp)?;
                    let name = sp["name"].as_str().unwrap_or_default().to_string();
                    let app = sp["appProtocol"].as_str().unwrap_or_default().to_string();
                    Some(Some((name, number, protocol(sp).to_string(), app)))
                })
                .collect()
        };
        if ports.is_empty() {
            continue;
        }
        for port in ports {
            by_port
                .entry(port)
                .or_default()
                .insert(entry.0.clone(), entry.1.clone());
        }
        out.pods.insert(meta::name(pod).to_string());
    }
    out.subsets = repack(by_port);
    out
}

/// The addresses (with readiness) that serve a port.
type Signature = Vec<(AddressKey, bool)>;

/// A subset being built: its ports, ready and not-ready addresses.
type Group<'a> = (Vec<Value>, Vec<&'a Value>, Vec<&'a Value>);

/// Upstream's `RepackSubsets`: ports served by the same addresses (with
/// the same readiness) share one subset; addresses sorted by IP, subsets
/// by their addresses.
fn repack(by_port: ByPort) -> Vec<Value> {
    let mut groups: BTreeMap<Signature, Group> = BTreeMap::new();
    for (port, addresses) in &by_port {
        let signature: Signature = addresses
            .iter()
            .map(|(key, (_, ready))| (key.clone(), *ready))
            .collect();
        let group = groups.entry(signature).or_insert_with(|| {
            let ready = addresses.values().filter(|(_, r)| *r).map(|(a, _)| a);
            let not_ready = addresses.values().filter(|(_, r)| !*r).map(|(a, _)| a);
            (Vec::new(), ready.collect(), not_ready.collect())
        });
        if let Some(port) = port {
            group.0.push(port_json(port));
        }
    }
    groups
        .into_values()
        .map(|(ports, ready, not_ready)| {
            let mut subset = json!({});
            if !ready.is_empty() {
                subset["addresses"] = json!(ready);
            }
            if !not_ready.is_empty() {
                subset["notReadyAddresses"] = json!(not_ready);
            }
            if !ports.is_empty() {
                subset["ports"] = json!(ports);
            }
            subset
        })
        .collect()
}

/// Upstream's `truncateEndpoints`: past [`MAX_CAPACITY`] addresses, ready
/// ones are kept first; what is cut is spread over the subsets in
/// proportion to their size (rounded up, the last subsets getting what is
/// left). Whether anything was cut. A subset left without addresses goes
/// (the API refuses one).
fn truncate(subsets: &mut Vec<Value>) -> bool {
    let count = |s: &Value, field: &str| s[field].as_array().map_or(0, Vec::len);
    let ready: usize = subsets.iter().map(|s| count(s, "addresses")).sum();
    let not_ready: usize = subsets.iter().map(|s| count(s, "notReadyAddresses")).sum();
    if ready + not_ready <= MAX_CAPACITY {
        return false;
    }
    let cut_ready = ready > MAX_CAPACITY;
    let (field, room, total) = if cut_ready {
        ("addresses", MAX_CAPACITY, ready)
    } else {
        ("notReadyAddresses", MAX_CAPACITY - ready, not_ready)
    };
    let mut left = room;
    for subset in subsets.iter_mut() {
        let n = count(subset, field);
        let keep = (n * room).div_ceil(total).min(left);
        if let Some(list) = subset[field].as_array_mut() {
            list.truncate(keep);
        }
        left -= keep.min(n);
        let Some(obj) = subset.as_object_mut() else {
            continue;
        };
        if cut_ready {
            obj.remove("notReadyAddresses");
        }
        if obj
            .get(field)
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            obj.remove(field);
        }
    }
    subsets.retain(|s| s.get("addresses").is_some() || s.get("notReadyAddresses").is_some());
    true
}

/// The labels of a Service's Endpoints: the Service's own, the headless
/// label and the manager.
pub fn labels(service: &Value) -> BTreeMap<String, String> {
    let mut labels = copied_labels(service, &[MANAGED_BY_LABEL]);
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

/// Whether the Endpoints object is one this controller writes.
pub fn is_managed(endpoints: &Value) -> bool {
    meta::labels(endpoints)
        .get(MANAGED_BY_LABEL)
        .map(String::as_str)
        == Some(CONTROLLER_NAME)
}

/// What to write of a Service's Endpoints.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create this object.
    Create(Value),
    /// Give the existing object these labels and subsets.
    Update(Content),
}

/// What the controller owns of an Endpoints object.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `subsets`.
    pub subsets: Vec<Value>,
    /// Whether `subsets` were truncated to [`MAX_CAPACITY`].
    pub truncated: bool,
}

impl Content {
    /// Writes this content into `endpoints`; whether anything changed.
    pub fn apply(&self, endpoints: &mut Value) -> bool {
        let before = endpoints.clone();
        endpoints["metadata"]["labels"] = json!(self.labels);
        if self.truncated {
            endpoints["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION] = json!("truncated");
        } else if let Some(annotations) = endpoints
            .pointer_mut("/metadata/annotations")
            .and_then(Value::as_object_mut)
        {
            annotations.remove(OVER_CAPACITY_ANNOTATION);
            if annotations.is_empty()
                && let Some(m) = endpoints["metadata"].as_object_mut()
            {
                m.remove("annotations");
            }
        }
        if !self.subsets.is_empty() {
            endpoints["subsets"] = json!(self.subsets);
        } else if let Some(obj) = endpoints.as_object_mut() {
            // Upstream leaves an empty list out (`omitempty`).
            obj.remove("subsets");
        }
        *endpoints != before
    }
}

/// The write that brings `existing` (the Endpoints named as the Service,
/// if any) to `desired`; `None` when it is as it should be.
pub fn decide(service: &Value, desired: Desired, existing: Option<&Value>) -> Option<Write> {
    let mut subsets = desired.subsets;
    let truncated = truncate(&mut subsets);
    let content = Content {
        labels: labels(service),
        subsets,
        truncated,
    };
    match existing {
        None => {
            let mut obj = json!({"metadata": {
                "name": meta::name(service),
                "namespace": meta::namespace(service),
            }});
            content.apply(&mut obj);
            Some(Write::Create(obj))
        }
        Some(current) => {
            let mut next = current.clone();
            content.apply(&mut next).then_some(Write::Update(content))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn web(spec_extra: Value) -> Value {
        let mut svc = json!({"metadata": {"name": "web", "namespace": "ns", "labels": {"team": "a"}},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.96.0.10", "ports": [
                {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"},
                {"name": "admin", "port": 81, "targetPort": 9000, "protocol": "TCP"}]}});
        if let (Some(spec), Some(extra)) = (svc["spec"].as_object_mut(), spec_extra.as_object()) {
            spec.extend(extra.clone());
        }
        svc
    }

    fn pod(name: &str, ip: &str, ready: bool, http: i64) -> Value {
        let ports = if http == 0 {
            json!([])
        } else {
            json!([{"name": "http", "containerPort": http}])
        };
        json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "podIP": ip, "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
    }

    fn address(name: &str, ip: &str) -> Value {
        json!({"ip": ip, "nodeName": "n1",
            "targetRef": {"kind": "Pod", "namespace": "ns", "name": name, "uid": format!("uid-{name}")}})
    }

    #[test]
    fn ready_and_not_ready_pods_are_repacked_by_the_ports_they_serve() {
        let mut terminating = pod("t", "10.0.0.9", true, 8080);
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = [
            pod("a", "10.0.0.1", true, 8080),
            pod("b", "10.0.0.2", false, 8080),
            pod("c", "10.0.0.3", true, 0),
            terminating,
        ];
        let desired = subsets(&web(json!({})), &pods);
        assert_eq!(
            desired.pods,
            BTreeSet::from(["a", "b", "c"].map(String::from))
        );
        let admin = json!({"name": "admin", "port": 9000, "protocol": "TCP"});
        let http = json!({"name": "http", "port": 8080, "protocol": "TCP"});
        assert_eq!(
            desired.subsets,
            [
                json!({"addresses": [address("a", "10.0.0.1")],
                    "notReadyAddresses": [address("b", "10.0.0.2")], "ports": [http]}),
                // c lacks the named port: only admin.
                json!({"addresses": [address("a", "10.0.0.1"), address("c", "10.0.0.3")],
                    "notReadyAddresses": [address("b", "10.0.0.2")], "ports": [admin]}),
            ]
        );
    }

    #[test]
    fn publishing_not_ready_addresses_lists_every_pod_as_ready() {
        let mut terminating = pod("t", "10.0.0.9", false, 8080);
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = [pod("b", "10.0.0.2", false, 8080), terminating];
        let desired = subsets(&web(json!({"publishNotReadyAddresses": true})), &pods);
        assert_eq!(desired.subsets.len(), 1);
        assert_eq!(
            desired.subsets[0]["addresses"].as_array().map(Vec::len),
            Some(2)
        );
        assert!(desired.subsets[0].get("notReadyAddresses").is_none());
    }

    #[test]
    fn a_headless_service_without_ports_lists_bare_addresses() {
        let svc = json!({"metadata": {"name": "web", "namespace": "ns"},
            "spec": {"selector": {"app": "web"}, "clusterIP": "None"}});
        let desired = subsets(&svc, &[pod("a", "10.0.0.1", true, 8080)]);
        assert_eq!(
            desired.subsets,
            [json!({"addresses": [address("a", "10.0.0.1")]})]
        );
        assert_eq!(labels(&svc)[service_pods::HEADLESS_LABEL], "");
    }

    #[test]
    fn endpoints_are_created_then_rewritten_only_when_they_differ() {
        let svc = web(json!({}));
        let pods = [pod("a", "10.0.0.1", true, 8080)];
        let Some(Write::Create(obj)) = decide(&svc, subsets(&svc, &pods), None) else {
            panic!("a create");
        };
        assert_eq!(obj["metadata"]["name"], "web");
        assert_eq!(
            obj["metadata"]["labels"],
            json!({"team": "a", MANAGED_BY_LABEL: CONTROLLER_NAME})
        );
        assert_eq!(decide(&svc, subsets(&svc, &pods), Some(&obj)), None);
        let Some(Write::Update(content)) = decide(&svc, subsets(&svc, &[]), Some(&obj)) else {
            panic!("an update");
        };
        let mut emptied = obj.clone();
        assert!(content.apply(&mut emptied));
        assert!(
            emptied.get("subsets").is_none(),
            "empty subsets are left out"
        );
    }

    #[test]
    fn endpoints_past_capacity_keep_ready_addresses_first_and_say_so() {
        let svc = web(json!({}));
        let addresses = |n: usize| -> Vec<Value> {
            (0..n)
                .map(|i| json!({"ip": format!("10.1.{}.{}", i / 250, i % 250)}))
                .collect()
        };
        let subsets = |ready: usize, not_ready: usize| Desired {
            subsets: vec![json!({"addresses": addresses(ready),
                "notReadyAddresses": addresses(not_ready), "ports": [{"port": 80}]})],
            pods: BTreeSet::new(),
        };
        let Some(Write::Create(obj)) = decide(&svc, subsets(900, 300), None) else {
            panic!("a create");
        };
        assert_eq!(
            obj["subsets"][0]["addresses"].as_array().map(Vec::len),
            Some(900)
        );
        assert_eq!(
            obj["subsets"][0]["notReadyAddresses"]
                .as_array()
                .map(Vec::len),
            Some(100)
        );
        assert_eq!(
            obj["metadata"]["annotations"][OVER_CAPACITY_ANNOTATION],
            "truncated"
        );
        let Some(Write::Create(obj)) = decide(&svc, subsets(1200, 5), None) else {
            panic!("a create");
        };
        assert_eq!(
            obj["subsets"][0]["addresses"].as_array().map(Vec::len),
            Some(1000)
        );
        assert!(obj["subsets"][0].get("notReadyAddresses").is_none());
        // Back under capacity: the annotation goes.
        let Some(Write::Update(content)) = decide(&svc, subsets(3, 0), Some(&obj)) else {
            panic!("an update");
        };
        let mut next = obj.clone();
        content.apply(&mut next);
        assert!(next["metadata"].get("annotations").is_none(), "{next}");
    }
}
