//! What Skiff runs on each machine of the lab: the one place its command
//! lines live. Each runs as a transient systemd unit, as the Vagrant lab's
//! provisioning runs them as services (`docs/vagrant/provision.sh`), so it
//! outlives the ssh session and its log is in the journal.
//!
//! Until `skiff server` / `skiff agent` exist this is the control plane
//! alone on the server machine and a kubelet on each agent machine beside
//! that machine's own containerd (Debian's, `/run/containerd`).

use std::time::{Duration, Instant};

use super::accel::Pace;
use super::machine::Machine;
use super::network::lab_ip;

/// Where Skiff keeps its data on every machine.
const DATA_DIR: &str = "/var/lib/skiff";

/// The shared folder's binaries and images (see [`super::machine`]).
const BIN: &str = "/opt/skiff/bin";
const IMAGES: &str = "/opt/skiff/images";

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

/// What agents need to join the server.
#[derive(Debug, Clone)]
pub struct Join {
    /// The control plane's node-facing address.
    pub server: String,
}

/// Starts the control plane on `machine` and waits until its API answers.
pub fn start_server(machine: &Machine, pace: Pace) -> Join {
    let ip = machine.ip();
    let command = format!(
        "{BIN}/skiff-control-plane --data-dir {DATA_DIR} --listen 0.0.0.0:{API_PORT} \
         --grpc-listen 0.0.0.0:{grpc} --advertise-address {ip} \
         --load-balancer-pool {pool} --cluster-dns-listen {ip}:53 \
         --node-monitor-grace-period {grace}s --pod-eviction-timeout {eviction}s",
        grpc = API_PORT + 1,
        pool = load_balancer_pool(),
        grace = pace.grace.as_secs(),
        eviction = pace.eviction.as_secs(),
    );
    machine.ssh_ok(&format!(
        "mkdir -p {DATA_DIR} && systemd-run --quiet --unit {SERVER_UNIT} {command}"
    ));
    let deadline = Instant::now() + Duration::from_secs(180);
    // Anonymous health checks answer over TLS once the API serves.
    while !machine
        .ssh(&format!(
            "test -s {DATA_DIR}/kubeconfig && exec 3<>/dev/tcp/127.0.0.1/{API_PORT}"
        ))
        .status
        .success()
    {
        assert!(
            Instant::now() < deadline,
            "the server did not start:\n{}",
            journal(machine, SERVER_UNIT)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Join {
        server: format!("{ip}:{}", API_PORT + 1),
    }
}

/// Starts a node on `machine` joining the server of `join`.
pub fn start_agent(machine: &Machine, join: &Join) {
    let (name, ip) = (machine.name(), machine.ip());
    let command = format!(
        "{BIN}/skiff-kubelet --node-name {name} \
         --containerd-socket /run/containerd/containerd.sock --containerd-namespace skiff \
         --state-dir {DATA_DIR}/kubelet --image-dir {IMAGES} \
         --manifests-dir /etc/skiff/manifests --grpc-listen {ip}:10250 \
         --http-listen {ip}:10255 --node-ip {ip} --control-plane {server} \
         --cri-logger {BIN}/skiff-cri-logger --pod-network cni --cluster-dns 10.96.0.10",
        server = join.server,
    );
    machine.ssh_ok(&format!(
        "mkdir -p {DATA_DIR} /etc/skiff/manifests && systemctl is-active --quiet containerd \
         && systemd-run --quiet --unit {AGENT_UNIT} {command}"
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
