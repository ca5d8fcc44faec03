//! `skiff-kubelet` end to end: a real kubelet process on a private
//! containerd, driven over gRPC, by static manifests, and read over HTTP.

use std::time::Duration;

use skiff_proto::node::v1 as pb;
use skiff_tests::kubelet::{TestKubelet, condition, container_status, phase, pod_yaml, wait_pod};
use skiff_tests::{TestEnv, eventually};
use tokio_stream::StreamExt;

fn assignment(pod: &k8s_openapi::api::core::v1::Pod) -> pb::PodAssignment {
    pb::PodAssignment {
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        resource_version: "1".into(),
        pod_json: serde_json::to_vec(pod).expect("pod json"),
    }
}

fn restarts(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> i32 {
    container_status(pod, container).map_or(0, |c| c.restart_count)
}

fn waiting_reason(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> Option<String> {
    container_status(pod, container)?.state?.waiting?.reason
}

async fn logs(
    kubelet: &TestKubelet,
    uid: &str,
    container: &str,
    previous: bool,
) -> Result<String, tonic::Status> {
    let mut client = kubelet.client().await;
    let mut stream = client
        .container_logs(pb::LogsRequest {
            pod_uid: uid.into(),
            container: container.into(),
            previous,
            ..pb::LogsRequest::default()
        })
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend(chunk?.data);
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Assignment and removal over gRPC, with status and events reported on
/// the watch; invalid pods are refused with the API server's wording; a
/// removed pod leaves no container, network namespace or file behind.
#[tokio::test]
async fn grpc_assignment_reports_status_and_removal_cleans_up() {
    let Some(env) = TestEnv::start("grpc_assignment_reports_status_and_removal_cleans_up").await
    else {
        return;
    };
    let kubelet = TestKubelet::start(&env, &format!("n{}a", std::process::id())).await;
    let mut client = kubelet.client().await;
    let mut watch = client
        .watch_pods(pb::WatchPodsRequest {})
        .await
        .expect("watch")
        .into_inner();
    let first = watch.next().await.expect("report").expect("ok");
    assert_eq!(
        first.report,
        Some(pb::node_report::Report::Synced(true)),
        "empty node: snapshot is just the marker"
    );

    let pod = pod_yaml(
        r#"
metadata: {name: sleeper}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
"#,
    );
    let uid = pod.metadata.uid.clone().expect("uid");
    client.assign_pod(assignment(&pod)).await.expect("assign");

    let (mut running, mut events) = (false, Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !running {
        let report = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("status report in time")
            .expect("stream open")
            .expect("ok");
        match report.report {
            Some(pb::node_report::Report::PodStatus(s)) => {
                assert_eq!(
                    (s.pod_uid.as_str(), s.name.as_str()),
                    (uid.as_str(), "sleeper")
                );
                let status: k8s_openapi::api::core::v1::PodStatus =
                    serde_json::from_slice(&s.status_json).expect("status json");
                running = status.phase.as_deref() == Some("Running")
                    && status
                        .container_statuses
                        .iter()
                        .flatten()
                        .all(|c| c.state.as_ref().is_some_and(|st| st.running.is_some()));
            }
            Some(pb::node_report::Report::Event(e)) => events.push(e.reason),
            _ => {}
        }
    }
    for reason in ["Pulling", "Pulled", "Created", "Started"] {
        let seen = events.contains(&reason.to_string());
        // Pulling only appears when the image had to be imported.
        assert!(
            seen || reason == "Pulling",
            "event {reason} missing from {events:?}"
        );
    }
    let listed = kubelet.pod("sleeper").expect("in /pods");
    assert_eq!(phase(&listed), "Running");
    assert_eq!(condition(&listed, "Ready").as_deref(), Some("True"));
    let (status, metrics) = skiff_tests::http("GET", &kubelet.http, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("skiff_kubelet_running_pods 1"),
        "{metrics}"
    );

    // Invalid pods are refused, and nothing else is disturbed.
    let mut bad = pod_yaml("metadata: {name: bad}\nspec:\n  containers: [{name: c}]\n");
    bad.metadata.name = Some("Bad_Name".into());
    let err = client
        .assign_pod(assignment(&bad))
        .await
        .expect_err("invalid");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message()
            .contains("spec.containers[0].image: Required value"),
        "{}",
        err.message()
    );
    assert!(
        err.message()
            .contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{}",
        err.message()
    );
    let garbage = pb::PodAssignment {
        pod_uid: "x".into(),
        resource_version: "1".into(),
        pod_json: b"{not json".to_vec(),
    };
    assert_eq!(
        client
            .assign_pod(garbage)
            .await
            .expect_err("garbage")
            .code(),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        phase(&kubelet.pod("sleeper").expect("still there")),
        "Running"
    );

    let removed = client
        .remove_pod(pb::PodRemoval {
            pod_uid: uid.clone(),
            grace_period_seconds: Some(1),
        })
        .await
        .expect("remove")
        .into_inner();
    assert!(removed.found);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let report = tokio::time::timeout_at(deadline, watch.next())
            .await
            .expect("gone in time")
            .expect("open")
            .expect("ok");
        if let Some(pb::node_report::Report::PodGone(g)) = report.report {
            assert_eq!(g.pod_uid, uid);
            break;
        }
    }
    assert!(kubelet.pod("sleeper").is_none());
    assert!(
        env.ctr_ids(&["containers", "ls"]).is_empty(),
        "containers left"
    );
    assert!(env.ctr_ids(&["tasks", "ls"]).is_empty(), "tasks left");
    let netns: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("skiff-{}-", kubelet.name)))
        .collect();
    assert!(netns.is_empty(), "network namespaces left: {netns:?}");
    let pod_dirs: Vec<_> = std::fs::read_dir(kubelet.state_dir().join("pods"))
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(pod_dirs.is_empty(), "pod folders left: {pod_dirs:?}");
    assert!(
        !client
            .remove_pod(pb::PodRemoval {
                pod_uid: uid,
                grace_period_seconds: None
            })
            .await
            .expect("remove")
            .into_inner()
            .found
    );
    drop(kubelet);
    env.shutdown().await;
}

