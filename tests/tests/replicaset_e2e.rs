//! The seed's ReplicaSet and ReplicationController sessions with the real
//! kubectl, a real control plane and a real kubelet on containerd: the set
//! keeps its pods, scales, releases a relabelled ("zombie") pod, and after
//! `delete --cascade=orphan` a new set with the same selector adopts the
//! pods that were left running.

use std::time::{Duration, Instant};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

/// Names of Running pods with label `app=webui`.
fn running(cp: &TestControlPlane) -> Vec<String> {
    let out = cp.kubectl_ok(&["get", "pods", "-l", "app=webui", "--no-headers"]);
    out.lines()
        .filter(|l| l.contains("Running") && !l.contains("Terminating"))
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

fn wait_running(cp: &TestControlPlane, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let all = cp.kubectl_ok(&["get", "pods", "-l", "app=webui", "--no-headers"]);
        let pods = running(cp);
        if pods.len() == n && all.lines().count() == n {
            return pods;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {n} running app=webui pods:\n{all}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

const RS: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: rs-nginx\nspec:\n  replicas: 3\n  selector:\n    matchLabels:\n      app: webui\n  template:\n    metadata:\n      name: nginx-pod\n      labels:\n        app: webui\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: nginx-container\n        image: busybox\n        command: [sleep, '3600']\n";

#[tokio::test]
async fn replicasets_keep_scale_release_and_adopt_their_pods() {
    if !kubectl_enabled("replicasets_keep_scale_release_and_adopt_their_pods") {
        return;
    }
    let Some(env) = TestEnv::start("replicasets_keep_scale_release_and_adopt_their_pods").await
    else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}r", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(" Ready ")
    });

    let file = cp.manifest("rs.yaml", RS);
    cp.kubectl_ok(&["apply", "-f", &file]);
    let first = wait_running(&cp, 3);
    assert!(
        first
            .iter()
            .all(|p| p.starts_with("rs-nginx-") && p.len() == "rs-nginx-".len() + 5),
        "names: {first:?}"
    );
    let owner = cp.kubectl_ok(&[
        "get",
        "pod",
        &first[0],
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller}",
    ]);
    assert_eq!(owner, "ReplicaSet/rs-nginx true");
    let rs = cp.eventually(&["get", "rs", "rs-nginx"], "status 3/3/3", |o| {
        o.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().collect::<Vec<_>>()[1..4] == ["3", "3", "3"])
    });
    assert!(rs.starts_with("NAME"), "{rs}");
    let describe = cp.kubectl_ok(&["describe", "rs", "rs-nginx"]);
    assert!(
        describe.contains("SuccessfulCreate") && describe.contains("Created pod: rs-nginx-"),
        "{describe}"
    );

    // A deleted pod is replaced.
    cp.kubectl_ok(&["delete", "pod", &first[0]]);
    let replaced = wait_running(&cp, 3);
    assert!(!replaced.contains(&first[0]), "{replaced:?}");

    // kubectl scale goes through the scale subresource.
    cp.kubectl_ok(&["scale", "rs", "rs-nginx", "--replicas=5"]);
    wait_running(&cp, 5);
    cp.kubectl_ok(&["scale", "rs", "rs-nginx", "--replicas=2"]);
    let two = wait_running(&cp, 2);

    // The zombie pod: relabelled, it is released and replaced.
    cp.kubectl_ok(&["label", "pod", &two[0], "app=zombie", "--overwrite"]);
    let after = wait_running(&cp, 2);
    assert!(!after.contains(&two[0]), "{after:?}");
    let zombie = cp.kubectl_ok(&[
        "get",
        "pod",
        &two[0],
        "-o",
        "jsonpath={.status.phase} refs={.metadata.ownerReferences}",
    ]);
    assert_eq!(
        zombie, "Running refs=",
        "the zombie keeps running, ownerless"
    );

    // --cascade=orphan leaves the pods; the same set again adopts them.
    cp.kubectl_ok(&["delete", "rs", "rs-nginx", "--cascade=orphan"]);
    let orphans = wait_running(&cp, 2);
    let refs = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=webui",
        "-o",
        "jsonpath={.items[*].metadata.ownerReferences}",
    ]);
    assert!(refs.trim().is_empty(), "orphans still owned: {refs}");
    cp.kubectl_ok(&["apply", "-f", &file]);
    cp.eventually(
        &[
            "get",
            "pods",
            "-l",
            "app=webui",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences[0].name}",
        ],
        "adoption",
        |o| o.split_whitespace().filter(|n| *n == "rs-nginx").count() >= 2,
    );
    let adopted_and_new = wait_running(&cp, 3);
    for pod in &orphans {
        assert!(
            adopted_and_new.contains(pod),
            "{pod} was not adopted: {adopted_and_new:?}"
        );
    }

    // A ReplicationController does the same with its equality selector.
    let rc = "apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: rc-web\nspec:\n  replicas: 2\n  selector:\n    app: rcweb\n  template:\n    metadata:\n      labels:\n        app: rcweb\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox\n        command: [sleep, '3600']\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("rc.yaml", rc)]);
    cp.eventually(&["get", "rc", "rc-web"], "rc 2/2/2", |o| {
        o.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().collect::<Vec<_>>()[1..4] == ["2", "2", "2"])
    });
    drop(kubelet);
    env.shutdown().await;
}
