//! `skiff-control-plane`: the API server (and, next, the scheduler and
//! controllers) over a durable store in `--data-dir`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use skiff_control_plane::api::{self, ApiState};
use skiff_control_plane::auth::authz;
use skiff_control_plane::kubeconfig;
use skiff_control_plane::registry::allocation::{self, IpRange, PortRange, ServiceRanges};
use skiff_control_plane::store::sqlite::SqliteStore;

/// mimalloc rather than glibc's malloc: the control plane allocates and
/// frees many small JSON trees per object change, and with glibc the
/// freeing (chunk consolidation) was a fifth of its CPU in the 1,000-node
/// scheduler benchmark; with mimalloc the same run needs ~20 % less CPU.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser, Debug)]
#[command(
    name = "skiff-control-plane",
    version,
    about = "Skiff's Kubernetes-compatible control plane"
)]
struct Flags {
    /// Folder for the store and the kubeconfig.
    #[arg(long)]
    data_dir: PathBuf,
    /// Address of the Kubernetes API (what kubectl talks to).
    #[arg(long, default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Static bearer tokens, upstream's CSV format:
    /// `token,user,uid,"group1,group2"` per line.
    #[arg(long, value_name = "FILE")]
    token_auth_file: Option<PathBuf>,
    /// Authorizers, in order (upstream's flag): `Node`, `RBAC`,
    /// `AlwaysAllow` (benchmarks). `system:masters` is always allowed.
    #[arg(long, default_value = "Node,RBAC", value_delimiter = ',', value_parser = authz::Mode::parse)]
    authorization_mode: Vec<authz::Mode>,
    /// More names and addresses for the API's serving certificate (k3s's
    /// flag), beyond the `kubernetes` Service's, loopback and the
    /// listen and advertised addresses.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    tls_san: Vec<String>,
    /// Address of the gRPC endpoint for nodes.
    #[arg(long, default_value = "127.0.0.1:6444")]
    grpc_listen: SocketAddr,
    /// The address pods reach the API at, published as the endpoint of the
    /// `default/kubernetes` Service (upstream's flag); with a loopback
    /// `--listen`, the API is served there too, on the same port. Unset:
    /// the `--listen` address unless it is a loopback or wildcard one, in
    /// which case the Service has no endpoint.
    #[arg(long, value_name = "IP")]
    advertise_address: Option<std::net::IpAddr>,
    /// Silence after which a node is Ready=Unknown (lab default; upstream 50s).
    #[arg(long, default_value = "4s", value_parser = seconds)]
    node_monitor_grace_period: std::time::Duration,
    /// Time an unreachable node keeps its pods (lab default; upstream 300s).
    #[arg(long, default_value = "4s", value_parser = seconds)]
    pod_eviction_timeout: std::time::Duration,
    /// Seconds a new pod tolerates `node.kubernetes.io/not-ready:NoExecute`
    /// (upstream's DefaultTolerationSeconds; upstream 300). Unset, the
    /// pod eviction timeout, so the lab profile evicts as fast as before.
    #[arg(long)]
    default_not_ready_toleration_seconds: Option<i64>,
    /// Seconds a new pod tolerates `node.kubernetes.io/unreachable:NoExecute`
    /// (upstream 300); unset, the pod eviction timeout.
    #[arg(long)]
    default_unreachable_toleration_seconds: Option<i64>,
    /// Longest time an unchanged node status goes unwritten; heartbeats
    /// in between only refresh the in-memory liveness (upstream's
    /// nodeStatusReportFrequency, 5m).
    #[arg(long, default_value = "10s", value_parser = seconds)]
    node_status_report_interval: std::time::Duration,
    /// Delay before a Job replaces its first failed pod; it doubles with
    /// each further failure (upstream 10s; shorten it for labs).
    #[arg(long, default_value = "10s", value_parser = seconds)]
    job_backoff_base: std::time::Duration,
    /// Read-only requests served at once, long-running ones (watch, exec,
    /// attach, logs, port-forward, proxy) not counted; more are answered
    /// 429 (0: no limit).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating requests served at once; more are answered 429 (0: no limit).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// Longest delay between a Job's failed pods (upstream 10m).
    #[arg(long, default_value = "10m", value_parser = seconds)]
    job_backoff_max: std::time::Duration,
    /// The IPv4 CIDR Services get cluster IPs from; its first address is
    /// the `kubernetes` Service's (upstream's flag and kubeadm's default).
    #[arg(long, default_value = "10.96.0.0/12", value_parser = IpRange::parse)]
    service_cluster_ip_range: IpRange,
    /// The ports NodePort and LoadBalancer Services get nodePorts from.
    #[arg(long, default_value = "30000-32767", value_parser = PortRange::parse)]
    service_node_port_range: PortRange,
    /// The pod network, cut into one subnet per node (`spec.podCIDR`).
    #[arg(long, default_value = "10.244.0.0/16")]
    cluster_cidr: String,
    /// How long the certificates the control plane signs last (upstream's
    /// flag and default): nodes' own (kubelets renew theirs at 70-90 % of
    /// it; short values such as `30s` are for tests of rotation) and the
    /// CSR signers' longest (a request's `expirationSeconds` may ask for less).
    #[arg(long, default_value = skiff_pki::signing::DEFAULT_DURATION_TEXT, value_parser = skiff_pki::signing::parse_duration)]
    cluster_signing_duration: std::time::Duration,
    /// The prefix length of each node's pod subnet.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// Addresses LoadBalancer Services get (`172.29.1.200-172.29.1.249` or
    /// a CIDR); without, they stay `<pending>` (no cloud provider).
    #[arg(long, value_name = "RANGE")]
    load_balancer_pool: Option<String>,
    /// Where the cluster DNS server answers (UDP and TCP), such as
    /// `172.29.1.1:53`; published as the `kube-system/kube-dns` Service at
    /// the Service CIDR's tenth address. Without it, no cluster DNS.
    #[arg(long, value_name = "ADDR:PORT")]
    cluster_dns_listen: Option<SocketAddr>,
    /// The cluster's DNS domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// TTL of cluster DNS records, in seconds.
    #[arg(long, default_value_t = 5)]
    dns_ttl: u32,
    /// Resolvers that answer names outside the cluster domain (`IP` or
    /// `IP:PORT`, comma-separated), as CoreDNS's `forward`; without, such
    /// names are refused and no query leaves the control plane.
    #[arg(long, value_name = "ADDR", value_delimiter = ',', value_parser = upstream)]
    cluster_dns_upstream: Vec<SocketAddr>,
    /// Port of the cluster DNS server's `/metrics` (Prometheus text), on
    /// the DNS listen address; 0: none.
    #[arg(long, default_value_t = 9153)]
    cluster_dns_metrics_port: u16,
    /// How long an API connection may have nothing open before it is
    /// closed (upstream's fixed 90 s); shorter only in tests.
    #[arg(long, default_value = "90s", value_parser = seconds, hide = true)]
    api_idle_timeout: std::time::Duration,
}