/// The seed's liveness-pod (webapp, httpGet on a path that answers 404):
/// Unhealthy events, Killing, restarts with growing back-off and
/// CrashLoopBackOff; exec and tcpSocket variants; readiness drives Ready.
#[tokio::test]
async fn liveness_and_readiness_probes_drive_restarts_and_ready() {
    let Some(env) = TestEnv::start("liveness_and_readiness_probes_drive_restarts_and_ready").await
    else {
        return;
    };
    let kubelet = TestKubelet::start(&env, &format!("n{}b", std::process::id())).await;
    let mut client = kubelet.client().await;
    let mut watch = client
        .watch_pods(pb::WatchPodsRequest {})
        .await
        .expect("watch")
        .into_inner();
    let pods = [
        pod_yaml(
            r#"
metadata: {name: liveness-pod}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: my-app
    image: skiff.dev/webapp:v1
    livenessProbe:
      httpGet: {path: /not-there, port: 8080}
      periodSeconds: 1
      failureThreshold: 2
"#,
        ),
        pod_yaml(
            r#"
metadata: {name: liveness-exec}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: app
    image: busybox
    command: [sh, -c, "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600"]
    livenessProbe:
      exec: {command: [cat, /tmp/healthy]}
      periodSeconds: 1
      failureThreshold: 1
"#,
        ),
        pod_yaml(
            r#"
metadata: {name: liveness-tcp}
spec:
  terminationGracePeriodSeconds: 2
  containers:
  - name: bad
    image: skiff.dev/webapp:v1
    livenessProbe:
      tcpSocket: {port: 9999}
      periodSeconds: 1
      failureThreshold: 2
  - name: good
    image: skiff.dev/webapp:v2
    env: [{name: PORT, value: "8081"}]
    ports: [{name: web, containerPort: 8081}]
    # Slack for a loaded machine: the server must be listening before the
    # probe may fail (it is the "healthy" control case).
    livenessProbe:
      tcpSocket: {port: web}
      initialDelaySeconds: 2
      periodSeconds: 1
      failureThreshold: 10
    readinessProbe:
      httpGet: {path: /ready, port: web}
      periodSeconds: 1
"#,
        ),
    ];
    for pod in &pods {
        client.assign_pod(assignment(pod)).await.expect("assign");
    }

    let live = wait_pod(
        &kubelet,
        "liveness-pod",
        "restarted 3 times",
        Duration::from_secs(90),
        |p| restarts(p, "my-app") >= 3,
    )
    .await;
    let last = container_status(&live, "my-app")
        .and_then(|c| c.last_state)
        .and_then(|l| l.terminated)
        .expect("lastState");
    assert_eq!(last.exit_code, 0, "the webapp exits cleanly on SIGTERM");
    // `kubectl logs --previous`: the instance before the current one.
    let live_uid = live.metadata.uid.clone().expect("uid");
    let previous = logs(&kubelet, &live_uid, "my-app", true)
        .await
        .expect("previous logs");
    assert!(
        previous.contains("webapp v1 listening on :8080")
            && previous.contains("GET /not-there 404"),
        "{previous}"
    );
    wait_pod(
        &kubelet,
        "liveness-pod",
        "in CrashLoopBackOff",
        Duration::from_secs(60),
        |p| waiting_reason(p, "my-app").as_deref() == Some("CrashLoopBackOff"),
    )
    .await;
    wait_pod(
        &kubelet,
        "liveness-exec",
        "restarted",
        Duration::from_secs(60),
        |p| restarts(p, "app") >= 1,
    )
    .await;
    let tcp = wait_pod(
        &kubelet,
        "liveness-tcp",
        "restarted",
        Duration::from_secs(60),
        |p| restarts(p, "bad") >= 1,
    )
    .await;
    assert_eq!(
        restarts(&tcp, "good"),
        0,
        "a healthy tcp probe does not restart"
    );
    let tcp = wait_pod(
        &kubelet,
        "liveness-tcp",
        "good ready",
        Duration::from_secs(30),
        |p| container_status(p, "good").is_some_and(|c| c.ready),
    )
    .await;
    let tcp_uid = tcp.metadata.uid.clone().expect("uid");
    let (code, _) = kubelet
        .exec(
            &tcp_uid,
            "good",
            &[
                "wget",
                "-q",
                "-O-",
                "--post-data=",
                "http://127.0.0.1:8081/unready",
            ],
        )
        .await;
    assert_eq!(code, 0);
    wait_pod(
        &kubelet,
        "liveness-tcp",
        "good not ready",
        Duration::from_secs(30),
        |p| container_status(p, "good").is_some_and(|c| !c.ready) && restarts(p, "good") == 0,
    )
    .await;

    // Events, as `kubectl describe` would show them.
    let mut messages = Vec::new();
    while let Ok(Some(Ok(report))) =
        tokio::time::timeout(Duration::from_millis(200), watch.next()).await
    {
        if let Some(pb::node_report::Report::Event(e)) = report.report {
            messages.push(format!(
                "{} {} {} {}",
                e.r#type, e.reason, e.pod_name, e.message
            ));
        }
    }
    let has = |needle: &str| messages.iter().any(|m| m.contains(needle));
    for needle in [
        "Warning Unhealthy liveness-pod Liveness probe failed: HTTP probe failed with statuscode: 404",
        "Normal Killing liveness-pod Container my-app failed liveness probe, will be restarted",
        "Warning BackOff liveness-pod Back-off restarting failed container my-app in pod liveness-pod_default(",
        "Warning Unhealthy liveness-exec Liveness probe failed: cat: can't open '/tmp/healthy': No such file or directory",
        "Warning Unhealthy liveness-tcp Liveness probe failed: dial tcp 127.0.0.1:9999: connect: connection refused",
        "Warning Unhealthy liveness-tcp Readiness probe failed: HTTP probe failed with statuscode: 503",
    ] {
        assert!(
            has(needle),
            "missing event {needle:?} in:\n{}",
            messages.join("\n")
        );
    }
    drop(kubelet);
    env.shutdown().await;
}

