//! What a Service asks for and holds, read from and written to its JSON,
//! and upstream's handling of the allocated fields on update
//! (`patchAllocatedValues`, `dropTypeDependentFields`). Pure: the store is
//! [`super::reservations`]' business.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use super::AllocError;

/// What a Service asks for as its cluster IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpRequest {
    /// An ExternalName Service: no address at all.
    NoIp,
    /// `clusterIP: None`.
    Headless,
    /// Any free address.
    Auto,
    /// This address, as written.
    Explicit(String),
}

/// What one port asks for as its nodePort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortRequest {
    /// Any free port.
    Auto,
    /// This port.
    Explicit(i64),
}

/// The values a stored Service holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Held {
    /// Its cluster IP (not for headless or ExternalName Services).
    pub ip: Option<Ipv4Addr>,
    /// Its nodePorts.
    pub node_ports: BTreeSet<u16>,
}

fn kind(obj: &Value) -> &str {
    obj.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn ports(obj: &Value) -> &[Value] {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn node_port(port: &Value) -> Option<i64> {
    port.get("nodePort")
        .and_then(Value::as_i64)
        .filter(|p| *p != 0)
}

/// NodePort and LoadBalancer Services have nodePorts.
pub fn needs_node_ports(obj: &Value) -> bool {
    matches!(kind(obj), "NodePort" | "LoadBalancer")
}

/// Whether ports without one get a nodePort: a LoadBalancer with
/// `allocateLoadBalancerNodePorts: false` keeps only the explicit ones.
fn allocates_node_ports(obj: &Value) -> bool {
    match kind(obj) {
        "NodePort" => true,
        "LoadBalancer" => obj.pointer("/spec/allocateLoadBalancerNodePorts") != Some(&json!(false)),
        _ => false,
    }
}

/// A LoadBalancer with `externalTrafficPolicy: Local` has a health check
/// nodePort (for the load balancer to find the nodes with endpoints).
fn needs_health_check_port(obj: &Value) -> bool {
    kind(obj) == "LoadBalancer"
        && obj
            .pointer("/spec/externalTrafficPolicy")
            .and_then(Value::as_str)
            == Some("Local")
}

fn health_check_port(obj: &Value) -> Option<i64> {
    obj.pointer("/spec/healthCheckNodePort")
        .and_then(Value::as_i64)
        .filter(|p| *p != 0)
}

/// What `obj` asks for as its health check nodePort, if it has one.
pub fn health_check_request(obj: &Value) -> Option<PortRequest> {
    needs_health_check_port(obj)
        .then(|| health_check_port(obj).map_or(PortRequest::Auto, PortRequest::Explicit))
}

/// Sets the health check nodePort.
pub fn set_health_check_port(obj: &mut Value, port: u16) {
    obj["spec"]["healthCheckNodePort"] = json!(port);
}

fn needs_cluster_ip(obj: &Value) -> bool {
    kind(obj) != "ExternalName"
}

/// The cluster IP as asked for: `clusterIP`, else the first of `clusterIPs`.
fn asked_ip(obj: &Value) -> Option<&str> {
    obj.pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .filter(|ip| !ip.is_empty())
        .or_else(|| {
            obj.pointer("/spec/clusterIPs/0")
                .and_then(Value::as_str)
                .filter(|ip| !ip.is_empty())
        })
}

/// What `obj` asks for as its cluster IP.
pub fn ip_request(obj: &Value) -> IpRequest {
    if !needs_cluster_ip(obj) {
        return IpRequest::NoIp;
    }
    match asked_ip(obj) {
        None => IpRequest::Auto,
        Some("None") => IpRequest::Headless,
        Some(ip) => IpRequest::Explicit(ip.to_string()),
    }
}

/// What each port of `obj` asks for, by index (none for types without
/// nodePorts).
pub fn port_requests(obj: &Value) -> Vec<(usize, PortRequest)> {
    if !needs_node_ports(obj) {
        return Vec::new();
    }
    let automatic = allocates_node_ports(obj);
    ports(obj)
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match node_port(p) {
            Some(n) => Some((i, PortRequest::Explicit(n))),
            None => automatic.then_some((i, PortRequest::Auto)),
        })
        .collect()
}

/// The `port` of the port at `index` (ports with one number but different
/// protocols share one nodePort, as upstream allocates them).
pub fn service_port(obj: &Value, index: usize) -> i64 {
    ports(obj)
        .get(index)
        .and_then(|p| p.get("port"))
        .and_then(Value::as_i64)
        .unwrap_or(0)
}

/// The values `obj` holds once stored.
pub fn held(obj: &Value) -> Held {
    let ip = match ip_request(obj) {
        IpRequest::Explicit(ip) => ip.parse().ok(),
        _ => None,
    };
    let mut node_ports: BTreeSet<u16> = if needs_node_ports(obj) {
        ports(obj)
            .iter()
            .filter_map(node_port)
            .filter_map(|p| u16::try_from(p).ok())
            .collect()
    } else {
        BTreeSet::new()
    };
    if needs_health_check_port(obj) {
        node_ports.extend(health_check_port(obj).and_then(|p| u16::try_from(p).ok()));
    }
    Held { ip, node_ports }
}

/// Upstream's update handling of allocated fields: values a client left
/// out (a `PUT` of an edited copy) are kept from the stored Service, and
/// values of a type the Service no longer has are dropped when the client
/// sent them back unchanged (a type change by patch), so they are
/// released rather than refused.
pub fn carry_over(old: &Value, new: &mut Value) {
    let spec_of = |v: &Value, field: &str| v.pointer(&format!("/spec/{field}")).cloned();
    let drop_unchanged = |new: &mut Value, fields: &[&str]| {
        for field in fields {
            if spec_of(old, field) == spec_of(new, field)
                && let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut)
            {
                spec.remove(*field);
            }
        }
    };
    if needs_cluster_ip(old) && !needs_cluster_ip(new) {
        drop_unchanged(
            new,
            &[
                "clusterIP",
                "clusterIPs",
                "ipFamilies",
                "ipFamilyPolicy",
                "internalTrafficPolicy",
            ],
        );
    }
    if needs_node_ports(old) && !needs_node_ports(new) {
        drop_unchanged(new, &["externalTrafficPolicy"]);
    }
    if needs_health_check_port(old) && !needs_health_check_port(new) {
        drop_unchanged(new, &["healthCheckNodePort"]);
    }
    if needs_health_check_port(old)
        && needs_health_check_port(new)
        && health_check_port(new).is_none()
        && let Some(port) = health_check_port(old)
    {
        new["spec"]["healthCheckNodePort"] = json!(port);
    }
    if kind(old) == "LoadBalancer" && kind(new) != "LoadBalancer" {
        drop_unchanged(new, &["allocateLoadBalancerNodePorts"]);
    }
    if needs_cluster_ip(old) && needs_cluster_ip(new) && asked_ip(new).is_none() {
        for field in ["clusterIP", "clusterIPs"] {
            if let Some(value) = spec_of(old, field) {
                new["spec"][field] = value;
            }
        }
    }
    let old_ports: Vec<Option<i64>> = ports(old).iter().map(node_port).collect();
    let new_ports: Vec<Option<i64>> = ports(new).iter().map(node_port).collect();
    if needs_node_ports(old) && !needs_node_ports(new) && old_ports == new_ports {
        for p in new_ports_mut(new) {
            if let Some(p) = p.as_object_mut() {
                p.remove("nodePort");
            }
        }
    }
    if needs_node_ports(old) && needs_node_ports(new) {
        let used_new: BTreeSet<i64> = new_ports.iter().flatten().copied().collect();
        let by_name: BTreeMap<&str, i64> = ports(old)
            .iter()
            .filter_map(|p| Some((p["name"].as_str().unwrap_or(""), node_port(p)?)))
            .collect();
        let by_name: BTreeMap<String, i64> = by_name
            .into_iter()
            .filter(|(_, n)| !used_new.contains(n))
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for p in new_ports_mut(new) {
            if node_port(p).is_none()
                && let Some(n) = by_name.get(p["name"].as_str().unwrap_or(""))
            {
                p["nodePort"] = json!(n);
            }
        }
    }
}

