//! Nodes.

use k8s_openapi::api::core::v1::Node;
use serde_json::Value;
use skiff_api_rules::node::{validate_node, validate_node_update};

use super::printing::{Columns, elements, header, row, s};
use super::support::{json_rules, typed_schema};
use crate::registry::resource_type::{Behaviour, ResourceType, rt};

/// `nodes` in `v1`.
pub const NODES: &ResourceType = &rt! {
    "", "v1", "nodes", "node", "Node", false, &["no"], &[], &["status", "proxy"], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    json_rules!(validate_node, validate_node_update);

    typed_schema!(Node);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let ready = elements(&status["conditions"]).find(|c| c["type"] == "Ready");
        let mut st = match ready.and_then(|c| c["status"].as_str()) {
            Some("True") => "Ready".to_string(),
            Some(_) => "NotReady".into(),
            None => "Unknown".into(),
        };
        if spec["unschedulable"].as_bool() == Some(true) {
            st.push_str(",SchedulingDisabled");
        }
        let address = |t: &str| {
            elements(&status["addresses"])
                .find(|a| a["type"] == t)
                .map_or_else(|| "<none>".into(), |a| s(a.get("address")))
        };
        let info = &status["nodeInfo"];
        (
            header(
                "Name|Status|Roles|Age|Version|*Internal-IP|*External-IP|*OS-Image|*Kernel-Version|*Container-Runtime",
            ),
            vec![
                name,
                st,
                "<none>".into(),
                age,
                s(info.get("kubeletVersion")),
                address("InternalIP"),
                address("ExternalIP"),
                s(info.get("osImage")),
                s(info.get("kernelVersion")),
                s(info.get("containerRuntimeVersion")),
            ],
        )
    }
}