/// restartPolicy × exit code gives upstream's phase, restart count and reasons.
#[tokio::test]
async fn restart_policy_matrix_matches_upstream() {
    let Some(env) = TestEnv::start("restart_policy_matrix_matches_upstream").await else {
        return;
    };
    let kubelet = TestKubelet::start(&env, &format!("n{}c", std::process::id())).await;
    let mut client = kubelet.client().await;
    let cases = [
        ("always-0", "Always", 0),
        ("always-1", "Always", 1),
        ("onfailure-0", "OnFailure", 0),
        ("onfailure-1", "OnFailure", 1),
        ("never-0", "Never", 0),
        ("never-1", "Never", 1),
    ];
    for (name, policy, code) in cases {
        let pod = pod_yaml(&format!(
            "metadata: {{name: {name}}}\nspec:\n  restartPolicy: {policy}\n  containers:\n  - name: c\n    image: busybox\n    command: [sh, -c, 'sleep 0.3; exit {code}']\n"
        ));
        client.assign_pod(assignment(&pod)).await.expect("assign");
    }
    for (name, policy, code) in cases {
        let restarting = policy == "Always" || (policy == "OnFailure" && code == 1);
        if restarting {
            let pod = wait_pod(
                &kubelet,
                name,
                "restarted twice",
                Duration::from_secs(60),
                |p| restarts(p, "c") >= 2,
            )
            .await;
            assert_eq!(phase(&pod), "Running", "{name}");
            let last = container_status(&pod, "c")
                .and_then(|c| c.last_state)
                .and_then(|l| l.terminated)
                .expect("lastState");
            assert_eq!(last.exit_code, code, "{name}");
            assert_eq!(
                last.reason.as_deref(),
                Some(if code == 0 { "Completed" } else { "Error" }),
                "{name}"
            );
        } else {
            let expected = if code == 0 { "Succeeded" } else { "Failed" };
            let pod = wait_pod(&kubelet, name, expected, Duration::from_secs(30), |p| {
                phase(p) == expected
            })
            .await;
            let status = container_status(&pod, "c").expect("status");
            assert_eq!(status.restart_count, 0, "{name}");
            let t = status.state.and_then(|s| s.terminated).expect("terminated");
            assert_eq!(
                (t.exit_code, t.reason.as_deref()),
                (code, Some(if code == 0 { "Completed" } else { "Error" })),
                "{name}"
            );
            assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"), "{name}");
        }
    }
    // A pod that keeps crashing shows CrashLoopBackOff while it waits.
    wait_pod(
        &kubelet,
        "always-1",
        "in CrashLoopBackOff",
        Duration::from_secs(30),
        |p| waiting_reason(p, "c").as_deref() == Some("CrashLoopBackOff"),
    )
    .await;
    drop(kubelet);
    env.shutdown().await;
}

