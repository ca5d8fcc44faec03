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
}

impl Side {
    fn line(&mut self, name: &str) -> String {
        self.pods.sort();
        self.writes.sort();
        format!(
            "| {name} | {:.1} / {:.1} | {:.2} / {:.2} |",
            ms(&self.pods, 50.0),
            ms(&self.pods, 99.0),
            ms(&self.writes, 50.0),
            ms(&self.writes, 99.0)
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
            let w = write_latencies(&client, r, writes).await;
            drop(cluster);
            let side = if is_current { &mut now } else { &mut before };
            let mut p = pods.clone();
            p.sort();
            let mut ws = w.clone();
            ws.sort();
            println!(
                "round {r} {}: one pod p50 {:.1} ms, writes p50 {:.2} / p99 {:.2} ms",
                if is_current { "current" } else { "baseline" },
                ms(&p, 50.0),
                ms(&ws, 50.0),
                ms(&ws, 99.0)
            );
            side.pods.extend(pods);
            side.writes.extend(w);
        }
    }
    println!("| build | one pod apply → Running p50 / p99 (ms) | writes at 200/s p50 / p99 (ms) |");
    println!("|---|---|---|");
    println!(
        "{}",
        before.line(&format!("baseline {}", baseline.display()))
    );
    println!("{}", now.line("current (HTTPS, authn, RBAC)"));
}
