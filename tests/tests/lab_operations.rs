//! Lab operations: a cluster never stays half-alive. `skiff up` cleans up on
//! SIGINT, SIGTERM and SIGHUP even when its output pipe is gone (`skiff up
//! | tee log`, Ctrl-C kills `tee` first); `skiff down` removes a cluster
//! whose `skiff up` was SIGKILLed; `skiff up` clears a dead cluster's
//! leftovers before starting and refuses a data dir whose cluster runs;
//! `skiff status` shows the parts and their health. "Nothing left" is
//! checked by [`leftovers::of_cluster`], independently of `skiff down`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use skiff_tests::cluster::SkiffUp;
use skiff_tests::control_plane::kubectl_enabled;
use skiff_tests::{e2e_enabled, free_ports, leftovers, workspace_binary};

fn enabled(test: &str) -> bool {
    kubectl_enabled(test) && e2e_enabled(test)
}

/// Runs `skiff down` on the data dir when the test ends, passed or not, so
/// a failing test leaves nothing running either.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let _ = skiff(&["down"], &self.0);
    }
}

fn skiff(args: &[&str], dir: &Path) -> Output {
    Command::new(workspace_binary("skiff"))
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("skiff")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("tempdir")
}

/// Runs a sleeping busybox pod on node1 (a shim, a container, a cgroup, a
/// pod namespace and a rootfs mount) and returns its namespace's name.
fn run_a_pod(cluster: &SkiffUp) -> String {
    cluster.kubectl_ok(&[
        "run",
        "sleeper",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sleep",
        "3600",
    ]);
    cluster.eventually(&["get", "pod", "sleeper"], "sleeper running", |o| {
        o.contains("Running")
    });
    let uid = cluster.kubectl_ok(&["get", "pod", "sleeper", "-o", "jsonpath={.metadata.uid}"]);
    leftovers::pod_netns("node1", uid.trim())
}

fn network_id(record: &serde_json::Value) -> u64 {
    record["network"]["id"].as_u64().expect("network id")
}

/// Whether `pid` still runs the program that named `dir` (a reused pid
/// would not).
fn runs_for(pid: u64, dir: &Path) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(&dir.display().to_string()))
        .unwrap_or(false)
}

/// How many processes run `program` with `needle` in their command line.
fn running(program: &str, needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(program) && c.contains(needle))
        .count()
}

fn kubelets_of(dir: &Path) -> usize {
    running(
        "skiff-kubelet",
        &format!("--state-dir {}/nodes/", dir.display()),
    )
}

