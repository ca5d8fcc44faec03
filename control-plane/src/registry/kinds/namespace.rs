//! Namespaces.

use k8s_openapi::api::core::v1::Namespace;
use serde_json::{Value, json};
use skiff_api_rules::metadata::NameRule;

use super::printing::{Columns, header, row, s};
use super::support::{set_default, typed_schema};
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `namespaces` in `v1`.
pub const NAMESPACES: &ResourceType = &rt! {
    "", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], &[],
    &["status", "finalize"], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
        set_default(obj, &["status", "phase"], json!("Active"));
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({"phase": "Active"}))
    }

    fn validate(&self, _rt: &ResourceType, obj: &Value) -> Errors {
        Ok(skiff_api_rules::namespace::validate_namespace(obj))
    }

    typed_schema!(Namespace);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, _, status) = row(obj);
        (
            header("Name|Status|Age"),
            vec![name, s(status.get("phase")), age],
        )
    }

    fn name_rule(&self) -> NameRule {
        NameRule::Label
    }
}
