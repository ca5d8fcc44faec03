//! StatefulSet specs, as upstream's `ValidateStatefulSetSpec`: what every
//! workload shares (selector against template labels, pod template,
//! `restartPolicy: Always`), then what only StatefulSets have: the pod
//! management policy, the governing Service's name (it becomes each pod's
//! subdomain), the update strategy and its rolling budget, the claim
//! retention policy, ordinals, and the claim templates (each one becomes a
//! PersistentVolumeClaim per pod and a volume of that pod, so its name must
//! be a volume name and its spec a valid claim spec).

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{
    RollingUpdateStatefulSetStrategy, StatefulSetSpec, StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::PersistentVolumeClaimSpec;

use crate::daemonset::{go_int_or_string, int_or_percent_errors, int_or_percent_value};
use crate::metadata::{dns1123_label_errors, dns1123_subdomain_errors, go_quote};
use crate::storage::validate_claim_spec;
use crate::workloads::{TemplateRestart, go_label_selector, go_pointer, validate_controller};

/// The claim retention policies, in upstream's order.
const RETENTION_POLICIES: &[&str] = &["Retain", "Delete"];

fn non_negative(path: &str, v: Option<i32>, errors: &mut Vec<String>) {
    if let Some(v) = v.filter(|v| *v < 0) {
        errors.push(format!(
            "{path}: Invalid value: {v}: must be greater than or equal to 0"
        ));
    }
}

/// Every problem with a (defaulted) StatefulSet named `name`.
pub fn validate_statefulset(name: &str, spec: &StatefulSetSpec) -> Vec<String> {
    let mut errors = name_errors(name);
    match spec.pod_management_policy.as_deref() {
        None | Some("OrderedReady" | "Parallel") => {}
        Some("") => errors.push("spec.podManagementPolicy: Required value".into()),
        Some(other) => errors.push(format!(
            "spec.podManagementPolicy: Invalid value: {}: must be 'OrderedReady' or 'Parallel'",
            go_quote(other)
        )),
    }
    if let Some(service) = spec.service_name.as_deref().filter(|s| !s.is_empty()) {
        for message in dns1123_label_errors(service) {
            errors.push(format!(
                "spec.serviceName: Invalid value: {}: {message}",
                go_quote(service)
            ));
        }
    }
    if let Some(strategy) = &spec.update_strategy {
        errors.extend(strategy_errors(strategy));
    }
    if let Some(policy) = &spec.persistent_volume_claim_retention_policy {
        for (field, value) in [
            ("whenDeleted", &policy.when_deleted),
            ("whenScaled", &policy.when_scaled),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !RETENTION_POLICIES.contains(v)) {
                errors.push(format!(
                    "spec.persistentVolumeClaimRetentionPolicy.{field}: Unsupported value: {}: supported values: \"Retain\", \"Delete\"",
                    go_quote(v)
                ));
            }
        }
    }
    non_negative("spec.minReadySeconds", spec.min_ready_seconds, &mut errors);
    non_negative(
        "spec.ordinals.start",
        spec.ordinals.as_ref().and_then(|o| o.start),
        &mut errors,
    );
    let empty_selector = spec
        .selector
        .match_labels
        .as_ref()
        .is_none_or(|m| m.is_empty())
        && spec
            .selector
            .match_expressions
            .as_ref()
            .is_none_or(|e| e.is_empty());
    if empty_selector {
        errors.push(format!(
            "spec.selector: Invalid value: {}: empty selector is invalid for statefulset",
            go_label_selector(&spec.selector)
        ));
    }
    errors.extend(validate_controller(
        (!empty_selector).then_some(&spec.selector),
        Some(&spec.template),
        spec.replicas,
        TemplateRestart::AlwaysOnly,
        "spec.template",
    ));
    if spec
        .template
        .spec
        .as_ref()
        .is_some_and(|s| s.active_deadline_seconds.is_some())
    {
        errors.push(
            "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported".into(),
        );
    }
    errors.extend(claim_template_errors(spec));
    errors
}

/// A StatefulSet's name is each pod's hostname prefix, so upstream holds it
/// to a DNS label; names that fail even as a subdomain are reported by the
/// metadata checks already.
fn name_errors(name: &str) -> Vec<String> {
    if name.is_empty() || !dns1123_subdomain_errors(name).is_empty() {
        return Vec::new();
    }
    dns1123_label_errors(name)
        .into_iter()
        .map(|m| format!("metadata.name: Invalid value: {}: {m}", go_quote(name)))
        .collect()
}

