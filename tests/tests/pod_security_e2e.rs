//! A pod's securityContext on real containers: a real kubelet on a private
//! containerd runs pods that set users, a read-only root, capabilities,
//! privileged mode, the host's PID namespace and seccomp, and each is
//! checked from inside the container (`id`, `/proc/self/status`, `/proc/1`).

use std::time::Duration;

use skiff_proto::node::v1 as pb;
use skiff_tests::TestEnv;
use skiff_tests::kubelet::{TestKubelet, container_status, pod_yaml, wait_pod};

fn assignment(pod: &k8s_openapi::api::core::v1::Pod) -> pb::PodAssignment {
    pb::PodAssignment {
        pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
        resource_version: "1".into(),
        pod_json: serde_json::to_vec(pod).expect("pod json"),
    }
}

fn running(pod: &k8s_openapi::api::core::v1::Pod, container: &str) -> bool {
    container_status(pod, container)
        .and_then(|c| c.state)
        .is_some_and(|s| s.running.is_some())
}

/// A field of `/proc/<pid>/status` text (`CapEff`, `Seccomp`, ...).
fn status_field(status: &str, field: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {field} in {status}"))
}

/// Every securityContext field the kubelet honours, seen from inside
/// real containers; and `runAsNonRoot` with a root image refused as
/// upstream's kubelet refuses it.
#[tokio::test]
async fn security_context_takes_effect_in_real_containers() {
    let Some(env) = TestEnv::start("security_context_takes_effect_in_real_containers").await else {
        return;
    };
    let kubelet = TestKubelet::start(&env, &format!("n{}s", std::process::id())).await;
    let mut client = kubelet.client().await;
    let confined = pod_yaml(
        r#"
metadata: {name: confined}
spec:
  terminationGracePeriodSeconds: 1
  securityContext:
    fsGroup: 2000
    supplementalGroups: [4000]
    sysctls: [{name: net.ipv4.ping_group_range, value: "0 1000"}]
  volumes: [{name: scratch, emptyDir: {}}]
  containers:
  - name: user
    image: busybox
    command: [sleep, "3600"]
    securityContext: {runAsUser: 1000, runAsGroup: 3000}
    volumeMounts: [{name: scratch, mountPath: /scratch}]
  - name: rofs
    image: busybox
    command: [sleep, "3600"]
    securityContext: {readOnlyRootFilesystem: true}
  - name: caps
    image: busybox
    command: [sleep, "3600"]
    securityContext: {capabilities: {drop: [ALL], add: [NET_ADMIN]}}
  - name: priv
    image: busybox
    command: [sleep, "3600"]
    securityContext: {privileged: true}
  - name: seccomp
    image: busybox
    command: [sleep, "3600"]
    securityContext: {seccompProfile: {type: RuntimeDefault}, allowPrivilegeEscalation: false}
"#,
    );
    let host_pid = pod_yaml(
        r#"
metadata: {name: hostpid}
spec:
  terminationGracePeriodSeconds: 1
  hostPID: true
  hostIPC: true
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
"#,
    );
    let non_root = pod_yaml(
        r#"
metadata: {name: nonroot}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {runAsNonRoot: true}
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
"#,
    );
    for pod in [&confined, &host_pid, &non_root] {
        client.assign_pod(assignment(pod)).await.expect("assign");
    }
    let names = ["user", "rofs", "caps", "priv", "seccomp"];
    wait_pod(
        &kubelet,
        "confined",
        "running",
        Duration::from_secs(60),
        |p| names.iter().all(|c| running(p, c)),
    )
    .await;
    let uid = confined.metadata.uid.clone().expect("uid");
    let exec = |container: &'static str, script: &'static str| {
        let kubelet = &kubelet;
        let uid = uid.clone();
        async move { kubelet.exec(&uid, container, &["sh", "-c", script]).await }
    };

    // runAsUser / runAsGroup / fsGroup and supplementalGroups; the
    // emptyDir is writable and its files belong to the fsGroup.
    let (code, out) = exec("user", "id -u; id -g; id -G").await;
    assert_eq!((code, out.as_str()), (0, "1000\n3000\n3000 2000 4000\n"));
    let (code, out) = exec("user", "touch /scratch/f && stat -c %u:%g /scratch/f").await;
    assert_eq!((code, out.as_str()), (0, "1000:2000\n"));
    let (_, status) = exec("user", "cat /proc/1/status").await;
    assert_eq!(
        status_field(&status, "Uid").split_whitespace().next(),
        Some("1000")
    );
    assert_eq!(
        status_field(&status, "Seccomp"),
        "0",
        "Unconfined by default"
    );
    assert_eq!(
        status_field(&status, "NoNewPrivs"),
        "0",
        "escalation allowed by default"
    );

    // Pod sysctls.
    let (_, range) = exec("user", "cat /proc/sys/net/ipv4/ping_group_range").await;
    assert_eq!(range.split_whitespace().collect::<Vec<_>>(), ["0", "1000"]);

    // readOnlyRootFilesystem.
    let (code, out) = exec("rofs", "touch /x").await;
    assert_ne!(code, 0, "writing / must fail: {out}");
    assert!(out.contains("Read-only file system"), "{out}");
    let (code, _) = exec("user", "touch /tmp/x").await;
    assert_eq!(code, 0, "a writable root for the others");

    // drop ALL, add NET_ADMIN: bit 12 only.
    let (_, status) = exec("caps", "cat /proc/1/status").await;
    assert_eq!(status_field(&status, "CapEff"), "0000000000001000");
    assert_eq!(status_field(&status, "CapBnd"), "0000000000001000");

    // privileged: every capability this (root) test process has, and the
    // host's devices.
    let own = std::fs::read_to_string("/proc/self/status").expect("own status");
    let (_, status) = exec("priv", "cat /proc/1/status").await;
    assert_eq!(
        status_field(&status, "CapEff"),
        status_field(&own, "CapEff")
    );
    assert_eq!(status_field(&status, "Seccomp"), "0");
    let (code, out) = exec("priv", "ls /dev").await;
    assert_eq!(code, 0);
    assert!(out.lines().count() > 20, "host devices: {out}");
    let (_, status) = exec("rofs", "cat /proc/1/status").await;
    assert_eq!(
        status_field(&status, "CapEff"),
        "00000000a80425fb",
        "containerd's default set"
    );

    // seccomp RuntimeDefault and allowPrivilegeEscalation: false.
    let (_, status) = exec("seccomp", "cat /proc/1/status").await;
    assert_eq!(status_field(&status, "Seccomp"), "2");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    // A user namespace needs no capability, so only the filter can refuse
    // it: allowed unconfined, refused under RuntimeDefault.
    let (code, out) = exec("rofs", "unshare -U true").await;
    assert_eq!(code, 0, "unconfined: {out}");
    let (code, out) = exec("seccomp", "unshare -U true").await;
    assert_ne!(code, 0, "refused by the filter: {out}");
    assert!(out.contains("Operation not permitted"), "{out}");
    // Ordinary work is unaffected.
    let (code, out) = exec(
        "seccomp",
        "ps >/dev/null && date >/dev/null && ls -l / >/dev/null && sh -c 'echo sub' && echo ok",
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "sub\nok\n"));

    // hostPID: the container's pid 1 is the host's init.
    wait_pod(
        &kubelet,
        "hostpid",
        "running",
        Duration::from_secs(60),
        |p| running(p, "main"),
    )
    .await;
    let host_init = std::fs::read_to_string("/proc/1/comm").expect("host pid 1");
    let (_, comm) = kubelet
        .exec(
            host_pid.metadata.uid.as_deref().expect("uid"),
            "main",
            &["cat", "/proc/1/comm"],
        )
        .await;
    assert_eq!(comm, host_init);
    // hostIPC: the host's IPC namespace.
    let host_ipc = std::fs::read_link("/proc/self/ns/ipc").expect("own ipc namespace");
    let (_, ipc) = kubelet
        .exec(
            host_pid.metadata.uid.as_deref().expect("uid"),
            "main",
            &["readlink", "/proc/self/ns/ipc"],
        )
        .await;
    assert_eq!(ipc.trim(), host_ipc.display().to_string());
    let (_, own_ipc) = exec("user", "readlink /proc/self/ns/ipc").await;
    assert_ne!(own_ipc.trim(), host_ipc.display().to_string());
    let (_, own_pid1) = exec("user", "cat /proc/1/comm").await;
    assert_eq!(
        own_pid1, "sleep\n",
        "without hostPID pid 1 is the container's"
    );
    assert_ne!(host_init, "sleep\n");

    // runAsNonRoot with busybox (no USER: root) never starts.
    let refused = wait_pod(
        &kubelet,
        "nonroot",
        "refused",
        Duration::from_secs(60),
        |p| {
            container_status(p, "main")
                .and_then(|c| c.state)
                .and_then(|s| s.waiting)
                .is_some_and(|w| w.reason.as_deref() == Some("CreateContainerConfigError"))
        },
    )
    .await;
    let waiting = container_status(&refused, "main")
        .and_then(|c| c.state)
        .and_then(|s| s.waiting)
        .expect("waiting");
    assert_eq!(
        waiting.message.as_deref(),
        Some(
            format!(
                "container has runAsNonRoot and image will run as root (pod: \"nonroot_default({})\", container: main)",
                non_root.metadata.uid.as_deref().expect("uid")
            )
            .as_str()
        )
    );

    for pod in [&confined, &host_pid, &non_root] {
        client
            .remove_pod(pb::PodRemoval {
                pod_uid: pod.metadata.uid.clone().expect("uid"),
                grace_period_seconds: Some(0),
            })
            .await
            .expect("remove");
    }
}

