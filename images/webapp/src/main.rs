//! `skiff-webapp`: the server inside `skiff.dev/webapp:v1` and `:v2`.
//!
//! | request        | answer                                                        |
//! |----------------|---------------------------------------------------------------|
//! | `GET /`        | `webapp <version> on <hostname>`                              |
//! | `GET /health`  | 200 until made unhealthy (`POST /fail`, `FAIL_AFTER_SECONDS`) |
//! | `GET /ready`   | 200 once `READY_AFTER_SECONDS` passed, 503 after `POST /unready` |
//! | `POST /fail`, `POST /recover`, `POST /unready`, `POST /ready` | flip the switches |
//!
//! Environment: `PORT` (default 8080), `WEBAPP_VERSION` (set by the image),
//! `FAIL_AFTER_SECONDS`, `READY_AFTER_SECONDS`. Every request is logged to
//! stdout so `kubectl logs` has something to show. SIGTERM ends it with 0, as a
//! well-behaved server should, so graceful termination can be observed.
//!
//! `webapp api-get PATH` instead GETs the Kubernetes API from inside a pod
//! with the pod's ServiceAccount token ([`api_get`]).

mod api_get;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Switches shared by all connection threads.
struct Health {
    started: Instant,
    failed: AtomicBool,
    unready: AtomicBool,
    fail_after: Option<Duration>,
    ready_after: Duration,
    version: String,
    hostname: String,
}

impl Health {
    fn healthy(&self) -> bool {
        if self.failed.load(Ordering::SeqCst) {
            return false;
        }
        match self.fail_after {
            Some(after) => self.started.elapsed() < after,
            None => true,
        }
    }

    fn ready(&self) -> bool {
        !self.unready.load(Ordering::SeqCst) && self.started.elapsed() >= self.ready_after
    }
}

fn seconds_from_env(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| *s >= 0.0)
        .map(Duration::from_secs_f64)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("api-get") {
        api_get::run(args.get(2).map_or("/api", String::as_str));
    }
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".to_string());
    let health = Arc::new(Health {
        started: Instant::now(),
        failed: AtomicBool::new(false),
        unready: AtomicBool::new(false),
        fail_after: seconds_from_env("FAIL_AFTER_SECONDS"),
        ready_after: seconds_from_env("READY_AFTER_SECONDS").unwrap_or_default(),
        version: std::env::var("WEBAPP_VERSION").unwrap_or_else(|_| "dev".to_string()),
        hostname: hostname(),
    });
    exit_on_sigterm();
    let listener = match TcpListener::bind(format!("0.0.0.0:{port}")) {
        Ok(l) => l,
        Err(err) => {
            eprintln!("webapp: cannot listen on port {port}: {err}");
            std::process::exit(1);
        }
    };
    println!(
        "webapp {} listening on :{port} (hostname {})",
        health.version, health.hostname
    );
    for stream in listener.incoming().flatten() {
        let health = Arc::clone(&health);
        std::thread::spawn(move || {
            if let Err(err) = serve(stream, &health) {
                eprintln!("webapp: connection error: {err}");
            }
        });
    }
}

/// PID 1 in a container ignores SIGTERM unless it installs a handler; a real
/// server shuts down cleanly, so this one does too (exit code 0).
fn exit_on_sigterm() {
    extern "C" fn on_term(_: i32) {
        // Only async-signal-safe calls here.
        unsafe extern "C" {
            fn _exit(code: i32) -> !;
        }
        unsafe { _exit(0) }
    }
    unsafe extern "C" {
        fn signal(signum: i32, handler: extern "C" fn(i32)) -> usize;
    }
    const SIGTERM: i32 = 15;
    // SAFETY: installs an async-signal-safe handler that only calls _exit.
    unsafe {
        signal(SIGTERM, on_term);
    }
}

fn serve(stream: TcpStream, health: &Health) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line)? == 0 {
        return Ok(());
    }
    let mut content_length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    if content_length > 0 {
        let mut body = vec![0u8; content_length.min(1 << 20)];
        reader.read_exact(&mut body)?;
    }
    let mut parts = request_line.split_whitespace();
    let method = parts.next().unwrap_or("");
    let path = parts.next().unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let (status, body) = route(method, path, health);
    println!("{method} {path} {status}");
    respond(stream, status, &body)
}

fn route(method: &str, path: &str, health: &Health) -> (u16, String) {
    match (method, path) {
        ("GET", "/") => (
            200,
            format!("webapp {} on {}\n", health.version, health.hostname),
        ),
        ("GET", "/health" | "/healthz") => {
            if health.healthy() {
                (200, "ok\n".into())
            } else {
                (500, "unhealthy\n".into())
            }
        }
        ("GET", "/ready" | "/readyz") => {
            if health.ready() {
                (200, "ready\n".into())
            } else {
                (503, "not ready\n".into())
            }
        }
        ("GET", "/version") => (200, format!("{}\n", health.version)),
        ("POST", "/fail") => {
            health.failed.store(true, Ordering::SeqCst);
            (200, "now unhealthy\n".into())
        }
        ("POST", "/recover") => {
            health.failed.store(false, Ordering::SeqCst);
            (200, "healthy again\n".into())
        }
        ("POST", "/unready") => {
            health.unready.store(true, Ordering::SeqCst);
            (200, "now not ready\n".into())
        }
        ("POST", "/ready") => {
            health.unready.store(false, Ordering::SeqCst);
            (200, "ready again\n".into())
        }
        (_, "/" | "/health" | "/healthz" | "/ready" | "/readyz" | "/version") => {
            (405, "method not allowed\n".into())
        }
        _ => (404, "not found\n".into()),
    }
}

fn respond(mut stream: TcpStream, status: u16, body: &str) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    };
    write!(
        stream,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(fail_after: Option<Duration>) -> Health {
        Health {
            started: Instant::now(),
            failed: AtomicBool::new(false),
            unready: AtomicBool::new(false),
            fail_after,
            ready_after: Duration::ZERO,
            version: "v9".into(),
            hostname: "host-a".into(),
        }
    }

    #[test]
    fn root_names_version_and_hostname() {
        let (status, body) = route("GET", "/", &health(None));
        assert_eq!(status, 200);
        assert_eq!(body, "webapp v9 on host-a\n");
    }

    #[test]
    fn post_fail_turns_health_red_and_recover_back() {
        let h = health(None);
        assert_eq!(route("GET", "/health", &h).0, 200);
        assert_eq!(route("POST", "/fail", &h).0, 200);
        assert_eq!(route("GET", "/health", &h).0, 500);
        route("POST", "/recover", &h);
        assert_eq!(route("GET", "/health", &h).0, 200);
    }

    #[test]
    fn fail_after_seconds_expires_health() {
        let h = health(Some(Duration::ZERO));
        assert_eq!(route("GET", "/health", &h).0, 500);
    }

    #[test]
    fn unready_switch_drives_ready_endpoint() {
        let h = health(None);
        assert_eq!(route("GET", "/ready", &h).0, 200);
        route("POST", "/unready", &h);
        assert_eq!(route("GET", "/ready", &h).0, 503);
    }
}
