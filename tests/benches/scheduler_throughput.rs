//! Scheduler throughput with many simulated ("hollow") nodes, the way
//! upstream's kubemark measures it: pods created through the API, timed
//! from the first create until every pod is bound (`spec.nodeName` set).
//!
//! A hollow node here is a whole Skiff kubelet started in this process
//! from the library (`skiff_kubelet::app::start`): node agent, pod
//! actors, its gRPC and HTTP servers, registration and heartbeats over
//! the real gRPC NodeRegistry, and the control plane's node actor pushing
//! pods to it over gRPC. Only the container runtime and pod network are
//! fakes (`FakeRuntime`, `FakeNetwork`): containers "run" in memory, so
//! the bench needs neither root nor containerd. The control plane is the
//! real release binary, as in the other benches.
//!
//! `SKIFF_BENCH_NODES` (default 1000) and `SKIFF_BENCH_PODS` (default
//! 10000) change the size. Run with `scripts/bench.sh` or
//! `cargo bench -p skiff-tests --bench scheduler_throughput` after
//! `cargo build --release -p skiff-control-plane`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::control_plane::{TestControlPlane, http_json, rss_mib};
use skiff_tests::hollow;

use skiff_tests::hollow::IMAGE;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One thousand kubelets hold a few thousand sockets.
fn pod(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"bench"}}}},"spec":{{"terminationGracePeriodSeconds":0,"containers":[{{"name":"c","image":"{IMAGE}","imagePullPolicy":"IfNotPresent","resources":{{"requests":{{"cpu":"10m","memory":"16Mi"}}}}}}]}}}}"#
    )
}

fn get(addr: &str, path: &str) -> Value {
    http_json("GET", addr, path, "")
        .ok()
        .and_then(|(_, b)| serde_json::from_str(&b).ok())
        .unwrap_or(Value::Null)
}

/// Where each pod got bound, and when.
#[derive(Default)]
struct Binds {
    at: HashMap<String, (Duration, String)>,
}

impl Binds {
    fn see(&mut self, pod: &Value, t: Duration) {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
            && name.starts_with("bench-")
            && !self.at.contains_key(name)
        {
            self.at.insert(name.to_string(), (t, node.to_string()));
        }
    }
}

/// Reads one chunk of a chunked HTTP body; `None` at the end.
fn chunk(reader: &mut BufReader<skiff_tests::api_tls::Stream>) -> Option<Vec<u8>> {
    let mut size = String::new();
    reader.read_line(&mut size).ok()?;
    let size = usize::from_str_radix(size.trim(), 16)
        .ok()
        .filter(|s| *s > 0)?;
    let mut data = vec![0; size + 2];
    reader.read_exact(&mut data).ok()?;
    data.truncate(size);
    Some(data)
}

/// Follows bound bench pods (API watch with a field selector) until
/// `want` are bound or `deadline` passes; re-lists when the watch ends.
fn follow_binds(addr: &str, start: Instant, want: usize, deadline: Duration) -> Binds {
    let mut binds = Binds::default();
    let selector = "fieldSelector=spec.nodeName%21%3D";
    while binds.at.len() < want && start.elapsed() < deadline {
        let listing = get(addr, &format!("/api/v1/namespaces/default/pods?{selector}"));
        for p in listing["items"].as_array().into_iter().flatten() {
            binds.see(p, start.elapsed());
        }
        let rv = listing["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("0")
            .to_string();
        let Ok(mut stream) = skiff_tests::api_tls::connect(addr, Duration::from_secs(5)) else {
            continue;
        };
        let request = format!(
            "GET /api/v1/namespaces/default/pods?watch=true&resourceVersion={rv}&{selector} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).is_err() {
            continue;
        }
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
            line.clear();
        }
        let mut pending = Vec::new();
        while binds.at.len() < want && start.elapsed() < deadline {
            let Some(data) = chunk(&mut reader) else {
                break;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let event: Value = serde_json::from_slice(&pending[..end]).unwrap_or(Value::Null);
                pending.drain(..=end);
                binds.see(&event["object"], start.elapsed());
            }
        }
    }
    binds
}

