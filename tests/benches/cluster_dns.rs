//! Cluster DNS under `dnsperf`: queries per second and latency for
//! cluster names at 1,000 ClusterIP Services, 100 headless ones and
//! 10,000 pod endpoints, and the control plane's memory with DNS on and
//! off at those counts (issue 15's benchmarks).
//!
//! The release control plane runs as a process with its own data folder,
//! free ports and `--cluster-dns-listen 127.0.0.1:<port>` (no upstreams:
//! every query stays on loopback, names outside the cluster are refused).
//! Services and EndpointSlices are written straight through the API (no
//! selector, so the EndpointSlice controller leaves the slices alone; no
//! kubelets). `dnsperf` (Debian package) then sends a mix of cluster names
//! to it; `-v` reports every response's latency, from which the
//! percentiles are taken (dnsperf 2.10 prints only average and standard
//! deviation).
//!
//! Run: `cargo build --release -p skiff-control-plane --bins && cargo
//! bench -p skiff-tests --bench cluster_dns`. `SKIFF_BENCH_DNS_SECONDS`
//! (default 20) is each dnsperf run's length.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json, status_mib};
use skiff_tests::{REQUIRE_ENV, free_port, which};

const NAMESPACES: usize = 10;
const SERVICES: usize = 1000;
const HEADLESS: usize = 100;
/// ClusterIP Services with endpoints: 90 × 100 endpoints.
const BIG_SLICES: usize = 90;
const PER_BIG_SLICE: usize = 100;
/// Each headless Service: one slice of 10 named endpoints (StatefulSets).
const PER_HEADLESS: usize = 10;
const PODS: usize = BIG_SLICES * PER_BIG_SLICE + HEADLESS * PER_HEADLESS;
const WRITERS: usize = 4;

fn ns(i: usize) -> String {
    format!("bench-{}", i % NAMESPACES)
}

/// The address of pod endpoint `n` (all distinct, inside 10.244.0.0/16).
fn pod_ip(n: usize) -> String {
    format!("10.244.{}.{}", n / 250, 1 + n % 250)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn post(addr: &str, path: &str, body: &Value) -> Value {
    let (status, text) = http_json("POST", addr, path, &body.to_string()).expect("write");
    assert_eq!(status, 201, "POST {path}: {text}");
    serde_json::from_str(&text).expect("json")
}

/// What the population left to query: cluster IPs by Service index.
struct Population {
    cluster_ips: Vec<String>,
    took: Duration,
}

/// Namespaces, Services and slices, written by [`WRITERS`] clients.
fn populate(addr: &str) -> Population {
    let t = Instant::now();
    for n in 0..NAMESPACES {
        post(
            addr,
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns(n)}}),
        );
    }
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let addr = addr.to_string();
        writers.push(std::thread::spawn(move || {
            let mut ips = Vec::new();
            for i in (w..SERVICES).step_by(WRITERS) {
                let svc = post(
                    &addr,
                    &format!("/api/v1/namespaces/{}/services", ns(i)),
                    &json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": format!("svc-{i}"), "namespace": ns(i)},
                        "spec": {"ports": [
                            {"name": "http", "port": 80, "protocol": "TCP"},
                            {"name": "metrics", "port": 9090, "protocol": "TCP"}]}}),
                );
                let ip = svc["spec"]["clusterIP"].as_str().expect("clusterIP");
                ips.push((i, ip.to_string()));
            }
            for j in (w..HEADLESS).step_by(WRITERS) {
                post(
                    &addr,
                    &format!("/api/v1/namespaces/{}/services", ns(j)),
                    &json!({"apiVersion": "v1", "kind": "Service",
                        "metadata": {"name": format!("db-{j}"), "namespace": ns(j)},
                        "spec": {"clusterIP": "None", "ports": [
                            {"name": "peer", "port": 5432, "protocol": "TCP"}]}}),
                );
            }
            // Slices: the first BIG_SLICES ClusterIP Services get 100
            // endpoints each, every headless Service 10 named ones.
            for i in (w..BIG_SLICES).step_by(WRITERS) {
                let endpoints: Vec<Value> = (0..PER_BIG_SLICE)
                    .map(|e| {
                        json!({"addresses": [pod_ip(i * PER_BIG_SLICE + e)],
                               "conditions": {"ready": true}})
                    })
                    .collect();
                post(&addr, &format!("/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices", ns(i)), &json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": format!("svc-{i}-bench"), "namespace": ns(i),
                        "labels": {"kubernetes.io/service-name": format!("svc-{i}"),
                                   "endpointslice.kubernetes.io/managed-by": "bench.skiff.dev"}},
                    "addressType": "IPv4", "endpoints": endpoints,
                    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}));
            }
            for j in (w..HEADLESS).step_by(WRITERS) {
                let endpoints: Vec<Value> = (0..PER_HEADLESS)
                    .map(|k| {
                        json!({"addresses": [pod_ip(BIG_SLICES * PER_BIG_SLICE + j * PER_HEADLESS + k)],
                               "hostname": format!("db-{j}-{k}"),
                               "conditions": {"ready": true}})
                    })
                    .collect();
                post(&addr, &format!("/apis/discovery.k8s.io/v1/namespaces/{}/endpointslices", ns(j)), &json!({
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"name": format!("db-{j}-bench"), "namespace": ns(j),
                        "labels": {"kubernetes.io/service-name": format!("db-{j}"),
                                   "endpointslice.kubernetes.io/managed-by": "bench.skiff.dev"}},
                    "addressType": "IPv4", "endpoints": endpoints,
                    "ports": [{"name": "peer", "port": 5432, "protocol": "TCP"}]}));
            }
            ips
        }));
    }
    let mut cluster_ips = vec![String::new(); SERVICES];
    for w in writers {
        for (i, ip) in w.join().expect("writer") {
            cluster_ips[i] = ip;
        }
    }
    Population {
        cluster_ips,
        took: t.elapsed(),
    }
}