fn new_ports_mut(obj: &mut Value) -> impl Iterator<Item = &mut Value> {
    obj.pointer_mut("/spec/ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// Field rules that depend on the type, checked where upstream's
/// validation checks them (before anything is reserved): nodePorts only
/// on types that have them, one nodePort per protocol, cluster IPs that
/// are addresses.
pub fn check_fields(obj: &Value) -> Result<(), AllocError> {
    let kind = kind(obj);
    let mut seen = BTreeSet::new();
    for (i, p) in ports(obj).iter().enumerate() {
        let Some(n) = node_port(p) else { continue };
        if !needs_node_ports(obj) {
            return Err(AllocError::Field(format!(
                "spec.ports[{i}].nodePort: Forbidden: may not be used when `type` is '{kind}'"
            )));
        }
        let protocol = p["protocol"].as_str().unwrap_or("TCP");
        if !seen.insert((n, protocol)) {
            return Err(AllocError::Field(format!(
                "spec.ports[{i}].nodePort: Duplicate value: {n}"
            )));
        }
    }
    if let IpRequest::Explicit(ip) = ip_request(obj)
        && ip.parse::<Ipv4Addr>().is_err()
    {
        return Err(invalid_ip(&ip));
    }
    Ok(())
}

/// A cluster IP that is not an (IPv4) address.
pub fn invalid_ip(ip: &str) -> AllocError {
    AllocError::Field(format!(
        "spec.clusterIPs[0]: Invalid value: {ip:?}: must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
    ))
}

/// Upstream's update rule for addresses: a Service that has one keeps
/// it (leaving it out keeps it too, see [`carry_over`]) unless it becomes
/// an ExternalName. The value shown is the new `clusterIPs` list.
pub fn check_update(old: &Value, new: &Value) -> Option<String> {
    let old_ip = asked_ip(old).filter(|_| needs_cluster_ip(old))?;
    let new_ip = asked_ip(new).filter(|_| needs_cluster_ip(new))?;
    if old_ip == new_ip {
        return None;
    }
    let shown = new
        .pointer("/spec/clusterIPs")
        .filter(|ips| ips.as_array().is_some_and(|a| !a.is_empty()))
        .cloned()
        .unwrap_or_else(|| json!([new_ip]));
    Some(format!(
        "spec.clusterIPs[0]: Invalid value: {shown}: may not change once set"
    ))
}

/// Writes the cluster IP fields: an address, or headless (`None`).
/// `ipFamilies` and `ipFamilyPolicy` are filled as a single-stack IPv4
/// cluster fills them, except that a selectorless headless Service gets
/// dual stack with both families unless it says otherwise: upstream allows
/// that even on a single-stack cluster, since nothing is allocated for it.
pub fn set_ip(obj: &mut Value, ip: Option<Ipv4Addr>) {
    let text = ip.map_or_else(|| "None".to_string(), |ip| ip.to_string());
    let selectorless = obj
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .is_none_or(|s| s.is_empty());
    let spec = &mut obj["spec"];
    spec["clusterIP"] = json!(text);
    spec["clusterIPs"] = json!([text]);
    let dual = ip.is_none() && selectorless;
    if spec.get("ipFamilyPolicy").is_none_or(Value::is_null) {
        let policy = if dual {
            "RequireDualStack"
        } else {
            "SingleStack"
        };
        spec["ipFamilyPolicy"] = json!(policy);
    }
    if spec.get("ipFamilies").is_none_or(Value::is_null) {
        spec["ipFamilies"] = json!(["IPv4"]);
    }
    let single = spec["ipFamilyPolicy"] == "SingleStack";
    if dual
        && !single
        && let Some(families) = spec["ipFamilies"].as_array_mut()
        && families.len() < 2
    {
        let other = if families.first() == Some(&json!("IPv6")) {
            "IPv4"
        } else {
            "IPv6"
        };
        families.push(json!(other));
    }
}

/// Sets the nodePort of the port at `index`.
pub fn set_node_port(obj: &mut Value, index: usize, port: u16) {
    if let Some(p) = obj.pointer_mut(&format!("/spec/ports/{index}")) {
        p["nodePort"] = json!(port);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(spec: Value) -> Value {
        json!({"metadata": {"name": "s", "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn requests_follow_the_type() {
        let s = svc(json!({"type": "ClusterIP", "ports": [{"port": 80}]}));
        assert_eq!(ip_request(&s), IpRequest::Auto);
        assert!(port_requests(&s).is_empty());
        let s = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.9",
            "ports": [{"port": 80, "nodePort": 30123}, {"port": 81}]}));
        assert_eq!(ip_request(&s), IpRequest::Explicit("10.96.0.9".into()));
        assert_eq!(
            port_requests(&s),
            [(0, PortRequest::Explicit(30123)), (1, PortRequest::Auto)]
        );
        let s = svc(
            json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80}, {"port": 81, "nodePort": 30001}]}),
        );
        assert_eq!(port_requests(&s), [(1, PortRequest::Explicit(30001))]);
        let s = svc(json!({"type": "ExternalName", "externalName": "x.example"}));
        assert_eq!(ip_request(&s), IpRequest::NoIp);
        let s = svc(json!({"clusterIPs": ["None"], "ports": [{"port": 80}]}));
        assert_eq!(ip_request(&s), IpRequest::Headless);
    }

    #[test]
    fn held_values_are_what_the_type_keeps() {
        let s = svc(json!({"type": "NodePort", "clusterIP": "10.96.0.9",
            "ports": [{"port": 80, "nodePort": 30123}]}));
        assert_eq!(
            held(&s),
            Held {
                ip: Some(Ipv4Addr::new(10, 96, 0, 9)),
                node_ports: [30123].into()
            }
        );
        let headless = svc(json!({"clusterIP": "None"}));
        assert_eq!(held(&headless), Held::default());
    }

    #[test]
    fn a_put_without_allocated_values_keeps_them() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
            "ports": [{"name": "a", "port": 80, "nodePort": 30123}, {"name": "b", "port": 81, "nodePort": 30124}]}),
        );
        let mut new = svc(json!({"type": "NodePort",
            "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 30200}]}));
        carry_over(&old, &mut new);
        assert_eq!(new["spec"]["clusterIP"], "10.96.0.9");
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30123);
        assert_eq!(new["spec"]["ports"][1]["nodePort"], 30200);
    }

    #[test]
    fn a_type_change_drops_unchanged_values_of_the_old_type() {
        let old = svc(
            json!({"type": "NodePort", "clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"],
            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
            "ports": [{"port": 80, "nodePort": 30123}]}),
        );
        let mut to_cluster_ip = old.clone();
        to_cluster_ip["spec"]["type"] = json!("ClusterIP");
        carry_over(&old, &mut to_cluster_ip);
        assert!(to_cluster_ip["spec"]["ports"][0].get("nodePort").is_none());
        assert_eq!(to_cluster_ip["spec"]["clusterIP"], "10.96.0.9");
        assert!(check_fields(&to_cluster_ip).is_ok());

        let mut to_external = old.clone();
        to_external["spec"]["type"] = json!("ExternalName");
        to_external["spec"]["externalName"] = json!("x.example");
        carry_over(&old, &mut to_external);
        assert!(to_external["spec"].get("clusterIP").is_none());
        assert!(to_external["spec"].get("ipFamilies").is_none());
        assert_eq!(ip_request(&to_external), IpRequest::NoIp);
    }

    #[test]
    fn fields_the_type_forbids_are_refused() {
        let s = svc(json!({"type": "ClusterIP", "ports": [{"port": 80, "nodePort": 30123}]}));
        assert_eq!(
            check_fields(&s).expect_err("forbidden").to_string(),
            "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
        );
        let s = svc(json!({"type": "NodePort", "ports": [
            {"port": 80, "nodePort": 30123}, {"name": "b", "port": 81, "nodePort": 30123}]}));
        assert_eq!(
            check_fields(&s).expect_err("duplicate").to_string(),
            "spec.ports[1].nodePort: Duplicate value: 30123"
        );
        let s = svc(json!({"type": "NodePort", "ports": [
            {"port": 53, "nodePort": 30053}, {"port": 53, "protocol": "UDP", "nodePort": 30053}]}));
        assert!(check_fields(&s).is_ok(), "one port for two protocols");
        let s = svc(json!({"clusterIP": "10.96.0.300"}));
        assert!(
            check_fields(&s)
                .expect_err("address")
                .to_string()
                .starts_with(
                    "spec.clusterIPs[0]: Invalid value: \"10.96.0.300\": must be a valid IP address"
                )
        );
    }

    #[test]
    fn local_load_balancers_have_a_health_check_port() {
        let local = svc(
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local",
            "healthCheckNodePort": 30500, "ports": [{"port": 80, "nodePort": 30080}]}),
        );
        assert_eq!(
            health_check_request(&local),
            Some(PortRequest::Explicit(30500))
        );
        assert_eq!(held(&local).node_ports, [30080, 30500].into());
        let mut cluster = local.clone();
        cluster["spec"]["externalTrafficPolicy"] = json!("Cluster");
        assert_eq!(health_check_request(&cluster), None);
        carry_over(&local, &mut cluster);
        assert!(cluster["spec"].get("healthCheckNodePort").is_none());
        let mut left_out = local.clone();
        left_out["spec"]["healthCheckNodePort"] = Value::Null;
        carry_over(&local, &mut left_out);
        assert_eq!(left_out["spec"]["healthCheckNodePort"], 30500);
    }

    #[test]
    fn an_address_may_not_change_once_set() {
        let old = svc(json!({"clusterIP": "10.96.0.9", "clusterIPs": ["10.96.0.9"]}));
        let mut new = old.clone();
        new["spec"]["clusterIP"] = json!("None");
        new["spec"]["clusterIPs"] = json!(["None"]);
        assert_eq!(
            check_update(&old, &new).as_deref(),
            Some("spec.clusterIPs[0]: Invalid value: [\"None\"]: may not change once set")
        );
        assert_eq!(check_update(&old, &old), None);
        let left_out = svc(json!({"ports": [{"port": 80}]}));
        assert_eq!(check_update(&old, &left_out), None);
        let external = svc(json!({"type": "ExternalName", "clusterIP": "10.96.0.9"}));
        assert_eq!(check_update(&old, &external), None);
    }

    #[test]
    fn ip_fields_are_filled_as_a_single_stack_cluster_does() {
        let mut s = svc(json!({"selector": {"app": "x"}}));
        set_ip(&mut s, Some(Ipv4Addr::new(10, 96, 0, 1)));
        assert_eq!(
            s["spec"],
            json!({"selector": {"app": "x"}, "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack"})
        );
        let mut headless = svc(json!({"clusterIP": "None"}));
        set_ip(&mut headless, None);
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
        assert_eq!(headless["spec"]["ipFamilies"], json!(["IPv4", "IPv6"]));
        let mut with_selector = svc(json!({"clusterIP": "None", "selector": {"a": "b"}}));
        set_ip(&mut with_selector, None);
        assert_eq!(with_selector["spec"]["ipFamilyPolicy"], "SingleStack");
        assert_eq!(with_selector["spec"]["ipFamilies"], json!(["IPv4"]));
        let mut single = svc(json!({"clusterIP": "None", "ipFamilyPolicy": "SingleStack"}));
        set_ip(&mut single, None);
        assert_eq!(single["spec"]["ipFamilies"], json!(["IPv4"]));
    }
}
