//! `skiff agent`: this machine joins a `skiff server`'s cluster as a node
//! (k3s `agent --server --token`, kubeadm `join`): its own managed
//! containerd and a kubelet that joins with the bootstrap token, pinning
//! the server's CA by hash (or trusting a CA file), and keeps its node
//! certificates in its state dir. The node gRPC port is the API port + 1,
//! as `skiff server` and `skiff up` lay ports out. Runs until Ctrl-C or
//! SIGTERM, then stops the kubelet, its containers and containerd
//! (`skiff down --data-dir DIR` clears them after a crash).

use std::net::{IpAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::kubelet::{JoinWith, KubeletFlags};
use crate::progress::{self, step};
use crate::record::NodeRecord;
use crate::session::{Parts, Session};

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
    let api = config.server.trim_start_matches("https://").to_string();
    let session = Session::claim(&config.dir, api, None).await?;
    session
        .run("stopping the node", async |parts| {
            run(&config, parts, &grpc, node_ip, &name).await
        })
        .await
}

async fn run(
    config: &AgentConfig,
    parts: &mut Parts,
    grpc: &str,
    node_ip: IpAddr,
    name: &str,
) -> anyhow::Result<()> {
    let images = parts.build_images()?;
    let state = parts.dir.join("nodes").join(name);
    let containerd = parts.start_containerd().await?;

    step(&format!("starting {name} ({node_ip}), joining {grpc}"));
    let join = JoinWith {
        token: config.token.clone(),
        ca_cert_hash: config.ca_cert_hash.clone(),
        ca_file: config.ca_file.clone(),
    };
    let flags = KubeletFlags {
        name,
        containerd,
        namespace: NAMESPACE,
        state: &state,
        images: &images,
        node_ip,
        grpc_port: config.kubelet_port,
        control_plane: grpc,
        join: &join,
        extra: &config.node_flags,
    };
    let (args, manifests) = (flags.args()?, flags.manifests());
    let node = NodeRecord {
        name: name.to_string(),
        pid: 0,
        start_time: 0,
        args,
        namespace: NAMESPACE.into(),
        stopped: false,
        index: 0,
        netns: None,
        partitioned: false,
    };
    let log = parts.log(name)?;
    let mut kubelet = parts.start_kubelet(node, || Ok(std::fs::create_dir_all(&manifests)?))?;
    // Joined once its certificates are kept (the kubelet-serving CA is
    // written last, and is missing from a node kept from before it, which
    // must join again); a refused or missing token ends the kubelet with
    // the reason in its log.
    let joined = state
        .join("pki")
        .join(skiff_pki::ca::KUBELET_SERVING_CA_CERT);
    let deadline = Instant::now() + Duration::from_secs(150);
    while !joined.exists() {
        if let Some(status) = kubelet.try_wait()? {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            // The kubelet's error, not the backtrace that may follow it
            // (RUST_BACKTRACE set).
            let mut lines = text.lines().rev();
            let last = lines
                .clone()
                .find(|l| l.starts_with("Error: "))
                .or_else(|| lines.find(|l| !l.trim().is_empty()))
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
