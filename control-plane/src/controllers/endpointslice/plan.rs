//! The EndpointSlice controller's decisions, free of the store: the
//! endpoints a Service should have ([`desired`]), grouped by the ports
//! they resolve to, and the creates, updates and deletes that bring its
//! existing managed slices there ([`plan`]) with as little churn as
//! upstream's reconciler: endpoints stay in the slice that holds them,
//! new ones fill slices with room before a slice is created, and a slice
//! is written only when its content changes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::controllers::service_pods::{
    self, copied_labels, find_port, hostname_for, ipv4_addresses, is_ready, node_name, protocol,
    publish_not_ready, should_be_endpoint, target_ref,
};
use crate::meta;

/// The label naming the Service a slice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The label naming who manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// This controller's value of [`MANAGED_BY_LABEL`], as upstream's.
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";
/// Upstream's default `--max-endpoints-per-slice`.
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;
/// The only address type Skiff's pods have.
pub const ADDRESS_TYPE: &str = "IPv4";

/// The node facts an endpoint carries: each known node's zone label.
pub type Zones = HashMap<String, Option<String>>;

/// What a Service's pods make of it.
#[derive(Debug, Default, PartialEq)]
pub struct Desired {
    /// Endpoints by the ports they resolve to (one slice family per
    /// distinct port set), each keyed by its pod's uid.
    pub groups: BTreeMap<PortsKey, (Value, BTreeMap<String, Value>)>,
    /// The pods that are endpoints (for the pod-change index).
    pub pods: BTreeSet<String>,
    /// Pods left out because their node is not known (yet): the Service
    /// is looked at again later, as upstream retries.
    pub missing_nodes: Vec<String>,
}

/// A port set, comparable: (name, port, protocol, appProtocol) each.
pub type PortsKey = Vec<(String, i64, String, String)>;

/// The comparable form of a slice's `ports`.
pub fn ports_key(ports: &Value) -> PortsKey {
    ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["port"].as_i64().unwrap_or(-1),
                protocol(p).to_string(),
                p["appProtocol"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Upstream's `getEndpointPorts`: the Service's ports as resolved on
/// `pod`, leaving out those whose named target port the pod lacks.
pub fn endpoint_ports(service: &Value, pod: &Value) -> Value {
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let number = find_port(pod, sp)?;
            let mut port = json!({
                "name": sp["name"].as_str().unwrap_or_default(),
                "port": number,
                "protocol": protocol(sp),
            });
            if let Some(app) = sp["appProtocol"].as_str() {
                port["appProtocol"] = json!(app);
            }
            Some(port)
        })
        .collect();
    Value::Array(ports)
}

/// Upstream's `podToEndpoint`.
pub fn endpoint(pod: &Value, service: &Value, zones: &Zones) -> Value {
    let serving = is_ready(pod);
    let terminating = meta::deleting(pod);
    // Never ready while terminating, for consumers that read only
    // `ready`, unless the Service publishes not-ready addresses.
    let ready = publish_not_ready(service) || (serving && !terminating);
    let mut ep = json!({
        "addresses": ipv4_addresses(pod),
        "conditions": {"ready": ready, "serving": serving, "terminating": terminating},
        "targetRef": target_ref(pod),
    });
    if let Some(node) = node_name(pod) {
        ep["nodeName"] = json!(node);
        let zone = zones.get(node).and_then(Option::as_deref);
        if let Some(zone) = zone.filter(|z| !z.is_empty()) {
            ep["zone"] = json!(zone);
        }
    }
    if let Some(hostname) = hostname_for(pod, service) {
        ep["hostname"] = json!(hostname);
    }
    ep
}

