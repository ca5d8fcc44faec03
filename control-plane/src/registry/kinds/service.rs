//! Services.

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};
use skiff_api_rules::metadata::NameRule;
use skiff_api_rules::service::validate_service_spec;

use super::printing::{Columns, elements, header, n, row, s, selector_text};
use super::support::{set_default, typed_schema, validate_spec};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `services` in `v1`.
pub const SERVICES: &ResourceType = &rt! {
    "", "v1", "services", "service", "Service", true, &["svc"], ALL, &["status", "proxy"],
    &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "type"], json!("ClusterIP"));
        set_default(obj, &["spec", "sessionAffinity"], json!("None"));
        if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
            for p in ports {
                set_default(p, &["protocol"], json!("TCP"));
                let port = p.get("port").cloned().unwrap_or(Value::Null);
                set_default(p, &["targetPort"], port);
            }
        }
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({"loadBalancer": {}}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_spec::<Service>(rt, obj, validate_service_spec)
    }

    typed_schema!(Service);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let kind = spec["type"].as_str().unwrap_or("ClusterIP");
        let external = match kind {
            "ExternalName" => s(spec.get("externalName")),
            "LoadBalancer" => status
                .pointer("/loadBalancer/ingress/0/ip")
                .and_then(Value::as_str)
                .map_or_else(|| "<pending>".into(), String::from),
            _ => spec["externalIPs"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map_or_else(
                    || "<none>".into(),
                    |a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(",")
                    },
                ),
        };
        (
            header("Name|Type|Cluster-IP|External-IP|Port(s)|Age|*Selector"),
            vec![
                name,
                kind.into(),
                s(spec.get("clusterIP")),
                external,
                service_ports(spec),
                age,
                selector_text(spec.get("selector")),
            ],
        )
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Dns1035
    }
}

fn service_ports(spec: &Value) -> String {
    let ports: Vec<String> = elements(&spec["ports"])
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", n(p.get("port"))),
                None => format!("{}/{proto}", n(p.get("port"))),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}
