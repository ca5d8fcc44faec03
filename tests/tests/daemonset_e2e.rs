//! The seed's DaemonSet session with the real kubectl, a real control plane
//! and four real kubelets on one containerd: the `ssd-monitor` set runs one
//! pod on each node labelled `disk=ssd` (`kubectl label node X disk=ssd`
//! adds one, `disk=hdd --overwrite` removes it, a node joining with the
//! label gets one), a changed template rolls out one node at a time
//! (`rollout status`, `rollout history`, `rollout undo`), and a node whose
//! kubelet dies keeps its daemon pod through the eviction that takes its
//! other pods, while no replacement appears anywhere else, and runs on
//! when the node returns.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

/// The seed's `ssd-monitor` (apps/v1, busybox instead of its image, and a
/// short grace period: `sleep` as PID 1 ignores SIGTERM).
fn daemonset(command: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: ssd-monitor
spec:
  selector:
    matchLabels:
      app: ssd-monitor
  template:
    metadata:
      labels:
        app: ssd-monitor
    spec:
      nodeSelector:
        disk: ssd
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: busybox
        command: [{command}]
"
    )
}

/// One row of `kubectl get pods -o wide` of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    name: String,
    ready: String,
    status: String,
    node: String,
}

/// The set's pods as `kubectl get pods -o wide` shows them (NODE column).
fn rows(cp: &TestControlPlane) -> Vec<Row> {
    let out = cp.kubectl_ok(&["get", "pods", "-l", "app=ssd-monitor", "-o", "wide"]);
    let mut lines = out.lines();
    let Some(header) = lines.next() else {
        return Vec::new();
    };
    let column = |name: &str| header.find(name).unwrap_or_default();
    let (ready_at, status_at, node_at) = (column("READY"), column("STATUS"), column(" NODE ") + 1);
    let cell = |line: &str, at: usize| {
        line.get(at..)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or_default()
            .to_string()
    };
    lines
        .map(|l| Row {
            name: cell(l, 0),
            ready: cell(l, ready_at),
            status: cell(l, status_at),
            node: cell(l, node_at),
        })
        .collect()
}

/// Waits until every pod of the set is Running and ready, one per node
/// of `nodes`; returns pod names by node.
fn wait_one_per_node(cp: &TestControlPlane, nodes: &[&str]) -> BTreeMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let now = rows(cp);
        let running = now
            .iter()
            .all(|r| r.status == "Running" && r.ready == "1/1");
        let mut on: Vec<&str> = now.iter().map(|r| r.node.as_str()).collect();
        on.sort_unstable();
        let mut want = nodes.to_vec();
        want.sort_unstable();
        if running && on == want {
            return now.into_iter().map(|r| (r.node, r.name)).collect();
        }
        assert!(
            Instant::now() < deadline,
            "wanted one running pod on each of {nodes:?}: {now:?}\n{}",
            cp.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// `kubectl get ds` as whitespace-separated words: header and row.
fn get_ds(cp: &TestControlPlane) -> (String, String) {
    let out = cp.kubectl_ok(&["get", "ds", "ssd-monitor"]);
    let words = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut lines = out.lines();
    (
        words(lines.next().unwrap_or_default()),
        words(lines.next().unwrap_or_default()),
    )
}

/// The commands of the set's pods that are not terminating.
fn commands(cp: &TestControlPlane) -> Vec<String> {
    let out = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=ssd-monitor",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.deletionTimestamp}|{.spec.containers[0].command[1]}{"\n"}{end}"#,
    ]);
    out.lines()
        .filter_map(|l| l.strip_prefix('|').map(String::from))
        .collect()
}

