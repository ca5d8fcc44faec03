//! ReplicaSets and ReplicationControllers.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use serde_json::{Value, json};
use skiff_api_rules::workloads::{TemplateRestart, validate_controller};

use super::PLAIN;
use super::pod::default_template;
use super::printing::{age_of, col, containers_images, n, s, selector_text};
use super::support::{decode, round, selector_immutable, set_default};
use crate::registry::resource_type::{ALL, Behaviour, Columns, ResourceType, rt};

/// `replicationcontrollers` in `v1`.
pub const REPLICATIONCONTROLLERS: &ResourceType = &rt!(
    "",
    "v1",
    "replicationcontrollers",
    "replicationcontroller",
    "ReplicationController",
    true,
    &["rc"],
    ALL,
    &["status", "scale"],
    &CONTROLLER_BEHAVIOUR,
);

/// `replicasets.apps` in `apps/v1`.
pub const REPLICASETS: &ResourceType = &rt!(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    true,
    &["rs"],
    ALL,
    &["status", "scale"],
    &REPLICA_SET_BEHAVIOUR,
);

fn replica_set_defaults(obj: &mut Value) {
    set_default(obj, &["spec", "replicas"], json!(1));
    default_template(obj, &["spec", "template"], true);
}

fn replica_set_initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({"replicas": 0}))
}

fn replica_set_validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let r: ReplicaSet = decode(rt, obj)?;
    let spec = r.spec.unwrap_or_default();
    errors.extend(validate_controller(
        Some(&spec.selector),
        spec.template.as_ref(),
        spec.replicas,
        TemplateRestart::AlwaysOnly,
        "spec.template",
    ));

    Ok(errors)
}

/// Both kinds print alike.
fn replica_set_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let spec = &obj["spec"];
    let status = &obj["status"];
    let tmpl = obj.pointer("/spec/template/spec");
    let (c, i) = containers_images(tmpl);
    (
        vec![
            col("Name", 0),
            col("Desired", 0),
            col("Current", 0),
            col("Ready", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        vec![
            name,
            n(spec.get("replicas")).to_string(),
            n(status.get("replicas")).to_string(),
            n(status.get("readyReplicas")).to_string(),
            age,
            c,
            i,
            selector_text(spec.get("selector")),
        ],
    )
}

const REPLICA_SET_BEHAVIOUR: Behaviour = Behaviour {
    defaults: replica_set_defaults,
    initial_status: replica_set_initial_status,
    validate: replica_set_validate,
    round_trip: round::<k8s_openapi::api::apps::v1::ReplicaSet>,
    validate_update: selector_immutable,
    columns: replica_set_columns,
    ..PLAIN
};

fn controller_defaults(obj: &mut Value) {
    set_default(obj, &["spec", "replicas"], json!(1));
    // A ReplicationController without a selector selects its template's labels.
    if obj.pointer("/spec/selector").is_none_or(Value::is_null)
        && let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned()
    {
        obj["spec"]["selector"] = labels;
    }
    default_template(obj, &["spec", "template"], true);
}

fn controller_initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({"replicas": 0}))
}

fn controller_validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let r: ReplicationController = decode(rt, obj)?;
    let spec = r.spec.unwrap_or_default();
    let selector = spec.selector.clone().map(|m| {
        k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some(m),
            match_expressions: None,
        }
    });
    errors.extend(validate_controller(
        selector.as_ref(),
        spec.template.as_ref(),
        spec.replicas,
        TemplateRestart::AlwaysOnly,
        "spec.template",
    ));

    Ok(errors)
}

const CONTROLLER_BEHAVIOUR: Behaviour = Behaviour {
    defaults: controller_defaults,
    initial_status: controller_initial_status,
    validate: controller_validate,
    round_trip: round::<k8s_openapi::api::core::v1::ReplicationController>,
    columns: replica_set_columns,
    ..PLAIN
};
