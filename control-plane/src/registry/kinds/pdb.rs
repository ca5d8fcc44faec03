//! PodDisruptionBudgets.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::{Value, json};

use super::printing::{Columns, header, n, row};
use super::support::{typed_schema, validate_as};
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `poddisruptionbudgets.policy` in `policy/v1`.
pub const PODDISRUPTIONBUDGETS: &ResourceType = &rt! {
    "policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true,
    &["pdb"], &[], &["status"], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({
            "disruptionsAllowed": 0,
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "expectedPods": 0,
        }))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(
            rt,
            obj,
            |p: k8s_openapi::api::policy::v1::PodDisruptionBudget| {
                skiff_api_rules::policy::validate_pdb_spec(&p.spec.unwrap_or_default())
            },
        )
    }

    typed_schema!(PodDisruptionBudget);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        // Upstream prints an unset budget as N/A.
        let budget = |v: Option<&Value>| match v {
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(p)) => p.clone(),
            _ => "N/A".into(),
        };
        (
            header("Name|Min Available|Max Unavailable|Allowed Disruptions|Age"),
            vec![
                name,
                budget(spec.get("minAvailable")),
                budget(spec.get("maxUnavailable")),
                n(status.get("disruptionsAllowed")).to_string(),
                age,
            ],
        )
    }
}
