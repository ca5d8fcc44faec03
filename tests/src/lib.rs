//! Test harness for Skiff's end-to-end tests and benchmarks.
//!
//! Every test gets its own containerd (own root, state, sockets and runc
//! root under a temporary directory, CRI disabled) and its own containerd
//! namespace, and stops it afterwards.
//!
//! Tests need root and containerd. On a machine without them they are
//! skipped with a message, unless `SKIFF_REQUIRE_E2E=1` is set (the README's
//! test command and CI set it): then a missing prerequisite is a failure.

pub mod api_tls;
pub mod cluster;
pub mod control_plane;
pub mod hollow;
pub mod kubectl;
pub mod kubelet;
pub mod leftovers;
pub mod server;
pub mod vm;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use skiff_images::ImageName;
use skiff_kubelet::runtime::containerd::{
    ContainerdConfig, ContainerdRuntime, ManagedContainerd, logger_next_to_current_exe,
};
use skiff_kubelet::runtime::{ContainerConfig, ContainerRuntime, LabelFilter};

/// Environment variable that turns skipped prerequisites into failures.
pub const REQUIRE_ENV: &str = "SKIFF_REQUIRE_E2E";

fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v == "true")
}

/// Why end-to-end tests cannot run here, if they cannot.
pub fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    for tool in ["containerd", "ctr", "runc"] {
        if which(tool).is_none() {
            return Some(format!(
                "`{tool}` not found (apt-get install containerd runc)"
            ));
        }
    }
    if logger_next_to_current_exe().is_none() {
        return Some("skiff-cri-logger is not built (run `cargo build --workspace --bins`)".into());
    }
    None
}

/// Returns `true` if the test may run; panics when prerequisites are
/// missing and [`REQUIRE_ENV`] is set.
pub fn e2e_enabled(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(reason) if required() => panic!("{test}: cannot run end-to-end test: {reason}"),
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason} (set {REQUIRE_ENV}=1 to make this a failure)");
            false
        }
    }
}

/// A binary of this workspace, built into the same target directory as the
/// running test (`cargo build --workspace --bins`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let path = profile_dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Finds a program on PATH.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// The catalog images, built once per test process.
pub fn image_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        if let Ok(dir) = std::env::var("SKIFF_IMAGE_DIR") {
            return PathBuf::from(dir);
        }
        // Next to the test binaries (`target/<profile>/skiff-test-images`), so
        // nothing is left in /tmp; tarballs are written atomically, so test
        // processes building at the same time do not disturb each other.
        let dir = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent()?.parent().map(|p| p.join("skiff-test-images")))
            .unwrap_or_else(|| std::env::temp_dir().join("skiff-test-images"));
        skiff_images::build_all(&skiff_images::Sources::default(), &dir, |_| {})
            .expect("building the catalog images");
        dir
    })
}

/// Path of a catalog image's tarball.
pub fn image_tarball(name: &str) -> PathBuf {
    let name = ImageName::parse(name).expect("valid image name");
    image_dir().join(skiff_images::catalog::tarball_file_name(&name))
}

/// Polls `check` every 50 ms until it returns `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A private containerd with a runtime connected to it.
pub struct TestEnv {
    /// The runtime under test.
    pub runtime: ContainerdRuntime,
    /// The containerd namespace the test uses.
    pub namespace: String,
    daemon: Option<ManagedContainerd>,
    // Declared last: removed after the daemon stopped.
    dir: tempfile::TempDir,
}

