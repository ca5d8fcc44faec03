//! Jobs and CronJobs (batch/v1): the spec fields upstream's
//! `ValidateJobSpec` and `ValidateCronJobSpec` check besides the template
//! (which [`crate::workloads::validate_controller`] covers). The schedule
//! and time zone are checked by the control plane, which parses them.

use k8s_openapi::api::batch::v1::{CronJobSpec, JobSpec};

/// Longest CronJob name: its Jobs append `-<minutes since epoch>` (11
/// characters) and must stay within 63.
pub const MAX_CRONJOB_NAME: usize = 52;

fn non_negative(path: &str, field: &str, v: Option<i64>, errors: &mut Vec<String>) {
    if let Some(v) = v
        && v < 0
    {
        errors.push(format!(
            "{path}.{field}: Invalid value: {v}: must be greater than or equal to 0"
        ));
    }
}

/// Checks a Job spec's counts and completion mode; `path` is `spec` for a
/// Job and `spec.jobTemplate.spec` in a CronJob.
pub fn validate_job_spec(path: &str, spec: &JobSpec) -> Vec<String> {
    let mut errors = Vec::new();
    non_negative(
        path,
        "parallelism",
        spec.parallelism.map(i64::from),
        &mut errors,
    );
    non_negative(
        path,
        "completions",
        spec.completions.map(i64::from),
        &mut errors,
    );
    non_negative(
        path,
        "activeDeadlineSeconds",
        spec.active_deadline_seconds,
        &mut errors,
    );
    non_negative(
        path,
        "backoffLimit",
        spec.backoff_limit.map(i64::from),
        &mut errors,
    );
    non_negative(
        path,
        "ttlSecondsAfterFinished",
        spec.ttl_seconds_after_finished.map(i64::from),
        &mut errors,
    );
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                errors.push(format!(
                    "{path}.completions: Required value: when completion mode is Indexed"
                ));
            }
        }
        Some(other) => errors.push(format!(
            "{path}.completionMode: Unsupported value: \"{other}\": supported values: \"NonIndexed\", \"Indexed\""
        )),
    }
    errors
}

/// Checks a CronJob's name length, concurrency policy and limits.
pub fn validate_cronjob(name: &str, spec: &CronJobSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if name.len() > MAX_CRONJOB_NAME {
        errors.push(format!(
            "metadata.name: Invalid value: \"{name}\": must be no more than {MAX_CRONJOB_NAME} characters"
        ));
    }
    match spec.concurrency_policy.as_deref() {
        Some("Allow" | "Forbid" | "Replace") => {}
        None | Some("") => errors.push("spec.concurrencyPolicy: Required value".into()),
        Some(other) => errors.push(format!(
            "spec.concurrencyPolicy: Unsupported value: \"{other}\": supported values: \"Allow\", \"Forbid\", \"Replace\""
        )),
    }
    non_negative(
        "spec",
        "startingDeadlineSeconds",
        spec.starting_deadline_seconds,
        &mut errors,
    );
    non_negative(
        "spec",
        "successfulJobsHistoryLimit",
        spec.successful_jobs_history_limit.map(i64::from),
        &mut errors,
    );
    non_negative(
        "spec",
        "failedJobsHistoryLimit",
        spec.failed_jobs_history_limit.map(i64::from),
        &mut errors,
    );
    if let Some(job) = &spec.job_template.spec {
        errors.extend(validate_job_spec("spec.jobTemplate.spec", job));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_counts_and_modes_use_upstream_wording() {
        let spec: JobSpec = serde_yaml::from_str(
            "parallelism: -1\ncompletionMode: Indexed\ntemplate: {spec: {containers: []}}",
        )
        .expect("yaml");
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.completions: Required value: when completion mode is Indexed",
            ]
        );
        let spec: JobSpec =
            serde_yaml::from_str("completionMode: Sometimes\ntemplate: {}").expect("yaml");
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.completionMode: Unsupported value: \"Sometimes\": supported values: \"NonIndexed\", \"Indexed\""
            ]
        );
    }

    #[test]
    fn cronjobs_check_policy_limits_and_name_length() {
        let spec: CronJobSpec = serde_yaml::from_str(
            "schedule: '* * * * *'\nconcurrencyPolicy: Sometimes\nfailedJobsHistoryLimit: -2\njobTemplate: {}",
        )
        .expect("yaml");
        let long = "c".repeat(53);
        assert_eq!(
            validate_cronjob(&long, &spec),
            [
                format!(
                    "metadata.name: Invalid value: \"{long}\": must be no more than 52 characters"
                ),
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"".into(),
                "spec.failedJobsHistoryLimit: Invalid value: -2: must be greater than or equal to 0".into(),
            ]
        );
    }
}
