//! `skiff-kubelet`: Skiff's node agent. Runs the pods assigned to it over
//! gRPC and the static pods of its manifests folder as real containers
//! through containerd.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use skiff_kubelet::app::{self, KubeletConfig};
use skiff_kubelet::network::NodeNetwork;
use skiff_kubelet::network::announce::{Announcer, IpLink};
use skiff_kubelet::network::guard::Guard;
use skiff_kubelet::network::node::NodeSetup;
use skiff_kubelet::network::pod::{CniNetwork, CniOptions};
use skiff_kubelet::node::identity::{self, KubeletTls, Trust};
use skiff_kubelet::pod::backoff::BackoffConfig;
use skiff_kubelet::pod::dns::NodeDns;
use skiff_kubelet::pod::sandbox::{NetnsNetwork, PodNetwork};
use skiff_kubelet::runtime::containerd::{
    ContainerdConfig, ContainerdRuntime, logger_next_to_current_exe,
};

/// The same allocator as the control plane's (see there why).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Parses `10s`, `500ms`, `5m`, `1h` or plain seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = text
        .find(|c: char| c.is_ascii_alphabetic())
        .map_or((text, "s"), |i| text.split_at(i));
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in {text:?} (use ms, s, m or h)"
            ));
        }
    };
    if !(0.0..=86_400.0 * 365.0).contains(&seconds) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

#[derive(Parser, Debug)]
#[command(
    name = "skiff-kubelet",
    version,
    about = "Skiff's node agent: runs pods on containerd"
)]
struct Flags {
    /// Name of this node.
    #[arg(long)]
    node_name: String,
    /// containerd's gRPC socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    containerd_socket: PathBuf,
    /// containerd namespace for this node's images and containers (one per node).
    #[arg(long, default_value = "skiff")]
    containerd_namespace: String,
    /// Private runc state folder (when several containerds share the machine).
    #[arg(long)]
    runc_root: Option<PathBuf>,
    /// Folder for pod files, logs and checkpoints.
    #[arg(long, default_value = "/var/lib/skiff-kubelet")]
    state_dir: PathBuf,
    /// Folder of static pod manifests, followed while running.
    #[arg(long)]
    manifests_dir: Option<PathBuf>,
    /// Folder of OCI image tarballs (from `skiff-images build`) imported on demand.
    #[arg(long)]
    image_dir: Option<PathBuf>,
    /// Address of the HTTP endpoints (/pods, /healthz, /metrics).
    #[arg(long, default_value = "127.0.0.1:10255")]
    http_listen: SocketAddr,
    /// Address of the gRPC NodeAgent service.
    #[arg(long, default_value = "127.0.0.1:10250")]
    grpc_listen: SocketAddr,
    /// The control plane's gRPC address; without it the kubelet runs standalone.
    #[arg(long)]
    control_plane: Option<String>,
    /// Node labels, `k=v,k2=v2`.
    #[arg(long, value_delimiter = ',')]
    node_labels: Vec<String>,
    /// Address reported as the node's InternalIP and pods' hostIP.
    #[arg(long)]
    node_ip: Option<String>,
    /// First CrashLoopBackOff delay (upstream 10s).
    #[arg(long, default_value = "10s", value_parser = duration)]
    backoff_base: Duration,
    /// Longest CrashLoopBackOff delay (upstream 300s).
    #[arg(long, default_value = "300s", value_parser = duration)]
    backoff_max: Duration,
    /// Clean running time after which back-off starts over (upstream 10m).
    #[arg(long, default_value = "10m", value_parser = duration)]
    backoff_reset: Duration,
    /// The skiff-cri-logger binary (default: next to this one).
    #[arg(long)]
    cri_logger: Option<PathBuf>,
    /// Pods' network: `cni` (an address on the node's bridge from the
    /// node's pod CIDR, routes to the other nodes) or `none` (loopback only).
    #[arg(long, default_value = "cni", value_parser = ["cni", "none"])]
    pod_network: String,
    /// The node's pod CIDR when no control plane assigns one (standalone).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// Where the CNI plugins are (Debian's containernetworking-plugins).
    #[arg(long, default_value = "/usr/lib/cni")]
    cni_bin_dir: PathBuf,
    /// The cluster DNS servers, `IP[,IP...]`, nameservers of `ClusterFirst`
    /// pods (upstream's flag; none: those pods fall back to `Default`).
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<IpAddr>,
    /// The cluster's domain, searched by `ClusterFirst` pods.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// The node's resolv.conf, base of `Default` pods' (`""`: none, pods
    /// get loopback nameservers as upstream's).
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: String,
    /// Run pods that name no seccomp profile under `RuntimeDefault`
    /// (upstream's flag; without it they run `Unconfined`, as upstream).
    #[arg(long)]
    seccomp_default: bool,
    /// Bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) to join the control
    /// plane with when the node has no usable certificates yet.
    #[arg(long)]
    token: Option<String>,
    /// The control plane's CA, pinned by its public key's hash
    /// (`sha256:<hex>`, kubeadm's `--discovery-token-ca-cert-hash`).
    #[arg(long, value_name = "sha256:HEX")]
    ca_cert_hash: Option<String>,
    /// The control plane's CA certificate, trusted as it is (instead of
    /// `--ca-cert-hash`).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// CA whose client certificates may call this kubelet (upstream's
    /// flag; default: the cluster CA the node joined).
    #[arg(long, value_name = "FILE")]
    client_ca_file: Option<PathBuf>,
    /// Serving certificate of the kubelet's ports (upstream's flag;
    /// default: the one issued when joining).
    #[arg(long, value_name = "FILE", requires = "tls_private_key_file")]
    tls_cert_file: Option<PathBuf>,
    /// Key of `--tls-cert-file`.
    #[arg(long, value_name = "FILE", requires = "tls_cert_file")]
    tls_private_key_file: Option<PathBuf>,
}

