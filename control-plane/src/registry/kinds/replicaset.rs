//! ReplicaSets and ReplicationControllers.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use serde_json::{Value, json};

use super::pod::default_template;
use super::printing::{Columns, header, n, row, with_pod_template};
use super::support::{decode, replicated, selector_immutable, set_default, typed_schema};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `replicationcontrollers` in `v1`.
pub const REPLICATIONCONTROLLERS: &ResourceType = &rt! {
    "", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", true,
    &["rc"], ALL, &["status", "scale"], &ReplicationControllerRules
};

/// `replicasets.apps` in `apps/v1`.
pub const REPLICASETS: &ResourceType = &rt! {
    "apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], ALL,
    &["status", "scale"], &ReplicaSetRules
};

/// Both kinds print alike.
fn replica_set_columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let (name, age, spec, status) = row(obj);
    with_pod_template(
        obj,
        (
            header("Name|Desired|Current|Ready|Age"),
            vec![
                name,
                n(spec.get("replicas")).to_string(),
                n(status.get("replicas")).to_string(),
                n(status.get("readyReplicas")).to_string(),
                age,
            ],
        ),
    )
}

/// What the registry does with ReplicaSets.
pub struct ReplicaSetRules;

impl Behaviour for ReplicaSetRules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "replicas"], json!(1));
        default_template(obj, &["spec", "template"], true);
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({"replicas": 0}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        let mut errors = Vec::new();
        let r: ReplicaSet = decode(rt, obj)?;
        let spec = r.spec.unwrap_or_default();
        errors.extend(replicated(
            Some(&spec.selector),
            spec.template.as_ref(),
            spec.replicas,
        ));
        Ok(errors)
    }

    typed_schema!(ReplicaSet);

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        selector_immutable(rt, old, new)
    }

    fn columns(&self, rt: &ResourceType, obj: &Value) -> Columns {
        replica_set_columns(rt, obj)
    }
}

/// What the registry does with ReplicationControllers.
pub struct ReplicationControllerRules;

impl Behaviour for ReplicationControllerRules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "replicas"], json!(1));
        // A ReplicationController without a selector selects its template's labels.
        if obj.pointer("/spec/selector").is_none_or(Value::is_null)
            && let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned()
        {
            obj["spec"]["selector"] = labels;
        }
        default_template(obj, &["spec", "template"], true);
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({"replicas": 0}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        let mut errors = Vec::new();
        let r: ReplicationController = decode(rt, obj)?;
        let spec = r.spec.unwrap_or_default();
        let selector = spec.selector.clone().map(|m| {
            k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                match_labels: Some(m),
                match_expressions: None,
            }
        });
        errors.extend(replicated(
            selector.as_ref(),
            spec.template.as_ref(),
            spec.replicas,
        ));
        Ok(errors)
    }

    typed_schema!(ReplicationController);

    fn columns(&self, rt: &ResourceType, obj: &Value) -> Columns {
        replica_set_columns(rt, obj)
    }
}
