//! PodDisruptionBudgets and `pods/eviction` against a real control plane,
//! without kubelets: pods bound to a node that never runs them are given
//! a Running/Ready status by hand, so the budget rules (spending
//! `disruptionsAllowed`, 429 when none is left, unhealthy pods, several
//! budgets, dry runs, preconditions) are exercised exactly.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};

const PODS: &str = "/api/v1/namespaces/default/pods";
const PDBS: &str = "/apis/policy/v1/namespaces/default/poddisruptionbudgets";

fn call(cp: &TestControlPlane, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let text = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (code, text) = http_json(method, &cp.address, path, &text).expect("http");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, value)
}

fn merge_patch(cp: &TestControlPlane, path: &str, body: &Value) -> Value {
    let (code, text) = skiff_tests::request_as(
        "PATCH",
        &cp.address,
        path,
        "application/merge-patch+json",
        &body.to_string(),
    )
    .expect("http");
    assert_eq!(code, 200, "patch {path}: {text}");
    serde_json::from_str(&text).expect("json")
}

fn get(cp: &TestControlPlane, path: &str) -> Value {
    let (code, obj) = call(cp, "GET", path, &Value::Null);
    assert_eq!(code, 200, "get {path}: {obj}");
    obj
}

/// A pod bound to a node that does not run it, reported Running and
/// (un)ready as a kubelet would.
fn running_pod(cp: &TestControlPlane, name: &str, labels: Value) {
    let (code, obj) = call(
        cp,
        "POST",
        PODS,
        &json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "labels": labels},
                "spec": {"nodeName": "ghost", "containers": [{"name": "c", "image": "busybox"}]}}),
    );
    assert_eq!(code, 201, "{obj}");
    set_ready(cp, name, true);
}

fn set_ready(cp: &TestControlPlane, name: &str, ready: bool) {
    let flag = if ready { "True" } else { "False" };
    merge_patch(
        cp,
        &format!("{PODS}/{name}/status"),
        &json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": flag}, {"type": "PodScheduled", "status": "True"}]}}),
    );
}

fn evict(cp: &TestControlPlane, name: &str, delete_options: Value) -> (u16, Value) {
    let mut body = json!({"apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": {"name": name, "namespace": "default"}});
    if !delete_options.is_null() {
        body["deleteOptions"] = delete_options;
    }
    call(cp, "POST", &format!("{PODS}/{name}/eviction"), &body)
}

fn wait_status(cp: &TestControlPlane, pdb: &str, want: &Value) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let obj = get(cp, &format!("{PDBS}/{pdb}"));
        let status = &obj["status"];
        let matches = want
            .as_object()
            .expect("object")
            .iter()
            .all(|(k, v)| &status[k] == v);
        if matches {
            return obj;
        }
        assert!(
            Instant::now() < deadline,
            "{pdb}: wanted {want}, have {status}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn deleting(cp: &TestControlPlane, name: &str) -> bool {
    let (code, pod) = call(cp, "GET", &format!("{PODS}/{name}"), &Value::Null);
    code == 404 || pod["metadata"]["deletionTimestamp"].is_string()
}

