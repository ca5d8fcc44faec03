//! Deployments.

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{Value, json};

use super::pod::default_template;
use super::printing::{Columns, counts, header, ready_of, row, with_pod_template};
use super::support::{
    decode, default_rolling_update, replicated, selector_immutable, set_default, typed_schema,
};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `deployments.apps` in `apps/v1`.
pub const DEPLOYMENTS: &ResourceType = &rt! {
    "apps", "v1", "deployments", "deployment", "Deployment", true, &["deploy"], ALL,
    &["status", "scale"], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "replicas"], json!(1));
        set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
        set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
        default_rolling_update(
            obj,
            "strategy",
            &[("maxSurge", json!("25%")), ("maxUnavailable", json!("25%"))],
        );
        default_template(obj, &["spec", "template"], true);
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        let mut errors = Vec::new();
        let d: Deployment = decode(rt, obj)?;
        let spec = d.spec.unwrap_or_default();
        errors.extend(skiff_api_rules::workloads::deployment_strategy_errors(
            spec.strategy.as_ref(),
        ));
        errors.extend(replicated(
            Some(&spec.selector),
            Some(&spec.template),
            spec.replicas,
        ));
        Ok(errors)
    }

    typed_schema!(Deployment);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        let [updated, available] = counts(
            obj,
            ["/status/updatedReplicas", "/status/availableReplicas"],
        );
        let cells = vec![name, ready_of(obj), updated, available, age];
        with_pod_template(obj, (header("Name|Ready|Up-to-date|Available|Age"), cells))
    }

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        selector_immutable(rt, old, new)
    }
}
