//! `skiff-cri-logger`: writes a container's output to a CRI-format log file.
//!
//! containerd's shim starts it for every task whose stdio is
//! `binary://<this binary>?log=<path>`. It gets the container's stdout on
//! fd 3, stderr on fd 4 and a "ready" pipe on fd 5, and it belongs to the
//! shim, not to the kubelet: output keeps flowing while the kubelet restarts.
//!
//! Protocol rules that matter (see the shared containerd-logging notes):
//! - fd 5 must be closed once the log file is open, or task creation hangs;
//! - the shim closes the pipes and then sends SIGTERM at task delete, so
//!   SIGTERM is ignored and the pipes are drained to EOF (nothing is lost);
//! - query arguments arrive as `key value` pairs in random order;
//! - the environment is empty, and stdout/stderr are /dev/null.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::fd::FromRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use skiff_kubelet::logs::cri::{self, Stream};

const STDOUT_FD: i32 = 3;
const STDERR_FD: i32 = 4;
const READY_FD: i32 = 5;

fn fd_is_open(fd: i32) -> bool {
    // SAFETY: F_GETFD only queries the descriptor table.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

fn log_path_from_args() -> Option<PathBuf> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    args.chunks(2)
        .find(|pair| pair.first().map(String::as_str) == Some("log"))
        .and_then(|pair| pair.get(1))
        .map(PathBuf::from)
}

fn pump(fd: i32, stream: Stream, file: Arc<Mutex<File>>) {
    // SAFETY: the shim hands us this descriptor and nothing else in this
    // process uses it.
    let pipe = unsafe { File::from_raw_fd(fd) };
    let mut reader = BufReader::with_capacity(64 * 1024, pipe);
    let mut line = Vec::with_capacity(4096);
    let mut record = Vec::with_capacity(4096);
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return,
            Ok(_) => {
                let content = line.strip_suffix(b"\n").unwrap_or(&line);
                record.clear();
                cri::encode_line(Utc::now(), stream, content, &mut record);
                let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
                // One write per line keeps the two streams' records whole.
                if f.write_all(&record).is_err() {
                    eprintln!("skiff-cri-logger: write failed; dropping output");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
    }
}

fn main() {
    // SAFETY: setting a signal disposition to SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let ready = fd_is_open(READY_FD);
    let close_ready = || {
        if ready {
            // SAFETY: fd 5 is the shim's ready pipe and is closed exactly once.
            unsafe {
                libc::close(READY_FD);
            }
        }
    };
    if !fd_is_open(STDOUT_FD) || !fd_is_open(STDERR_FD) {
        close_ready();
        eprintln!("skiff-cri-logger: expects container stdout on fd 3 and stderr on fd 4");
        std::process::exit(2);
    }
    let Some(path) = log_path_from_args() else {
        close_ready();
        eprintln!("skiff-cri-logger: missing `log <path>` argument");
        std::process::exit(2);
    };
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(&path)
        .or_else(|_| OpenOptions::new().write(true).open("/dev/null"));
    let file = match file {
        Ok(f) => Arc::new(Mutex::new(f)),
        Err(_) => {
            close_ready();
            std::process::exit(1);
        }
    };
    close_ready();

    let stderr_file = Arc::clone(&file);
    let stderr_pump = std::thread::spawn(move || pump(STDERR_FD, Stream::Stderr, stderr_file));
    pump(STDOUT_FD, Stream::Stdout, file);
    let _ = stderr_pump.join();
}
