//! ReplicaSets and ReplicationControllers.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::{Value, json};

use super::pod::default_template;
use super::printing::{Columns, counts, header, row, with_pod_template};
use super::support::{replicated, selector_immutable, set_default, typed_schema, validate_spec};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `replicasets.apps` in `apps/v1`.
pub const REPLICASETS: &ResourceType = &rt! {
    "apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], ALL,
    &["status", "scale"], &ReplicaSetRules
};

/// `replicationcontrollers` in `v1`.
pub const REPLICATIONCONTROLLERS: &ResourceType = &rt! {
    "", "v1", "replicationcontrollers", "replicationcontroller", "ReplicationController", true,
    &["rc"], ALL, &["status", "scale"], &ReplicationControllerRules
};

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
        validate_spec::<ReplicaSet>(rt, obj, |spec| {
            replicated(Some(&spec.selector), spec.template.as_ref(), spec.replicas)
        })
    }

    typed_schema!(ReplicaSet);

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        selector_immutable(rt, old, new)
    }

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        let [desired, current, ready] = counts(
            obj,
            [
                "/spec/replicas",
                "/status/replicas",
                "/status/readyReplicas",
            ],
        );
        let cells = vec![name, desired, current, ready, age];
        with_pod_template(obj, (header("Name|Desired|Current|Ready|Age"), cells))
    }
}

/// What the registry does with ReplicationControllers: what it does with
/// ReplicaSets, but for the selector (a plain label map, defaulted from the
/// template) and its changes (allowed).
pub struct ReplicationControllerRules;

impl Behaviour for ReplicationControllerRules {
    fn defaults(&self, obj: &mut Value) {
        // A ReplicationController without a selector selects its template's labels.
        if obj.pointer("/spec/selector").is_none_or(Value::is_null)
            && let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned()
        {
            obj["spec"]["selector"] = labels;
        }
        ReplicaSetRules.defaults(obj);
    }

    fn initial_status(&self, obj: &Value) -> Option<Value> {
        ReplicaSetRules.initial_status(obj)
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_spec::<ReplicationController>(rt, obj, |spec| {
            let selector = spec.selector.clone().map(|m| LabelSelector {
                match_labels: Some(m),
                match_expressions: None,
            });
            replicated(selector.as_ref(), spec.template.as_ref(), spec.replicas)
        })
    }

    typed_schema!(ReplicationController);

    fn columns(&self, rt: &ResourceType, obj: &Value) -> Columns {
        ReplicaSetRules.columns(rt, obj)
    }
}
