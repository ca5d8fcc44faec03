//! The real kubectl against a cluster a test started: one run with its
//! exit status and everything it printed, and the retry loop tests wait
//! with (kubectl output is what users see, so tests read it as they do).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::control_plane::kubectl_path;

/// Runs kubectl with `kubeconfig` and its cache under `home`: success and
/// stdout followed by stderr.
pub fn run(kubeconfig: &Path, home: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(kubectl_path().expect("kubectl"))
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", home)
        .output()
        .expect("kubectl");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Repeats `kubectl` (a [`run`]) until it succeeds with output `check`
/// accepts, for at most `limit`: that output and when the call that saw
/// it began (for latency figures).
pub fn eventually(
    kubectl: impl Fn() -> (bool, String),
    what: &str,
    limit: Duration,
    check: impl Fn(&str) -> bool,
) -> (String, Instant) {
    let deadline = Instant::now() + limit;
    let mut last = String::new();
    while Instant::now() < deadline {
        let asked = Instant::now();
        let (ok, out) = kubectl();
        if ok && check(&out) {
            return (out, asked);
        }
        last = out;
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting for {what}: {last}");
}
