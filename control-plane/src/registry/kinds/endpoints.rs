//! Endpoints and EndpointSlices.

use serde_json::{Value, json};

use super::PLAIN;
use super::printing::{age_of, col, n, s};
use super::support::{round, set_default};
use crate::registry::resource_type::{Behaviour, Columns, ResourceType, rt};

/// `endpoints` in `v1`.
pub const ENDPOINTS: &ResourceType = &rt!(
    "",
    "v1",
    "endpoints",
    "endpoints",
    "Endpoints",
    true,
    &["ep"],
    &[],
    &[],
    &ENDPOINTS_BEHAVIOUR,
);

/// `endpointslices.discovery.k8s.io` in `discovery.k8s.io/v1`.
pub const ENDPOINTSLICES: &ResourceType = &rt!(
    "discovery.k8s.io",
    "v1",
    "endpointslices",
    "endpointslice",
    "EndpointSlice",
    true,
    &[],
    &[],
    &[],
    &SLICE_BEHAVIOUR,
);

/// Upstream's SetDefaults_EndpointPort: ports speak TCP unless told.
fn endpoints_defaults(obj: &mut Value) {
    for subset in obj
        .get_mut("subsets")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        for port in subset
            .get_mut("ports")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            set_default(port, &["protocol"], json!("TCP"));
        }
    }
}

fn endpoints_validate(_rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::endpoints::validate_endpoints(obj))
}

fn endpoints_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let addrs: Vec<String> = obj["subsets"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ss| {
            let ports: Vec<i64> = ss["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| n(p.get("port")))
                .collect();
            ss["addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(move |a| {
                    let ip = a["ip"].as_str().unwrap_or_default().to_string();
                    ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                })
        })
        .collect();
    (
        vec![col("Name", 0), col("Endpoints", 0), col("Age", 0)],
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

const ENDPOINTS_BEHAVIOUR: Behaviour = Behaviour {
    defaults: endpoints_defaults,
    validate: endpoints_validate,
    round_trip: round::<k8s_openapi::api::core::v1::Endpoints>,
    columns: endpoints_columns,
    ..PLAIN
};

fn slice_defaults(obj: &mut Value) {
    for port in obj
        .get_mut("ports")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        set_default(port, &["protocol"], json!("TCP"));
        set_default(port, &["name"], json!(""));
    }
}

fn slice_validate(_rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::endpoints::validate_endpoint_slice(obj))
}

fn slice_validate_update(
    _rt: &ResourceType,
    old: &Value,
    new: &Value,
) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::endpoints::validate_endpoint_slice_update(
        old, new,
    ))
}

const SLICE_BEHAVIOUR: Behaviour = Behaviour {
    defaults: slice_defaults,
    validate: slice_validate,
    validate_update: slice_validate_update,
    round_trip: round::<k8s_openapi::api::discovery::v1::EndpointSlice>,
    ..PLAIN
};