#[tokio::main]
async fn main() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("error")
        .with_writer(std::io::stderr)
        .try_init();
    hollow::raise_fd_limit();
    let nodes = env_or("SKIFF_BENCH_NODES", 1000);
    let pods = env_or("SKIFF_BENCH_PODS", 10_000);
    // Upstream's node-monitor grace and eviction timeout: a node whose
    // heartbeat is late under load must not lose its pods mid-run.
    let cp = TestControlPlane::start_with(&[
        "--node-monitor-grace-period",
        "50s",
        "--pod-eviction-timeout",
        "300s",
    ])
    .await;
    let addr = cp.address.clone();
    let dir = tempfile::Builder::new()
        .prefix("skiff-hollow-")
        .tempdir()
        .expect("temp dir");

    let t = Instant::now();
    let mut kubelets = Vec::with_capacity(nodes);
    for i in 0..nodes {
        kubelets.push(
            hollow::node(
                format!("hollow-{i:04}"),
                dir.path(),
                &cp.grpc,
                &cp.data_dir().join("pki"),
            )
            .await,
        );
    }
    loop {
        let listing = get(&addr, "/api/v1/nodes");
        let ready = listing["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| {
                n["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .count();
        if ready == nodes {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(300),
            "{ready}/{nodes} nodes ready: {}",
            cp.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let registered = t.elapsed();
    // Let the node actors connect to their kubelets before the clock starts.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_idle = rss_mib(cp.pid().expect("pid"));

    let start = Instant::now();
    let watcher = {
        let addr = addr.clone();
        std::thread::spawn(move || follow_binds(&addr, start, pods, Duration::from_secs(600)))
    };
    let clients = 8;
    let creators: Vec<_> = (0..clients)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for i in (c..pods).step_by(clients) {
                    let (status, body) = http_json(
                        "POST",
                        &addr,
                        "/api/v1/namespaces/default/pods",
                        &pod(&format!("bench-{i:05}")),
                    )
                    .expect("create");
                    assert_eq!(status, 201, "{body}");
                }
            })
        })
        .collect();
    for c in creators {
        c.join().expect("creator");
    }
    let created = start.elapsed();
    let binds = watcher.join().expect("watcher");
    assert_eq!(binds.at.len(), pods, "every pod bound within 10 minutes");
    let mut times: Vec<Duration> = binds.at.values().map(|(t, _)| *t).collect();
    times.sort();
    let all_bound = times[times.len() - 1];
    let mut per_node: HashMap<&str, usize> = HashMap::new();
    for (_, node) in binds.at.values() {
        *per_node.entry(node).or_default() += 1;
    }
    let most = per_node.values().copied().max().unwrap_or(0);
    let least = if per_node.len() < nodes {
        0
    } else {
        per_node.values().copied().min().unwrap_or(0)
    };
    // Upstream's SchedulingThroughput: pods bound per one-second window.
    let mut windows = vec![0usize; all_bound.as_secs() as usize + 1];
    for t in &times {
        windows[t.as_secs() as usize] += 1;
    }
    windows.sort();
    let rss_loaded = rss_mib(cp.pid().expect("pid"));

    println!(
        "machine: {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "{nodes} hollow nodes registered and Ready in {:.1} s",
        registered.as_secs_f64()
    );
    println!(
        "{pods} pods created ({clients} clients) in {:.2} s ({:.0} creates/s)",
        created.as_secs_f64(),
        pods as f64 / created.as_secs_f64()
    );
    println!(
        "first create → all bound: {:.2} s = **{:.0} pods/s**",
        all_bound.as_secs_f64(),
        pods as f64 / all_bound.as_secs_f64()
    );
    println!(
        "bound per second: median {} / max {}",
        windows[windows.len() / 2],
        windows[windows.len() - 1]
    );
    println!(
        "spread: {} nodes used, pods per node min {least} / max {most} (limit 110)",
        per_node.len()
    );
    println!(
        "control-plane RSS: {rss_idle:.1} MiB idle with {nodes} nodes, {rss_loaded:.1} MiB with {pods} pods"
    );
    assert!(most <= 110, "a node got {most} pods");
    let fair = pods.div_ceil(nodes);
    assert!(
        most <= fair + 1,
        "pods not spread: a node got {most}, fair share {fair}"
    );

    // Shut the kubelets down together rather than one after the other.
    let stops: Vec<_> = kubelets
        .into_iter()
        .map(|k| tokio::spawn(k.stop()))
        .collect();
    for s in stops {
        let _ = s.await;
    }
    drop(cp);
}
