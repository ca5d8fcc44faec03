//! The RBAC index: every Role's and ClusterRole's rules, and every
//! binding's grant filed under the users and groups it names, so that a
//! request looks up its user's and groups' grants (hash lookups) and
//! checks only their rules.
//!
//! Bindings are few and change rarely: any change to one rebuilds the
//! subject maps from the bindings kept here (no store read).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};

use super::rules::Rule;
use crate::auth::user::{SERVICE_ACCOUNT_PREFIX, UserInfo};

/// What a binding grants: a role, in its namespace or cluster-wide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The RoleBinding's namespace; `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    /// `roleRef.kind == ClusterRole`.
    pub cluster_role: bool,
    /// `roleRef.name`.
    pub role: String,
}

/// A binding as the index keeps it.
#[derive(Debug, Clone)]
struct Binding {
    grant: Grant,
    subjects: Vec<Subject>,
}

/// Roles and bindings, and grants by subject.
#[derive(Debug, Default)]
pub struct Index {
    cluster_roles: HashMap<String, Arc<[Rule]>>,
    /// Namespace → name → rules.
    roles: HashMap<String, HashMap<String, Arc<[Rule]>>>,
    /// `namespace/name` (`/name` for cluster bindings) → binding.
    bindings: HashMap<String, Binding>,
    by_user: HashMap<String, Vec<Grant>>,
    by_group: HashMap<String, Vec<Grant>>,
}

fn rules_of(rules: Option<&Vec<k8s_openapi::api::rbac::v1::PolicyRule>>) -> Arc<[Rule]> {
    rules.into_iter().flatten().map(Rule::from).collect()
}

fn binding_key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

impl Index {
    /// Sets (or replaces) a ClusterRole.
    pub fn upsert_cluster_role(&mut self, role: &ClusterRole) {
        let name = role.metadata.name.clone().unwrap_or_default();
        self.cluster_roles
            .insert(name, rules_of(role.rules.as_ref()));
    }

    /// Forgets a ClusterRole.
    pub fn remove_cluster_role(&mut self, name: &str) {
        self.cluster_roles.remove(name);
    }

    /// Sets (or replaces) a Role.
    pub fn upsert_role(&mut self, role: &Role) {
        let namespace = role.metadata.namespace.clone().unwrap_or_default();
        let name = role.metadata.name.clone().unwrap_or_default();
        self.roles
            .entry(namespace)
            .or_default()
            .insert(name, rules_of(role.rules.as_ref()));
    }

    /// Forgets a Role.
    pub fn remove_role(&mut self, namespace: &str, name: &str) {
        if let Some(roles) = self.roles.get_mut(namespace) {
            roles.remove(name);
            if roles.is_empty() {
                self.roles.remove(namespace);
            }
        }
    }

    /// Replaces every ClusterRole.
    pub fn replace_cluster_roles(&mut self, roles: &[ClusterRole]) {
        self.cluster_roles.clear();
        roles.iter().for_each(|r| self.upsert_cluster_role(r));
    }

    /// Replaces every Role.
    pub fn replace_roles(&mut self, roles: &[Role]) {
        self.roles.clear();
        roles.iter().for_each(|r| self.upsert_role(r));
    }

    fn cluster_binding(b: &ClusterRoleBinding) -> (String, Binding) {
        let name = b.metadata.name.as_deref().unwrap_or_default();
        let binding = Binding {
            grant: Grant {
                namespace: None,
                cluster_role: true,
                role: b.role_ref.name.clone(),
            },
            subjects: b.subjects.clone().unwrap_or_default(),
        };
        (binding_key(None, name), binding)
    }

    fn role_binding(b: &RoleBinding) -> (String, Binding) {
        let namespace = b.metadata.namespace.clone().unwrap_or_default();
        let name = b.metadata.name.as_deref().unwrap_or_default();
        let key = binding_key(Some(&namespace), name);
        let binding = Binding {
            grant: Grant {
                namespace: Some(namespace),
                cluster_role: b.role_ref.kind == "ClusterRole",
                role: b.role_ref.name.clone(),
            },
            subjects: b.subjects.clone().unwrap_or_default(),
        };
        (key, binding)
    }

    /// Sets (or replaces) a ClusterRoleBinding.
    pub fn upsert_cluster_binding(&mut self, b: &ClusterRoleBinding) {
        let (key, binding) = Self::cluster_binding(b);
        self.bindings.insert(key, binding);
        self.rebuild_subjects();
    }

