//! Running a command inside a running container (probes, `kubectl exec`).
//!
//! Output comes back through two FIFOs the shim writes into. Each FIFO is
//! opened for reading by a blocking thread *before* the process starts, so
//! the shim never blocks on it; EOF arrives when the shim closes its side.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use containerd_client::services::v1::{
    DeleteProcessRequest, ExecProcessRequest, KillRequest, StartRequest, WaitRequest,
};
use oci_spec::runtime::Spec;
use prost_types::Any;

use super::spec::PROCESS_TYPE_URL;
use super::{ContainerdRuntime, SIGKILL};
use crate::runtime::{ExecOutput, Result, RuntimeError};

/// Time allowed for the output readers to finish after the process exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

static NEXT_EXEC: AtomicU64 = AtomicU64::new(1);

fn mkfifo(path: &Path) -> std::io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Opens and closes the write side once, so a reader still blocked in
/// `open` (the process never started) wakes up with EOF.
fn release_reader(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
}

fn spawn_reader(path: PathBuf) -> tokio::task::JoinHandle<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        if let Ok(mut fifo) = std::fs::File::open(&path) {
            let _ = fifo.read_to_end(&mut out);
        }
        out
    })
}

/// Removes the FIFO directory however the exec ends.
struct FifoDir(PathBuf);

impl Drop for FifoDir {
    fn drop(&mut self) {
        for name in ["stdout", "stderr"] {
            release_reader(&self.0.join(name));
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub(super) async fn run(
    rt: &ContainerdRuntime,
    id: &str,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutput> {
    if command.is_empty() {
        return Err(RuntimeError::InvalidConfig {
            container: id.to_string(),
            reason: "exec needs a command".into(),
        });
    }
    let container = rt.get_container(id).await?;
    let spec_json = container.spec.map(|s| s.value).unwrap_or_default();
    let spec: Spec =
        serde_json::from_slice(&spec_json).map_err(|e| RuntimeError::InvalidConfig {
            container: id.to_string(),
            reason: format!("stored spec is unreadable: {e}"),
        })?;
    // The exec'd process shares the container's user, env, cwd and capabilities.
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(command.to_vec()));
    process.set_terminal(Some(false));
    let process_json = serde_json::to_vec(&process).map_err(|e| RuntimeError::InvalidConfig {
        container: id.to_string(),
        reason: e.to_string(),
    })?;

    let exec_id = format!(
        "exec-{}-{}",
        std::process::id(),
        NEXT_EXEC.fetch_add(1, Ordering::Relaxed)
    );
    let dir = rt.config.exec_dir.join(format!("{id}-{exec_id}"));
    std::fs::create_dir_all(&dir).map_err(|e| RuntimeError::io("cannot create", &dir, e))?;
    let fifos = FifoDir(dir.clone());
    let (stdout_path, stderr_path) = (dir.join("stdout"), dir.join("stderr"));
    for p in [&stdout_path, &stderr_path] {
        mkfifo(p).map_err(|e| RuntimeError::io("cannot create fifo", p, e))?;
    }
    let stdout = spawn_reader(stdout_path.clone());
    let stderr = spawn_reader(stderr_path.clone());

    let svc = &rt.svc;
    svc.tasks
        .clone()
        .exec(svc.req(ExecProcessRequest {
            container_id: id.to_string(),
            stdin: String::new(),
            stdout: stdout_path.display().to_string(),
            stderr: stderr_path.display().to_string(),
            terminal: false,
            spec: Some(Any {
                type_url: PROCESS_TYPE_URL.to_string(),
                value: process_json,
            }),
            exec_id: exec_id.clone(),
        }))
        .await
        .map_err(|s| match s.code() {
            tonic::Code::NotFound | tonic::Code::FailedPrecondition => {
                RuntimeError::NotRunning { id: id.to_string() }
            }
            _ => RuntimeError::rpc("Tasks.Exec", "", s),
        })?;

    let result = async {
        let wait_svc = svc.clone();
        let (wait_id, wait_exec) = (id.to_string(), exec_id.clone());
        let mut waiting = tokio::spawn(async move {
            wait_svc
                .tasks
                .clone()
                .wait(wait_svc.req(WaitRequest {
                    container_id: wait_id,
                    exec_id: wait_exec,
                }))
                .await
        });
        svc.tasks
            .clone()
            .start(svc.req(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("Tasks.Start (exec)", "", s))?;
        let waited = match tokio::time::timeout(timeout, &mut waiting).await {
            Ok(w) => w,
            Err(_) => {
                let _ = svc
                    .tasks
                    .clone()
                    .kill(svc.req(KillRequest {
                        container_id: id.to_string(),
                        exec_id: exec_id.clone(),
                        signal: SIGKILL,
                        all: false,
                    }))
                    .await;
                let _ = tokio::time::timeout(DRAIN_TIMEOUT, waiting).await;
                return Err(RuntimeError::Timeout {
                    operation: "exec",
                    id: id.to_string(),
                    seconds: timeout.as_secs_f64(),
                });
            }
        };
        let status = waited
            .map_err(|e| RuntimeError::Rpc {
                operation: "Tasks.Wait (exec)",
                status: Box::new(tonic::Status::internal(e.to_string())),
            })?
            .map_err(|s| RuntimeError::rpc("Tasks.Wait (exec)", "", s))?
            .into_inner();
        Ok(status.exit_status as i32)
    }
    .await;

    // The process is gone (or never ran): free the shim's side so the readers see EOF.
    let _ = svc
        .tasks
        .clone()
        .delete_process(svc.req(DeleteProcessRequest {
            container_id: id.to_string(),
            exec_id,
        }))
        .await;
    release_reader(&stdout_path);
    release_reader(&stderr_path);
    let stdout = tokio::time::timeout(DRAIN_TIMEOUT, stdout).await;
    let stderr = tokio::time::timeout(DRAIN_TIMEOUT, stderr).await;
    drop(fifos);
    let exit_code = result?;
    Ok(ExecOutput {
        exit_code,
        stdout: stdout.ok().and_then(Result::ok).unwrap_or_default(),
        stderr: stderr.ok().and_then(Result::ok).unwrap_or_default(),
    })
}
