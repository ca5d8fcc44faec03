//! `kubectl apply --server-side` against `skiff-control-plane`: field
//! ownership in `metadata.managedFields`, conflicts, `--force-conflicts`,
//! removal of fields a manifest stops setting, and the move from
//! client-side apply.

use serde_json::Value;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::request_as;

const DEPLOY: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web, tier: front}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: skiff.dev/webapp:v1
        ports: [{containerPort: 8080}]
"#;

/// `(manager, operation, subresource)` of every managedFields entry.
fn managers(cp: &TestControlPlane, name: &str) -> Vec<(String, String, String)> {
    let json = cp.kubectl_ok(&["get", "deploy", name, "--show-managed-fields", "-o", "json"]);
    let obj: Value = serde_json::from_str(&json).expect("json");
    let mut out: Vec<(String, String, String)> = obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("manager"), s("operation"), s("subresource"))
        })
        .collect();
    out.sort();
    out
}

fn owned(manager: &str, operation: &str, subresource: &str) -> (String, String, String) {
    (manager.into(), operation.into(), subresource.into())
}

fn replicas(cp: &TestControlPlane, name: &str) -> String {
    cp.kubectl_ok(&["get", "deploy", name, "-o", "jsonpath={.spec.replicas}"])
}

/// Creates by apply, conflicts with `kubectl scale`, forces, removes a
/// dropped label but keeps one another manager set.
#[tokio::test]
async fn server_side_apply_owns_fields_and_reports_conflicts() {
    if !kubectl_enabled("server_side_apply_owns_fields_and_reports_conflicts") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let file = cp.manifest("deploy.yaml", DEPLOY);
    assert_eq!(
        cp.kubectl_ok(&["apply", "--server-side", "-f", &file])
            .trim(),
        "deployment.apps/web serverside-applied"
    );
    assert_eq!(managers(&cp, "web"), [owned("kubectl", "Apply", "")]);
    let json = cp.kubectl_ok(&[
        "get",
        "deploy",
        "web",
        "--show-managed-fields",
        "-o",
        "json",
    ]);
    let obj: Value = serde_json::from_str(&json).expect("json");
    let entry = &obj["metadata"]["managedFields"][0];
    assert_eq!(entry["apiVersion"], "apps/v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].is_string());
    let fields = &entry["fieldsV1"];
    assert_eq!(fields["f:spec"]["f:replicas"], serde_json::json!({}));
    assert_eq!(
        fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"]["f:ports"]
            ["k:{\"containerPort\":8080,\"protocol\":\"TCP\"}"]["."],
        serde_json::json!({})
    );
    assert!(
        !cp.kubectl_ok(&["get", "deploy", "web", "-o", "yaml"])
            .contains("managedFields"),
        "kubectl hides them unless asked"
    );

    cp.kubectl_ok(&["scale", "deploy", "web", "--replicas", "4"]);
    assert_eq!(
        managers(&cp, "web"),
        [
            owned("kubectl", "Apply", ""),
            owned("kubectl", "Update", "scale")
        ]
    );
    let three = cp.manifest(
        "deploy3.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: 3"),
    );
    let err = cp.kubectl_err(&["apply", "--server-side", "-f", &three]);
    assert!(
        err.contains("Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"),
        "{err}"
    );
    assert!(err.contains("--force-conflicts"), "{err}");
    assert_eq!(replicas(&cp, "web"), "4", "a conflict changes nothing");

    // Applying the value the other manager set shares the field.
    let four = cp.manifest(
        "deploy4.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: 4"),
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", &four]);

    cp.kubectl_ok(&["label", "deploy", "web", "tier=back", "--overwrite"]);
    let err = cp.kubectl_err(&["apply", "--server-side", "-f", &three]);
    assert!(
        err.contains("Apply failed with 2 conflicts: conflicts with \"kubectl\" with subresource \"scale\" using apps/v1:\n- .spec.replicas\nconflicts with \"kubectl-label\" using apps/v1:\n- .metadata.labels.tier"),
        "{err}"
    );

    assert_eq!(
        cp.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &three])
            .trim(),
        "deployment.apps/web serverside-applied"
    );
    assert_eq!(replicas(&cp, "web"), "3");
    assert_eq!(
        managers(&cp, "web"),
        [owned("kubectl", "Apply", "")],
        "forced fields leave their old managers, and empty entries go"
    );

    cp.kubectl_ok(&["label", "deploy", "web", "extra=kept"]);
    let unlabelled = cp.manifest(
        "deploy-unlabelled.yaml",
        &DEPLOY
            .replace("replicas: 2", "replicas: 3")
            .replace("labels: {app: web, tier: front}", "labels: {app: web}"),
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", &unlabelled]);
    assert_eq!(
        cp.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.metadata.labels}"]),
        r#"{"app":"web","extra":"kept"}"#,
        "tier was only the applier's; extra belongs to kubectl-label"
    );
    assert_eq!(
        managers(&cp, "web"),
        [
            owned("kubectl", "Apply", ""),
            owned("kubectl-label", "Update", "")
        ]
    );
}

