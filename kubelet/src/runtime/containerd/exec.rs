//! Running a command inside a running container (probes, `kubectl exec`).
//!
//! Output comes back through FIFOs the shim writes into. Each FIFO is
//! opened for reading by a blocking thread *before* the process starts, so
//! the shim never blocks on it; EOF arrives when the shim closes its side.
//! Stdin is a FIFO too: closing our write side gives the process EOF. With a
//! terminal the shim owns a pty, merges stderr into stdout and takes resizes.

use std::ffi::CString;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, KillRequest, ResizePtyRequest,
    StartRequest, WaitRequest,
};
use oci_spec::runtime::Spec;
use prost_types::Any;

use super::spec::PROCESS_TYPE_URL;
use super::{ContainerdRuntime, SIGKILL};
use tokio::sync::mpsc;

use super::client::Services;
use crate::runtime::{
    ExecEvent, ExecInput, ExecOptions, ExecOutput, ExecSession, Result, RuntimeError,
};

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

/// Opens and closes the other side once, so our end still blocked in
/// `open` (the process never started) wakes up: a reader sees EOF, a writer
/// gets EPIPE on its first write.
fn release(path: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    if path.ends_with("stdin") {
        options.read(true);
    } else {
        options.write(true);
    }
    let _ = options.custom_flags(libc::O_NONBLOCK).open(path);
}

/// Streams one output FIFO into the session's events until EOF.
fn spawn_reader(
    path: PathBuf,
    tx: mpsc::Sender<ExecEvent>,
    wrap: fn(Vec<u8>) -> ExecEvent,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let Ok(mut fifo) = std::fs::File::open(&path) else {
            return;
        };
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match fifo.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    // A gone receiver ends the session; keep draining so the shim never blocks.
                    let _ = tx.blocking_send(wrap(buf[..n].to_vec()));
                }
            }
        }
    })
}

/// Our side of the stdin FIFO: chunks go to a blocking writer thread.
struct StdinWriter {
    chunks: std::sync::mpsc::Sender<Vec<u8>>,
    done: tokio::task::JoinHandle<()>,
}

