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
        let addrs: Vec<String> = elements(&obj["subsets"])
            .flat_map(|ss| {
                let ports: Vec<i64> = elements(&ss["ports"]).map(|p| n(p.get("port"))).collect();
                elements(&ss["addresses"]).flat_map(move |a| {
                    let ip = a["ip"].as_str().unwrap_or_default().to_string();
                    ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                })
            })
            .collect();
        (
            header("Name|Endpoints|Age"),
            vec![
                name,
                if addrs.is_empty() {
                    "<none>".into()
                } else {
                    addrs.join(",")
                },
                age,
            ],
        )
    }
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
}
