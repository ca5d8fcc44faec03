//! A whole `skiff up --nodes N` cluster for tests and benches, driven with
//! the real kubectl through the kubeconfig it writes; Ctrl-C (SIGINT) on
//! drop, as a user stops it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{kubectl, workspace_binary};

/// A running `skiff up`.
pub struct SkiffUp {
    dir: PathBuf,
    child: Child,
}

impl SkiffUp {
    /// Starts `skiff up --nodes nodes` with its data in `dir` and waits
    /// until kubectl sees every node Ready.
    pub fn start(nodes: usize, dir: &Path) -> Self {
        Self::start_with(nodes, dir, &[])
    }

    /// Like [`Self::start`], with more `skiff up` flags.
    pub fn start_with(nodes: usize, dir: &Path, flags: &[&str]) -> Self {
        Self::start_into(nodes, dir, flags, Stdio::piped(), Stdio::null())
    }

    /// Like [`Self::start_with`], with `skiff up`'s stdout and stderr going
    /// where the caller says (a pipe it closes later, nowhere, ...).
    pub fn start_into(
        nodes: usize,
        dir: &Path,
        flags: &[&str],
        stdout: Stdio,
        stderr: Stdio,
    ) -> Self {
        let api_port = crate::free_ports(3);
        let child = Command::new(workspace_binary("skiff"))
            .args([
                "up",
                "--nodes",
                &nodes.to_string(),
                "--api-port",
                &api_port.to_string(),
            ])
            .args(flags)
            .arg("--data-dir")
            .arg(dir)
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("skiff up");
        let mut cluster = Self {
            dir: dir.to_path_buf(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (ok, out) = cluster.kubectl(&["get", "nodes"]);
            if ok && out.matches(" Ready ").count() == nodes {
                // Hand-made requests (benchmarks) reach its API as admin.
                crate::api_tls::trust(&format!("127.0.0.1:{api_port}"), &dir.join("pki"));
                return cluster;
            }
            let exited = cluster.child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                // What `skiff up` and the control plane said, to tell a
                // start that failed from one that is slow.
                let mut said = String::new();
                if let Some(stdout) = cluster.child.stdout.as_mut() {
                    use std::io::Read;
                    if exited.is_some() {
                        let _ = stdout.read_to_string(&mut said);
                    }
                }
                let log =
                    std::fs::read_to_string(dir.join("logs/control-plane.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "skiff up did not get {nodes} node(s) Ready (exit: {exited:?}): {out}\n\
                     skiff up said: {said}\ncontrol-plane log tail:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `skiff up`'s pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to `skiff up` and waits (60 s at most) until it has
    /// exited; its exit status, `None` when it did not exit.
    pub fn stop_with(&mut self, signal: i32) -> Option<std::process::ExitStatus> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Some(status);
        }
        // SAFETY: signalling our own child, not yet reaped.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs kubectl against the cluster: success and stdout+stderr.
    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        kubectl::run(&self.dir.join("kubeconfig"), &self.dir.join("home"), args)
    }

    /// Runs kubectl and panics unless it succeeds.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.kubectl(args);
        assert!(ok, "kubectl {args:?} failed: {out}");
        out
    }

    /// Repeats kubectl until `check` accepts its output (60 s at most).
    pub fn eventually(&self, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
        self.eventually_since(args, what, check).0
    }

    /// Like `eventually`, also returning when the kubectl call that saw it
    /// began.
    pub fn eventually_since(
        &self,
        args: &[&str],
        what: &str,
        check: impl Fn(&str) -> bool,
    ) -> (String, Instant) {
        let limit = Duration::from_secs(60);
        kubectl::eventually(|| self.kubectl(args), what, limit, check)
    }

    /// The cluster record `skiff up` keeps (`DIR/cluster.json`).
    pub fn record(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.dir.join("cluster.json")).expect("cluster.json");
        serde_json::from_str(&text).expect("cluster.json is JSON")
    }

    /// Whether `node`'s line in `kubectl get nodes` shows `status`.
    pub fn node_shows(out: &str, node: &str, status: &str) -> bool {
        out.lines().any(|l| {
            l.split_whitespace().next() == Some(node) && l.split_whitespace().nth(1) == Some(status)
        })
    }

    /// `skiff node ACTION NAME` on this cluster (stop, start, kill,
    /// partition, heal).
    pub fn node(&self, action: &str, name: &str) {
        let status = Command::new(workspace_binary("skiff"))
            .args(["node", action, name, "--data-dir"])
            .arg(&self.dir)
            .status()
            .expect("skiff node");
        assert!(status.success(), "skiff node {action} {name}");
    }
}

impl Drop for SkiffUp {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: signalling our own child, not yet reaped.
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
