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
        // SetDefaults_Service: traffic policies by type, and LoadBalancers
        // get nodePorts unless they say otherwise.
        let kind = obj
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind != "ExternalName" {
            set_default(obj, &["spec", "internalTrafficPolicy"], json!("Cluster"));
        }
        if matches!(kind.as_str(), "NodePort" | "LoadBalancer") {
            set_default(obj, &["spec", "externalTrafficPolicy"], json!("Cluster"));
        }
        if kind == "LoadBalancer" {
            set_default(obj, &["spec", "allocateLoadBalancerNodePorts"], json!(true));
        }
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

    /// Upstream's update handling of allocated values (kept when a client
    /// leaves them out, dropped with the type that had them); the values
    /// themselves are reserved where the Service is stored
    /// ([`crate::registry::allocation::reservations::store_service`]).
    fn prepare_write(&self, old: Option<&Value>, new: &mut Value) {
        if let Some(old) = old {
            crate::registry::allocation::service::carry_over(old, new);
        }
    }

    fn validate_update(&self, _rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        let changed = crate::registry::allocation::service::check_update(old, new);
        Ok(changed.into_iter().collect())
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_spec::<Service>(rt, obj, validate_service_spec)
    }

    typed_schema!(Service);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let kind = spec["type"].as_str().unwrap_or("ClusterIP");
        let external = external_ip(kind, spec, status);
        (
            header("Name|Type|Cluster-IP|External-IP|Port(s)|Age|*Selector"),
            vec![
                name,
                kind.into(),
                // Upstream prints the first of clusterIPs (`None` when headless).
                s(spec.pointer("/clusterIPs/0")),
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

/// The EXTERNAL-IP column as upstream's printer fills it: external IPs,
/// for a LoadBalancer its ingress addresses first (`<pending>` without
/// any), for ExternalName the name.
fn external_ip(kind: &str, spec: &Value, status: &Value) -> String {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(String::from)
            .collect()
    };
    let external_ips = strings(&spec["externalIPs"]);
    match kind {
        "ExternalName" => s(spec.get("externalName")),
        "LoadBalancer" => {
            // Ingress addresses as a sorted set (upstream's stringer), not
            // truncated: server-side tables are printed wide.
            let ingress: std::collections::BTreeSet<String> = status
                .pointer("/loadBalancer/ingress")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|i| {
                    let text = |field: &str| i.get(field).and_then(Value::as_str);
                    text("ip")
                        .filter(|a| !a.is_empty())
                        .or_else(|| text("hostname"))
                        .filter(|a| !a.is_empty())
                        .map(String::from)
                })
                .collect();
            let mut all: Vec<String> = ingress.into_iter().collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        _ => "<unknown>".into(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(spec: Value, status: Value) -> Vec<String> {
        let obj = json!({"metadata": {"name": "s"}, "spec": spec, "status": status});
        Rules.columns(SERVICES, &obj).1
    }

    #[test]
    fn columns_read_as_upstreams_printer() {
        let node_port = cells(
            json!({"type": "NodePort", "clusterIP": "10.96.0.5", "clusterIPs": ["10.96.0.5"],
                "ports": [{"port": 80, "nodePort": 30123, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}),
            json!({}),
        );
        assert_eq!(
            node_port[1..5],
            ["NodePort", "10.96.0.5", "<none>", "80:30123/TCP,53/UDP"]
        );
        let pending = cells(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.6"], "ports": [{"port": 443, "nodePort": 30443}]}),
            json!({"loadBalancer": {}}),
        );
        assert_eq!(pending[2..4], ["10.96.0.6", "<pending>"]);
        let ingress = cells(
            json!({"type": "LoadBalancer", "clusterIPs": ["10.96.0.6"], "externalIPs": ["1.2.3.4"]}),
            json!({"loadBalancer": {"ingress": [{"ip": "172.29.1.240"}, {"hostname": "lb.example"}, {"ip": "172.29.1.240"}]}}),
        );
        assert_eq!(ingress[3], "172.29.1.240,lb.example,1.2.3.4");
        let headless = cells(
            json!({"clusterIP": "None", "clusterIPs": ["None"]}),
            json!({}),
        );
        assert_eq!(headless[2..5], ["None", "<none>", "<none>"]);
        let external = cells(
            json!({"type": "ExternalName", "externalName": "db.example.com"}),
            json!({}),
        );
        assert_eq!(external[2..4], ["<none>", "db.example.com"]);
    }
}