/// Admission and the node together: in a namespace enforcing `restricted`,
/// a plain pod is refused, and a compliant one (stored through the API,
/// run by a real kubelet) runs as uid 1000 with no capabilities, no
/// privilege escalation and the RuntimeDefault filter, as `kubectl exec`
/// shows.
#[tokio::test]
async fn a_restricted_namespace_runs_restricted_pods_confined() {
    use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
    if !kubectl_enabled("a_restricted_namespace_runs_restricted_pods_confined") {
        return;
    }
    let Some(env) = TestEnv::start("a_restricted_namespace_runs_restricted_pods_confined").await
    else {
        return;
    };
    let node = format!("n{}r", std::process::id());
    let cp = TestControlPlane::start().await;
    // Serving a certificate of the control plane's CA, so `kubectl exec`
    // through the API reaches it.
    let kubelet = TestKubelet::start_for(&env, &node, &cp).await;
    cp.kubectl_ok(&[
        "label",
        "ns",
        "default",
        "pod-security.kubernetes.io/enforce=restricted",
    ]);
    let plain = cp.manifest(
        "plain.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: plain}\nspec:\n  containers: [{name: main, image: busybox}]\n",
    );
    let err = cp.kubectl_err(&["apply", "-f", &plain]);
    assert!(
        err.contains("pods \"plain\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false"),
        "{err}"
    );

    let pod_yaml = format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: confined}}
