//! Endpoints (`v1`) and EndpointSlices (`discovery.k8s.io/v1`): where a
//! Service's traffic goes. Addresses must be real, routable endpoints (not
//! the node's own loopback or link-local ranges), ports named when there
//! are several, protocols known.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::metadata::{
    dns1123_label_errors, dns1123_subdomain_errors, go_quote, label_value_errors,
    qualified_name_errors,
};
use crate::net::{family_errors, ip_errors, non_special_ip_errors};
use crate::service::protocol_error;

const MAX_ENDPOINTS: usize = 1000;
const MAX_ADDRESSES: usize = 100;
const MAX_PORTS: usize = 100;
const MAX_ZONE_HINTS: usize = 8;

fn items<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn text<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

fn invalid(path: &str, value: &str, message: &str) -> String {
    format!("{path}: Invalid value: {}: {message}", go_quote(value))
}

fn label_errors(path: &str, value: &str) -> Vec<String> {
    dns1123_label_errors(value)
        .iter()
        .map(|m| invalid(path, value, m))
        .collect()
}

fn node_name_errors(path: &str, obj: &Value) -> Vec<String> {
    let Some(name) = text(obj, "nodeName") else {
        return Vec::new();
    };
    dns1123_subdomain_errors(name)
        .iter()
        .map(|m| invalid(path, name, m))
        .collect()
}

fn app_protocol_errors(path: &str, port: &Value) -> Vec<String> {
    let Some(p) = text(port, "appProtocol") else {
        return Vec::new();
    };
    qualified_name_errors(p)
        .iter()
        .map(|m| invalid(path, p, m))
        .collect()
}

fn protocol_errors(path: &str, port: &Value) -> Vec<String> {
    match text(port, "protocol").filter(|p| !p.is_empty()) {
        None => vec![format!("{path}: Required value")],
        Some(p) => protocol_error(path, Some(p)).into_iter().collect(),
    }
}

fn endpoint_address_errors(path: &str, address: &Value) -> Vec<String> {
    let ip = text(address, "ip").unwrap_or_default();
    let mut errors = ip_errors(&format!("{path}.ip"), ip);
    if let Some(host) = text(address, "hostname").filter(|h| !h.is_empty()) {
        errors.extend(label_errors(&format!("{path}.hostname"), host));
    }
    errors.extend(node_name_errors(&format!("{path}.nodeName"), address));
    errors.extend(non_special_ip_errors(&format!("{path}.ip"), ip));
    errors
}

/// Every problem with an Endpoints object's subsets (ports defaulted).
pub fn validate_endpoints(endpoints: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    for (i, subset) in items(endpoints, "subsets").iter().enumerate() {
        let path = format!("subsets[{i}]");
        let (ready, not_ready) = (
            items(subset, "addresses"),
            items(subset, "notReadyAddresses"),
        );
        if ready.is_empty() && not_ready.is_empty() {
            errors.push(format!(
                "{path}: Required value: must specify `addresses` or `notReadyAddresses`"
            ));
        }
        for (j, a) in ready.iter().enumerate() {
            errors.extend(endpoint_address_errors(
                &format!("{path}.addresses[{j}]"),
                a,
            ));
        }
        for (j, a) in not_ready.iter().enumerate() {
            errors.extend(endpoint_address_errors(
                &format!("{path}.notReadyAddresses[{j}]"),
                a,
            ));
        }
        let ports = items(subset, "ports");
        for (j, port) in ports.iter().enumerate() {
            let at = format!("{path}.ports[{j}]");
            match text(port, "name").filter(|n| !n.is_empty()) {
                None if ports.len() > 1 => errors.push(format!("{at}.name: Required value")),
                None => {}
                Some(name) => errors.extend(label_errors(&format!("{at}.name"), name)),
            }
            let number = port.get("port").and_then(Value::as_i64).unwrap_or(0);
            if !(1..=65535).contains(&number) {
                errors.push(format!(
                    "{at}.port: Invalid value: {number}: must be between 1 and 65535, inclusive"
                ));
            }
            errors.extend(protocol_errors(&format!("{at}.protocol"), port));
            errors.extend(app_protocol_errors(&format!("{at}.appProtocol"), port));
        }
    }
    errors
}

