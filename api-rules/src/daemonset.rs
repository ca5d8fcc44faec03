//! DaemonSet specs, as upstream's `ValidateDaemonSetSpec`: the controller
//! checks every workload shares (selector against template labels, pod
//! template, `restartPolicy: Always`), then what only DaemonSets have: no
//! `activeDeadlineSeconds`, non-negative counts, and an update strategy
//! whose rolling budget allows exactly one of surge and unavailability.

use k8s_openapi::api::apps::v1::{DaemonSetSpec, DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::workloads::{TemplateRestart, validate_controller};

/// Upstream's `validation.IsValidPercent` message.
const PERCENT_MESSAGE: &str = "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')";

/// Go's `%#v` of an `intstr.IntOrString`, which is how the API server
/// prints one in an `Invalid value` (the type's `String` method has a
/// pointer receiver, so the struct is printed raw).
pub(crate) fn go_int_or_string(v: &IntOrString) -> String {
    match v {
        IntOrString::Int(i) => format!("intstr.IntOrString{{Type:0, IntVal:{i}, StrVal:\"\"}}"),
        IntOrString::String(s) => {
            format!("intstr.IntOrString{{Type:1, IntVal:0, StrVal:{s:?}}}")
        }
    }
}

/// The number of a valid percent (`"25%"` -> 25).
fn percent(s: &str) -> Option<i64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Upstream's `getIntOrPercentValue`: the int, or the percent's number
/// (an invalid string counts as 0, its own error is reported elsewhere).
pub(crate) fn int_or_percent_value(v: &IntOrString) -> i64 {
    match v {
        IntOrString::Int(i) => i64::from(*i),
        IntOrString::String(s) => percent(s).unwrap_or(0),
    }
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent`.
pub(crate) fn int_or_percent_errors(path: &str, v: &IntOrString) -> Vec<String> {
    let mut errors = Vec::new();
    match v {
        IntOrString::Int(i) if *i < 0 => errors.push(format!(
            "{path}: Invalid value: {i}: must be greater than or equal to 0"
        )),
        IntOrString::Int(_) => {}
        IntOrString::String(s) => match percent(s) {
            None => errors.push(format!(
                "{path}: Invalid value: {}: {PERCENT_MESSAGE}",
                go_int_or_string(v)
            )),
            Some(p) if p > 100 => errors.push(format!(
                "{path}: Invalid value: {}: must not be greater than 100%",
                go_int_or_string(v)
            )),
            Some(_) => {}
        },
    }
    errors
}

fn rolling_update_errors(path: &str, r: &RollingUpdateDaemonSet) -> Vec<String> {
    // Defaults (maxUnavailable 1, maxSurge 0) are applied before validation.
    let unavailable = r.max_unavailable.clone().unwrap_or(IntOrString::Int(1));
    let surge = r.max_surge.clone().unwrap_or(IntOrString::Int(0));
    let mut errors = int_or_percent_errors(&format!("{path}.maxUnavailable"), &unavailable);
    errors.extend(int_or_percent_errors(&format!("{path}.maxSurge"), &surge));
    let has_unavailable = int_or_percent_value(&unavailable) != 0;
    let has_surge = int_or_percent_value(&surge) != 0;
    if has_unavailable && has_surge {
        errors.push(format!(
            "{path}.maxSurge: Invalid value: {}: may not be set when maxUnavailable is non-zero",
            go_int_or_string(&surge)
        ));
    } else if !has_unavailable && !has_surge {
        errors.push(format!(
            "{path}.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
        ));
    }
    errors
}

fn strategy_errors(strategy: &DaemonSetUpdateStrategy) -> Vec<String> {
    let path = "spec.updateStrategy";
    match strategy.type_.as_deref().unwrap_or("RollingUpdate") {
        "OnDelete" => Vec::new(),
        "RollingUpdate" => match &strategy.rolling_update {
            Some(r) => rolling_update_errors(&format!("{path}.rollingUpdate"), r),
            None => vec![format!("{path}.rollingUpdate: Required value")],
        },
        other => vec![format!(
            "{path}: Unsupported value: apps.DaemonSetUpdateStrategy{{Type:{other:?}, RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}}: supported values: \"RollingUpdate\", \"OnDelete\""
        )],
    }
}

fn non_negative(path: &str, v: Option<i32>) -> Option<String> {
    v.filter(|v| *v < 0)
        .map(|v| format!("{path}: Invalid value: {v}: must be greater than or equal to 0"))
}

/// Validates a (defaulted) DaemonSet spec; messages as the API server's.
pub fn validate_daemonset_spec(spec: &DaemonSetSpec) -> Vec<String> {
    let mut errors: Vec<String> = validate_controller(
        Some(&spec.selector),
        Some(&spec.template),
        None,
        TemplateRestart::AlwaysOnly,
        "spec.template",
    )
    .into_iter()
    // The shared check words the empty selector for Deployments (as
    // upstream's ReplicaSet rule does); the DaemonSet rule names its kind.
    .map(|e| e.replace("invalid for deployment", "invalid for daemonset"))
    .collect();
    if let Some(s) = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.active_deadline_seconds)
    {
        errors.push(format!(
            "spec.template.spec.activeDeadlineSeconds: Invalid value: {s}: activeDeadlineSeconds in DaemonSet is not Supported"
        ));
    }
    errors.extend(non_negative("spec.minReadySeconds", spec.min_ready_seconds));
    if let Some(strategy) = &spec.update_strategy {
        errors.extend(strategy_errors(strategy));
    }
    errors.extend(non_negative(
        "spec.revisionHistoryLimit",
        spec.revision_history_limit,
    ));
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> DaemonSetSpec {
        let base = "selector: {matchLabels: {app: mon}}\ntemplate:\n  metadata: {labels: {app: mon}}\n  spec: {containers: [{name: c, image: busybox}]}\n";
        serde_yaml::from_str(&format!("{base}{yaml}")).expect("yaml")
    }

    #[test]
    fn a_plain_daemonset_is_valid() {
        assert!(validate_daemonset_spec(&spec("")).is_empty());
        let rolling = spec(
            "updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 25%, maxSurge: 0}}",
        );
        assert!(validate_daemonset_spec(&rolling).is_empty());
        let surge = spec(
            "updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}",
        );
        assert!(validate_daemonset_spec(&surge).is_empty());
        assert!(validate_daemonset_spec(&spec("updateStrategy: {type: OnDelete}")).is_empty());
    }

    #[test]
    fn mismatched_and_empty_selectors_are_refused() {
        let mut s = spec("");
        s.selector = serde_yaml::from_str("matchLabels: {app: other}").expect("yaml");
        assert_eq!(
            validate_daemonset_spec(&s),
            [
                "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"mon\"}: `selector` does not match template `labels`"
            ]
        );
        s.selector = Default::default();
        let errors = validate_daemonset_spec(&s);
        assert!(
            errors
                .iter()
                .any(|e| e.ends_with("empty selector is invalid for daemonset")),
            "{errors:?}"
        );
    }

    #[test]
    fn the_rolling_budget_needs_exactly_one_of_surge_and_unavailability() {
        let both = spec(
            "updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 1, maxSurge: 1}}",
        );
        assert_eq!(
            validate_daemonset_spec(&both),
            [
                "spec.updateStrategy.rollingUpdate.maxSurge: Invalid value: intstr.IntOrString{Type:0, IntVal:1, StrVal:\"\"}: may not be set when maxUnavailable is non-zero"
            ]
        );
        let none = spec(
            "updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0%, maxSurge: 0}}",
        );
        assert_eq!(
            validate_daemonset_spec(&none),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Required value: cannot be 0 when maxSurge is 0"
            ]
        );
        let big =
            spec("updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 150%}}");
        assert_eq!(
            validate_daemonset_spec(&big),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"
            ]
        );
        let negative =
            spec("updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: -1}}");
        assert_eq!(
            validate_daemonset_spec(&negative)[0],
            "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: -1: must be greater than or equal to 0"
        );
        let word =
            spec("updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: one}}");
        assert!(
            validate_daemonset_spec(&word)[0].ends_with("regex used for validation is '[0-9]+%')")
        );
    }

    #[test]
    fn other_strategies_and_fields_are_refused() {
        let unknown = spec("updateStrategy: {type: Recreate}");
        assert_eq!(
            validate_daemonset_spec(&unknown),
            [
                "spec.updateStrategy: Unsupported value: apps.DaemonSetUpdateStrategy{Type:\"Recreate\", RollingUpdate:(*apps.RollingUpdateDaemonSet)(nil)}: supported values: \"RollingUpdate\", \"OnDelete\""
            ]
        );
        let mut s = spec("minReadySeconds: -2\nrevisionHistoryLimit: -1");
        if let Some(pod) = s.template.spec.as_mut() {
            pod.active_deadline_seconds = Some(10);
        }
        assert_eq!(
            validate_daemonset_spec(&s),
            [
                "spec.template.spec.activeDeadlineSeconds: Invalid value: 10: activeDeadlineSeconds in DaemonSet is not Supported",
                "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
                "spec.revisionHistoryLimit: Invalid value: -1: must be greater than or equal to 0"
            ]
        );
    }
}
