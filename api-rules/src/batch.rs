//! Jobs and CronJobs (batch/v1): the spec fields upstream's
//! `ValidateJobSpec` and `ValidateCronJobSpec` check besides the template
//! (which [`crate::workloads::validate_controller`] covers). The schedule
//! and time zone are checked by the control plane, which parses them.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::batch::v1::{
    CronJobSpec, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, SuccessPolicy,
};
use serde_json::Value;

use crate::metadata::{dns1123_label_errors, go_quote, qualified_name_errors};
use crate::workloads::{go_label_selector, go_map, go_pointer};

/// Most parallel pods an Indexed Job may ask for.
const MAX_INDEXED_PARALLELISM: i64 = 100_000;
/// Most failed indexes an Indexed Job may tolerate.
const MAX_FAILED_INDEXES: i64 = 100_000;
/// Above this many completions, a Job with a per-index backoff limit must
/// bound its failed indexes and parallelism more tightly.
const COMPLETIONS_SOFT_LIMIT: i64 = 100_000;
const HIGH_COMPLETIONS_LIMIT: i64 = 10_000;
const MAX_FAILURE_POLICY_RULES: usize = 20;
const MAX_EXIT_CODE_VALUES: usize = 255;
const MAX_POD_CONDITION_PATTERNS: usize = 20;
const MAX_SUCCESS_POLICY_RULES: usize = 20;
const MAX_SUCCEEDED_INDEXES_LEN: usize = 64 * 1024;

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
    errors.extend(index_errors(path, spec));
    if let Some(policy) = &spec.pod_failure_policy {
        errors.extend(pod_failure_policy_errors(path, spec, policy));
    }
    if let Some(policy) = &spec.success_policy {
        if spec.completion_mode.as_deref() == Some("Indexed") {
            errors.extend(success_policy_errors(path, spec, policy));
        } else {
            errors.push(format!(
                "{path}.successPolicy: Invalid value: {}: requires indexed completion mode",
                go_success_policy(policy)
            ));
        }
    }
    errors.extend(replacement_policy_errors(path, spec));
    let restart = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref());
    if spec.pod_failure_policy.is_some()
        && let Some(restart) = restart.filter(|r| *r == "OnFailure")
    {
        errors.push(format!(
            "{path}.template.spec.restartPolicy: Invalid value: {}: only \"Never\" is supported when podFailurePolicy is specified",
            go_quote(restart)
        ));
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
        // A CronJob's Jobs always get generated selectors.
        if let Some(selector) = &job.selector {
            errors.push(format!(
                "spec.jobTemplate.spec.selector: Invalid value: {}: `selector` will be auto-generated",
                go_label_selector(selector)
            ));
        }
        if job.manual_selector == Some(true) {
            errors.push(
                "spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: \"nil\", \"false\"".into(),
            );
        }
    }
    errors
}