impl TestEnv {
    /// Starts containerd for `test`; `None` when the test is skipped.
    pub async fn start(test: &str) -> Option<Self> {
        if !e2e_enabled(test) {
            return None;
        }
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        let dir = tempfile::Builder::new()
            .prefix("skiff-e2e-")
            .tempdir()
            .expect("temp dir");
        let daemon = ManagedContainerd::start(&dir.path().join("containerd"))
            .await
            .unwrap_or_else(|e| panic!("{test}: containerd cannot start: {e}"));
        // Unique per environment: cgroup paths are `/<namespace>/<id>` and
        // tests of one process run in parallel.
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let namespace = format!("skiff-test-{}-{n}", std::process::id());
        let runtime = Self::connect_to(&daemon, &namespace, dir.path()).await;
        Some(Self {
            runtime,
            namespace,
            daemon: Some(daemon),
            dir,
        })
    }

    async fn connect_to(
        daemon: &ManagedContainerd,
        namespace: &str,
        dir: &Path,
    ) -> ContainerdRuntime {
        let logger = logger_next_to_current_exe().expect("skiff-cri-logger is built");
        let mut config =
            ContainerdConfig::new(daemon.socket(), namespace, logger, &dir.join("kubelet"));
        config.runc_root = Some(daemon.runc_root());
        ContainerdRuntime::connect(config)
            .await
            .expect("connect to containerd")
    }

    /// A second, independent connection (what a restarted kubelet gets).
    pub async fn reconnect(&self) -> ContainerdRuntime {
        let daemon = self.daemon.as_ref().expect("running");
        Self::connect_to(daemon, &self.namespace, self.dir.path()).await
    }

    /// The test's scratch directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The daemon's socket.
    pub fn socket(&self) -> PathBuf {
        self.daemon.as_ref().expect("running").socket()
    }

    /// The private runc state directory.
    pub fn runc_root(&self) -> PathBuf {
        self.daemon.as_ref().expect("running").runc_root()
    }

    /// Imports a catalog image and returns its name.
    pub async fn import(&self, name: &str) -> ImageName {
        let names = self
            .runtime
            .import_image(&image_tarball(name))
            .await
            .unwrap_or_else(|e| panic!("importing {name}: {e}"));
        let wanted = ImageName::parse(name).expect("valid");
        assert!(names.contains(&wanted), "{names:?} lacks {wanted}");
        wanted
    }

    /// A container config logging under the test directory.
    pub fn config(&self, id: &str, image: &ImageName) -> ContainerConfig {
        let mut c = ContainerConfig::new(
            id,
            image.clone(),
            self.dir().join("logs").join(format!("{id}.log")),
        );
        c.name = id.to_string();
        c.pod.uid = format!("uid-{id}");
        c.pod.namespace = "default".into();
        c.pod.name = format!("pod-{id}");
        c
    }

    /// `ctr` pointed at this daemon and namespace.
    fn ctr_command(socket: &Path, namespace: &str, args: &[&str]) -> Command {
        let mut command = Command::new("ctr");
        command
            .arg("--address")
            .arg(socket)
            .arg("--namespace")
            .arg(namespace)
            .args(args);
        command
    }

    /// Runs `ctr` against this daemon and namespace; returns stdout.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = Self::ctr_command(&self.socket(), &self.namespace, args)
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// First column of every row of a `ctr ... ls` table (header skipped).
    pub fn ctr_ids(&self, args: &[&str]) -> Vec<String> {
        self.ctr(args)
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .map(String::from)
            .collect()
    }

