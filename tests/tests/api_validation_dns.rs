//! Pods' `dnsPolicy` and `dnsConfig` sent to a real `skiff-control-plane`:
//! invalid ones, in a Pod or in any controller's template, are refused
//! with 422 and upstream's wording and nothing is stored; the textbook's
//! `dnsPolicy: None` pod is stored as sent; a pod without a policy is
//! stored with `ClusterFirst`.

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn send(cp: &TestControlPlane, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let (code, text) = http_json(method, &cp.address, path, &body.to_string()).expect("request");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POSTs `body` to `collection` and asserts a 422 `Status` with `message`
/// and that nothing named like the object was stored.
fn refused(cp: &TestControlPlane, collection: &str, body: Value, message: &str) {
    let name = body["metadata"]["name"].as_str().expect("name").to_string();
    let (code, status) = send(cp, "POST", collection, &body);
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    assert_eq!(status["message"], message, "{status}");
    let (code, _) = send(cp, "GET", &format!("{collection}/{name}"), &Value::Null);
    assert_eq!(code, 404, "{name} was stored");
}

fn pod(name: &str, dns: Value) -> Value {
    let mut pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    for (k, v) in dns.as_object().into_iter().flatten() {
        pod["spec"][k] = v.clone();
    }
    pod
}

#[tokio::test]
async fn pod_dns_settings_are_validated_as_upstream() {
    let cp = TestControlPlane::start().await;
    refused(
        &cp,
        PODS,
        pod("p1", json!({"dnsPolicy": "ClusterLast"})),
        "Pod \"p1\" is invalid: spec.dnsPolicy: Unsupported value: \"ClusterLast\": supported values: \"ClusterFirstWithHostNet\", \"ClusterFirst\", \"Default\", \"None\"",
    );
    refused(
        &cp,
        PODS,
        pod("p2", json!({"dnsPolicy": "None"})),
        "Pod \"p2\" is invalid: spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None",
    );
    refused(
        &cp,
        PODS,
        pod(
            "p3",
            json!({"dnsPolicy": "None", "dnsConfig": {"searches": ["example.com"]}}),
        ),
        "Pod \"p3\" is invalid: spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None",
    );
    refused(
        &cp,
        PODS,
        pod(
            "p4",
            json!({"dnsConfig": {
                "nameservers": ["1.1.1.1", "8.8.8.8", "9.9.9.9", "dns.google"],
                "searches": ["Example.com"],
                "options": [{"value": "2"}]
            }}),
        ),
        "Pod \"p4\" is invalid: [spec.dnsConfig.nameservers: Invalid value: []string{\"1.1.1.1\", \"8.8.8.8\", \"9.9.9.9\", \"dns.google\"}: must not have more than 3 nameservers, spec.dnsConfig.nameservers[3]: Invalid value: \"dns.google\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff), spec.dnsConfig.searches[0]: Invalid value: \"Example.com\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '_', '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '_?[a-z0-9]([-_a-z0-9]*[a-z0-9])?(\\._?[a-z0-9]([-_a-z0-9]*[a-z0-9])?)*'), spec.dnsConfig.options[0]: Required value: must not be empty]",
    );
    let many: Vec<String> = (0..33).map(|i| format!("d{i}.example")).collect();
    let quoted: Vec<String> = many.iter().map(|d| format!("\"{d}\"")).collect();
    refused(
        &cp,
        PODS,
        pod("p5", json!({"dnsConfig": {"searches": many}})),
        &format!(
            "Pod \"p5\" is invalid: spec.dnsConfig.searches: Invalid value: []string{{{}}}: must not have more than 32 search paths",
            quoted.join(", ")
        ),
    );

    // The textbook's sample-externaldns.yaml is stored as sent.
    let book = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sample-externaldns"},
    "spec": {
        "dnsPolicy": "None",
        "dnsConfig": {"nameservers": ["8.8.8.8", "8.8.4.4"], "searches": ["example.com"],
            "options": [{"name": "ndots", "value": "5"}]},
        "containers": [{"name": "nginx-container", "image": "nginx:1.16"}]
    }});
    let (code, stored) = send(&cp, "POST", PODS, &book);
    assert_eq!(code, 201, "{stored}");
    assert_eq!(stored["spec"]["dnsPolicy"], "None");
    assert_eq!(stored["spec"]["dnsConfig"], book["spec"]["dnsConfig"]);

    // No policy, or an empty one, is ClusterFirst.
    for (name, spec) in [("plain", json!({})), ("empty", json!({"dnsPolicy": ""}))] {
        let (code, stored) = send(&cp, "POST", PODS, &pod(name, spec));
        assert_eq!(code, 201, "{stored}");
        assert_eq!(stored["spec"]["dnsPolicy"], "ClusterFirst", "{name}");
    }
}

