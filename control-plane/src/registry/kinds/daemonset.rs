//! DaemonSets.

use k8s_openapi::api::apps::v1::DaemonSet;
use serde_json::{Value, json};
use skiff_api_rules::daemonset::validate_daemonset_spec;

use super::pod::default_template;
use super::printing::{Columns, counts, header, row, with_pod_template};
use super::support::{
    default_rolling_update, selector_immutable, set_default, typed_schema, validate_spec,
};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `daemonsets.apps` in `apps/v1`.
pub const DAEMONSETS: &ResourceType = &rt! {
    "apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], ALL, &["status"],
    &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
        default_rolling_update(
            obj,
            "updateStrategy",
            &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))],
        );
        default_template(obj, &["spec", "template"], true);
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_spec::<DaemonSet>(rt, obj, validate_daemonset_spec)
    }

    typed_schema!(DaemonSet);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
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
        let [desired, current, ready, updated, available] = counts(
            obj,
            [
                "/status/desiredNumberScheduled",
                "/status/currentNumberScheduled",
                "/status/numberReady",
                "/status/updatedNumberScheduled",
                "/status/numberAvailable",
            ],
        );
        let header = header("Name|Desired|Current|Ready|Up-to-date|Available|Node Selector|Age");
        let cells = vec![
            name,
            desired,
            current,
            ready,
            updated,
            available,
            node_selector,
            age,
        ];
        with_pod_template(obj, (header, cells))
    }

    /// Upstream's DaemonSet strategy for `templateGeneration` (served in apps/v1
    /// as the [`TEMPLATE_GENERATION`] annotation): 1 on create, one more each
    /// time an update changes the pod template, never what the client sent.
    /// The controller labels its pods with it (`pod-template-generation`).
    /// `old` is the stored object on update, `None` on create.
    fn prepare_write(&self, old: Option<&Value>, new: &mut Value) {
        let stored = old.map(|o| {
            o.pointer("/metadata/annotations")
                .and_then(|a| a.get(TEMPLATE_GENERATION))
                .and_then(Value::as_str)
                .and_then(|g| g.parse::<i64>().ok())
                .unwrap_or(1)
        });
        let generation = match (stored, old) {
            (Some(g), Some(o)) if o.pointer("/spec/template") != new.pointer("/spec/template") => {
                g + 1
            }
            (Some(g), _) => g,
            (None, _) => 1,
        };
        if !new["metadata"]["annotations"].is_object() {
            new["metadata"]["annotations"] = json!({});
        }
        new["metadata"]["annotations"][TEMPLATE_GENERATION] = json!(generation.to_string());
    }

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        selector_immutable(rt, old, new)
    }
}

/// The annotation apps/v1 serves a DaemonSet's `templateGeneration` in.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";
