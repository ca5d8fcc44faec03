//! Escalation prevention, as upstream's RBAC storage: a Role or
//! ClusterRole may only hold rules its writer holds (unless they may
//! `escalate` roles), and a binding may only grant a role whose rules its
//! writer holds (unless they may `bind` it). `system:masters` may do both.

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role, RoleRef};
use serde_json::Value;

use super::rules::{Rule, compact, uncovered};
use crate::auth::authz::Authorization;
use crate::auth::request_info::RequestInfo;
use crate::auth::user::{MASTERS, UserInfo};
use crate::registry::error::ApiError;
use crate::registry::kinds;
use crate::registry::resource_type::ResourceType;

/// What only a cluster admin holds: needed to write an aggregationRule,
/// which can gather anything.
fn full_authority() -> Vec<Rule> {
    let all = || vec!["*".to_string()];
    vec![
        Rule {
            verbs: all(),
            api_groups: all(),
            resources: all(),
            ..Rule::default()
        },
        Rule {
            verbs: all(),
            non_resource_urls: all(),
            ..Rule::default()
        },
    ]
}

/// May `user` do `verb` (`escalate`, `bind`) on the RBAC `resource`
/// `name` in `namespace`?
fn may(
    authz: &Authorization,
    user: &UserInfo,
    verb: &str,
    resource: &str,
    namespace: &str,
    name: &str,
) -> bool {
    let request = RequestInfo {
        is_resource_request: true,
        verb: verb.to_string(),
        api_group: skiff_api_rules::rbac::GROUP.to_string(),
        api_version: "*".to_string(),
        namespace: namespace.to_string(),
        resource: resource.to_string(),
        name: name.to_string(),
        ..RequestInfo::default()
    };
    authz.allows(user, &request)
}

fn forbidden(rt: &ResourceType, name: &str, why: String) -> ApiError {
    let mut error = ApiError::forbidden(format!("{} {name:?} is forbidden: {why}", rt.qualified()));
    error.details = serde_json::json!({"name": name, "group": rt.group, "kind": rt.plural});
    error
}

/// Upstream's `ConfirmNoEscalation`: `Err` with the rules `wanted` holds
/// that `user` does not hold in `namespace`.
fn confirm(
    authz: &Authorization,
    user: &UserInfo,
    namespace: &str,
    wanted: &[Rule],
) -> Result<(), String> {
    let (held, errors) = authz.rbac.rules_for(user, namespace);
    let held: Vec<&Rule> = held.iter().collect();
    let missing = uncovered(&held, wanted);
    if missing.is_empty() {
        return Ok(());
    }
    let mut lines: Vec<String> = missing.iter().map(compact).collect();
    lines.sort();
    lines.dedup();
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let mut message = format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        lines.join("\n")
    );
    if !errors.is_empty() {
        message.push_str(&format!("; resolution errors: [{}]", errors.join(" ")));
    }
    Err(message)
}

/// `obj` as its `k8s-openapi` type (which insists on `apiVersion` and `kind`).
fn typed<T: k8s_openapi::Resource + serde::de::DeserializeOwned>(
    obj: &Value,
) -> Result<T, serde_json::Error> {
    let mut obj = obj.clone();
    obj["apiVersion"] = T::API_VERSION.into();
    obj["kind"] = T::KIND.into();
    serde_json::from_value(obj)
}

fn rules(policy: Option<&Vec<PolicyRule>>) -> Vec<Rule> {
    policy.into_iter().flatten().map(Rule::from).collect()
}

