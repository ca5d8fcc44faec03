//! Jobs.

use chrono::DateTime;
use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};
use skiff_api_rules::workloads::{TemplateRestart, validate_controller};

use super::pod::default_template;
use super::printing::{Columns, age_of, header, human_duration, n, row, with_pod_template};
use super::support::{decode, set_default, typed_schema};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `jobs.batch` in `batch/v1`.
pub const JOBS: &ResourceType = &rt! {
    "batch", "v1", "jobs", "job", "Job", true, &[], ALL, &["status"], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        let completions_unset = obj.pointer("/spec/completions").is_none_or(Value::is_null);
        let parallelism_unset = obj.pointer("/spec/parallelism").is_none_or(Value::is_null);
        if completions_unset && parallelism_unset {
            set_default(obj, &["spec", "completions"], json!(1));
        }
        set_default(obj, &["spec", "parallelism"], json!(1));
        set_default(obj, &["spec", "backoffLimit"], json!(6));
        set_default(obj, &["spec", "completionMode"], json!("NonIndexed"));
        set_default(obj, &["spec", "suspend"], json!(false));
        default_template(obj, &["spec", "template"], false);
        if obj.pointer("/spec/manualSelector") != Some(&json!(true)) {
            generate_job_selector(obj);
        }
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        let name = crate::meta::name(obj);
        let mut errors = Vec::new();
        let j: Job = decode(rt, obj)?;
        let spec = j.spec.unwrap_or_default();
        let selector = spec.selector.as_ref().filter(|s| {
            s.match_labels.as_ref().is_some_and(|m| !m.is_empty())
                || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
        });
        if selector.is_none() {
            errors.push("spec.selector: Required value".into());
        }
        errors.extend(validate_controller(
            selector,
            Some(&spec.template),
            None,
            TemplateRestart::OnFailureOrNever,
            "spec.template",
        ));
        let uid = j.metadata.uid.as_deref().unwrap_or_default();
        errors.extend(skiff_api_rules::batch::validate_job(name, uid, &spec));
        Ok(errors)
    }

    typed_schema!(Job);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let duration = match (
            status.get("startTime").and_then(Value::as_str),
            status.get("completionTime").and_then(Value::as_str),
        ) {
            (Some(a), Some(b)) => match (
                DateTime::parse_from_rfc3339(a),
                DateTime::parse_from_rfc3339(b),
            ) {
                (Ok(a), Ok(b)) => human_duration((b - a).num_seconds()),
                _ => String::new(),
            },
            (Some(a), None) => age_of(Some(&json!(a))),
            _ => String::new(),
        };
        with_pod_template(
            obj,
            (
                header("Name|Status|Completions|Duration|Age"),
                vec![
                    name,
                    job_status(obj),
                    job_completions(spec, status),
                    duration,
                    age,
                ],
            ),
        )
    }

    fn validate_update(&self, _rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        Ok(skiff_api_rules::batch::job_update_errors(old, new))
    }
}

/// Upstream's `generateSelector` for Jobs without `manualSelector`: the
/// template gets the Job's name and uid as labels (unless the user set
/// them; validation catches a conflict) and the selector the uid.
fn generate_job_selector(obj: &mut Value) {
    let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) else {
        return;
    };
    let uid = uid.to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let labels = [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ];
    for (key, value) in labels {
        set_default(
            obj,
            &["spec", "template", "metadata", "labels", key],
            json!(value),
        );
    }
    set_default(
        obj,
        &[
            "spec",
            "selector",
            "matchLabels",
            "batch.kubernetes.io/controller-uid",
        ],
        json!(uid),
    );
}

fn job_status(job: &Value) -> String {
    let conditions = job["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    let deleting = job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if has("Complete") {
        "Complete".into()
    } else if has("Failed") {
        "Failed".into()
    } else if deleting {
        "Terminating".into()
    } else if has("Suspended") {
        "Suspended".into()
    } else if has("FailureTarget") {
        "FailureTarget".into()
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet".into()
    } else {
        "Running".into()
    }
}

/// kubectl's COMPLETIONS cell: `succeeded/completions`, or for a work
/// queue `succeeded/1` (`of N` when more than one pod runs at once).
fn job_completions(spec: &Value, status: &Value) -> String {
    let succeeded = n(status.get("succeeded"));
    match spec.get("completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match n(spec.get("parallelism")) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}
