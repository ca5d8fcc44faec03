//! What the kind modules share to default, decode and validate objects.

use k8s_openapi::api::apps::v1 as apps;
use k8s_openapi::api::batch::v1 as batch;
use k8s_openapi::api::core::v1::{self as core, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use skiff_api_rules::workloads::{TemplateRestart, validate_controller};

use crate::registry::resource_type::{Errors, ResourceType};

pub(super) fn set_default(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        if i == path.len() - 1 {
            if cur.get(*key).is_none_or(Value::is_null) {
                cur[*key] = value;
            }
            return;
        }
        if cur.get(*key).is_none_or(Value::is_null) {
            cur[*key] = json!({});
        }
        cur = &mut cur[*key];
    }
}

/// The elements of the array `obj[key]`, to default in place; none when it
/// is not an array (or missing).
pub(super) fn elements_mut<'a>(
    obj: &'a mut Value,
    key: &str,
) -> impl Iterator<Item = &'a mut Value> {
    obj.get_mut(key)
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
}

/// `obj` decoded into its kind's typed schema; `Err` is the API server's
/// message for an object that does not decode.
pub(super) fn decode<T: DeserializeOwned>(rt: &ResourceType, obj: &Value) -> Result<T, String> {
    serde_json::from_value(obj.clone()).map_err(|e| {
        format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        )
    })
}

/// `obj` decoded into `T` and encoded again: whatever did not survive is a
/// field the schema lacks.
pub(super) fn round<T: DeserializeOwned + Serialize>(obj: &Value) -> Option<Value> {
    serde_json::from_value::<T>(obj.clone())
        .ok()
        .and_then(|t| serde_json::to_value(t).ok())
}

/// A kind's typed schema `$t` (k8s-openapi's, generated from upstream's
/// OpenAPI document): what strict decoding round-trips objects through
/// (`Behaviour::round_trip`) and what `/openapi/v3` publishes
/// (`Behaviour::add_schema`).
macro_rules! typed_schema {
    ($t:ty) => {
        fn round_trip(&self, obj: &::serde_json::Value) -> Option<::serde_json::Value> {
            $crate::registry::kinds::support::round::<$t>(obj)
        }

        fn add_schema(&self, generator: &mut ::schemars::SchemaGenerator) {
            // Registered among the generator's definitions; the reference
            // to it is not needed.
            let _ = generator.subschema_for::<$t>();
        }
    };
}

pub(super) use typed_schema;

/// `validate` and `validate_update` of a kind whose rules read the object
/// as JSON rather than through its typed schema.
macro_rules! json_rules {
    ($validate:path, $validate_update:path) => {
        fn validate(
            &self,
            _rt: &$crate::registry::resource_type::ResourceType,
            obj: &::serde_json::Value,
        ) -> $crate::registry::resource_type::Errors {
            Ok($validate(obj))
        }

        fn validate_update(
            &self,
            _rt: &$crate::registry::resource_type::ResourceType,
            old: &::serde_json::Value,
            new: &::serde_json::Value,
        ) -> $crate::registry::resource_type::Errors {
            Ok($validate_update(old, new))
        }
    };
}

pub(super) use json_rules;

/// Decodes `obj` into its kind's typed schema `T` and returns the field
/// errors `check` finds in it (`Err` if it does not decode).
pub(super) fn validate_as<T: DeserializeOwned>(
    rt: &ResourceType,
    obj: &Value,
    check: impl FnOnce(T) -> Vec<String>,
) -> Errors {
    decode(rt, obj).map(check)
}

/// A typed schema with a `spec` (its kind's rules check the default spec
/// when an object has none).
pub(super) trait WithSpec: DeserializeOwned {
    type Spec: Default;

    fn into_spec(self) -> Option<Self::Spec>;
}

/// [`WithSpec`] for each `schema => spec type`.
macro_rules! with_spec {
    ($($schema:ty => $spec:ty),* $(,)?) => {
        $(impl WithSpec for $schema {
            type Spec = $spec;

            fn into_spec(self) -> Option<$spec> {
                self.spec
            }
        })*
    };
}

with_spec! {
    apps::DaemonSet => apps::DaemonSetSpec,
    apps::ReplicaSet => apps::ReplicaSetSpec,
    apps::StatefulSet => apps::StatefulSetSpec,
    batch::CronJob => batch::CronJobSpec,
    core::PersistentVolumeClaim => core::PersistentVolumeClaimSpec,
    core::ReplicationController => core::ReplicationControllerSpec,
    core::Service => core::ServiceSpec,
}

/// Decodes `obj` into its kind's typed schema `T` and returns the field
/// errors `check` finds in its spec.
pub(super) fn validate_spec<T: WithSpec>(
    rt: &ResourceType,
    obj: &Value,
    check: impl FnOnce(&T::Spec) -> Vec<String>,
) -> Errors {
    decode::<T>(rt, obj).map(|t| check(&t.into_spec().unwrap_or_default()))
}

/// Upstream's rule for apps/v1 controllers: the selector never changes.
pub(super) fn selector_immutable(_rt: &ResourceType, old: &Value, new: &Value) -> Errors {
    if old.pointer("/spec/selector") == new.pointer("/spec/selector") {
        return Ok(Vec::new());
    }
    Ok(vec![format!(
        "spec.selector: Invalid value: {}: field is immutable",
        new.pointer("/spec/selector")
            .cloned()
            .unwrap_or(Value::Null)
    )])
}

/// Upstream's defaults of a workload's `spec.<field>`: `RollingUpdate`
/// unless set, and then each of `parameters` under `rollingUpdate` unless
/// set.
pub(super) fn default_rolling_update(obj: &mut Value, field: &str, parameters: &[(&str, Value)]) {
    set_default(obj, &["spec", field, "type"], json!("RollingUpdate"));
    if obj
        .pointer(&format!("/spec/{field}/type"))
        .and_then(Value::as_str)
        != Some("RollingUpdate")
    {
        return;
    }
    for (name, value) in parameters {
        set_default(obj, &["spec", field, "rollingUpdate", name], value.clone());
    }
}

/// Upstream's checks of a controller that keeps `replicas` pods of
/// `template` running (Deployment, ReplicaSet, ReplicationController).
pub(super) fn replicated(
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    replicas: Option<i32>,
) -> Vec<String> {
    validate_controller(
        selector,
        template,
        replicas,
        TemplateRestart::AlwaysOnly,
        "spec.template",
    )
}
