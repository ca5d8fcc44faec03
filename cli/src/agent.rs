//! `skiff agent`: this machine joins a `skiff server`'s cluster as a node
//! (k3s `agent --server --token`, kubeadm `join`): its own managed
//! containerd and a kubelet that joins with the bootstrap token, pinning
//! the server's CA by hash (or trusting a CA file), and keeps its node
//! certificates in its state dir. The node gRPC port is the API port + 1,
//! as `skiff server` and `skiff up` lay ports out. Runs until Ctrl-C or
//! SIGTERM, then stops the kubelet, its containers and containerd
//! (`skiff down --data-dir DIR` clears them after a crash).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_images::Sources;
use skiff_kubelet::runtime::containerd::ManagedContainerd;

use crate::cluster::{self, ClusterRecord, NodeRecord, sibling};
use crate::process::{self, ProcessId};
use crate::progress::step;
use crate::signals::Shutdown;
use crate::{down, progress};

/// The containerd namespace of an agent's node.
const NAMESPACE: &str = "skiff";

/// How `skiff agent` was asked to run.
pub struct AgentConfig {
    /// `https://HOST:PORT` of the server's API.
    pub server: String,
    pub token: Option<String>,
    pub ca_cert_hash: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub dir: PathBuf,
    pub node_name: Option<String>,
    pub node_ip: Option<IpAddr>,
    /// The kubelet's gRPC port; its HTTP port is the one 5 above (10250
    /// and 10255 by default, as `skiff up`'s nodes).
    pub kubelet_port: u16,
    /// Passed to the kubelet as they are.
    pub node_flags: Vec<String>,
}

/// `host` and the node gRPC port (API port + 1) of `https://HOST:PORT`.
fn node_port_of(server: &str) -> anyhow::Result<(String, u16)> {
    let rest = server
        .strip_prefix("https://")
        .with_context(|| format!("--server {server}: expected https://HOST:PORT"))?
        .trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .with_context(|| format!("--server {server}: no port"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("--server {server}: bad port"))?;
    let grpc = port
        .checked_add(1)
        .with_context(|| format!("--server {server}: no port after {port}"))?;
    Ok((host.to_string(), grpc))
}

fn hostname() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim().to_ascii_lowercase();
    (!name.is_empty()).then_some(name)
}

pub async fn agent(config: AgentConfig) -> anyhow::Result<()> {
    let mut shutdown = Shutdown::install()?;
    if config.token.is_none() && !config.dir.join("nodes").exists() {
        bail!("--token is required to join (kept node certificates are reused without one)");
    }
    if config.ca_cert_hash.is_none() && config.ca_file.is_none() {
        bail!("pass --ca-cert-hash sha256:... (printed by skiff server) or --ca-file");
    }
    let (host, grpc_port) = node_port_of(&config.server)?;
    let grpc = format!("{host}:{grpc_port}");
    let target = grpc
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .with_context(|| format!("cannot resolve {host}"))?;
    let node_ip = config
        .node_ip
        .or_else(|| crate::server::source_address(target))
        .context("cannot tell this machine's address toward the server; pass --node-ip")?;
    let name = config
        .node_name
        .clone()
        .or_else(hostname)
        .context("no hostname; pass --node-name")?;
    let dir = &config.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    cluster::refuse_running_or_clear(&dir, detail).await?;
    let me = ProcessId::current().context("reading this process's start time")?;
    let mut record = ClusterRecord {
        pid: me.pid,
        start_time: me.start_time,
        boot_id: process::boot_id(),
        control_plane_pid: 0,
        control_plane_start_time: 0,
        containerd: None,
        api: config.server.trim_start_matches("https://").to_string(),
        containerd_socket: dir.join("containerd").join("containerd.sock"),
        nodes: Vec::new(),
        network: None,
    };
    cluster::save(&dir, &record)?;
    let mut containerd = None;
    let result = tokio::select! {
        result = run(&config, &dir, &grpc, node_ip, &name, &mut record, &mut containerd) => result,
        signal = shutdown.recv() => {
            progress::line("");
            step(&format!("{signal} received"));
            Ok(())
        }
    };
    step("stopping the node");
    let stopped = down::tear_down(&dir, Some(&record), containerd, detail).await;
    detail("done");
    result.and(stopped.map(drop))
}

