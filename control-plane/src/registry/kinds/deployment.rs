//! Deployments.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};
use skiff_api_rules::workloads::{TemplateRestart, validate_controller};

use super::PLAIN;
use super::pod::default_template;
use super::printing::{age_of, col, containers_images, n, s, selector_text};
use super::support::{decode, round, selector_immutable, set_default};
use crate::registry::resource_type::{ALL, Behaviour, Columns, ResourceType, rt};

/// `deployments.apps` in `apps/v1`.
pub const DEPLOYMENTS: &ResourceType = &rt!(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
    &["deploy"],
    ALL,
    &["status", "scale"],
    &BEHAVIOUR,
);

fn defaults(obj: &mut Value) {
    set_default(obj, &["spec", "replicas"], json!(1));
    set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
    set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
    set_default(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
    if obj.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
        set_default(
            obj,
            &["spec", "strategy", "rollingUpdate", "maxSurge"],
            json!("25%"),
        );
        set_default(
            obj,
            &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
            json!("25%"),
        );
    }
    default_template(obj, &["spec", "template"], true);
}

fn initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({}))
}

fn validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let d: Deployment = decode(rt, obj)?;
    let spec = d.spec.unwrap_or_default();
    errors.extend(skiff_api_rules::workloads::deployment_strategy_errors(
        spec.strategy.as_ref(),
    ));
    errors.extend(validate_controller(
        Some(&spec.selector),
        Some(&spec.template),
        spec.replicas,
        TemplateRestart::AlwaysOnly,
        "spec.template",
    ));

    Ok(errors)
}

fn columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let spec = &obj["spec"];
    let status = &obj["status"];
    let tmpl = obj.pointer("/spec/template/spec");
    let (c, i) = containers_images(tmpl);
    (
        vec![
            col("Name", 0),
            col("Ready", 0),
            col("Up-to-date", 0),
            col("Available", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        vec![
            name,
            format!(
                "{}/{}",
                n(status.get("readyReplicas")),
                n(spec.get("replicas"))
            ),
            n(status.get("updatedReplicas")).to_string(),
            n(status.get("availableReplicas")).to_string(),
            age,
            c,
            i,
            selector_text(spec.get("selector")),
        ],
    )
}

const BEHAVIOUR: Behaviour = Behaviour {
    defaults: defaults,
    initial_status: initial_status,
    validate: validate,
    round_trip: round::<k8s_openapi::api::apps::v1::Deployment>,
    columns: columns,
    validate_update: selector_immutable,
    ..PLAIN
};