/// How often the `kube-dns` Service and slice, and the `kubernetes`
/// Service's endpoints, are checked (and made again if deleted).
const KUBE_DNS_RESYNC: std::time::Duration = std::time::Duration::from_secs(30);

/// Starts cluster DNS: the index following the store, the server on
/// `listen`, its metrics, and `kube-dns` kept as the flags say.
async fn start_dns(
    flags: &Flags,
    listen: SocketAddr,
    store: Arc<dyn skiff_control_plane::store::Store>,
    ranges: ServiceRanges,
) -> anyhow::Result<()> {
    use skiff_control_plane::dns;
    let index: dns::SharedIndex = Arc::default();
    tokio::spawn(dns::feed::follow(store.clone(), index.clone()));
    let metrics = Arc::new(dns::DnsMetrics::default());
    let mut config = dns::DnsConfig::new(&flags.cluster_domain, flags.dns_ttl);
    if config.domain.is_empty()
        || config.domain.split('.').any(|l| {
            l.is_empty()
                || l.len() > 63
                || !l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
    {
        anyhow::bail!(
            "--cluster-domain {:?} is not a DNS name",
            flags.cluster_domain
        );
    }
    config.upstreams = flags.cluster_dns_upstream.clone();
    let running = dns::serve(listen, index, config, metrics.clone())
        .await
        .context("--cluster-dns-listen")?;
    let dns_addr = running.udp;
    tokio::spawn(running.wait());
    let metrics_port = if flags.cluster_dns_metrics_port == 0 {
        None
    } else {
        let at = SocketAddr::new(dns_addr.ip(), flags.cluster_dns_metrics_port);
        match tokio::net::TcpListener::bind(at).await {
            Ok(listener) => {
                let port = listener.local_addr()?.port();
                tokio::spawn(dns::server::serve_metrics(listener, metrics));
                Some(port)
            }
            Err(e) => {
                tracing::warn!(%at, error = %e, "DNS metrics not served");
                None
            }
        }
    };
    let published = dns::service::Published {
        dns: dns_addr,
        metrics_port,
    };
    let objects = skiff_control_plane::registry::objects::Objects::new(store);
    // Made now, then kept: a failure (another Service holds the tenth
    // address) is reported and tried again, the server answers meanwhile.
    if let Err(e) = dns::service::ensure(&objects, &ranges, published).await {
        tracing::error!(error = %e, "creating the kube-dns Service");
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(KUBE_DNS_RESYNC).await;
            if let Err(e) = dns::service::ensure(&objects, &ranges, published).await {
                tracing::warn!(error = %e, "keeping the kube-dns Service");
            }
        }
    });
    Ok(())
}