/// The per-index backoff fields and the limits of Indexed Jobs.
fn index_errors(path: &str, spec: &JobSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let per_index = spec.backoff_limit_per_index.map(i64::from);
    let max_failed = spec.max_failed_indexes.map(i64::from);
    let completions = spec.completions.map(i64::from);
    let parallelism = spec.parallelism.map(i64::from);
    non_negative(path, "backoffLimitPerIndex", per_index, &mut errors);
    non_negative(path, "maxFailedIndexes", max_failed, &mut errors);
    if max_failed.is_some() && per_index.is_none() {
        errors.push(format!(
            "{path}.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified"
        ));
    }
    if spec.completion_mode.as_deref() == Some("Indexed") {
        if let Some(p) = parallelism.filter(|p| *p > MAX_INDEXED_PARALLELISM) {
            errors.push(format!(
                "{path}.parallelism: Invalid value: {p}: must be less than or equal to {MAX_INDEXED_PARALLELISM} when completion mode is Indexed"
            ));
        }
        if let (Some(c), Some(m)) = (completions, max_failed)
            && m > c
        {
            errors.push(format!(
                "{path}.maxFailedIndexes: Invalid value: {m}: must be less than or equal to completions"
            ));
        }
        if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES) {
            errors.push(format!(
                "{path}.maxFailedIndexes: Invalid value: {m}: must be less than or equal to {MAX_FAILED_INDEXES}"
            ));
        }
        if completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT) && per_index.is_some() {
            match max_failed {
                None => errors.push(format!(
                    "{path}.maxFailedIndexes: Required value: must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"
                )),
                Some(m) if m > HIGH_COMPLETIONS_LIMIT => errors.push(format!(
                    "{path}.maxFailedIndexes: Invalid value: {m}: must be less than or equal to {HIGH_COMPLETIONS_LIMIT} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
                )),
                Some(_) => {}
            }
            if let Some(p) = parallelism.filter(|p| *p > HIGH_COMPLETIONS_LIMIT) {
                errors.push(format!(
                    "{path}.parallelism: Invalid value: {p}: must be less than or equal to {HIGH_COMPLETIONS_LIMIT} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
                ));
            }
        }
    } else {
        for (field, value) in [
            ("backoffLimitPerIndex", per_index),
            ("maxFailedIndexes", max_failed),
        ] {
            if let Some(v) = value {
                errors.push(format!(
                    "{path}.{field}: Invalid value: {v}: requires indexed completion mode"
                ));
            }
        }
    }
    errors
}

/// Go's `%q` of a string slice (`["a" "b"]`), as upstream lists valid
/// values in a `Required value` detail.
fn go_quoted_list(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[{}]", quoted.join(" "))
}

fn supported(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    quoted.join(", ")
}

const FAILURE_ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
const EXIT_CODE_OPERATORS: &[&str] = &["In", "NotIn"];
const CONDITION_STATUSES: &[&str] = &["False", "True", "Unknown"];

/// Upstream's `validatePodFailurePolicy`: at most 20 rules, each with a
/// known action and exactly one of `onExitCodes` and `onPodConditions`.
fn pod_failure_policy_errors(path: &str, spec: &JobSpec, policy: &PodFailurePolicy) -> Vec<String> {
    let mut errors = Vec::new();
    let rules_path = format!("{path}.podFailurePolicy.rules");
    if policy.rules.len() > MAX_FAILURE_POLICY_RULES {
        errors.push(format!(
            "{rules_path}: Too many: {}: must have at most {MAX_FAILURE_POLICY_RULES} items",
            policy.rules.len()
        ));
    }
    let pod = spec.template.spec.as_ref();
    let containers: BTreeSet<&str> = pod
        .iter()
        .flat_map(|p| {
            p.containers
                .iter()
                .chain(p.init_containers.iter().flatten())
        })
        .map(|c| c.name.as_str())
        .collect();
    for (i, rule) in policy.rules.iter().enumerate() {
        let rule_path = format!("{rules_path}[{i}]");
        match rule.action.as_str() {
            "" => errors.push(format!(
                "{rule_path}.action: Required value: valid values: {}",
                go_quoted_list(FAILURE_ACTIONS)
            )),
            "FailIndex" if spec.backoff_limit_per_index.is_none() => errors.push(format!(
                "{rule_path}.action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set"
            )),
            a if FAILURE_ACTIONS.contains(&a) => {}
            a => errors.push(format!(
                "{rule_path}.action: Unsupported value: {}: supported values: {}",
                go_quote(a),
                supported(FAILURE_ACTIONS)
            )),
        }
        if let Some(codes) = &rule.on_exit_codes {
            errors.extend(exit_code_errors(
                &format!("{rule_path}.onExitCodes"),
                codes,
                &containers,
            ));
        }
        let conditions = rule.on_pod_conditions.as_deref().unwrap_or_default();
        if !conditions.is_empty() {
            errors.extend(pod_condition_errors(
                &format!("{rule_path}.onPodConditions"),
                conditions,
            ));
        }
        match (rule.on_exit_codes.is_some(), !conditions.is_empty()) {
            (true, true) => errors.push(format!(
                "{rule_path}: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported"
            )),
            (false, false) => errors.push(format!(
                "{rule_path}: Invalid value: specifying one of OnExitCodes and OnPodConditions is required"
            )),
            _ => {}
        }
    }
    errors
}

