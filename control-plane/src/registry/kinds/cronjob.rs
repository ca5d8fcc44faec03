//! CronJobs.

use k8s_openapi::api::batch::v1::CronJob;
use serde_json::{Value, json};
use skiff_api_rules::workloads::{TemplateRestart, validate_controller};

use super::pod::default_template;
use super::printing::{Columns, age_of, header, row, s, with_template};
use super::support::{set_default, typed_schema, validate_spec};
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `cronjobs.batch` in `batch/v1`.
pub const CRONJOBS: &ResourceType = &rt! {
    "batch", "v1", "cronjobs", "cronjob", "CronJob", true, &["cj"], ALL, &["status"], &Rules
};

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        set_default(obj, &["spec", "concurrencyPolicy"], json!("Allow"));
        set_default(obj, &["spec", "suspend"], json!(false));
        set_default(obj, &["spec", "successfulJobsHistoryLimit"], json!(3));
        set_default(obj, &["spec", "failedJobsHistoryLimit"], json!(1));
        default_template(obj, &["spec", "jobTemplate", "spec", "template"], false);
    }

    fn initial_status(&self, _obj: &Value) -> Option<Value> {
        Some(json!({}))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        let name = crate::meta::name(obj);
        validate_spec::<CronJob>(rt, obj, |spec| {
            let mut errors = if spec.schedule.trim().is_empty() {
                vec!["spec.schedule: Required value".to_string()]
            } else {
                crate::registry::schedule::validate(&spec.schedule, spec.time_zone.as_deref())
            };
            errors.extend(skiff_api_rules::batch::validate_cronjob(name, spec));
            let template = spec.job_template.spec.as_ref().map(|s| &s.template);
            errors.extend(validate_controller(
                None,
                template,
                None,
                TemplateRestart::OnFailureOrNever,
                "spec.jobTemplate.spec.template",
            ));
            errors
        })
    }

    typed_schema!(CronJob);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let last = status
            .get("lastScheduleTime")
            .map_or_else(|| "<none>".into(), |t| age_of(Some(t)));
        with_template(
            (
                header("Name|Schedule|Timezone|Suspend|Active|Last Schedule|Age"),
                vec![
                    name,
                    s(spec.get("schedule")),
                    s(spec.get("timeZone")),
                    s(spec.get("suspend")),
                    status["active"].as_array().map_or(0, Vec::len).to_string(),
                    last,
                    age,
                ],
            ),
            obj.pointer("/spec/jobTemplate/spec/template/spec"),
            obj.pointer("/spec/jobTemplate/spec/selector"),
        )
    }
}
