//! A process `skiff up` started, recorded by pid *and* start time (and the
//! boot it ran in), so signalling it later never reaches another program
//! that was given the same pid after it exited.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::network;

/// A process as `skiff up` recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessId {
    /// Its pid.
    pub pid: u32,
    /// Field 22 of `/proc/<pid>/stat`: clock ticks after boot when it
    /// started. A recycled pid has a later one.
    pub start_time: u64,
}

/// The kernel's id of the current boot: start times count from boot, so a
/// record from an earlier boot names no live process.
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `(state, start_time)` from `/proc/<pid>/stat`. The command name in
/// parentheses may hold spaces and parentheses: fields are counted after
/// the last `)`.
fn stat(pid: u32) -> Option<(char, u64)> {
    let text =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    let (_, rest) = text.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); starttime is field 22.
    let state = fields.first()?.chars().next()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, start))
}

impl ProcessId {
    /// The live process `pid`, with its start time; `None` when there is none.
    pub fn of(pid: u32) -> Option<Self> {
        if pid == 0 {
            return None;
        }
        let (_, start_time) = stat(pid)?;
        Some(Self { pid, start_time })
    }

    /// This process.
    pub fn current() -> Option<Self> {
        Self::of(std::process::id())
    }

    /// Whether the recorded process still runs: same pid, same start time,
    /// and not a zombie (a child that exited but was not waited for is gone
    /// for every purpose here).
    pub fn is_running(&self) -> bool {
        self.pid > 0
            && matches!(stat(self.pid), Some((state, start)) if start == self.start_time && state != 'Z' && state != 'X')
    }

    /// Sends `sig` if (and only if) the recorded process still runs.
    pub fn signal(&self, sig: i32) -> bool {
        if !self.is_running() {
            return false;
        }
        let Ok(pid) = i32::try_from(self.pid) else {
            return false;
        };
        // SAFETY: kill has no memory-safety preconditions; the pid was just
        // checked to be the recorded process.
        unsafe { libc::kill(pid, sig) == 0 }
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.is_running() {
            if Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// SIGTERM, `grace` to exit, then SIGKILL (a stopped process is
    /// continued first, or SIGTERM would wait for ever). `true` if it ran.
    pub async fn stop(&self, grace: Duration) -> bool {
        if !self.is_running() {
            return false;
        }
        self.signal(libc::SIGCONT);
        if grace > Duration::ZERO {
            self.signal(libc::SIGTERM);
            if self.wait_exit(grace).await {
                return true;
            }
        }
        self.signal(libc::SIGKILL);
        self.wait_exit(Duration::from_secs(5)).await;
        true
    }
}

/// Every live pid on the machine.
pub fn all_pids() -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

/// A process's command line, arguments joined by spaces.
pub fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")).ok()?;
    Some(
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim()
            .to_string(),
    )
}

/// One of Skiff's binaries, next to this `skiff`.
pub(crate) fn sibling(binary: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .map(|d| d.join(binary))
        .context("no executable folder")?;
    if !path.is_file() {
        bail!(
            "{} not found next to skiff (cargo build --release --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) fn spawn(
    binary: &Path,
    args: &[String],
    log: &Path,
    netns: Option<&Path>,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
    if let Some(netns) = netns {
        network::enter_netns(&mut command, netns.to_path_buf())?;
    }
    Ok(command.spawn()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_running_and_a_later_start_time_is_another_one() {
        let me = ProcessId::current().expect("own stat");
        assert!(me.is_running());
        let recycled = ProcessId {
            start_time: me.start_time + 1,
            ..me
        };
        assert!(!recycled.is_running());
        assert!(!recycled.signal(0), "a recycled pid must not be signalled");
        assert!(
            !ProcessId {
                pid: 0,
                start_time: 0
            }
            .is_running()
        );
    }

    #[tokio::test]
    async fn an_exited_child_is_not_running() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("sleep");
        let id = ProcessId::of(child.id()).expect("child stat");
        assert!(id.is_running());
        assert!(id.stop(Duration::from_secs(2)).await);
        // Not waited for yet: a zombie, which counts as gone.
        assert!(!id.is_running());
        child.wait().expect("reap");
        assert!(!id.is_running());
        assert!(!boot_id().is_empty());
    }
}
