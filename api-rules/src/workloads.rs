//! Controllers (ReplicationController, ReplicaSet, Deployment, DaemonSet,
//! StatefulSet, Job, CronJob): selectors against template labels, replica
//! counts, and the pod template.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::pod::validate_pod_spec;

/// Go's `%#v` of a `map[string]string`, as upstream prints template labels.
pub fn go_map(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k:?}:{v:?}")).collect();
    format!("map[string]string{{{}}}", inner.join(", "))
}

/// Go's `%#v` of a `metav1.LabelSelector`, as upstream prints a selector
/// in an `Invalid value` (the type's `String` has a pointer receiver).
pub fn go_label_selector(selector: &LabelSelector) -> String {
    let labels = match &selector.match_labels {
        None => "map[string]string(nil)".to_string(),
        Some(m) => go_map(m),
    };
    let expressions =
        match &selector.match_expressions {
            None => "[]v1.LabelSelectorRequirement(nil)".to_string(),
            Some(list) => {
                let items: Vec<String> = list
                .iter()
                .map(|e| {
                    let values = match &e.values {
                        None => "[]string(nil)".to_string(),
                        Some(v) => format!(
                            "[]string{{{}}}",
                            v.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ")
                        ),
                    };
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{:?}, Operator:{:?}, Values:{values}}}",
                        e.key, e.operator
                    )
                })
                .collect();
                format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
            }
        };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{expressions}}}")
}

/// Whether `selector` selects `labels` (matchLabels and matchExpressions).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let labels_ok = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let expressions_ok = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.clone().unwrap_or_default();
        match e.operator.as_str() {
            "In" => labels.get(&e.key).is_some_and(|v| values.contains(v)),
            "NotIn" => labels.get(&e.key).is_none_or(|v| !values.contains(v)),
            "Exists" => labels.contains_key(&e.key),
            "DoesNotExist" => !labels.contains_key(&e.key),
            _ => false,
        }
    });
    labels_ok && expressions_ok
}

/// What a controller kind allows for its pods' restartPolicy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TemplateRestart {
    /// Deployment, ReplicaSet, RC, DaemonSet, StatefulSet: `Always` only.
    AlwaysOnly,
    /// Job and CronJob: `OnFailure` or `Never`, and it must be set.
    OnFailureOrNever,
}