    /// Removes every Skiff container and stops containerd.
    pub async fn shutdown(mut self) {
        // Until none is left: a container a just-stopped kubelet asked for
        // (a crash-looping pod's restart) can appear after a first listing,
        // and its shim would outlive containerd.
        for _ in 0..5 {
            let mut ids: Vec<String> = self
                .runtime
                .list_containers(&LabelFilter::new())
                .await
                .map(|all| all.into_iter().map(|c| c.id).collect())
                .unwrap_or_default();
            // Containers a test made with plain `ctr` carry no Skiff labels.
            ids.extend(self.ctr_ids(&["containers", "ls"]));
            if ids.is_empty() {
                break;
            }
            for id in ids {
                let _ = self.runtime.remove_container(&id).await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        if let Some(daemon) = self.daemon.take() {
            daemon.stop().await;
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        // Reached with a running daemon only when a test panicked: kill what
        // it left so no shim or container outlives the test.
        if let Some(daemon) = self.daemon.take() {
            let socket = daemon.socket();
            let ctr = |args: &[&str]| Self::ctr_command(&socket, &self.namespace, args).output();
            if let Ok(out) = ctr(&["tasks", "ls", "-q"]) {
                for id in String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                {
                    let _ = ctr(&["tasks", "kill", "--all", "--signal", "SIGKILL", id]);
                    std::thread::sleep(Duration::from_millis(100));
                    let _ = ctr(&["tasks", "delete", "--force", id]);
                    let _ = ctr(&["containers", "delete", id]);
                }
            }
            drop(daemon);
        }
    }
}

/// A network namespace made for a test (`ip netns add`), deleted on drop.
pub struct TestNetns {
    name: String,
}

impl TestNetns {
    /// Creates a namespace with loopback up.
    pub fn create(prefix: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        let ok = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "ip netns add {name} failed");
        let ok = Command::new("ip")
            .args(["netns", "exec", &name, "ip", "link", "set", "lo", "up"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "bringing lo up in {name} failed");
        Self { name }
    }

    /// `/run/netns/<name>`, the path containers join.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }
}

impl Drop for TestNetns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .status();
    }
}

/// A minimal HTTP/1.1 client for tests: returns status code and body.
pub fn http(method: &str, addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    request(method, addr, path, "")
}

/// One HTTP/1.1 request with a JSON body (may be empty); returns status and body.
pub fn request(method: &str, addr: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    request_as(method, addr, path, "application/json", body)
}

/// One HTTP/1.1 request with a body of `content_type`; returns status and body.
pub fn request_as(
    method: &str,
    addr: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = api_tls::connect(addr, Duration::from_secs(10))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let raw = response.get(split + 4..).unwrap_or_default();
    let chunked = head
        .lines()
        .any(|l| l.to_ascii_lowercase().replace(' ', "") == "transfer-encoding:chunked");
    let body = if chunked { dechunk(raw) } else { raw.to_vec() };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The payload of a `Transfer-Encoding: chunked` body (streamed responses).
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&raw[..eol])
            .ok()
            .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok())
            .unwrap_or(0);
        let data = eol + 2;
        if size == 0 || data + size > raw.len() {
            break;
        }
        body.extend_from_slice(&raw[data..data + size]);
        raw = raw.get(data + size + 2..).unwrap_or_default();
    }
    body
}

/// A port free for TCP and UDP right now (see [`free_ports`]).
pub fn free_port() -> u16 {
    free_ports(1)
}

/// The first of `count` consecutive ports free for TCP and UDP (`skiff up`
/// listens on its API port and the two after it).
///
/// They come from 20000–29999, below the kernel's ephemeral range
/// (32768–60999) and the NodePort range (30000–32767), so no
/// outgoing connection on the machine can take one between this check and
/// the listener's bind (a CI run saw `skiff up` exit at start, most
/// likely so). A
/// counter keeps the threads of one test binary apart, the process id
/// keeps test binaries apart.
pub fn free_ports(count: u16) -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const FIRST: u32 = 20_000;
    // Up to 30000, where the NodePort range starts.
    const SPAN: u32 = 10_000;
    let count = u32::from(count.max(1));
    let offset = std::process::id().wrapping_mul(7_919) % SPAN;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(count, Ordering::Relaxed);
        let first = FIRST + (offset + step) % (SPAN - count);
        let free = (first..first + count).all(|port| {
            let Ok(port) = u16::try_from(port) else {
                return false;
            };
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
                && std::net::UdpSocket::bind(("0.0.0.0", port)).is_ok()
        });
        if free {
            return first as u16;
        }
    }
    panic!("no {count} consecutive free ports below the ephemeral range")
}
