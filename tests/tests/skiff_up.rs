//! `skiff up --nodes 2`: a whole cluster from one command, driven by the
//! real kubectl; `skiff node stop|start` for chaos; Ctrl-C cleans up.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skiff_tests::control_plane::{kubectl_enabled, kubectl_path};
use skiff_tests::{e2e_enabled, free_port, workspace_binary};

struct Cluster {
    dir: std::path::PathBuf,
    child: std::process::Child,
}

/// Processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(needle))
        .collect()
}

impl Cluster {
    fn kubectl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(kubectl_path().expect("kubectl"))
            .args(args)
            .env("KUBECONFIG", self.dir.join("kubeconfig"))
            .env("HOME", self.dir.join("home"))
            .output()
            .expect("kubectl");
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    }

    fn eventually(&self, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            let (ok, out) = self.kubectl(args);
            if ok && check(&out) {
                return out;
            }
            last = out;
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("timed out waiting for {what}: {last}");
    }

    fn node(&self, action: &str, name: &str) {
        let status = Command::new(workspace_binary("skiff"))
            .args(["node", action, name, "--data-dir"])
            .arg(&self.dir)
            .status()
            .expect("skiff node");
        assert!(status.success(), "skiff node {action} {name}");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
    }
}

#[test]
fn skiff_up_runs_a_cluster_kubectl_can_drive() {
    if !kubectl_enabled("skiff_up_runs_a_cluster_kubectl_can_drive")
        || !e2e_enabled("skiff_up_runs_a_cluster_kubectl_can_drive")
    {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-up-")
        .tempdir()
        .expect("tempdir");
    let dir = temp.path().to_path_buf();
    let port = free_port();
    let child = Command::new(workspace_binary("skiff"))
        .args([
            "up",
            "--nodes",
            "2",
            "--api-port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("skiff up");
    let cluster = Cluster {
        dir: dir.clone(),
        child,
    };
    let nodes = cluster.eventually(&["get", "nodes"], "two Ready nodes", |o| {
        o.matches(" Ready ").count() == 2
    });
    assert!(
        nodes.contains("node1") && nodes.contains("node2"),
        "{nodes}"
    );

    cluster.kubectl(&["label", "node", "node2", "disk=ssd"]);
    let pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: ssd-pod}\nspec:\n  nodeSelector: {disk: ssd}\n  containers: [{name: web, image: skiff.dev/webapp:v1}]\n";
    let file = cluster.dir.join("pod.yaml");
    std::fs::write(&file, pod).expect("write");
    let (ok, out) = cluster.kubectl(&["apply", "-f", &file.display().to_string()]);
    assert!(ok, "{out}");
    let wide = cluster.eventually(
        &["get", "pod", "ssd-pod", "-o", "wide"],
        "ssd-pod running",
        |o| o.contains("1/1") && o.contains("Running"),
    );
    assert!(wide.contains("node2"), "{wide}");

    let bare = "apiVersion: v1\nkind: Pod\nmetadata: {name: bare}\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 1\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n";
    std::fs::write(&file, bare).expect("write");
    assert!(
        cluster
            .kubectl(&["apply", "-f", &file.display().to_string()])
            .0
    );
    cluster.eventually(&["get", "pod", "bare"], "bare running", |o| {
        o.contains("Running")
    });

    cluster.node("stop", "node1");
    let stopped = Instant::now();
    cluster.eventually(&["get", "nodes"], "node1 NotReady", |o| {
        o.lines()
            .any(|l| l.starts_with("node1") && l.contains("NotReady"))
    });
    assert!(
        stopped.elapsed() < Duration::from_secs(8),
        "NotReady after {:?}",
        stopped.elapsed()
    );
    cluster.eventually(&["get", "pod", "bare"], "eviction", |o| {
        o.contains("Terminating")
    });
    cluster.node("start", "node1");
    cluster.eventually(&["get", "nodes"], "node1 Ready again", |o| {
        o.matches(" Ready ").count() == 2
    });
    cluster.eventually(
        &["get", "pods", "-o", "name"],
        "the evicted pod gone",
        |o| !o.contains("bare"),
    );
    let (_, pods) = cluster.kubectl(&["get", "pods"]);
    assert!(
        pods.contains("ssd-pod") && pods.contains("Running"),
        "{pods}"
    );

    drop(cluster);
    // Ctrl-C took everything down: containerd, shims, control plane, kubelets.
    let left = processes_mentioning(&dir.display().to_string());
    assert!(left.is_empty(), "processes left: {left:?}");
    drop(temp);
}
