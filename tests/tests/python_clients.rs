//! Clients people use besides kubectl, driven against a real control plane
//! and a real kubelet on containerd: the official Python client, kr8s,
//! lightkube and Helm (helm-python-sdk). Each client is a script under
//! `tests/clients/` (installed into `.venv` by `scripts/setup.sh`) that
//! prints `PASS`/`FAIL` per check and exits non-zero on any failure; the
//! test shows its whole output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

/// Runs `tests/clients/<script>` with the venv's Python against a fresh
/// cluster of one node; fails with the script's output.
async fn run_client(test: &str, script: &str) {
    if !kubectl_enabled(test) {
        return;
    }
    let python = repo().join(".venv/bin/python");
    assert!(
        python.is_file(),
        "{test}: {} is missing: run scripts/setup.sh",
        python.display()
    );
    let Some(env) = TestEnv::start(test).await else {
        return;
    };
    let cp = TestControlPlane::start().await;
    let node = format!("n{}{}", std::process::id(), &script[..2]);
    let kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(" Ready ")
    });
    let started = Instant::now();
    let out = Command::new(&python)
        .arg("-u")
        .arg(repo().join("tests/clients").join(script))
        .env("KUBECONFIG", cp.data_dir().join("kubeconfig"))
        .env("HOME", cp.scratch().join("home"))
        .current_dir(cp.scratch())
        .output()
        .expect("run the client script");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let ok = out.status.success();
    if ok {
        // Shown with --nocapture; a failure shows it in the panic.
        println!("{script} ({:.0?}):\n{text}", started.elapsed());
    }
    drop(kubelet);
    env.shutdown().await;
    assert!(
        ok,
        "{script} failed ({}):\n{text}\ncontrol plane log (tail):\n{}",
        out.status,
        tail(&cp.log(), 40)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[tokio::test]
async fn the_official_python_client_works() {
    run_client("the_official_python_client_works", "python_kubernetes.py").await;
}

#[tokio::test]
async fn kr8s_works() {
    run_client("kr8s_works", "kr8s_client.py").await;
}

#[tokio::test]
async fn lightkube_works() {
    run_client("lightkube_works", "lightkube_client.py").await;
}

#[tokio::test]
async fn helm_installs_upgrades_rolls_back_and_uninstalls() {
    run_client(
        "helm_installs_upgrades_rolls_back_and_uninstalls",
        "helm_client.py",
    )
    .await;
}
