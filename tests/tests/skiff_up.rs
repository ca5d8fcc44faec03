//! `skiff up --nodes 3`: a whole cluster from one command, driven by the
//! real kubectl, each node in its own network namespace; `skiff node
//! stop|start|partition|heal` for chaos; Ctrl-C cleans up.

use std::process::Command;
use std::time::{Duration, Instant};

use skiff_tests::cluster::SkiffUp;
use skiff_tests::control_plane::kubectl_enabled;
use skiff_tests::e2e_enabled;

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

#[test]
fn skiff_up_runs_a_cluster_kubectl_can_drive() {
    if !kubectl_enabled("skiff_up_runs_a_cluster_kubectl_can_drive")
        || !e2e_enabled("skiff_up_runs_a_cluster_kubectl_can_drive")
    {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-up-")
        .tempdir()
        .expect("tempdir");
    let dir = temp.path().to_path_buf();
    let cluster = SkiffUp::start(3, &dir);
    let nodes = cluster.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    // Each node has an address of its own on the cluster's bridge.
    let record = cluster.record();
    let id = record["network"]["id"].as_u64().expect("network id");
    for i in 1..=3 {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(&format!("node{i} ")))
            .unwrap_or_else(|| panic!("node{i} missing: {nodes}"));
        assert!(
            line.contains(&format!("172.29.{id}.{}", 10 + i)),
            "node{i} address: {line}"
        );
        assert!(
            std::path::Path::new(&format!("/run/netns/skiff{id}-node{i}")).exists(),
            "node{i} has no network namespace"
        );
    }

    cluster.kubectl(&["label", "node", "node3", "disk=ssd"]);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: ssd-pod}\nspec:\n  nodeSelector: {disk: ssd}\n  tolerations: [{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}]\n  containers: [{name: web, image: skiff.dev/webapp:v1}]\n";
    let file = cluster.dir().join("pod.yaml");
    std::fs::write(&file, pod).expect("write");
    let (ok, out) = cluster.kubectl(&["apply", "-f", &file.display().to_string()]);
    assert!(ok, "{out}");
    let wide = cluster.eventually(
        &["get", "pod", "ssd-pod", "-o", "wide"],
        "ssd-pod running",
        |o| o.contains("1/1") && o.contains("Running"),
    );
    assert!(wide.contains("node3"), "{wide}");

    // No node has disk=nvme: Pending, with the scheduler's explanation.
    let picky = "apiVersion: v1\nkind: Pod\nmetadata: {name: picky}\nspec:\n  nodeSelector: {disk: nvme}\n  containers: [{name: c, image: busybox}]\n";
    std::fs::write(&file, picky).expect("write");
    assert!(
        cluster
            .kubectl(&["apply", "-f", &file.display().to_string()])
            .0
    );
    let events = cluster.eventually(&["describe", "pod", "picky"], "FailedScheduling", |o| {
        o.contains("FailedScheduling")
    });
    assert!(
        events.contains(
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector"
        ),
        "{events}"
    );
    let (_, status) = cluster.kubectl(&["get", "pod", "picky"]);
    assert!(status.contains("Pending"), "{status}");

    let bare = "apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec:\n  nodeName: node2\n  terminationGracePeriodSeconds: 1\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n";
    std::fs::write(&file, bare).expect("write");
    assert!(
        cluster
            .kubectl(&["apply", "-f", &file.display().to_string()])
            .0
    );
    cluster.eventually(&["get", "pod", "bare"], "bare running", |o| {
        o.contains("Running")
    });

    // A ReplicaSet spread over the three nodes, to see it heal.
    let rs = "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: healer}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: healer}}\n  template:\n    metadata: {labels: {app: healer}}\n    spec:\n      terminationGracePeriodSeconds: 1\n      containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n";
    std::fs::write(&file, rs).expect("write");
    assert!(
        cluster
            .kubectl(&["apply", "-f", &file.display().to_string()])
            .0
    );
    let healer_pods = |o: &str| -> Vec<(String, String, String)> {
        // NAME READY STATUS RESTARTS AGE IP NODE ...
        o.lines()
            .skip(1)
            .filter_map(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                Some((
                    c.first()?.to_string(),
                    c.get(2)?.to_string(),
                    c.get(6)?.to_string(),
                ))
            })
            .collect()
    };
    let spread = cluster.eventually(
        &["get", "pods", "-l", "app=healer", "-o", "wide"],
        "3 healer pods running",
        |o| {
            let pods = healer_pods(o);
            pods.len() == 3 && pods.iter().all(|p| p.1 == "Running")
        },
    );
    assert!(
        healer_pods(&spread).iter().any(|p| p.2 == "node2"),
        "spread over the nodes: {spread}"
    );

    // stop: the kubelet and the node's containers freeze.
    cluster.node("stop", "node2");
    let stopped = Instant::now();
    let namespace = format!("skiff{id}-node2");
    let freezer = std::path::Path::new("/sys/fs/cgroup/freezer")
        .join(&namespace)
        .join("freezer.state");
    if freezer.exists() {
        let state = std::fs::read_to_string(&freezer).expect("freezer state");
        assert!(
            state.starts_with("FROZEN") || state.starts_with("FREEZING"),
            "{state}"
        );
    }
    let (_, seen) = cluster.eventually_since(&["get", "nodes"], "node2 NotReady", |o| {
        SkiffUp::node_shows(o, "node2", "NotReady")
    });
    assert!(
        seen.duration_since(stopped) < Duration::from_secs(5),
        "NotReady after {:?}",
        seen.duration_since(stopped)
    );
    cluster.eventually(&["get", "pod", "bare"], "eviction", |o| {
        o.contains("Terminating")
    });
    // The ReplicaSet replaces its lost pod on another node.
    let (_, replaced) = cluster.eventually_since(
        &["get", "pods", "-l", "app=healer", "-o", "wide"],
        "a replacement on another node",
        |o| {
            let live: Vec<_> = healer_pods(o)
                .into_iter()
                .filter(|p| p.1 != "Terminating")
                .collect();
            live.len() == 3 && live.iter().all(|p| p.2 != "node2" && p.2 != "<none>")
        },
    );
    assert!(
        replaced.duration_since(stopped) < Duration::from_secs(10),
        "replacement scheduled after {:?}",
        replaced.duration_since(stopped)
    );
    cluster.eventually(
        &["get", "pods", "-l", "app=healer", "-o", "wide"],
        "the replacement running",
        |o| {
            healer_pods(o)
                .iter()
                .filter(|p| p.1 == "Running" && p.2 != "node2")
                .count()
                == 3
        },
    );
    cluster.node("start", "node2");
    cluster.eventually(&["get", "nodes"], "node2 Ready again", |o| {
        o.matches(" Ready ").count() == 3
    });
    cluster.eventually(
        &["get", "pods", "-o", "name"],
        "the evicted pod gone",
        |o| !o.contains("bare"),
    );

    // partition: node3 runs on but the control plane cannot hear it.
    cluster.node("partition", "node3");
    let cut = Instant::now();
    let (_, seen) = cluster.eventually_since(&["get", "nodes"], "node3 NotReady", |o| {
        SkiffUp::node_shows(o, "node3", "NotReady")
    });
    assert!(
        seen.duration_since(cut) < Duration::from_secs(5),
        "NotReady after {:?}",
        seen.duration_since(cut)
    );
    let (ok, out) = cluster.kubectl(&["exec", "ssd-pod", "--request-timeout=3s", "--", "true"]);
    assert!(!ok, "exec reached a partitioned node: {out}");
    cluster.node("heal", "node3");
    cluster.eventually(&["get", "nodes"], "node3 Ready after heal", |o| {
        o.matches(" Ready ").count() == 3
    });
    // The pod tolerates the unreachable taint, so it survives the partition
    // where it ran, untouched; sessions to it work again.
    let out = cluster.eventually(
        &["exec", "ssd-pod", "--", "hostname"],
        "exec after heal",
        |o| o.trim() == "ssd-pod",
    );
    assert_eq!(out.trim(), "ssd-pod");
    let (_, pods) = cluster.kubectl(&["get", "pods"]);
    assert!(
        pods.contains("ssd-pod") && pods.contains("Running"),
        "{pods}"
    );

    drop(cluster);
    // Ctrl-C took everything down: containerd, shims, control plane, kubelets.
    let left = processes_mentioning(&dir.display().to_string());
    assert!(left.is_empty(), "processes left: {left:?}");
    // ... and the node network: namespaces, bridge and nftables table.
    for i in 1..=3 {
        assert!(
            !std::path::Path::new(&format!("/run/netns/skiff{id}-node{i}")).exists(),
            "namespace of node{i} left behind"
        );
    }
    assert!(
        !std::path::Path::new(&format!("/sys/class/net/skiff{id}")).exists(),
        "bridge left behind"
    );
    let tables = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .expect("nft");
    assert!(
        !String::from_utf8_lossy(&tables.stdout).contains(&format!("inet skiff{id}\n")),
        "nftables table left behind"
    );
    drop(temp);
}

/// A port another program holds is refused up front, by number, before
/// containerd, the bridge or the control plane start (another cluster's
/// API used to answer `skiff up`'s readiness checks).
#[test]
fn a_taken_port_stops_skiff_up_before_anything_starts() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = held.local_addr().expect("addr").port();
    let dir = tempfile::Builder::new()
        .prefix("skiff-up-port-")
        .tempdir()
        .expect("tempdir");
    let t = Instant::now();
    let out = Command::new(skiff_tests::workspace_binary("skiff"))
        .args([
            "up",
            "--nodes",
            "1",
            "--api-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .expect("skiff up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} is in use")),
        "{stderr}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        !dir.path().join("containerd").exists() && !dir.path().join("images").exists(),
        "something started"
    );
    drop(held);
}