/// One query over UDP; the response's rcode and answer count.
fn query(server: &str, name: &str, qtype: u16) -> Option<(u8, u16)> {
    let mut packet = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.trim_end_matches('.').split('.') {
        packet.push(u8::try_from(label.len()).ok()?);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    socket.send_to(&packet, server).ok()?;
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).ok()?;
    (n >= 12 && buf[..2] == packet[..2])
        .then(|| (buf[3] & 0x0f, u16::from_be_bytes([buf[6], buf[7]])))
}

/// Waits until `name` answers NOERROR with `answers` records.
fn until_resolves(server: &str, name: &str, qtype: u16, answers: u16) -> Duration {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if query(server, name, qtype) == Some((0, answers)) {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "{name} did not resolve to {answers} records: {:?}",
        query(server, name, qtype)
    );
}

/// `10.96.0.5` → `5.0.96.10.in-addr.arpa`.
fn arpa(ip: &str) -> String {
    let mut octets: Vec<&str> = ip.split('.').collect();
    octets.reverse();
    format!("{}.in-addr.arpa", octets.join("."))
}

/// The query file: a mix of what pods ask, shuffled with a fixed seed.
/// Per 100 queries: 60 A of a Service, 10 AAAA of one (NODATA: glibc
/// asks both), 5 A of a headless Service (10 endpoints), 5 A of a
/// StatefulSet pod's name, 5 SRV of a named port, 5 PTR (cluster IPs and
/// pod IPs), 10 NXDOMAIN of the kind `ndots:5` search expansion produces
/// (`svc.other-ns.<own-ns>.svc.cluster.local`, `example.com.svc…`).
fn query_file(cluster_ips: &[String]) -> (String, usize) {
    let mut seed: u64 = 0x5eed;
    let mut next = move |n: usize| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((seed >> 33) as usize) % n
    };
    let mut lines = Vec::new();
    for _ in 0..200 {
        for k in 0..100 {
            let i = next(SERVICES);
            let j = next(HEADLESS);
            let line = match k {
                0..60 => format!("svc-{i}.{}.svc.cluster.local A", ns(i)),
                60..70 => format!("svc-{i}.{}.svc.cluster.local AAAA", ns(i)),
                70..75 => format!("db-{j}.{}.svc.cluster.local A", ns(j)),
                75..80 => format!(
                    "db-{j}-{}.db-{j}.{}.svc.cluster.local A",
                    next(PER_HEADLESS),
                    ns(j)
                ),
                80..83 => format!("_http._tcp.svc-{i}.{}.svc.cluster.local SRV", ns(i)),
                83..85 => format!("_peer._tcp.db-{j}.{}.svc.cluster.local SRV", ns(j)),
                85..88 => format!("{} PTR", arpa(&cluster_ips[i])),
                88..90 => format!("{} PTR", arpa(&pod_ip(next(PODS)))),
                90..95 => format!(
                    "svc-{i}.{}.{}.svc.cluster.local A",
                    ns(i),
                    ns(i + 1 + next(NAMESPACES - 1))
                ),
                95..98 => format!("example.com.{}.svc.cluster.local A", ns(i)),
                _ => "example.com.svc.cluster.local A".to_string(),
            };
            lines.push(line);
        }
    }
    for k in (1..lines.len()).rev() {
        lines.swap(k, next(k + 1));
    }
    let n = lines.len();
    (lines.join("\n") + "\n", n)
}

