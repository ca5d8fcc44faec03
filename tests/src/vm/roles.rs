//! What Skiff runs on each machine of the lab: the one place its command
//! lines live. Each runs as a transient systemd unit, as the Vagrant lab's
//! provisioning runs them as services (`docs/vagrant/provision.sh`), so it
//! outlives the ssh session and its log is in the journal.
//!
//! The server machine runs `skiff server` (the control plane alone, which
//! prints the join token, the CA hash and the `skiff agent` line); each
//! agent machine runs that printed line as a user pastes it: `skiff agent`
//! builds the catalog images, starts its own containerd and a kubelet that
//! joins with the token, pinning the CA by its hash.

use std::time::{Duration, Instant};

use super::accel::Pace;
use super::machine::Machine;
use super::network::lab_ip;

/// Where Skiff keeps its data on every machine.
const DATA_DIR: &str = "/var/lib/skiff";

/// The shared folder's binaries (see [`super::machine`]).
const BIN: &str = "/opt/skiff/bin";

/// The API port.
pub const API_PORT: u16 = 6443;

/// LoadBalancer addresses: `.200`–`.249` of the lab network, as the
/// Vagrant lab's.
pub fn load_balancer_pool() -> String {
    format!("{}-{}", lab_ip(200), lab_ip(249))
}

/// The systemd unit each role runs as.
pub const SERVER_UNIT: &str = "skiff-server";
/// See [`SERVER_UNIT`].
pub const AGENT_UNIT: &str = "skiff-agent";

/// How agents join the server: the command `skiff server` printed.
#[derive(Debug, Clone)]
pub struct Join {
    /// `skiff agent --server https://HOST:PORT --token T --ca-cert-hash H ...`
    pub command: String,
}

/// `skiff server`'s `skiff agent --server ...` line, once it has a token
/// and a CA hash.
fn join_line(log: &str) -> Option<String> {
    let line = log
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("skiff agent --server"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let given = |flag: &str| {
        words
            .iter()
            .position(|w| *w == flag)
            .is_some_and(|i| i + 1 < words.len())
    };
    (given("--token") && given("--ca-cert-hash")).then(|| line.to_string())
}

/// Starts the control plane on `machine` and waits until its API answers.
pub fn start_server(machine: &Machine, pace: Pace) -> Join {
    let ip = machine.ip();
    let command = format!(
        "{BIN}/skiff server --data-dir {DATA_DIR} --advertise-address {ip} \
         --api-port {API_PORT} --load-balancer-pool {pool} \
         --node-monitor-grace-period {grace}s --pod-eviction-timeout {eviction}s",
        pool = load_balancer_pool(),
        grace = pace.grace.as_secs(),
        eviction = pace.eviction.as_secs(),
    );
    machine.ssh_ok(&format!(
        "mkdir -p {DATA_DIR} && systemd-run --quiet --unit {SERVER_UNIT} {command}"
    ));
    let deadline = Instant::now() + Duration::from_secs(180);
    // The join line is printed once the API serves and the token exists.
    let command = loop {
        if let Some(found) = join_line(&journal(machine, SERVER_UNIT)) {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not start:\n{}",
            journal(machine, SERVER_UNIT)
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    Join { command }
}

/// Starts a node on `machine`: the printed `skiff agent` line, run from
/// the shared binaries. The node is named after the machine's hostname and
/// takes its address toward the server, as `skiff agent` defaults.
pub fn start_agent(machine: &Machine, join: &Join) {
    let command = format!("{BIN}/{}", join.command);
    machine.ssh_ok(&format!(
        "systemd-run --quiet --unit {AGENT_UNIT} {command}"
    ));
}

/// The admin kubeconfig of the server, pointing at its lab address.
pub fn kubeconfig(server: &Machine) -> String {
    let text = server.ssh_ok(&format!("cat {DATA_DIR}/kubeconfig"));
    let url = format!("https://{}:{API_PORT}", server.ip());
    text.lines()
        .map(|line| match line.trim_start().strip_prefix("server:") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                format!("{indent}server: {url}")
            }
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The last lines a unit logged.
pub fn journal(machine: &Machine, unit: &str) -> String {
    let out = machine.ssh(&format!("journalctl -u {unit} --no-pager -n 60 -o cat"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_join_line_gives_token_and_hash() {
        let log = "==> starting\nJoin token: x\n  skiff agent --server https://192.168.56.10:6443 --token abcdef.0123456789abcdef --ca-cert-hash sha256:00ff --data-dir /var/lib/skiff/agent\n";
        assert_eq!(
            super::join_line(log).as_deref(),
            Some(
                "skiff agent --server https://192.168.56.10:6443 --token abcdef.0123456789abcdef --ca-cert-hash sha256:00ff --data-dir /var/lib/skiff/agent"
            )
        );
        assert_eq!(super::join_line("nothing"), None);
        assert_eq!(super::join_line("skiff agent --server x --token"), None);
    }
}
