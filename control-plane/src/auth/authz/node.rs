//! Upstream's Node authorizer for the HTTP API: a node's user
//! (`system:node:<name>` in `system:nodes`) reads nodes, pods, Services
//! and endpoints, writes its own Node, the status of the pods bound to it,
//! events and its own Lease, and nothing of another node's pods, whatever
//! RBAC grants. Which node a pod is bound to comes from an index that
//! follows the store (upstream's graph, reduced to pods).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use serde_json::Value;
use tokio::sync::mpsc;
use tracing::warn;

use super::{Authorizer, Decision};
use crate::auth::request_info::RequestInfo;
use crate::auth::user::UserInfo;
use crate::registry::kinds;
use crate::registry::watch::watch_prefix;
use crate::store::{EventKind, Store};

/// Pod (`namespace/name`) → the node it is bound to.
#[derive(Default)]
pub struct NodeAuthorizer {
    pods: RwLock<HashMap<String, String>>,
}

fn pod_entry(pod: &Value) -> Option<(String, String)> {
    let ns = pod.pointer("/metadata/namespace")?.as_str()?;
    let name = pod.pointer("/metadata/name")?.as_str()?;
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    Some((format!("{ns}/{name}"), node.to_string()))
}

impl NodeAuthorizer {
    /// Records that pod `namespace/name` is bound to `node` (empty: none).
    pub fn bind(&self, key: String, node: String) {
        let mut pods = self.pods.write().unwrap_or_else(|p| p.into_inner());
        if node.is_empty() {
            pods.remove(&key);
        } else {
            pods.insert(key, node);
        }
    }

    fn forget(&self, key: &str) {
        self.pods
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    fn node_of(&self, namespace: &str, name: &str) -> Option<String> {
        self.pods
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&format!("{namespace}/{name}"))
            .cloned()
    }

    /// Follows the store's pods into the index until the task is dropped.
    pub async fn follow(self: Arc<Self>, store: Arc<dyn Store>) {
        let (tx, mut inputs) = mpsc::unbounded_channel();
        let watch = watch_prefix(store.clone(), kinds::PODS.prefix(), move |event| {
            tx.send(event).is_ok()
        });
        while let Some(input) = inputs.recv().await {
            match input {
                None => match store.list(&kinds::PODS.prefix()).await {
                    Ok(listing) => {
                        let fresh: HashMap<String, String> = listing
                            .items
                            .iter()
                            .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
                            .filter_map(|pod| pod_entry(&pod))
                            .filter(|(_, node)| !node.is_empty())
                            .collect();
                        *self.pods.write().unwrap_or_else(|p| p.into_inner()) = fresh;
                    }
                    Err(error) => warn!(%error, "listing pods for the Node authorizer failed"),
                },
                Some(event) => {
                    let Some((key, node)) = serde_json::from_slice::<Value>(&event.value)
                        .ok()
                        .and_then(|pod| pod_entry(&pod))
                    else {
                        continue;
                    };
                    if event.kind == EventKind::Deleted {
                        self.forget(&key);
                    } else {
                        self.bind(key, node);
                    }
                }
            }
        }
        watch.abort();
    }
}

const READ: [&str; 3] = ["get", "list", "watch"];

fn no_relationship(node: &str) -> Decision {
    Decision::Deny(format!(
        "no relationship found between node '{node}' and this object"
    ))
}

