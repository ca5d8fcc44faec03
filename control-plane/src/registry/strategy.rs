//! What the API server does to objects on the way in: decoding into the
//! `k8s-openapi` type (strict shape), upstream defaults, validation with the
//! API server's wording, and server-owned metadata (uid, creationTimestamp,
//! generation, resourceVersion).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use skiff_api_rules::metadata::{validate_annotations, validate_labels, validate_object_meta};

use super::error::ApiError;
use super::resources::ResourceType;

/// Applies upstream defaults for `rt` to `obj` (in place).
pub fn apply_defaults(rt: &ResourceType, obj: &mut Value) {
    rt.behaviour.defaults(obj);
}

/// The `status` upstream's registry strategies give a new object of `rt`
/// (`PrepareForCreate`: a client's status is never stored on create), as
/// the v1 types serialize their zero values; `None` for kinds whose create
/// keeps what was sent or that have no status.
pub fn initial_status(rt: &ResourceType, obj: &Value) -> Option<Value> {
    rt.behaviour.initial_status(obj)
}

/// Upstream's `PrepareForCreate` for status: a created object carries the
/// status its kind starts with, whatever the client sent.
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    if let Some(status) = initial_status(rt, obj)
        && obj.is_object()
    {
        obj["status"] = status;
    }
}

/// Reports fields the kind's schema lacks, as `spec.foo` paths (the API
/// server's strict decoding, asked for by kubectl with
/// `fieldValidation=Strict`). The object is decoded into its k8s-openapi
/// type and encoded again; whatever did not survive is unknown.
pub fn unknown_fields(rt: &ResourceType, obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(back) = rt.behaviour.round_trip(obj) {
        missing_in(String::new(), obj, &back, &mut out);
    }
    out
}

fn missing_in(path: String, input: &Value, back: &Value, out: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None => out.push(p),
                    Some(bv) => missing_in(p, v, bv, out),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                missing_in(format!("{path}[{i}]"), av, bv, out);
            }
        }
        _ => {}
    }
}

/// Validates `obj` (already defaulted); `Err` is the API server's answer.
/// Metadata is checked here; each kind's own rules are its
/// [`Behaviour::validate`](super::resource_type::Behaviour::validate).
pub fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    validate_with(rt, obj, Vec::new())
}

/// [`validate`], with `more` errors (an update's, found by the caller)
/// after the object's own in the same 422, as upstream lists them.
pub fn validate_with(rt: &ResourceType, obj: &Value, more: Vec<String>) -> Result<(), ApiError> {
    super::typecheck::check(rt, obj)?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let meta: ObjectMeta = match obj.get("metadata") {
        Some(m) => serde_json::from_value(m.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                rt.kind, rt.version, rt.kind
            ))
        })?,
        None => ObjectMeta::default(),
    };
    let mut errors = validate_object_meta(&meta, rt.behaviour.name_rule());
    for template in [
        "/spec/template/metadata",
        "/spec/jobTemplate/spec/template/metadata",
    ] {
        let Some(template_meta) = obj.pointer(template) else {
            continue;
        };
        let path = template[1..].replace('/', ".");
        let strings = |field: &str| {
            template_meta
                .get(field)
                .and_then(|v| serde_json::from_value::<BTreeMap<String, String>>(v.clone()).ok())
        };
        if let Some(labels) = strings("labels") {
            errors.extend(validate_labels(&format!("{path}.labels"), &labels));
        }
        if let Some(annotations) = strings("annotations") {
            errors.extend(validate_annotations(
                &format!("{path}.annotations"),
                &annotations,
            ));
        }
    }
    errors.extend(
        rt.behaviour
            .validate(rt, obj)
            .map_err(ApiError::bad_request)?,
    );
    errors.extend(more);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &errors))
    }
}

/// Fields that must not change on update, with the API server's message.
pub fn check_immutable(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let errors = rt
        .behaviour
        .validate_update(rt, old, new)
        .map_err(ApiError::bad_request)?;
    if errors.is_empty() {
        return Ok(());
    }
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Err(ApiError::invalid(rt, name, &errors))
}

