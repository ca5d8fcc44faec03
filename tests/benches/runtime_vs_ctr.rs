//! Container create+start latency: Skiff's containerd runtime versus
//! `ctr run -d` of the same image, on the same private containerd.
//!
//! Run with `scripts/bench.sh` (root, containerd installed; it builds the
//! release binaries this bench needs). `SKIFF_BENCH_RUNS` sets the number of
//! samples per side (default 40, at least 30). Samples alternate between the
//! two sides so drifting machine load affects both alike. Teardown is not
//! timed.

use std::process::Command;
use std::time::{Duration, Instant};

use skiff_images::ImageName;
use skiff_kubelet::runtime::containerd::{
    ContainerdConfig, ContainerdRuntime, ManagedContainerd, logger_next_to_current_exe,
};
use skiff_kubelet::runtime::{ContainerConfig, ContainerRuntime};

const NAMESPACE: &str = "skiff-bench";
const IMAGE: &str = "docker.io/library/busybox:latest";

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "?".into())
}

struct Summary {
    median: Duration,
    p90: Duration,
    min: Duration,
    max: Duration,
}

fn summarise(mut samples: Vec<Duration>) -> Summary {
    samples.sort();
    Summary {
        median: percentile(&samples, 50.0),
        p90: percentile(&samples, 90.0),
        min: samples[0],
        max: samples[samples.len() - 1],
    }
}

async fn skiff_sample(
    rt: &ContainerdRuntime,
    image: &ImageName,
    dir: &std::path::Path,
    i: usize,
) -> Duration {
    let id = format!("skiff-{i}");
    let mut config = ContainerConfig::new(&id, image.clone(), dir.join(format!("logs/{id}.log")));
    config.name = "bench".into();
    config.pod.uid = format!("bench-{i}");
    config.command = vec!["sleep".into(), "30".into()];
    let started = Instant::now();
    rt.create_container(&config).await.expect("create");
    rt.start_container(&id).await.expect("start");
    let elapsed = started.elapsed();
    rt.remove_container(&id).await.expect("remove");
    elapsed
}

async fn ctr_sample(rt: &ContainerdRuntime, socket: &str, i: usize) -> Duration {
    let id = format!("ctr-{i}");
    let started = Instant::now();
    let out = Command::new("ctr")
        .args([
            "--address",
            socket,
            "--namespace",
            NAMESPACE,
            "run",
            "-d",
            IMAGE,
            &id,
            "sleep",
            "30",
        ])
        .output()
        .expect("run ctr");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "ctr run -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rt.remove_container(&id)
        .await
        .expect("remove ctr's container");
    elapsed
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else is accepted.
    let runs: usize = std::env::var("SKIFF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40)
        .max(30);
    if let Some(reason) = skiff_tests::missing_prerequisite() {
        eprintln!("runtime_vs_ctr: cannot run: {reason}");
        std::process::exit(1);
    }
    let dir = tempfile::Builder::new()
        .prefix("skiff-bench-")
        .tempdir()
        .expect("temp dir");
    let daemon = ManagedContainerd::start(&dir.path().join("containerd"))
        .await
        .expect("start containerd");
    let socket = daemon.socket().display().to_string();
    let logger = logger_next_to_current_exe().expect("skiff-cri-logger built in this profile");
    let mut config = ContainerdConfig::new(
        daemon.socket(),
        NAMESPACE,
        logger,
        &dir.path().join("kubelet"),
    );
    config.runc_root = Some(daemon.runc_root());
    let rt = ContainerdRuntime::connect(config).await.expect("connect");
    let image = ImageName::parse(IMAGE).expect("valid");
    rt.import_image(&skiff_tests::image_tarball(IMAGE))
        .await
        .expect("import busybox");

    eprintln!("warming up...");
    for i in 0..3 {
        skiff_sample(&rt, &image, dir.path(), 10_000 + i).await;
        ctr_sample(&rt, &socket, 10_000 + i).await;
    }
    let (mut skiff, mut ctr) = (Vec::with_capacity(runs), Vec::with_capacity(runs));
    for i in 0..runs {
        // Alternate which side goes first.
        if i % 2 == 0 {
            skiff.push(skiff_sample(&rt, &image, dir.path(), i).await);
            ctr.push(ctr_sample(&rt, &socket, i).await);
        } else {
            ctr.push(ctr_sample(&rt, &socket, i).await);
            skiff.push(skiff_sample(&rt, &image, dir.path(), i).await);
        }
        eprint!("\r{}/{runs} samples per side", i + 1);
    }
    eprintln!();
    daemon.stop().await;

    let (s, c) = (summarise(skiff), summarise(ctr));
    println!(
        "machine: {} cores, kernel {}, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        command_output("uname", &["-r"]),
        command_output("containerd", &["--version"])
    );
    println!(
        "date: {}",
        command_output("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    println!("runs per side: {runs} (busybox `sleep 30`, create+start, teardown untimed)");
    println!();
    println!("| path | median ms | p90 ms | min ms | max ms |");
    println!("|---|---|---|---|---|");
    println!(
        "| Skiff runtime (create_container + start_container) | {:.1} | {:.1} | {:.1} | {:.1} |",
        ms(s.median),
        ms(s.p90),
        ms(s.min),
        ms(s.max)
    );
    println!(
        "| `ctr run -d` | {:.1} | {:.1} | {:.1} | {:.1} |",
        ms(c.median),
        ms(c.p90),
        ms(c.min),
        ms(c.max)
    );
    let ratio_median = s.median.as_secs_f64() / c.median.as_secs_f64();
    let ratio_p90 = s.p90.as_secs_f64() / c.p90.as_secs_f64();
    println!();
    println!("ratio Skiff/ctr: median {ratio_median:.2}x, p90 {ratio_p90:.2}x (target <= 1.10x)");
}
