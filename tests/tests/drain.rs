//! `kubectl drain` end to end with two real kubelets on containerd: the
//! node is cordoned, DaemonSet pods are left (`--ignore-daemonsets`),
//! pods with emptyDir data are evicted (`--delete-emptydir-data`) through
//! `pods/eviction`, a PodDisruptionBudget holds evictions back (kubectl's
//! retry message) until the ReplicaSet's replacement on the other node is
//! Ready, and kubectl waits for every evicted pod to be gone.

use std::time::{Duration, Instant};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

const WORKLOAD: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox\n        command: [sleep, '3600']\n        volumeMounts:\n        - name: scratch\n          mountPath: /scratch\n      volumes:\n      - name: scratch\n        emptyDir: {}\n---\napiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels:\n      app: agent\n  template:\n    metadata:\n      labels:\n        app: agent\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: c\n        image: busybox\n        command: [sleep, '3600']\n";

const BUDGET: &str = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 2\n  selector:\n    matchLabels:\n      app: web\n";

/// `name node phase ready deleting` of every pod with label `app`.
fn pods(cp: &TestControlPlane, app: &str) -> Vec<(String, String, String, bool, bool)> {
    let out = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Some((
                f.first()?.to_string(),
                f.get(1)?.to_string(),
                f.get(2)?.to_string(),
                f.get(3) == Some(&"True"),
                f.len() > 4,
            ))
        })
        .collect()
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[tokio::test]
async fn kubectl_drain_evicts_through_budgets_onto_the_other_node() {
    const TEST: &str = "kubectl_drain_evicts_through_budgets_onto_the_other_node";
    if !kubectl_enabled(TEST) {
        return;
    }
    let Some(env) = TestEnv::start(TEST).await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let a = format!("dr{}a", std::process::id());
    let b = format!("dr{}b", std::process::id());
    let _ka = TestKubelet::start_with(&env, &a, &["--control-plane", &cp.grpc]).await;
    let _kb = TestKubelet::start_with(&env, &b, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "two nodes Ready", |o| {
        o.matches(" Ready ").count() == 2
    });

    // Both web pods on node a: b is cordoned while they are placed.
    cp.kubectl_ok(&["cordon", &b]);
    let file = cp.manifest("workload.yaml", WORKLOAD);
    cp.kubectl_ok(&["apply", "-f", &file]);
    wait_for(
        "2 web pods Ready on a and an agent on each node",
        Duration::from_secs(90),
        || {
            let web = pods(&cp, "web");
            let agents = pods(&cp, "agent");
            web.len() == 2
                && web.iter().all(|p| p.1 == a && p.3)
                && agents.len() == 2
                && agents.iter().all(|p| p.3)
        },
    );
    cp.kubectl_ok(&["uncordon", &b]);
    let originals: Vec<String> = pods(&cp, "web").into_iter().map(|p| p.0).collect();

    // minAvailable 2 of 2: no eviction may happen, kubectl retries and
    // gives up at its timeout.
    let budget = cp.manifest("pdb.yaml", BUDGET);
    cp.kubectl_ok(&["apply", "-f", &budget]);
    cp.eventually(&["get", "pdb", "web"], "the budget counted", |o| {
        o.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().collect::<Vec<_>>()[1..4] == ["2", "N/A", "0"])
    });
    let blocked = cp.kubectl(&[
        "drain",
        &a,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=12s",
    ]);
    let stderr = String::from_utf8_lossy(&blocked.stderr);
    let stdout = String::from_utf8_lossy(&blocked.stdout);
    assert!(
        !blocked.status.success(),
        "drain passed a full budget:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains(&format!("node/{a} cordoned")), "{stdout}");
    let web = pods(&cp, "web");
    assert!(web.iter().all(|p| !p.4 && p.1 == a), "a pod went: {web:?}");

    // One disruption at a time: the first evicted pod's replacement on b
    // must be Ready before the second may go.
    cp.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        "{\"spec\":{\"minAvailable\":1}}",
    ]);
    let drained = cp.kubectl(&[
        "drain",
        &a,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    let stdout = String::from_utf8_lossy(&drained.stdout);
    let stderr = String::from_utf8_lossy(&drained.stderr);
    assert!(
        drained.status.success(),
        "drain failed:\n{stdout}\n{stderr}"
    );
    for pod in &originals {
        assert!(
            stdout.contains(&format!("pod/{pod} evicted")),
            "{pod}:\n{stdout}\n{stderr}"
        );
    }
    assert!(stdout.contains(&format!("node/{a} drained")), "{stdout}");
    assert!(
        stderr.contains("ignoring DaemonSet-managed Pods"),
        "{stderr}"
    );

    // The evicted pods are gone, their replacements run on b, the daemon
    // pod stays on a, and a is unschedulable.
    let web = pods(&cp, "web");
    assert!(web.iter().all(|p| !originals.contains(&p.0)), "{web:?}");
    wait_for("2 web pods Ready on b", Duration::from_secs(60), || {
        let web = pods(&cp, "web");
        web.len() == 2 && web.iter().all(|p| p.1 == b && p.3 && !p.4)
    });
    let agents = pods(&cp, "agent");
    assert!(agents.iter().any(|p| p.1 == a && !p.4), "{agents:?}");
    let unschedulable = cp.kubectl_ok(&["get", "node", &a, "-o", "jsonpath={.spec.unschedulable}"]);
    assert_eq!(unschedulable, "true");
    cp.eventually(&["get", "pdb", "web"], "the budget refilled", |o| {
        o.lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().collect::<Vec<_>>()[1..4] == ["1", "N/A", "1"])
    });
    drop((_ka, _kb));
    env.shutdown().await;
}