spec:
  nodeName: {node}
  # This kubelet runs without a control plane to fetch a token from.
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: 1
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    seccompProfile: {{type: RuntimeDefault}}
  containers:
  - name: main
    image: busybox
    command: [sleep, "3600"]
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {{drop: [ALL]}}
"#
    );
    kubelet
        .run_stored_pod(&cp, &node, "confined", &pod_yaml)
        .await;
    wait_pod(
        &kubelet,
        "confined",
        "running",
        Duration::from_secs(60),
        |p| running(p, "main"),
    )
    .await;
    let status = cp.kubectl_ok(&["exec", "confined", "--", "cat", "/proc/1/status"]);
    assert_eq!(
        status_field(&status, "Uid").split_whitespace().next(),
        Some("1000")
    );
    assert_eq!(status_field(&status, "CapBnd"), "0000000000000000");
    assert_eq!(status_field(&status, "NoNewPrivs"), "1");
    assert_eq!(status_field(&status, "Seccomp"), "2");
    kubelet
        .client()
        .await
        .remove_pod(pb::PodRemoval {
            pod_uid: kubelet
                .pod("confined")
                .and_then(|p| p.metadata.uid)
                .expect("uid"),
            grace_period_seconds: Some(0),
        })
        .await
        .expect("remove");
}
