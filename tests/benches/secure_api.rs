//! What TLS, authentication and authorization cost a user: one pod's
//! apply → Running and the API's write latency, on `skiff up --nodes 1`
//! of this build against a previous build (before HTTPS), interleaved in
//! one run on the same machine.
//!
//! Both sides are driven through the kubeconfig their cluster wrote, with
//! the Rust `kube` client (keep-alive connections, as every common client
//! keeps them): plain HTTP and no credentials before, HTTPS with the
//! admin's client certificate, RBAC consulted, now.
//!
//! Run as root, release binaries of both builds built:
//! `SKIFF_BENCH_BASELINE=/path/to/old/target/release cargo bench -p skiff-tests --bench secure_api`
//! (`SKIFF_BENCH_ROUNDS`, default 3 per build; `SKIFF_BENCH_WRITES`, default
//! 1,000 paced ConfigMap creates per round; 20 one-pod samples per round).
//!
//! Latency percentiles on two shared cores move between rounds as much as
//! the difference measured, so the write phase also reports what it cost:
//! the control plane's CPU time and context switches (all its threads,
//! from `/proc`) and the client's CPU time, per write. Those counts hardly
//! depend on what else the machine does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ConfigMap, Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, Config};

const POD_SAMPLES: usize = 20;
/// Writes are paced at 200/s, as the store benchmark's.
const WRITE_INTERVAL: Duration = Duration::from_millis(5);

struct Cluster {
    child: Child,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// The control plane `skiff up` started for this cluster: the
    /// `skiff-control-plane` process whose arguments name its data dir.
    fn control_plane(&self) -> Option<u32> {
        let dir = self.dir.path().to_str()?;
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .find_map(|entry| {
                let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                let exe = std::str::from_utf8(args.first()?).ok()?;
                let ours = args
                    .iter()
                    .any(|a| std::str::from_utf8(a).is_ok_and(|a| a.starts_with(dir)));
                (exe.ends_with("skiff-control-plane") && ours).then_some(pid)
            })
    }
}

/// What a process has spent so far: CPU time and context switches, over
/// all its threads.
#[derive(Debug, Clone, Copy, Default)]
struct Spent {
    cpu: Duration,
    switches: u64,
}

impl Spent {
    fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name (which may hold spaces), from 3 on.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        let mut switches = 0;
        for task in std::fs::read_dir(format!("/proc/{pid}/task"))
            .ok()?
            .flatten()
        {
            let status = std::fs::read_to_string(task.path().join("status")).unwrap_or_default();
            switches += status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>();
        }
        Some(Self {
            cpu: Duration::from_millis(ticks * 1000 / hz),
            switches,
        })
    }

    /// This process's own CPU time (the client's side).
    fn own_cpu() -> Duration {
        // SAFETY: getrusage only writes the struct it is given.
        let usage = unsafe {
            let mut usage: libc::rusage = std::mem::zeroed();
            libc::getrusage(libc::RUSAGE_SELF, &mut usage);
            usage
        };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SIGINT: `skiff up` tears its cluster down and exits.
        // SAFETY: kill has no memory-safety preconditions.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start(bin: &Path) -> (Cluster, Client) {
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-secure-")
        .tempdir()
        .expect("tempdir");
    let port = skiff_tests::free_ports(3);
    let child = Command::new(bin.join("skiff"))
        .args(["up", "--nodes", "1", "--api-port", &port.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("skiff up");
    let cluster = Cluster { child, dir };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        assert!(Instant::now() < deadline, "{} never came up", bin.display());
        tokio::time::sleep(Duration::from_millis(250)).await;
        let Some(client) = client(&cluster.dir.path().join("kubeconfig")).await else {
            continue;
        };
        let nodes: Api<Node> = Api::all(client.clone());
        let ready = nodes.list(&ListParams::default()).await.is_ok_and(|l| {
            l.items.iter().any(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            })
        });
        if ready {
            return (cluster, client);
        }
    }
}

async fn client(kubeconfig: &Path) -> Option<Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(kubeconfig).ok()?;
    let config =
        Config::from_custom_kubeconfig(kubeconfig, &kube::config::KubeConfigOptions::default())
            .await
            .ok()?;
    Client::try_from(config).ok()
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": "IfNotPresent", "command": ["sleep", "3600"]}]
        }
    }))
    .expect("pod")
}

fn running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .is_some_and(|cs| {
            !cs.is_empty()
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

/// Create → every container running, as a client polling every 5 ms sees it.
async fn one_pod_latencies(client: &Client, round: usize) -> Vec<Duration> {
    let pods: Api<Pod> = Api::default_namespaced(client.clone());
    let mut samples = Vec::new();
    for i in 0..POD_SAMPLES {
        let name = format!("lat-{round}-{i}");
        let t = Instant::now();
        pods.create(&PostParams::default(), &pod(&name))
            .await
            .expect("create pod");
        loop {
            if pods.get(&name).await.is_ok_and(|p| running(&p)) {
                break;
            }
            assert!(t.elapsed() < Duration::from_secs(60), "{name} never ran");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(t.elapsed());
        let _ = pods.delete(&name, &DeleteParams::default()).await;
    }
    // The writes that follow measure the API, not the API beside a kubelet
    // tearing down twenty pods: wait until they are gone and settled.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pods
        .list(&ListParams::default())
        .await
        .map_or(true, |l| !l.items.is_empty())
    {
        assert!(Instant::now() < deadline, "round {round}'s pods never went");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    samples
}

/// Paced ConfigMap creates, each timed.
async fn write_latencies(client: &Client, round: usize, writes: usize) -> Vec<Duration> {
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let mut samples = Vec::with_capacity(writes);
    let mut next = Instant::now();
    for i in 0..writes {
        tokio::time::sleep_until(next.into()).await;
        next += WRITE_INTERVAL;
        let cm: ConfigMap = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("w-{round}-{i}")},
            "data": {"k": "v"}
        }))
        .expect("configmap");
        let t = Instant::now();
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create configmap");
        samples.push(t.elapsed());
    }
    samples
}