/// Every problem with an EndpointSlice (ports defaulted).
pub fn validate_endpoint_slice(slice: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let address_type = text(slice, "addressType").unwrap_or_default();
    if address_type.is_empty() {
        errors.push("addressType: Required value".to_string());
    } else if !matches!(address_type, "FQDN" | "IPv4" | "IPv6") {
        errors.push(format!(
            "addressType: Unsupported value: {}: supported values: \"FQDN\", \"IPv4\", \"IPv6\"",
            go_quote(address_type)
        ));
    }
    let endpoints = items(slice, "endpoints");
    if endpoints.len() > MAX_ENDPOINTS {
        errors.push(format!(
            "endpoints: Too many: {}: must have at most {MAX_ENDPOINTS} items",
            endpoints.len()
        ));
    } else {
        for (i, endpoint) in endpoints.iter().enumerate() {
            let path = format!("endpoints[{i}]");
            let addresses = items(endpoint, "addresses");
            if addresses.is_empty() {
                errors.push(format!(
                    "{path}.addresses: Required value: must contain at least 1 address"
                ));
            } else if addresses.len() > MAX_ADDRESSES {
                errors.push(format!(
                    "{path}.addresses: Too many: {}: must have at most {MAX_ADDRESSES} items",
                    addresses.len()
                ));
            }
            for (j, a) in addresses.iter().enumerate() {
                let at = format!("{path}.addresses[{j}]");
                let a = a.as_str().unwrap_or_default();
                match address_type {
                    "IPv4" | "IPv6" => {
                        errors.extend(family_errors(&at, a, address_type == "IPv4"));
                        errors.extend(non_special_ip_errors(&at, a));
                    }
                    "FQDN" => errors.extend(fqdn_errors(&at, a)),
                    _ => {}
                }
            }
            if let Some(host) = text(endpoint, "hostname") {
                errors.extend(label_errors(&format!("{path}.hostname"), host));
            }
            errors.extend(node_name_errors(&format!("{path}.nodeName"), endpoint));
            if let Some(hints) = endpoint.get("hints").filter(|h| !h.is_null()) {
                errors.extend(zone_hint_errors(&format!("{path}.hints.forZones"), hints));
            }
        }
    }
    let ports = items(slice, "ports");
    if ports.len() > MAX_PORTS {
        errors.push(format!(
            "ports: Too many: {}: must have at most {MAX_PORTS} items",
            ports.len()
        ));
        return errors;
    }
    let mut names = BTreeSet::new();
    for (i, port) in ports.iter().enumerate() {
        let path = format!("ports[{i}]");
        let name = text(port, "name").unwrap_or_default();
        if !name.is_empty() {
            errors.extend(label_errors(&format!("{path}.name"), name));
        }
        if !names.insert(name) {
            errors.push(format!("{path}.name: Duplicate value: {}", go_quote(name)));
        }
        errors.extend(protocol_errors(&format!("{path}.protocol"), port));
        errors.extend(app_protocol_errors(&format!("{path}.appProtocol"), port));
    }
    errors
}

/// Topology hints: a few distinct zones, each a label value.
fn zone_hint_errors(path: &str, hints: &Value) -> Vec<String> {
    let zones = items(hints, "forZones");
    if zones.len() > MAX_ZONE_HINTS {
        return vec![format!(
            "{path}: Too many: {}: must have at most {MAX_ZONE_HINTS} items",
            zones.len()
        )];
    }
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, zone) in zones.iter().enumerate() {
        let at = format!("{path}[{i}].name");
        let name = text(zone, "name").unwrap_or_default();
        if !seen.insert(name) {
            errors.push(format!("{at}: Duplicate value: {}", go_quote(name)));
        }
        for m in label_value_errors(name) {
            errors.push(invalid(&at, name, &m));
        }
    }
    errors
}

