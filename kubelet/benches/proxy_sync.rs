//! Service proxy sync latency against the real kernel, in a network
//! namespace of its own: cold start (full sync) of 1,000 Services × 2
//! endpoints, and the latency of one Service's change (an endpoint replaced)
//! at 100 and 1,000 Services, p50/p99 over 200 changes.
//!
//! Run as root: `cargo bench -p skiff-kubelet --bench proxy_sync`
//! (`PROXY_BENCH_SERVICES=100,1000,5000` to change the sizes).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use skiff_kubelet::proxy::{Endpoint, Protocol, ProxyConfig, ServicePort, ServicePortName, Syncer};

struct Netns(String);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

fn service(i: usize, variant: usize) -> ServicePort {
    let ip = |base: u32, n: u32| Ipv4Addr::from(base + n);
    let i32 = u32::try_from(i).unwrap_or(u32::MAX);
    let mut svc = ServicePort::cluster_ip(
        ServicePortName::new("bench", &format!("svc-{i}"), "http", Protocol::Tcp),
        ip(u32::from(Ipv4Addr::new(10, 96, 0, 0)), 10 + i32),
        80,
    );
    let pods = u32::from(Ipv4Addr::new(10, 244, 0, 0));
    svc.endpoints = vec![
        Endpoint::ready(ip(pods, 4 * i32 + 1), 8080, Some("node-1")),
        Endpoint::ready(
            ip(pods, 4 * i32 + 2 + u32::try_from(variant % 2).unwrap_or(0)),
            8080,
            Some("node-2"),
        ),
    ];
    svc
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

async fn run(size: usize, ns: &str) {
    let mut config = ProxyConfig::new("node-1");
    config.netns = Some(PathBuf::from(format!("/run/netns/{ns}")));
    let mut desired: BTreeMap<ServicePortName, ServicePort> = (0..size)
        .map(|i| service(i, 0))
        .map(|s| (s.name.clone(), s))
        .collect();
    let mut syncer = Syncer::new(config);
    let mut cold = Vec::new();
    for _ in 0..3 {
        syncer.invalidate();
        let report = syncer.sync(&desired).await.expect("full sync");
        cold.push(report.elapsed);
    }
    cold.sort();
    let mut changes = Vec::new();
    let mut plans = Vec::new();
    let mut commands = 0;
    let mut variants = vec![0usize; size];
    for round in 1..=200 {
        // A different Service each time: one endpoint swapped for another.
        let i = (round * 7919) % size;
        variants[i] += 1;
        let svc = service(i, variants[i]);
        desired.insert(svc.name.clone(), svc);
        let t = std::time::Instant::now();
        let _ = syncer.preview(&desired);
        plans.push(t.elapsed());
        let report = syncer.sync(&desired).await.expect("incremental sync");
        assert!(!report.full && report.services_changed == 1, "{report:?}");
        commands = report.commands;
        changes.push(report.elapsed);
    }
    changes.sort();
    plans.sort();
    println!(
        "        planning alone p50 {} p99 {}",
        ms(percentile(&plans, 0.5)),
        ms(percentile(&plans, 0.99))
    );
    println!(
        "{size:>6} services x 2 endpoints: cold start (full sync) median {} (of 3: {} .. {}); \
         one-service change p50 {} p99 {} max {} ({commands} commands each)",
        ms(cold[1]),
        ms(cold[0]),
        ms(cold[2]),
        ms(percentile(&changes, 0.5)),
        ms(percentile(&changes, 0.99)),
        ms(changes[changes.len() - 1]),
    );
}

fn main() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("proxy_sync: needs root (network namespaces, nft); skipped");
        return;
    }
    let sizes: Vec<usize> = std::env::var("PROXY_BENCH_SERVICES")
        .unwrap_or_else(|_| "100,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let ns = Netns(format!("pxbench{}", std::process::id()));
    let out = Command::new("ip")
        .args(["netns", "add", &ns.0])
        .output()
        .expect("ip");
    assert!(
        out.status.success(),
        "ip netns add: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for size in sizes {
        rt.block_on(run(size, &ns.0));
    }
}
