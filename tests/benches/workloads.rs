//! Workload controllers at lab scale, on a real 3-node `skiff up` cluster
//! (real containerd, real kubectl), in the shape of the Docker Swarm
//! figures the issue compares with (one machine, local images, busybox
//! `sleep`):
//!
//! - a 50-replica ReplicaSet applied → all Running; scaled 50 → 100;
//! - a 100-replica ReplicaSet applied → all Running; deleted → all gone;
//! - rolling updates of a Deployment of 10 and of 50 replicas (a new env
//!   value, so every pod is replaced), with `terminationGracePeriodSeconds:
//!   0` (Swarm's SIGKILL stop) and with the default 30 s grace, timed
//!   from `kubectl set env` until `kubectl rollout status` returns.
//!
//! Times are wall clock seen by kubectl polling (every 100 ms), so they
//! include kubectl's own start-up (~50 ms). Run with `scripts/bench.sh`
//! (root, containerd, the venv kubectl).

use std::time::{Duration, Instant};

use skiff_tests::cluster::SkiffUp;

fn replica_set(name: &str, replicas: usize) -> String {
    format!(
        "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n      - name: sleep\n        image: busybox\n        command: [sleep, '3600']\n"
    )
}

fn deployment(name: &str, replicas: usize, grace: Option<u32>) -> String {
    let grace = grace
        .map(|g| format!("      terminationGracePeriodSeconds: {g}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        app: {name}\n    spec:\n{grace}      containers:\n      - name: sleep\n        image: busybox\n        command: [sleep, '3600']\n        env:\n        - name: VERSION\n          value: '1'\n"
    )
}

/// Polls `jsonpath` of `object` until it prints `want`; returns the time
/// from `since`.
fn until(cluster: &SkiffUp, object: &str, jsonpath: &str, want: &str, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(600);
    let arg = format!("jsonpath={jsonpath}");
    loop {
        let (ok, out) = cluster.kubectl(&["get", object, "-o", &arg]);
        if ok && out.trim() == want {
            return since.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "{object} {jsonpath}: wanted {want}, last {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until no pod with label `app=name` is left.
fn until_no_pods(cluster: &SkiffUp, name: &str, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(600);
    let selector = format!("app={name}");
    loop {
        let (ok, out) = cluster.kubectl(&["get", "pods", "-l", &selector, "--no-headers"]);
        if ok && (out.trim().is_empty() || out.contains("No resources found")) {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "pods of {name} left: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn apply(cluster: &SkiffUp, name: &str, yaml: &str) {
    let file = cluster.dir().join(format!("{name}.yaml"));
    std::fs::write(&file, yaml).expect("manifest");
    cluster.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
}

/// Pods per node of label `app=name`, as `kubectl get pods -o wide` shows.
fn spread(cluster: &SkiffUp, name: &str) -> String {
    let out = cluster.kubectl_ok(&["get", "pods", "-l", &format!("app={name}"), "-o", "wide"]);
    let mut per_node = std::collections::BTreeMap::<String, usize>::new();
    for line in out.lines().skip(1) {
        if let Some(node) = line.split_whitespace().nth(6) {
            *per_node.entry(node.to_string()).or_default() += 1;
        }
    }
    format!("{per_node:?}")
}

fn rolling_update(cluster: &SkiffUp, name: &str, replicas: usize, grace: Option<u32>) {
    apply(cluster, name, &deployment(name, replicas, grace));
    let object = format!("deploy/{name}");
    until(
        cluster,
        &object,
        "{.status.availableReplicas}",
        &replicas.to_string(),
        Instant::now(),
    );
    let t = Instant::now();
    cluster.kubectl_ok(&["set", "env", &object, "VERSION=2"]);
    cluster.kubectl_ok(&["rollout", "status", &object, "--timeout=600s"]);
    let done = t.elapsed();
    let updated = until(
        cluster,
        &object,
        "{.status.updatedReplicas}/{.status.availableReplicas}/{.status.replicas}",
        &format!("{replicas}/{replicas}/{replicas}"),
        t,
    );
    let gone = until_old_pods_gone(cluster, name, replicas, t);
    println!(
        "rolling update of {replicas} (grace {}): rollout status done {:.1} s; all updated and available {:.1} s; old pods gone {:.1} s",
        grace.map_or("default 30 s".to_string(), |g| format!("{g} s")),
        done.as_secs_f64(),
        updated.as_secs_f64(),
        gone.as_secs_f64()
    );
    let _ = cluster.kubectl(&["delete", &object]);
    until_no_pods(cluster, name, Instant::now());
}

/// Waits until exactly `replicas` pods of `app=name` exist (the old ones
/// finished terminating).
fn until_old_pods_gone(cluster: &SkiffUp, name: &str, replicas: usize, since: Instant) -> Duration {
    let deadline = Instant::now() + Duration::from_secs(600);
    let selector = format!("app={name}");
    loop {
        let (ok, out) = cluster.kubectl(&["get", "pods", "-l", &selector, "--no-headers"]);
        if ok && out.lines().count() == replicas && !out.contains("Terminating") {
            return since.elapsed();
        }
        assert!(Instant::now() < deadline, "old pods of {name} left: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn main() {
    let temp = tempfile::Builder::new()
        .prefix("skiff-bench-workloads-")
        .tempdir()
        .expect("tempdir");
    let t = Instant::now();
    let cluster = SkiffUp::start(3, temp.path());
    println!(
        "machine: {} cores; skiff up --nodes 3 Ready in {:.1} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    apply(&cluster, "rs50", &replica_set("rs50", 50));
    let running = until(&cluster, "rs/rs50", "{.status.readyReplicas}", "50", t);
    println!(
        "ReplicaSet of 50 applied → 50 Running: {:.1} s ({})",
        running.as_secs_f64(),
        spread(&cluster, "rs50")
    );
    let t = Instant::now();
    cluster.kubectl_ok(&["scale", "rs/rs50", "--replicas=100"]);
    let scaled = until(&cluster, "rs/rs50", "{.status.readyReplicas}", "100", t);
    println!(
        "scaled 50 → 100 Running: {:.1} s ({})",
        scaled.as_secs_f64(),
        spread(&cluster, "rs50")
    );
    let t = Instant::now();
    cluster.kubectl_ok(&["delete", "rs/rs50"]);
    let gone = until_no_pods(&cluster, "rs50", t);
    println!("deleted 100 → all pods gone: {:.1} s", gone.as_secs_f64());

    let t = Instant::now();
    apply(&cluster, "rs100", &replica_set("rs100", 100));
    let running = until(&cluster, "rs/rs100", "{.status.readyReplicas}", "100", t);
    println!(
        "ReplicaSet of 100 applied → 100 Running: {:.1} s ({})",
        running.as_secs_f64(),
        spread(&cluster, "rs100")
    );
    let t = Instant::now();
    cluster.kubectl_ok(&["delete", "rs/rs100"]);
    let gone = until_no_pods(&cluster, "rs100", t);
    println!("deleted 100 → all pods gone: {:.1} s", gone.as_secs_f64());

    rolling_update(&cluster, "roll10k", 10, Some(0));
    rolling_update(&cluster, "roll10", 10, None);
    rolling_update(&cluster, "roll50k", 50, Some(0));
    rolling_update(&cluster, "roll50", 50, None);
}
