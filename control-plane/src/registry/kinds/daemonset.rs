//! DaemonSets.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::{Value, json};
use skiff_api_rules::daemonset::validate_daemonset_spec;

use super::PLAIN;
use super::pod::default_template;
use super::printing::{age_of, col, containers_images, n, s, selector_text};
use super::support::{decode, round, selector_immutable, set_default};
use crate::registry::resource_type::{ALL, Behaviour, Columns, ResourceType, rt};

/// `daemonsets.apps` in `apps/v1`.
pub const DAEMONSETS: &ResourceType = &rt!(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    true,
    &["ds"],
    ALL,
    &["status"],
    &BEHAVIOUR,
);

fn defaults(obj: &mut Value) {
    set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
    set_default(
        obj,
        &["spec", "updateStrategy", "type"],
        json!("RollingUpdate"),
    );
    if obj
        .pointer("/spec/updateStrategy/type")
        .and_then(Value::as_str)
        == Some("RollingUpdate")
    {
        set_default(
            obj,
            &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"],
            json!(1),
        );
        set_default(
            obj,
            &["spec", "updateStrategy", "rollingUpdate", "maxSurge"],
            json!(0),
        );
    }
    default_template(obj, &["spec", "template"], true);
}

fn initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    }))
}

fn validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let d: DaemonSet = decode(rt, obj)?;
    errors.extend(validate_daemonset_spec(&d.spec.unwrap_or_default()));

    Ok(errors)
}

fn columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let spec = &obj["spec"];
    let status = &obj["status"];
    let tmpl = obj.pointer("/spec/template/spec");
    let (c, i) = containers_images(tmpl);
    let node_selector = obj
        .pointer("/spec/template/spec/nodeSelector")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "<none>".into());
    (
        vec![
            col("Name", 0),
            col("Desired", 0),
            col("Current", 0),
            col("Ready", 0),
            col("Up-to-date", 0),
            col("Available", 0),
            col("Node Selector", 0),
            col("Age", 0),
            col("Containers", 1),
            col("Images", 1),
            col("Selector", 1),
        ],
        vec![
            name,
            n(status.get("desiredNumberScheduled")).to_string(),
            n(status.get("currentNumberScheduled")).to_string(),
            n(status.get("numberReady")).to_string(),
            n(status.get("updatedNumberScheduled")).to_string(),
            n(status.get("numberAvailable")).to_string(),
            node_selector,
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
    round_trip: round::<k8s_openapi::api::apps::v1::DaemonSet>,
    columns: columns,
    prepare_write: track_template_generation,
    validate_update: selector_immutable,
    ..PLAIN
};

/// The annotation apps/v1 serves a DaemonSet's `templateGeneration` in.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Upstream's DaemonSet strategy for `templateGeneration` (served in apps/v1
/// as the [`TEMPLATE_GENERATION`] annotation): 1 on create, one more each
/// time an update changes the pod template, never what the client sent.
/// The controller labels its pods with it (`pod-template-generation`).
/// `old` is the stored object on update, `None` on create.
fn track_template_generation(old: Option<&Value>, new: &mut Value) {
    let stored = old.map(|o| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(TEMPLATE_GENERATION))
            .and_then(Value::as_str)
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(1)
    });
    let generation = match (stored, old) {
        (Some(g), Some(o)) if o.pointer("/spec/template") != new.pointer("/spec/template") => g + 1,
        (Some(g), _) => g,
        (None, _) => 1,
    };
    if !new["metadata"]["annotations"].is_object() {
        new["metadata"]["annotations"] = json!({});
    }
    new["metadata"]["annotations"][TEMPLATE_GENERATION] = json!(generation.to_string());
}