/// Containers of a pod share localhost; two servers on one port collide
/// (the seed's sample-2pod-fail: 1/2 ready, CrashLoopBackOff, bind error in
/// the log); command/args, workingDir and hostAliases as in the seeds.
#[tokio::test]
async fn pod_sandbox_localhost_ports_workdir_and_host_aliases() {
    let Some(env) = TestEnv::start("pod_sandbox_localhost_ports_workdir_and_host_aliases").await
    else {
        return;
    };
    let kubelet = TestKubelet::start(&env, &format!("n{}d", std::process::id())).await;
    let mut client = kubelet.client().await;
    let pods = [
        pod_yaml(
            r#"
metadata: {name: sample-2pod}
spec:
  containers:
  - name: web
    image: skiff.dev/webapp:v1
  - name: client
    image: busybox
    command: [sh, -c]
    args: ["until wget -qO- http://localhost:8080/; do sleep 0.2; done; sleep 3600"]
"#,
        ),
        pod_yaml(
            r#"
metadata: {name: sample-2pod-fail}
spec:
  containers:
  - name: webapp-112
    image: skiff.dev/webapp:v1
  - name: webapp-113
    image: skiff.dev/webapp:v2
"#,
        ),
        pod_yaml(
            r#"
metadata: {name: sample-workingdir}
spec:
  hostAliases:
  - ip: 8.8.8.8
    hostnames: [google-dns, google-public-dns]
  containers:
  - name: main
    image: busybox
    workingDir: /tmp
    command: [sh, -c]
    args: ["echo started in $(pwd) as $0 $1; sleep 3600", "first", "second"]
"#,
        ),
    ];
    for pod in &pods {
        client.assign_pod(assignment(pod)).await.expect("assign");
    }
    let two = wait_pod(
        &kubelet,
        "sample-2pod",
        "2/2 ready",
        Duration::from_secs(60),
        |p| {
            ["web", "client"]
                .iter()
                .all(|c| container_status(p, c).is_some_and(|s| s.ready))
        },
    )
    .await;
    let uid = two.metadata.uid.clone().expect("uid");
    let out = eventually("client reached localhost", Duration::from_secs(20), || {
        let k = &kubelet;
        let uid = uid.clone();
        async move {
            logs(k, &uid, "client", false)
                .await
                .ok()
                .filter(|l| l.contains("webapp v1 on sample-2pod"))
        }
    })
    .await;
    assert!(out.contains("webapp v1 on sample-2pod"), "{out}");

    let fail = wait_pod(
        &kubelet,
        "sample-2pod-fail",
        "one crash-looping",
        Duration::from_secs(60),
        |p| {
            let ready = ["webapp-112", "webapp-113"]
                .iter()
                .filter(|c| container_status(p, c).is_some_and(|s| s.ready))
                .count();
            let looping = ["webapp-112", "webapp-113"]
                .iter()
                .any(|c| waiting_reason(p, c).as_deref() == Some("CrashLoopBackOff"));
            ready == 1 && looping
        },
    )
    .await;
    let loser = ["webapp-112", "webapp-113"]
        .into_iter()
        .find(|c| !container_status(&fail, c).is_some_and(|s| s.ready))
        .expect("one not ready");
    let fail_uid = fail.metadata.uid.clone().expect("uid");
    let log = logs(&kubelet, &fail_uid, loser, false).await.expect("logs");
    assert!(
        log.contains("cannot listen on port 8080") && log.contains("Address already in use"),
        "{log}"
    );
    assert_eq!(condition(&fail, "Ready").as_deref(), Some("False"));

    let wd = wait_pod(
        &kubelet,
        "sample-workingdir",
        "running",
        Duration::from_secs(30),
        |p| container_status(p, "main").is_some_and(|s| s.ready),
    )
    .await;
    let wd_uid = wd.metadata.uid.clone().expect("uid");
    assert_eq!(
        kubelet.exec(&wd_uid, "main", &["pwd"]).await,
        (0, "/tmp\n".to_string())
    );
    let (code, hosts) = kubelet.exec(&wd_uid, "main", &["cat", "/etc/hosts"]).await;
    assert_eq!(code, 0);
    assert!(
        hosts.contains("# Entries added by HostAliases.\n8.8.8.8\tgoogle-dns\tgoogle-public-dns\n"),
        "{hosts}"
    );
    assert!(hosts.contains("\tsample-workingdir\n"), "{hosts}");
    assert_eq!(
        kubelet.exec(&wd_uid, "main", &["hostname"]).await,
        (0, "sample-workingdir\n".to_string())
    );
    let out = logs(&kubelet, &wd_uid, "main", false).await.expect("logs");
    assert_eq!(out, "started in /tmp as first second\n");
    drop(kubelet);
    env.shutdown().await;
}

