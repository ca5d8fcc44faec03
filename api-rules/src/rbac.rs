//! RBAC (`rbac.authorization.k8s.io`): rules name verbs and either
//! resources in API groups or non-resource URLs (never both, and only
//! cluster-wide); bindings refer to a role in the RBAC group and name
//! users, groups or ServiceAccounts; a binding's `roleRef` never changes.
//! Messages as upstream's `pkg/apis/rbac/validation`.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};

use crate::metadata::{dns1123_subdomain_errors, go_quote, path_segment_errors};
use crate::policy::validate_label_selector;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// A Go `[]string{...}` as `%#v` prints it (upstream's bad value of a list).
fn go_strings(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", quoted.join(", "))
}

fn not_supported(path: &str, value: &str, supported: &[&str]) -> String {
    let supported: Vec<String> = supported.iter().map(|s| go_quote(s)).collect();
    format!(
        "{path}: Unsupported value: {}: supported values: {}",
        go_quote(value),
        supported.join(", ")
    )
}

/// Upstream's `ValidatePolicyRule` at `path` (`rules[0]`).
pub fn validate_policy_rule(rule: &PolicyRule, namespaced: bool, path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if rule.verbs.is_empty() {
        errors.push(format!(
            "{path}.verbs: Required value: verbs must contain at least one value"
        ));
    }
    let non_resource = rule.non_resource_urls.as_deref().unwrap_or_default();
    let groups = rule.api_groups.as_deref().unwrap_or_default();
    let resources = rule.resources.as_deref().unwrap_or_default();
    let names = rule.resource_names.as_deref().unwrap_or_default();
    if !non_resource.is_empty() {
        let value = go_strings(non_resource);
        if namespaced {
            errors.push(format!(
                "{path}.nonResourceURLs: Invalid value: {value}: namespaced rules cannot apply to non-resource URLs"
            ));
        }
        if !groups.is_empty() || !resources.is_empty() || !names.is_empty() {
            errors.push(format!(
                "{path}.nonResourceURLs: Invalid value: {value}: rules cannot apply to both regular resources and non-resource URLs"
            ));
        }
        return errors;
    }
    if groups.is_empty() {
        errors.push(format!(
            "{path}.apiGroups: Required value: resource rules must supply at least one api group"
        ));
    }
    if resources.is_empty() {
        errors.push(format!(
            "{path}.resources: Required value: resource rules must supply at least one resource"
        ));
    }
    errors
}

