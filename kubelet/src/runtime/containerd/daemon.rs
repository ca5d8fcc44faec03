//! A private containerd: Skiff's own daemon with its own root, state,
//! sockets and config, so it never touches a containerd the host already
//! runs (Debian's default config enables CRI and shares `/opt/containerd`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use containerd_client::services::v1::version_client::VersionClient;
use tokio::process::{Child, Command};

/// How long containerd gets to answer on its socket after starting.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// Why a private containerd could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Preparing its directories or config failed.
    #[error("cannot prepare {}: {source}", path.display())]
    Prepare {
        /// The file or directory.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The binary could not be run.
    #[error("cannot run {binary}: {source} (install it with `apt-get install containerd runc`)")]
    Spawn {
        /// The containerd binary.
        binary: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// It started but never answered, or exited.
    #[error("containerd did not become ready: {reason}; see {}", log.display())]
    NotReady {
        /// What was observed.
        reason: String,
        /// Its log file.
        log: PathBuf,
    },
}

/// A running private containerd. Dropping it kills the daemon; call
/// [`ManagedContainerd::stop`] for a clean shutdown.
pub struct ManagedContainerd {
    dir: PathBuf,
    child: Option<Child>,
}

impl ManagedContainerd {
    /// Starts containerd with everything under `dir` and waits until it
    /// answers. The binary is `$SKIFF_CONTAINERD` or `containerd` on PATH.
    pub async fn start(dir: &Path) -> Result<Self, DaemonError> {
        let prepare = |path: &Path, source| DaemonError::Prepare {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|e| prepare(dir, e))?;
        let dir = dir.canonicalize().map_err(|e| prepare(dir, e))?;
        let config = dir.join("config.toml");
        std::fs::write(&config, config_toml(&dir)).map_err(|e| prepare(&config, e))?;
        let log_path = dir.join("containerd.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| prepare(&log_path, e))?;
        let log_err = log.try_clone().map_err(|e| prepare(&log_path, e))?;
        let socket = dir.join("containerd.sock");
        let _ = std::fs::remove_file(&socket);

        let binary = std::env::var("SKIFF_CONTAINERD").unwrap_or_else(|_| "containerd".to_string());
        let mut command = Command::new(&binary);
        command
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .kill_on_drop(true);
        // Own process group: a Ctrl-C meant for Skiff must not reach containerd
        // (and through it the shims) before Skiff has cleaned up.
        command.process_group(0);
        let child = command
            .spawn()
            .map_err(|source| DaemonError::Spawn { binary, source })?;
        let mut daemon = Self {
            dir: dir.clone(),
            child: Some(child),
        };
        daemon.wait_ready(&log_path).await?;
        Ok(daemon)
    }

    async fn wait_ready(&mut self, log: &Path) -> Result<(), DaemonError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let not_ready = |reason: String| DaemonError::NotReady {
            reason,
            log: log.to_path_buf(),
        };
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(not_ready(format!("it exited with {status}")));
            }
            if self.socket().exists()
                && let Ok(channel) = containerd_client::connect(self.socket()).await
                && VersionClient::new(channel).version(()).await.is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(not_ready(format!(
                    "no answer within {}s",
                    START_TIMEOUT.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    /// Directory holding root, state, sockets and log.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A private runc state directory for containers of this daemon.
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    /// The daemon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("containerd.log")
    }

    /// Host pid of the daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Sends SIGTERM and waits for the daemon to exit (SIGKILL after 10 s).
    /// Running containers keep running under their shims: remove them first.
    pub async fn stop(mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                // SAFETY: signalling our own child process.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

impl Drop for ManagedContainerd {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}

/// containerd's configuration: CRI and unusable snapshotters off, every
/// path inside `dir`.
fn config_toml(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[debug]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_keeps_everything_inside_the_directory() {
        let text = config_toml(Path::new("/tmp/skiff-x"));
        for key in ["root =", "state =", "address =", "path ="] {
            for line in text.lines().filter(|l| l.trim_start().starts_with(key)) {
                assert!(
                    line.contains("/tmp/skiff-x") || line.contains("\"\""),
                    "{line} escapes the directory"
                );
            }
        }
        assert!(text.contains("io.containerd.grpc.v1.cri"));
    }
}
