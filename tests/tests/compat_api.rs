//! What clients other than kubectl rely on, against a real control plane:
//! the `status` a created object comes back and is stored with, pod
//! admission defaults, `events.k8s.io/v1`, PodDisruptionBudgets and
//! `pods/eviction`.

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};

fn call(cp: &TestControlPlane, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let (code, text) = http_json(method, &cp.address, path, &body.to_string()).expect("http");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, value)
}

fn create(cp: &TestControlPlane, path: &str, body: Value) -> Value {
    let (code, obj) = call(cp, "POST", path, &body);
    assert_eq!(code, 201, "create {path}: {obj}");
    obj
}

fn get(cp: &TestControlPlane, path: &str) -> Value {
    let (code, obj) = call(cp, "GET", path, &Value::Null);
    assert_eq!(code, 200, "get {path}: {obj}");
    obj
}

fn template() -> Value {
    json!({"metadata": {"labels": {"app": "a"}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

#[tokio::test]
async fn created_objects_carry_their_initial_status() {
    if !kubectl_enabled("created_objects_carry_their_initial_status") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let sel = json!({"matchLabels": {"app": "a"}});
    let cases = [
        (
            "/apis/apps/v1/namespaces/default/deployments",
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                   "spec": {"selector": sel, "template": template()}}),
            json!({}),
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
                   "spec": {"selector": sel, "serviceName": "s", "template": template()}}),
            json!({"replicas": 0, "availableReplicas": 0}),
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": "r"},
                   "spec": {"replicas": 0, "selector": sel, "template": template()}}),
            json!({"replicas": 0}),
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "cj"},
                   "spec": {"schedule": "0 0 1 1 *", "suspend": true, "jobTemplate": {"spec": {"template":
                   {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}}),
            json!({}),
        ),
        (
            "/api/v1/namespaces/default/services",
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                   "spec": {"ports": [{"port": 80}]}}),
            json!({"loadBalancer": {}}),
        ),
        (
            "/api/v1/namespaces",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fresh"}}),
            json!({"phase": "Active"}),
        ),
        (
            "/api/v1/namespaces/default/persistentvolumeclaims",
            json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "pvc"},
                   "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                            "resources": {"requests": {"storage": "1Gi"}}}}),
            json!({"phase": "Pending"}),
        ),
        (
            // A client's status is not stored: the pod starts Pending, with
            // the QoS class of its resources.
            "/api/v1/namespaces/default/pods",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                   "spec": {"containers": [{"name": "c", "image": "busybox",
                            "resources": {"limits": {"cpu": "1", "memory": "64Mi"}}}]},
                   "status": {"phase": "Running"}}),
            json!({"phase": "Pending", "qosClass": "Guaranteed"}),
        ),
    ];
    for (path, body, want) in cases {
        let created = create(&cp, path, body);
        assert_eq!(created["status"], want, "created at {path}: {created}");
        let name = created["metadata"]["name"].as_str().expect("name");
        let stored = get(&cp, &format!("{path}/{name}"));
        // Unchanged since the create, the stored status is the initial one;
        // a controller may have written since (the scheduler's condition, a
        // StatefulSet's first replica counted), and then each initial field
        // is still there, whatever its value now.
        let unchanged =
            stored["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"];
        for (k, v) in want.as_object().expect("object") {
            if unchanged {
                assert_eq!(&stored["status"][k], v, "stored at {path}: {stored}");
            } else {
                assert!(
                    stored["status"].get(k).is_some(),
                    "stored at {path} lost status.{k}: {stored}"
                );
            }
        }
    }
}

#[tokio::test]
async fn pods_get_upstream_admission_defaults() {
    if !kubectl_enabled("pods_get_upstream_admission_defaults") {
        return;
    }
    let cp = TestControlPlane::start_with(&[
        "--default-not-ready-toleration-seconds",
        "300",
        "--default-unreachable-toleration-seconds",
        "11",
    ])
    .await;
    let pod = create(
        &cp,
        "/api/v1/namespaces/default/pods",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    let spec = &pod["spec"];
    assert_eq!(spec["serviceAccountName"], "default", "{pod}");
    assert_eq!(spec["serviceAccount"], "default");
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    assert_eq!(
        spec["tolerations"],
        json!([
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 300},
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
             "effect": "NoExecute", "tolerationSeconds": 11},
        ])
    );
}