fn go_int32_slice(values: &[i32]) -> String {
    let items: Vec<String> = values.iter().map(i32::to_string).collect();
    format!("[]int32{{{}}}", items.join(", "))
}

fn exit_code_errors(
    path: &str,
    codes: &PodFailurePolicyOnExitCodesRequirement,
    containers: &BTreeSet<&str>,
) -> Vec<String> {
    let mut errors = Vec::new();
    match codes.operator.as_str() {
        "" => errors.push(format!(
            "{path}.operator: Required value: valid values: {}",
            go_quoted_list(EXIT_CODE_OPERATORS)
        )),
        op if EXIT_CODE_OPERATORS.contains(&op) => {}
        op => errors.push(format!(
            "{path}.operator: Unsupported value: {}: supported values: {}",
            go_quote(op),
            supported(EXIT_CODE_OPERATORS)
        )),
    }
    if let Some(name) = codes
        .container_name
        .as_deref()
        .filter(|n| !containers.contains(n))
    {
        errors.push(format!(
            "{path}.containerName: Invalid value: {}: must be one of the container or initContainer names in the pod template",
            go_quote(name)
        ));
    }
    let values = &codes.values;
    if values.is_empty() {
        errors.push(format!(
            "{path}.values: Invalid value: {}: at least one value is required",
            go_int32_slice(values)
        ));
    } else if values.len() > MAX_EXIT_CODE_VALUES {
        errors.push(format!(
            "{path}.values: Too many: {}: must have at most {MAX_EXIT_CODE_VALUES} items",
            values.len()
        ));
    }
    let mut seen = BTreeSet::new();
    for (j, v) in values.iter().enumerate() {
        if codes.operator == "In" && *v == 0 {
            errors.push(format!(
                "{path}.values[{j}]: Invalid value: 0: must not be 0 for the In operator"
            ));
        }
        if !seen.insert(*v) {
            errors.push(format!("{path}.values[{j}]: Duplicate value: {v}"));
        }
    }
    if values.windows(2).any(|w| w[0] > w[1]) {
        errors.push(format!(
            "{path}.values: Invalid value: {}: must be ordered",
            go_int32_slice(values)
        ));
    }
    errors
}

fn pod_condition_errors(
    path: &str,
    patterns: &[PodFailurePolicyOnPodConditionsPattern],
) -> Vec<String> {
    let mut errors = Vec::new();
    if patterns.len() > MAX_POD_CONDITION_PATTERNS {
        errors.push(format!(
            "{path}: Too many: {}: must have at most {MAX_POD_CONDITION_PATTERNS} items",
            patterns.len()
        ));
    }
    for (j, pattern) in patterns.iter().enumerate() {
        let at = format!("{path}[{j}]");
        for message in qualified_name_errors(&pattern.type_) {
            errors.push(format!(
                "{at}.type: Invalid value: {}: {message}",
                go_quote(&pattern.type_)
            ));
        }
        let status = pattern.status.as_deref().unwrap_or_default();
        match status {
            "" => errors.push(format!(
                "{at}.status: Required value: valid values: {}",
                go_quoted_list(CONDITION_STATUSES)
            )),
            s if CONDITION_STATUSES.contains(&s) => {}
            s => errors.push(format!(
                "{at}.status: Unsupported value: {}: supported values: {}",
                go_quote(s),
                supported(CONDITION_STATUSES)
            )),
        }
    }
    errors
}