/// Waits (30 s at most) until `ready` holds.
fn wait_for(what: &str, ready: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `skiff up` with stdout and stderr in a pipe whose reader is closed, as
/// `tee` is when the same Ctrl-C reaches it first; then `signal`.
fn stop_through_a_closed_pipe(test: &str, signal: i32) {
    if !enabled(test) {
        return;
    }
    let temp = temp_dir("skiff-labops-pipe-");
    let dir = temp.path().canonicalize().expect("dir");
    let _down = DownOnDrop(dir.clone());
    let (reader, writer) = std::io::pipe().expect("pipe");
    let mut cluster = SkiffUp::start_into(
        1,
        &dir,
        &[],
        Stdio::from(writer.try_clone().expect("pipe")),
        Stdio::from(writer),
    );
    let netns = run_a_pod(&cluster);
    let id = network_id(&cluster.record());
    let before = leftovers::of_cluster(&dir, id, std::slice::from_ref(&netns));
    for part in [
        "containerd-shim",
        "skiff-kubelet",
        "netns skiff",
        "link skiff",
        "table inet",
    ] {
        assert!(
            before.iter().any(|l| l.contains(part)),
            "{part} not seen while running: {before:#?}"
        );
    }
    drop(reader);
    let status = cluster.stop_with(signal).expect("skiff up exits");
    assert_eq!(status.code(), Some(0), "skiff up died: {status}");
    let left = leftovers::of_cluster(&dir, id, &[netns]);
    assert!(left.is_empty(), "left behind: {left:#?}");
    assert!(!dir.join("cluster.json").exists(), "record kept");
}

#[test]
fn ctrl_c_cleans_up_through_a_closed_output_pipe() {
    stop_through_a_closed_pipe(
        "ctrl_c_cleans_up_through_a_closed_output_pipe",
        libc::SIGINT,
    );
}

#[test]
fn sighup_and_sigterm_clean_up_through_a_closed_output_pipe() {
    stop_through_a_closed_pipe(
        "sighup_and_sigterm_clean_up_through_a_closed_output_pipe",
        libc::SIGHUP,
    );
    stop_through_a_closed_pipe(
        "sighup_and_sigterm_clean_up_through_a_closed_output_pipe",
        libc::SIGTERM,
    );
}

/// The half-alive cluster of the issue: `skiff up` SIGKILLed leaves its
/// control plane, kubelets, shims and network running. `skiff up` again
/// clears them before starting (no old kubelet beside the new one), and
/// `skiff down` removes a killed cluster completely, twice in a row.
#[test]
fn a_killed_cluster_is_cleared_by_skiff_up_and_removed_by_skiff_down() {
    if !enabled("a_killed_cluster_is_cleared_by_skiff_up_and_removed_by_skiff_down") {
        return;
    }
    let temp = temp_dir("skiff-labops-kill-");
    let dir = temp.path().canonicalize().expect("dir");
    let _down = DownOnDrop(dir.clone());
    let mut first = SkiffUp::start(1, &dir);
    let netns = run_a_pod(&first);
    let old = first.record();
    let old_kubelet = old["nodes"][0]["pid"].as_u64().expect("kubelet pid");
    let old_cp = old["control_plane_pid"]
        .as_u64()
        .expect("control plane pid");
    first.stop_with(libc::SIGKILL).expect("killed");
    assert!(
        runs_for(old_kubelet, &dir) && runs_for(old_cp, &dir),
        "the killed skiff up's kubelet and control plane run on"
    );
    // `skiff status` tells a dead cluster from a running one.
    let status = skiff(&["status"], &dir);
    let (out, _) = text(&status);
    assert!(!status.status.success(), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("skiff-up") && l.contains("Exited")),
        "{out}"
    );
    assert!(out.contains("skiff down --data-dir"), "{out}");

    let mut second = SkiffUp::start(1, &dir);
    assert!(
        !runs_for(old_kubelet, &dir),
        "the old kubelet {old_kubelet} runs beside the new one"
    );
    assert!(!runs_for(old_cp, &dir), "the old control plane runs on");
    // The store still says node1 is Ready from before, so kubectl may see
    // it before the new kubelet is started: wait for that one.
    wait_for("the new kubelet", || kubelets_of(&dir) > 0);
    assert_eq!(kubelets_of(&dir), 1, "one kubelet for one node");
    let id = network_id(&second.record());
    // The store kept the pod; the new node runs it again (its shim is the
    // sign: the stored status may still say Running from before).
    let socket = format!("-address {}/containerd/", dir.display());
    wait_for("sleeper's shim", || running("containerd-shim", &socket) > 0);
    let containerd = second.record()["containerd"]["pid"]
        .as_u64()
        .expect("containerd pid");
    second.stop_with(libc::SIGKILL).expect("killed");
    // containerd dies too (the shims and containers live on): `skiff down`
    // needs one to remove the containers as the kubelet would.
    assert!(runs_for(containerd, &dir), "containerd runs on");
    // SAFETY: kill has no preconditions; the pid runs this cluster's containerd.
    unsafe {
        libc::kill(containerd as i32, libc::SIGKILL);
    }
    assert!(
        !leftovers::of_cluster(&dir, id, std::slice::from_ref(&netns)).is_empty(),
        "a killed skiff up leaves its cluster"
    );

    let down = skiff(&["down"], &dir);
    let (out, err) = text(&down);
    assert!(down.status.success(), "{out}{err}");
    for removed in [
        "process/control-plane",
        "process/node1",
        "container/",
        "process/containerd started again",
        "process/containerd",
        &format!("netns/skiff{id}-node1 deleted"),
        &format!("link/skiff{id} deleted"),
        &format!("nftables/inet skiff{id} deleted"),
    ] {
        assert!(out.contains(removed), "{removed} not reported: {out}");
    }
    let left = leftovers::of_cluster(&dir, id, &[netns]);
    assert!(left.is_empty(), "left behind: {left:#?}");
    let again = skiff(&["down"], &dir);
    let (out, err) = text(&again);
    assert!(again.status.success(), "{out}{err}");
    assert!(out.contains("Nothing to remove"), "{out}");
}