/// An object made by `kubectl apply` moves to server-side apply without
/// conflicts while its fields still hold the applied values, as upstream
/// (kubectl migrates the client-side manager and keeps the last-applied
/// annotation under `kubectl-last-applied`); after `kubectl scale` it
/// conflicts.
#[tokio::test]
async fn client_side_apply_moves_to_server_side_apply() {
    if !kubectl_enabled("client_side_apply_moves_to_server_side_apply") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let file = cp.manifest("deploy.yaml", DEPLOY);
    cp.kubectl_ok(&["apply", "-f", &file]);
    assert_eq!(
        managers(&cp, "web"),
        [owned("kubectl-client-side-apply", "Update", "")]
    );
    let three = cp.manifest(
        "deploy3.yaml",
        &DEPLOY.replace("replicas: 2", "replicas: 3"),
    );
    cp.kubectl_ok(&["apply", "--server-side", "-f", &three]);
    assert_eq!(replicas(&cp, "web"), "3");
    assert_eq!(
        managers(&cp, "web"),
        [
            owned("kubectl", "Apply", ""),
            owned("kubectl-last-applied", "Apply", "")
        ]
    );
    assert_eq!(
        cp.kubectl_ok(&["apply", "-f", &file]).trim(),
        "deployment.apps/web configured",
        "client-side apply still works on the annotation"
    );
    assert_eq!(replicas(&cp, "web"), "2");

    let other = cp.manifest(
        "other.yaml",
        &DEPLOY.replace("name: web\n", "name: other\n"),
    );
    cp.kubectl_ok(&["apply", "-f", &other]);
    cp.kubectl_ok(&["scale", "deploy", "other", "--replicas", "5"]);
    let other3 = cp.manifest(
        "other3.yaml",
        &DEPLOY
            .replace("name: web\n", "name: other\n")
            .replace("replicas: 2", "replicas: 3"),
    );
    let err = cp.kubectl_err(&["apply", "--server-side", "-f", &other3]);
    assert!(
        err.contains(
            "conflict with \"kubectl\" with subresource \"scale\" using apps/v1: .spec.replicas"
        ),
        "{err}"
    );
}

/// Requests kubectl never sends, answered as upstream answers them.
#[tokio::test]
async fn apply_requests_are_checked_and_managed_fields_reset() {
    if !kubectl_enabled("apply_requests_are_checked_and_managed_fields_reset") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let path = "/apis/apps/v1/namespaces/default/deployments/web";
    let body = serde_json::to_string(&serde_yaml::from_str::<Value>(DEPLOY).expect("manifest"))
        .expect("json");
    let apply = "application/apply-patch+yaml";
    let (status, reply) = request_as("PATCH", &cp.address, path, apply, &body).expect("patch");
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply.contains("fieldManager: Required value: is required for apply patch"),
        "{reply}"
    );
    let with_fields = body.replacen(
        "\"metadata\":{",
        "\"metadata\":{\"managedFields\":[{\"manager\":\"me\"}],",
        1,
    );
    let (status, reply) = request_as(
        "PATCH",
        &cp.address,
        &format!("{path}?fieldManager=ci"),
        apply,
        &with_fields,
    )
    .expect("patch");
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply.contains("metadata.managedFields must be nil"),
        "{reply}"
    );
    let (status, reply) = request_as(
        "PATCH",
        &cp.address,
        &format!("{path}?fieldManager=ci"),
        apply,
        &body,
    )
    .expect("patch");
    assert_eq!(status, 201, "{reply}");
    let conflict = body.replace("\"replicas\":2", "\"replicas\":7");
    let (status, reply) = request_as(
        "PATCH",
        &cp.address,
        &format!("{path}?fieldManager=other"),
        apply,
        &conflict,
    )
    .expect("patch");
    assert_eq!(status, 409, "{reply}");
    let status_body: Value = serde_json::from_str(&reply).expect("status");
    assert_eq!(status_body["reason"], "Conflict");
    assert_eq!(
        status_body["details"]["causes"],
        serde_json::json!([{"type": "FieldManagerConflict", "message": "conflict with \"ci\"", "field": ".spec.replicas"}])
    );

    cp.kubectl_ok(&[
        "patch",
        "deploy",
        "web",
        "--type",
        "merge",
        "-p",
        r#"{"metadata":{"managedFields":[]}}"#,
    ]);
    assert!(managers(&cp, "web").is_empty(), "[] resets them");
    cp.kubectl_ok(&["annotate", "deploy", "web", "note=x"]);
    assert_eq!(
        managers(&cp, "web"),
        [owned("kubectl-annotate", "Update", "")]
    );
}