/// Go's `%#v` of the internal `batch.SuccessPolicy`.
fn go_success_policy(policy: &SuccessPolicy) -> String {
    let rules: Vec<String> = policy
        .rules
        .iter()
        .map(|r| {
            format!(
                "batch.SuccessPolicyRule{{SucceededIndexes:(*string)({}), SucceededCount:(*int32)({})}}",
                go_pointer(r.succeeded_indexes.is_some()),
                go_pointer(r.succeeded_count.is_some())
            )
        })
        .collect();
    format!(
        "batch.SuccessPolicy{{Rules:[]batch.SuccessPolicyRule{{{}}}}}",
        rules.join(", ")
    )
}

/// Parses `1,3-5` (indexes below `completions`, increasing) into how many
/// indexes it names, or upstream's parse error.
fn count_indexes(indexes: &str, completions: i64) -> Result<i64, String> {
    if indexes.is_empty() {
        return Ok(0);
    }
    let parse = |s: &str| -> Result<i64, String> {
        let v: i64 = s.parse().map_err(|_| {
            format!(
                "cannot convert string to integer for index: {}",
                go_quote(s)
            )
        })?;
        if v >= completions {
            return Err(format!("too large index: {}", go_quote(s)));
        }
        Ok(v)
    };
    let mut last: Option<i64> = None;
    let mut total = 0;
    for interval in indexes.split(',') {
        let parts: Vec<&str> = interval.split('-').collect();
        let (x, y) = match parts.as_slice() {
            [x] => {
                let x = parse(x)?;
                (x, x)
            }
            [x, y] => {
                let (x, y) = (parse(x)?, parse(y)?);
                if x >= y {
                    return Err(format!("non-increasing order, previous: {x}, current: {y}"));
                }
                (x, y)
            }
            _ => {
                return Err(format!(
                    "the fragment {} violates the requirement that an index interval can have at most two parts separated by '-'",
                    go_quote(interval)
                ));
            }
        };
        if let Some(l) = last.filter(|l| *l >= x) {
            return Err(format!("non-increasing order, previous: {l}, current: {x}"));
        }
        total += y - x + 1;
        last = Some(y);
    }
    Ok(total)
}

fn success_policy_errors(path: &str, spec: &JobSpec, policy: &SuccessPolicy) -> Vec<String> {
    let mut errors = Vec::new();
    let rules_path = format!("{path}.successPolicy.rules");
    if policy.rules.is_empty() {
        errors.push(format!(
            "{rules_path}: Required value: at least one rules must be specified when the successPolicy is specified"
        ));
    }
    if policy.rules.len() > MAX_SUCCESS_POLICY_RULES {
        errors.push(format!(
            "{rules_path}: Too many: {}: must have at most {MAX_SUCCESS_POLICY_RULES} items",
            policy.rules.len()
        ));
    }
    // Indexed Jobs without completions are reported on their own.
    let Some(completions) = spec.completions.map(i64::from) else {
        return errors;
    };
    for (i, rule) in policy.rules.iter().enumerate() {
        let at = format!("{rules_path}[{i}]");
        if rule.succeeded_count.is_none() && rule.succeeded_indexes.is_none() {
            errors.push(format!(
                "{at}: Required value: at least one of succeededCount or succeededIndexes must be specified"
            ));
        }
        let mut total = 0;
        if let Some(indexes) = &rule.succeeded_indexes {
            if indexes.len() > MAX_SUCCEEDED_INDEXES_LEN {
                errors.push(format!(
                    "{at}.succeededIndexes: Too long: may not be more than {MAX_SUCCEEDED_INDEXES_LEN} bytes"
                ));
            }
            match count_indexes(indexes, completions) {
                Ok(n) => total = n,
                Err(e) => errors.push(format!(
                    "{at}.succeededIndexes: Invalid value: {}: error parsing succeededIndexes: {e}",
                    go_quote(indexes)
                )),
            }
        }
        if let Some(count) = rule.succeeded_count.map(i64::from) {
            let count_path = format!("{at}.succeededCount");
            if count < 0 {
                errors.push(format!(
                    "{count_path}: Invalid value: {count}: must be greater than or equal to 0"
                ));
            }
            if count > completions {
                errors.push(format!(
                    "{count_path}: Invalid value: {count}: must be less than or equal to {completions} (the number of specified completions)"
                ));
            }
            if rule.succeeded_indexes.is_some() && count > total {
                errors.push(format!(
                    "{count_path}: Invalid value: {count}: must be less than or equal to {total} (the number of indexes in the specified succeededIndexes field)"
                ));
            }
        }
    }
    errors
}