/// A second `skiff up` on the data dir of a running cluster is refused,
/// naming the running one and `skiff down`, and touches nothing;
/// `skiff status` shows the parts healthy; `skiff down` stops the running
/// cluster through its `skiff up`, after which status shows none.
#[test]
fn a_running_cluster_refuses_a_second_skiff_up_and_shows_its_status() {
    if !enabled("a_running_cluster_refuses_a_second_skiff_up_and_shows_its_status") {
        return;
    }
    let temp = temp_dir("skiff-labops-status-");
    let dir = temp.path().canonicalize().expect("dir");
    let _down = DownOnDrop(dir.clone());
    let mut cluster = SkiffUp::start(1, &dir);
    let before = cluster.record();
    let id = network_id(&before);
    let second = Command::new(workspace_binary("skiff"))
        .args([
            "up",
            "--nodes",
            "1",
            "--api-port",
            &free_ports(3).to_string(),
        ])
        .arg("--data-dir")
        .arg(&dir)
        .output()
        .expect("skiff up");
    let (_, err) = text(&second);
    assert!(!second.status.success(), "{err}");
    assert!(err.contains("already running"), "{err}");
    assert!(err.contains(&format!("pid {}", cluster.pid())), "{err}");
    assert!(
        err.contains(&format!("skiff down --data-dir {}", dir.display())),
        "{err}"
    );
    assert_eq!(cluster.record(), before, "the record changed");
    let kubelet = before["nodes"][0]["pid"].as_u64().expect("kubelet pid");
    assert!(runs_for(kubelet, &dir), "the running kubelet was touched");
    cluster.eventually(&["get", "nodes"], "node1 still Ready", |o| {
        SkiffUp::node_shows(o, "node1", "Ready")
    });

    let status = skiff(&["status"], &dir);
    let (out, err) = text(&status);
    assert!(status.status.success(), "{out}{err}");
    let row = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} row: {out}"))
            .split_whitespace()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(row("COMPONENT")[..3], ["COMPONENT", "PID", "STATUS"]);
    assert_eq!(
        row("skiff-up")[1..3],
        [cluster.pid().to_string(), "Running".into()]
    );
    assert_eq!(row("control-plane")[2], "Healthy");
    assert_eq!(row("containerd")[2], "Running");
    assert_eq!(row("node1")[1..3], [kubelet.to_string(), "Ready".into()]);
    assert!(
        out.contains(&format!("KUBECONFIG: {}/kubeconfig", dir.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "127.0.0.1:{}",
            before["api"]
                .as_str()
                .and_then(|a| a.rsplit(':').next())
                .expect("api port")
        )),
        "{out}"
    );

    // A node frozen with `skiff node stop` shows as such, still exit 0.
    cluster.node("stop", "node1");
    let stopped = skiff(&["status"], &dir);
    let (out, _) = text(&stopped);
    assert!(stopped.status.success(), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("node1") && l.contains("Stopped")),
        "{out}"
    );
    cluster.node("start", "node1");

    // `skiff down` on a running cluster: `skiff up` stops and cleans up.
    let down = skiff(&["down"], &dir);
    let (out, err) = text(&down);
    assert!(down.status.success(), "{out}{err}");
    assert!(
        out.contains(&format!("process/skiff-up (pid {}) stopped", cluster.pid())),
        "{out}"
    );
    let exit = cluster.stop_with(libc::SIGKILL).expect("skiff up exited");
    assert!(exit.success(), "skiff up did not stop cleanly: {exit}");
    let status = skiff(&["status"], &dir);
    let (out, _) = text(&status);
    assert!(!status.status.success(), "{out}");
    assert!(out.contains("No cluster is running"), "{out}");
    let left = leftovers::of_cluster(&dir, id, &[]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}