/// Static pods: a manifest file starts `<name>-<node>`, a killed container
/// is restarted, a broken manifest is reported and skipped, deleting the
/// file removes the pod; `/pods` shows it all.
#[tokio::test]
async fn static_pods_follow_their_manifest_files() {
    let Some(env) = TestEnv::start("static_pods_follow_their_manifest_files").await else {
        return;
    };
    let node = format!("n{}e", std::process::id());
    let kubelet = TestKubelet::start(&env, &node).await;
    std::fs::write(
        kubelet.manifest("broken.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata: [oops",
    )
    .expect("write");
    std::fs::write(
        kubelet.manifest("web.yaml"),
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: static-web\nspec:\n  containers:\n  - name: web\n    image: skiff.dev/webapp:v1\n",
    )
    .expect("write");
    let name = format!("static-web-{node}");
    let pod = wait_pod(&kubelet, &name, "running", Duration::from_secs(30), |p| {
        container_status(p, "web").is_some_and(|s| s.ready)
    })
    .await;
    let annotations = pod.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations
            .get("kubernetes.io/config.source")
            .map(String::as_str),
        Some("file")
    );
    assert_eq!(
        pod.spec.as_ref().and_then(|s| s.node_name.as_deref()),
        Some(node.as_str())
    );
    assert!(
        kubelet.log().contains("broken.yaml"),
        "the broken manifest is reported"
    );

    // Kill the container behind the kubelet's back: it comes back.
    let id = container_status(&pod, "web")
        .and_then(|c| c.container_id)
        .expect("container id");
    let id = id.trim_start_matches("containerd://");
    env.ctr(&["tasks", "kill", "--signal", "SIGKILL", id]);
    let pod = wait_pod(&kubelet, &name, "restarted", Duration::from_secs(30), |p| {
        restarts(p, "web") == 1 && container_status(p, "web").is_some_and(|s| s.ready)
    })
    .await;
    let last = container_status(&pod, "web")
        .and_then(|c| c.last_state)
        .and_then(|l| l.terminated)
        .expect("lastState");
    assert_eq!(last.exit_code, 137);

    std::fs::remove_file(kubelet.manifest("web.yaml")).expect("rm");
    eventually("static pod removed", Duration::from_secs(30), || {
        let gone = kubelet.pod(&name).is_none();
        async move { gone.then_some(()) }
    })
    .await;
    assert!(env.ctr_ids(&["containers", "ls"]).is_empty());
    drop(kubelet);
    env.shutdown().await;
}

