//! New-connection latency and rate through a ClusterIP vs straight to the
//! pod IP, on a real `skiff up --nodes 2` (pod network, service proxy,
//! release binaries): a client in node1's network namespace (the node's
//! own traffic goes through the proxy's output hook, the same DNAT a pod's
//! traffic gets in prerouting) opens and closes TCP connections to one
//! webapp pod on node2, alternating between its pod IP and its Service's
//! ClusterIP, so load changes hit both sides alike.
//!
//! Run as root with the venv kubectl: `cargo bench -p skiff-tests --bench
//! service_latency` (`SKIFF_BENCH_CONNECTIONS`, default 2,000 per side).

use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use skiff_tests::cluster::SkiffUp;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Connects and closes once; the time to an established connection, or
/// `None` if it failed (counted, not hidden).
fn connect(addr: SocketAddr) -> Option<Duration> {
    let t = Instant::now();
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    let took = t.elapsed();
    drop(stream);
    Some(took)
}

fn main() {
    let per_side: usize = std::env::var("SKIFF_BENCH_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let temp = tempfile::Builder::new()
        .prefix("skiff-bench-svc-")
        .tempdir()
        .expect("tempdir");
    let cluster = SkiffUp::start(2, temp.path());
    let manifest = "apiVersion: v1\nkind: Pod\nmetadata: {name: web, labels: {app: web}}\nspec:\n  nodeName: node2\n  containers: [{name: web, image: skiff.dev/webapp:v1}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080}]\n";
    let file = temp.path().join("web.yaml");
    std::fs::write(&file, manifest).expect("manifest");
    cluster.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
    let pod_ip = cluster.eventually(
        &["get", "pod", "web", "-o", "jsonpath={.status.podIP}"],
        "web has an IP",
        |o| !o.trim().is_empty(),
    );
    let cluster_ip = cluster.kubectl_ok(&["get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}"]);
    cluster.eventually(
        &[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[0].endpoints[0].addresses[0]}",
        ],
        "the endpoint is published",
        |o| o.trim() == pod_ip.trim(),
    );
    let direct: SocketAddr = format!("{}:8080", pod_ip.trim()).parse().expect("pod addr");
    let via: SocketAddr = format!("{}:80", cluster_ip.trim())
        .parse()
        .expect("svc addr");
    let id = cluster.record()["network"]["id"]
        .as_u64()
        .expect("network id");
    let netns = format!("/run/netns/skiff{id}-node1");

    let (pod, svc, wall) = std::thread::spawn(move || {
        let ns = std::fs::File::open(&netns).expect("node1's namespace");
        // SAFETY: setns moves only this thread into node1's namespace.
        let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
        // The proxy may still be applying the Service: wait until it answers.
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&via, Duration::from_millis(500)).is_err() {
            assert!(Instant::now() < deadline, "the ClusterIP never answered");
            std::thread::sleep(Duration::from_millis(100));
        }
        for _ in 0..100 {
            connect(direct);
            connect(via);
        }
        let mut pod = Vec::with_capacity(per_side);
        let mut svc = Vec::with_capacity(per_side);
        let mut wall = [Duration::ZERO; 2];
        let mut failed = [0usize; 2];
        for _ in 0..per_side {
            for (side, addr, samples) in [(0, direct, &mut pod), (1, via, &mut svc)] {
                let t = Instant::now();
                match connect(addr) {
                    Some(took) => samples.push(took),
                    None => failed[side] += 1,
                }
                wall[side] += t.elapsed();
            }
        }
        pod.sort();
        svc.sort();
        println!(
            "failed connections: pod IP {}, ClusterIP {}",
            failed[0], failed[1]
        );
        (pod, svc, wall)
    })
    .join()
    .expect("client thread");

    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "machine: {} cores; load {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load.split_whitespace().next().unwrap_or("?")
    );
    for (name, samples, wall) in [("pod IP", &pod, wall[0]), ("ClusterIP", &svc, wall[1])] {
        println!(
            "{name:>9}: {} connections, connect p50 {:.0} µs, p99 {:.0} µs, max {:.0} ms, over 0.5 s {}, {:.0} connections/s (connect + close, one client)",
            samples.len(),
            percentile(samples, 0.5).as_secs_f64() * 1e6,
            percentile(samples, 0.99).as_secs_f64() * 1e6,
            samples.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
            samples.iter().filter(|d| d.as_millis() > 500).count(),
            samples.len() as f64 / wall.as_secs_f64()
        );
    }
    let slower = percentile(&svc, 0.5).as_secs_f64() / percentile(&pod, 0.5).as_secs_f64() - 1.0;
    println!("ClusterIP vs pod IP, p50: {:+.1} %", slower * 100.0);
}