/// The endpoints `pods` (the Service's namespace's) give a managed
/// Service: every selected pod with an address that is not finished,
/// terminating ones included (with their conditions saying so).
pub fn desired(service: &Value, pods: &[Value], zones: &Zones) -> Desired {
    let mut out = Desired::default();
    let Some(selector) = service_pods::managed_selector(service) else {
        return out;
    };
    for pod in pods {
        if !service_pods::selects(&selector, &meta::labels(pod)) || !should_be_endpoint(pod, true) {
            continue;
        }
        // A pod bound to a node that is not known yet waits for it, as
        // upstream's; unless not-ready addresses are published anyway.
        if let Some(node) = node_name(pod)
            && !zones.contains_key(node)
            && !publish_not_ready(service)
        {
            out.missing_nodes.push(meta::name(pod).to_string());
            continue;
        }
        let ports = endpoint_ports(service, pod);
        let key = ports_key(&ports);
        let group = out
            .groups
            .entry(key)
            .or_insert_with(|| (ports, BTreeMap::new()));
        group
            .1
            .insert(meta::uid(pod).to_string(), endpoint(pod, service, zones));
        out.pods.insert(meta::name(pod).to_string());
    }
    out
}

/// One write [`plan`] asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create this slice (named by `generateName`).
    Create(Value),
    /// Give slice `name` these ports, endpoints, labels and owners.
    Update {
        /// The slice.
        name: String,
        /// Its new content (`ports`, `endpoints`, `metadata.labels`,
        /// `metadata.ownerReferences`).
        content: Content,
    },
    /// Delete slice `name`.
    Delete(String),
}