/// A kubelet killed with SIGKILL and started again re-adopts its running
/// containers: none restarts and statuses are unchanged.
#[tokio::test]
async fn a_restarted_kubelet_readopts_running_pods() {
    let Some(env) = TestEnv::start("a_restarted_kubelet_readopts_running_pods").await else {
        return;
    };
    let node = format!("n{}f", std::process::id());
    let mut kubelet = TestKubelet::start(&env, &node).await;
    let mut client = kubelet.client().await;
    let api_pod = pod_yaml(
        "metadata: {name: api-pod}\nspec:\n  containers:\n  - name: web\n    image: skiff.dev/webapp:v1\n    readinessProbe:\n      httpGet: {path: /ready, port: 8080}\n      periodSeconds: 1\n",
    );
    client
        .assign_pod(assignment(&api_pod))
        .await
        .expect("assign");
    std::fs::write(
        kubelet.manifest("static.yaml"),
        "metadata: {name: st}\nspec:\n  containers:\n  - name: c\n    image: busybox\n    command: [sleep, '3600']\n",
    )
    .expect("write");
    let static_name = format!("st-{node}");
    let ready =
        |p: &k8s_openapi::api::core::v1::Pod| condition(p, "Ready").as_deref() == Some("True");
    let before_api = wait_pod(&kubelet, "api-pod", "ready", Duration::from_secs(30), ready).await;
    let before_static = wait_pod(
        &kubelet,
        &static_name,
        "ready",
        Duration::from_secs(30),
        ready,
    )
    .await;
    let tasks = || {
        let mut lines: Vec<String> = env
            .ctr(&["tasks", "ls"])
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let tasks_before = tasks();

    kubelet.restart().await;
    let after_api = wait_pod(
        &kubelet,
        "api-pod",
        "ready again",
        Duration::from_secs(30),
        ready,
    )
    .await;
    let after_static = wait_pod(
        &kubelet,
        &static_name,
        "ready again",
        Duration::from_secs(30),
        ready,
    )
    .await;
    for (before, after, c) in [
        (&before_api, &after_api, "web"),
        (&before_static, &after_static, "c"),
    ] {
        let (b, a) = (
            container_status(before, c).expect("before"),
            container_status(after, c).expect("after"),
        );
        assert_eq!(a.container_id, b.container_id, "same container instance");
        assert_eq!(a.restart_count, 0);
        assert!(a.state.as_ref().is_some_and(|s| s.running.is_some()));
        assert_eq!(before.metadata.uid, after.metadata.uid);
    }
    assert_eq!(tasks(), tasks_before, "same tasks, same pids");
    drop(kubelet);
    env.shutdown().await;
}

/// Images come from the node's image folder by pull policy; a missing one
/// gives ErrImagePull, then ImagePullBackOff, naming the folder searched;
/// `Never` with a missing image gives ErrImageNeverPull.
#[tokio::test]
async fn image_pull_policies_work_offline() {
    let Some(env) = TestEnv::start("image_pull_policies_work_offline").await else {
        return;
    };
    let kubelet = TestKubelet::start(&env, &format!("n{}g", std::process::id())).await;
    let mut client = kubelet.client().await;
    for yaml in [
        "metadata: {name: from-folder}\nspec:\n  containers: [{name: c, image: 'skiff.dev/webapp:v2'}]\n",
        "metadata: {name: missing}\nspec:\n  containers: [{name: c, image: 'skiff.dev/missing:v1'}]\n",
        "metadata: {name: never}\nspec:\n  containers: [{name: c, image: 'skiff.dev/webapp:v1', imagePullPolicy: Never}]\n",
    ] {
        client
            .assign_pod(assignment(&pod_yaml(yaml)))
            .await
            .expect("assign");
    }
    wait_pod(
        &kubelet,
        "from-folder",
        "running",
        Duration::from_secs(30),
        |p| container_status(p, "c").is_some_and(|c| c.ready),
    )
    .await;
    let missing = wait_pod(
        &kubelet,
        "missing",
        "in ImagePullBackOff",
        Duration::from_secs(30),
        |p| waiting_reason(p, "c").as_deref() == Some("ImagePullBackOff"),
    )
    .await;
    let message = container_status(&missing, "c")
        .and_then(|c| c.state)
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    assert!(
        message.contains("skiff.dev/missing:v1")
            && message.contains(&skiff_tests::image_dir().display().to_string()),
        "{message}"
    );
    assert_eq!(phase(&missing), "Pending");
    let never = wait_pod(
        &kubelet,
        "never",
        "ErrImageNeverPull",
        Duration::from_secs(30),
        |p| waiting_reason(p, "c").as_deref() == Some("ErrImageNeverPull"),
    )
    .await;
    let message = container_status(&never, "c")
        .and_then(|c| c.state)
        .and_then(|s| s.waiting)
        .and_then(|w| w.message)
        .unwrap_or_default();
    assert_eq!(
        message,
        "Container image \"skiff.dev/webapp:v1\" is not present with pull policy of Never"
    );
    drop(kubelet);
    env.shutdown().await;
}
