//! Upstream's bootstrap policy, for the kinds Skiff serves: the
//! cluster-admin, admin, edit and view ClusterRoles (admin, edit and view
//! aggregated from the `system:aggregate-to-*` roles by label, so new
//! kinds extend them as upstream), the discovery and self-review roles
//! everyone authenticated gets, and their bindings.
//!
//! kubeadm's binding of the selfnodeclient role to `system:nodes` (nodes'
//! renewals of their client certificates approved automatically) is made
//! once, when the cluster is new ([`create_initial`]), and never again.
//!
//! [`ensure`] is idempotent: a missing role or binding is created, one
//! marked `rbac.authorization.kubernetes.io/autoupdate: "true"` gets back
//! rules, labels and subjects it lost (what was added is kept), and one
//! set to `"false"` is left alone, as upstream's reconciliation at start.

use serde_json::{Value, json};

use crate::auth::user::{AUTHENTICATED, MASTERS, NODES, SERVICE_ACCOUNTS, UNAUTHENTICATED};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// The annotation that lets reconciliation change a default role.
pub const AUTOUPDATE: &str = "rbac.authorization.kubernetes.io/autoupdate";
/// The label of every bootstrap object.
const BOOTSTRAPPING: (&str, &str) = ("kubernetes.io/bootstrapping", "rbac-defaults");
/// The aggregation labels of the user-facing roles.
pub const AGGREGATE_TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
/// See [`AGGREGATE_TO_ADMIN`].
pub const AGGREGATE_TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
/// See [`AGGREGATE_TO_ADMIN`].
pub const AGGREGATE_TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

/// The role whose holders' kubelet client certificate requests for any
/// node are approved automatically.
pub const NODE_CLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient";
/// The role whose holders' requests for their own kubelet client
/// certificate are approved automatically.
pub const SELF_NODE_CLIENT_ROLE: &str =
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient";
/// kubeadm's binding of [`SELF_NODE_CLIENT_ROLE`] to `system:nodes`.
pub const NODE_AUTOAPPROVE_CERTIFICATE_ROTATION: &str =
    "kubeadm:node-autoapprove-certificate-rotation";

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const READ_WRITE: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn rule(verbs: &[&str], group: &str, resources: &[&str]) -> Value {
    json!({"verbs": verbs, "apiGroups": [group], "resources": resources})
}

fn urls(verbs: &[&str], urls: &[&str]) -> Value {
    json!({"verbs": verbs, "nonResourceURLs": urls})
}

fn cluster_role(
    name: &str,
    labels: &[(&str, &str)],
    rules: Vec<Value>,
    aggregate_from: Option<&str>,
) -> Value {
    let mut all_labels = serde_json::Map::new();
    all_labels.insert(BOOTSTRAPPING.0.into(), BOOTSTRAPPING.1.into());
    for (k, v) in labels {
        all_labels.insert((*k).into(), (*v).into());
    }
    let mut role = json!({
        "metadata": {"name": name, "labels": all_labels, "annotations": {AUTOUPDATE: "true"}},
        "rules": rules,
    });
    if let Some(label) = aggregate_from {
        role["aggregationRule"] =
            json!({"clusterRoleSelectors": [{"matchLabels": {label: "true"}}]});
    }
    role
}

