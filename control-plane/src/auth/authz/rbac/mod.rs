//! The RBAC authorizer: a request is allowed when a rule of a role bound
//! to its user (or one of the user's groups) allows it, cluster-wide
//! through ClusterRoleBindings or in the request's namespace through
//! RoleBindings. Decisions read the [`index::Index`], which [`feed`]
//! keeps following the store.
//!
//! - [`rules`]: rule matching and covering.
//! - [`index`]: roles, bindings and grants by subject.
//! - [`feed`]: the store watches that keep the index current.
//! - [`escalation`]: no one grants what they do not hold.

pub mod escalation;
pub mod feed;
pub mod index;
pub mod rules;

use std::sync::{PoisonError, RwLock};

use super::{Authorizer, Decision};
use crate::auth::request_info::RequestInfo;
use crate::auth::user::UserInfo;

/// The RBAC authorizer and its index.
#[derive(Debug, Default)]
pub struct Rbac {
    /// Written by the feed for each store change (microseconds), read by
    /// every request: a std lock, never held across an await.
    index: RwLock<index::Index>,
}

impl Rbac {
    /// Changes the index.
    pub fn update<T>(&self, change: impl FnOnce(&mut index::Index) -> T) -> T {
        change(&mut self.index.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Every rule `user` holds in `namespace` (cluster-wide ones with
    /// `""`), and the missing roles met; for reviews and escalation checks.
    pub fn rules_for(&self, user: &UserInfo, namespace: &str) -> (Vec<rules::Rule>, Vec<String>) {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let mut held = Vec::new();
        let (_, errors) = index.visit(user, namespace, |r| {
            held.push(r.clone());
            false
        });
        (held, errors)
    }
}

impl Rbac {
    /// The rules of a ClusterRole (`cluster`) or of a Role in `namespace`;
    /// `None` if there is no such role.
    pub fn role_rules(
        &self,
        cluster: bool,
        namespace: &str,
        name: &str,
    ) -> Option<Vec<rules::Rule>> {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        index
            .role_rules(cluster, namespace, name)
            .map(|r| r.to_vec())
    }
}

impl Authorizer for Rbac {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let index = self.index.read().unwrap_or_else(PoisonError::into_inner);
        let (allowed, errors) = index.visit(user, &request.namespace, |rule| rule.allows(request));
        if allowed {
            return Decision::Allow;
        }
        let reason = match errors.as_slice() {
            [] => String::new(),
            [one] => format!("RBAC: {one}"),
            many => format!("RBAC: [{}]", many.join(", ")),
        };
        Decision::NoOpinion(reason)
    }
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};

    use super::*;

    fn from<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).expect("object")
    }

    fn rbac() -> Rbac {
        let rbac = Rbac::default();
        rbac.update(|i| {
            i.upsert_cluster_role(&from::<ClusterRole>(
                "{metadata: {name: view}, rules: [{verbs: [get, list, watch], apiGroups: [''], resources: [pods]}]}",
            ));
            i.upsert_role(&from::<Role>(
                "{metadata: {name: deployer, namespace: lab}, rules: [{verbs: [create], apiGroups: [apps], resources: [deployments]}]}",
            ));
            i.upsert_cluster_binding(&from::<ClusterRoleBinding>(
                "{metadata: {name: viewers}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}, subjects: [{kind: Group, name: viewers, apiGroup: rbac.authorization.k8s.io}]}",
            ));
            i.upsert_role_binding(&from::<RoleBinding>(
                "{metadata: {name: d, namespace: lab}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: deployer}, subjects: [{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}, {kind: ServiceAccount, name: robot}]}",
            ));
            i.upsert_role_binding(&from::<RoleBinding>(
                "{metadata: {name: ghost, namespace: lab}, roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: gone}, subjects: [{kind: User, name: joe, apiGroup: rbac.authorization.k8s.io}]}",
            ));
        });
        rbac
    }

    fn decide(rbac: &Rbac, user: &UserInfo, method: Method, path: &str) -> Decision {
        rbac.authorize(user, &RequestInfo::new(&method, path, None))
    }

    #[test]
    fn bindings_grant_their_roles_rules_in_their_scope() {
        let rbac = rbac();
        let viewer = UserInfo::authenticated("v", &["viewers"]);
        let jane = UserInfo::authenticated("jane", &[]);
        let robot = UserInfo::authenticated("system:serviceaccount:lab:robot", &[]);
        let deploy = "/apis/apps/v1/namespaces/lab/deployments";
        assert_eq!(
            decide(&rbac, &viewer, Method::GET, "/api/v1/pods"),
            Decision::Allow
        );
        assert_eq!(
            decide(&rbac, &viewer, Method::GET, "/api/v1/namespaces/x/pods"),
            Decision::Allow
        );
        assert_ne!(
            decide(&rbac, &viewer, Method::POST, deploy),
            Decision::Allow
        );
        assert_eq!(decide(&rbac, &jane, Method::POST, deploy), Decision::Allow);
        assert_eq!(decide(&rbac, &robot, Method::POST, deploy), Decision::Allow);
        // A RoleBinding gives nothing in another namespace, nor cluster-wide.
        assert_ne!(
            decide(
                &rbac,
                &jane,
                Method::POST,
                "/apis/apps/v1/namespaces/other/deployments"
            ),
            Decision::Allow
        );
        assert_ne!(
            decide(&rbac, &jane, Method::GET, "/apis/apps/v1/deployments"),
            Decision::Allow
        );
        // A binding to a missing role says so.
        let joe = UserInfo::authenticated("joe", &[]);
        assert_eq!(
            decide(&rbac, &joe, Method::GET, "/api/v1/namespaces/lab/pods"),
            Decision::NoOpinion(
                "RBAC: clusterrole.rbac.authorization.k8s.io \"gone\" not found".into()
            )
        );
        // Removing the binding takes the grant away.
        rbac.update(|i| i.remove_binding(Some("lab"), "d"));
        assert_ne!(decide(&rbac, &jane, Method::POST, deploy), Decision::Allow);
    }
}
