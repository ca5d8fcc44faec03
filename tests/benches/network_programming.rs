//! Network programming latency on a real `skiff up --nodes 3`: from a
//! Service create answered by the API until the Service's ClusterIP is in
//! the service proxy's table on every node (through the control plane's
//! `WatchServices` feed, each kubelet's cache and the proxy's debounced
//! nftables transaction), with 100 and then 1,000 Services present.
//! Upstream's SLI is the same path (API change → rules on all nodes).
//!
//! The create is a plain HTTP POST (kubectl's own start-up would dwarf
//! what is measured); each node's table is watched with `nft monitor new
//! elements` in the node's namespace, a push from the kernel when the
//! element lands. (Polling with `nft get element` cost ~20 ms per call on
//! this machine, three nodes in turn: the poll, not the proxy, was most of
//! the figure, and it took CPU from the nodes it measured.)
//! Run as root with the venv kubectl: `cargo bench -p skiff-tests --bench
//! network_programming` (`SKIFF_BENCH_PROBES`, default 30 per size).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use skiff_tests::cluster::SkiffUp;

/// POSTs `body` to `path` on the API at `api`; the answer's body.
fn post(api: &str, path: &str, body: &str) -> String {
    let mut stream =
        skiff_tests::api_tls::connect(api, Duration::from_secs(30)).expect("connect to the API");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {api}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

fn service(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}"}},"spec":{{"selector":{{"app":"{name}"}},"ports":[{{"port":80,"targetPort":8080}}]}}}}"#
    )
}

fn create(api: &str, name: &str) -> String {
    let answer = post(api, "/api/v1/namespaces/default/services", &service(name));
    let value: serde_json::Value = serde_json::from_str(&answer).expect("a Service");
    value["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_else(|| panic!("no clusterIP: {answer}"))
        .to_string()
}

/// When each node saw each ClusterIP enter its map of Services without
/// endpoints (where a new Service without pods lands), by IP then node.
type Seen = Arc<Mutex<HashMap<String, HashMap<usize, Instant>>>>;

/// Follows `nft monitor new elements` in node `netns` (number `node`),
/// noting when each Service IP appears in the proxy's map.
fn watch_node(node: usize, netns: &str, seen: Seen) -> Child {
    let mut child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{netns}"))
        .args(["nft", "monitor", "new", "elements"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("nft monitor");
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            let now = Instant::now();
            if !line.contains("skiff-proxy no-endpoint-services") {
                continue;
            }
            // `add element ip skiff-proxy no-endpoint-services { IP . tcp . 80 : ... }`
            let Some(ip) = line.split("{ ").nth(1).and_then(|r| r.split(' ').next()) else {
                continue;
            };
            let mut seen = seen.lock().expect("lock");
            seen.entry(ip.to_string())
                .or_default()
                .entry(node)
                .or_insert(now);
        }
    });
    child
}

/// When the last of `nodes` nodes saw `ip`, once all have.
fn programmed_everywhere(seen: &Seen, ip: &str, nodes: usize) -> Option<Instant> {
    let seen = seen.lock().expect("lock");
    let by_node = seen.get(ip)?;
    (by_node.len() == nodes)
        .then(|| by_node.values().copied().max())
        .flatten()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let probes: usize = std::env::var("SKIFF_BENCH_PROBES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let temp = tempfile::Builder::new()
        .prefix("skiff-bench-netprog-")
        .tempdir()
        .expect("tempdir");
    let cluster = SkiffUp::start(3, temp.path());
    let record = cluster.record();
    let api = record["api"].as_str().expect("api").to_string();
    let id = record["network"]["id"].as_u64().expect("network id");
    let nodes: Vec<String> = (1..=3).map(|i| format!("skiff{id}-node{i}")).collect();
    let seen = Seen::default();
    let mut monitors: Vec<Child> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| watch_node(i, n, seen.clone()))
        .collect();
    // nft monitor subscribes before its first event: give it a moment.
    std::thread::sleep(Duration::from_millis(500));
    let mut present = 0;
    for size in [100, 1000] {
        let t = Instant::now();
        while present < size {
            create(&api, &format!("bg-{present}"));
            present += 1;
        }
        // Let every node catch up before measuring.
        let last = create(&api, &format!("bg-{present}"));
        present += 1;
        let deadline = Instant::now() + Duration::from_secs(300);
        while programmed_everywhere(&seen, &last, nodes.len()).is_none() {
            assert!(Instant::now() < deadline, "nodes never caught up at {size}");
            std::thread::sleep(Duration::from_millis(100));
        }
        // Quiet before probing, so no probe rides on the fill's tail.
        std::thread::sleep(Duration::from_secs(2));
        let filled = t.elapsed();
        let mut samples = Vec::with_capacity(probes);
        for p in 0..probes {
            let name = format!("probe-{size}-{p}");
            let t = Instant::now();
            let ip = create(&api, &name);
            let done = loop {
                if let Some(done) = programmed_everywhere(&seen, &ip, nodes.len()) {
                    break done;
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "{name} never programmed"
                );
                std::thread::sleep(Duration::from_millis(1));
            };
            samples.push(done.duration_since(t));
            present += 1;
            // Probes apart, as single changes rather than one burst.
            std::thread::sleep(Duration::from_millis(200));
        }
        samples.sort();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        println!(
            "{size} Services (filled in {:.1} s): Service create → ClusterIP in every node's table p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({probes} probes, load {})",
            filled.as_secs_f64(),
            percentile(&samples, 0.5).as_secs_f64() * 1e3,
            percentile(&samples, 0.99).as_secs_f64() * 1e3,
            samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            load.split_whitespace().next().unwrap_or("?")
        );
    }
    for monitor in &mut monitors {
        let _ = monitor.kill();
        let _ = monitor.wait();
    }
}