fn strategy_errors(strategy: &StatefulSetUpdateStrategy) -> Vec<String> {
    let path = "spec.updateStrategy";
    match strategy.type_.as_deref() {
        Some("") => vec![format!("{path}: Required value")],
        Some("OnDelete") => match &strategy.rolling_update {
            Some(r) => vec![format!(
                "{path}.rollingUpdate: Invalid value: {}: only allowed for updateStrategy 'RollingUpdate'",
                go_rolling_update(r)
            )],
            None => Vec::new(),
        },
        Some("RollingUpdate") | None => strategy
            .rolling_update
            .as_ref()
            .map(|r| rolling_update_errors(&format!("{path}.rollingUpdate"), r))
            .unwrap_or_default(),
        Some(other) => vec![format!(
            "{path}: Invalid value: apps.StatefulSetUpdateStrategy{{Type:{other:?}, RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)({})}}: must be 'RollingUpdate' or 'OnDelete'",
            go_pointer(strategy.rolling_update.is_some())
        )],
    }
}

/// Go's `%#v` of the internal `RollingUpdateStatefulSetStrategy`.
fn go_rolling_update(r: &RollingUpdateStatefulSetStrategy) -> String {
    format!(
        "apps.RollingUpdateStatefulSetStrategy{{Partition:{}, MaxUnavailable:(*intstr.IntOrString)({})}}",
        r.partition.unwrap_or_default(),
        go_pointer(r.max_unavailable.is_some())
    )
}

fn rolling_update_errors(path: &str, r: &RollingUpdateStatefulSetStrategy) -> Vec<String> {
    let mut errors = Vec::new();
    non_negative(&format!("{path}.partition"), r.partition, &mut errors);
    if let Some(max) = &r.max_unavailable {
        let at = format!("{path}.maxUnavailable");
        let mut range = int_or_percent_errors(&at, max);
        // Upstream reports "cannot be 0" between the syntax and the 100%
        // checks; the two never fire for the same value.
        let over = range
            .iter()
            .position(|e| e.ends_with("must not be greater than 100%"));
        let over = over.map(|i| range.remove(i));
        errors.append(&mut range);
        if int_or_percent_value(max) == 0 {
            errors.push(format!(
                "{at}: Invalid value: {}: cannot be 0",
                go_int_or_string(max)
            ));
        }
        errors.extend(over);
    }
    errors
}

/// Each claim template needs a name that can be a pod volume's (a DNS
/// label, unique among the templates) and a valid claim spec.
fn claim_template_errors(spec: &StatefulSetSpec) -> Vec<String> {
    let mut errors = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, claim) in spec.volume_claim_templates.iter().flatten().enumerate() {
        let path = format!("spec.volumeClaimTemplates[{i}]");
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        if name.is_empty() {
            errors.push(format!("{path}.metadata.name: Required value"));
        } else {
            for message in dns1123_label_errors(name) {
                errors.push(format!(
                    "{path}.metadata.name: Invalid value: {}: {message}",
                    go_quote(name)
                ));
            }
            if !seen.insert(name) {
                errors.push(format!(
                    "{path}.metadata.name: Duplicate value: {}",
                    go_quote(name)
                ));
            }
        }
        let empty = PersistentVolumeClaimSpec::default();
        errors.extend(validate_claim_spec(
            &format!("{path}.spec"),
            claim.spec.as_ref().unwrap_or(&empty),
        ));
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = r#"
serviceName: web
replicas: 2
podManagementPolicy: OrderedReady
updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 0}}
persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Delete}
selector: {matchLabels: {app: web}}
template:
  metadata: {labels: {app: web}}
  spec:
    restartPolicy: Always
    containers: [{name: c, image: busybox, volumeMounts: [{name: data, mountPath: /data}]}]
volumeClaimTemplates:
- metadata: {name: data}
  spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