impl Authorizer for NodeAuthorizer {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let Some(node) = user.node_name() else {
            return Decision::NoOpinion(String::new());
        };
        if !request.is_resource_request {
            return Decision::NoOpinion(String::new());
        }
        let verb = request.verb.as_str();
        let reads = READ.contains(&verb);
        match (request.api_group.as_str(), request.resource.as_str()) {
            ("", "nodes") => {
                if reads {
                    Decision::Allow
                } else if verb == "create" || request.name.is_empty() {
                    // Nodes register over the node port, where the
                    // certificate names the only node they may be.
                    Decision::Deny(format!(
                        "node '{node}' may not {verb} nodes through the API"
                    ))
                } else if request.name == node
                    && ["update", "patch"].contains(&verb)
                    && ["", "status"].contains(&request.subresource.as_str())
                {
                    Decision::Allow
                } else {
                    Decision::Deny(format!(
                        "node '{node}' is not allowed to modify node '{}'",
                        request.name
                    ))
                }
            }
            ("", "pods") => {
                if request.name.is_empty() {
                    // Lists and watches (the kubelet selects its own by
                    // field); creating is its mirror pods', left to RBAC.
                    return if reads {
                        Decision::Allow
                    } else {
                        Decision::NoOpinion(String::new())
                    };
                }
                let bound = self.node_of(&request.namespace, &request.name);
                if bound.as_deref() != Some(node) {
                    return no_relationship(node);
                }
                match request.subresource.as_str() {
                    "" if reads => Decision::Allow,
                    "status" if ["get", "update", "patch"].contains(&verb) => Decision::Allow,
                    _ => Decision::NoOpinion(String::new()),
                }
            }
            ("", "events") | ("events.k8s.io", "events")
                if ["create", "update", "patch"].contains(&verb) =>
            {
                Decision::Allow
            }
            ("coordination.k8s.io", "leases")
                if request.namespace == "kube-node-lease"
                    && (request.name == node || request.name.is_empty() && verb == "create") =>
            {
                Decision::Allow
            }
            ("", "services") | ("", "endpoints") | ("discovery.k8s.io", "endpointslices")
                if reads =>
            {
                Decision::Allow
            }
            _ => Decision::NoOpinion(String::new()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn node(name: &str) -> UserInfo {
        UserInfo::authenticated(format!("system:node:{name}"), &["system:nodes"])
    }

    fn ask(authz: &NodeAuthorizer, user: &UserInfo, method: Method, path: &str) -> Decision {
        authz.authorize(user, &RequestInfo::new(&method, path, None))
    }

    #[test]
    fn a_node_touches_only_its_own_node_and_pods() {
        let authz = NodeAuthorizer::default();
        authz.bind("default/mine".into(), "n1".into());
        authz.bind("default/theirs".into(), "n2".into());
        let n1 = node("n1");
        let allow = |m: Method, p: &str| assert_eq!(ask(&authz, &n1, m, p), Decision::Allow, "{p}");
        allow(Method::GET, "/api/v1/nodes");
        allow(Method::GET, "/api/v1/nodes/n2");
        allow(Method::PATCH, "/api/v1/nodes/n1/status");
        allow(Method::GET, "/api/v1/pods");
        allow(Method::GET, "/api/v1/namespaces/default/pods/mine");
        allow(Method::PUT, "/api/v1/namespaces/default/pods/mine/status");
        let deny = |m: Method, p: &str| {
            assert!(matches!(ask(&authz, &n1, m, p), Decision::Deny(_)), "{p}")
        };
        deny(Method::POST, "/api/v1/nodes");
        deny(Method::PUT, "/api/v1/nodes/n2");
        deny(Method::DELETE, "/api/v1/nodes/n2");
        deny(Method::GET, "/api/v1/namespaces/default/pods/theirs");
        deny(Method::PUT, "/api/v1/namespaces/default/pods/theirs/status");
        deny(Method::DELETE, "/api/v1/namespaces/default/pods/theirs");
        deny(Method::POST, "/api/v1/namespaces/default/pods/theirs/exec");
        // Other users are RBAC's business.
        let admin = UserInfo::authenticated("jane", &[]);
        assert!(matches!(
            ask(&authz, &admin, Method::PUT, "/api/v1/nodes/n2"),
            Decision::NoOpinion(_)
        ));
        match ask(
            &authz,
            &n1,
            Method::GET,
            "/api/v1/namespaces/default/pods/theirs",
        ) {
            Decision::Deny(why) => {
                assert_eq!(
                    why,
                    "no relationship found between node 'n1' and this object"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
