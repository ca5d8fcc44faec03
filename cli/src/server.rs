//! `skiff server`: the control plane alone, for a cluster of machines (k3s
//! `server`, kubeadm `init`). It needs no containerd; it prints the join
//! token, the CA's hash and the `skiff agent` command line machines join
//! with, and runs until Ctrl-C or SIGTERM, then stops the control plane
//! (`skiff down --data-dir DIR` clears it after a crash, as for `skiff up`).
//!
//! Ports as `skiff up` lays them out: the API at `--api-port`, the node
//! gRPC port (joins, registration) at `--api-port + 1`, cluster DNS at
//! `--api-port + 2` on the advertised address.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::cluster::{self, ClusterRecord, sibling};
use crate::process::{self, ProcessId};
use crate::progress::step;
use crate::signals::Shutdown;
use crate::{down, join, progress};

/// How `skiff server` was asked to run.
pub struct ServerConfig {
    pub dir: PathBuf,
    /// Where the API and node ports listen.
    pub listen: IpAddr,
    /// The address machines reach this one at.
    pub advertise: Option<IpAddr>,
    pub api_port: u16,
    /// Passed to the control plane as they are.
    pub control_plane_flags: Vec<String>,
    pub token_ttl: Duration,
}

/// The address this machine reaches `target` from (its route's source);
/// no packet is sent.
pub(crate) fn source_address(target: SocketAddr) -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind(if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    })
    .ok()?;
    socket.connect(target).ok()?;
    socket.local_addr().ok().map(|a| a.ip())
}

pub async fn server(config: ServerConfig) -> anyhow::Result<()> {
    let mut shutdown = Shutdown::install()?;
    let dir = &config.dir;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    cluster::refuse_running_or_clear(&dir, detail).await?;
    cluster::ports_free(config.api_port)?;
    let me = ProcessId::current().context("reading this process's start time")?;
    let api_ip = if config.listen.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        config.listen
    };
    let mut record = ClusterRecord {
        pid: me.pid,
        start_time: me.start_time,
        boot_id: process::boot_id(),
        control_plane_pid: 0,
        control_plane_start_time: 0,
        containerd: None,
        api: SocketAddr::new(api_ip, config.api_port).to_string(),
        containerd_socket: dir.join("containerd").join("containerd.sock"),
        nodes: Vec::new(),
        network: None,
    };
    cluster::save(&dir, &record)?;
    let result = tokio::select! {
        result = run(&config, &dir, &mut record) => result,
        signal = shutdown.recv() => {
            progress::line("");
            step(&format!("{signal} received"));
            Ok(())
        }
    };
    step("stopping the control plane");
    let stopped = down::tear_down(&dir, Some(&record), None, detail).await;
    detail("done");
    result.and(stopped.map(drop))
}

fn detail(text: &str) {
    progress::line(&format!("    {text}"));
}

async fn run(config: &ServerConfig, dir: &Path, record: &mut ClusterRecord) -> anyhow::Result<()> {
    let port = config.api_port;
    let advertise = config
        .advertise
        .or(
            (!config.listen.is_unspecified() && !config.listen.is_loopback())
                .then_some(config.listen),
        )
        .or_else(|| source_address(SocketAddr::from(([192, 0, 2, 1], 9))))
        .context("cannot tell this machine's address; pass --advertise-address")?;
    let listen = config.listen;
    let mut args: Vec<String> = vec![
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        SocketAddr::new(listen, port).to_string(),
        "--grpc-listen".into(),
        SocketAddr::new(listen, port + 1).to_string(),
        "--advertise-address".into(),
        advertise.to_string(),
        "--tls-san".into(),
        advertise.to_string(),
        "--cluster-dns-listen".into(),
        SocketAddr::new(advertise, port + 2).to_string(),
    ];
    args.extend_from_slice(&config.control_plane_flags);
    step("starting the control plane");
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let log = logs.join("control-plane.log");
    let mut control_plane = cluster::spawn(&sibling("skiff-control-plane")?, &args, &log, None)?;
    record.control_plane_pid = control_plane.id();
    record.control_plane_start_time = ProcessId::of(control_plane.id()).map_or(0, |p| p.start_time);
    cluster::save(dir, record)?;
    let api = crate::api::Api::new(&record.api, dir);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api.ok("/healthz") {
        if Instant::now() > deadline || control_plane.try_wait()?.is_some() {
            bail!("the control plane did not start; see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let token = join::create_token(&api, config.token_ttl, "skiff server")?;
    let hash = join::ca_hash(dir)?;
    let server = format!("https://{}", SocketAddr::new(advertise, port));
    progress::out(&format!(
        "Skiff server is up: the API at {server}, nodes join at {advertise}:{}.",
        port + 1
    ));
    progress::out(&format!(
        "  export KUBECONFIG={}",
        dir.join("kubeconfig").display()
    ));
    progress::out(&format!(
        "Join a machine (as root there; the token is valid for {}h):",
        config.token_ttl.as_secs() / 3600
    ));
    progress::out(&join::agent_command(&server, &token, &hash));
    progress::out(&format!(
        "More tokens (this one expires): skiff token create --print-join-command --data-dir {}",
        dir.display()
    ));
    progress::out("Press Ctrl-C to stop and clean up.");
    loop {
        if let Some(status) = control_plane.try_wait()? {
            bail!("the control plane exited ({status}); see {}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
