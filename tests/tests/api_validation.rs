//! Hostile objects sent to a real `skiff-control-plane` (raw HTTP and the
//! real `kubectl`): each is refused with upstream's code and wording, and
//! nothing is stored or changed.

use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};
use skiff_tests::request_as;

const CM: &str = "/api/v1/namespaces/default/configmaps";
const SECRETS: &str = "/api/v1/namespaces/default/secrets";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// Sends `body` and returns the status code and the parsed answer.
fn send(cp: &TestControlPlane, method: &str, path: &str, body: &str) -> (u16, Value) {
    let (code, text) = http_json(method, &cp.address, path, body).expect("request");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Asserts a `Status` answer with `code` and `message`, and that `name`
/// under `collection` does not exist.
fn refused(
    cp: &TestControlPlane,
    (code, status): (u16, Value),
    want_code: u16,
    message: &str,
    collection: &str,
    name: &str,
) {
    assert_eq!(code, want_code, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["code"], want_code, "{status}");
    assert_eq!(status["message"], message, "{status}");
    let (code, _) = send(cp, "GET", &format!("{collection}/{name}"), "");
    assert_eq!(code, 404, "{name} was stored");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn metadata_and_config_objects_are_validated_as_upstream() {
    let cp = TestControlPlane::start().await;
    refused(
        &cp,
        send(
            &cp,
            "POST",
            CM,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l1","labels":{"-bad":"x"}}}"#,
        ),
        422,
        "ConfigMap \"l1\" is invalid: metadata.labels: Invalid value: \"-bad\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        CM,
        "l1",
    );
    refused(
        &cp,
        send(
            &cp,
            "POST",
            CM,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"l2","labels":{"a":1}}}"#,
        ),
        400,
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
        CM,
        "l2",
    );
    let big = "x".repeat(262_144);
    refused(
        &cp,
        send(
            &cp,
            "POST",
            CM,
            &format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"a1","annotations":{{"k":"{big}"}}}}}}"#
            ),
        ),
        422,
        "ConfigMap \"a1\" is invalid: metadata.annotations: Too long: must have at most 262144 bytes",
        CM,
        "a1",
    );
    refused(
        &cp,
        send(
            &cp,
            "POST",
            CM,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"f1","finalizers":["mine"]}}"#,
        ),
        422,
        "ConfigMap \"f1\" is invalid: metadata.finalizers[0]: Invalid value: \"mine\": name is neither a standard finalizer name nor is it fully qualified",
        CM,
        "f1",
    );
    let (code, status) = send(
        &cp,
        "POST",
        CM,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"o1","ownerReferences":[{"apiVersion":"v1","kind":"A","name":"a","uid":"1","controller":true},{"apiVersion":"v1","kind":"B","name":"b","uid":"2","controller":true}]}}"#,
    );
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Only one reference can have Controller set to true. Found \"true\" in references for A/a and B/b"),
        "{status}"
    );
    // ConfigMaps: value types, size, keys shared with binaryData.
    refused(
        &cp,
        send(
            &cp,
            "POST",
            CM,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c1"},"data":{"k":5}}"#,
        ),
        400,
        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct field ConfigMap.data of type string",
        CM,
        "c1",
    );
    let mib = "x".repeat(1024 * 1024);
    refused(
        &cp,
        send(
            &cp,
            "POST",
            CM,
            &format!(
                r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"c2"}},"data":{{"a":"{mib}","b":"y"}}}}"#
            ),
        ),
        422,
        "ConfigMap \"c2\" is invalid: []: Too long: must have at most 1048576 bytes",
        CM,
        "c2",
    );
    refused(
        &cp,
        send(
            &cp,
            "POST",
            CM,
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c3"},"data":{"k":"v"},"binaryData":{"k":"eA=="}}"#,
        ),
        422,
        "ConfigMap \"c3\" is invalid: data[k]: Invalid value: \"k\": duplicate of key present in binaryData",
        CM,
        "c3",
    );
    // An immutable ConfigMap keeps its data.
    let (code, _) = send(
        &cp,
        "POST",
        CM,
        r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"frozen"},"immutable":true,"data":{"k":"v"}}"#,
    );
    assert_eq!(code, 201);
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{CM}/frozen"),
        "application/merge-patch+json",
        r#"{"data":{"k":"changed"}}"#,
    )
    .expect("patch");
    assert_eq!(code, 422, "{text}");
    assert!(
        text.contains("data: Forbidden: field is immutable when `immutable` is set"),
        "{text}"
    );
    let (_, frozen) = send(&cp, "GET", &format!("{CM}/frozen"), "");
    assert_eq!(frozen["data"]["k"], "v");
}