/// Server-owned fields a write sets ([`Behaviour::prepare_write`](super::resource_type::Behaviour::prepare_write)):
/// `old` is the stored object on update, `None` on create.
pub fn prepare_write(rt: &ResourceType, old: Option<&Value>, new: &mut Value) {
    rt.behaviour.prepare_write(old, new);
}

/// Removes `null` fields recursively (upstream drops them on decode).
pub fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    use crate::registry::kinds::daemonset::TEMPLATE_GENERATION;

    #[test]
    fn unknown_fields_are_found_with_their_paths() {
        let rt = crate::registry::kinds::DEPLOYMENTS;
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"any": "thing"}},
            "spec": {"progressDeadlineSecods": 5, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x", "imagePolicy": "Always"}]}}}
        });
        assert_eq!(
            unknown_fields(rt, &obj),
            [
                "spec.progressDeadlineSecods",
                "spec.template.spec.containers[0].imagePolicy"
            ]
        );
        let mut clean = obj.clone();
        clean["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("progressDeadlineSecods");
        clean["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .expect("c")
            .remove("imagePolicy");
        assert!(unknown_fields(rt, &clean).is_empty());
    }

    #[test]
    fn statefulset_specs_change_only_where_upstream_allows() {
        let rt = crate::registry::kinds::STATEFULSETS;
        let old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "serviceName": "a",
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"] = json!({"spec": {}});
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        assert!(check_immutable(rt, &old, &new).is_ok());
        for (field, value) in [
            ("serviceName", json!("b")),
            ("volumeClaimTemplates", json!([])),
            ("selector", json!({"matchLabels": {"a": "b"}})),
        ] {
            let mut bad = old.clone();
            bad["spec"][field] = value;
            let err = check_immutable(rt, &old, &bad).expect_err(field);
            err.assert_says("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden");
        }
    }

    #[test]
    fn daemonset_template_generation_counts_template_changes_only() {
        let rt = crate::registry::kinds::DAEMONSETS;
        let generation = |v: &Value| v["metadata"]["annotations"][TEMPLATE_GENERATION].clone();
        let mut created = json!({"metadata": {"name": "ds", "annotations": {TEMPLATE_GENERATION: "9"}},
            "spec": {"minReadySeconds": 0, "template": {"spec": {"containers": [{"name": "c"}]}}}});
        prepare_write(rt, None, &mut created);
        assert_eq!(generation(&created), "1", "the client's value is ignored");
        let mut same_template = created.clone();
        same_template["spec"]["minReadySeconds"] = json!(5);
        same_template["metadata"]["annotations"][TEMPLATE_GENERATION] = json!("7");
        prepare_write(rt, Some(&created), &mut same_template);
        assert_eq!(generation(&same_template), "1");
        let mut changed = same_template.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox");
        prepare_write(rt, Some(&same_template), &mut changed);
        assert_eq!(generation(&changed), "2");
        let other = crate::registry::kinds::DEPLOYMENTS;
        let mut d = json!({"metadata": {"name": "d"}});
        prepare_write(other, None, &mut d);
        assert!(d["metadata"].get("annotations").is_none());
    }

    #[test]
    fn template_labels_are_checked_like_object_labels() {
        let rt = crate::registry::kinds::DEPLOYMENTS;
        let obj = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b", "bad key": "x"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        let err = validate(rt, &obj).expect_err("label");
        err.assert_says(
            "spec.template.metadata.labels: Invalid value: \"bad key\": name part must consist of",
        );
    }

    #[test]
    fn job_templates_are_immutable() {
        let rt = crate::registry::kinds::JOBS;
        let old = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}});
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let err = check_immutable(rt, &old, &new).expect_err("immutable");
        assert!(
            err.message.contains("spec.template: Invalid value:")
                && err.message.ends_with("field is immutable"),
            "{}",
            err.message
        );
        assert!(check_immutable(rt, &old, &old).is_ok());
    }
}
