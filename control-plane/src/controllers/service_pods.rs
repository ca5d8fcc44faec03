//! What the EndpointSlice and Endpoints controllers both know of Services
//! and the pods they select: which Services a controller manages, which
//! pods count as endpoints, how a Service port resolves on a pod, and
//! which Services a pod change concerns ([`Memberships`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde::Deserialize;
use serde_json::{Value, json};

use super::runtime::ObjectRef;
use crate::meta;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::{Event, EventKind, StoreError};

/// The kind of the key both controllers reconcile.
pub const SERVICE: &str = "Service";

/// A Service's pod selector, when it has one the controllers act on:
/// `None` for selectorless Services (their endpoints are written by hand)
/// and ExternalName ones (they get none). An empty selector counts as
/// none, as upstream reads it back from storage (protobuf drops an empty
/// map).
pub fn managed_selector(service: &Value) -> Option<BTreeMap<String, String>> {
    if service.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName") {
        return None;
    }
    let selector: BTreeMap<String, String> = service
        .pointer("/spec/selector")?
        .as_object()?
        .iter()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect();
    (!selector.is_empty()).then_some(selector)
}

/// Whether `selector` (a Service's equality selector) selects `labels`.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Upstream's `IsPodReady`: the Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Succeeded or Failed: a pod that will never serve again.
pub fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's IPv4 addresses (`status.podIPs`, else `status.podIP`),
/// rewritten in canonical form as upstream re-parses them.
pub fn ipv4_addresses(pod: &Value) -> Vec<String> {
    let listed: Vec<&str> = pod
        .pointer("/status/podIPs")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().filter_map(|ip| ip["ip"].as_str()).collect())
        .unwrap_or_default();
    let candidates = if listed.is_empty() {
        pod.pointer("/status/podIP")
            .and_then(Value::as_str)
            .into_iter()
            .collect()
    } else {
        listed
    };
    candidates
        .into_iter()
        .filter_map(|ip| ip.parse::<Ipv4Addr>().ok())
        .map(|ip| ip.to_string())
        .collect()
}

/// Upstream's `ShouldPodBeInEndpoints`: not terminal, has an address, and
/// (unless `include_terminating`) not being deleted.
pub fn should_be_endpoint(pod: &Value, include_terminating: bool) -> bool {
    !is_terminal(pod)
        && !ipv4_addresses(pod).is_empty()
        && (include_terminating || !meta::deleting(pod))
}

/// Upstream's `ShouldSetHostname`: the pod names itself under the Service
/// (`hostname` set, `subdomain` the Service's name, same namespace).
pub fn hostname_for(pod: &Value, service: &Value) -> Option<String> {
    let hostname = pod.pointer("/spec/hostname").and_then(Value::as_str)?;
    let subdomain = pod.pointer("/spec/subdomain").and_then(Value::as_str);
    (!hostname.is_empty()
        && subdomain == Some(meta::name(service))
        && meta::namespace(pod) == meta::namespace(service))
    .then(|| hostname.to_string())
}

/// Whether the Service has a cluster IP (not headless).
pub fn has_cluster_ip(service: &Value) -> bool {
    service
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .is_some_and(|ip| !ip.is_empty() && ip != "None")
}

/// The label upstream puts on the endpoints of a headless Service.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// `spec.publishNotReadyAddresses`.
pub fn publish_not_ready(service: &Value) -> bool {
    service
        .pointer("/spec/publishNotReadyAddresses")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// A Service port's protocol (TCP unless told).
pub fn protocol(port: &Value) -> &str {
    port["protocol"].as_str().unwrap_or("TCP")
}

/// Upstream's `FindPort`: the port a Service port's `targetPort` means on
/// `pod`. A number is itself (an unset targetPort is the port); a name is
/// looked up in the pod's containers' ports (and sidecars', init
/// containers with `restartPolicy: Always`) of the same protocol; `None`
/// when no container has it.
pub fn find_port(pod: &Value, service_port: &Value) -> Option<i64> {
    let target = service_port
        .get("targetPort")
        .filter(|t| !t.is_null())
        .unwrap_or(&service_port["port"]);
    if let Some(number) = target.as_i64() {
        return Some(number);
    }
    let name = target.as_str()?;
    if let Ok(number) = name.parse::<i64>() {
        return Some(number);
    }
    let wanted = protocol(service_port);
    let sidecars = pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c["restartPolicy"] == "Always");
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(sidecars)
        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
        .find(|p| p["name"].as_str() == Some(name) && protocol(p) == wanted)
        .and_then(|p| p["containerPort"].as_i64())
}