#[tokio::test]
async fn secrets_fold_string_data_and_check_their_contents() {
    let cp = TestControlPlane::start().await;
    // stringData is folded into data (overriding the same key) and dropped.
    let (code, created) = send(
        &cp,
        "POST",
        SECRETS,
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s1"},"data":{"a":"eA==","b":"eA=="},"stringData":{"b":"hello"}}"#,
    );
    assert_eq!(code, 201, "{created}");
    let (_, stored) = send(&cp, "GET", &format!("{SECRETS}/s1"), "");
    assert_eq!(
        stored["data"],
        serde_json::json!({"a": "eA==", "b": "aGVsbG8="})
    );
    assert!(stored.get("stringData").is_none(), "{stored}");
    assert_eq!(stored["type"], "Opaque");
    // On update and patch too.
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{SECRETS}/s1"),
        "application/merge-patch+json",
        r#"{"stringData":{"c":"new"}}"#,
    )
    .expect("patch");
    assert_eq!(code, 200, "{text}");
    let (_, stored) = send(&cp, "GET", &format!("{SECRETS}/s1"), "");
    assert_eq!(stored["data"]["c"], "bmV3");
    assert!(stored.get("stringData").is_none(), "{stored}");
    // Bad base64 is a decode error.
    refused(
        &cp,
        send(
            &cp,
            "POST",
            SECRETS,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s2"},"data":{"k":"not base64!"}}"#,
        ),
        400,
        "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data at input byte 3",
        SECRETS,
        "s2",
    );
    refused(
        &cp,
        send(
            &cp,
            "POST",
            SECRETS,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s3"},"type":"kubernetes.io/tls","stringData":{"tls.crt":"x"}}"#,
        ),
        422,
        "Secret \"s3\" is invalid: data[tls.key]: Required value",
        SECRETS,
        "s3",
    );
    // The type never changes.
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{SECRETS}/s1"),
        "application/merge-patch+json",
        r#"{"type":"kubernetes.io/basic-auth","data":{"username":"eA=="}}"#,
    )
    .expect("patch");
    assert_eq!(code, 422, "{text}");
    assert!(
        text.contains("type: Invalid value: \\\"kubernetes.io/basic-auth\\\": field is immutable"),
        "{text}"
    );
    let (_, after) = send(&cp, "GET", &format!("{SECRETS}/s1"), "");
    assert_eq!(after["type"], "Opaque");
    assert_eq!(
        after["metadata"]["resourceVersion"],
        stored["metadata"]["resourceVersion"]
    );

    if kubectl_enabled("secrets_fold_string_data_and_check_their_contents") {
        let file = cp.manifest(
            "secret.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: applied}\nstringData: {password: s3cret}\n",
        );
        cp.kubectl_ok(&["apply", "-f", &file]);
        assert_eq!(
            cp.kubectl_ok(&[
                "get",
                "secret",
                "applied",
                "-o",
                "jsonpath={.data.password}"
            ]),
            "czNjcmV0"
        );
        cp.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &file]);
        assert_eq!(
            cp.kubectl_ok(&[
                "get",
                "secret",
                "applied",
                "-o",
                "jsonpath={.data.password}"
            ]),
            "czNjcmV0"
        );
    }
}