/// Raises the soft limit of open files to the hard one: every watch,
/// list and node link is a socket, and the default soft limit (1,024)
/// would refuse connections long before memory or threads run short.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    let raised = unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0
        }
    };
    if !raised {
        tracing::warn!("could not raise the open-files limit");
    }
}

/// `IP:PORT`, or an `IP` on port 53.
fn upstream(text: &str) -> Result<SocketAddr, String> {
    text.parse::<SocketAddr>()
        .or_else(|_| {
            text.parse::<std::net::IpAddr>()
                .map(|ip| SocketAddr::new(ip, 53))
        })
        .map_err(|_| format!("invalid resolver address {text:?}"))
}

/// `4s`, `500ms`, `2m` or plain seconds.
fn seconds(text: &str) -> Result<std::time::Duration, String> {
    let t = text.trim();
    let (n, mult) = if let Some(v) = t.strip_suffix("ms") {
        (v, 0.001)
    } else if let Some(v) = t.strip_suffix('s') {
        (v, 1.0)
    } else if let Some(v) = t.strip_suffix('m') {
        (v, 60.0)
    } else {
        (t, 1.0)
    };
    let v: f64 = n
        .parse()
        .map_err(|_| format!("invalid duration {text:?}"))?;
    if !(0.0..=86_400.0).contains(&(v * mult)) {
        return Err(format!("duration {text:?} out of range"));
    }
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

fn main() -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(collect_when_idle)
        .build()
        .context("starting the tokio runtime")?
        .block_on(run())
}

/// Hands a worker thread's free memory back when the thread goes idle, at
/// most every two seconds per thread. mimalloc frees a thread's empty pages
/// only when that thread allocates again, so after a burst (2,000 watchers
/// closing at once) idle workers kept about 100 MiB they no longer used.
fn collect_when_idle() {
    use std::cell::Cell;
    use std::time::Instant;
    thread_local! {
        static LAST: Cell<Option<Instant>> = const { Cell::new(None) };
    }
    let now = Instant::now();
    let due = LAST.with(|last| {
        let due = last
            .get()
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_secs(2));
        if due {
            last.set(Some(now));
        }
        due
    });
    if due {
        // SAFETY: mi_collect only walks the calling thread's own heap and
        // the allocator's shared structures under its own locks.
        unsafe { libmimalloc_sys::mi_collect(true) }
    }
}

/// How often the default roles and bindings are checked (and made again
/// if deleted).
const RBAC_BOOTSTRAP_RESYNC: std::time::Duration = std::time::Duration::from_secs(30);

