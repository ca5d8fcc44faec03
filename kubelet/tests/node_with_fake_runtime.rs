//! The node agent and pod actors on the fake runtime, with paused time:
//! restart back-off, liveness kills and removal, deterministic and rootless.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use skiff_images::ImageName;
use skiff_kubelet::node::{NodeContext, NodeHandle, Report};
use skiff_kubelet::pod::sandbox::FakeNetwork;
use skiff_kubelet::runtime::fake::{Call, FakeRuntime};
use skiff_kubelet::runtime::{ContainerRuntime, ExecOutput, LabelFilter};
use tokio::sync::broadcast;
use tokio::time::Instant;

struct Node {
    handle: NodeHandle,
    runtime: Arc<FakeRuntime>,
    network: Arc<FakeNetwork>,
    _dir: tempfile::TempDir,
}

async fn node() -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = Arc::new(FakeRuntime::new());
    runtime.add_image(ImageName::parse("skiff.dev/webapp:v1").expect("valid"));
    let network = Arc::new(FakeNetwork::default());
    let ctx = Arc::new(NodeContext::minimal(
        "fake-node",
        dir.path(),
        runtime.clone(),
        network.clone(),
    ));
    let handle = NodeHandle::start(ctx, Vec::new())
        .await
        .expect("node starts");
    Node {
        handle,
        runtime,
        network,
        _dir: dir,
    }
}

fn pod(yaml: &str) -> Pod {
    serde_yaml::from_str(yaml).expect("yaml")
}

fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .map_or(0, |c| c.restart_count)
}

/// Waits (in virtual time) for a status report satisfying `check`.
async fn next_status(rx: &mut broadcast::Receiver<Report>, check: impl Fn(&Pod) -> bool) -> Pod {
    tokio::time::timeout(Duration::from_secs(3600), async {
        loop {
            if let Ok(Report::Status { pod, .. }) = rx.recv().await
                && check(&pod)
            {
                return *pod;
            }
        }
    })
    .await
    .expect("status within an hour of virtual time")
}

/// A container that always exits 1 is restarted at once, then after 10 s,
/// 20 s, 40 s: upstream's CrashLoopBackOff, in virtual time.
#[tokio::test(start_paused = true)]
async fn crash_loop_back_off_timing_follows_upstream() {
    let node = node().await;
    node.runtime.script_exit_on_start("crasher", 1);
    let (_, mut rx) = node.handle.watch().await.expect("watch");
    node.handle
        .assign(pod(
            "metadata: {name: p, namespace: default, uid: u-1}\nspec:\n  containers: [{name: crasher, image: skiff.dev/webapp:v1}]\n",
        ))
        .await
        .expect("assign");
    let mut times = Vec::new();
    for n in 1..=4 {
        next_status(&mut rx, |p| restart_count(p) == n).await;
        times.push(Instant::now());
    }
    let gaps: Vec<u64> = times.windows(2).map(|w| (w[1] - w[0]).as_secs()).collect();
    assert_eq!(gaps, [10, 20, 40], "back-off between restarts 1→2→3→4");
    let pod = next_status(&mut rx, |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.as_ref())
            .is_some_and(|w| w.reason.as_deref() == Some("CrashLoopBackOff"))
    })
    .await;
    assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
}

/// A failing exec liveness probe kills the container (grace period from the
/// pod), which is then restarted; Killing and Unhealthy events are emitted.
#[tokio::test(start_paused = true)]
async fn failed_liveness_probe_kills_and_restarts() {
    let node = node().await;
    node.runtime.script_exec(
        "check",
        ExecOutput {
            exit_code: 1,
            stdout: b"not healthy".to_vec(),
            stderr: Vec::new(),
        },
    );
    let (_, mut rx) = node.handle.watch().await.expect("watch");
    node.handle
        .assign(pod(r#"
metadata: {name: p, namespace: default, uid: u-2}
spec:
  terminationGracePeriodSeconds: 7
  containers:
  - name: app
    image: skiff.dev/webapp:v1
    livenessProbe:
      exec: {command: [check]}
      periodSeconds: 2
      failureThreshold: 2
"#))
        .await
        .expect("assign");
    let mut reasons = Vec::new();
    let pod = tokio::time::timeout(Duration::from_secs(600), async {
        loop {
            match rx.recv().await {
                Ok(Report::Event(e)) => reasons.push(format!("{}: {}", e.reason, e.message)),
                Ok(Report::Status { pod, .. }) if restart_count(&pod) >= 1 => return *pod,
                _ => {}
            }
        }
    })
    .await
    .expect("restarted");
    assert!(
        reasons.contains(&"Unhealthy: Liveness probe failed: not healthy".to_string()),
        "{reasons:?}"
    );
    assert!(
        reasons.contains(
            &"Killing: Container app failed liveness probe, will be restarted".to_string()
        ),
        "{reasons:?}"
    );
    let last = pod
        .status
        .and_then(|s| s.container_statuses)
        .and_then(|c| c.into_iter().next())
        .and_then(|c| c.last_state)
        .and_then(|l| l.terminated)
        .expect("lastState");
    assert_eq!(last.exit_code, 143, "the fake handles SIGTERM");
    let stops: Vec<Duration> = node
        .runtime
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Stop(_, grace) => Some(grace),
            _ => None,
        })
        .collect();
    assert_eq!(stops, [Duration::from_secs(7)]);
}