/// `targetRef` of a pod's endpoint.
pub fn target_ref(pod: &Value) -> Value {
    json!({
        "kind": "Pod",
        "namespace": meta::namespace(pod),
        "name": meta::name(pod),
        "uid": meta::uid(pod),
    })
}

/// Node name the pod is bound to, if any.
pub fn node_name(pod: &Value) -> Option<&str> {
    pod.pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
}

/// The Service labels the controllers copy onto what they write, and the
/// headless label (upstream's `setEndpointSliceLabels` and the Endpoints
/// controller's labels), without the keys in `reserved`.
pub fn copied_labels(service: &Value, reserved: &[&str]) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = meta::labels(service)
        .into_iter()
        .filter(|(k, _)| k != HEADLESS_LABEL && !reserved.contains(&k.as_str()))
        .collect();
    if !has_cluster_ip(service) {
        labels.insert(HEADLESS_LABEL.to_string(), String::new());
    }
    labels
}

/// Whether `namespace` is being deleted: creates there are refused, and
/// upstream's controllers drop the Service rather than retry (its
/// deletion follows).
pub async fn namespace_terminating(objects: &Objects, namespace: &str) -> Result<bool, StoreError> {
    let ns = objects.find(kinds::NAMESPACES, None, namespace).await?;
    Ok(ns.is_some_and(|ns| {
        meta::deleting(&ns)
            || ns.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
    }))
}

/// A pod change as the pod watch decodes it: who, and its labels now
/// (the last ones for a deletion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodChange {
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
}

impl PodChange {
    /// Reads only the pod's name and labels from a watch event.
    pub fn of(event: &Event) -> Option<Self> {
        #[derive(Deserialize)]
        struct Head {
            metadata: HeadMeta,
        }
        #[derive(Deserialize)]
        struct HeadMeta {
            name: String,
            #[serde(default)]
            namespace: Option<String>,
            #[serde(default)]
            labels: Option<BTreeMap<String, String>>,
        }
        let head: Head = serde_json::from_slice(&event.value).ok()?;
        Some(Self {
            namespace: head.metadata.namespace.unwrap_or_else(|| "default".into()),
            name: head.metadata.name,
            labels: head.metadata.labels.unwrap_or_default(),
        })
    }
}

/// A Service's key from a watch event on Services.
pub fn service_key(event: &Event) -> Option<ObjectRef> {
    let obj = super::metadata_of(event)?;
    Some(ObjectRef::of(SERVICE, &obj))
}

/// Whether a watch event is a deletion.
pub fn deleted(event: &Event) -> bool {
    event.kind == EventKind::Deleted
}

/// What a controller last saw of each managed Service: its selector and
/// the pods it made endpoints of. A pod change concerns the Services
/// whose selector matches its labels now and those whose endpoints hold
/// it (its old labels matched), as upstream's
/// `GetServicesToUpdateOnPodChange` finds from the old and new pod.
#[derive(Debug, Default)]
pub struct Memberships {
    by_namespace: HashMap<String, HashMap<String, Member>>,
}

#[derive(Debug, Default)]
struct Member {
    selector: BTreeMap<String, String>,
    pods: BTreeSet<String>,
}

impl Memberships {
    /// Records a reconcile's view of `key`: its selector and endpoint pods.
    pub fn record(
        &mut self,
        key: &ObjectRef,
        selector: BTreeMap<String, String>,
        pods: BTreeSet<String>,
    ) {
        self.by_namespace
            .entry(key.namespace.clone())
            .or_default()
            .insert(key.name.clone(), Member { selector, pods });
    }

    /// Drops `key` (deleted, or no longer managed).
    pub fn forget(&mut self, key: &ObjectRef) {
        if let Some(services) = self.by_namespace.get_mut(&key.namespace) {
            services.remove(&key.name);
        }
    }