#[tokio::test]
async fn pod_disruption_budgets_are_validated_and_printed_like_upstream() {
    if !kubectl_enabled("pod_disruption_budgets_are_validated_and_printed_like_upstream") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let both = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "both"},
                      "spec": {"minAvailable": 1, "maxUnavailable": 1, "selector": {}}});
    let (code, status) = call(&cp, "POST", PDBS, &both);
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().is_some_and(|m| m
            .starts_with("PodDisruptionBudget.policy \"both\" is invalid: spec: Invalid value:")
            && m.contains("minAvailable and maxUnavailable cannot be both set")),
        "{status}"
    );
    let policy = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "p"},
                        "spec": {"maxUnavailable": "150%", "unhealthyPodEvictionPolicy": "Never"}});
    let (code, status) = call(&cp, "POST", PDBS, &policy);
    assert_eq!(code, 422, "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("spec.maxUnavailable: Invalid value: intstr.IntOrString{Type:1, IntVal:0, StrVal:\"150%\"}: must not be greater than 100%"), "{message}");
    assert!(message.contains("spec.unhealthyPodEvictionPolicy: Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\""), "{message}");

    // Created with the status upstream's strategy gives, whatever was sent.
    let (code, created) = call(
        &cp,
        "POST",
        PDBS,
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "fresh"},
                "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "none"}}},
                "status": {"disruptionsAllowed": 7}}),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["status"],
        json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
    );
    let (code, _) = call(&cp, "DELETE", &format!("{PDBS}/fresh"), &Value::Null);
    assert_eq!(code, 200);

    let file = cp.manifest(
        "pdb.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  maxUnavailable: 25%\n  selector:\n    matchLabels:\n      app: web\n",
    );
    cp.kubectl_ok(&["apply", "-f", &file]);
    let out = cp.kubectl_ok(&["get", "pdb"]);
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split("  ")
        .filter(|c| !c.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(
        header,
        [
            "NAME",
            "MIN AVAILABLE",
            "MAX UNAVAILABLE",
            "ALLOWED DISRUPTIONS",
            "AGE"
        ],
        "{out}"
    );
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row[..4], ["web", "N/A", "25%", "0"], "{out}");
    let described = cp.kubectl_ok(&["describe", "pdb", "web"]);
    assert!(
        described.contains("Selector:") && described.contains("Allowed disruptions:"),
        "{described}"
    );
    // kubectl's generator sends protobuf.
    cp.kubectl_ok(&[
        "create",
        "poddisruptionbudget",
        "gen",
        "--selector=app=web",
        "--min-available=1",
    ]);
    let generated = get(&cp, &format!("{PDBS}/gen"));
    assert_eq!(
        generated["spec"],
        json!({"minAvailable": 1, "selector": {"matchLabels": {"app": "web"}}})
    );
    let kinds = cp.kubectl_ok(&["api-resources", "--api-group=policy", "--no-headers"]);
    assert!(
        kinds.contains("poddisruptionbudgets") && kinds.contains("pdb"),
        "{kinds}"
    );
    // The status subresource takes only the status.
    merge_patch(
        &cp,
        &format!("{PDBS}/web/status"),
        &json!({"spec": {"maxUnavailable": 3}, "status": {"expectedPods": 9}}),
    );
    let pdb = get(&cp, &format!("{PDBS}/web"));
    assert_eq!(pdb["spec"]["maxUnavailable"], "25%", "{pdb}");
}

