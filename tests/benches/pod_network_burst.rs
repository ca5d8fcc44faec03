//! The 50-pod burst with the pod network on and off, interleaved on the
//! same machine in one run: `skiff up --nodes 3 --pod-network cni` (every
//! pod gets a CNI address, routes, the service proxy runs) against
//! `--pod-network none` (loopback-only pod namespaces, as before the pod
//! network). Each round starts a fresh cluster, applies a 50-replica
//! ReplicaSet of busybox `sleep` and times apply → 50 Ready, as kubectl
//! polling sees it (every 100 ms). Alternating the modes (and which goes
//! first in a round) spreads the machine's load drift over both sides.
//!
//! Run as root with the venv kubectl, release binaries built:
//! `cargo bench -p skiff-tests --bench pod_network_burst`
//! (`SKIFF_BENCH_ROUNDS`, default 4 per mode; `SKIFF_BENCH_MODE=default`
//! runs `skiff up` without the switch, twice a round, to compare builds).

use std::time::{Duration, Instant};

use skiff_tests::cluster::SkiffUp;

const MANIFEST: &str = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: burst\nspec:\n  replicas: 50\n  selector:\n    matchLabels:\n      app: burst\n  template:\n    metadata:\n      labels:\n        app: burst\n    spec:\n      terminationGracePeriodSeconds: 0\n      containers:\n      - name: sleep\n        image: busybox\n        command: [sleep, '3600']\n";

/// One round: a fresh cluster in `mode`; apply → 50 Ready.
fn round(mode: &str) -> Duration {
    let temp = tempfile::Builder::new()
        .prefix("skiff-bench-burst-")
        .tempdir()
        .expect("tempdir");
    // `default`: no flag at all, for builds older than the switch.
    let flags: &[&str] = if mode == "default" {
        &[]
    } else {
        &["--pod-network", mode]
    };
    let cluster = SkiffUp::start_with(3, temp.path(), flags);
    let file = temp.path().join("burst.yaml");
    std::fs::write(&file, MANIFEST).expect("manifest");
    let t = Instant::now();
    cluster.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
    let deadline = t + Duration::from_secs(300);
    loop {
        let (ok, out) =
            cluster.kubectl(&["get", "rs/burst", "-o", "jsonpath={.status.readyReplicas}"]);
        if ok && out.trim() == "50" {
            break;
        }
        assert!(Instant::now() < deadline, "burst never Ready: {out}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = t.elapsed();
    if mode != "none" {
        // The pods really are on the pod network: an address each.
        let ips = cluster.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=burst",
            "-o",
            "jsonpath={.items[*].status.podIP}",
        ]);
        assert_eq!(ips.split_whitespace().count(), 50, "pod IPs: {ips}");
    }
    took
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::var("SKIFF_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // Each round's second cluster starts on the first's leftovers
        // (load, page cache): the order alternates so neither side always
        // goes second.
        let mut order = if r % 2 == 0 {
            ["cni", "none"]
        } else {
            ["none", "cni"]
        };
        if std::env::var("SKIFF_BENCH_MODE").as_deref() == Ok("default") {
            // One side of an A/B between two builds: `skiff up`'s default.
            order = ["default", "default"];
        }
        for mode in order {
            let took = round(mode);
            let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
            println!(
                "round {r} --pod-network {mode}: 50 applied → Ready in {:.2} s (load {})",
                took.as_secs_f64(),
                load.split_whitespace().next().unwrap_or("?")
            );
            if mode == "none" {
                off.push(took)
            } else {
                on.push(took)
            }
        }
    }
    if off.is_empty() {
        println!(
            "median of {} runs: {:.2} s",
            on.len(),
            median(on).as_secs_f64()
        );
        return;
    }
    let (on, off) = (median(on), median(off));
    println!(
        "median of {rounds}: pod network on {:.2} s, off {:.2} s ({:+.1} %)",
        on.as_secs_f64(),
        off.as_secs_f64(),
        (on.as_secs_f64() / off.as_secs_f64() - 1.0) * 100.0
    );
}