/// What the controller owns of a slice's content.
#[derive(Debug, Clone, PartialEq)]
pub struct Content {
    /// `ports`.
    pub ports: Value,
    /// `endpoints`.
    pub endpoints: Vec<Value>,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.ownerReferences`.
    pub owners: Value,
}

impl Content {
    /// Writes this content into `slice`; whether anything changed.
    pub fn apply(&self, slice: &mut Value) -> bool {
        let before = slice.clone();
        slice["ports"] = self.ports.clone();
        slice["endpoints"] = Value::Array(self.endpoints.clone());
        slice["addressType"] = json!(ADDRESS_TYPE);
        slice["metadata"]["labels"] = json!(self.labels);
        slice["metadata"]["ownerReferences"] = self.owners.clone();
        *slice != before
    }

    /// A new slice of this content for `service`.
    fn new_slice(&self, service: &Value) -> Value {
        let mut slice = json!({"metadata": {
            "generateName": format!("{}-", meta::name(service)),
            "namespace": meta::namespace(service),
        }});
        self.apply(&mut slice);
        slice
    }
}

/// The labels of a Service's slices: the Service's own but the reserved
/// ones, the headless label, the Service's name and the manager.
pub fn slice_labels(service: &Value) -> BTreeMap<String, String> {
    let mut labels = copied_labels(service, &[SERVICE_NAME_LABEL, MANAGED_BY_LABEL]);
    labels.insert(SERVICE_NAME_LABEL.into(), meta::name(service).into());
    labels.insert(MANAGED_BY_LABEL.into(), CONTROLLER_NAME.into());
    labels
}

/// The Service as its slices' controller (the garbage collector deletes
/// them with it).
pub fn owner_reference(service: &Value) -> Value {
    json!([{
        "apiVersion": "v1",
        "kind": "Service",
        "name": meta::name(service),
        "uid": meta::uid(service),
        "controller": true,
        "blockOwnerDeletion": true,
    }])
}

/// Whether `slice` is one this controller manages.
pub fn is_managed(slice: &Value) -> bool {
    meta::labels(slice)
        .get(MANAGED_BY_LABEL)
        .map(String::as_str)
        == Some(CONTROLLER_NAME)
}

/// Whether `slice` is managed here and controlled by the Service `uid`.
pub fn owned_by(slice: &Value, uid: &str) -> bool {
    is_managed(slice)
        && meta::owner_references(slice).any(|o| {
            o["kind"] == "Service" && o["apiVersion"] == "v1" && o["uid"].as_str() == Some(uid)
        })
}

/// The order endpoints are kept in within a slice: by pod, so that the
/// same endpoints always read the same (no write when nothing changed).
fn sort_endpoints(endpoints: &mut [Value]) {
    endpoints.sort_by(|a, b| {
        let key = |e: &Value| {
            (
                e.pointer("/targetRef/name")
                    .and_then(Value::as_str)
                    .map(String::from),
                e.pointer("/addresses/0")
                    .and_then(Value::as_str)
                    .map(String::from),
            )
        };
        key(a).cmp(&key(b))
    });
}

/// The identity of an endpoint across syncs: its pod's uid.
fn endpoint_id(endpoint: &Value) -> String {
    endpoint
        .pointer("/targetRef/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// One slice as the plan builds it.
struct Slot {
    name: Option<String>,
    before: Option<Content>,
    endpoints: Vec<Value>,
    ports: Value,
}

/// The writes that bring `existing` (the Service's managed slices) to
/// `desired`. See the module documentation.
pub fn plan(service: &Value, desired: Desired, existing: &[Value]) -> Vec<Write> {
    let labels = slice_labels(service);
    let owners = owner_reference(service);
    let mut writes = Vec::new();
    let mut by_ports: BTreeMap<PortsKey, Vec<&Value>> = BTreeMap::new();
    let mut sorted: Vec<&Value> = existing.iter().collect();
    sorted.sort_by_key(|s| meta::name(s).to_string());
    let uid = meta::uid(service);
    for slice in sorted {
        // Another address type, or left by an earlier Service of the name.
        if slice["addressType"] != ADDRESS_TYPE || !owned_by(slice, uid) {
            writes.push(Write::Delete(meta::name(slice).to_string()));
            continue;
        }
        by_ports
            .entry(ports_key(&slice["ports"]))
            .or_default()
            .push(slice);
    }
    let mut slots = Vec::new();
    for (key, (ports, mut wanted)) in desired.groups {
        let mut group: Vec<Slot> = Vec::new();
        for slice in by_ports.remove(&key).unwrap_or_default() {
            let endpoints: Vec<Value> = elements(&slice["endpoints"])
                .filter_map(|e| wanted.remove(&endpoint_id(e)))
                .collect();
            group.push(Slot {
                name: Some(meta::name(slice).to_string()),
                before: Some(content_of(slice)),
                endpoints,
                ports: ports.clone(),
            });
        }
        // New endpoints fill the slices with room, then new slices.
        let mut fresh = wanted.into_values();
        for slot in &mut group {
            while slot.endpoints.len() < MAX_ENDPOINTS_PER_SLICE {
                let Some(e) = fresh.next() else { break };
                slot.endpoints.push(e);
            }
        }
        let rest: Vec<Value> = fresh.collect();
        for chunk in rest.chunks(MAX_ENDPOINTS_PER_SLICE) {
            group.push(Slot {
                name: None,
                before: None,
                endpoints: chunk.to_vec(),
                ports: ports.clone(),
            });
        }
        slots.extend(group);
    }
    // Port sets no pod resolves to any more.
    let mut stale: Vec<&Value> = by_ports.into_values().flatten().collect();
    if slots.is_empty() {
        // Upstream keeps one empty placeholder slice for a Service
        // without endpoints; an existing slice is reused (one already
        // empty first) rather than deleted and created again.
        let reuse = stale
            .iter()
            .position(|s| content_of(s).endpoints.is_empty() && ports_key(&s["ports"]).is_empty())
            .or((!stale.is_empty()).then_some(0));
        let (name, before) = match reuse {
            Some(i) => {
                let slice = stale.remove(i);
                (Some(meta::name(slice).to_string()), Some(content_of(slice)))
            }
            None => (None, None),
        };
        slots.push(Slot {
            name,
            before,
            endpoints: Vec::new(),
            ports: json!([]),
        });
    }
    writes.extend(
        stale
            .iter()
            .map(|s| Write::Delete(meta::name(s).to_string())),
    );
    let placeholder_only = slots.len() == 1 && slots[0].endpoints.is_empty();
    for mut slot in slots {
        // A slice whose endpoints all went is deleted, unless it is the
        // placeholder.
        if slot.endpoints.is_empty() && !placeholder_only {
            if let Some(name) = slot.name {
                writes.push(Write::Delete(name));
            }
            continue;
        }
        sort_endpoints(&mut slot.endpoints);
        let content = Content {
            ports: slot.ports,
            endpoints: slot.endpoints,
            labels: labels.clone(),
            owners: owners.clone(),
        };
        match slot.name {
            None => writes.push(Write::Create(content.new_slice(service))),
            Some(name) if slot.before.as_ref() != Some(&content) => {
                writes.push(Write::Update { name, content })
            }
            Some(_) => {}
        }
    }
    writes
}

fn elements(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

/// The content of an existing slice, as [`Content`] compares it.
fn content_of(slice: &Value) -> Content {
    Content {
        ports: slice.get("ports").cloned().unwrap_or_else(|| json!([])),
        endpoints: elements(&slice["endpoints"]).cloned().collect(),
        labels: meta::labels(slice),
        owners: slice
            .pointer("/metadata/ownerReferences")
            .cloned()
            .unwrap_or(Value::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(spec: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "ns", "uid": "svc-uid",
            "labels": {"team": "a", SERVICE_NAME_LABEL: "spoofed"}},
            "spec": spec})
    }

    fn web() -> Value {
        service(
            json!({"selector": {"app": "web"}, "clusterIP": "10.96.0.10",
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}),
        )
    }

    /// A pod of `app` with `ip` (none when empty), Ready or not, on
    /// `node`, serving `http` on `port` (no such port when 0).
    fn pod(name: &str, app: &str, ip: &str, ready: bool, node: &str, port: i64) -> Value {
        let ports = if port == 0 {
            json!([])
        } else {
            json!([{"name": "http", "containerPort": port}])
        };
        let mut p = json!({
            "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}"),
                "labels": {"app": app}},
            "spec": {"containers": [{"name": "c", "ports": ports}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        });
        if !ip.is_empty() {
            p["status"]["podIP"] = json!(ip);
        }
        if !node.is_empty() {
            p["spec"]["nodeName"] = json!(node);
        }
        p
    }

    fn zones() -> Zones {
        Zones::from([
            ("n1".to_string(), Some("zone-a".to_string())),
            ("n2".to_string(), None),
        ])
    }

    fn created(writes: &[Write]) -> Vec<&Value> {
        writes
            .iter()
            .filter_map(|w| match w {
                Write::Create(s) => Some(s),
                _ => None,
            })
            .collect()
    }

    /// The slice a create made, as the store would hold it.
    fn stored(slice: &Value, name: &str) -> Value {
        let mut s = slice.clone();
        s["metadata"]["name"] = json!(name);
        s
    }

    #[test]
    fn endpoints_carry_address_conditions_node_zone_and_pod() {
        let mut terminating = pod("c", "web", "10.0.0.3", true, "n2", 8080);
        terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        let pods = [
            pod("a", "web", "10.0.0.1", true, "n1", 8080),
            pod("b", "web", "10.0.0.2", false, "", 8080),
            terminating,
            pod("d", "web", "", true, "n1", 8080),
            pod("e", "db", "10.0.0.5", true, "n1", 8080),
        ];
        let desired = desired(&web(), &pods, &zones());
        assert_eq!(
            desired.pods,
            BTreeSet::from(["a", "b", "c"].map(String::from))
        );
        let (ports, endpoints) = desired.groups.values().next().expect("one port set");
        assert_eq!(
            ports,
            &json!([{"name": "http", "port": 8080, "protocol": "TCP"}])
        );
        assert_eq!(
            endpoints["uid-a"],
            json!({"addresses": ["10.0.0.1"],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "nodeName": "n1", "zone": "zone-a",
                "targetRef": {"kind": "Pod", "namespace": "ns", "name": "a", "uid": "uid-a"}})
        );
        assert_eq!(
            endpoints["uid-b"]["conditions"],
            json!({"ready": false, "serving": false, "terminating": false})
        );
        assert!(endpoints["uid-b"].get("nodeName").is_none());
        assert_eq!(
            endpoints["uid-c"]["conditions"],
            json!({"ready": false, "serving": true, "terminating": true}),
            "a terminating pod is listed, serving but not ready"
        );
        assert!(endpoints["uid-c"].get("zone").is_none(), "n2 has no zone");
    }

    #[test]
    fn publishing_not_ready_addresses_makes_every_endpoint_ready() {
        let mut svc = web();
        svc["spec"]["publishNotReadyAddresses"] = json!(true);
        let pods = [pod("b", "web", "10.0.0.2", false, "gone", 8080)];
        let desired = desired(&svc, &pods, &zones());
        let (_, endpoints) = desired.groups.values().next().expect("group");
        assert_eq!(
            endpoints["uid-b"]["conditions"],
            json!({"ready": true, "serving": false, "terminating": false})
        );
        assert!(desired.missing_nodes.is_empty());
    }

    #[test]
    fn pods_on_unknown_nodes_wait_for_them() {
        let pods = [pod("a", "web", "10.0.0.1", true, "gone", 8080)];
        let desired = desired(&web(), &pods, &zones());
        assert!(desired.groups.is_empty());
        assert_eq!(desired.missing_nodes, ["a"]);
    }

    #[test]
    fn hostname_is_set_for_pods_under_the_service_subdomain() {
        let mut p = pod("a", "web", "10.0.0.1", true, "n1", 8080);
        p["spec"]["hostname"] = json!("web-0");
        p["spec"]["subdomain"] = json!("web");
        let ep = endpoint(&p, &web(), &zones());
        assert_eq!(ep["hostname"], "web-0");
        p["spec"]["subdomain"] = json!("other");
        assert!(endpoint(&p, &web(), &zones()).get("hostname").is_none());
    }

    #[test]
    fn pods_resolving_named_ports_differently_get_a_slice_per_port_set() {
        let pods = [
            pod("a", "web", "10.0.0.1", true, "n1", 8080),
            pod("b", "web", "10.0.0.2", true, "n1", 9090),
            pod("c", "web", "10.0.0.3", true, "n1", 0),
        ];
        let desired = desired(&web(), &pods, &zones());
        let writes = plan(&web(), desired, &[]);
        let mut slices: Vec<(String, usize)> = created(&writes)
            .iter()
            .map(|s| {
                (
                    s["ports"].to_string(),
                    s["endpoints"].as_array().map_or(0, Vec::len),
                )
            })
            .collect();
        slices.sort();
        assert_eq!(
            slices,
            [
                ("[]".to_string(), 1),
                (
                    r#"[{"name":"http","port":8080,"protocol":"TCP"}]"#.to_string(),
                    1
                ),
                (
                    r#"[{"name":"http","port":9090,"protocol":"TCP"}]"#.to_string(),
                    1
                ),
            ],
            "the pod without the named port has an empty port set"
        );
    }

    #[test]
    fn a_new_slice_is_labelled_owned_and_named_after_the_service() {
        let pods = [pod("a", "web", "10.0.0.1", true, "n1", 8080)];
        let writes = plan(&web(), desired(&web(), &pods, &zones()), &[]);
        let [slice] = created(&writes)[..] else {
            panic!("one create: {writes:?}");
        };
        assert_eq!(slice["metadata"]["generateName"], "web-");
        assert_eq!(slice["metadata"]["namespace"], "ns");
        assert_eq!(slice["addressType"], "IPv4");
        assert_eq!(
            slice["metadata"]["labels"],
            json!({"team": "a", SERVICE_NAME_LABEL: "web", MANAGED_BY_LABEL: CONTROLLER_NAME})
        );
        assert_eq!(
            slice["metadata"]["ownerReferences"],
            json!([{"apiVersion": "v1", "kind": "Service", "name": "web", "uid": "svc-uid",
                "controller": true, "blockOwnerDeletion": true}])
        );
    }

    #[test]
    fn the_plan_is_idempotent_and_moves_only_what_changed() {
        let mut pods = vec![
            pod("a", "web", "10.0.0.1", true, "n1", 8080),
            pod("b", "web", "10.0.0.2", true, "n1", 8080),
        ];
        let writes = plan(&web(), desired(&web(), &pods, &zones()), &[]);
        let existing = vec![stored(created(&writes)[0], "web-1")];
        assert_eq!(
            plan(&web(), desired(&web(), &pods, &zones()), &existing),
            [],
            "nothing changed, nothing written"
        );
        pods[1] = pod("b", "web", "10.0.0.2", false, "n1", 8080);
        let writes = plan(&web(), desired(&web(), &pods, &zones()), &existing);
        let [Write::Update { name, content }] = &writes[..] else {
            panic!("one update: {writes:?}");
        };
        assert_eq!(name, "web-1");
        assert_eq!(content.endpoints[1]["conditions"]["ready"], false);
    }

    #[test]
    fn slices_hold_at_most_a_hundred_endpoints_and_fill_before_creating() {
        let many: Vec<Value> = (0..150)
            .map(|i| {
                pod(
                    &format!("p{i:03}"),
                    "web",
                    &format!("10.0.{}.{}", i / 200, i % 200),
                    true,
                    "n1",
                    8080,
                )
            })
            .collect();
        let writes = plan(&web(), desired(&web(), &many, &zones()), &[]);
        let mut sizes: Vec<usize> = created(&writes)
            .iter()
            .map(|s| s["endpoints"].as_array().map_or(0, Vec::len))
            .collect();
        sizes.sort();
        assert_eq!(sizes, [50, 100]);
        // One more pod goes into the slice with room, not a new one.
        let existing: Vec<Value> = created(&writes)
            .iter()
            .enumerate()
            .map(|(i, s)| stored(s, &format!("web-{i}")))
            .collect();
        let mut more = many.clone();
        more.push(pod("q", "web", "10.0.9.9", true, "n1", 8080));
        let writes = plan(&web(), desired(&web(), &more, &zones()), &existing);
        assert_eq!(writes.len(), 1, "{writes:?}");
        assert!(
            matches!(&writes[0], Write::Update { content, .. } if content.endpoints.len() == 51)
        );
    }

    #[test]
    fn a_service_without_endpoints_keeps_one_empty_placeholder() {
        let writes = plan(&web(), Desired::default(), &[]);
        let [slice] = created(&writes)[..] else {
            panic!("a placeholder: {writes:?}");
        };
        assert_eq!(slice["ports"], json!([]));
        assert_eq!(slice["endpoints"], json!([]));
        let placeholder = stored(slice, "web-p");
        assert_eq!(
            plan(
                &web(),
                Desired::default(),
                std::slice::from_ref(&placeholder)
            ),
            []
        );
        // The last pod goes: the placeholder stays, its slice goes.
        let pods = [pod("a", "web", "10.0.0.1", true, "n1", 8080)];
        let full = stored(
            created(&plan(&web(), desired(&web(), &pods, &zones()), &[]))[0],
            "web-a",
        );
        let writes = plan(
            &web(),
            Desired::default(),
            &[full.clone(), placeholder.clone()],
        );
        assert_eq!(writes, [Write::Delete("web-a".into())]);
        // Pods come: the placeholder goes, a slice with them is created.
        let writes = plan(&web(), desired(&web(), &pods, &zones()), &[placeholder]);
        assert_eq!(created(&writes).len(), 1);
        assert!(writes.contains(&Write::Delete("web-p".into())));
    }

    #[test]
    fn slices_of_an_earlier_service_of_the_name_are_replaced() {
        let pods = [pod("a", "web", "10.0.0.1", true, "n1", 8080)];
        let mut old = stored(
            created(&plan(&web(), desired(&web(), &pods, &zones()), &[]))[0],
            "web-old",
        );
        old["metadata"]["ownerReferences"][0]["uid"] = json!("old-uid");
        let writes = plan(&web(), desired(&web(), &pods, &zones()), &[old]);
        assert!(writes.contains(&Write::Delete("web-old".into())));
        assert_eq!(created(&writes).len(), 1);
    }
}
