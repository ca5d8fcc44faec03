//! The whole spine: kubectl → control plane → scheduler → node actor →
//! gRPC → skiff-kubelet → containerd, and status, events, logs and exec
//! back up, with a real kubelet registered to a real control plane.

use std::time::{Duration, Instant};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

#[tokio::test]
async fn kubectl_apply_to_a_running_container_and_back() {
    if !kubectl_enabled("kubectl_apply_to_a_running_container_and_back") {
        return;
    }
    let Some(env) = TestEnv::start("kubectl_apply_to_a_running_container_and_back").await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}c", std::process::id());
    let kubelet = TestKubelet::start_with(
        &env,
        &node,
        &["--control-plane", &cp.grpc, "--node-labels", "disk=ssd"],
    )
    .await;

    let nodes = cp.eventually(&["get", "nodes"], "the node to be Ready", |o| {
        o.contains(&node) && o.contains(" Ready ")
    });
    assert!(
        nodes.lines().next().unwrap_or_default().starts_with("NAME"),
        "{nodes}"
    );
    assert_eq!(
        cp.kubectl_ok(&[
            "get",
            "node",
            &node,
            "-o",
            "jsonpath={.metadata.labels.disk}"
        ]),
        "ssd"
    );

    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sample-2pod\nspec:\n  terminationGracePeriodSeconds: 3\n  containers:\n  - name: webapp\n    image: skiff.dev/webapp:v1\n  - name: client\n    image: busybox\n    command: [sh, -c, 'until wget -qO- http://localhost:8080/; do sleep 0.2; done; sleep 3600']\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("pod.yaml", pod)]);
    let wide = cp.eventually(&["get", "pods", "-o", "wide"], "2/2 Running", |o| {
        o.contains("2/2") && o.contains("Running")
    });
    assert!(wide.contains(&node), "NODE column: {wide}");

    // The control plane restarts while the pod runs: containers untouched,
    // the node re-registers and the state reconverges.
    let ids = |cp: &TestControlPlane| {
        cp.kubectl_ok(&["get", "pod", "sample-2pod", "-o", "jsonpath={.status.containerStatuses[*].containerID} {.status.containerStatuses[*].restartCount}"])
    };
    let before = ids(&cp);
    let mut cp = cp;
    cp.restart().await;
    cp.eventually(&["get", "nodes"], "the node back", |o| {
        o.contains(" Ready ")
    });
    cp.eventually(&["get", "pods"], "still 2/2 Running", |o| {
        o.contains("2/2") && o.contains("Running")
    });
    assert_eq!(ids(&cp), before, "same containers, no restarts");

    let logs = cp.eventually(
        &["logs", "sample-2pod", "-c", "client"],
        "the client's log",
        |o| o.contains("webapp v1 on sample-2pod"),
    );
    assert!(logs.contains("webapp v1 on sample-2pod"));
    assert_eq!(
        cp.kubectl_ok(&["exec", "sample-2pod", "-c", "client", "--", "pwd"]),
        "/\n"
    );
    let describe = cp.eventually(&["describe", "pod", "sample-2pod"], "events", |o| {
        o.contains("Started")
    });
    for reason in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(describe.contains(reason), "{reason} missing:\n{describe}");
    }
    assert!(
        describe.contains(&format!(
            "Successfully assigned default/sample-2pod to {node}"
        )),
        "{describe}"
    );

    let picky = "apiVersion: v1\nkind: Pod\nmetadata: {name: picky}\nspec:\n  nodeSelector: {disk: hdd}\n  containers: [{name: c, image: busybox}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("picky.yaml", picky)]);
    let events = cp.eventually(&["describe", "pod", "picky"], "FailedScheduling", |o| {
        o.contains("FailedScheduling")
    });
    assert!(
        events.contains(
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector."
        ),
        "{events}"
    );
    assert!(cp.kubectl_ok(&["get", "pod", "picky"]).contains("Pending"));

    // Deletion: Terminating while the node stops the containers, then gone.
    let containers_before = env.ctr_ids(&["containers", "ls"]).len();
    assert!(containers_before >= 2, "containers: {containers_before}");
    cp.kubectl_ok(&["delete", "pod", "sample-2pod", "--wait=false"]);
    let status = cp.kubectl_ok(&["get", "pod", "sample-2pod"]);
    assert!(status.contains("Terminating"), "{status}");
    cp.eventually(
        &["get", "pods", "-o", "name"],
        "the pod to be removed",
        |o| !o.contains("sample-2pod"),
    );
    assert!(
        env.ctr_ids(&["containers", "ls"]).is_empty(),
        "containers left in containerd"
    );

    // A crash-looping container: the kubelet reports BackOff (and Pulled,
    // Created, Started) again and again; each repeat is counted on one Event,
    // as upstream's recorder does, and kubectl shows `(xN over ...)`.
    let crashy = "apiVersion: v1\nkind: Pod\nmetadata: {name: crashy}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers: [{name: c, image: busybox, command: [sh, -c, 'exit 1']}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("crashy.yaml", crashy)]);
    let describe = cp.eventually(
        &["describe", "pod", "crashy"],
        "counted BackOff events",
        |o| {
            o.lines()
                .any(|l| l.contains("BackOff") && l.contains("(x") && l.contains(" over "))
        },
    );
    assert!(
        describe.contains("Back-off restarting failed container c in pod crashy"),
        "{describe}"
    );
    let backoffs = describe.lines().filter(|l| l.contains(" BackOff ")).count();
    assert_eq!(backoffs, 1, "one counted BackOff Event:\n{describe}");
    let wide = cp.kubectl_ok(&[
        "get",
        "events",
        "-o",
        "wide",
        "--field-selector",
        "involvedObject.name=crashy,reason=BackOff",
    ]);
    let header = wide.lines().next().unwrap_or_default();
    for column in [
        "LAST SEEN",
        "SUBOBJECT",
        "SOURCE",
        "FIRST SEEN",
        "COUNT",
        "NAME",
    ] {
        assert!(header.contains(column), "{column} missing:\n{wide}");
    }
    let row = wide.lines().nth(1).unwrap_or_default();
    assert!(
        row.contains("spec.containers{c}") && row.contains(&format!("kubelet, {node}")),
        "{wide}"
    );
    let count_at = header.find("COUNT").unwrap_or_default();
    let count: u32 = row
        .get(count_at..)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_default();
    assert!(count >= 2, "COUNT {count}:\n{wide}");
    cp.kubectl_ok(&["delete", "pod", "crashy", "--wait=false"]);
    cp.eventually(
        &["get", "pods", "-o", "name"],
        "the crashing pod to be removed",
        |o| !o.contains("crashy"),
    );

    // Node loss: the kubelet dies; the node turns NotReady within the lab
    // grace period (4 s), its pods are evicted after the eviction timeout
    // (Terminating, since nobody can confirm), and when the kubelet comes
    // back the node is Ready again and the evicted pod is really removed.
    let mut kubelet = kubelet;
    let lonely = "apiVersion: v1\nkind: Pod\nmetadata: {name: lonely}\nspec:\n  terminationGracePeriodSeconds: 2\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("lonely.yaml", lonely)]);
    cp.eventually(&["get", "pod", "lonely"], "lonely running", |o| {
        o.contains("1/1") && o.contains("Running")
    });
    kubelet.kill();
    let killed = Instant::now();
    cp.eventually(&["get", "nodes"], "NotReady", |o| o.contains("NotReady"));
    assert!(
        killed.elapsed() < Duration::from_secs(8),
        "NotReady took {:?}",
        killed.elapsed()
    );
    let taints = cp.kubectl_ok(&["get", "node", &node, "-o", "jsonpath={.spec.taints[*].key}"]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    cp.eventually(&["get", "pod", "lonely"], "eviction", |o| {
        o.contains("Terminating")
    });
    kubelet.restart().await;
    cp.eventually(&["get", "nodes"], "Ready again", |o| o.contains(" Ready "));
    cp.eventually(
        &["get", "pods", "-o", "name"],
        "the evicted pod removed",
        |o| !o.contains("lonely"),
    );
    drop(kubelet);
    env.shutdown().await;
}

