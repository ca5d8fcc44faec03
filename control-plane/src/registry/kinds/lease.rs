//! Leases.

use k8s_openapi::api::coordination::v1::Lease;
use serde_json::Value;

use super::support::typed_schema;
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `leases.coordination.k8s.io` in `coordination.k8s.io/v1`.
pub const LEASES: &ResourceType = &rt! {
    "coordination.k8s.io", "v1", "leases", "lease", "Lease", true, &[], &[], &[], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn validate(&self, _rt: &ResourceType, obj: &Value) -> Errors {
        Ok(skiff_api_rules::coordination::validate_lease(obj))
    }

    typed_schema!(Lease);
}
