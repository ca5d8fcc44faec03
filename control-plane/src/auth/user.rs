//! The user a request was authenticated as, as upstream's `user.Info`.

use std::collections::BTreeMap;

/// Everyone authenticated is also in this group.
pub const AUTHENTICATED: &str = "system:authenticated";
/// Requests without credentials, where they are allowed at all.
pub const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The user of requests without credentials.
pub const ANONYMOUS: &str = "system:anonymous";
/// Superusers: RBAC is not consulted for them.
pub const MASTERS: &str = "system:masters";
/// Every node's group (`system:node:<name>` users).
pub const NODES: &str = "system:nodes";
/// The prefix of node user names.
pub const NODE_PREFIX: &str = "system:node:";
/// Every ServiceAccount's group.
pub const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";
/// The prefix of ServiceAccount user names
/// (`system:serviceaccount:<namespace>:<name>`).
pub const SERVICE_ACCOUNT_PREFIX: &str = "system:serviceaccount:";

/// An authenticated (or anonymous) user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserInfo {
    /// `jane`, `system:node:node1`, `system:serviceaccount:ns:sa`.
    pub name: String,
    /// Unique id where the authenticator has one (ServiceAccounts, token file).
    pub uid: String,
    /// Groups, always including [`AUTHENTICATED`] or [`UNAUTHENTICATED`].
    pub groups: Vec<String>,
    /// Extra attributes (a ServiceAccount token's pod name and uid).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// An authenticated user with `groups` (plus [`AUTHENTICATED`]).
    pub fn authenticated(name: impl Into<String>, groups: &[&str]) -> Self {
        let mut groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        Self {
            name: name.into(),
            groups,
            ..Self::default()
        }
    }

    /// The anonymous user.
    pub fn anonymous() -> Self {
        Self {
            name: ANONYMOUS.to_string(),
            groups: vec![UNAUTHENTICATED.to_string()],
            ..Self::default()
        }
    }

    /// Whether the user is in `group`.
    pub fn in_group(&self, group: &str) -> bool {
        self.groups.iter().any(|g| g == group)
    }

    /// The node name of a node's user (`system:node:<name>` in
    /// [`NODES`]), as upstream's node identifier.
    pub fn node_name(&self) -> Option<&str> {
        let name = self.name.strip_prefix(NODE_PREFIX)?;
        (self.in_group(NODES) && !name.is_empty()).then_some(name)
    }

    /// `(namespace, name)` of a ServiceAccount's user.
    pub fn service_account(&self) -> Option<(&str, &str)> {
        let rest = self.name.strip_prefix(SERVICE_ACCOUNT_PREFIX)?;
        let (ns, name) = rest.split_once(':')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains(':')).then_some((ns, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_and_service_account_names_are_read_as_upstream() {
        let node = UserInfo::authenticated("system:node:n1", &[NODES]);
        assert_eq!(node.node_name(), Some("n1"));
        assert!(node.in_group(AUTHENTICATED));
        // Without the group it is just a user with an odd name.
        assert_eq!(
            UserInfo::authenticated("system:node:n1", &[]).node_name(),
            None
        );
        let sa = UserInfo::authenticated("system:serviceaccount:lab:robot", &[SERVICE_ACCOUNTS]);
        assert_eq!(sa.service_account(), Some(("lab", "robot")));
        assert_eq!(
            UserInfo::authenticated("system:serviceaccount:lab", &[]).service_account(),
            None
        );
    }
}
