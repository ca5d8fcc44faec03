//! Watch load: a control plane (`$SKIFF_CP_BIN`, else this workspace's
//! build) with 2,000 watches that read and 500 that never read while
//! ConfigMaps of 20 KiB change; reports its RSS, threads, open fds and GET
//! latency while loaded and 10 s and 30 s after the clients close.
//!
//! The idle level the clients' departure must return to is measured after
//! the same 40 s of updates without any watcher ("idle after writes"): the
//! writes alone fill SQLite's page caches and the allocator's pools, which
//! is memory a control plane keeps whether or not anyone watches.
//!
//! `SKIFF_CP_BIN=/path/to/old/skiff-control-plane cargo bench -p skiff-tests --bench watch_load`
//! (`SKIFF_WATCH_ROUNDS=3` repeats the burst, to tell kept from leaked memory;
//! `SKIFF_SMAPS_DIR=<dir>` saves `/proc/<pid>/smaps` at each report, to tell
//! the allocator's arena from SQLite's page caches)

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn status(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn report(what: &str, pid: u32, latencies: &mut [Duration]) {
    latencies.sort();
    if let Ok(dir) = std::env::var("SKIFF_SMAPS_DIR") {
        let file = format!("{dir}/{}.smaps", what.replace([' ', '(', ')', '+'], "_"));
        let _ = std::fs::copy(format!("/proc/{pid}/smaps"), file);
    }
    let pct = |p: usize| {
        latencies
            .get(latencies.len() * p / 100)
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{what:<22} RSS {:>5} MiB (anon {:>5}, file {:>3})  threads {:>4}  fds {:>5}  GET p50 {:>7.1?} p99 {:>7.1?}",
        status(pid, "VmRSS:") / 1024,
        status(pid, "RssAnon:") / 1024,
        status(pid, "RssFile:") / 1024,
        status(pid, "Threads:"),
        fds(pid),
        pct(50),
        pct(99)
    );
}

enum Watch {
    Reading(tokio::task::JoinHandle<()>),
    Stalled(Box<dyn skiff_tests::api_tls::AsyncStream>),
}

async fn watch(addr: &str, read: bool) -> Option<Watch> {
    let mut s = skiff_tests::api_tls::connect_async(addr).await.ok()?;
    let q = "/api/v1/namespaces/default/configmaps?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true";
    s.write_all(format!("GET {q} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .ok()?;
    Some(if read {
        Watch::Reading(tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
        }))
    } else {
        Watch::Stalled(s)
    })
}

/// A ConfigMap of 20 KiB filled with `fill`.
fn config_map(name: &str, fill: char) -> String {
    let blob: String = std::iter::repeat_n(fill, 20 * 1024).collect();
    serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"blob": blob}}).to_string()
}

/// One client updating ConfigMaps one after another for 40 s, timing a GET
/// after each update: the number of updates and the GET latencies.
async fn write_load(addr: &str, path: &str) -> (u32, Vec<Duration>) {
    let addr = addr.to_string();
    // Writes and GETs for 40 s.
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut n = 0u32;
    while started.elapsed() < Duration::from_secs(40) {
        let name = format!("cm-{}", n % 100);
        let body = config_map(&name, (b'b' + (n % 20) as u8) as char);
        let a = addr.clone();
        let p = format!("{path}/{name}");
        tokio::task::spawn_blocking(move || skiff_tests::request("PUT", &a, &p, &body))
            .await
            .ok();
        let a = addr.clone();
        let p = format!("{path}/cm-0");
        if let Ok(d) = tokio::task::spawn_blocking(move || get(&a, &p)).await {
            latencies.push(d);
        }
        n += 1;
    }
    (n, latencies)
}

fn get(addr: &str, path: &str) -> Duration {
    let t = Instant::now();
    let _ = skiff_tests::request("GET", addr, path, "");
    t.elapsed()
}

#[tokio::main]
async fn main() {
    skiff_tests::hollow::raise_fd_limit();
    let binary = std::env::var("SKIFF_CP_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| skiff_tests::workspace_binary("skiff-control-plane"));
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = format!("127.0.0.1:{}", skiff_tests::free_port());
    let grpc = format!("127.0.0.1:{}", skiff_tests::free_port());
    let mut child = Command::new(&binary)
        .arg("--data-dir")
        .arg(dir.path())
        .args(["--listen", &addr, "--grpc-listen", &grpc])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the control plane");
    let pid = child.id();
    for _ in 0..200 {
        if skiff_tests::request("GET", &addr, "/healthz", "").is_ok_and(|(s, _)| s == 200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("binary {}", binary.display());
    let path = "/api/v1/namespaces/default/configmaps";
    for i in 0..100 {
        let _ = skiff_tests::request("POST", &addr, path, &config_map(&format!("cm-{i}"), 'a'));
    }
    let mut idle = vec![get(&addr, &format!("{path}/cm-0"))];
    for _ in 0..20 {
        idle.push(get(&addr, &format!("{path}/cm-0")));
    }
    report("idle", pid, &mut idle);
    let (n, _) = write_load(&addr, path).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut warm = Vec::new();
    for _ in 0..20 {
        warm.push(get(&addr, &format!("{path}/cm-0")));
    }
    println!("{n} updates in 40 s without watches");
    report("idle after writes", pid, &mut warm);
    // More than one round (SKIFF_WATCH_ROUNDS) tells memory kept for reuse
    // from memory that grows with every burst.
    let rounds: u32 = std::env::var("SKIFF_WATCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    for round in 1..=rounds {
        let mut watches = Vec::new();
        for i in 0..2500 {
            if let Some(w) = watch(&addr, i % 5 != 0).await {
                watches.push(w);
            }
        }
        let (n, mut latencies) = write_load(&addr, path).await;
        println!("{n} updates in 40 s; {} watches opened", watches.len());
        report(&format!("loaded ({round})"), pid, &mut latencies);
        for w in watches {
            match w {
                Watch::Reading(task) => task.abort(),
                Watch::Stalled(socket) => drop(socket),
            }
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut after = Vec::new();
        for _ in 0..20 {
            after.push(get(&addr, &format!("{path}/cm-0")));
        }
        report(&format!("closed + 10 s ({round})"), pid, &mut after);
        tokio::time::sleep(Duration::from_secs(20)).await;
        report(&format!("closed + 30 s ({round})"), pid, &mut after);
    }
    let _ = child.kill();
    let _ = child.wait();
}
