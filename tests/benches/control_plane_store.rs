//! The control plane's write latency at a steady 200 writes/s, listing
//! 10,000 pods, and its memory with them stored. HTTP requests go over
//! loopback, one connection per request (as simple clients do).
//!
//! Run with `scripts/bench.sh`.

use std::time::{Duration, Instant};

use skiff_tests::control_plane::{TestControlPlane, http_json, rss_mib, status_mib};

const PACED_WRITES: usize = 2000;
const PODS: usize = 10_000;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pod_body(name: &str) -> String {
    format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"{name}","labels":{{"app":"bench"}}}},"spec":{{"containers":[{{"name":"c","image":"skiff.dev/webapp:v1","ports":[{{"containerPort":8080}}]}}]}}}}"#
    )
}

#[tokio::main]
async fn main() {
    let cp = TestControlPlane::start().await;
    let addr = cp.address.clone();
    let pid = cp.pid().expect("pid");
    let idle = rss_mib(pid);

    // Steady 200 writes/s: a create every 5 ms, each timed.
    let mut latencies = Vec::with_capacity(PACED_WRITES);
    let start = Instant::now();
    for i in 0..PACED_WRITES {
        let due = start + Duration::from_millis(5 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let body = format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"cm-{i}"}},"data":{{"i":"{i}"}}}}"#
        );
        let t = Instant::now();
        let (status, _) = http_json(
            "POST",
            &addr,
            "/api/v1/namespaces/default/configmaps",
            &body,
        )
        .expect("write");
        latencies.push(t.elapsed());
        assert_eq!(status, 201);
    }
    let achieved = PACED_WRITES as f64 / start.elapsed().as_secs_f64();
    latencies.sort();

    // 10,000 pods, written by 8 clients as fast as they go.
    let t = Instant::now();
    let mut writers = Vec::new();
    for w in 0..8 {
        let addr = addr.clone();
        writers.push(std::thread::spawn(move || {
            for i in (w..PODS).step_by(8) {
                let (status, body) = http_json(
                    "POST",
                    &addr,
                    "/api/v1/namespaces/default/pods",
                    &pod_body(&format!("pod-{i}")),
                )
                .expect("write");
                assert_eq!(status, 201, "{body}");
            }
        }));
    }
    for w in writers {
        w.join().expect("writer");
    }
    let bulk = t.elapsed();
    // Until the controllers stop writing (the scheduler marks each
    // unschedulable pod and records an event): "stored" is measured on a
    // settled control plane rather than in the middle of that wave.
    skiff_tests::control_plane::settle(&addr, Duration::from_secs(120));
    let stored = rss_mib(pid);
    // Reset the high-water mark (root only): the peak below is the lists'.
    let _ = std::fs::write(format!("/proc/{pid}/clear_refs"), "5");

    let mut lists = Vec::new();
    let mut tables = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let (status, body) =
            http_json("GET", &addr, "/api/v1/namespaces/default/pods", "").expect("list");
        lists.push(t.elapsed());
        assert_eq!(status, 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["items"].as_array().map_or(0, Vec::len), PODS);
        let t = Instant::now();
        let out = cp
            .kubectl_command(&["get", "pods", "--no-headers"])
            .output();
        if let Ok(out) = out {
            assert!(out.status.success());
            tables.push(t.elapsed());
        }
    }
    lists.sort();
    tables.sort();
    let busy = rss_mib(pid);
    let peak = status_mib(pid, "VmHWM:");

    println!(
        "machine: {} cores; date {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        String::from_utf8_lossy(
            &std::process::Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M UTC"])
                .output()
                .expect("date")
                .stdout
        )
        .trim()
    );
    println!();
    println!("| measurement | value |");
    println!("|---|---|");
    println!(
        "| paced writes ({PACED_WRITES} ConfigMap creates at {achieved:.0}/s): p50 / p99 / max | {:.2} / {:.2} / {:.2} ms |",
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        ms(latencies[latencies.len() - 1])
    );
    println!(
        "| {PODS} pod creates, 8 clients | {:.1} s ({:.0} writes/s) |",
        bulk.as_secs_f64(),
        PODS as f64 / bulk.as_secs_f64()
    );
    println!(
        "| list {PODS} pods (JSON), median of 5 | {:.0} ms |",
        ms(percentile(&lists, 50.0))
    );
    if !tables.is_empty() {
        println!(
            "| `kubectl get pods` of {PODS} (Table), median of 5 | {:.0} ms |",
            ms(percentile(&tables, 50.0))
        );
    }
    println!(
        "| RSS idle / with {PODS} pods and {PACED_WRITES} configmaps stored (settled) / after the lists | {idle:.1} / {stored:.1} / {busy:.1} MiB |"
    );
    println!("| peak RSS while listing | {peak:.1} MiB |");
}
