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
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use crate::progress::step;
use crate::session::{Parts, Session};
use crate::{join, progress, token};

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

/// The control plane's command line: listening on `--listen-address` at
/// the API port and the next, cluster DNS on `advertise` at the one after,
/// then the user's flags as they are.
pub(crate) fn control_plane_args(
    dir: &std::path::Path,
    config: &ServerConfig,
    advertise: IpAddr,
) -> Vec<String> {
    let (listen, port) = (config.listen, config.api_port);
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
    args
}

pub async fn server(config: ServerConfig) -> anyhow::Result<()> {
    let api_ip = if config.listen.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        config.listen
    };
    let api = SocketAddr::new(api_ip, config.api_port).to_string();
    let session = Session::claim(&config.dir, api, Some(config.api_port)).await?;
    session
        .run("stopping the control plane", async |parts| {
            run(&config, parts).await
        })
        .await
}

async fn run(config: &ServerConfig, parts: &mut Parts) -> anyhow::Result<()> {
    let port = config.api_port;
    let advertise = config
        .advertise
        .or(
            (!config.listen.is_unspecified() && !config.listen.is_loopback())
                .then_some(config.listen),
        )
        .or_else(|| source_address(SocketAddr::from(([192, 0, 2, 1], 9))))
        .context("cannot tell this machine's address; pass --advertise-address")?;
    let args = control_plane_args(&parts.dir, config, advertise);
    step("starting the control plane");
    let api = crate::api::Api::new(&parts.record.api, &parts.dir);
    let mut control_plane = parts.start_control_plane(&args, &api).await?;
    let token = token::create(&api, config.token_ttl, "skiff server")?;
    let hash = join::ca_hash(&parts.dir)?;
    let server = format!("https://{}", SocketAddr::new(advertise, port));
    progress::out(&format!(
        "Skiff server is up: the API at {server}, nodes join at {advertise}:{}.",
        port + 1
    ));
    progress::out(&format!(
        "  export KUBECONFIG={}",
        parts.dir.join("kubeconfig").display()
    ));
    let valid = match chrono::Duration::from_std(config.token_ttl) {
        Ok(ttl) if !ttl.is_zero() => format!("is valid for {}", token::short_human_duration(ttl)),
        _ => "never expires".to_string(),
    };
    progress::out(&format!(
        "Join a machine (as root there; the token {valid}):"
    ));
    progress::out(&join::agent_command(&server, &token, &hash));
    progress::out(&format!(
        "More tokens: skiff token create --print-join-command --data-dir {}",
        parts.dir.display()
    ));
    progress::out("Press Ctrl-C to stop and clean up.");
    loop {
        if let Some(status) = control_plane.try_wait()? {
            bail!(
                "the control plane exited ({status}); see {}",
                parts.log("control-plane")?.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
