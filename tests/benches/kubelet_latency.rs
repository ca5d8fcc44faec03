//! Pod assignment → container running latency through `skiff-kubelet`
//! (gRPC `AssignPod` until `WatchPods` reports the container running),
//! for one pod at a time and for 50 pods at once, against the bare
//! runtime floor (create+start of one container); and the kubelet's memory
//! (RSS) idle and with 50 pods.
//!
//! Run with `scripts/bench.sh` (root and containerd required).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use skiff_images::ImageName;
use skiff_kubelet::runtime::{ContainerConfig, ContainerRuntime};
use skiff_proto::node::v1 as pb;
use skiff_tests::TestEnv;
use skiff_tests::kubelet::{TestKubelet, pod_yaml};
use tokio_stream::StreamExt;

const SINGLE_RUNS: usize = 30;
const BATCH: usize = 50;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(label: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "| {label} | {} | {:.1} | {:.1} | {:.1} |",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(samples[samples.len() - 1])
    );
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

fn sleeper(name: &str) -> Pod {
    pod_yaml(&format!(
        "metadata: {{name: {name}}}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: c\n    image: busybox\n    imagePullPolicy: IfNotPresent\n    command: [sleep, '3600']\n"
    ))
}

fn assignment(pod: &Pod) -> pb::PodAssignment {
    pb::PodAssignment {
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        resource_version: "1".into(),
        pod_json: serde_json::to_vec(pod).expect("json"),
    }
}

fn running(report: &pb::NodeReport) -> Option<String> {
    let Some(pb::node_report::Report::PodStatus(s)) = &report.report else {
        return None;
    };
    let status: PodStatus = serde_json::from_slice(&s.status_json).ok()?;
    let all_running = status.container_statuses.as_ref().is_some_and(|cs| {
        !cs.is_empty()
            && cs
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()))
    });
    all_running.then(|| s.pod_uid.clone())
}

fn gone(report: &pb::NodeReport) -> Option<String> {
    match &report.report {
        Some(pb::node_report::Report::PodGone(g)) => Some(g.pod_uid.clone()),
        _ => None,
    }
}

#[tokio::main]
async fn main() {
    if let Some(reason) = skiff_tests::missing_prerequisite() {
        eprintln!("kubelet_latency: cannot run: {reason}");
        std::process::exit(1);
    }
    let env = TestEnv::start("kubelet_latency")
        .await
        .expect("environment");
    let busybox = env.import("busybox").await;
    let kubelet = TestKubelet::start(&env, &format!("bench{}", std::process::id())).await;
    let pid = kubelet.pid().expect("kubelet pid");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_rss = rss_kib(pid);

    // Floor: the bare runtime, create+start of one container.
    let mut floor = Vec::new();
    for i in 0..SINGLE_RUNS {
        let id = format!("floor-{i}");
        let mut c = ContainerConfig::new(
            &id,
            ImageName::clone(&busybox),
            env.dir().join(format!("floor/{id}.log")),
        );
        c.command = vec!["sleep".into(), "3600".into()];
        let t = Instant::now();
        env.runtime.create_container(&c).await.expect("create");
        env.runtime.start_container(&id).await.expect("start");
        floor.push(t.elapsed());
        env.runtime.remove_container(&id).await.expect("remove");
    }

    let mut client = kubelet.client().await;
    let mut watch = client
        .watch_pods(pb::WatchPodsRequest {})
        .await
        .expect("watch")
        .into_inner();
    let mut wait_for = async |want: &dyn Fn(&pb::NodeReport) -> Option<String>, uids: &[String]| {
        let mut seen: HashMap<String, Instant> = HashMap::new();
        while seen.len() < uids.len() {
            let report = tokio::time::timeout(Duration::from_secs(120), watch.next())
                .await
                .expect("report in time")
                .expect("stream open")
                .expect("ok");
            if let Some(uid) = want(&report)
                && uids.contains(&uid)
            {
                seen.entry(uid).or_insert_with(Instant::now);
            }
        }
        seen
    };

    // Warm-up (first netns, first import check).
    let warm = sleeper("warm");
    let warm_uid = warm.metadata.uid.clone().expect("uid");
    client.assign_pod(assignment(&warm)).await.expect("assign");
    wait_for(&running, std::slice::from_ref(&warm_uid)).await;
    client
        .remove_pod(pb::PodRemoval {
            pod_uid: warm_uid.clone(),
            grace_period_seconds: Some(0),
        })
        .await
        .expect("remove");
    wait_for(&gone, &[warm_uid]).await;

    let mut single = Vec::new();
    for i in 0..SINGLE_RUNS {
        let pod = sleeper(&format!("single-{i}"));
        let uid = pod.metadata.uid.clone().expect("uid");
        let t = Instant::now();
        client.assign_pod(assignment(&pod)).await.expect("assign");
        let seen = wait_for(&running, std::slice::from_ref(&uid)).await;
        single.push(seen[&uid] - t);
        client
            .remove_pod(pb::PodRemoval {
                pod_uid: uid.clone(),
                grace_period_seconds: Some(0),
            })
            .await
            .expect("remove");
        wait_for(&gone, &[uid]).await;
    }

    let pods: Vec<Pod> = (0..BATCH).map(|i| sleeper(&format!("batch-{i}"))).collect();
    let uids: Vec<String> = pods
        .iter()
        .map(|p| p.metadata.uid.clone().expect("uid"))
        .collect();
    let t = Instant::now();
    for pod in &pods {
        client.assign_pod(assignment(pod)).await.expect("assign");
    }
    let seen = wait_for(&running, &uids).await;
    let all_running = t.elapsed();
    let batch: Vec<Duration> = uids.iter().map(|u| seen[u] - t).collect();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let busy_rss = rss_kib(pid);
    for uid in &uids {
        client
            .remove_pod(pb::PodRemoval {
                pod_uid: uid.clone(),
                grace_period_seconds: Some(0),
            })
            .await
            .expect("remove");
    }
    wait_for(&gone, &uids).await;

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
    println!("| path | samples | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    summary("bare runtime create+start (floor)", floor);
    summary("kubelet: one pod at a time, AssignPod → running", single);
    summary(&format!("kubelet: {BATCH} pods at once, per pod"), batch);
    println!();
    println!(
        "{BATCH} pods at once: all running after {:.0} ms",
        ms(all_running)
    );
    println!(
        "kubelet RSS: idle {:.1} MiB, with {BATCH} pods {:.1} MiB",
        idle_rss as f64 / 1024.0,
        busy_rss as f64 / 1024.0
    );
    drop(kubelet);
    env.shutdown().await;
}