#[tokio::test]
async fn evictions_spend_and_respect_disruption_budgets() {
    if !kubectl_enabled("evictions_spend_and_respect_disruption_budgets") {
        return;
    }
    let cp = TestControlPlane::start().await;
    for name in ["web-0", "web-1", "web-2"] {
        running_pod(&cp, name, json!({"app": "web"}));
    }
    let (code, obj) = call(
        &cp,
        "POST",
        PDBS,
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
                "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}),
    );
    assert_eq!(code, 201, "{obj}");
    let pdb = wait_status(
        &cp,
        "web",
        &json!({"currentHealthy": 3, "desiredHealthy": 2, "expectedPods": 3, "disruptionsAllowed": 1, "observedGeneration": 1}),
    );
    let condition = &pdb["status"]["conditions"][0];
    assert_eq!(
        (
            condition["type"].clone(),
            condition["status"].clone(),
            condition["reason"].clone()
        ),
        (
            json!("DisruptionAllowed"),
            json!("True"),
            json!("SufficientPods")
        ),
        "{pdb}"
    );

    // A dry run spends nothing and deletes nothing.
    let (code, status) = evict(&cp, "web-0", json!({"dryRun": ["All"]}));
    assert_eq!(code, 201, "{status}");
    assert!(!deleting(&cp, "web-0"));
    assert_eq!(
        get(&cp, &format!("{PDBS}/web"))["status"]["disruptionsAllowed"],
        1
    );
    // Preconditions of the body hold.
    let (code, status) = evict(&cp, "web-0", json!({"preconditions": {"uid": "not-it"}}));
    assert_eq!(code, 409, "{status}");
    assert!(!deleting(&cp, "web-0"));

    let (code, status) = evict(&cp, "web-0", Value::Null);
    assert_eq!(code, 201, "{status}");
    assert_eq!(
        (status["kind"].clone(), status["status"].clone()),
        (json!("Status"), json!("Success"))
    );
    let pod = get(&cp, &format!("{PODS}/web-0"));
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");
    let conditions = pod["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "DisruptionTarget" && c["reason"] == "EvictionByEvictionAPI"),
        "{pod}"
    );
    let pdb = wait_status(
        &cp,
        "web",
        &json!({"currentHealthy": 2, "disruptionsAllowed": 0}),
    );
    assert_eq!(
        pdb["status"]["conditions"][0]["reason"], "InsufficientPods",
        "{pdb}"
    );

    // No disruption left: 429 with the budget as the cause.
    let (code, status) = evict(&cp, "web-1", Value::Null);
    assert_eq!(code, 429, "{status}");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(
        status["message"],
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    assert_eq!(
        status["details"]["causes"][0]["reason"], "DisruptionBudget",
        "{status}"
    );
    assert_eq!(
        status["details"]["causes"][0]["message"],
        "The disruption budget web needs 2 healthy pods and has 2 currently"
    );
    assert!(!deleting(&cp, "web-1"));

    // An unready pod of a disrupted application stays (IfHealthyBudget)...
    set_ready(&cp, "web-2", false);
    wait_status(&cp, "web", &json!({"currentHealthy": 1}));
    let (code, status) = evict(&cp, "web-2", Value::Null);
    assert_eq!(code, 429, "{status}");
    // ...unless the budget always allows evicting unhealthy pods.
    merge_patch(
        &cp,
        &format!("{PDBS}/web"),
        &json!({"spec": {"unhealthyPodEvictionPolicy": "AlwaysAllow"}}),
    );
    wait_status(&cp, "web", &json!({"observedGeneration": 2}));
    let (code, status) = evict(&cp, "web-2", Value::Null);
    assert_eq!(code, 201, "{status}");
    assert!(deleting(&cp, "web-2"));

    // Two budgets over one pod: upstream's 500.
    let (code, obj) = call(
        &cp,
        "POST",
        PDBS,
        &json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "all"},
                "spec": {"maxUnavailable": 1, "selector": {}}}),
    );
    assert_eq!(code, 201, "{obj}");
    let (code, status) = evict(&cp, "web-1", Value::Null);
    assert_eq!(code, 500, "{status}");
    assert_eq!(
        status["message"],
        "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."
    );
    // Bare pods have no scale: a maxUnavailable budget expects none of
    // them and allows nothing.
    let all = wait_status(
        &cp,
        "all",
        &json!({"expectedPods": 0, "disruptionsAllowed": 0, "observedGeneration": 1}),
    );
    assert_eq!(
        all["status"]["conditions"][0]["reason"], "InsufficientPods",
        "{all}"
    );

    // A pod not running yet disrupts nothing: it goes at once.
    let (code, obj) = call(
        &cp,
        "POST",
        PODS,
        &json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "waiting", "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    );
    assert_eq!(code, 201, "{obj}");
    let (code, status) = evict(&cp, "waiting", Value::Null);
    assert_eq!(code, 201, "{status}");
    assert!(deleting(&cp, "waiting"));

    // The body names the pod of the URL; unknown pods are 404; only POST.
    let (code, status) = call(
        &cp,
        "POST",
        &format!("{PODS}/web-1/eviction"),
        &json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "other"}}),
    );
    assert_eq!(code, 400, "{status}");
    assert_eq!(
        status["message"],
        "name in URL does not match name in Eviction object"
    );
    let (code, status) = evict(&cp, "nobody", Value::Null);
    assert_eq!(
        (code, status["reason"].clone()),
        (404, json!("NotFound")),
        "{status}"
    );
    for method in ["GET", "PUT", "PATCH", "DELETE"] {
        let (code, status) = call(&cp, method, &format!("{PODS}/web-1/eviction"), &json!({}));
        assert_eq!(code, 405, "{method}: {status}");
        assert_eq!(status["kind"], "Status");
    }
    assert!(!deleting(&cp, "web-1"));
}

#[tokio::test]
async fn budgets_expect_the_scale_of_the_pods_controllers() {
    if !kubectl_enabled("budgets_expect_the_scale_of_the_pods_controllers") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let file = cp.manifest(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  replicas: 4\n  selector:\n    matchLabels:\n      app: api\n  template:\n    metadata:\n      labels:\n        app: api\n    spec:\n      containers:\n      - name: c\n        image: busybox\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: api\nspec:\n  maxUnavailable: 50%\n  selector:\n    matchLabels:\n      app: api\n",
    );
    cp.kubectl_ok(&["apply", "-f", &file]);
    // Nothing runs (no nodes): 4 expected from the Deployment, 2 must be
    // healthy, none is, so nothing may be disrupted.
    wait_status(
        &cp,
        "api",
        &json!({"expectedPods": 4, "desiredHealthy": 2, "currentHealthy": 0, "disruptionsAllowed": 0}),
    );
    cp.kubectl_ok(&["scale", "deployment", "api", "--replicas=6"]);
    wait_status(&cp, "api", &json!({"expectedPods": 6, "desiredHealthy": 3}));
}