/// Checks a write of `new` (over `old` on updates) of an RBAC kind by
/// `user`; other kinds pass.
pub fn check(
    authz: &Authorization,
    user: &UserInfo,
    rt: &ResourceType,
    old: Option<&Value>,
    new: &Value,
) -> Result<(), ApiError> {
    if user.in_group(MASTERS) || rt.group != skiff_api_rules::rbac::GROUP {
        return Ok(());
    }
    let name = crate::meta::name(new);
    let namespace = if rt.namespaced {
        crate::meta::namespace(new)
    } else {
        ""
    };
    let decode_error = |e: serde_json::Error| ApiError::bad_request(e.to_string());
    if rt == kinds::ROLES || rt == kinds::CLUSTERROLES {
        // Writes that leave the rules alone (labels, finalizers) grant nothing.
        let unchanged = old.is_some_and(|old| {
            old.get("rules") == new.get("rules")
                && old.get("aggregationRule") == new.get("aggregationRule")
        });
        if unchanged || may(authz, user, "escalate", rt.plural, namespace, name) {
            return Ok(());
        }
        let (wanted, aggregates) = if rt == kinds::ROLES {
            let role: Role = typed(new).map_err(decode_error)?;
            (rules(role.rules.as_ref()), false)
        } else {
            let role: ClusterRole = typed(new).map_err(decode_error)?;
            (rules(role.rules.as_ref()), role.aggregation_rule.is_some())
        };
        confirm(authz, user, namespace, &wanted).map_err(|why| forbidden(rt, name, why))?;
        if aggregates && confirm(authz, user, namespace, &full_authority()).is_err() {
            return Err(forbidden(
                rt,
                name,
                "must have cluster-admin privileges to use the aggregationRule".to_string(),
            ));
        }
        return Ok(());
    }
    let role_ref: RoleRef = serde_json::from_value(new.get("roleRef").cloned().unwrap_or_default())
        .map_err(decode_error)?;
    let (role_rt, role_namespace) = if role_ref.kind == "ClusterRole" {
        (kinds::CLUSTERROLES, "")
    } else {
        (kinds::ROLES, namespace)
    };
    if may(
        authz,
        user,
        "bind",
        role_rt.plural,
        namespace,
        &role_ref.name,
    ) {
        return Ok(());
    }
    let wanted = authz
        .rbac
        .role_rules(
            role_rt == kinds::CLUSTERROLES,
            role_namespace,
            &role_ref.name,
        )
        .ok_or_else(|| ApiError::not_found(role_rt, &role_ref.name))?;
    confirm(authz, user, namespace, &wanted).map_err(|why| forbidden(rt, name, why))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
    use serde_json::json;

    use super::*;
    use crate::auth::authz::Mode;
    use crate::auth::authz::rbac::Rbac;

    fn authz() -> Authorization {
        let rbac = Arc::new(Rbac::default());
        rbac.update(|i| {
            i.upsert_cluster_role(&serde_yaml::from_str::<ClusterRole>(
                "{metadata: {name: pod-reader}, rules: [{verbs: [get, list], apiGroups: [''], resources: [pods]}]}",
            ).expect("role"));
            i.upsert_cluster_role(&serde_yaml::from_str::<ClusterRole>(
                "{metadata: {name: binder}, rules: [{verbs: [bind], apiGroups: [rbac.authorization.k8s.io], resources: [clusterroles], resourceNames: [admin]}]}",
            ).expect("role"));
            i.upsert_cluster_role(&serde_yaml::from_str::<ClusterRole>(
                "{metadata: {name: admin}, rules: [{verbs: ['*'], apiGroups: ['*'], resources: ['*']}]}",
            ).expect("role"));
            i.upsert_cluster_binding(&serde_yaml::from_str::<ClusterRoleBinding>(
                "{metadata: {name: jane}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: pod-reader}, subjects: [{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}]}",
            ).expect("binding"));
            i.upsert_role_binding(&serde_yaml::from_str::<RoleBinding>(
                "{metadata: {name: b, namespace: lab}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: binder}, subjects: [{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}]}",
            ).expect("binding"));
        });
        Authorization::new(&[Mode::Rbac], rbac)
    }

    fn role(verbs: &[&str]) -> Value {
        json!({"metadata": {"name": "r", "namespace": "lab"}, "rules": [{"verbs": verbs, "apiGroups": [""], "resources": ["pods"]}]})
    }

    fn binding(role: &str) -> Value {
        json!({"metadata": {"name": "rb", "namespace": "lab"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role}})
    }

    #[test]
    fn a_role_may_hold_only_what_its_writer_holds() {
        let authz = authz();
        let jane = UserInfo::authenticated("jane", &[]);
        assert!(check(&authz, &jane, kinds::ROLES, None, &role(&["get"])).is_ok());
        let error = check(&authz, &jane, kinds::ROLES, None, &role(&["get", "delete"]))
            .expect_err("escalates");
        assert_eq!(error.code, 403);
        assert_eq!(
            error.message,
            "roles.rbac.authorization.k8s.io \"r\" is forbidden: user \"jane\" (groups=[\"system:authenticated\"]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"pods\"], Verbs:[\"delete\"]}"
        );
        let root = UserInfo::authenticated("root", &[MASTERS]);
        assert!(check(&authz, &root, kinds::ROLES, None, &role(&["*"])).is_ok());
    }

    #[test]
    fn a_binding_needs_the_roles_rules_or_bind_on_it() {
        let authz = authz();
        let jane = UserInfo::authenticated("jane", &[]);
        assert!(
            check(
                &authz,
                &jane,
                kinds::ROLEBINDINGS,
                None,
                &binding("pod-reader")
            )
            .is_ok()
        );
        // `bind` on admin, in lab only.
        assert!(check(&authz, &jane, kinds::ROLEBINDINGS, None, &binding("admin")).is_ok());
        let mut elsewhere = binding("admin");
        elsewhere["metadata"]["namespace"] = json!("other");
        let error =
            check(&authz, &jane, kinds::ROLEBINDINGS, None, &elsewhere).expect_err("escalates");
        error.assert_says("is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}");
        let error =
            check(&authz, &jane, kinds::ROLEBINDINGS, None, &binding("nope")).expect_err("missing");
        assert_eq!(error.code, 404);
    }
}