/// Upstream's `IsFullyQualifiedDomainName`: a subdomain of at least two
/// labels (a trailing dot is dropped first).
fn fqdn_errors(path: &str, name: &str) -> Vec<String> {
    if name.is_empty() {
        return vec![format!("{path}: Required value")];
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    let subdomain = dns1123_subdomain_errors(name);
    if !subdomain.is_empty() {
        return vec![invalid(path, name, &subdomain.join(","))];
    }
    if name.split('.').count() < 2 {
        return vec![invalid(
            path,
            name,
            "should be a domain with at least two segments separated by dots",
        )];
    }
    Vec::new()
}

/// The address type of a slice never changes.
pub fn validate_endpoint_slice_update(old: &Value, new: &Value) -> Vec<String> {
    let (before, after) = (
        text(old, "addressType").unwrap_or_default(),
        text(new, "addressType").unwrap_or_default(),
    );
    if before == after {
        return Vec::new();
    }
    vec![invalid("addressType", after, "field is immutable")]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn endpoints_point_at_real_addresses_and_ports() {
        let good = json!({"subsets": [{
            "addresses": [{"ip": "10.1.2.3", "hostname": "web-0", "nodeName": "node-1"}],
            "notReadyAddresses": [{"ip": "fd00::5"}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "dns", "port": 53, "protocol": "UDP"}]
        }]});
        assert!(validate_endpoints(&good).is_empty());
        let bad = json!({"subsets": [
            {"ports": [{"port": 80, "protocol": "TCP"}]},
            {"addresses": [{"ip": "127.0.0.1"}, {"ip": "10.0.0.256"}],
             "ports": [{"port": 0, "protocol": "HTTP"}, {"name": "b", "port": 1, "protocol": "TCP"}]}
        ]});
        assert_eq!(
            validate_endpoints(&bad),
            [
                "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`",
                "subsets[1].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
                "subsets[1].addresses[1].ip: Invalid value: \"10.0.0.256\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
                "subsets[1].addresses[1].ip: Invalid value: \"10.0.0.256\": must be a valid IP address",
                "subsets[1].ports[0].name: Required value",
                "subsets[1].ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
                "subsets[1].ports[0].protocol: Unsupported value: \"HTTP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
    }

    #[test]
    fn slices_match_their_address_type() {
        let good = json!({"addressType": "IPv4",
            "endpoints": [{"addresses": ["10.1.2.3"], "hostname": "web-0", "nodeName": "n1"}],
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]});
        assert!(validate_endpoint_slice(&good).is_empty());
        assert!(
            validate_endpoint_slice(
                &json!({"addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com."]}]})
            )
            .is_empty()
        );
        assert_eq!(
            validate_endpoint_slice(&json!({"endpoints": [{"addresses": []}],
                "ports": [{"name": "a", "protocol": "TCP"}, {"name": "a", "protocol": "ICMP"}]})),
            [
                "addressType: Required value",
                "endpoints[0].addresses: Required value: must contain at least 1 address",
                "ports[1].name: Duplicate value: \"a\"",
                "ports[1].protocol: Unsupported value: \"ICMP\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
            ]
        );
        assert_eq!(
            validate_endpoint_slice(
                &json!({"addressType": "IPv6", "endpoints": [{"addresses": ["10.0.0.1", "::1"]}]})
            ),
            [
                "endpoints[0].addresses[0]: Invalid value: \"10.0.0.1\": must be a valid IPv6 address",
                "endpoints[0].addresses[1]: Invalid value: \"::1\": may not be in the loopback range (127.0.0.0/8, ::1/128)",
            ]
        );
        assert_eq!(
            validate_endpoint_slice(
                &json!({"addressType": "FQDN", "endpoints": [{"addresses": ["localhost"]}]})
            ),
            [
                "endpoints[0].addresses[0]: Invalid value: \"localhost\": should be a domain with at least two segments separated by dots"
            ]
        );
        assert_eq!(
            validate_endpoint_slice(
                &json!({"addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"],
                "hints": {"forZones": [{"name": "zone-a"}, {"name": "zone-a"}, {"name": "b c"}]}}]})
            ),
            [
                "endpoints[0].hints.forZones[1].name: Duplicate value: \"zone-a\"",
                "endpoints[0].hints.forZones[2].name: Invalid value: \"b c\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
            ]
        );
        assert_eq!(
            validate_endpoint_slice(&json!({"addressType": "IP"})),
            [
                "addressType: Unsupported value: \"IP\": supported values: \"FQDN\", \"IPv4\", \"IPv6\""
            ]
        );
        let many: Vec<Value> = (0..101)
            .map(|_| json!({"addresses": ["10.0.0.1"]}))
            .collect();
        let addresses: Vec<String> = (0..101)
            .map(|i| format!("10.0.{}.{}", i / 200, i % 200 + 1))
            .collect();
        assert_eq!(
            validate_endpoint_slice(
                &json!({"addressType": "IPv4", "endpoints": [{"addresses": addresses}]})
            ),
            ["endpoints[0].addresses: Too many: 101: must have at most 100 items"]
        );
        let mut endpoints = many.clone();
        endpoints.resize(1001, json!({"addresses": ["10.0.0.1"]}));
        assert_eq!(
            validate_endpoint_slice(&json!({"addressType": "IPv4", "endpoints": endpoints})),
            ["endpoints: Too many: 1001: must have at most 1000 items"]
        );
        assert_eq!(
            validate_endpoint_slice_update(&good, &json!({"addressType": "IPv6"})),
            ["addressType: Invalid value: \"IPv6\": field is immutable"]
        );
    }
}