/// How long a kubelet keeps trying to reach the control plane to join.
const JOIN_PATIENCE: Duration = Duration::from_secs(120);

fn read(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// The kubelet's TLS: joined (or kept) node credentials when it has a
/// control plane, the given files otherwise; `--tls-cert-file`,
/// `--tls-private-key-file` and `--client-ca-file` override either.
async fn kubelet_tls(flags: &Flags) -> anyhow::Result<KubeletTls> {
    let mut tls = match &flags.control_plane {
        Some(cp) => {
            let trust = match (&flags.ca_cert_hash, &flags.ca_file) {
                (Some(hash), _) => Some(Trust::Hash(hash.clone())),
                (None, Some(file)) => Some(Trust::CaPem(read(file)?)),
                (None, None) => None,
            };
            let mut names = vec![flags.node_name.clone()];
            names.extend(flags.node_ip.clone());
            let ip = flags.grpc_listen.ip();
            if !ip.is_unspecified() {
                names.push(ip.to_string());
            }
            names.dedup();
            let creds = match trust {
                Some(trust) => {
                    identity::load_or_join(
                        &flags.state_dir,
                        &identity::Join {
                            control_plane: cp.clone(),
                            token: flags.token.clone(),
                            trust,
                            node_name: flags.node_name.clone(),
                            serving_names: names.clone(),
                            patience: JOIN_PATIENCE,
                        },
                    )
                    .await?
                }
                // Only kept certificates: their CA was trusted at join.
                None => match identity::load(&flags.state_dir, &flags.node_name, None) {
                    Some(creds) => creds,
                    None => {
                        identity::no_kept_credentials(&flags.state_dir)?;
                        bail!(
                            "--control-plane needs --ca-cert-hash or --ca-file to trust it on first join"
                        )
                    }
                },
            };
            let mut tls = KubeletTls::from_credentials(&creds)?;
            if let Some(renewal) = tls.renewal.as_mut() {
                renewal.serving_names = names;
            }
            tls
        }
        None => {
            let (Some(cert), Some(key), Some(ca)) = (
                &flags.tls_cert_file,
                &flags.tls_private_key_file,
                &flags.client_ca_file,
            ) else {
                bail!(
                    "a kubelet without --control-plane needs --tls-cert-file, --tls-private-key-file and --client-ca-file"
                );
            };
            KubeletTls {
                serving_cert_pem: read(cert)?,
                serving_key_pem: read(key)?,
                client_ca_pem: read(ca)?,
                control_plane: None,
                renewal: None,
            }
        }
    };
    if let (Some(cert), Some(key)) = (&flags.tls_cert_file, &flags.tls_private_key_file) {
        tls.serving_cert_pem = read(cert)?;
        tls.serving_key_pem = read(key)?;
        // Given files are the operator's to renew.
        if let Some(renewal) = tls.renewal.as_mut() {
            renewal.serving = None;
        }
    }
    if let Some(ca) = &flags.client_ca_file {
        tls.client_ca_pem = read(ca)?;
    }
    Ok(tls)
}

/// `--cluster-domain`: empty (no cluster search domains, as upstream), or
/// a DNS name as the control plane's own `--cluster-domain` accepts it.
fn cluster_domain(flag: &str) -> anyhow::Result<String> {
    let domain = flag.strip_suffix('.').unwrap_or(flag);
    let bad_label = |l: &str| {
        l.is_empty() || l.len() > 63 || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if !domain.is_empty() && (domain.len() > 253 || domain.split('.').any(bad_label)) {
        bail!("--cluster-domain {flag:?} is not a DNS name");
    }
    Ok(domain.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    for label in &flags.node_labels {
        if !label.contains('=') {
            bail!("--node-labels: {label:?} is not k=v");
        }
    }
    // Before containerd: a node that cannot join stops here, with the
    // reason, whatever else it lacks.
    let tls = kubelet_tls(&flags).await?;
    let logger = flags
        .cri_logger
        .clone()
        .or_else(logger_next_to_current_exe)
        .context("skiff-cri-logger not found next to skiff-kubelet; pass --cri-logger")?;
    let mut runtime_config = ContainerdConfig::new(
        &flags.containerd_socket,
        &flags.containerd_namespace,
        logger,
        &flags.state_dir,
    );
    runtime_config.runc_root = flags.runc_root.clone();
    let runtime = ContainerdRuntime::connect(runtime_config)
        .await
        .context("connecting to containerd")?;
    let config = KubeletConfig {
        tls,
        node_name: flags.node_name.clone(),
        state_dir: flags.state_dir.clone(),
        manifests_dir: flags.manifests_dir.clone(),
        image_dir: flags.image_dir.clone(),
        http_listen: flags.http_listen,
        grpc_listen: flags.grpc_listen,
        node_ip: flags.node_ip.clone(),
        backoff: BackoffConfig {
            base: flags.backoff_base,
            max: flags.backoff_max,
            reset_after: flags.backoff_reset,
        },
        control_plane: flags.control_plane.clone(),
        node_labels: flags
            .node_labels
            .iter()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        node_network: None,
        watch_services: true,
        dns: NodeDns {
            cluster_dns: flags.cluster_dns.clone(),
            cluster_domain: cluster_domain(&flags.cluster_domain)?,
            resolv_conf: (!flags.resolv_conf.is_empty()).then(|| PathBuf::from(&flags.resolv_conf)),
            node_ips: flags
                .node_ip
                .iter()
                .filter_map(|ip| ip.parse().ok())
                .collect(),
        },
        seccomp_default: flags.seccomp_default,
    };
    let prefix = format!("skiff-{}", flags.node_name);
    let standalone = flags.pod_cidr.clone().map(|cidr| NodeNetwork {
        cluster_cidr: cidr.clone(),
        pod_cidr: cidr,
        peers: Vec::new(),
    });
    let (publish, node_network) = tokio::sync::watch::channel(standalone);
    let cni = flags.pod_network == "cni";
    let network: Arc<dyn PodNetwork> = if cni {
        let options = CniOptions {
            plugin_dirs: vec![flags.cni_bin_dir.clone()],
            ..CniOptions::default()
        };
        Arc::new(CniNetwork::with_options(
            prefix,
            &flags.state_dir,
            node_network.clone(),
            options,
        ))
    } else {
        Arc::new(NetnsNetwork::new(prefix))
    };
    let mut config = config;
    config.node_network = cni.then(|| Arc::new(publish));
    // Routes to the other nodes, forwarding and masquerade, kept in step
    // with what the control plane says.
    let guard = Guard {
        kubelet_ports: vec![flags.grpc_listen.port(), flags.http_listen.port()],
        control_plane: flags
            .control_plane
            .as_deref()
            .map(|cp| cp.split_once("://").map_or(cp, |(_, rest)| rest))
            .and_then(|cp| cp.parse().ok()),
    };
    let proxy_network = node_network.clone();
    let announce_network = node_network.clone();
    let setup = cni.then(|| tokio::spawn(NodeSetup::new().with_guard(guard).run(node_network)));
    let running = app::start(config, Arc::new(runtime), network).await?;
    // The service proxy programs the node's namespace like the routes do;
    // its rules stay when the kubelet stops, as kube-proxy's do.
    let proxy = cni.then(|| {
        tokio::spawn(skiff_kubelet::proxy::feed::run(
            flags.node_name.clone(),
            proxy_network,
            running.node.ctx.services.subscribe(),
        ))
    });
    // The LoadBalancer addresses this node owns are put on the interface
    // carrying its node IP and announced (ARP), next to the proxy that
    // forwards them.
    let announcer = cni
        .then(|| {
            let node_ip: Option<std::net::Ipv4Addr> =
                flags.node_ip.as_deref().and_then(|ip| ip.parse().ok());
            if node_ip.is_none() {
                tracing::warn!("no IPv4 --node-ip: LoadBalancer addresses are not announced");
            }
            node_ip
        })
        .flatten()
        .map(|node_ip| {
            let announcer = Announcer::new(
                flags.node_name.clone(),
                IpLink::new(node_ip),
                &flags.state_dir,
            );
            tokio::spawn(announcer.run(announce_network, running.node.ctx.services.subscribe()))
        });
    eprintln!(
        "skiff-kubelet: node {} ready (grpc {}, http {})",
        flags.node_name, running.grpc_addr, running.http_addr
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("skiff-kubelet: stopping (containers keep running)");
    running.stop().await;
    // Routes and rules stay, as the pods do: a restarted kubelet finds
    // them in place and traffic never stops (`skiff down` removes a node's
    // namespace with everything in it).
    // Announced addresses stay too: the node still forwards them.
    for task in [setup, proxy, announcer].into_iter().flatten() {
        task.abort();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{Flags, cluster_domain, duration};
    use clap::Parser;

    #[test]
    fn dns_flags_take_upstream_s_forms() {
        let base = ["skiff-kubelet", "--node-name", "n"];
        let flags = Flags::try_parse_from(base).expect("defaults");
        assert!(flags.cluster_dns.is_empty());
        assert_eq!(flags.cluster_domain, "cluster.local");
        assert_eq!(flags.resolv_conf, "/etc/resolv.conf");
        let flags = Flags::try_parse_from(base.into_iter().chain([
            "--cluster-dns",
            "10.96.0.10,fd00::a",
            "--resolv-conf",
            "",
        ]))
        .expect("flags");
        assert_eq!(flags.cluster_dns.len(), 2);
        assert_eq!(flags.resolv_conf, "");
        assert!(
            Flags::try_parse_from(base.into_iter().chain(["--cluster-dns", "dns.local"])).is_err()
        );
        assert_eq!(
            cluster_domain("cluster.local.").ok().as_deref(),
            Some("cluster.local")
        );
        assert_eq!(cluster_domain("").ok().as_deref(), Some(""));
        assert!(cluster_domain("bad..domain").is_err());
        assert!(cluster_domain("under_score.local").is_err());
    }
    use std::time::Duration;

    #[test]
    fn durations_accept_units() {
        assert_eq!(duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("2"), Ok(Duration::from_secs(2)));
        assert!(duration("fast").is_err());
        assert!(duration("5d").is_err());
    }
}