/// The default ClusterRoles.
pub fn cluster_roles() -> Vec<Value> {
    vec![
        cluster_role(
            "cluster-admin",
            &[],
            vec![rule(&["*"], "*", &["*"]), urls(&["*"], &["*"])],
            None,
        ),
        cluster_role(
            "system:discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
            )],
            None,
        ),
        cluster_role(
            "system:basic-user",
            &[],
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                rule(
                    &["create"],
                    "authentication.k8s.io",
                    &["selfsubjectreviews"],
                ),
            ],
            None,
        ),
        // For servers in front of the API that check their callers
        // through it (webhooks, auth proxies), as upstream's.
        cluster_role(
            "system:auth-delegator",
            &[],
            vec![
                rule(&["create"], "authentication.k8s.io", &["tokenreviews"]),
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["subjectaccessreviews"],
                ),
            ],
            None,
        ),
        cluster_role(
            "system:public-info-viewer",
            &[],
            vec![urls(
                &["get"],
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
            )],
            None,
        ),
        cluster_role(
            "system:service-account-issuer-discovery",
            &[],
            vec![urls(
                &["get"],
                &[
                    "/.well-known/openid-configuration",
                    "/.well-known/openid-configuration/",
                    "/openid/v1/jwks",
                    "/openid/v1/jwks/",
                ],
            )],
            None,
        ),
        // What the csrapproving controller checks a requester for before
        // it approves a kubelet's client certificate.
        cluster_role(
            NODE_CLIENT_ROLE,
            &[],
            vec![rule(
                &["create"],
                "certificates.k8s.io",
                &["certificatesigningrequests/nodeclient"],
            )],
            None,
        ),
        cluster_role(
            SELF_NODE_CLIENT_ROLE,
            &[],
            vec![rule(
                &["create"],
                "certificates.k8s.io",
                &["certificatesigningrequests/selfnodeclient"],
            )],
            None,
        ),
        cluster_role("admin", &[], Vec::new(), Some(AGGREGATE_TO_ADMIN)),
        cluster_role(
            "edit",
            &[(AGGREGATE_TO_ADMIN, "true")],
            Vec::new(),
            Some(AGGREGATE_TO_EDIT),
        ),
        cluster_role(
            "view",
            &[(AGGREGATE_TO_EDIT, "true")],
            Vec::new(),
            Some(AGGREGATE_TO_VIEW),
        ),
        cluster_role(
            "system:aggregate-to-admin",
            &[(AGGREGATE_TO_ADMIN, "true")],
            vec![
                rule(
                    &["create"],
                    "authorization.k8s.io",
                    &["localsubjectaccessreviews"],
                ),
                rule(
                    READ_WRITE,
                    "rbac.authorization.k8s.io",
                    &["rolebindings", "roles"],
                ),
            ],
            None,
        ),
        cluster_role(
            "system:aggregate-to-edit",
            &[(AGGREGATE_TO_EDIT, "true")],
            vec![
                rule(
                    READ,
                    "",
                    &[
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                        "secrets",
                        "services/proxy",
                    ],
                ),
                rule(&["impersonate"], "", &["serviceaccounts"]),
                rule(
                    WRITE,
                    "",
                    &[
                        "pods",
                        "pods/attach",
                        "pods/exec",
                        "pods/portforward",
                        "pods/proxy",
                    ],
                ),
                rule(&["create"], "", &["pods/eviction"]),
                rule(
                    WRITE,
                    "",
                    &[
                        "configmaps",
                        "events",
                        "persistentvolumeclaims",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "secrets",
                        "serviceaccounts",
                        "services",
                        "services/proxy",
                    ],
                ),
                rule(&["create"], "", &["serviceaccounts/token"]),
                rule(
                    WRITE,
                    "apps",
                    &[
                        "daemonsets",
                        "deployments",
                        "deployments/rollback",
                        "deployments/scale",
                        "replicasets",
                        "replicasets/scale",
                        "statefulsets",
                        "statefulsets/scale",
                    ],
                ),
                rule(WRITE, "batch", &["cronjobs", "jobs"]),
                rule(WRITE, "policy", &["poddisruptionbudgets"]),
                rule(READ_WRITE, "coordination.k8s.io", &["leases"]),
            ],
            None,
        ),
        cluster_role(
            "system:aggregate-to-view",
            &[(AGGREGATE_TO_VIEW, "true")],
            vec![
                rule(
                    READ,
                    "",
                    &[
                        "configmaps",
                        "endpoints",
                        "persistentvolumeclaims",
                        "persistentvolumeclaims/status",
                        "pods",
                        "replicationcontrollers",
                        "replicationcontrollers/scale",
                        "serviceaccounts",
                        "services",
                        "services/status",
                    ],
                ),
                rule(
                    READ,
                    "",
                    &[
                        "bindings",
                        "events",
                        "limitranges",
                        "namespaces/status",
                        "pods/log",
                        "pods/status",
                        "replicationcontrollers/status",
                        "resourcequotas",
                        "resourcequotas/status",
                    ],
                ),
                rule(READ, "", &["namespaces"]),
                rule(READ, "discovery.k8s.io", &["endpointslices"]),
                rule(
                    READ,
                    "apps",
                    &[
                        "controllerrevisions",
                        "daemonsets",
                        "daemonsets/status",
                        "deployments",
                        "deployments/scale",
                        "deployments/status",
                        "replicasets",
                        "replicasets/scale",
                        "replicasets/status",
                        "statefulsets",
                        "statefulsets/scale",
                        "statefulsets/status",
                    ],
                ),
                rule(
                    READ,
                    "batch",
                    &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
                ),
                rule(
                    READ,
                    "policy",
                    &["poddisruptionbudgets", "poddisruptionbudgets/status"],
                ),
            ],
            None,
        ),
    ]
}

fn binding(name: &str, role: &str, groups: &[&str]) -> Value {
    let subjects: Vec<Value> = groups
        .iter()
        .map(|g| json!({"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": g}))
        .collect();
    json!({
        "metadata": {
            "name": name,
            "labels": {BOOTSTRAPPING.0: BOOTSTRAPPING.1},
            "annotations": {AUTOUPDATE: "true"},
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": subjects,
    })
}

/// The default ClusterRoleBindings.
pub fn cluster_role_bindings() -> Vec<Value> {
    vec![
        binding("cluster-admin", "cluster-admin", &[MASTERS]),
        binding("system:discovery", "system:discovery", &[AUTHENTICATED]),
        binding("system:basic-user", "system:basic-user", &[AUTHENTICATED]),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            &[AUTHENTICATED, UNAUTHENTICATED],
        ),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            &[SERVICE_ACCOUNTS],
        ),
    ]
}