/// Copies stdin chunks into the FIFO until the sender is dropped.
fn spawn_writer(path: PathBuf) -> StdinWriter {
    let (chunks, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let done = tokio::task::spawn_blocking(move || {
        let Ok(mut fifo) = std::fs::OpenOptions::new().write(true).open(&path) else {
            return;
        };
        while let Ok(chunk) = rx.recv() {
            if fifo.write_all(&chunk).is_err() {
                return;
            }
        }
    });
    StdinWriter { chunks, done }
}

/// Removes the FIFO directory however the exec ends.
struct FifoDir(PathBuf);

impl Drop for FifoDir {
    fn drop(&mut self) {
        for name in ["stdin", "stdout", "stderr"] {
            release(&self.0.join(name));
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Runs `command` to completion without stdin and collects its output; the
/// process is killed when `timeout` passes (probes, plain `kubectl exec`).
pub(super) async fn run(
    rt: &ContainerdRuntime,
    id: &str,
    command: &[String],
    timeout: Duration,
) -> Result<ExecOutput> {
    let options = ExecOptions {
        command: command.to_vec(),
        ..ExecOptions::default()
    };
    let mut session = start(rt, id, options).await?;
    let mut out = ExecOutput {
        exit_code: -1,
        stdout: Vec::new(),
        stderr: Vec::new(),
    };
    let collect = async {
        while let Some(event) = session.events.recv().await {
            match event {
                ExecEvent::Stdout(b) => out.stdout.extend(b),
                ExecEvent::Stderr(b) => out.stderr.extend(b),
                ExecEvent::Exited(code) => return Some(code),
            }
        }
        None
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok(Some(code)) => {
            out.exit_code = code;
            Ok(out)
        }
        Ok(None) => Err(RuntimeError::Rpc {
            operation: "Tasks.Wait (exec)",
            status: Box::new(tonic::Status::internal("exec ended without an exit status")),
        }),
        // Dropping the session kills the process.
        Err(_) => Err(RuntimeError::Timeout {
            operation: "exec",
            id: id.to_string(),
            seconds: timeout.as_secs_f64(),
        }),
    }
}

/// Starts an exec whose input and output stream through the returned session.
pub(super) async fn start(
    rt: &ContainerdRuntime,
    id: &str,
    options: ExecOptions,
) -> Result<ExecSession> {
    if options.command.is_empty() {
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
    process.set_args(Some(options.command.clone()));
    process.set_terminal(Some(options.tty));
    if let (true, Some((width, height))) = (options.tty, options.size)
        && let Ok(size) = oci_spec::runtime::BoxBuilder::default()
            .width(u64::from(width))
            .height(u64::from(height))
            .build()
    {
        process.set_console_size(Some(size));
    }
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
    let path_of = |name: &str, wanted: bool| wanted.then(|| dir.join(name));
    let stdin_path = path_of("stdin", options.stdin);
    let stdout_path = dir.join("stdout");
    // A terminal has one output stream.
    let stderr_path = path_of("stderr", !options.tty);
    for p in [
        Some(&stdout_path),
        stdin_path.as_ref(),
        stderr_path.as_ref(),
    ]
    .into_iter()
    .flatten()
    {
        mkfifo(p).map_err(|e| RuntimeError::io("cannot create fifo", p, e))?;
    }
    let (events_tx, events) = mpsc::channel(64);
    let mut readers = vec![spawn_reader(
        stdout_path.clone(),
        events_tx.clone(),
        ExecEvent::Stdout,
    )];
    if let Some(p) = &stderr_path {
        readers.push(spawn_reader(
            p.clone(),
            events_tx.clone(),
            ExecEvent::Stderr,
        ));
    }
    let stdin_writer = stdin_path.clone().map(spawn_writer);
    let display = |p: Option<&PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();

    let svc = rt.svc.clone();
    let started = async {
        svc.tasks
            .clone()
            .exec(svc.req(ExecProcessRequest {
                container_id: id.to_string(),
                stdin: display(stdin_path.as_ref()),
                stdout: display(Some(&stdout_path)),
                stderr: display(stderr_path.as_ref()),
                terminal: options.tty,
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
        // Waiting must begin before the start, or a quick exit is missed.
        let wait_svc = svc.clone();
        let (wait_id, wait_exec) = (id.to_string(), exec_id.clone());
        let waiting = tokio::spawn(async move {
            wait_svc
                .tasks
                .clone()
                .wait(wait_svc.req(WaitRequest {
                    container_id: wait_id,
                    exec_id: wait_exec,
                }))
                .await
                .map(|r| r.into_inner().exit_status as i32)
        });
        if let Err(s) = svc
            .tasks
            .clone()
            .start(svc.req(StartRequest {
                container_id: id.to_string(),
                exec_id: exec_id.clone(),
            }))
            .await
        {
            waiting.abort();
            delete_process(&svc, id, &exec_id).await;
            return Err(RuntimeError::rpc("Tasks.Start (exec)", "", s));
        }
        Ok(waiting)
    }
    .await;
    // On failure `fifos` drops here and wakes every blocked reader and writer.
    let waiting = started?;

    let (input, input_rx) = mpsc::channel(64);
    tokio::spawn(forward_input(
        svc.clone(),
        id.to_string(),
        exec_id.clone(),
        input_rx,
        stdin_writer,
    ));
    tokio::spawn(supervise(
        svc,
        id.to_string(),
        exec_id,
        waiting,
        readers,
        events_tx,
        fifos,
    ));
    Ok(ExecSession { input, events })
}

/// Feeds the caller's input to the process until the caller hangs up.
async fn forward_input(
    svc: Services,
    id: String,
    exec_id: String,
    mut input: mpsc::Receiver<ExecInput>,
    mut stdin: Option<StdinWriter>,
) {
    while let Some(message) = input.recv().await {
        match message {
            ExecInput::Stdin(bytes) => {
                if let Some(w) = &stdin {
                    let _ = w.chunks.send(bytes);
                }
            }
            ExecInput::CloseStdin => {
                if let Some(writer) = stdin.take() {
                    // Everything written must reach the FIFO before it closes.
                    drop(writer.chunks);
                    let _ = writer.done.await;
                    // The shim keeps its own handle on the FIFO, so our close
                    // alone is no EOF; CloseIO makes the process see it.
                    let _ = svc
                        .tasks
                        .clone()
                        .close_io(svc.req(CloseIoRequest {
                            container_id: id.clone(),
                            exec_id: exec_id.clone(),
                            stdin: true,
                        }))
                        .await;
                }
            }
            ExecInput::Resize(width, height) => {
                let _ = svc
                    .tasks
                    .clone()
                    .resize_pty(svc.req(ResizePtyRequest {
                        container_id: id.clone(),
                        exec_id: exec_id.clone(),
                        width: u32::from(width),
                        height: u32::from(height),
                    }))
                    .await;
            }
        }
    }
}

/// Waits for the process (killing it if the caller goes away), drains its
/// output, reports the exit code last and cleans up the shim's record.
async fn supervise(
    svc: Services,
    id: String,
    exec_id: String,
    mut waiting: tokio::task::JoinHandle<std::result::Result<i32, tonic::Status>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
    events: mpsc::Sender<ExecEvent>,
    fifos: FifoDir,
) {
    let waited = tokio::select! {
        w = &mut waiting => w,
        _ = events.closed() => {
            let _ = svc
                .tasks
                .clone()
                .kill(svc.req(KillRequest {
                    container_id: id.clone(),
                    exec_id: exec_id.clone(),
                    signal: SIGKILL,
                    all: false,
                }))
                .await;
            tokio::time::timeout(DRAIN_TIMEOUT, &mut waiting)
                .await
                .unwrap_or_else(|_| Ok(Ok(-1)))
        }
    };
    delete_process(&svc, &id, &exec_id).await;
    // The shim has closed its side now; readers finish at EOF.
    for reader in readers {
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, reader).await;
    }
    drop(fifos);
    let code = match waited {
        Ok(Ok(code)) => code,
        Ok(Err(status)) => {
            tracing::warn!(container = %id, exec = %exec_id, error = %status, "waiting for exec failed");
            -1
        }
        Err(_) => -1,
    };
    let _ = events.send(ExecEvent::Exited(code)).await;
}

async fn delete_process(svc: &Services, id: &str, exec_id: &str) {
    let _ = svc
        .tasks
        .clone()
        .delete_process(svc.req(DeleteProcessRequest {
            container_id: id.to_string(),
            exec_id: exec_id.to_string(),
        }))
        .await;
}
