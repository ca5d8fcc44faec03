//! Node restriction on the node gRPC port (upstream's Node authorizer and
//! NodeRestriction admission, for the calls kubelets make there): every
//! call but `Join` comes with a node's client certificate, and the node it
//! names is the only node that call may register, heartbeat, watch or
//! report for.

use skiff_proto::link::PeerInfo;
use tonic::Status;

use crate::auth::user::{NODE_PREFIX, NODES};

/// Label prefixes a node may not set on itself (upstream's
/// NodeRestriction keeps `node-restriction.kubernetes.io/` for the
/// cluster's admins, so workloads can trust nodes carrying them).
const RESTRICTED_LABEL_PREFIXES: &[&str] = &["node-restriction.kubernetes.io/"];

/// The node a call's client certificate names: `system:node:<name>` in
/// `system:nodes`. Anything else is refused: no certificate as
/// Unauthenticated, another user as PermissionDenied.
pub fn node_of(peer: &PeerInfo) -> Result<String, Status> {
    let Some(user) = &peer.user else {
        return Err(Status::unauthenticated(
            "a node client certificate is required (join with a bootstrap token first)",
        ));
    };
    match user.name.strip_prefix(NODE_PREFIX) {
        Some(node) if !node.is_empty() && user.groups.iter().any(|g| g == NODES) => {
            Ok(node.to_string())
        }
        _ => Err(Status::permission_denied(format!(
            "user \"{}\" is not a node: only {NODE_PREFIX}<name> in group {NODES} may call the node registry",
            user.name
        ))),
    }
}

/// Refuses a call by node `actor` about node `target`, in upstream's words.
pub fn may_modify(actor: &str, target: &str) -> Result<(), Status> {
    if actor == target {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "node \"{actor}\" is not allowed to modify node \"{target}\""
        )))
    }
}

/// Refuses a watch by node `actor` of what node `target` is told.
pub fn may_watch(actor: &str, target: &str) -> Result<(), Status> {
    if actor == target {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "node \"{actor}\" is not allowed to watch node \"{target}\""
        )))
    }
}

/// Refuses labels a node may not set on itself.
pub fn may_set_labels<'a>(
    actor: &str,
    labels: impl IntoIterator<Item = &'a String>,
) -> Result<(), Status> {
    for key in labels {
        if RESTRICTED_LABEL_PREFIXES
            .iter()
            .any(|p| key.starts_with(p) || key.contains(&format!(".{p}")))
        {
            return Err(Status::permission_denied(format!(
                "node \"{actor}\" is not allowed to modify labels: {key}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_pki::identity::Subject;

    fn peer(name: &str, groups: &[&str]) -> PeerInfo {
        PeerInfo {
            remote: None,
            user: Some(Subject {
                name: name.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
            }),
        }
    }

    #[test]
    fn only_node_certificates_name_a_node() {
        assert_eq!(
            node_of(&peer("system:node:node1", &[NODES])).expect("a node"),
            "node1"
        );
        let none = node_of(&PeerInfo::default()).expect_err("no certificate");
        assert_eq!(none.code(), tonic::Code::Unauthenticated);
        for (name, groups) in [
            ("system:node:node1", &[][..]),
            ("system:node:", &[NODES][..]),
            ("kubernetes-admin", &["system:masters"][..]),
            ("kube-apiserver-kubelet-client", &["system:masters"][..]),
        ] {
            let refused = node_of(&peer(name, groups)).expect_err(name);
            assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{name}");
        }
    }

    #[test]
    fn a_node_modifies_only_itself() {
        assert!(may_modify("node1", "node1").is_ok());
        let refused = may_modify("node1", "node2").expect_err("another node");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            refused.message(),
            "node \"node1\" is not allowed to modify node \"node2\""
        );
    }

    #[test]
    fn restricted_labels_are_refused() {
        let ok = [
            "topology.kubernetes.io/zone".to_string(),
            "skiff.dev/x".into(),
        ];
        assert!(may_set_labels("n", ok.iter()).is_ok());
        for bad in [
            "node-restriction.kubernetes.io/trusted",
            "a.node-restriction.kubernetes.io/trusted",
        ] {
            let labels = [bad.to_string()];
            assert!(may_set_labels("n", labels.iter()).is_err(), "{bad}");
        }
    }
}