fn ms(sorted: &[Duration], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

#[derive(Default)]
struct Side {
    pods: Vec<Duration>,
    writes: Vec<Duration>,
    /// Control plane CPU, its context switches and the client's CPU over
    /// all write phases.
    server_cpu: Duration,
    server_switches: u64,
    client_cpu: Duration,
    /// Each round's write p50 and p99, for the paired comparison.
    round_writes: Vec<(f64, f64)>,
}

/// The median of `values`.
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

impl Side {
    fn line(&mut self, name: &str) -> String {
        self.pods.sort();
        self.writes.sort();
        let n = self.writes.len().max(1) as f64;
        format!(
            "| {name} | {:.1} / {:.1} | {:.2} / {:.2} | {:.0} µs / {:.1} / {:.0} µs |",
            ms(&self.pods, 50.0),
            ms(&self.pods, 99.0),
            ms(&self.writes, 50.0),
            ms(&self.writes, 99.0),
            self.server_cpu.as_secs_f64() * 1e6 / n,
            self.server_switches as f64 / n,
            self.client_cpu.as_secs_f64() * 1e6 / n,
        )
    }
}

#[tokio::main]
async fn main() {
    let baseline = PathBuf::from(
        std::env::var("SKIFF_BENCH_BASELINE")
            .expect("SKIFF_BENCH_BASELINE: the release dir of the build to compare with"),
    );
    let current = skiff_tests::workspace_binary("skiff")
        .parent()
        .expect("release dir")
        .to_path_buf();
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let rounds = env("SKIFF_BENCH_ROUNDS", 3);
    let writes = env("SKIFF_BENCH_WRITES", 1000);
    let (mut before, mut now) = (Side::default(), Side::default());
    for r in 0..rounds {
        let order = if r % 2 == 0 {
            [(&baseline, false), (&current, true)]
        } else {
            [(&current, true), (&baseline, false)]
        };
        for (bin, is_current) in order {
            let (cluster, client) = start(bin).await;
            let pods = one_pod_latencies(&client, r).await;
            let cp = cluster
                .control_plane()
                .expect("the cluster's control plane process");
            let (server_before, client_before) = (Spent::of(cp), Spent::own_cpu());
            let w = write_latencies(&client, r, writes).await;
            let (server_after, client_after) = (Spent::of(cp), Spent::own_cpu());
            drop(cluster);
            let side = if is_current { &mut now } else { &mut before };
            let (Some(server_before), Some(server_after)) = (server_before, server_after) else {
                panic!("control plane {cp} gone during the writes");
            };
            let server_cpu = server_after.cpu.saturating_sub(server_before.cpu);
            let server_switches = server_after.switches - server_before.switches;
            let client_cpu = client_after.saturating_sub(client_before);
            side.server_cpu += server_cpu;
            side.server_switches += server_switches;
            side.client_cpu += client_cpu;
            let mut p = pods.clone();
            p.sort();
            let mut ws = w.clone();
            ws.sort();
            let n = w.len().max(1) as f64;
            println!(
                "round {r} {}: one pod p50 {:.1} ms, writes p50 {:.2} / p99 {:.2} ms, \
                 per write: control plane {:.0} µs CPU and {:.1} context switches, client {:.0} µs CPU",
                if is_current { "current" } else { "baseline" },
                ms(&p, 50.0),
                ms(&ws, 50.0),
                ms(&ws, 99.0),
                server_cpu.as_secs_f64() * 1e6 / n,
                server_switches as f64 / n,
                client_cpu.as_secs_f64() * 1e6 / n,
            );
            side.round_writes.push((ms(&ws, 50.0), ms(&ws, 99.0)));
            side.pods.extend(pods);
            side.writes.extend(w);
        }
    }
    // This machine's speed drifts over minutes, and a slow minute in one
    // build's half of a round moves the pooled percentiles by more than
    // the difference measured; the two halves of a round ran back to back,
    // so the median of per-round ratios discounts what drifted.
    let ratio = |pick: fn(&(f64, f64)) -> f64| {
        let mut ratios: Vec<f64> = now
            .round_writes
            .iter()
            .zip(&before.round_writes)
            .map(|(c, b)| pick(c) / pick(b))
            .collect();
        (median(&mut ratios) - 1.0) * 100.0
    };
    println!(
        "paired rounds, median of current/baseline: writes p50 {:+.1} %, p99 {:+.1} %",
        ratio(|r| r.0),
        ratio(|r| r.1)
    );
    println!(
        "| build | one pod apply → Running p50 / p99 (ms) | writes at 200/s p50 / p99 (ms) | per write: control plane CPU / context switches / client CPU |"
    );
    println!("|---|---|---|---|");
    println!(
        "{}",
        before.line(&format!("baseline {}", baseline.display()))
    );
    println!("{}", now.line("current (HTTPS, authn, RBAC)"));
}
