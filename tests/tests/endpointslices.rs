//! The EndpointSlice and Endpoints controllers in a real
//! `skiff-control-plane` (issue 14, item 3), driven by the real kubectl
//! without nodes: pods get their addresses and readiness through the
//! status subresource, as a kubelet would write them, and the Service's
//! slices, its Endpoints and `kubectl describe svc` follow; a
//! selectorless Service's hand-written slice is left alone.

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::request_as;

const MANIFEST: &str = "apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
---
apiVersion: v1
kind: Pod
metadata:
  name: web-1
  labels:
    app: web
spec:
  containers:
  - name: c
    image: skiff.dev/webapp:v1
    ports:
    - name: http
      containerPort: 8080
---
apiVersion: v1
kind: Pod
metadata:
  name: web-2
  labels:
    app: web
spec:
  containers:
  - name: c
    image: skiff.dev/webapp:v1
    ports:
    - name: http
      containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: manual
spec:
  ports:
  - port: 80
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: manual-1
  labels:
    kubernetes.io/service-name: manual
addressType: IPv4
ports:
- port: 80
endpoints:
- addresses: [192.168.7.7]
";

/// Writes pod `name`'s status as its kubelet would: Running at `ip`,
/// Ready or not.
fn set_status(cp: &TestControlPlane, name: &str, ip: &str, ready: bool) {
    let patch = json!({"status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
    }});
    let (code, body) = request_as(
        "PATCH",
        &cp.address,
        &format!("/api/v1/namespaces/default/pods/{name}/status"),
        "application/merge-patch+json",
        &patch.to_string(),
    )
    .expect("patch status");
    assert_eq!(code, 200, "{body}");
}

/// `(address, ready, serving, terminating)` of every endpoint of the
/// slices `json` (a kubectl `-o json` list) holds, sorted.
fn endpoints(json: &str) -> Vec<(String, bool, bool, bool)> {
    let list: Value = serde_json::from_str(json).unwrap_or(Value::Null);
    let mut all: Vec<(String, bool, bool, bool)> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            let c = &e["conditions"];
            (
                e["addresses"][0].as_str().unwrap_or_default().to_string(),
                c["ready"] == true,
                c["serving"] == true,
                c["terminating"] == true,
            )
        })
        .collect();
    all.sort();
    all
}

fn web_slices() -> [&'static str; 6] {
    [
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
        "-o",
        "json",
    ]
}

fn ep(address: &str, ready: bool) -> (String, bool, bool, bool) {
    (address.to_string(), ready, ready, false)
}

#[tokio::test]
async fn endpoint_slices_and_endpoints_follow_the_pods_a_service_selects() {
    const TEST: &str = "endpoint_slices_and_endpoints_follow_the_pods_a_service_selects";
    if !kubectl_enabled(TEST) {
        return;
    }
    let cp = TestControlPlane::start().await;
    let path = cp.manifest("web.yaml", MANIFEST);
    cp.kubectl_ok(&["apply", "-f", &path]);
    let manual_version = cp.kubectl_ok(&[
        "get",
        "endpointslice",
        "manual-1",
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ]);

    // Before any pod has an address: one empty placeholder slice.
    cp.eventually(&web_slices(), "the placeholder slice", |out| {
        let list: Value = serde_json::from_str(out).unwrap_or(Value::Null);
        list["items"].as_array().is_some_and(|i| i.len() == 1) && endpoints(out).is_empty()
    });

    set_status(&cp, "web-1", "10.244.1.5", true);
    set_status(&cp, "web-2", "10.244.1.6", true);
    let out = cp.eventually(&web_slices(), "both pods in the slices", |out| {
        endpoints(out) == [ep("10.244.1.5", true), ep("10.244.1.6", true)]
    });
    let list: Value = serde_json::from_str(&out).expect("json");
    let slice = &list["items"][0];
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{out}");
    assert!(
        slice["metadata"]["name"]
            .as_str()
            .is_some_and(|n| n.starts_with("web-"))
    );
    assert_eq!(slice["addressType"], "IPv4");
    assert_eq!(
        slice["ports"],
        json!([{"name": "http", "port": 8080, "protocol": "TCP"}]),
        "the named target port resolved on the pods"
    );
    assert_eq!(
        slice["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"],
        "endpointslice-controller.k8s.io"
    );
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["controller"], true);
    let target = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["targetRef"]["name"].clone())
        .collect::<Vec<_>>();
    assert!(target.contains(&json!("web-1")), "{out}");

    // The tables, as upstream prints them.
    let table = cp.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=web",
    ]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"],
        "{table}"
    );
    assert!(
        table.contains("IPv4") && table.contains("8080") && table.contains("10.244.1.5"),
        "{table}"
    );
    let out = cp.eventually(&["get", "endpoints", "web"], "the Endpoints", |out| {
        out.contains("10.244.1.5:8080,10.244.1.6:8080")
    });
    assert!(out.starts_with("NAME"), "{out}");

    // describe shows the addresses behind the Service.
    let describe = cp.kubectl_ok(&["describe", "svc", "web"]);
    let line = describe
        .lines()
        .find(|l| l.starts_with("Endpoints:"))
        .unwrap_or_else(|| panic!("no Endpoints line:\n{describe}"));
    assert!(
        line.contains("10.244.1.5:8080") && line.contains("10.244.1.6:8080"),
        "{describe}"
    );

    // web-2 stops being Ready.
    set_status(&cp, "web-2", "10.244.1.6", false);
    cp.eventually(&web_slices(), "web-2 not ready", |out| {
        endpoints(out) == [ep("10.244.1.5", true), ep("10.244.1.6", false)]
    });
    cp.eventually(
        &["get", "endpoints", "web", "-o", "json"],
        "web-2 under notReadyAddresses",
        |out| {
            let e: Value = serde_json::from_str(out).unwrap_or(Value::Null);
            e["subsets"][0]["notReadyAddresses"][0]["ip"] == "10.244.1.6"
                && e["subsets"][0]["addresses"][0]["ip"] == "10.244.1.5"
        },
    );

    // web-1 deleted (not on a node: gone at once).
    cp.kubectl_ok(&["delete", "pod", "web-1", "--wait=false"]);
    cp.eventually(&web_slices(), "web-1 gone", |out| {
        endpoints(out) == [ep("10.244.1.6", false)]
    });

    // The selectorless Service's hand-written slice: untouched, and no
    // slice made for it.
    let manual = cp.kubectl_ok(&[
        "get",
        "endpointslices",
        "-l",
        "kubernetes.io/service-name=manual",
        "-o",
        "json",
    ]);
    let list: Value = serde_json::from_str(&manual).expect("json");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1), "{manual}");
    assert_eq!(list["items"][0]["metadata"]["name"], "manual-1");
    assert_eq!(
        list["items"][0]["metadata"]["resourceVersion"],
        manual_version.as_str()
    );
    assert_eq!(
        endpoints(&manual),
        [("192.168.7.7".to_string(), false, false, false)]
    );
    assert!(
        !cp.kubectl(&["get", "endpoints", "manual"]).status.success(),
        "no Endpoints made for a selectorless Service"
    );

    // The Service deleted: its slices and Endpoints go with it.
    cp.kubectl_ok(&["delete", "svc", "web"]);
    cp.eventually(&web_slices(), "the slices gone", |out| {
        let list: Value = serde_json::from_str(out).unwrap_or(Value::Null);
        list["items"].as_array().is_some_and(Vec::is_empty)
    });
    cp.eventually(
        &["get", "endpoints", "-o", "name"],
        "the Endpoints gone",
        |out| !out.contains("endpoints/web"),
    );
}