#[tokio::test]
async fn identities_and_kind_rules_are_enforced() {
    let cp = TestControlPlane::start().await;
    refused(
        &cp,
        send(
            &cp,
            "POST",
            PODS,
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"k1"}}"#,
        ),
        400,
        "Service in version \"v1\" cannot be handled as a Pod: converting (v1.Service) to (core.Pod): unknown conversion",
        PODS,
        "k1",
    );
    refused(
        &cp,
        send(
            &cp,
            "POST",
            PODS,
            r#"{"apiVersion":"apps/v1","kind":"Pod","metadata":{"name":"k2"}}"#,
        ),
        400,
        "Pod in version \"v1\" cannot be handled as a Pod: no kind \"Pod\" is registered for version \"apps/v1\" in scheme \"pkg/api/legacyscheme/scheme.go:30\"",
        PODS,
        "k2",
    );
    let (code, status) = send(
        &cp,
        "POST",
        PODS,
        r#"{"apiVersion":"v1","kind":7,"metadata":{"name":"k3"}}"#,
    );
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("cannot unmarshal number into Go struct field .kind of type string"),
        "{status}"
    );
    refused(
        &cp,
        send(
            &cp,
            "POST",
            PODS,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p1"},"spec":{"containers":[{"image":"busybox"}]}}"#,
        ),
        422,
        "Pod \"p1\" is invalid: spec.containers[0].name: Required value",
        PODS,
        "p1",
    );
    refused(
        &cp,
        send(
            &cp,
            "POST",
            PODS,
            r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p2"},"spec":{"containers":[{"name":"c","image":"busybox","ports":[{"containerPort":80,"protocol":"FOO"}]}]}}"#,
        ),
        422,
        "Pod \"p2\" is invalid: spec.containers[0].ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        PODS,
        "p2",
    );
    let services = "/api/v1/namespaces/default/services";
    refused(
        &cp,
        send(
            &cp,
            "POST",
            services,
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"svc"},"spec":{"ports":[{"port":80,"protocol":"FOO"}]}}"#,
        ),
        422,
        "Service \"svc\" is invalid: spec.ports[0].protocol: Unsupported value: \"FOO\": supported values: \"SCTP\", \"TCP\", \"UDP\"",
        services,
        "svc",
    );
    let deployments = "/apis/apps/v1/namespaces/default/deployments";
    refused(
        &cp,
        send(
            &cp,
            "POST",
            deployments,
            r#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"},"spec":{"strategy":{"type":"Foo"},"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"busybox"}]}}}}"#,
        ),
        422,
        "Deployment.apps \"d\" is invalid: spec.strategy: Unsupported value: apps.DeploymentStrategy{Type:\"Foo\", RollingUpdate:(*apps.RollingUpdateDeployment)(nil)}: supported values: \"Recreate\", \"RollingUpdate\"",
        deployments,
        "d",
    );
    if kubectl_enabled("identities_and_kind_rules_are_enforced") {
        let file = cp.manifest(
            "bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kbad\n  labels: {\"bad key\": x}\n",
        );
        let err = cp.kubectl_err(&["apply", "-f", &file]);
        assert!(
            err.contains("metadata.labels: Invalid value: \"bad key\": name part must consist of alphanumeric characters"),
            "{err}"
        );
        let (code, _) = send(&cp, "GET", &format!("{CM}/kbad"), "");
        assert_eq!(code, 404);
    }
}

#[tokio::test]
async fn yaml_alias_bombs_are_refused_fast_with_flat_memory() {
    let cp = TestControlPlane::start().await;
    let pid = cp.pid().expect("pid");
    let before = rss_kib(pid);
    // ~45 KiB: 5,000 references to a 5,000-item anchor (25 million nodes).
    let items = vec!["lol"; 5_000].join(",");
    let refs = vec!["*a"; 5_000].join(",");
    let fan = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bomb}}\nx: &a [{items}]\ndata: {{k: [{refs}]}}\n"
    );
    // A classic nested bomb.
    let mut nested = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\na0: &a0 [\"lol\"]\n",
    );
    for i in 1..=9 {
        let r = vec![format!("*a{}", i - 1); 10].join(",");
        nested.push_str(&format!("a{i}: &a{i} [{r}]\n"));
    }
    for body in [&fan, &nested] {
        let started = Instant::now();
        let (code, text) =
            request_as("POST", &cp.address, CM, "application/yaml", body).expect("post");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(code, 400, "{text}");
        let status: Value = serde_json::from_str(&text).expect("status");
        assert_eq!(status["kind"], "Status");
        assert_eq!(
            status["message"],
            "error converting YAML to JSON: yaml: document contains excessive aliasing"
        );
        // The same through server-side apply.
        let (code, text) = request_as(
            "PATCH",
            &cp.address,
            &format!("{CM}/bomb?fieldManager=test"),
            "application/apply-patch+yaml",
            body,
        )
        .expect("apply");
        assert_eq!(code, 400, "{text}");
        assert!(text.contains("excessive aliasing"), "{text}");
    }
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let (code, text) =
        request_as("POST", &cp.address, CM, "application/yaml", &deep).expect("deep");
    assert_eq!(code, 400, "{text}");
    assert!(text.contains("recursion limit exceeded"), "{text}");
    let (code, _) = send(&cp, "GET", &format!("{CM}/bomb"), "");
    assert_eq!(code, 404);
    let after = rss_kib(pid);
    assert!(
        after < before + 200 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
}
