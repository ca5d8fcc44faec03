//! Namespaces.

use serde_json::{Value, json};
use skiff_api_rules::metadata::NameRule;

use super::PLAIN;
use super::printing::{age_of, col, s};
use super::support::{round, set_default};
use crate::registry::resource_type::{Behaviour, Columns, ResourceType, rt};

/// `namespaces` in `v1`.
pub const NAMESPACES: &ResourceType = &rt!(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    false,
    &["ns"],
    &[],
    &["status", "finalize"],
    &BEHAVIOUR,
);

fn defaults(obj: &mut Value) {
    set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
    set_default(obj, &["status", "phase"], json!("Active"));
}

fn initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({"phase": "Active"}))
}

fn validate(_rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::namespace::validate_namespace(obj))
}

fn columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let status = &obj["status"];
    (
        vec![col("Name", 0), col("Status", 0), col("Age", 0)],
        vec![name, s(status.get("phase")), age],
    )
}

const BEHAVIOUR: Behaviour = Behaviour {
    defaults: defaults,
    initial_status: initial_status,
    validate: validate,
    round_trip: round::<k8s_openapi::api::core::v1::Namespace>,
    columns: columns,
    name_rule: NameRule::Label,
    ..PLAIN
};