/// With a pod failure policy only `Failed` pods are replaced: a pod still
/// terminating may yet match a rule.
fn replacement_policy_errors(path: &str, spec: &JobSpec) -> Vec<String> {
    let Some(policy) = spec.pod_replacement_policy.as_deref() else {
        return Vec::new();
    };
    let allowed: &[&str] = if spec.pod_failure_policy.is_some() {
        &["Failed"]
    } else {
        &["Failed", "TerminatingOrFailed"]
    };
    if allowed.contains(&policy) {
        return Vec::new();
    }
    vec![format!(
        "{path}.podReplacementPolicy: Unsupported value: {}: supported values: {}",
        go_quote(policy),
        supported(allowed)
    )]
}

/// The labels a generated selector relies on, with the values the Job's
/// name and uid give them.
fn generated_labels<'a>(name: &'a str, uid: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("controller-uid", uid),
        ("job-name", name),
        ("batch.kubernetes.io/controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
    ]
}

/// Checks a Job at creation (upstream's `ValidateJob` beyond the spec):
/// without `manualSelector`, the template carries the generated labels and
/// the selector is the generated one; an Indexed Job's last pod hostname
/// (`<name>-<completions-1>`) must be a DNS label.
pub fn validate_job(name: &str, uid: &str, spec: &JobSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if spec.manual_selector != Some(true)
        && let Some(selector) = &spec.selector
    {
        if uid.is_empty() {
            errors.push("metadata.uid: Required value".into());
        }
        let labels: BTreeMap<String, String> = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        for (key, want) in generated_labels(name, uid) {
            let at = format!("spec.template.metadata.labels[{key}]");
            match labels.get(key) {
                None => errors.push(format!("{at}: Required value: {want}")),
                Some(v) if v != want => errors.push(format!(
                    "{at}: Invalid value: {}: must be '{want}'",
                    go_map(&labels)
                )),
                Some(_) => {}
            }
        }
        let expected: BTreeMap<String, String> = generated_labels(name, uid)
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if !crate::workloads::selector_matches(selector, &expected) {
            errors.push(format!(
                "spec.selector: Invalid value: {}: `selector` not auto-generated",
                go_label_selector(selector)
            ));
        }
    }
    if spec.completion_mode.as_deref() == Some("Indexed")
        && let Some(c) = spec.completions.filter(|c| *c > 0)
    {
        let hostname = format!("{name}-{}", c - 1);
        if !dns1123_label_errors(&hostname).is_empty() {
            errors.push(format!(
                "metadata.name: Invalid value: {}: will not able to create pod with invalid DNS label: {hostname}",
                go_quote(name)
            ));
        }
    }
    errors.extend(validate_job_spec("spec", spec));
    errors
}

/// Upstream's `ValidateJobSpecUpdate` for the fields that may not change
/// (`old` and `new` are the stored and the updated Job). An Indexed Job
/// may change `completions` together with `parallelism` (elastic Jobs).
pub fn job_update_errors(old: &Value, new: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let at = |obj: &Value, field: &str| obj.pointer(&format!("/spec/{field}")).cloned();
    let indexed = at(new, "completionMode").as_ref().and_then(Value::as_str) == Some("Indexed");
    let (before, after) = (at(old, "completions"), at(new, "completions"));
    if before != after {
        if indexed {
            if let Some(c) = after.as_ref().filter(|c| !c.is_null())
                && Some(c) != at(new, "parallelism").as_ref()
            {
                errors.push(format!(
                    "spec.completions: Invalid value: {c}: can only be modified in tandem with spec.parallelism"
                ));
            }
        } else if before.is_some() {
            // A Job stored without completions (parallelism only) keeps
            // accepting the count its defaults would have given it.
            errors.push(immutable("completions", after.as_ref()));
        }
    }
    for field in [
        "selector",
        "template",
        "completionMode",
        "podFailurePolicy",
        "backoffLimitPerIndex",
        "managedBy",
        "successPolicy",
    ] {
        let after = at(new, field);
        if at(old, field) != after {
            errors.push(immutable(field, after.as_ref()));
        }
    }
    errors
}