/// The bindings kubeadm makes when it sets a cluster up: created once,
/// with no bootstrapping label nor autoupdate annotation, so a cluster's
/// owner may delete them for good.
pub fn initial_cluster_role_bindings() -> Vec<Value> {
    vec![json!({
        "metadata": {"name": NODE_AUTOAPPROVE_CERTIFICATE_ROTATION},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": SELF_NODE_CLIENT_ROLE,
        },
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": NODES}],
    })]
}

/// Creates [`initial_cluster_role_bindings`] that are missing: call it
/// when a cluster is new, never on later starts.
pub async fn create_initial(objects: &Objects) -> Result<(), StoreError> {
    for binding in initial_cluster_role_bindings() {
        match objects.create(kinds::CLUSTERROLEBINDINGS, binding).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether the store holds no default policy yet: a cluster starting for
/// the first time.
pub async fn is_new(objects: &Objects) -> Result<bool, StoreError> {
    Ok(objects
        .find(kinds::CLUSTERROLES, None, "cluster-admin")
        .await?
        .is_none())
}

/// Adds to `have[key]` (an array) the elements of `want` it lacks;
/// whether it changed.
fn add_missing(have: &mut Value, key: &str, want: &Value) -> bool {
    let mut changed = false;
    for item in want.as_array().into_iter().flatten() {
        let list = &mut have[key];
        if !list.is_array() {
            *list = json!([]);
        }
        if let Some(list) = list.as_array_mut()
            && !list.contains(item)
        {
            list.push(item.clone());
            changed = true;
        }
    }
    changed
}

/// Adds to `meta[field]` (labels, annotations) the keys of `want` it
/// lacks; whether it changed.
fn add_missing_map(meta: &mut Value, field: &str, want: &Value) -> bool {
    let mut changed = false;
    for (k, v) in want.as_object().into_iter().flatten() {
        let map = &mut meta[field];
        if !map.is_object() {
            *map = json!({});
        }
        if map.get(k).is_none() {
            map[k] = v.clone();
            changed = true;
        }
    }
    changed
}

/// What reconciliation puts back into `have` from `want`.
fn reconcile(have: &mut Value, want: &Value) -> bool {
    if have
        .pointer(&format!(
            "/metadata/annotations/{}",
            AUTOUPDATE.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        == Some("false")
    {
        return false;
    }
    let meta = &mut have["metadata"];
    let mut changed = add_missing_map(meta, "labels", &want["metadata"]["labels"]);
    changed |= add_missing_map(meta, "annotations", &want["metadata"]["annotations"]);
    if want.get("aggregationRule").is_some() {
        // The aggregation controller owns an aggregated role's rules.
        if have.get("aggregationRule") != want.get("aggregationRule") {
            have["aggregationRule"] = want["aggregationRule"].clone();
            changed = true;
        }
    } else if want.get("rules").is_some() {
        changed |= add_missing(have, "rules", &want["rules"]);
    }
    if want.get("subjects").is_some() {
        changed |= add_missing(have, "subjects", &want["subjects"]);
    }
    changed
}

/// Creates or reconciles every default role, then every default binding.
pub async fn ensure(objects: &Objects) -> Result<(), StoreError> {
    for (rt, wanted) in [
        (kinds::CLUSTERROLES, cluster_roles()),
        (kinds::CLUSTERROLEBINDINGS, cluster_role_bindings()),
    ] {
        for want in wanted {
            let name = crate::meta::name(&want).to_string();
            match objects
                .update(rt, None, &name, |have| reconcile(have, &want))
                .await
            {
                Ok(_) => {}
                Err(StoreError::NotFound(_)) => match objects.create(rt, want).await {
                    Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn defaults_are_made_once_and_repaired_when_autoupdate() {
        let objects = Objects::in_memory();
        ensure(&objects).await.expect("bootstrap");
        ensure(&objects).await.expect("idempotent");
        let (roles, _) = objects.list(kinds::CLUSTERROLES).await.expect("list");
        assert_eq!(roles.len(), cluster_roles().len());
        // A lost subject comes back; an added one stays.
        objects
            .update(kinds::CLUSTERROLEBINDINGS, None, "system:basic-user", |b| {
                b["subjects"] = json!([{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"}]);
                true
            })
            .await
            .expect("edit");
        ensure(&objects).await.expect("repair");
        let b = objects
            .get(kinds::CLUSTERROLEBINDINGS, None, "system:basic-user")
            .await
            .expect("get");
        assert_eq!(b["subjects"].as_array().map(Vec::len), Some(2));
        // autoupdate=false is left alone; a deleted role is made again.
        objects
            .update(kinds::CLUSTERROLES, None, "system:discovery", |r| {
                r["metadata"]["annotations"][AUTOUPDATE] = json!("false");
                r["rules"] = json!([]);
                true
            })
            .await
            .expect("edit");
        objects
            .delete(kinds::CLUSTERROLES, None, "view")
            .await
            .expect("delete");
        ensure(&objects).await.expect("repair");
        let d = objects
            .get(kinds::CLUSTERROLES, None, "system:discovery")
            .await
            .expect("get");
        assert_eq!(d["rules"], json!([]));
        assert!(objects.get(kinds::CLUSTERROLES, None, "view").await.is_ok());
    }
}
