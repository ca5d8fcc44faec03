//! RBAC: Roles, ClusterRoles, RoleBindings and ClusterRoleBindings
//! (`rbac.authorization.k8s.io/v1`). Names are path segments (`system:`
//! names hold colons); a binding's `roleRef` is immutable.

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, RoleRef};
use serde_json::{Value, json};
use skiff_api_rules::metadata::NameRule;
use skiff_api_rules::rbac::{
    GROUP, validate_cluster_role, validate_cluster_role_binding, validate_role,
    validate_role_binding, validate_role_ref_update,
};

use super::printing::{Columns, elements, header, row, s, text};
use super::support::{decode, elements_mut, typed_schema, validate_as};
use crate::registry::resource_type::{Behaviour, Errors, ResourceType, rt};

/// `roles.rbac.authorization.k8s.io`.
pub const ROLES: &ResourceType = &rt! {
    GROUP, "v1", "roles", "role", "Role", true, &[], &[], &[], &RoleRules
};

/// `clusterroles.rbac.authorization.k8s.io`.
pub const CLUSTERROLES: &ResourceType = &rt! {
    GROUP, "v1", "clusterroles", "clusterrole", "ClusterRole", false, &[], &[], &[],
    &ClusterRoleRules
};

/// `rolebindings.rbac.authorization.k8s.io`.
pub const ROLEBINDINGS: &ResourceType = &rt! {
    GROUP, "v1", "rolebindings", "rolebinding", "RoleBinding", true, &[], &[], &[],
    &RoleBindingRules
};

/// `clusterrolebindings.rbac.authorization.k8s.io`.
pub const CLUSTERROLEBINDINGS: &ResourceType = &rt! {
    GROUP, "v1", "clusterrolebindings", "clusterrolebinding", "ClusterRoleBinding", false,
    &[], &[], &[], &ClusterRoleBindingRules
};

/// Roles print their name and creation time (upstream's `CREATED AT`).
fn role_columns(obj: &Value) -> Columns {
    let (name, ..) = row(obj);
    (
        header("Name|Created At"),
        vec![name, s(obj.pointer("/metadata/creationTimestamp"))],
    )
}

/// Bindings print the role they grant and, `-o wide`, their subjects by
/// kind (ServiceAccounts as `namespace/name`).
fn binding_columns(obj: &Value) -> Columns {
    let (name, age, ..) = row(obj);
    let role = format!(
        "{}/{}",
        text(obj.pointer("/roleRef/kind")),
        text(obj.pointer("/roleRef/name"))
    );
    let mut by_kind: [Vec<String>; 3] = Default::default();
    for subject in elements(&obj["subjects"]) {
        let name = text(subject.get("name")).to_string();
        match text(subject.get("kind")) {
            "User" => by_kind[0].push(name),
            "Group" => by_kind[1].push(name),
            "ServiceAccount" => {
                by_kind[2].push(format!("{}/{name}", text(subject.get("namespace"))))
            }
            _ => {}
        }
    }
    let [users, groups, accounts] = by_kind.map(|names| names.join(", "));
    (
        header("Name|Role|Age|*Users|*Groups|*ServiceAccounts"),
        vec![name, role, age, users, groups, accounts],
    )
}

/// Upstream's v1 defaults of a binding's subjects: Users and Groups are
/// in the RBAC group, ServiceAccounts in the core one.
fn default_subjects(obj: &mut Value) {
    for subject in elements_mut(obj, "subjects") {
        if subject.get("apiGroup").is_some_and(|g| !g.is_null()) {
            continue;
        }
        let group = match subject.get("kind").and_then(Value::as_str) {
            Some("User" | "Group") => GROUP,
            _ => "",
        };
        subject["apiGroup"] = json!(group);
    }
}

fn role_ref_update(rt: &ResourceType, old: &Value, new: &Value) -> Errors {
    let role_ref = |obj: &Value| -> Result<RoleRef, String> {
        decode(rt, &obj.get("roleRef").cloned().unwrap_or(Value::Null))
    };
    Ok(validate_role_ref_update(&role_ref(old)?, &role_ref(new)?))
}

/// What the registry does with Roles.
pub struct RoleRules;

impl Behaviour for RoleRules {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(rt, obj, |r: Role| validate_role(&r))
    }

    typed_schema!(Role);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        role_columns(obj)
    }
}

/// What the registry does with ClusterRoles.
pub struct ClusterRoleRules;

impl Behaviour for ClusterRoleRules {
    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(rt, obj, |r: ClusterRole| validate_cluster_role(&r))
    }

    typed_schema!(ClusterRole);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        role_columns(obj)
    }
}

/// What the registry does with RoleBindings.
pub struct RoleBindingRules;

impl Behaviour for RoleBindingRules {
    fn defaults(&self, obj: &mut Value) {
        default_subjects(obj);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(rt, obj, |b: RoleBinding| validate_role_binding(&b))
    }

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        role_ref_update(rt, old, new)
    }

    typed_schema!(RoleBinding);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        binding_columns(obj)
    }
}

/// What the registry does with ClusterRoleBindings.
pub struct ClusterRoleBindingRules;

impl Behaviour for ClusterRoleBindingRules {
    fn defaults(&self, obj: &mut Value) {
        default_subjects(obj);
    }

    fn name_rule(&self) -> NameRule {
        NameRule::PathSegment
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(rt, obj, |b: ClusterRoleBinding| {
            validate_cluster_role_binding(&b)
        })
    }

    fn validate_update(&self, rt: &ResourceType, old: &Value, new: &Value) -> Errors {
        role_ref_update(rt, old, new)
    }

    typed_schema!(ClusterRoleBinding);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        binding_columns(obj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bindings_print_their_role_and_subjects_by_kind() {
        let obj = json!({
            "metadata": {"name": "b", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "roleRef": {"kind": "ClusterRole", "name": "view"},
            "subjects": [
                {"kind": "User", "name": "jane"}, {"kind": "User", "name": "joe"},
                {"kind": "ServiceAccount", "name": "robot", "namespace": "lab"},
            ],
        });
        let (columns, cells) = binding_columns(&obj);
        assert_eq!(columns.len(), 6);
        assert_eq!(cells[1], "ClusterRole/view");
        assert_eq!(cells[3..], ["jane, joe", "", "lab/robot"]);
        let (_, cells) = role_columns(&obj);
        assert_eq!(cells, ["b", "2020-01-01T00:00:00Z"]);
    }

    #[test]
    fn subjects_default_to_their_kinds_group() {
        let mut obj = json!({"subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "s"}]});
        default_subjects(&mut obj);
        assert_eq!(obj["subjects"][0]["apiGroup"], GROUP);
        assert_eq!(obj["subjects"][1]["apiGroup"], "");
    }
}