"#;

    /// The valid spec with `patch` (a YAML mapping) merged over its top level.
    fn spec(patch: &str) -> StatefulSetSpec {
        let mut base: serde_json::Value = serde_yaml::from_str(VALID).expect("base");
        let patch: serde_json::Value = serde_yaml::from_str(patch).expect("patch");
        for (k, v) in patch.as_object().into_iter().flatten() {
            base[k] = v.clone();
        }
        serde_json::from_value(base).expect("spec")
    }

    #[test]
    fn a_full_statefulset_is_valid() {
        assert_eq!(
            validate_statefulset("web", &spec("{}")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn names_and_service_names_are_dns_labels() {
        assert_eq!(
            validate_statefulset("web.v1", &spec("{}")),
            ["metadata.name: Invalid value: \"web.v1\": must not contain dots"]
        );
        assert_eq!(
            validate_statefulset("web", &spec("{serviceName: Web_Svc}")),
            [
                "spec.serviceName: Invalid value: \"Web_Svc\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            ]
        );
        assert!(validate_statefulset("web", &spec("{serviceName: ''}")).is_empty());
    }

    #[test]
    fn policies_use_upstream_wording() {
        assert_eq!(
            validate_statefulset(
                "web",
                &spec(
                    "{podManagementPolicy: Sometimes, persistentVolumeClaimRetentionPolicy: {whenDeleted: Keep, whenScaled: Retain}}"
                )
            ),
            [
                "spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'",
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\"",
            ]
        );
        assert_eq!(
            validate_statefulset("web", &spec("{podManagementPolicy: ''}")),
            ["spec.podManagementPolicy: Required value"]
        );
    }

    #[test]
    fn update_strategies_and_rolling_budgets() {
        assert_eq!(
            validate_statefulset(
                "web",
                &spec("{updateStrategy: {type: OnDelete, rollingUpdate: {partition: 2}}}")
            ),
            [
                "spec.updateStrategy.rollingUpdate: Invalid value: apps.RollingUpdateStatefulSetStrategy{Partition:2, MaxUnavailable:(*intstr.IntOrString)(nil)}: only allowed for updateStrategy 'RollingUpdate'"
            ]
        );
        assert_eq!(
            validate_statefulset("web", &spec("{updateStrategy: {type: Foo}}")),
            [
                "spec.updateStrategy: Invalid value: apps.StatefulSetUpdateStrategy{Type:\"Foo\", RollingUpdate:(*apps.RollingUpdateStatefulSetStrategy)(nil)}: must be 'RollingUpdate' or 'OnDelete'"
            ]
        );
        assert_eq!(
            validate_statefulset(
                "web",
                &spec(
                    "{updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: -1, maxUnavailable: 0}}}"
                )
            ),
            [
                "spec.updateStrategy.rollingUpdate.partition: Invalid value: -1: must be greater than or equal to 0",
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: cannot be 0",
            ]
        );
        assert_eq!(
            validate_statefulset(
                "web",
                &spec(
                    "{updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: '150%'}}}"
                )
            ),
            [
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"
            ]
        );
        assert!(
            validate_statefulset(
                "web",
                &spec("{updateStrategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: '50%'}}}")
            )
            .is_empty()
        );
    }

    #[test]
    fn counts_are_not_negative() {
        assert_eq!(
            validate_statefulset(
                "web",
                &spec("{replicas: -1, minReadySeconds: -2, ordinals: {start: -3}}")
            ),
            [
                "spec.minReadySeconds: Invalid value: -2: must be greater than or equal to 0",
                "spec.ordinals.start: Invalid value: -3: must be greater than or equal to 0",
                "spec.replicas: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
    }

    #[test]
    fn selectors_and_templates() {
        assert_eq!(
            validate_statefulset("web", &spec("{selector: {}}")),
            [
                "spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for statefulset"
            ]
        );
        let mut s = spec("{}");
        if let Some(pod) = s.template.spec.as_mut() {
            pod.active_deadline_seconds = Some(5);
        }
        assert_eq!(
            validate_statefulset("web", &s),
            [
                "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is not Supported"
            ]
        );
    }

    #[test]
    fn claim_templates_are_named_volumes_with_valid_claims() {
        assert_eq!(
            validate_statefulset(
                "web",
                &spec(
                    "{volumeClaimTemplates: [{metadata: {name: data}, spec: {resources: {requests: {storage: 1Gi}}}}, {metadata: {name: data}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 0}}}}, {spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}, {metadata: {name: Logs}, spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}}]}"
                )
            ),
            [
                "spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required",
                "spec.volumeClaimTemplates[1].metadata.name: Duplicate value: \"data\"",
                "spec.volumeClaimTemplates[1].spec.resources.requests[storage]: Invalid value: \"0\": must be greater than zero",
                "spec.volumeClaimTemplates[2].metadata.name: Required value",
                "spec.volumeClaimTemplates[3].metadata.name: Invalid value: \"Logs\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            ]
        );
    }
}
