//! Assembling a whole kubelet: runtime connection, node agent, static pod
//! watcher, gRPC and HTTP servers. Used by the `skiff-kubelet` binary and by
//! in-process tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::info;

use crate::images::ImageManager;
use crate::metrics::Metrics;
use crate::network::NodeNetwork;
use crate::node::identity::KubeletTls;
use crate::node::manifests::ManifestWatcher;
use crate::node::{NodeContext, NodeError, NodeHandle, PodSource, checkpoint};
use crate::pod::backoff::BackoffConfig;
use crate::pod::dns::NodeDns;
use crate::pod::sandbox::PodNetwork;
use crate::runtime::ContainerRuntime;
use crate::server;

/// Everything a kubelet is configured with.
#[derive(Debug, Clone)]
pub struct KubeletConfig {
    /// Node name.
    pub node_name: String,
    /// State folder (pods, logs, checkpoints).
    pub state_dir: PathBuf,
    /// Static pod manifests folder.
    pub manifests_dir: Option<PathBuf>,
    /// Folder of OCI image tarballs.
    pub image_dir: Option<PathBuf>,
    /// HTTP endpoints address (port 0: any).
    pub http_listen: SocketAddr,
    /// gRPC address (port 0: any).
    pub grpc_listen: SocketAddr,
    /// Address reported as the node's InternalIP / pods' hostIP.
    pub node_ip: Option<String>,
    /// Restart back-off.
    pub backoff: BackoffConfig,
    /// The control plane's gRPC address; standalone when `None`.
    pub control_plane: Option<String>,
    /// Labels of the Node object.
    pub node_labels: std::collections::HashMap<String, String>,
    /// Where the pod network the control plane assigns this node is
    /// published (the CNI network and the node's routes follow it);
    /// `None`: not followed.
    pub node_network: Option<Arc<watch::Sender<Option<NodeNetwork>>>>,
    /// Follow the cluster's Services and EndpointSlices (pods' service
    /// variables); hollow nodes in benchmarks do not.
    pub watch_services: bool,
    /// Pods' DNS: `--cluster-dns`, `--cluster-domain`, `--resolv-conf`.
    pub dns: NodeDns,
    /// `--seccomp-default`: `RuntimeDefault` for pods that name no seccomp
    /// profile (upstream's flag; off: `Unconfined`, as upstream).
    pub seccomp_default: bool,
    /// Serving certificate, client CA, and the node's certificate toward
    /// the control plane.
    pub tls: KubeletTls,
}

/// Why a kubelet could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A folder could not be created.
    #[error("cannot create {}: {source}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The node agent did not start.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The TLS configuration is unusable.
    #[error(transparent)]
    Tls(#[from] skiff_pki::PkiError),
    /// A control plane without a client certificate to call it with.
    #[error("--control-plane needs the node's client certificate (join with --token)")]
    NoClientCertificate,
}

/// A running kubelet.
pub struct Running {
    /// Handle to the node agent.
    pub node: NodeHandle,
    /// Where gRPC is served.
    pub grpc_addr: SocketAddr,
    /// Where HTTP is served.
    pub http_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Running {
    /// Stops serving and stops the actors. Containers keep running: a
    /// restarted kubelet re-adopts them.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.node.shutdown();
        for t in self.tasks {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), t).await;
        }
    }
}