/// The seed's liveness scenario through the whole stack: the probe fails,
/// the kubelet kills and restarts the container with back-off, and a user
/// watching with `kubectl get pods -w` sees RESTARTS climb and
/// `CrashLoopBackOff`, while `describe` shows why.
#[tokio::test]
async fn liveness_failures_show_in_kubectl_watch_and_describe() {
    use std::io::BufRead;
    use std::process::Stdio;

    if !kubectl_enabled("liveness_failures_show_in_kubectl_watch_and_describe") {
        return;
    }
    let Some(env) = TestEnv::start("liveness_failures_show_in_kubectl_watch_and_describe").await
    else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}l", std::process::id());
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node to be Ready", |o| {
        o.contains(&node) && o.contains(" Ready ")
    });

    let mut watch = cp
        .kubectl_command(&["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl get pods -w");
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = watch.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });

    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: liveness-http}\nspec:\n  containers:\n  - name: web\n    image: skiff.dev/webapp:v1\n    env: [{name: FAIL_AFTER_SECONDS, value: '2'}]\n    livenessProbe:\n      httpGet: {path: /health, port: 8080}\n      initialDelaySeconds: 1\n      periodSeconds: 1\n      failureThreshold: 1\n";
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("liveness.yaml", pod)]);

    let deadline = Instant::now() + Duration::from_secs(90);
    let (mut seen, mut max_restarts, mut backoff) = (Vec::new(), 0, false);
    while Instant::now() < deadline && !(backoff && max_restarts >= 2) {
        let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) else {
            continue;
        };
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.first() == Some(&"liveness-http") {
            backoff |= cols.get(2) == Some(&"CrashLoopBackOff");
            if let Some(r) = cols.get(3).and_then(|r| r.parse::<u32>().ok()) {
                max_restarts = max_restarts.max(r);
            }
        }
        seen.push(line);
    }
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(
        backoff && max_restarts >= 2,
        "watch never showed CrashLoopBackOff with climbing restarts:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.first().is_some_and(|l| l.starts_with("NAME")),
        "header: {seen:?}"
    );

    let describe = cp.kubectl_ok(&["describe", "pod", "liveness-http"]);
    for expected in [
        "Liveness probe failed: HTTP probe failed with statuscode: 500",
        "Container web failed liveness probe, will be restarted",
        "Back-off restarting failed container web",
    ] {
        assert!(
            describe.contains(expected),
            "{expected} missing:\n{describe}"
        );
    }
    for reason in ["Unhealthy", "Killing", "BackOff"] {
        assert!(describe.contains(reason), "{reason} missing:\n{describe}");
    }

    // A static pod shows up as a mirror pod owned by the node; deleting the
    // mirror does not stop it (the mirror comes back), removing the manifest does.
    let manifest = kubelet.manifest("static-web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Pod\nmetadata: {name: static-web, labels: {tier: static}}\nspec:\n  terminationGracePeriodSeconds: 1\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n",
    )
    .expect("write manifest");
    let mirror = format!("static-web-{node}");
    cp.eventually(&["get", "pod", &mirror], "the mirror pod Running", |o| {
        o.contains("1/1") && o.contains("Running")
    });
    let owner = cp.kubectl_ok(&[
        "get",
        "pod",
        &mirror,
        "-o",
        "jsonpath={.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.annotations.kubernetes\\.io/config\\.mirror}",
    ]);
    assert!(owner.starts_with(&format!("Node/{node} ")), "{owner}");
    assert!(
        owner.len() > format!("Node/{node} ").len(),
        "no config.mirror annotation: {owner}"
    );
    let uid_of = |cp: &TestControlPlane| {
        cp.kubectl_ok(&["get", "pod", &mirror, "-o", "jsonpath={.metadata.uid}"])
    };
    let first_uid = uid_of(&cp);
    let started = kubelet
        .pod(&mirror)
        .and_then(|p| p.status?.start_time)
        .expect("static pod on the node");
    cp.kubectl_ok(&["delete", "pod", &mirror]);
    cp.eventually(
        &["get", "pod", &mirror, "-o", "jsonpath={.metadata.uid}"],
        "the mirror drawn again",
        |o| !o.is_empty() && o != first_uid,
    );
    assert_eq!(
        kubelet.pod(&mirror).and_then(|p| p.status?.start_time),
        Some(started),
        "deleting the mirror restarted the static pod"
    );
    std::fs::remove_file(&manifest).expect("remove manifest");
    cp.eventually(
        &["get", "pods", "-o", "name"],
        "the mirror gone with its manifest",
        |o| !o.contains("static-web"),
    );
    drop(kubelet);
    env.shutdown().await;
}
