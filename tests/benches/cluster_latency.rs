//! Through the whole stack: API create → scheduler → node actor → gRPC →
//! kubelet → containerd → status back in the API. A sample is the time from
//! the pod's POST until the API shows its container running; the floor is
//! the bare runtime's create+start. Also the control plane's memory with
//! 1,000 pods stored.
//!
//! Run with `scripts/bench.sh` (root, containerd and the venv kubectl).

use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_images::ImageName;
use skiff_kubelet::runtime::{ContainerConfig, ContainerRuntime};
use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, http_json, rss_mib};
use skiff_tests::kubelet::TestKubelet;

const RUNS: usize = 20;
const BATCH: usize = 50;

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

fn pod(name: &str, node: Option<&str>) -> String {
    let node = node
        .map(|n| format!(r#""nodeName":"{n}","#))
        .unwrap_or_default();
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}"}},"spec":{{{node}"terminationGracePeriodSeconds":0,"containers":[{{"name":"c","image":"busybox","imagePullPolicy":"IfNotPresent","command":["sleep","3600"]}}]}}}}"#
    )
}

fn running(pod: &Value) -> bool {
    pod["status"]["containerStatuses"]
        .as_array()
        .is_some_and(|cs| !cs.is_empty() && cs.iter().all(|c| c["state"]["running"].is_object()))
}

fn get(addr: &str, path: &str) -> Value {
    http_json("GET", addr, path, "")
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or(Value::Null)
}

fn delete_all(addr: &str, names: &[String]) {
    for n in names {
        let _ = http_json(
            "DELETE",
            addr,
            &format!("/api/v1/namespaces/default/pods/{n}"),
            r#"{"gracePeriodSeconds":0}"#,
        );
    }
}

#[tokio::main]
async fn main() {
    let env = TestEnv::start("cluster_latency")
        .await
        .expect("root and containerd");
    let busybox = env.import("busybox").await;
    let cp = TestControlPlane::start().await;
    let node = format!("bench{}", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    let addr = cp.address.clone();
    while get(&addr, "/api/v1/nodes")["items"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut floor = Vec::new();
    for i in 0..RUNS {
        let id = format!("floor-{i}");
        let mut c = ContainerConfig::new(
            &id,
            ImageName::clone(&busybox),
            env.dir().join(format!("floor/{id}.log")),
        );
        c.command = vec!["sleep".into(), "3600".into()];
        let t = Instant::now();
        env.runtime.create_container(&c).await.expect("create");
        env.runtime.start_container(&id).await.expect("start");
        floor.push(t.elapsed());
        env.runtime.remove_container(&id).await.expect("remove");
    }

    let mut single = Vec::new();
    for i in 0..=RUNS {
        let name = format!("single-{i}");
        let t = Instant::now();
        let (status, body) = http_json(
            "POST",
            &addr,
            "/api/v1/namespaces/default/pods",
            &pod(&name, None),
        )
        .expect("create");
        assert_eq!(status, 201, "{body}");
        while !running(&get(
            &addr,
            &format!("/api/v1/namespaces/default/pods/{name}"),
        )) {
            assert!(t.elapsed() < Duration::from_secs(60), "pod never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // The first run warms up (image check, first netns).
        if i > 0 {
            single.push(t.elapsed());
        }
        delete_all(&addr, &[name]);
    }

    tokio::time::sleep(Duration::from_secs(2)).await;
    let names: Vec<String> = (0..BATCH).map(|i| format!("batch-{i}")).collect();
    let t = Instant::now();
    for n in &names {
        http_json(
            "POST",
            &addr,
            "/api/v1/namespaces/default/pods",
            &pod(n, None),
        )
        .expect("create");
    }
    let mut seen: std::collections::HashMap<String, Duration> = std::collections::HashMap::new();
    while seen.len() < BATCH {
        assert!(t.elapsed() < Duration::from_secs(180), "batch never ran");
        for p in get(&addr, "/api/v1/namespaces/default/pods")["items"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let n = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if running(p) && n.starts_with("batch-") {
                seen.entry(n).or_insert_with(|| t.elapsed());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut batch: Vec<Duration> = seen.values().copied().collect();
    delete_all(&addr, &names);

    // 1,000 pods bound to a node that does not run them (stored, watched).
    let ghosts: Vec<String> = (0..1000).map(|i| format!("ghost-{i}")).collect();
    for n in &ghosts {
        http_json(
            "POST",
            &addr,
            "/api/v1/namespaces/default/pods",
            &pod(n, Some("ghost-node")),
        )
        .expect("create");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = rss_mib(cp.pid().expect("pid"));

    floor.sort();
    single.sort();
    batch.sort();
    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("| path | samples | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "| bare runtime create+start (floor) | {} | {:.1} | {:.1} |",
        floor.len(),
        pct(&floor, 50.0),
        pct(&floor, 99.0)
    );
    println!(
        "| one pod: API create → running in the API | {} | {:.1} | {:.1} |",
        single.len(),
        pct(&single, 50.0),
        pct(&single, 99.0)
    );
    println!(
        "| {BATCH} pods at once, per pod | {} | {:.1} | {:.1} |",
        batch.len(),
        pct(&batch, 50.0),
        pct(&batch, 99.0)
    );
    println!("control plane RSS with 1,000 pods stored: {rss:.1} MiB");
    drop(kubelet);
    env.shutdown().await;
}
