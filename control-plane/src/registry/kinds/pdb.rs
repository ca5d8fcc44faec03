//! PodDisruptionBudgets.

use serde_json::{Value, json};

use super::PLAIN;
use super::printing::{age_of, col, n, s};
use super::support::{decode, round};
use crate::registry::resource_type::{Behaviour, Columns, ResourceType, rt};

/// `poddisruptionbudgets.policy` in `policy/v1`.
pub const PODDISRUPTIONBUDGETS: &ResourceType = &rt!(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    true,
    &["pdb"],
    &[],
    &["status"],
    &BEHAVIOUR,
);

fn initial_status(_obj: &Value) -> Option<Value> {
    Some(json!({
        "disruptionsAllowed": 0,
        "currentHealthy": 0,
        "desiredHealthy": 0,
        "expectedPods": 0,
    }))
}

fn validate(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    let mut errors = Vec::new();
    let p: k8s_openapi::api::policy::v1::PodDisruptionBudget = decode(rt, obj)?;
    errors.extend(skiff_api_rules::policy::validate_pdb_spec(
        &p.spec.unwrap_or_default(),
    ));

    Ok(errors)
}

fn columns(_rt: &ResourceType, obj: &Value) -> Columns {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let spec = &obj["spec"];
    let status = &obj["status"];
    // Upstream prints an unset budget as N/A.
    let budget = |v: Option<&Value>| match v {
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::String(p)) => p.clone(),
        _ => "N/A".into(),
    };
    (
        vec![
            col("Name", 0),
            col("Min Available", 0),
            col("Max Unavailable", 0),
            col("Allowed Disruptions", 0),
            col("Age", 0),
        ],
        vec![
            name,
            budget(spec.get("minAvailable")),
            budget(spec.get("maxUnavailable")),
            n(status.get("disruptionsAllowed")).to_string(),
            age,
        ],
    )
}

const BEHAVIOUR: Behaviour = Behaviour {
    initial_status: initial_status,
    validate: validate,
    round_trip: round::<k8s_openapi::api::policy::v1::PodDisruptionBudget>,
    columns: columns,
    ..PLAIN
};
