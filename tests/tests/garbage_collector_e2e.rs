//! The garbage collector with the real kubectl, a real control plane and a
//! real kubelet on containerd: `kubectl delete deploy` takes the sets and
//! pods with it (background), `--cascade=foreground` keeps the set, marked
//! with `foregroundDeletion`, until its pods are gone, `--cascade=orphan`
//! leaves the pods running without owner, and a custom finalizer holds an
//! object being deleted until a patch removes it.

use std::time::{Duration, Instant};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

/// A workload of `replicas` busybox pods labelled `app=<app>`. `sleep` as
/// PID 1 ignores SIGTERM, so a pod takes its whole grace period to stop.
fn workload(kind: &str, name: &str, app: &str, replicas: u32, grace: u32) -> String {
    format!(
        "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {app}\n  template:\n    metadata:\n      labels:\n        app: {app}\n    spec:\n      terminationGracePeriodSeconds: {grace}\n      containers:\n      - name: c\n        image: busybox\n        command: [sleep, '3600']\n"
    )
}

/// Names of the pods labelled `app=<app>` (Terminating ones included).
fn pods(cp: &TestControlPlane, app: &str) -> Vec<String> {
    cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .split_whitespace()
    .map(String::from)
    .collect()
}

/// Waits for exactly `n` Running pods labelled `app=<app>`.
fn wait_running(cp: &TestControlPlane, app: &str, n: usize) -> Vec<String> {
    let out = cp.eventually(
        &["get", "pods", "-l", &format!("app={app}"), "--no-headers"],
        &format!("{n} running app={app} pods"),
        |o| o.lines().count() == n && o.lines().all(|l| l.contains(" Running ")),
    );
    out.lines()
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

fn exists(cp: &TestControlPlane, kind: &str, name: &str) -> bool {
    let out = cp.kubectl(&["get", kind, name, "-o", "name"]);
    if out.status.success() {
        return true;
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NotFound"), "kubectl get {kind} {name}: {err}");
    false
}

#[tokio::test]
async fn deletions_cascade_in_background_foreground_and_orphan_and_honour_finalizers() {
    let test = "deletions_cascade_in_background_foreground_and_orphan_and_honour_finalizers";
    if !kubectl_enabled(test) {
        return;
    }
    let Some(env) = TestEnv::start(test).await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}g", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(" Ready ")
    });

    // Background (kubectl's default): the Deployment goes at once, the
    // collector then removes its ReplicaSet, and the set's pods.
    let deploy = workload("Deployment", "gc-web", "gcweb", 2, 1);
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("deploy.yaml", &deploy)]);
    wait_running(&cp, "gcweb", 2);
    let rs = cp.eventually(
        &["get", "rs", "-l", "app=gcweb", "-o", "name"],
        "the deployment's replica set",
        |o| o.trim().starts_with("replicaset.apps/gc-web-"),
    );
    let out = cp.kubectl_ok(&["delete", "deploy", "gc-web"]);
    assert!(out.contains("deployment.apps \"gc-web\" deleted"), "{out}");
    cp.eventually(
        &["get", "rs", "-l", "app=gcweb", "-o", "name"],
        "the replica set collected",
        |o| o.trim().is_empty(),
    );
    assert!(!exists(
        &cp,
        "rs",
        rs.trim().trim_start_matches("replicaset.apps/")
    ));
    cp.eventually(
        &["get", "pods", "-l", "app=gcweb", "-o", "name"],
        "the pods collected",
        |o| o.trim().is_empty(),
    );

    // Foreground: the set stays, marked, while its pods terminate (10 s
    // each), and goes once they are gone; nothing replaces them meanwhile.
    let fg = workload("ReplicaSet", "gc-fg", "gcfg", 2, 10);
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("fg.yaml", &fg)]);
    let fg_pods = wait_running(&cp, "gcfg", 2);
    cp.kubectl_ok(&[
        "delete",
        "rs",
        "gc-fg",
        "--cascade=foreground",
        "--wait=false",
    ]);
    let finalizers = cp.kubectl_ok(&[
        "get",
        "rs",
        "gc-fg",
        "-o",
        "jsonpath={.metadata.finalizers}",
    ]);
    assert!(finalizers.contains("foregroundDeletion"), "{finalizers}");
    cp.eventually(
        &[
            "get",
            "pods",
            "-l",
            "app=gcfg",
            "-o",
            "jsonpath={range .items[*]}{.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ],
        "both pods terminating",
        |o| o.lines().filter(|l| !l.trim().is_empty()).count() == 2,
    );
    let shown = cp.kubectl_ok(&["get", "rs", "gc-fg"]);
    assert!(
        shown.contains("gc-fg"),
        "the owner is still listed: {shown}"
    );
    let marked = cp.kubectl_ok(&[
        "get",
        "rs",
        "gc-fg",
        "-o",
        "jsonpath={.metadata.deletionTimestamp} {.metadata.finalizers}",
    ]);
    assert!(
        marked.contains("foregroundDeletion") && marked.len() > "foregroundDeletion".len() + 5,
        "{marked}"
    );
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let remaining = pods(&cp, "gcfg");
        assert!(
            remaining.iter().all(|p| fg_pods.contains(p)),
            "a deleting set created pods: {remaining:?}"
        );
        if !exists(&cp, "rs", "gc-fg") {
            assert!(pods(&cp, "gcfg").is_empty(), "the set went before its pods");
            break;
        }
        assert!(Instant::now() < deadline, "the set was never removed");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Orphan: the pods stay, running, without owner references.
    let or = workload("ReplicaSet", "gc-or", "gcor", 2, 1);
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("or.yaml", &or)]);
    let orphans = wait_running(&cp, "gcor", 2);
    cp.kubectl_ok(&["delete", "rs", "gc-or", "--cascade=orphan"]);
    assert!(!exists(&cp, "rs", "gc-or"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(wait_running(&cp, "gcor", 2), orphans);
    let refs = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=gcor",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences}",
    ]);
    assert!(refs.trim().is_empty(), "orphans still owned: {refs}");

    // A custom finalizer holds a deleted object until a patch removes it.
    cp.kubectl_ok(&["create", "configmap", "gc-held", "--from-literal=a=b"]);
    cp.kubectl_ok(&[
        "patch",
        "configmap",
        "gc-held",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ]);
    cp.kubectl_ok(&["delete", "configmap", "gc-held", "--wait=false"]);
    std::thread::sleep(Duration::from_secs(1));
    let held = cp.kubectl_ok(&[
        "get",
        "configmap",
        "gc-held",
        "-o",
        "jsonpath={.metadata.deletionTimestamp}|{.metadata.finalizers}",
    ]);
    let (stamp, finalizers) = held.split_once('|').expect("two fields");
    // An RFC 3339 time in UTC, as `2026-03-01T10:00:00Z`.
    assert!(
        stamp.len() == 20 && stamp.as_bytes()[10] == b'T' && stamp.ends_with('Z'),
        "deletionTimestamp: {held}"
    );
    assert_eq!(finalizers, r#"["example.com/hold"]"#);
    let err = cp.kubectl_err(&[
        "patch",
        "configmap",
        "gc-held",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold","example.com/more"]}}"#,
    ]);
    assert!(
        err.contains("no new finalizers can be added if the object is being deleted"),
        "{err}"
    );
    cp.kubectl_ok(&[
        "patch",
        "configmap",
        "gc-held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    assert!(!exists(&cp, "configmap", "gc-held"));

    drop(kubelet);
    env.shutdown().await;
}