fn detail(text: &str) {
    progress::line(&format!("    {text}"));
}

async fn run(
    config: &AgentConfig,
    dir: &Path,
    grpc: &str,
    node_ip: IpAddr,
    name: &str,
    record: &mut ClusterRecord,
    containerd_slot: &mut Option<ManagedContainerd>,
) -> anyhow::Result<()> {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    step("building images");
    let images = dir.join("images");
    skiff_images::build_all(&Sources::default(), &images, |i| {
        detail(&i.name.to_string())
    })?;
    step("starting containerd");
    let containerd =
        containerd_slot.insert(ManagedContainerd::start(&dir.join("containerd")).await?);
    record.containerd = containerd.pid().and_then(ProcessId::of);
    record.containerd_socket = containerd.socket();
    cluster::save(dir, record)?;

    step(&format!("starting {name} ({node_ip}), joining {grpc}"));
    let state = dir.join("nodes").join(name);
    let manifests = state.join("manifests");
    std::fs::create_dir_all(&manifests)?;
    let ip = node_ip.to_string();
    let mut args: Vec<String> = [
        "--node-name",
        name,
        "--containerd-socket",
        &containerd.socket().display().to_string(),
        "--containerd-namespace",
        NAMESPACE,
        "--runc-root",
        &containerd.runc_root().display().to_string(),
        "--state-dir",
        &state.display().to_string(),
        "--image-dir",
        &images.display().to_string(),
        "--manifests-dir",
        &manifests.display().to_string(),
        "--grpc-listen",
        &SocketAddr::new(node_ip, config.kubelet_port).to_string(),
        "--http-listen",
        &SocketAddr::new(node_ip, config.kubelet_port.saturating_add(5)).to_string(),
        "--node-ip",
        &ip,
        "--control-plane",
        grpc,
        "--cri-logger",
        &sibling("skiff-cri-logger")?.display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    if let Some(token) = &config.token {
        args.extend(["--token".into(), token.clone()]);
    }
    if let Some(hash) = &config.ca_cert_hash {
        args.extend(["--ca-cert-hash".into(), hash.clone()]);
    }
    if let Some(file) = &config.ca_file {
        args.extend(["--ca-file".into(), file.display().to_string()]);
    }
    args.extend_from_slice(&config.node_flags);
    record.nodes.push(NodeRecord {
        name: name.to_string(),
        pid: 0,
        start_time: 0,
        args: args.clone(),
        namespace: NAMESPACE.into(),
        stopped: false,
        index: 0,
        netns: None,
        partitioned: false,
    });
    cluster::save(dir, record)?;
    let log = logs.join(format!("{name}.log"));
    let mut kubelet = cluster::spawn(&sibling("skiff-kubelet")?, &args, &log, None)?;
    if let Some(node) = record.nodes.last_mut() {
        node.pid = kubelet.id();
        node.start_time = ProcessId::of(kubelet.id()).map_or(0, |p| p.start_time);
    }
    cluster::save(dir, record)?;
    // Joined once its certificates are kept; a refused token ends the
    // kubelet with the reason in its log.
    let joined = state.join("pki").join("kubelet-client.crt");
    let deadline = Instant::now() + Duration::from_secs(150);
    while !joined.exists() {
        if let Some(status) = kubelet.try_wait()? {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            bail!("the kubelet exited ({status}) before joining: {last}");
        }
        if Instant::now() > deadline {
            bail!("the kubelet did not join {grpc}; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    progress::out(&format!(
        "Skiff agent is up: node {name} ({node_ip}) joined {}.",
        config.server
    ));
    progress::out("Press Ctrl-C to stop and clean up.");
    loop {
        if let Some(status) = kubelet.try_wait()? {
            bail!("the kubelet exited ({status}); see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_port_follows_the_api_port() {
        assert_eq!(
            node_port_of("https://10.0.0.1:6443").expect("valid"),
            ("10.0.0.1".to_string(), 6444)
        );
        assert!(node_port_of("http://10.0.0.1:6443").is_err());
        assert!(node_port_of("https://10.0.0.1").is_err());
    }
}