    /// The Services a pod change concerns.
    pub fn concerned(&self, pod: &PodChange) -> Vec<ObjectRef> {
        let Some(services) = self.by_namespace.get(&pod.namespace) else {
            return Vec::new();
        };
        services
            .iter()
            .filter(|(_, m)| selects(&m.selector, &pod.labels) || m.pods.contains(&pod.name))
            .map(|(name, _)| ObjectRef::new(SERVICE, pod.namespace.clone(), name.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_services_with_a_selector_are_managed() {
        let svc = |spec: Value| json!({"spec": spec});
        assert_eq!(
            managed_selector(&svc(json!({"selector": {"app": "web"}}))),
            Some(labels(&[("app", "web")]))
        );
        assert_eq!(managed_selector(&svc(json!({}))), None);
        assert_eq!(managed_selector(&svc(json!({"selector": {}}))), None);
        assert_eq!(
            managed_selector(&svc(
                json!({"type": "ExternalName", "selector": {"app": "web"}})
            )),
            None
        );
    }

    #[test]
    fn target_ports_resolve_by_number_or_container_port_name_and_protocol() {
        let pod = json!({"spec": {
            "containers": [{"name": "a", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 5353, "protocol": "UDP"}]}],
            "initContainers": [
                {"name": "side", "restartPolicy": "Always", "ports": [{"name": "metrics", "containerPort": 9090}]},
                {"name": "init", "ports": [{"name": "setup", "containerPort": 7000}]}]}});
        assert_eq!(
            find_port(&pod, &json!({"port": 80, "targetPort": 8081})),
            Some(8081)
        );
        assert_eq!(find_port(&pod, &json!({"port": 80})), Some(80));
        assert_eq!(
            find_port(&pod, &json!({"port": 80, "targetPort": "http"})),
            Some(8080)
        );
        assert_eq!(
            find_port(&pod, &json!({"port": 53, "targetPort": "dns"})),
            None,
            "TCP wanted, the container port is UDP"
        );
        assert_eq!(
            find_port(
                &pod,
                &json!({"port": 53, "protocol": "UDP", "targetPort": "dns"})
            ),
            Some(5353)
        );
        assert_eq!(
            find_port(&pod, &json!({"port": 1, "targetPort": "metrics"})),
            Some(9090)
        );
        assert_eq!(
            find_port(&pod, &json!({"port": 1, "targetPort": "setup"})),
            None,
            "plain init containers serve nothing"
        );
    }

    #[test]
    fn pods_without_an_address_or_finished_are_no_endpoints() {
        let pod = |status: Value, deleting: bool| {
            let mut p = json!({"metadata": {"name": "p"}, "status": status});
            if deleting {
                p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
            }
            p
        };
        assert!(should_be_endpoint(
            &pod(json!({"podIP": "10.0.0.1"}), false),
            false
        ));
        assert!(!should_be_endpoint(&pod(json!({}), false), true));
        assert!(!should_be_endpoint(
            &pod(json!({"podIP": "10.0.0.1", "phase": "Succeeded"}), false),
            true
        ));
        assert!(!should_be_endpoint(
            &pod(json!({"podIP": "10.0.0.1"}), true),
            false
        ));
        assert!(should_be_endpoint(
            &pod(json!({"podIP": "10.0.0.1"}), true),
            true
        ));
        assert_eq!(
            ipv4_addresses(&pod(
                json!({"podIP": "10.0.0.1", "podIPs": [{"ip": "fd00::1"}, {"ip": "10.0.0.1"}]}),
                false
            )),
            ["10.0.0.1"]
        );
    }

    #[test]
    fn a_pod_change_concerns_services_selecting_it_now_or_holding_it() {
        let mut m = Memberships::default();
        let web = ObjectRef::new(SERVICE, "ns", "web");
        let api = ObjectRef::new(SERVICE, "ns", "api");
        m.record(&web, labels(&[("app", "web")]), BTreeSet::new());
        m.record(
            &api,
            labels(&[("app", "api")]),
            BTreeSet::from(["p".to_string()]),
        );
        let change = |ns: &str, app: &str| PodChange {
            namespace: ns.into(),
            name: "p".into(),
            labels: labels(&[("app", app)]),
        };
        let mut concerned = m.concerned(&change("ns", "web"));
        concerned.sort();
        // Relabelled from api to web: both.
        assert_eq!(concerned, [api.clone(), web.clone()]);
        assert!(m.concerned(&change("other", "web")).is_empty());
        m.forget(&api);
        assert_eq!(m.concerned(&change("ns", "db")), Vec::<ObjectRef>::new());
    }
}
