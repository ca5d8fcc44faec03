//! StatefulSets.

use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::{Value, json};

use super::pod::default_template;
use super::printing::{Columns, containers_images, header, ready_of, row};
use super::storage::default_claim;
use super::support::{default_rolling_update, set_default, typed_schema, validate_spec};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `statefulsets.apps` in `apps/v1`.
pub const STATEFULSETS: &ResourceType = &rt! {
    "apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, &["sts"], ALL,
    &["status", "scale"], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "replicas"], json!(1));
        set_default(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
        set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
        default_rolling_update(obj, "updateStrategy", &[("partition", json!(0))]);
        for when in ["whenDeleted", "whenScaled"] {
            set_default(
                obj,
                &["spec", "persistentVolumeClaimRetentionPolicy", when],
                json!("Retain"),
            );
        }
        if let Some(claims) = obj
            .pointer_mut("/spec/volumeClaimTemplates")
            .and_then(Value::as_array_mut)
        {
            for claim in claims {
                set_default(claim, &["apiVersion"], json!("v1"));
                set_default(claim, &["kind"], json!("PersistentVolumeClaim"));
                default_claim(claim);
            }
        }
        default_template(obj, &["spec", "template"], true);
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({"replicas": 0, "availableReplicas": 0}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        let name = crate::meta::name(obj);
        validate_spec::<StatefulSet>(rt, obj, |spec| {
            skiff_api_rules::statefulset::validate_statefulset(name, spec)
        })
    }

    typed_schema!(StatefulSet);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, ..) = row(obj);
        let (containers, images) = containers_images(obj.pointer("/spec/template/spec"));
        (
            header("Name|Ready|Age|*Containers|*Images"),
            vec![name, ready_of(obj), age, containers, images],
        )
    }

    /// Upstream's `ValidateStatefulSetUpdate`: only these may change.
    fn validate_update(&self, _rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        const MUTABLE: [&str; 6] = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let rest = |obj: &Value| {
            let mut spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = spec.as_object_mut() {
                m.retain(|k, _| !MUTABLE.contains(&k.as_str()));
            }
            spec
        };
        if rest(old) == rest(new) {
            return Ok(Vec::new());
        }
        Ok(vec!["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".to_string()])
    }
}