fn immutable(field: &str, value: Option<&Value>) -> String {
    format!(
        "spec.{field}: Invalid value: {}: field is immutable",
        value.unwrap_or(&Value::Null)
    )
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
    fn job(yaml: &str) -> JobSpec {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    const POD: &str =
        "template: {spec: {restartPolicy: Never, containers: [{name: main, image: busybox}]}}";

    #[test]
    fn pod_failure_policies_use_upstream_wording() {
        let spec = job(&format!(
            "{POD}\npodFailurePolicy:\n  rules:\n  - {{action: Explode, onExitCodes: {{operator: Within, values: [1]}}}}\n  - {{action: '', onExitCodes: {{containerName: sidecar, operator: In, values: [0, 3, 3, 2]}}}}\n  - {{action: FailIndex, onPodConditions: [{{type: DisruptionTarget, status: Maybe}}]}}\n  - {{action: Ignore}}\n  - {{action: Count, onExitCodes: {{operator: NotIn, values: [1]}}, onPodConditions: [{{type: 'bad type', status: 'True'}}]}}"
        ));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.podFailurePolicy.rules[0].action: Unsupported value: \"Explode\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
                "spec.podFailurePolicy.rules[0].onExitCodes.operator: Unsupported value: \"Within\": supported values: \"In\", \"NotIn\"",
                "spec.podFailurePolicy.rules[1].action: Required value: valid values: [\"Count\" \"FailIndex\" \"FailJob\" \"Ignore\"]",
                "spec.podFailurePolicy.rules[1].onExitCodes.containerName: Invalid value: \"sidecar\": must be one of the container or initContainer names in the pod template",
                "spec.podFailurePolicy.rules[1].onExitCodes.values[0]: Invalid value: 0: must not be 0 for the In operator",
                "spec.podFailurePolicy.rules[1].onExitCodes.values[2]: Duplicate value: 3",
                "spec.podFailurePolicy.rules[1].onExitCodes.values: Invalid value: []int32{0, 3, 3, 2}: must be ordered",
                "spec.podFailurePolicy.rules[2].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
                "spec.podFailurePolicy.rules[2].onPodConditions[0].status: Unsupported value: \"Maybe\": supported values: \"False\", \"True\", \"Unknown\"",
                "spec.podFailurePolicy.rules[3]: Invalid value: specifying one of OnExitCodes and OnPodConditions is required",
                "spec.podFailurePolicy.rules[4].onPodConditions[0].type: Invalid value: \"bad type\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
                "spec.podFailurePolicy.rules[4]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported",
            ]
        );
        let ok = job(&format!(
            "{POD}\npodFailurePolicy: {{rules: [{{action: FailJob, onExitCodes: {{containerName: main, operator: In, values: [1, 42]}}}}, {{action: Ignore, onPodConditions: [{{type: DisruptionTarget, status: 'True'}}]}}]}}"
        ));
        assert!(validate_job_spec("spec", &ok).is_empty());
    }

    #[test]
    fn pod_failure_policies_need_never_and_failed_replacement() {
        let spec = job(
            "template: {spec: {restartPolicy: OnFailure, containers: [{name: main, image: busybox}]}}\npodReplacementPolicy: TerminatingOrFailed\npodFailurePolicy: {rules: [{action: FailJob, onExitCodes: {operator: In, values: [1]}}]}",
        );
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.podReplacementPolicy: Unsupported value: \"TerminatingOrFailed\": supported values: \"Failed\"",
                "spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
            ]
        );
        let spec = job(&format!("{POD}\npodReplacementPolicy: Sometimes"));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.podReplacementPolicy: Unsupported value: \"Sometimes\": supported values: \"Failed\", \"TerminatingOrFailed\""
            ]
        );
    }

    #[test]
    fn per_index_backoff_needs_indexed_jobs() {
        let spec = job(&format!("{POD}\nmaxFailedIndexes: 2"));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
                "spec.maxFailedIndexes: Invalid value: 2: requires indexed completion mode",
            ]
        );
        let spec = job(&format!(
            "{POD}\ncompletionMode: Indexed\ncompletions: 3\nparallelism: 100001\nbackoffLimitPerIndex: -1\nmaxFailedIndexes: 4"
        ));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.backoffLimitPerIndex: Invalid value: -1: must be greater than or equal to 0",
                "spec.parallelism: Invalid value: 100001: must be less than or equal to 100000 when completion mode is Indexed",
                "spec.maxFailedIndexes: Invalid value: 4: must be less than or equal to completions",
            ]
        );
        let spec = job(&format!(
            "{POD}\ncompletionMode: Indexed\ncompletions: 200000\nparallelism: 20000\nbackoffLimitPerIndex: 1"
        ));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.maxFailedIndexes: Required value: must be specified when completions is above 100000",
                "spec.parallelism: Invalid value: 20000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index",
            ]
        );
    }

    #[test]
    fn success_policies_need_indexed_jobs_and_valid_indexes() {
        let spec = job(&format!(
            "{POD}\nsuccessPolicy: {{rules: [{{succeededCount: 1}}]}}"
        ));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.successPolicy: Invalid value: batch.SuccessPolicy{Rules:[]batch.SuccessPolicyRule{batch.SuccessPolicyRule{SucceededIndexes:(*string)(nil), SucceededCount:(*int32)(0xc000000000)}}}: requires indexed completion mode"
            ]
        );
        let spec = job(&format!(
            "{POD}\ncompletionMode: Indexed\ncompletions: 5\nsuccessPolicy: {{rules: [{{}}, {{succeededIndexes: '0,2-3', succeededCount: 4}}, {{succeededIndexes: '3,1'}}, {{succeededIndexes: '1-7'}}, {{succeededCount: 6}}]}}"
        ));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.successPolicy.rules[0]: Required value: at least one of succeededCount or succeededIndexes must be specified",
                "spec.successPolicy.rules[1].succeededCount: Invalid value: 4: must be less than or equal to 3 (the number of indexes in the specified succeededIndexes field)",
                "spec.successPolicy.rules[2].succeededIndexes: Invalid value: \"3,1\": error parsing succeededIndexes: non-increasing order, previous: 3, current: 1",
                "spec.successPolicy.rules[3].succeededIndexes: Invalid value: \"1-7\": error parsing succeededIndexes: too large index: \"7\"",
                "spec.successPolicy.rules[4].succeededCount: Invalid value: 6: must be less than or equal to 5 (the number of specified completions)",
            ]
        );
        let spec = job(&format!(
            "{POD}\ncompletionMode: Indexed\ncompletions: 5\nsuccessPolicy: {{rules: []}}"
        ));
        assert_eq!(
            validate_job_spec("spec", &spec),
            [
                "spec.successPolicy.rules: Required value: at least one rules must be specified when the successPolicy is specified"
            ]
        );
    }

    #[test]
    fn generated_selectors_must_be_left_alone() {
        let labels = "{controller-uid: u1, job-name: pi, batch.kubernetes.io/controller-uid: u1, batch.kubernetes.io/job-name: pi}";
        let spec = job(&format!(
            "selector: {{matchLabels: {{batch.kubernetes.io/controller-uid: u1}}}}\ntemplate: {{metadata: {{labels: {labels}}}, spec: {{restartPolicy: Never, containers: [{{name: c, image: busybox}}]}}}}"
        ));
        assert!(validate_job("pi", "u1", &spec).is_empty());
        let spec = job(
            "selector: {matchLabels: {app: pi, batch.kubernetes.io/controller-uid: u1}}\ntemplate: {metadata: {labels: {app: pi, controller-uid: u1, job-name: other, batch.kubernetes.io/controller-uid: u1, batch.kubernetes.io/job-name: pi}}, spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}",
        );
        assert_eq!(
            validate_job("pi", "u1", &spec),
            [
                "spec.template.metadata.labels[job-name]: Invalid value: map[string]string{\"app\":\"pi\", \"batch.kubernetes.io/controller-uid\":\"u1\", \"batch.kubernetes.io/job-name\":\"pi\", \"controller-uid\":\"u1\", \"job-name\":\"other\"}: must be 'pi'",
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"pi\", \"batch.kubernetes.io/controller-uid\":\"u1\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` not auto-generated",
            ]
        );
        // With manualSelector the user's selector stands, but must still
        // select the template.
        let spec = job(
            "manualSelector: true\nselector: {matchLabels: {app: pi}}\ntemplate: {metadata: {labels: {app: pi}}, spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}",
        );
        assert!(validate_job("pi", "u1", &spec).is_empty());
    }

    #[test]
    fn indexed_job_names_leave_room_for_the_index() {
        let name = "j".repeat(61);
        let spec = job(&format!("{POD}\ncompletionMode: Indexed\ncompletions: 100"));
        assert_eq!(
            validate_job(&name, "u1", &spec),
            [format!(
                "metadata.name: Invalid value: \"{name}\": will not able to create pod with invalid DNS label: {name}-99"
            )]
        );
    }

    #[test]
    fn updates_change_only_what_upstream_allows() {
        let old = serde_json::json!({"spec": {"completions": 2, "parallelism": 2, "completionMode": "Indexed",
            "backoffLimitPerIndex": 1, "template": {"spec": {}}}});
        let mut elastic = old.clone();
        elastic["spec"]["completions"] = 4.into();
        elastic["spec"]["parallelism"] = 4.into();
        assert!(job_update_errors(&old, &elastic).is_empty());
        let mut lopsided = elastic.clone();
        lopsided["spec"]["parallelism"] = 3.into();
        assert_eq!(
            job_update_errors(&old, &lopsided),
            [
                "spec.completions: Invalid value: 4: can only be modified in tandem with spec.parallelism"
            ]
        );
        let mut changed = old.clone();
        changed["spec"]["backoffLimitPerIndex"] = 2.into();
        changed["spec"]["podFailurePolicy"] = serde_json::json!({"rules": []});
        assert_eq!(
            job_update_errors(&old, &changed),
            [
                "spec.podFailurePolicy: Invalid value: {\"rules\":[]}: field is immutable",
                "spec.backoffLimitPerIndex: Invalid value: 2: field is immutable",
            ]
        );
        let plain = serde_json::json!({"spec": {"completions": 1, "completionMode": "NonIndexed"}});
        let mut more = plain.clone();
        more["spec"]["completions"] = 2.into();
        assert_eq!(
            job_update_errors(&plain, &more),
            ["spec.completions: Invalid value: 2: field is immutable"]
        );
    }

    #[test]
    fn cronjob_templates_get_generated_selectors() {
        let spec: CronJobSpec = serde_yaml::from_str(
            "schedule: '* * * * *'\nconcurrencyPolicy: Allow\njobTemplate: {spec: {manualSelector: true, selector: {matchLabels: {app: x}}, template: {spec: {restartPolicy: Never, containers: [{name: c, image: busybox}]}}}}",
        )
        .expect("yaml");
        assert_eq!(
            validate_cronjob("cj", &spec),
            [
                "spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated",
                "spec.jobTemplate.spec.manualSelector: Unsupported value: true: supported values: \"nil\", \"false\"",
            ]
        );
    }
}