#[tokio::test]
async fn templates_dns_settings_are_validated_as_pods_are() {
    let cp = TestControlPlane::start().await;
    let bad = json!({"dnsPolicy": "None"});
    let message = |kind: &str, name: &str, path: &str| {
        format!(
            "{kind} \"{name}\" is invalid: {path}.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"
        )
    };
    let template = |restart: &str| {
        let mut spec = json!({"restartPolicy": restart,
            "containers": [{"name": "c", "image": "busybox"}]});
        for (k, v) in bad.as_object().into_iter().flatten() {
            spec[k] = v.clone();
        }
        json!({"metadata": {"labels": {"app": "a"}}, "spec": spec})
    };
    let selector = json!({"matchLabels": {"app": "a"}});
    for (collection, kind, body, path) in [
        (
            "/apis/apps/v1/namespaces/default/deployments",
            "Deployment",
            json!({"selector": selector, "template": template("Always")}),
            "spec.template.spec",
        ),
        (
            "/apis/apps/v1/namespaces/default/replicasets",
            "ReplicaSet",
            json!({"selector": selector, "template": template("Always")}),
            "spec.template.spec",
        ),
        (
            "/apis/apps/v1/namespaces/default/daemonsets",
            "DaemonSet",
            json!({"selector": selector, "template": template("Always")}),
            "spec.template.spec",
        ),
        (
            "/apis/apps/v1/namespaces/default/statefulsets",
            "StatefulSet",
            json!({"serviceName": "a", "selector": selector, "template": template("Always")}),
            "spec.template.spec",
        ),
        (
            "/api/v1/namespaces/default/replicationcontrollers",
            "ReplicationController",
            json!({"selector": {"app": "a"}, "template": template("Always")}),
            "spec.template.spec",
        ),
        (
            "/apis/batch/v1/namespaces/default/jobs",
            "Job",
            json!({"template": template("Never")}),
            "spec.template.spec",
        ),
        (
            "/apis/batch/v1/namespaces/default/cronjobs",
            "CronJob",
            json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template("Never")}}}),
            "spec.jobTemplate.spec.template.spec",
        ),
    ] {
        let group_version = if collection.starts_with("/api/") {
            "v1".to_string()
        } else {
            collection
                .trim_start_matches("/apis/")
                .split('/')
                .take(2)
                .collect::<Vec<_>>()
                .join("/")
        };
        let name = kind.to_lowercase();
        // Upstream names a grouped kind with its group (`Deployment.apps`).
        let qualified = match group_version.split_once('/') {
            Some((group, _)) => format!("{kind}.{group}"),
            None => kind.to_string(),
        };
        let object = json!({"apiVersion": group_version, "kind": kind,
            "metadata": {"name": name}, "spec": body});
        refused(&cp, collection, object, &message(&qualified, &name, path));
    }
}

/// The real kubectl shows the refusal as upstream's server words it, and
/// applies the textbook's `dnsPolicy: None` pod unchanged.
#[tokio::test]
async fn kubectl_sees_upstream_s_dns_errors() {
    if !kubectl_enabled("kubectl_sees_upstream_s_dns_errors") {
        return;
    }
    let cp = TestControlPlane::start().await;
    let bad = "apiVersion: v1\nkind: Pod\nmetadata: {name: bad-dns}\nspec:\n  dnsPolicy: None\n  dnsConfig: {options: [{name: ndots, value: '2'}]}\n  containers: [{name: c, image: busybox}]\n";
    let err = cp.kubectl_err(&["apply", "-f", &cp.manifest("bad.yaml", bad)]);
    assert!(
        err.contains("The Pod \"bad-dns\" is invalid: spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"),
        "{err}"
    );
    let book = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sample-externaldns\nspec:\n  dnsPolicy: None\n  dnsConfig:\n    nameservers:\n    - 8.8.8.8\n    - 8.8.4.4\n    searches:\n    - example.com\n    options:\n    - name: ndots\n      value: \"5\"\n  containers:\n  - name: nginx-container\n    image: nginx:1.16\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("book.yaml", book)]);
    let got = cp.kubectl_ok(&[
        "get",
        "pod",
        "sample-externaldns",
        "-o",
        "jsonpath={.spec.dnsPolicy} {.spec.dnsConfig.nameservers} {.spec.dnsConfig.searches} {.spec.dnsConfig.options}",
    ]);
    assert_eq!(
        got,
        "None [\"8.8.8.8\",\"8.8.4.4\"] [\"example.com\"] [{\"name\":\"ndots\",\"value\":\"5\"}]"
    );
}