/// What one dnsperf run reported.
struct Run {
    label: String,
    qps: f64,
    sent: u64,
    lost: u64,
    avg_ms: f64,
    stddev_ms: f64,
    /// p50, p99, p99.9, max in ms (verbose runs only).
    percentiles: Option<[f64; 4]>,
    rcodes: String,
    load: String,
}

fn field<'a>(out: &'a str, prefix: &str) -> Option<&'a str> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .map(str::trim)
}

fn first_number(text: Option<&str>) -> f64 {
    text.and_then(|t| t.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs dnsperf against `port` with `clients` sockets, `threads` threads
/// and at most `outstanding` queries in flight (and at most `max_qps` a
/// second, if given); `verbose` records every latency (costs the client
/// some CPU).
fn dnsperf(
    label: &str,
    port: u16,
    file: &std::path::Path,
    seconds: u64,
    (clients, threads, outstanding, max_qps): (usize, usize, usize, Option<u32>),
    verbose: bool,
) -> Run {
    let load_before = load_average();
    let mut cmd = Command::new("dnsperf");
    cmd.args(["-s", "127.0.0.1", "-p", &port.to_string()])
        .arg("-d")
        .arg(file)
        .args(["-l", &seconds.to_string()])
        .args(["-c", &clients.to_string(), "-T", &threads.to_string()])
        .args(["-q", &outstanding.to_string(), "-t", "2"]);
    if let Some(qps) = max_qps {
        cmd.args(["-Q", &qps.to_string()]);
    }
    if verbose {
        cmd.arg("-v");
    }
    eprintln!("running dnsperf {:?}", cmd.get_args().collect::<Vec<_>>());
    let out = cmd.output().expect("run dnsperf");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dnsperf failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let percentiles = verbose.then(|| {
        // `> NOERROR name type 0.000123` (seconds), `> T name type` on a
        // timeout (left out here, counted as lost below).
        let mut latencies: Vec<f64> = text
            .lines()
            .filter(|l| l.starts_with("> "))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .map(|s| s * 1000.0)
            .collect();
        assert!(!latencies.is_empty(), "no latencies in dnsperf -v output");
        latencies.sort_by(f64::total_cmp);
        [
            pct(&latencies, 50.0),
            pct(&latencies, 99.0),
            pct(&latencies, 99.9),
            latencies[latencies.len() - 1],
        ]
    });
    let summary: String = text
        .lines()
        .filter(|l| !l.starts_with("> ") && !l.starts_with("[Status]") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    eprintln!("{summary}");
    Run {
        label: label.to_string(),
        qps: first_number(field(&text, "Queries per second:")),
        sent: first_number(field(&text, "Queries sent:")) as u64,
        lost: first_number(field(&text, "Queries lost:")) as u64,
        avg_ms: first_number(field(&text, "Average Latency (s):")) * 1000.0,
        stddev_ms: first_number(field(&text, "Latency StdDev (s):")) * 1000.0,
        percentiles,
        rcodes: field(&text, "Response codes:").unwrap_or("").to_string(),
        load: format!("{load_before} → {}", load_average()),
    }
}

/// RSS of one control plane with the population stored: idle, and with
/// it all written and settled.
struct Memory {
    idle: f64,
    stored: f64,
}

/// Waits until the store's revision stops moving, then a little more for
/// idle workers to hand back their free memory.
fn settle(addr: &str) {
    skiff_tests::control_plane::settle(addr, Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(3));
}

fn main() {
    if which("dnsperf").is_none() {
        let msg = "dnsperf not found (apt-get install dnsperf, or scripts/setup.sh)";
        if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED cluster_dns: {msg}");
        return;
    }
    let seconds: u64 = std::env::var("SKIFF_BENCH_DNS_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "machine: {} cores; date {}; load average at start {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        String::from_utf8_lossy(
            &Command::new("date")
                .args(["-u", "+%Y-%m-%d %H:%M UTC"])
                .output()
                .expect("date")
                .stdout
        )
        .trim(),
        load_average()
    );

    // DNS on: populate, wait for the last names, measure, then load it.
    let dns_port = free_port();
    let server = format!("127.0.0.1:{dns_port}");
    let listen = server.clone();
    let cp = runtime.block_on(TestControlPlane::start_with(&[
        "--cluster-dns-listen",
        &listen,
        "--cluster-dns-metrics-port",
        "0",
    ]));
    let pid = cp.pid().expect("pid");
    // kube-dns is written at start: wait for it, then a settled baseline.
    until_resolves(&server, "kube-dns.kube-system.svc.cluster.local", 1, 1);
    settle(&cp.address);
    let on_idle = status_mib(pid, "VmRSS:");
    let population = populate(&cp.address);
    let last_svc = SERVICES - 1;
    let lag_svc = until_resolves(
        &server,
        &format!("svc-{last_svc}.{}.svc.cluster.local", ns(last_svc)),
        1,
        1,
    );
    let last = HEADLESS - 1;
    let lag = until_resolves(
        &server,
        &format!("db-{last}-9.db-{last}.{}.svc.cluster.local", ns(last)),
        1,
        1,
    );
    until_resolves(
        &server,
        &format!("db-{last}.{}.svc.cluster.local", ns(last)),
        1,
        PER_HEADLESS as u16,
    );
    settle(&cp.address);
    let on = Memory {
        idle: on_idle,
        stored: status_mib(pid, "VmRSS:"),
    };

    let (queries, count) = query_file(&population.cluster_ips);
    let file = cp.scratch().join("queries.txt");
    std::fs::write(&file, queries).expect("query file");
    let mut runs = vec![
        dnsperf(
            "8 clients, 2 threads, 100 in flight (-v: every latency)",
            dns_port,
            &file,
            seconds,
            (8, 2, 100, None),
            true,
        ),
        dnsperf(
            "8 clients, 2 threads, 100 in flight",
            dns_port,
            &file,
            seconds,
            (8, 2, 100, None),
            false,
        ),
        dnsperf(
            "32 clients, 2 threads, 500 in flight",
            dns_port,
            &file,
            seconds,
            (32, 2, 500, None),
            false,
        ),
    ];
    runs.push(dnsperf(
        "1 client, 1 thread, 10 in flight (-v)",
        dns_port,
        &file,
        seconds.min(10),
        (1, 1, 10, None),
        true,
    ));
    // Latency at CoreDNS's anchor rate (33,669 QPS), not at saturation.
    runs.push(dnsperf(
        "8 clients, 2 threads, paced at 33,669 QPS (-v)",
        dns_port,
        &file,
        seconds,
        (8, 2, 100, Some(33_669)),
        true,
    ));
    let after_load = status_mib(pid, "VmRSS:");
    let peak = status_mib(pid, "VmHWM:");
    let log_lines = cp.log().lines().count();
    drop(cp);

    // DNS off: the same objects, for the RSS difference.
    let cp = runtime.block_on(TestControlPlane::start_with(&[]));
    let pid = cp.pid().expect("pid");
    settle(&cp.address);
    let off_idle = status_mib(pid, "VmRSS:");
    populate(&cp.address);
    settle(&cp.address);
    let off = Memory {
        idle: off_idle,
        stored: status_mib(pid, "VmRSS:"),
    };
    drop(cp);

    println!(
        "objects: {SERVICES} ClusterIP + {HEADLESS} headless Services in {NAMESPACES} namespaces, \
         {} EndpointSlices with {PODS} endpoints, written in {:.1} s by {WRITERS} clients; \
         last Service resolvable {:.0} ms and last slice {:.0} ms after the writes ended; \
         query file {count} names; control plane log {log_lines} lines",
        BIG_SLICES + HEADLESS,
        population.took.as_secs_f64(),
        lag_svc.as_secs_f64() * 1000.0,
        lag.as_secs_f64() * 1000.0,
    );
    println!();
    println!(
        "| dnsperf run ({seconds} s) | QPS | avg ± stddev | p50 / p99 / p99.9 / max | lost | load avg before → after |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &runs {
        let p = r
            .percentiles
            .map_or("–".to_string(), |[p50, p99, p999, max]| {
                format!("{p50:.2} / {p99:.2} / {p999:.2} / {max:.1} ms")
            });
        println!(
            "| {} | {:.0} | {:.2} ± {:.2} ms | {p} | {} of {} | {} |",
            r.label, r.qps, r.avg_ms, r.stddev_ms, r.lost, r.sent, r.load
        );
    }
    println!();
    for r in &runs {
        println!("response codes ({}): {}", r.label, r.rcodes);
    }
    println!();
    println!("| control plane RSS | DNS on | DNS off | difference |");
    println!("|---|---|---|---|");
    println!(
        "| idle (settled, no objects) | {:.1} MiB | {:.1} MiB | {:+.1} MiB |",
        on.idle,
        off.idle,
        on.idle - off.idle
    );
    println!(
        "| {} Services + {PODS} endpoints stored (settled) | {:.1} MiB | {:.1} MiB | {:+.1} MiB |",
        SERVICES + HEADLESS,
        on.stored,
        off.stored,
        on.stored - off.stored
    );
    println!("| after the dnsperf runs / peak (DNS on) | {after_load:.1} / {peak:.1} MiB | | |");
    println!("load average at end: {}", load_average());
}
