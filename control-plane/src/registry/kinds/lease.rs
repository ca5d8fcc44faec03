//! Leases.

use serde_json::Value;

use super::PLAIN;
use super::support::round;
use crate::registry::resource_type::{Behaviour, ResourceType, rt};

/// `leases.coordination.k8s.io` in `coordination.k8s.io/v1`.
pub const LEASES: &ResourceType = &rt!(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    true,
    &[],
    &[],
    &[],
    &BEHAVIOUR,
);

fn validate(_rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    Ok(skiff_api_rules::coordination::validate_lease(obj))
}

const BEHAVIOUR: Behaviour = Behaviour {
    validate: validate,
    round_trip: round::<k8s_openapi::api::coordination::v1::Lease>,
    ..PLAIN
};