/// Runs `kubectl rollout status` while sampling the pods: with
/// maxUnavailable 1, at most one of the `nodes` may lack a ready pod, and
/// at most one pod may be terminating, at any time.
fn roll_out_one_at_a_time(cp: &TestControlPlane, nodes: usize) -> usize {
    let mut worst = 0;
    let status = std::thread::scope(|scope| {
        let status =
            scope.spawn(|| cp.kubectl(&["rollout", "status", "ds/ssd-monitor", "--timeout=90s"]));
        while !status.is_finished() {
            let now = rows(cp);
            let ready_nodes = now
                .iter()
                .filter(|r| r.status == "Running" && r.ready == "1/1")
                .map(|r| r.node.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            let terminating = now.iter().filter(|r| r.status == "Terminating").count();
            assert!(terminating <= 1, "two pods replaced at once: {now:?}");
            worst = worst.max(nodes.saturating_sub(ready_nodes));
            std::thread::sleep(Duration::from_millis(100));
        }
        status.join().expect("rollout status thread")
    });
    let out = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(
        status.status.success()
            && out.contains("daemon set \"ssd-monitor\" successfully rolled out"),
        "{out}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(worst <= 1, "{worst} nodes without a ready pod at once");
    worst
}

#[tokio::test]
async fn daemonsets_follow_node_labels_roll_out_and_survive_node_loss() {
    const TEST: &str = "daemonsets_follow_node_labels_roll_out_and_survive_node_loss";
    if !kubectl_enabled(TEST) {
        return;
    }
    let Some(env) = TestEnv::start(TEST).await else {
        return;
    };
    let started = Instant::now();
    let cp = TestControlPlane::start().await;
    let names: Vec<String> = ["a", "b", "c", "d"]
        .iter()
        .map(|s| format!("ds{}{s}", std::process::id()))
        .collect();
    let mut kubelets = Vec::new();
    for name in &names[..3] {
        kubelets.push(TestKubelet::start_with(&env, name, &["--control-plane", &cp.grpc]).await);
    }
    let (a, b, c, d) = (
        names[0].as_str(),
        names[1].as_str(),
        names[2].as_str(),
        names[3].as_str(),
    );
    cp.eventually(&["get", "nodes"], "three nodes Ready", |o| {
        o.matches(" Ready ").count() == 3
    });
    cp.kubectl_ok(&["label", "node", a, "disk=ssd"]);
    cp.kubectl_ok(&["label", "node", b, "disk=ssd"]);

    // The API refuses a set whose selector misses its template.
    let broken = daemonset("sleep, '3600'").replace(
        "matchLabels:\n      app: ssd-monitor",
        "matchLabels:\n      app: other",
    );
    let refused = cp.kubectl_err(&["apply", "-f", &cp.manifest("broken.yaml", &broken)]);
    assert!(
        refused.contains("`selector` does not match template `labels`"),
        "{refused}"
    );

    let file = cp.manifest("ds.yaml", &daemonset("sleep, '3600'"));
    cp.kubectl_ok(&["apply", "-f", &file]);
    let first = wait_one_per_node(&cp, &[a, b]);
    for pod in first.values() {
        assert!(
            pod.starts_with("ssd-monitor-") && pod.len() == "ssd-monitor-".len() + 5,
            "{pod}"
        );
    }
    let owner = cp.kubectl_ok(&[
        "get",
        "pod",
        &first[a],
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.ownerReferences[0].controller} {.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0].matchFields[0].values[0]}",
    ]);
    assert_eq!(owner, format!("DaemonSet/ssd-monitor true {a}"));
    cp.eventually(&["get", "ds", "ssd-monitor"], "status 2/2", |o| {
        o.contains(" 2 ") && !o.contains(" 0 ") && !o.contains(" 1 ")
    });
    let (header, row) = get_ds(&cp);
    assert_eq!(
        header,
        "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE"
    );
    assert!(row.starts_with("ssd-monitor 2 2 2 2 2 disk=ssd "), "{row}");
    let describe = cp.kubectl_ok(&["describe", "ds", "ssd-monitor"]);
    assert!(
        describe.contains("SuccessfulCreate") && describe.contains("Created pod: ssd-monitor-"),
        "{describe}"
    );

    // A node gets the label: a pod lands there; it loses it: the pod goes.
    cp.kubectl_ok(&["label", "node", c, "disk=ssd"]);
    let three = wait_one_per_node(&cp, &[a, b, c]);
    assert_eq!(
        (three[a].as_str(), three[b].as_str()),
        (first[a].as_str(), first[b].as_str())
    );
    cp.kubectl_ok(&["label", "node", c, "disk=hdd", "--overwrite"]);
    let two = wait_one_per_node(&cp, &[a, b]);
    assert_eq!(two, first, "the other nodes' pods are untouched");
    let events = cp.kubectl_ok(&["get", "events"]);
    assert!(
        events.contains(&format!("Deleted pod: {}", three[c])),
        "{events}"
    );
    cp.kubectl_ok(&["label", "node", c, "disk=ssd", "--overwrite"]);
    let before_update = wait_one_per_node(&cp, &[a, b, c]);

    // A changed template rolls out node by node.
    cp.kubectl_ok(&[
        "apply",
        "-f",
        &cp.manifest("ds.yaml", &daemonset("sleep, '7200'")),
    ]);
    roll_out_one_at_a_time(&cp, 3);
    let updated = wait_one_per_node(&cp, &[a, b, c]);
    for node in [a, b, c] {
        assert_ne!(
            updated[node], before_update[node],
            "{node} kept its old pod"
        );
    }
    assert_eq!(commands(&cp), ["7200", "7200", "7200"]);
    let history = cp.kubectl_ok(&["rollout", "history", "ds/ssd-monitor"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    let first_revision = cp.kubectl_ok(&["rollout", "history", "ds/ssd-monitor", "--revision=1"]);
    assert!(first_revision.contains("3600"), "{first_revision}");
    let revisions_listed = cp.kubectl_ok(&["get", "controllerrevisions"]);
    assert!(
        revisions_listed.contains("daemonset.apps/ssd-monitor"),
        "{revisions_listed}"
    );

    // Undo: back to the first template, which becomes revision 3.
    let undo = cp.kubectl_ok(&["rollout", "undo", "ds/ssd-monitor"]);
    assert!(undo.contains("rolled back"), "{undo}");
    roll_out_one_at_a_time(&cp, 3);
    wait_one_per_node(&cp, &[a, b, c]);
    assert_eq!(commands(&cp), ["3600", "3600", "3600"]);
    let history = cp.kubectl_ok(&["rollout", "history", "ds/ssd-monitor"]);
    let revisions: Vec<&str> = history
        .lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
    let again = cp.kubectl_ok(&["rollout", "undo", "ds/ssd-monitor", "--to-revision=3"]);
    assert!(
        again.contains("skipped rollback (current template already matches revision 3)"),
        "{again}"
    );

    // A node joins with the label: it gets its pod.
    kubelets.push(
        TestKubelet::start_with(
            &env,
            d,
            &["--control-plane", &cp.grpc, "--node-labels", "disk=ssd"],
        )
        .await,
    );

    // Node loss: the daemon pod stays on its node through the eviction
    // that takes the node's other pods, and is not recreated elsewhere.
    let before_loss = wait_one_per_node(&cp, &[a, b, c, d]);
    let victim = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: victim}}\nspec:\n  nodeName: {c}\n  terminationGracePeriodSeconds: 1\n  containers: [{{name: c, image: busybox, command: [sleep, '3600']}}]\n"
    );
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("victim.yaml", &victim)]);
    cp.eventually(&["get", "pod", "victim"], "victim running", |o| {
        o.contains("1/1") && o.contains("Running")
    });
    kubelets[2].kill();
    cp.eventually(&["get", "node", c], "NotReady", |o| o.contains("NotReady"));
    cp.eventually(&["get", "pod", "victim"], "eviction", |o| {
        o.contains("Terminating")
    });
    // One more pass of every controller after the eviction.
    std::thread::sleep(Duration::from_secs(3));
    let after = rows(&cp);
    let names_after: BTreeMap<String, String> = after
        .iter()
        .map(|r| (r.node.clone(), r.name.clone()))
        .collect();
    assert_eq!(names_after, before_loss, "{after:?}");
    assert!(
        after.iter().all(|r| r.status != "Terminating"),
        "a daemon pod was evicted: {after:?}"
    );
    let state = cp.kubectl_ok(&[
        "get",
        "pod",
        &before_loss[c],
        "-o",
        "jsonpath={.spec.nodeName} {.metadata.deletionTimestamp}",
    ]);
    assert_eq!(state.trim(), c, "still bound, not deleted");
    // Upstream counts: the unreachable node (NoSchedule taint) is not
    // desired any more, and its pod is misscheduled, not removed.
    cp.eventually(
        &[
            "get",
            "ds",
            "ssd-monitor",
            "-o",
            "jsonpath={.status.desiredNumberScheduled} {.status.numberMisscheduled}",
        ],
        "desired 3, misscheduled 1",
        |o| o == "3 1",
    );

    // The node comes back: the same pod runs on, nothing was replaced.
    kubelets[2].restart().await;
    cp.eventually(&["get", "node", c], "Ready again", |o| {
        o.contains(" Ready ")
    });
    let healed = wait_one_per_node(&cp, &[a, b, c, d]);
    assert_eq!(healed, before_loss);
    cp.eventually(
        &[
            "get",
            "ds",
            "ssd-monitor",
            "-o",
            "jsonpath={.status.desiredNumberScheduled} {.status.numberMisscheduled}",
        ],
        "desired 4, misscheduled 0",
        |o| o == "4 0",
    );

    // The seed's last steps: a relabelled pod leaves the set, which makes
    // another on its node; deleting the set leaves the relabelled pod.
    let released = before_loss[a].clone();
    cp.kubectl_ok(&["label", "pod", &released, "app=no-app", "--overwrite"]);
    let replaced = cp.eventually(
        &["get", "pods", "-l", "app=ssd-monitor", "-o", "wide"],
        "a new pod on the relabelled pod's node",
        |o| {
            o.lines()
                .any(|l| l.contains(a) && l.contains("Running") && !l.contains(&released))
        },
    );
    assert!(!replaced.contains(&released), "{replaced}");
    let owners = cp.kubectl_ok(&[
        "get",
        "pod",
        &released,
        "-o",
        "jsonpath={.metadata.ownerReferences}",
    ]);
    assert_eq!(owners, "", "released pods have no owner");
    cp.kubectl_ok(&["delete", "ds", "ssd-monitor"]);
    cp.eventually(
        &[
            "get",
            "pods,controllerrevisions",
            "-l",
            "app=ssd-monitor",
            "-o",
            "name",
        ],
        "the set's pods and revisions collected",
        |o| o.trim().is_empty(),
    );
    let left = cp.kubectl_ok(&["get", "pod", &released, "--no-headers"]);
    assert!(left.contains("Running"), "{left}");

    assert!(
        started.elapsed() < Duration::from_secs(150),
        "took {:?}",
        started.elapsed()
    );
    drop(kubelets);
    env.shutdown().await;
}