/// The default roles and bindings, then the RBAC index following the
/// store; returns once the index holds every role and binding, so the
/// first requests are authorized against them.
async fn start_rbac(
    store: Arc<dyn skiff_control_plane::store::Store>,
    rbac: Arc<authz::rbac::Rbac>,
) -> anyhow::Result<()> {
    let objects = skiff_control_plane::registry::objects::Objects::new(store.clone());
    let new_cluster = authz::bootstrap::is_new(&objects)
        .await
        .context("reading the default RBAC roles")?;
    authz::bootstrap::ensure(&objects)
        .await
        .context("creating the default RBAC roles")?;
    if new_cluster {
        authz::bootstrap::create_initial(&objects)
            .await
            .context("creating the initial RBAC bindings")?;
    }
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(RBAC_BOOTSTRAP_RESYNC).await;
            if let Err(e) = authz::bootstrap::ensure(&objects).await {
                tracing::warn!(error = %e, "keeping the default RBAC roles");
            }
        }
    });
    let (ready, listed) = tokio::sync::oneshot::channel();
    tokio::spawn(authz::rbac::feed::follow(store, rbac, Some(ready)));
    listed.await.context("loading RBAC roles and bindings")?;
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,hickory_server=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    raise_fd_limit();
    let eviction_seconds = i64::try_from(flags.pod_eviction_timeout.as_secs()).unwrap_or(300);
    skiff_control_plane::registry::admission::set_toleration_seconds(
        skiff_control_plane::registry::admission::TolerationSeconds {
            not_ready: flags
                .default_not_ready_toleration_seconds
                .unwrap_or(eviction_seconds),
            unreachable: flags
                .default_unreachable_toleration_seconds
                .unwrap_or(eviction_seconds),
        },
    );
    skiff_control_plane::registry::service_account::enable();
    let ranges = ServiceRanges {
        ips: flags.service_cluster_ip_range,
        node_ports: flags.service_node_port_range,
    };
    allocation::set_ranges(ranges);
    allocation::pod_cidr::set_cluster_cidr(
        allocation::pod_cidr::ClusterCidr::parse(&flags.cluster_cidr, flags.node_cidr_mask_size)
            .context("--cluster-cidr / --node-cidr-mask-size")?,
    );
    allocation::lb_pool::set_load_balancer_pool(
        flags
            .load_balancer_pool
            .as_deref()
            .map(allocation::lb_pool::LbPool::parse)
            .transpose()
            .context("--load-balancer-pool")?,
    );
    std::fs::create_dir_all(&flags.data_dir)
        .with_context(|| format!("creating {}", flags.data_dir.display()))?;
    let store =
        SqliteStore::open(&flags.data_dir.join("store.sqlite")).context("opening the store")?;
    let listener = tokio::net::TcpListener::bind(flags.listen)
        .await
        .with_context(|| format!("listening on {}", flags.listen))?;
    let address = listener.local_addr()?.to_string();
    let mut state = ApiState::new(Arc::new(store), address.clone());
    state.inflight = api::inflight::InFlight::new(
        flags.max_requests_inflight,
        flags.max_mutating_requests_inflight,
    );
    let signer = Arc::new(
        skiff_control_plane::auth::tokens::TokenSigner::load_or_create(
            &flags.data_dir.join("pki"),
            &skiff_control_plane::auth::tokens::issuer_for(&flags.cluster_domain),
        )
        .context("preparing the service account signing key")?,
    );
    state.token_signer = Some(signer.clone());
    let bound_objects =
        Arc::new(skiff_control_plane::auth::authn::bound_objects::BoundObjects::default());
    tokio::spawn(skiff_control_plane::auth::authn::bound_objects::follow(
        state.store.clone(),
        bound_objects.clone(),
    ));
    let token_signer = signer.clone();
    state.authenticator = Arc::new(skiff_control_plane::auth::authn::Authenticator {
        tokens: match &flags.token_auth_file {
            Some(path) => skiff_control_plane::auth::authn::token_file::TokenFile::read(path)?,
            None => Default::default(),
        },
        service_accounts: Some(
            skiff_control_plane::auth::authn::service_account::ServiceAccountTokens::new(
                signer,
                skiff_control_plane::registry::objects::Objects::new(state.store.clone()),
            )
            .with_index(bound_objects),
        ),
        ..Default::default()
    });
    let rbac = Arc::new(authz::rbac::Rbac::default());
    state.authorization = Arc::new(authz::Authorization::new(
        &flags.authorization_mode,
        rbac.clone(),
    ));
    tokio::spawn(state.authorization.node.clone().follow(state.store.clone()));
    // The csrapproving controller asks the API server's own authorizer, as
    // upstream's asks a SubjectAccessReview.
    skiff_control_plane::controllers::certificates::approver::configure(Arc::new(
        state.authorization.chain.clone(),
    ));
    let state = Arc::new(state);
    api::handlers::bootstrap(&state)
        .await
        .context("creating the default namespaces")?;
    start_rbac(state.store.clone(), rbac).await?;
    // Reservations whose Service went while the control plane was down
    // (or died between the two writes) are taken back before any create.
    allocation::reservations::repair(state.store.as_ref())
        .await
        .context("repairing Service allocations")?;
    let api_port = listener.local_addr()?.port();
    allocation::kubernetes::ensure(state.store.as_ref(), &ranges, api_port)
        .await
        .context("creating the kubernetes Service")?;
    let advertise = flags.advertise_address.or_else(|| {
        let ip = flags.listen.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    });
    if let Some(ip) = advertise {
        let published = allocation::kubernetes::endpoint(SocketAddr::new(ip, api_port));
        let objects = skiff_control_plane::registry::objects::Objects::new(state.store.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) =
                    skiff_control_plane::registry::published::ensure(&objects, &published).await
                {
                    tracing::warn!(error = %e, "keeping the kubernetes Service's endpoints");
                }
                tokio::time::sleep(KUBE_DNS_RESYNC).await;
            }
        });
    }
    if let Some(listen) = flags.cluster_dns_listen {
        start_dns(&flags, listen, state.store.clone(), ranges).await?;
    }
    let api_ip = listener.local_addr()?.ip();
    let names = skiff_control_plane::auth::certificates::api_names(
        &flags.cluster_domain,
        std::net::IpAddr::V4(ranges.ips.first()),
        &[Some(api_ip), advertise, Some(flags.grpc_listen.ip())]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>(),
        &flags.tls_san,
    );
    let certificates =
        skiff_control_plane::auth::certificates::prepare(&flags.data_dir.join("pki"), names)
            .context("preparing the cluster's certificates")?;
    skiff_control_plane::controllers::root_ca::set_root_ca(certificates.ca.cert_pem().to_string());
    skiff_control_plane::controllers::certificates::signer::configure(
        skiff_control_plane::controllers::certificates::signer::SigningConfig {
            pki_dir: flags.data_dir.join("pki"),
            duration: flags.cluster_signing_duration,
        },
    );
    let kubeconfig_path = flags.data_dir.join("kubeconfig");
    // A wildcard listen address is no address to dial (nor in the serving
    // certificate): the kubeconfig names the advertised one, or loopback.
    let dial = if api_ip.is_unspecified() {
        SocketAddr::new(
            advertise.unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            api_port,
        )
        .to_string()
    } else {
        address.clone()
    };
    kubeconfig::write(
        &kubeconfig_path,
        &kubeconfig::KubeconfigData {
            address: &dial,
            ca_pem: certificates.ca.cert_pem(),
            cert_pem: &certificates.admin.cert_pem,
            key_pem: &certificates.admin.key_pem,
            user: skiff_control_plane::auth::certificates::ADMIN_USER,
        },
    )
    .context("writing the kubeconfig")?;
    let objects = skiff_control_plane::registry::objects::Objects::new(state.store.clone());
    let liveness = Arc::new(skiff_control_plane::nodes::liveness::Liveness::new());
    let view = skiff_control_plane::nodes::view::NodeView::start(state.store.clone());
    let registry = skiff_proto::node::v1::node_registry_server::NodeRegistryServer::new(
        skiff_control_plane::nodes::registry::Registry::new(
            objects.clone(),
            liveness.clone(),
            view.clone(),
            skiff_control_plane::nodes::registry::RegistryConfig {
                status_report_interval: flags.node_status_report_interval,
            },
        )
        .with_token_signer(token_signer),
    );
    let grpc = tokio::net::TcpListener::bind(flags.grpc_listen)
        .await
        .with_context(|| format!("listening on {}", flags.grpc_listen))?;
    let grpc_address = grpc.local_addr()?;
    skiff_control_plane::nodes::kubelet_client::configure(certificates.kubelet_client_tls.clone());
    let bootstrap = skiff_control_plane::nodes::bootstrap::Bootstrap::server(
        objects.clone(),
        Arc::new(
            skiff_pki::ca::Ca::load(&flags.data_dir.join("pki"))
                .context("loading the cluster CA")?,
        ),
        Arc::new(
            skiff_pki::ca::Ca::load_as(&flags.data_dir.join("pki"), skiff_pki::ca::KUBELET_SERVING)
                .context("loading the kubelet-serving CA")?,
        ),
        skiff_control_plane::nodes::bootstrap::ApiNames::new(
            &flags.cluster_domain,
            std::net::IpAddr::V4(ranges.ips.first()),
            advertise,
        ),
        flags.cluster_signing_duration,
    );
    let node_tls = certificates.node_tls.clone();
    tokio::spawn(async move {
        let result = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(skiff_proto::link::PING_INTERVAL))
            .http2_keepalive_timeout(Some(skiff_proto::link::PING_TIMEOUT))
            .add_service(bootstrap)
            .add_service(registry)
            .serve_with_incoming(skiff_proto::link::tls_incoming_stream(grpc, node_tls))
            .await;
        if let Err(e) = result {
            tracing::error!(error = %e, "node gRPC server failed");
        }
    });
    tracing::info!(%grpc_address, "serving node registration");
    let (_supervisor, _) = ractor::Actor::spawn(
        None,
        skiff_control_plane::controllers::supervisor::Supervisor,
        (
            // The same Objects as the node registry: one event recorder.
            objects,
            skiff_control_plane::controllers::node_lifecycle::LifecycleConfig {
                grace: flags.node_monitor_grace_period,
                eviction: flags.pod_eviction_timeout,
            },
            liveness,
            view,
            skiff_control_plane::controllers::job::Backoff {
                base: flags.job_backoff_base,
                max: flags.job_backoff_max,
            },
        ),
    )
    .await
    .context("starting the controllers")?;
    eprintln!(
        "skiff-control-plane: serving the Kubernetes API on https://{address}; kubeconfig: {}; CA {}",
        kubeconfig_path.display(),
        certificates.ca.hash()
    );
    let router = api::router(state);
    let timeouts = api::connection::Timeouts {
        idle: flags.api_idle_timeout,
        ..api::connection::Timeouts::UPSTREAM
    };
    // A loopback --listen serves this machine's clients only; pods reach
    // the API through the kubernetes Service at the advertised address,
    // so it is served there too (upstream binds one address for both).
    if let Some(ip) =
        advertise.filter(|ip| flags.listen.ip().is_loopback() && *ip != flags.listen.ip())
    {
        let at = SocketAddr::new(ip, api_port);
        // An advertised address need not be this machine's (a NAT or load
        // balancer in front): then only --listen serves, as upstream's.
        match tokio::net::TcpListener::bind(at).await {
            Ok(pods_listener) => {
                tracing::info!(%at, "serving the Kubernetes API at the advertised address");
                tokio::spawn(api::serve::serve_tls(
                    pods_listener,
                    certificates.api_tls.clone(),
                    router.clone(),
                    timeouts,
                    std::future::pending(),
                ));
            }
            Err(e) => {
                tracing::warn!(%at, error = %e, "not serving at the advertised address");
            }
        }
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    api::serve::serve_tls(
        listener,
        certificates.api_tls.clone(),
        router,
        timeouts,
        async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        },
    )
    .await;
    Ok(())
}
