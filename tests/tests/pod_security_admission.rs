//! Pod Security Admission through the real `kubectl` against a real
//! `skiff-control-plane`: namespace labels enforce, warn and are validated
//! with upstream's wording; a workload cannot sneak a refused pod in
//! through its controller.

use std::process::Output;

use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};

const HOST_ROOT_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: root}
spec:
  volumes: [{name: root, hostPath: {path: /}}]
  containers:
  - name: shell
    image: busybox
    volumeMounts: [{name: root, mountPath: /host}]
"#;

const PLAIN_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  containers: [{name: app, image: busybox}]
"#;

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: skiff.dev/webapp:v1}]
"#;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `kubectl create ns lab`, `kubectl label ns lab
/// pod-security.kubernetes.io/enforce=baseline`: a `hostPath: /` pod is
/// refused with upstream's message, a plain pod is created; a Deployment
/// with such a pod gets its pods refused (FailedCreate); invalid label
/// values are refused; a warn=restricted namespace prints upstream's
/// `Warning:` line for a Deployment; labelling a namespace warns about the
/// pods already in it.
#[tokio::test]
async fn namespace_labels_enforce_and_warn_as_upstream() {
    if !kubectl_enabled("namespace_labels_enforce_and_warn_as_upstream") {
        return;
    }
    let cp = TestControlPlane::start().await;
    cp.kubectl_ok(&["create", "ns", "lab"]);
    let (_, stderr) = text(&cp.kubectl(&[
        "label",
        "ns",
        "lab",
        "pod-security.kubernetes.io/enforce=baseline",
    ]));
    assert!(!stderr.contains("Warning"), "an empty namespace: {stderr}");

    let root = cp.manifest("root.yaml", HOST_ROOT_POD);
    let err = cp.kubectl_err(&["create", "-n", "lab", "-f", &root]);
    assert!(
        err.contains("Error from server (Forbidden): error when creating \"") && err.trim_end().ends_with(
            "pods \"root\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")"
        ),
        "{err}"
    );
    let stored = cp.kubectl(&["get", "pod", "root", "-n", "lab"]);
    assert!(!stored.status.success(), "the refused pod was not stored");

    let plain = cp.manifest("plain.yaml", PLAIN_POD);
    let out = cp.kubectl(&["create", "-n", "lab", "-f", &plain]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "pod/plain created");
    assert!(
        !stderr.contains("Warning"),
        "baseline warns about nothing here: {stderr}"
    );

    // A controller's pods are admitted as the API's are.
    let host_deploy = DEPLOYMENT.replace(
        "      containers: [{name: web, image: skiff.dev/webapp:v1}]",
        "      volumes: [{name: root, hostPath: {path: /}}]\n      containers: [{name: web, image: skiff.dev/webapp:v1}]",
    );
    let out = cp.kubectl(&[
        "apply",
        "-n",
        "lab",
        "-f",
        &cp.manifest("host-deploy.yaml", &host_deploy),
    ]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "Warning: would violate PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")"
        ),
        "warn follows enforce for workloads: {stderr}"
    );
    let events = cp.eventually(
        &[
            "get",
            "events",
            "-n",
            "lab",
            "-o",
            "jsonpath={.items[*].message}",
        ],
        "the ReplicaSet's FailedCreate",
        |out| out.contains("violates PodSecurity"),
    );
    assert!(
        events.contains("Error creating: pods \"web-")
            && events.contains(
                "is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")"
            ),
        "{events}"
    );
    let pods = cp.kubectl_ok(&["get", "pods", "-n", "lab", "-o", "name"]);
    assert_eq!(pods.trim(), "pod/plain", "no web pod was created");

    // Invalid label values.
    let err = cp.kubectl_err(&["label", "ns", "lab", "pod-security.kubernetes.io/warn=loud"]);
    assert!(
        err.contains(
            "The Namespace \"lab\" is invalid: metadata.labels[pod-security.kubernetes.io/warn]: Invalid value: \"loud\": must be one of privileged, baseline, restricted"
        ),
        "{err}"
    );
    let err = cp.kubectl_err(&[
        "label",
        "ns",
        "lab",
        "pod-security.kubernetes.io/enforce-version=1.30",
    ]);
    assert!(
        err.contains("Invalid value: \"1.30\": must be \"latest\" or \"v1.x\""),
        "{err}"
    );

    // warn=restricted: a Deployment is stored, with upstream's warning.
    cp.kubectl_ok(&["create", "ns", "lab2"]);
    cp.kubectl_ok(&[
        "label",
        "ns",
        "lab2",
        "pod-security.kubernetes.io/warn=restricted",
    ]);
    let out = cp.kubectl(&[
        "apply",
        "-n",
        "lab2",
        "-f",
        &cp.manifest("deploy.yaml", DEPLOYMENT),
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "deployment.apps/web created");
    assert_eq!(
        stderr.trim(),
        "Warning: would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"web\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"web\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"web\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    let out = cp.kubectl(&["scale", "-n", "lab2", "deployment/web", "--replicas=2"]);
    let (_, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("Warning"),
        "the scale subresource is not checked: {stderr}"
    );

    // Enforcing on a namespace with violating pods warns about them.
    cp.kubectl_ok(&["create", "ns", "lab3"]);
    cp.kubectl_ok(&["create", "-n", "lab3", "-f", &root]);
    let out = cp.kubectl(&[
        "label",
        "ns",
        "lab3",
        "pod-security.kubernetes.io/enforce=baseline",
    ]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(stdout.trim(), "namespace/lab3 labeled");
    assert_eq!(
        stderr.trim(),
        "Warning: existing pods in namespace \"lab3\" violate the new PodSecurity enforce level \"baseline:latest\"\nWarning: root: hostPath volumes"
    );
}