/// Removing a pod stops its containers, removes them and its network.
#[tokio::test(start_paused = true)]
async fn removal_leaves_nothing_behind() {
    let node = node().await;
    let (_, mut rx) = node.handle.watch().await.expect("watch");
    node.handle
        .assign(pod("metadata: {name: p, namespace: default, uid: u-3}\nspec:\n  containers: [{name: a, image: skiff.dev/webapp:v1}, {name: b, image: skiff.dev/webapp:v1}]\n"))
        .await
        .expect("assign");
    next_status(&mut rx, |p| {
        p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .is_some_and(|c| c.iter().all(|c| c.ready))
    })
    .await;
    assert_eq!(node.network.live(), ["u-3"]);
    assert!(
        node.handle
            .remove("u-3", Some(Duration::from_secs(1)))
            .await
            .expect("remove")
    );
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            if let Ok(Report::Gone(key)) = rx.recv().await {
                assert_eq!(key.uid, "u-3");
                return;
            }
        }
    })
    .await
    .expect("gone");
    assert!(
        node.runtime
            .list_containers(&LabelFilter::new())
            .await
            .expect("list")
            .is_empty()
    );
    assert!(node.network.live().is_empty());
    assert!(node.handle.pods().await.expect("pods").is_empty());
}

/// Invalid pods are refused with every problem named; the node keeps going.
#[tokio::test]
async fn invalid_pods_are_refused_with_field_errors() {
    let node = node().await;
    let err = node
        .handle
        .assign(pod(
            "metadata: {name: p, uid: u-4}\nspec:\n  containers: [{name: a}]\n",
        ))
        .await
        .expect_err("invalid");
    assert_eq!(
        err.to_string(),
        "Pod \"p\" is invalid: spec.containers[0].image: Required value"
    );
    let err = node
        .handle
        .assign(pod(
            "metadata: {name: p}\nspec:\n  containers: [{name: a, image: busybox}]\n",
        ))
        .await
        .expect_err("no uid");
    assert!(err.to_string().contains("metadata.uid: Required value"));
    assert!(
        node.handle
            .pods()
            .await
            .expect("still answering")
            .is_empty()
    );
}

/// `runAsNonRoot` with an image whose USER is root (none) never creates the
/// container: upstream's `CreateContainerConfigError` with its message, a
/// `Failed` event; with a numeric non-root image USER it starts.
#[tokio::test(start_paused = true)]
async fn run_as_non_root_refuses_a_root_image_as_upstream() {
    let node = node().await;
    let (_, mut rx) = node.handle.watch().await.expect("watch");
    node.handle
        .assign(pod(
            "metadata: {name: p, namespace: default, uid: u-nr}\nspec:\n  securityContext: {runAsNonRoot: true}\n  containers: [{name: app, image: skiff.dev/webapp:v1}]\n",
        ))
        .await
        .expect("assign");
    let waiting = |p: &Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|c| c.first())
            .and_then(|c| c.state.as_ref())
            .and_then(|s| s.waiting.clone())
    };
    let pod = next_status(&mut rx, |p| {
        waiting(p).is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
    })
    .await;
    assert_eq!(
        waiting(&pod).and_then(|w| w.message).as_deref(),
        Some(
            "container has runAsNonRoot and image will run as root (pod: \"p_default(u-nr)\", container: app)"
        )
    );
    assert!(
        node.runtime
            .list_containers(&LabelFilter::new())
            .await
            .expect("list")
            .is_empty(),
        "nothing was created"
    );

    node.runtime.set_image_user(
        ImageName::parse("skiff.dev/webapp:v1").expect("valid"),
        "1000:1000",
    );
    node.handle
        .assign(pod_with_uid("u-nr2"))
        .await
        .expect("assign");
    next_status(&mut rx, |p| {
        p.metadata.uid.as_deref() == Some("u-nr2")
            && p.status
                .as_ref()
                .and_then(|s| s.container_statuses.as_ref())
                .and_then(|c| c.first())
                .and_then(|c| c.state.as_ref())
                .is_some_and(|s| s.running.is_some())
    })
    .await;
}

fn pod_with_uid(uid: &str) -> Pod {
    pod(&format!(
        "metadata: {{name: q, namespace: default, uid: {uid}}}\nspec:\n  securityContext: {{runAsNonRoot: true}}\n  containers: [{{name: app, image: skiff.dev/webapp:v1}}]\n"
    ))
}
