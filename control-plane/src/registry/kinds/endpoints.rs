//! Endpoints and EndpointSlices.

use k8s_openapi::api::core::v1::Endpoints;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};
use skiff_api_rules::endpoints::{validate_endpoint_slice, validate_endpoint_slice_update};

use super::printing::{Columns, elements, header, n, row};
use super::support::{elements_mut, json_rules, set_default, typed_schema};
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `endpoints` in `v1`.
pub const ENDPOINTS: &ResourceType = &rt! {
    "", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], &[], &[], &EndpointsRules
};

/// `endpointslices.discovery.k8s.io` in `discovery.k8s.io/v1`.
pub const ENDPOINTSLICES: &ResourceType = &rt! {
    "discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, &[],
    &[], &[], &EndpointSliceRules
};

/// What the registry does with Endpoints.
pub struct EndpointsRules;

impl Behaviour for EndpointsRules {
    /// Upstream's SetDefaults_EndpointPort: ports speak TCP unless told.
    fn defaults(&self, obj: &mut Value) {
        for subset in elements_mut(obj, "subsets") {
            for port in elements_mut(subset, "ports") {
                set_default(port, &["protocol"], json!("TCP"));
            }
        }
    }

    fn validate(&self, _rt: &ResourceType, obj: &Value) -> Errors {
        Ok(skiff_api_rules::endpoints::validate_endpoints(obj))
    }

    typed_schema!(Endpoints);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        (
            header("Name|Endpoints|Age"),
            vec![name, endpoints_cell(obj), age],
        )
    }
}

/// How many items upstream's printers show before `+ N more...`.
const SHOWN: usize = 3;

/// Upstream's `formatEndpoints`: the ready addresses as `ip:port` (just
/// the IP for a subset without ports), the first three and how many
/// more; `<none>` without subsets.
fn endpoints_cell(obj: &Value) -> String {
    if elements(&obj["subsets"]).next().is_none() {
        return "<none>".into();
    }
    let mut all = Vec::new();
    for subset in elements(&obj["subsets"]) {
        let ips: Vec<&str> = elements(&subset["addresses"])
            .map(|a| a["ip"].as_str().unwrap_or_default())
            .collect();
        let ports: Vec<i64> = elements(&subset["ports"])
            .map(|p| n(p.get("port")))
            .collect();
        if ports.is_empty() {
            all.extend(ips.iter().map(|ip| ip.to_string()));
        }
        for port in ports {
            all.extend(ips.iter().map(|ip| join_host_port(ip, port)));
        }
    }
    let more = all.len().saturating_sub(SHOWN);
    let shown = all.into_iter().take(SHOWN).collect::<Vec<_>>().join(",");
    if more > 0 {
        format!("{shown} + {more} more...")
    } else {
        shown
    }
}

/// Go's `net.JoinHostPort`: IPv6 addresses in brackets.
fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// Upstream's `listWithMoreString`: the first three, how many more, and
/// `<unset>` for none.
fn list_with_more(all: Vec<String>) -> String {
    let more = all.len().saturating_sub(SHOWN);
    let shown = all.into_iter().take(SHOWN).collect::<Vec<_>>().join(",");
    if more > 0 {
        format!("{shown} + {more} more...")
    } else if shown.is_empty() {
        "<unset>".into()
    } else {
        shown
    }
}

/// Upstream's `formatDiscoveryPorts`: each port's number (its name, or
/// `*`, when unset).
fn slice_ports_cell(obj: &Value) -> String {
    list_with_more(
        elements(&obj["ports"])
            .map(|p| match (p["port"].as_i64(), p["name"].as_str()) {
                (Some(port), _) => port.to_string(),
                (None, Some(name)) => name.to_string(),
                (None, None) => "*".to_string(),
            })
            .collect(),
    )
}

/// Upstream's `formatDiscoveryEndpoints`: every endpoint's addresses.
fn slice_endpoints_cell(obj: &Value) -> String {
    list_with_more(
        elements(&obj["endpoints"])
            .flat_map(|e| elements(&e["addresses"]))
            .map(|a| a.as_str().unwrap_or_default().to_string())
            .collect(),
    )
}

/// What the registry does with EndpointSlices.
pub struct EndpointSliceRules;

impl Behaviour for EndpointSliceRules {
    fn defaults(&self, obj: &mut Value) {
        for port in elements_mut(obj, "ports") {
            set_default(port, &["protocol"], json!("TCP"));
            set_default(port, &["name"], json!(""));
        }
    }

    json_rules!(validate_endpoint_slice, validate_endpoint_slice_update);

    typed_schema!(EndpointSlice);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        (
            header("Name|AddressType|Ports|Endpoints|Age"),
            vec![
                name,
                obj["addressType"].as_str().unwrap_or_default().to_string(),
                slice_ports_cell(obj),
                slice_endpoints_cell(obj),
                age,
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(rt: &ResourceType, obj: Value) -> Vec<String> {
        rt.behaviour.columns(rt, &obj).1
    }

    #[test]
    fn endpoints_print_ready_addresses_with_ports_as_upstream() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
             "notReadyAddresses": [{"ip": "10.0.0.9"}],
             "ports": [{"port": 8080}, {"port": 9090}]}]});
        assert_eq!(
            cells(ENDPOINTS, ep)[1],
            "10.0.0.1:8080,10.0.0.2:8080,10.0.0.1:9090 + 1 more..."
        );
        let headless = json!({"metadata": {"name": "h"}, "subsets": [
            {"addresses": [{"ip": "10.0.0.1"}]}]});
        assert_eq!(cells(ENDPOINTS, headless)[1], "10.0.0.1");
        assert_eq!(
            cells(ENDPOINTS, json!({"metadata": {"name": "e"}}))[1],
            "<none>"
        );
        let not_ready = json!({"metadata": {"name": "n"}, "subsets": [
            {"notReadyAddresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]});
        assert_eq!(cells(ENDPOINTS, not_ready)[1], "");
    }

    #[test]
    fn endpoint_slices_print_address_type_ports_and_addresses_as_upstream() {
        let slice = json!({"metadata": {"name": "web-abcde"}, "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8080}, {"name": "x"}],
            "endpoints": [{"addresses": ["10.0.0.1"]}, {"addresses": ["10.0.0.2"]},
                {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}]});
        let row = cells(ENDPOINTSLICES, slice);
        assert_eq!(
            row[..4],
            [
                "web-abcde",
                "IPv4",
                "8080,x",
                "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..."
            ]
        );
        let empty = json!({"metadata": {"name": "web-x"}, "addressType": "IPv4",
            "ports": [], "endpoints": []});
        assert_eq!(cells(ENDPOINTSLICES, empty)[2..4], ["<unset>", "<unset>"]);
    }
}