/// Upstream's kubelet checks the node's resolv.conf every 30 seconds and
/// warns on the Node when pods would get it cut (the warnings repeat, and
/// events with the same text are counted, not multiplied).
fn spawn_resolv_conf_check(
    dns: NodeDns,
    path: PathBuf,
    agent: ractor::ActorRef<crate::node::NodeMsg>,
    node_name: String,
    mut stopped: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let read = crate::pod::actor::node_resolver(&dns).await;
            if let Some(message) = crate::pod::dns::node_file_warning(&dns, &path, read) {
                tracing::warn!(%message, "node resolv.conf");
                let event = crate::events::Event {
                    object: crate::events::EventObject::Node(node_name.clone()),
                    field_path: None,
                    warning: true,
                    reason: "CheckLimitsForResolvConf".into(),
                    message,
                    time: chrono::Utc::now(),
                };
                let _ = agent.cast(crate::node::NodeMsg::Event(Box::new(event)));
            }
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
                _ = stopped.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Starts a kubelet on `runtime` and `network`.
pub async fn start(
    config: KubeletConfig,
    runtime: Arc<dyn ContainerRuntime>,
    network: Arc<dyn PodNetwork>,
) -> Result<Running, StartError> {
    if config.control_plane.is_some() && config.tls.control_plane.is_none() {
        return Err(StartError::NoClientCertificate);
    }
    std::fs::create_dir_all(&config.state_dir).map_err(|source| StartError::Folder {
        path: config.state_dir.clone(),
        source,
    })?;
    let ctx = Arc::new(NodeContext {
        node_name: config.node_name.clone(),
        state_dir: config.state_dir.clone(),
        images: ImageManager::new(runtime.clone(), config.image_dir.clone()),
        runtime,
        network,
        backoff: config.backoff,
        host_ip: config.node_ip.clone(),
        metrics: Metrics::default(),
        services: tokio::sync::watch::Sender::default(),
        node_network: config.node_network.clone(),
        watch_services: config.watch_services,
        dns: config.dns.clone(),
        seccomp_default: config.seccomp_default,
        pod_sources: config
            .control_plane
            .as_deref()
            .zip(config.tls.control_plane.clone())
            .map(|(cp, tls)| {
                Arc::new(crate::pod::projected::GrpcPodSources::new(
                    cp,
                    &config.node_name,
                    tls,
                )) as Arc<dyn crate::pod::projected::PodSources>
            }),
        projected: Default::default(),
    });

    let mut initial: Vec<_> = checkpoint::load(&config.state_dir)
        .into_iter()
        .map(|p| (p, PodSource::Api))
        .collect();
    let mut watcher = config
        .manifests_dir
        .as_ref()
        .map(|dir| ManifestWatcher::new(dir.clone(), config.node_name.clone()));
    let mut startup_problems = Vec::new();
    if let Some(w) = watcher.as_mut() {
        let scan = w.scan();
        initial.extend(scan.assign);
        startup_problems = scan.problems;
    }
    let node = NodeHandle::start(ctx, initial).await?;
    for event in startup_problems {
        let _ = node
            .agent
            .cast(crate::node::NodeMsg::Event(Box::new(event)));
    }

    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(path) = config.dns.resolv_conf.clone() {
        tasks.push(spawn_resolv_conf_check(
            config.dns.clone(),
            path,
            node.agent.clone(),
            config.node_name.clone(),
            stopped.clone(),
        ));
    }
    if let Some(w) = watcher {
        tasks.push(w.spawn(node.agent.clone()));
    }

    let grpc = TcpListener::bind(config.grpc_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.grpc_listen,
            source,
        })?;
    let grpc_addr = grpc.local_addr().map_err(|source| StartError::Listen {
        addr: config.grpc_listen,
        source,
    })?;
    let http = TcpListener::bind(config.http_listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.http_listen,
            source,
        })?;
    let http_addr = http.local_addr().map_err(|source| StartError::Listen {
        addr: config.http_listen,
        source,
    })?;

    // Both ports present the serving certificate as it is at each
    // handshake, so a renewed one is used without a restart.
    let serving = match config.tls.renewal.as_ref().and_then(|r| r.serving.clone()) {
        Some(serving) => serving,
        None => skiff_pki::rotating::Rotating::new(
            &config.tls.serving_cert_pem,
            &config.tls.serving_key_pem,
        )?,
    };
    let grpc_tls = skiff_pki::rotating::server(
        serving.clone(),
        &config.tls.client_ca_pem,
        skiff_pki::tls::ClientAuth::Required,
        &[b"h2"],
    )?;
    let http_tls = skiff_pki::rotating::server(
        serving,
        &config.tls.client_ca_pem,
        skiff_pki::tls::ClientAuth::Optional,
        &[b"http/1.1"],
    )?;
    let mut until_stopped = stopped.clone();
    let service = server::grpc::AgentService::server(node.clone());
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = until_stopped.wait_for(|s| *s).await;
        };
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(skiff_proto::link::PING_INTERVAL))
            .http2_keepalive_timeout(Some(skiff_proto::link::PING_TIMEOUT))
            .add_service(service)
            .serve_with_incoming_shutdown(
                skiff_proto::link::tls_incoming_stream(grpc, grpc_tls),
                shutdown,
            )
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));
    let mut until_stopped = stopped.clone();
    let router = server::http::router(node.clone());
    let http =
        server::http::TlsListener::new(http, http_tls).map_err(|source| StartError::Listen {
            addr: config.http_listen,
            source,
        })?;
    tasks.push(tokio::spawn(async move {
        let shutdown = async move {
            let _ = until_stopped.wait_for(|s| *s).await;
        };
        let service = router.into_make_service_with_connect_info::<server::http::Caller>();
        if let Err(e) = axum::serve(http, service)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "HTTP server failed");
        }
    }));
    if let Some(cp) = &config.control_plane {
        let host = config
            .node_ip
            .clone()
            .unwrap_or_else(|| grpc_addr.ip().to_string());
        let endpoint = format!("{host}:{}", grpc_addr.port());
        let client_tls = config
            .tls
            .control_plane
            .clone()
            .ok_or(StartError::NoClientCertificate)?;
        if let Some(renewal) = config.tls.renewal.clone() {
            let agent = node.agent.clone();
            tasks.push(
                crate::node::rotation::Rotation {
                    state_dir: config.state_dir.clone(),
                    control_plane: cp.clone(),
                    node_name: config.node_name.clone(),
                    client_tls: client_tls.clone(),
                    renewal,
                }
                .spawn(
                    move |event| {
                        let _ = agent.cast(crate::node::NodeMsg::Event(Box::new(event)));
                    },
                    stopped.clone(),
                ),
            );
        }
        tasks.push(crate::node::registration::spawn(
            cp.clone(),
            client_tls,
            node.clone(),
            endpoint,
            config.node_labels.clone(),
        ));
    }
    info!(node = %config.node_name, %grpc_addr, %http_addr, "kubelet running");
    Ok(Running {
        node,
        grpc_addr,
        http_addr,
        stop,
        tasks,
    })
}