/// Validates a controller's selector, template and replicas.
/// `selector` is `None` for kinds that default it from the template.
pub fn validate_controller(
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    replicas: Option<i32>,
    restart: TemplateRestart,
    template_path: &str,
) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(r) = replicas
        && r < 0
    {
        errors.push(format!(
            "spec.replicas: Invalid value: {r}: must be greater than or equal to 0"
        ));
    }
    let Some(template) = template else {
        errors.push(format!("{template_path}: Required value"));
        return errors;
    };
    let labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    if let Some(selector) = selector {
        let empty = selector.match_labels.as_ref().is_none_or(|m| m.is_empty())
            && selector
                .match_expressions
                .as_ref()
                .is_none_or(|e| e.is_empty());
        if empty {
            errors.push(
                "spec.selector: Invalid value: \"null\": empty selector is invalid for deployment"
                    .into(),
            );
        } else if !selector_matches(selector, &labels) {
            errors.push(format!(
                "{template_path}.metadata.labels: Invalid value: {}: `selector` does not match template `labels`",
                go_map(&labels)
            ));
        }
    }
    match &template.spec {
        None => errors.push(format!("{template_path}.spec: Required value")),
        Some(spec) => {
            errors.extend(validate_pod_spec(&format!("{template_path}.spec"), spec));
            let policy = spec.restart_policy.as_deref();
            match restart {
                TemplateRestart::AlwaysOnly => {
                    if let Some(p) = policy
                        && p != "Always"
                    {
                        errors.push(format!(
                            "{template_path}.spec.restartPolicy: Unsupported value: \"{p}\": supported values: \"Always\""
                        ));
                    }
                }
                TemplateRestart::OnFailureOrNever => match policy {
                    Some("OnFailure" | "Never") => {}
                    Some(p) => errors.push(format!(
                        "{template_path}.spec.restartPolicy: Unsupported value: \"{p}\": supported values: \"OnFailure\", \"Never\""
                    )),
                    None => errors.push(format!(
                        "{template_path}.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
                    )),
                },
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mismatched_selector_uses_upstream_wording() {
        let selector: LabelSelector =
            serde_yaml::from_str("matchLabels: {app: web}").expect("yaml");
        let template: PodTemplateSpec = serde_yaml::from_str(
            "metadata: {labels: {app: api}}\nspec: {containers: [{name: c, image: busybox}]}",
        )
        .expect("yaml");
        let errors = validate_controller(
            Some(&selector),
            Some(&template),
            Some(1),
            TemplateRestart::AlwaysOnly,
            "spec.template",
        );
        assert_eq!(
            errors,
            [
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"api\"}: `selector` does not match template `labels`"
            ]
        );
    }

    #[test]
    fn jobs_need_on_failure_or_never() {
        let template: PodTemplateSpec =
            serde_yaml::from_str("spec: {containers: [{name: c, image: busybox}]}").expect("yaml");
        let errors = validate_controller(
            None,
            Some(&template),
            None,
            TemplateRestart::OnFailureOrNever,
            "spec.template",
        );
        assert_eq!(
            errors,
            [
                "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
            ]
        );
    }

    #[test]
    fn expressions_select_like_kubernetes() {
        let selector: LabelSelector = serde_yaml::from_str(
            "matchExpressions: [{key: env, operator: In, values: [prod, qa]}, {key: canary, operator: DoesNotExist}]",
        )
        .expect("yaml");
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(selector_matches(&selector, &labels(&[("env", "qa")])));
        assert!(!selector_matches(&selector, &labels(&[("env", "dev")])));
        assert!(!selector_matches(
            &selector,
            &labels(&[("env", "qa"), ("canary", "1")])
        ));
    }
}

/// A Deployment's `spec.strategy` (defaulted): a known type, and no
/// `rollingUpdate` with `Recreate`.
pub fn deployment_strategy_errors(
    strategy: Option<&k8s_openapi::api::apps::v1::DeploymentStrategy>,
) -> Vec<String> {
    let Some(strategy) = strategy else {
        return Vec::new();
    };
    match strategy.type_.as_deref() {
        Some("Recreate") if strategy.rolling_update.is_some() => vec![
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
        ],
        Some("Recreate" | "RollingUpdate") => Vec::new(),
        other => vec![format!(
            "spec.strategy: Unsupported value: apps.DeploymentStrategy{{Type:{:?}, RollingUpdate:(*apps.RollingUpdateDeployment)({})}}: supported values: \"Recreate\", \"RollingUpdate\"",
            other.unwrap_or_default(),
            go_pointer(strategy.rolling_update.is_some())
        )],
    }
}

/// How Go's `%#v` shows a pointer field: `nil`, or an address (never
/// meaningful to a reader, so a fixed one).
pub(crate) fn go_pointer(set: bool) -> &'static str {
    if set { "0xc000000000" } else { "nil" }
}

#[cfg(test)]
mod strategy_tests {
    use super::*;

    #[test]
    fn unknown_strategy_types_are_named_as_upstream_does() {
        let d: k8s_openapi::api::apps::v1::DeploymentStrategy =
            serde_yaml::from_str("{type: Foo}").expect("strategy");
        assert_eq!(
            deployment_strategy_errors(Some(&d)),
            [
                "spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"Foo\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\""
            ]
        );
        let d: k8s_openapi::api::apps::v1::DeploymentStrategy =
            serde_yaml::from_str("{type: Recreate, rollingUpdate: {maxSurge: 1}}")
                .expect("strategy");
        assert_eq!(deployment_strategy_errors(Some(&d)).len(), 1);
    }
}
