//! PodDisruptionBudget specs, as upstream's `ValidatePodDisruptionBudgetSpec`:
//! at most one of `minAvailable` and `maxUnavailable`, each a non-negative
//! int or a percent up to 100%, a valid label selector, and a known
//! `unhealthyPodEvictionPolicy`.

use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::daemonset::{go_int_or_string, int_or_percent_errors};
use crate::metadata::{go_quote, label_value_errors, qualified_name_errors, validate_labels};

/// The policies `unhealthyPodEvictionPolicy` accepts, sorted as upstream lists them.
pub const UNHEALTHY_POD_EVICTION_POLICIES: &[&str] = &["AlwaysAllow", "IfHealthyBudget"];

/// Errors of a PDB's `spec` (each `field: message`).
pub fn validate_pdb_spec(spec: &PodDisruptionBudgetSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if let (Some(min), Some(max)) = (&spec.min_available, &spec.max_unavailable) {
        errors.push(format!(
            "spec: Invalid value: policy.PodDisruptionBudgetSpec{{MinAvailable:{}, MaxUnavailable:{}}}: minAvailable and maxUnavailable cannot be both set",
            go_int_or_string(min),
            go_int_or_string(max)
        ));
    }
    if let Some(min) = &spec.min_available {
        errors.extend(int_or_percent_errors("spec.minAvailable", min));
    }
    if let Some(max) = &spec.max_unavailable {
        errors.extend(int_or_percent_errors("spec.maxUnavailable", max));
    }
    if let Some(selector) = &spec.selector {
        errors.extend(validate_label_selector("spec.selector", selector));
    }
    if let Some(policy) = spec
        .unhealthy_pod_eviction_policy
        .as_deref()
        .filter(|p| !UNHEALTHY_POD_EVICTION_POLICIES.contains(p))
    {
        let supported: Vec<String> = UNHEALTHY_POD_EVICTION_POLICIES
            .iter()
            .map(|p| go_quote(p))
            .collect();
        errors.push(format!(
            "spec.unhealthyPodEvictionPolicy: Unsupported value: {}: supported values: {}",
            go_quote(policy),
            supported.join(", ")
        ));
    }
    errors
}

/// Upstream's `ValidateLabelSelector`: label keys and values, and each
/// expression's operator against its values.
pub fn validate_label_selector(path: &str, selector: &LabelSelector) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(labels) = &selector.match_labels {
        errors.extend(validate_labels(&format!("{path}.matchLabels"), labels));
    }
    for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
        let at = format!("{path}.matchExpressions[{i}]");
        let values = e.values.as_deref().unwrap_or_default();
        match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => errors.push(format!(
                "{at}.values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
            )),
            "Exists" | "DoesNotExist" if !values.is_empty() => errors.push(format!(
                "{at}.values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => errors.push(format!(
                "{at}.operator: Invalid value: {}: not a valid selector operator",
                go_quote(other)
            )),
        }
        for m in qualified_name_errors(&e.key) {
            errors.push(format!(
                "{at}.key: Invalid value: {}: {m}",
                go_quote(&e.key)
            ));
        }
        for (j, v) in values.iter().enumerate() {
            for m in label_value_errors(v) {
                errors.push(format!(
                    "{at}.values[{j}]: Invalid value: {}: {m}",
                    go_quote(v)
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> PodDisruptionBudgetSpec {
        serde_yaml::from_str(yaml).expect("spec")
    }

    #[test]
    fn both_budgets_at_once_are_refused() {
        let errors = validate_pdb_spec(&spec("{minAvailable: 1, maxUnavailable: '50%'}"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].starts_with("spec: Invalid value: ")
                && errors[0].ends_with("minAvailable and maxUnavailable cannot be both set"),
            "{errors:?}"
        );
    }

    #[test]
    fn budgets_are_non_negative_ints_or_percents() {
        assert!(validate_pdb_spec(&spec("{minAvailable: 2}")).is_empty());
        assert!(validate_pdb_spec(&spec("{maxUnavailable: '25%'}")).is_empty());
        assert_eq!(
            validate_pdb_spec(&spec("{minAvailable: -1}")),
            vec!["spec.minAvailable: Invalid value: -1: must be greater than or equal to 0"]
        );
        assert_eq!(
            validate_pdb_spec(&spec("{maxUnavailable: '150%'}")),
            vec![
                "spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"
            ]
        );
        assert!(
            validate_pdb_spec(&spec("{maxUnavailable: 'half'}"))[0].contains(
                "a valid percent string must be a numeric string followed by an ending '%'"
            )
        );
    }

    #[test]
    fn unknown_unhealthy_pod_eviction_policy_is_unsupported() {
        assert!(validate_pdb_spec(&spec("{unhealthyPodEvictionPolicy: AlwaysAllow}")).is_empty());
        assert_eq!(
            validate_pdb_spec(&spec("{unhealthyPodEvictionPolicy: Never}")),
            vec![
                "spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""
            ]
        );
    }

    #[test]
    fn selector_expressions_are_checked_like_upstream() {
        let errors = validate_pdb_spec(&spec(
            "selector: {matchLabels: {'bad key!': x}, matchExpressions: [{key: a, operator: In}, {key: b, operator: Exists, values: [x]}, {key: c, operator: Near}]}",
        ));
        assert_eq!(errors.len(), 4, "{errors:?}");
        assert!(errors[0].starts_with("spec.selector.matchLabels: Invalid value: \"bad key!\""));
        assert_eq!(
            errors[1],
            "spec.selector.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"
        );
        assert_eq!(
            errors[2],
            "spec.selector.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"
        );
        assert_eq!(
            errors[3],
            "spec.selector.matchExpressions[2].operator: Invalid value: \"Near\": not a valid selector operator"
        );
    }
}