fn rules_errors(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> Vec<String> {
    rules
        .into_iter()
        .flatten()
        .enumerate()
        .flat_map(|(i, r)| validate_policy_rule(r, namespaced, &format!("rules[{i}]")))
        .collect()
}

/// A Role's rules.
pub fn validate_role(role: &Role) -> Vec<String> {
    rules_errors(role.rules.as_ref(), true)
}

/// A ClusterRole's rules and aggregation rule.
pub fn validate_cluster_role(role: &ClusterRole) -> Vec<String> {
    let mut errors = rules_errors(role.rules.as_ref(), false);
    if let Some(aggregation) = &role.aggregation_rule {
        let selectors = aggregation
            .cluster_role_selectors
            .as_deref()
            .unwrap_or_default();
        if selectors.is_empty() {
            errors.push(
                "aggregationRule.clusterRoleSelectors: Required value: at least one clusterRoleSelector required if aggregationRule is non-nil".to_string(),
            );
        }
        for (i, selector) in selectors.iter().enumerate() {
            errors.extend(validate_label_selector(
                &format!("aggregationRule.clusterRoleSelectors[{i}]"),
                selector,
            ));
        }
    }
    errors
}

/// Upstream's `ValidateRoleBindingSubject` at `path` (`subjects[0]`).
fn validate_subject(subject: &Subject, namespaced: bool, path: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if subject.name.is_empty() {
        errors.push(format!("{path}.name: Required value"));
    }
    let group = subject.api_group.as_deref().unwrap_or_default();
    match subject.kind.as_str() {
        "ServiceAccount" => {
            if !subject.name.is_empty() {
                for m in dns1123_subdomain_errors(&subject.name) {
                    errors.push(format!(
                        "{path}.name: Invalid value: {}: {m}",
                        go_quote(&subject.name)
                    ));
                }
            }
            if !group.is_empty() {
                errors.push(not_supported(&format!("{path}.apiGroup"), group, &[""]));
            }
            if !namespaced && subject.namespace.as_deref().unwrap_or_default().is_empty() {
                errors.push(format!("{path}.namespace: Required value"));
            }
        }
        "User" | "Group" => {
            if group != GROUP {
                errors.push(not_supported(&format!("{path}.apiGroup"), group, &[GROUP]));
            }
        }
        other => errors.push(not_supported(
            &format!("{path}.kind"),
            other,
            &["ServiceAccount", "User", "Group"],
        )),
    }
    errors
}

fn binding_errors(
    role_ref: &RoleRef,
    subjects: Option<&Vec<Subject>>,
    kinds: &[&str],
    namespaced: bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    if role_ref.api_group != GROUP {
        errors.push(not_supported(
            "roleRef.apiGroup",
            &role_ref.api_group,
            &[GROUP],
        ));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errors.push(not_supported("roleRef.kind", &role_ref.kind, kinds));
    }
    if role_ref.name.is_empty() {
        errors.push("roleRef.name: Required value".to_string());
    } else {
        for m in path_segment_errors(&role_ref.name) {
            errors.push(format!(
                "roleRef.name: Invalid value: {}: {m}",
                go_quote(&role_ref.name)
            ));
        }
    }
    for (i, subject) in subjects.into_iter().flatten().enumerate() {
        errors.extend(validate_subject(
            subject,
            namespaced,
            &format!("subjects[{i}]"),
        ));
    }
    errors
}

/// A RoleBinding's role reference and subjects.
pub fn validate_role_binding(binding: &RoleBinding) -> Vec<String> {
    binding_errors(
        &binding.role_ref,
        binding.subjects.as_ref(),
        &["Role", "ClusterRole"],
        true,
    )
}

/// A ClusterRoleBinding's role reference and subjects.
pub fn validate_cluster_role_binding(binding: &ClusterRoleBinding) -> Vec<String> {
    binding_errors(
        &binding.role_ref,
        binding.subjects.as_ref(),
        &["ClusterRole"],
        false,
    )
}

/// Upstream's update rule of both bindings: the role they grant is fixed
/// (delete and re-create to change it).
pub fn validate_role_ref_update(old: &RoleRef, new: &RoleRef) -> Vec<String> {
    if old == new {
        return Vec::new();
    }
    vec![format!(
        "roleRef: Invalid value: rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}: cannot change roleRef",
        go_quote(&new.api_group),
        go_quote(&new.kind),
        go_quote(&new.name)
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(yaml: &str) -> Role {
        serde_yaml::from_str(yaml).expect("role")
    }

    #[test]
    fn rules_need_verbs_and_either_resources_or_urls() {
        let r = role(
            "{metadata: {name: r}, rules: [{apiGroups: [''], resources: [pods]}, {verbs: [get], nonResourceURLs: [/x]}, {verbs: [get]}]}",
        );
        assert_eq!(
            validate_role(&r),
            [
                "rules[0].verbs: Required value: verbs must contain at least one value",
                "rules[1].nonResourceURLs: Invalid value: []string{\"/x\"}: namespaced rules cannot apply to non-resource URLs",
                "rules[2].apiGroups: Required value: resource rules must supply at least one api group",
                "rules[2].resources: Required value: resource rules must supply at least one resource",
            ]
        );
    }

    #[test]
    fn bindings_check_role_refs_and_subjects() {
        let b: ClusterRoleBinding = serde_yaml::from_str(
            "{metadata: {name: b}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: x}, subjects: [{kind: ServiceAccount, name: sa}, {kind: Robot, name: r}, {kind: User, name: u}]}",
        )
        .expect("binding");
        assert_eq!(
            validate_cluster_role_binding(&b),
            [
                "roleRef.kind: Unsupported value: \"Role\": supported values: \"ClusterRole\"",
                "subjects[0].namespace: Required value",
                "subjects[1].kind: Unsupported value: \"Robot\": supported values: \"ServiceAccount\", \"User\", \"Group\"",
                "subjects[2].apiGroup: Unsupported value: \"\": supported values: \"rbac.authorization.k8s.io\"",
            ]
        );
        let changed = RoleRef {
            name: "y".into(),
            ..b.role_ref.clone()
        };
        assert_eq!(
            validate_role_ref_update(&b.role_ref, &changed),
            [
                "roleRef: Invalid value: rbac.RoleRef{APIGroup:\"rbac.authorization.k8s.io\", Kind:\"Role\", Name:\"y\"}: cannot change roleRef"
            ]
        );
    }
}
