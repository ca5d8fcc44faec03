//! `skiff server` and `skiff agent` as processes, for tests of clusters of
//! machines on this one: the server on loopback with three free ports in a
//! row (API, nodes, DNS), agents started from a printed `skiff agent` line.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::workspace_binary;

/// A running `skiff server`.
pub struct SkiffServer {
    /// Its data folder (kubeconfig, pki, logs).
    pub dir: PathBuf,
    /// The `skiff agent --server ...` line it printed.
    pub agent_line: String,
    child: Child,
}

impl SkiffServer {
    /// Starts `skiff server --data-dir dir` on 127.0.0.1 and waits for its
    /// `skiff agent` line (printed once the API answers).
    pub fn start(dir: &Path) -> Self {
        let api_port = crate::free_ports(3);
        let mut child = Command::new(workspace_binary("skiff"))
            .args(["server", "--data-dir", &dir.display().to_string()])
            .args([
                "--listen-address",
                "127.0.0.1",
                "--advertise-address",
                "127.0.0.1",
            ])
            .args(["--api-port", &api_port.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("skiff server");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let agent_line = loop {
            let line = lines
                .next()
                .expect("skiff server ended before printing the agent line")
                .expect("read");
            if line.starts_with("skiff agent --server") {
                break line;
            }
        };
        // The rest of its output is not needed; keep the pipe drained.
        std::thread::spawn(move || for _ in lines {});
        Self {
            dir: dir.to_path_buf(),
            agent_line,
            child,
        }
    }

    /// The kubeconfig it wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// kubectl against it: stdout then stderr.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let out = Command::new(crate::control_plane::kubectl_path().expect("kubectl"))
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(args)
            .output()
            .expect("kubectl");
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    }

    /// Stops it as Ctrl-C would; fails the test if it does not stop.
    pub fn stop(mut self) {
        terminate(&mut self.child);
    }
}

/// Starts the `skiff agent` of a printed `line` (without its leading
/// `skiff`), with `dir` as its data folder and `extra` flags after.
pub fn start_agent(line: &str, dir: &Path, extra: &[&str]) -> Child {
    let mut words: Vec<String> = line
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect();
    let at = words
        .iter()
        .position(|w| w == "--data-dir")
        .expect("the agent line has --data-dir");
    words[at + 1] = dir.display().to_string();
    Command::new(workspace_binary("skiff"))
        .args(&words)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("skiff agent")
}

/// SIGTERM, then waits up to 60 s; fails the test if it does not stop.
pub fn terminate(child: &mut Child) {
    // SAFETY: kill only signals the process this test started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("did not stop within 60 s of SIGTERM");
}

/// Command lines of processes still running whose arguments name `path`.
pub fn running_under(path: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&path.display().to_string()))
        .collect()
}
