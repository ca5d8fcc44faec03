//! `kubectl logs` and `kubectl exec` through the control plane, proxied to a
//! real `skiff-kubelet` running the pod in a real container.
//!
//! Until nodes register themselves, the test plays the scheduler: it writes
//! the Node object (address and kubelet port) and hands the stored pod to
//! the kubelet over gRPC.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled, kubectl_path};
use skiff_tests::kubelet::{TestKubelet, container_status, wait_pod};

#[tokio::test]
async fn kubectl_logs_and_exec_reach_the_container() {
    if !kubectl_enabled("kubectl_logs_and_exec_reach_the_container") {
        return;
    }
    let Some(env) = TestEnv::start("kubectl_logs_and_exec_reach_the_container").await else {
        return;
    };
    let node = format!("n{}x", std::process::id());
    let cp = TestControlPlane::start().await;
    let kubelet = TestKubelet::start_for(&env, &node, &cp).await;
    let pod_yaml = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: talker}}\nspec:\n  nodeName: {node}\n  automountServiceAccountToken: false\n  containers:\n  - name: main\n    image: busybox\n    command: [sh, -c, 'echo hello from the pod; echo to stderr >&2; sleep 3600']\n  - name: side\n    image: busybox\n    command: [sleep, '3600']\n"
    );
    kubelet
        .run_stored_pod(&cp, &node, "talker", &pod_yaml)
        .await;
    wait_pod(
        &kubelet,
        "talker",
        "running",
        Duration::from_secs(30),
        |p| {
            ["main", "side"]
                .iter()
                .all(|c| container_status(p, c).is_some_and(|s| s.ready))
        },
    )
    .await;

    let out = cp.kubectl(&["logs", "talker", "-c", "main"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("hello from the pod") && text.contains("to stderr"),
        "{text}"
    );
    let out = cp.kubectl(&["logs", "talker"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Defaulted container \"main\" out of: main, side"),
        "{err}"
    );

    let out = cp.kubectl(&[
        "exec",
        "talker",
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("err") && err.contains("command terminated with exit code 3"),
        "{err}"
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        cp.kubectl_ok(&["exec", "talker", "-c", "side", "--", "hostname"])
            .trim(),
        "talker"
    );

    // `exec -i`: stdin reaches the command and its end is EOF (v5 close frame).
    let mut child = cp
        .kubectl_command(&[
            "exec",
            "-i",
            "talker",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "tr a-z A-Z; echo done",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl exec -i");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"hello through stdin\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("kubectl exec -i");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "HELLO THROUGH STDIN\ndone\n"
    );

    // `exec -it` under a pseudo-terminal (util-linux `script`): the command
    // sees a terminal of the caller's size, and typed input reaches it.
    let kubectl = kubectl_path().expect("kubectl");
    let mut script = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "stty cols 91 rows 37; {} exec -it talker -c main -- sh -c 'tty; stty size; read line; echo got:$line'",
            kubectl.display()
        ))
        .arg("/dev/null")
        .envs(
            cp.kubectl_command(&[])
                .get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("script");
    let mut stdin = script.stdin.take().expect("stdin");
    // Give the session time to start before typing, as a person would.
    std::thread::sleep(Duration::from_secs(3));
    stdin.write_all(b"typed\r").expect("type");
    let out = script.wait_with_output().expect("script");
    drop(stdin);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("/dev/pts/"),
        "no terminal in the container: {text}"
    );
    assert!(
        text.contains("37 91"),
        "terminal size not passed on: {text}"
    );
    assert!(text.contains("got:typed"), "typed input lost: {text}");

    let err = cp.kubectl_err(&["logs", "talker", "-c", "nope"]);
    assert!(
        err.contains("container nope is not valid for pod talker"),
        "{err}"
    );
    drop(kubelet);
    env.shutdown().await;
}
