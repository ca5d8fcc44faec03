//! ControllerRevisions.

use k8s_openapi::api::apps::v1::ControllerRevision;
use serde_json::Value;
use skiff_api_rules::revision::{
    validate_controller_revision, validate_controller_revision_update,
};

use super::printing::{Columns, header, n, row, text};
use super::support::{json_rules, typed_schema};
use crate::registry::resource_type::{Behaviour, ResourceType, rt};

/// `controllerrevisions.apps` in `apps/v1`.
pub const CONTROLLERREVISIONS: &ResourceType = &rt! {
    "apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, &[],
    &[], &[], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    json_rules!(
        validate_controller_revision,
        validate_controller_revision_update
    );

    typed_schema!(ControllerRevision);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        // `daemonset.apps/name`: the controller's kind and group, lowercased.
        let controller = crate::meta::controller_ref(obj).map_or_else(
            || "<none>".to_string(),
            |r| {
                let group = text(r.get("apiVersion"))
                    .split_once('/')
                    .map(|(g, _)| format!(".{g}"))
                    .unwrap_or_default();
                format!(
                    "{}{group}/{}",
                    text(r.get("kind")).to_lowercase(),
                    text(r.get("name"))
                )
            },
        );
        (
            header("Name|Controller|Revision|Age"),
            vec![name, controller, n(obj.get("revision")).to_string(), age],
        )
    }
}