    /// Sets (or replaces) a RoleBinding.
    pub fn upsert_role_binding(&mut self, b: &RoleBinding) {
        let (key, binding) = Self::role_binding(b);
        self.bindings.insert(key, binding);
        self.rebuild_subjects();
    }

    /// Forgets a binding (`namespace` `None` for a ClusterRoleBinding).
    pub fn remove_binding(&mut self, namespace: Option<&str>, name: &str) {
        self.bindings.remove(&binding_key(namespace, name));
        self.rebuild_subjects();
    }

    /// Replaces every ClusterRoleBinding.
    pub fn replace_cluster_bindings(&mut self, bindings: &[ClusterRoleBinding]) {
        self.bindings.retain(|_, b| b.grant.namespace.is_some());
        self.bindings
            .extend(bindings.iter().map(Self::cluster_binding));
        self.rebuild_subjects();
    }

    /// Replaces every RoleBinding.
    pub fn replace_role_bindings(&mut self, bindings: &[RoleBinding]) {
        self.bindings.retain(|_, b| b.grant.namespace.is_none());
        self.bindings
            .extend(bindings.iter().map(Self::role_binding));
        self.rebuild_subjects();
    }

    /// Files every binding's grant under the users and groups it names
    /// (ServiceAccounts under their user name, upstream's
    /// `appliesToUser`).
    fn rebuild_subjects(&mut self) {
        self.by_user.clear();
        self.by_group.clear();
        for binding in self.bindings.values() {
            for subject in &binding.subjects {
                let (map, name) = match subject.kind.as_str() {
                    "User" => (&mut self.by_user, subject.name.clone()),
                    "Group" => (&mut self.by_group, subject.name.clone()),
                    "ServiceAccount" => {
                        let namespace = subject
                            .namespace
                            .as_deref()
                            .filter(|n| !n.is_empty())
                            .or(binding.grant.namespace.as_deref());
                        let Some(namespace) = namespace else {
                            continue;
                        };
                        let user = format!("{SERVICE_ACCOUNT_PREFIX}{namespace}:{}", subject.name);
                        (&mut self.by_user, user)
                    }
                    _ => continue,
                };
                let grants = map.entry(name).or_default();
                if !grants.contains(&binding.grant) {
                    grants.push(binding.grant.clone());
                }
            }
        }
    }

    /// The rules of a ClusterRole (`cluster`) or a Role in `namespace`.
    pub fn role_rules(&self, cluster: bool, namespace: &str, name: &str) -> Option<&Arc<[Rule]>> {
        if cluster {
            self.cluster_roles.get(name)
        } else {
            self.roles.get(namespace).and_then(|r| r.get(name))
        }
    }

    /// The rules a grant gives, or the error upstream reports for a
    /// missing role.
    fn rules(&self, grant: &Grant) -> Result<&Arc<[Rule]>, String> {
        let found = if grant.cluster_role {
            self.cluster_roles.get(&grant.role)
        } else {
            grant
                .namespace
                .as_deref()
                .and_then(|ns| self.roles.get(ns))
                .and_then(|roles| roles.get(&grant.role))
        };
        found.ok_or_else(|| {
            let kind = if grant.cluster_role {
                "clusterrole"
            } else {
                "role"
            };
            format!(
                "{kind}.rbac.authorization.k8s.io {:?} not found",
                grant.role
            )
        })
    }

    /// Calls `visit` with every rule `user` holds in `namespace` (`""`:
    /// cluster-wide grants only) until it returns `true`; returns whether
    /// it did, and the missing roles met on the way.
    pub fn visit(
        &self,
        user: &UserInfo,
        namespace: &str,
        mut visit: impl FnMut(&Rule) -> bool,
    ) -> (bool, Vec<String>) {
        let mut errors = Vec::new();
        let grants = self
            .by_user
            .get(&user.name)
            .into_iter()
            .chain(user.groups.iter().filter_map(|g| self.by_group.get(g)))
            .flatten();
        for grant in grants {
            let applies = match &grant.namespace {
                None => true,
                Some(ns) => !namespace.is_empty() && ns == namespace,
            };
            if !applies {
                continue;
            }
            match self.rules(grant) {
                Ok(rules) => {
                    if rules.iter().any(&mut visit) {
                        return (true, errors);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        (false, errors)
    }
}
