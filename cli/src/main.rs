//! `skiff`: runs Skiff on this machine.
//!
//! - `skiff up --nodes N --data-dir DIR`: a whole local cluster (containerd,
//!   control plane, N kubelets) that `kubectl` drives, until Ctrl-C.
//! - `skiff node stop|start|kill|partition|heal NAME --data-dir DIR`: chaos
//!   on its nodes, each of which has its own network namespace and address.
//! - `skiff server` / `skiff agent`: a cluster of machines; `skiff token`
//!   makes, lists and deletes the bootstrap tokens agents join with.
//! - `skiff demo`: the container runtime alone, on a private containerd.

mod agent;
mod api;
mod cluster;
mod demo;
mod down;
mod freeze;
mod join;
mod kubeconfig;
mod kubelet;
mod leftovers;
mod network;
mod process;
mod progress;
mod record;
mod server;
mod session;
mod signals;
mod status;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "A Kubernetes-style node runtime for labs and tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a local cluster: containerd, the control plane and N nodes.
    Up(UpArgs),
    /// Run the control plane alone for a cluster of machines; prints the
    /// join token, the CA hash and the `skiff agent` line to join with.
    Server(ServerArgs),
    /// Join this machine to a `skiff server` as a node: a kubelet with its
    /// own containerd.
    Agent {
        /// The server's API, `https://HOST:PORT` (nodes join at PORT + 1).
        #[arg(long, value_name = "URL")]
        server: String,
        /// Bootstrap token (`[a-z0-9]{6}.[a-z0-9]{16}`) from `skiff server`.
        #[arg(long)]
        token: Option<String>,
        /// The server's CA, pinned by hash (`sha256:<hex>`).
        #[arg(long, value_name = "sha256:HEX")]
        ca_cert_hash: Option<String>,
        /// The server's CA certificate, trusted as it is.
        #[arg(long, value_name = "FILE")]
        ca_file: Option<PathBuf>,
        /// Folder for containerd, the node's state and certificates, logs.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
        /// The node's name (default: the hostname).
        #[arg(long)]
        node_name: Option<String>,
        /// The node's address (default: this machine's address toward the
        /// server).
        #[arg(long, value_name = "IP")]
        node_ip: Option<std::net::IpAddr>,
        /// See `skiff up --pod-network`.
        #[arg(long, value_enum, default_value = "cni")]
        pod_network: PodNetworkMode,
        /// The cluster DNS Service's address pods resolve with.
        #[arg(long, default_value = "10.96.0.10", value_name = "IP")]
        cluster_dns: std::net::IpAddr,
        /// The kubelet's gRPC port (its HTTP port is 5 above).
        #[arg(long, default_value_t = 10250)]
        kubelet_port: u16,
    },
    /// Manage bootstrap tokens, as `kubeadm token`: `create` (prints the
    /// token, or with --print-join-command the `skiff agent` line),
    /// `list`, `delete`.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
        #[command(flatten)]
        target: token::Target,
    },
    /// Act on a node of the cluster running from DIR.
    Node {
        /// What to do.
        #[arg(value_enum)]
        action: cluster::NodeAction,
        /// Node name (`node1`, ...).
        name: String,
        /// The `skiff up` data folder.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Stop the cluster of DIR and remove everything it made (processes,
    /// containers, namespaces, bridge, nftables tables, mounts, cgroups,
    /// IP reservations), also when `skiff up` died without cleaning up.
    Down {
        /// The `skiff up` data folder.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Show the parts of the cluster of DIR and their health; exits
    /// non-zero when the cluster is not running.
    Status {
        /// The `skiff up` data folder.
        #[arg(long, value_name = "DIR")]
        data_dir: PathBuf,
    },
    /// Build the images, then run a busybox and a webapp container through
    /// Skiff's containerd runtime and show their output.
    Demo {
        /// Keep containerd's state, images and logs here (default: a
        /// temporary directory removed afterwards).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// Port the webapp listens on (host network).
        #[arg(long, default_value_t = 18080)]
        port: u16,
    },
}

// `skiff up`'s flags.
#[derive(clap::Args)]
struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Folder for the cluster's state, logs and kubeconfig.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Port of the Kubernetes API (the next one serves nodes).
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// The CIDR Services get cluster IPs from (the control plane's
    /// default, 10.96.0.0/12, when unset).
    #[arg(long, value_name = "CIDR")]
    service_cluster_ip_range: Option<String>,
    /// The ports NodePort Services get (default 30000-32767).
    #[arg(long, value_name = "FIRST-LAST")]
    service_node_port_range: Option<String>,
    /// Addresses LoadBalancer Services get, announced by the nodes on
    /// the cluster's bridge (default: see --load-balancer-pool-size).
    #[arg(long, value_name = "RANGE")]
    load_balancer_pool: Option<String>,
    /// Without --load-balancer-pool, how many addresses of the bridge's
    /// network LoadBalancer Services get: 172.29.<id>.200 and up.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=50))]
    load_balancer_pool_size: u8,
    /// `cni` gives every pod an address on the pod network (bridge,
    /// routes between nodes, the service proxy); `none` leaves pods a
    /// loopback-only namespace, as before the pod network (for A/B
    /// measurements and machines without the CNI plugins).
    #[arg(long, value_enum, default_value = "cni")]
    pod_network: PodNetworkMode,
    /// Resolvers for names outside the cluster domain (`IP` or
    /// `IP:PORT`, comma-separated), such as the host's; without, the
    /// cluster DNS refuses them and never asks outside.
    #[arg(long, value_name = "ADDRS")]
    cluster_dns_upstream: Option<String>,
    /// How long the certificates the control plane signs last: nodes'
    /// own (renewed at 70-90 % of it) and the longest a
    /// CertificateSigningRequest gets, as a Go duration (`8760h`,
    /// `30m`); passed on as the control plane's (upstream's) flag.
    #[arg(long, value_name = "DURATION", default_value = skiff_pki::signing::DEFAULT_DURATION_TEXT, value_parser = signing_duration)]
    cluster_signing_duration: String,
}

// `skiff server`'s flags.
#[derive(clap::Args)]
struct ServerArgs {
    /// Folder for the control plane's store, certificates, logs and
    /// kubeconfig.
    #[arg(long, value_name = "DIR")]
    data_dir: PathBuf,
    /// Address the API (at --api-port), the node port (+1) listen on.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    listen_address: std::net::IpAddr,
    /// Address machines reach this one at (default: --listen-address,
    /// or this machine's address on its default route); cluster DNS
    /// listens here at --api-port + 2.
    #[arg(long, value_name = "IP")]
    advertise_address: Option<std::net::IpAddr>,
    /// Port of the Kubernetes API (the next one serves nodes).
    #[arg(long, default_value_t = 6443)]
    api_port: u16,
    /// How long the printed join token is valid (`0`: never expires),
    /// as `kubeadm init --token-ttl`.
    #[arg(long, default_value = token::DEFAULT_TTL, value_parser = token::parse_ttl)]
    token_ttl: std::time::Duration,
    /// The CIDR Services get cluster IPs from.
    #[arg(long, value_name = "CIDR")]
    service_cluster_ip_range: Option<String>,
    /// The ports NodePort Services get (default 30000-32767).
    #[arg(long, value_name = "FIRST-LAST")]
    service_node_port_range: Option<String>,
    /// Addresses LoadBalancer Services get (`FIRST-LAST` or a CIDR on
    /// the nodes' network), announced by the nodes.
    #[arg(long, value_name = "RANGE")]
    load_balancer_pool: Option<String>,
    /// Resolvers for names outside the cluster domain.
    #[arg(long, value_name = "ADDRS")]
    cluster_dns_upstream: Option<String>,
    /// How long a node may be silent before it is NotReady (the
    /// control plane's flag, upstream's kube-controller-manager's).
    #[arg(long, value_name = "DURATION")]
    node_monitor_grace_period: Option<String>,
    /// How long pods stay on a NotReady node before they are evicted.
    #[arg(long, value_name = "DURATION")]
    pod_eviction_timeout: Option<String>,
    /// How long the certificates the control plane signs last: nodes'
    /// own (renewed at 70-90 % of it) and the longest a
    /// CertificateSigningRequest gets, as a Go duration (`8760h`,
    /// `30m`); passed on as the control plane's (upstream's) flag.
    #[arg(long, value_name = "DURATION", default_value = skiff_pki::signing::DEFAULT_DURATION_TEXT, value_parser = signing_duration)]
    cluster_signing_duration: String,
}

/// The kubelets' `--pod-network`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum PodNetworkMode {
    Cni,
    None,
}

impl PodNetworkMode {
    fn flag(self) -> &'static str {
        match self {
            PodNetworkMode::Cni => "cni",
            PodNetworkMode::None => "none",
        }
    }
}

/// `--cluster-signing-duration` checked as the control plane checks it,
/// and kept as written to pass on.
fn signing_duration(text: &str) -> Result<String, String> {
    skiff_pki::signing::parse_duration(text).map(|_| text.to_string())
}

/// `--flag value` pairs for the set values, under the control plane's
/// (upstream's) flag names.
fn pass_on(flags: Vec<(&str, Option<String>)>) -> Vec<String> {
    flags
        .into_iter()
        .filter_map(|(flag, value)| Some([flag.to_string(), value?]))
        .flatten()
        .collect()
}

impl UpArgs {
    fn into_config(self) -> cluster::UpConfig {
        let control_plane_flags = pass_on(vec![
            ("--service-cluster-ip-range", self.service_cluster_ip_range),
            ("--service-node-port-range", self.service_node_port_range),
            ("--load-balancer-pool", self.load_balancer_pool),
            ("--cluster-dns-upstream", self.cluster_dns_upstream),
            (
                "--cluster-signing-duration",
                Some(self.cluster_signing_duration),
            ),
        ]);
        cluster::UpConfig {
            nodes: self.nodes,
            dir: self.data_dir,
            api_port: self.api_port,
            control_plane_flags,
            node_flags: vec![
                "--pod-network".to_string(),
                self.pod_network.flag().to_string(),
            ],
            load_balancer_pool_size: self.load_balancer_pool_size,
        }
    }
}

impl ServerArgs {
    fn into_config(self) -> server::ServerConfig {
        let control_plane_flags = pass_on(vec![
            ("--service-cluster-ip-range", self.service_cluster_ip_range),
            ("--service-node-port-range", self.service_node_port_range),
            ("--load-balancer-pool", self.load_balancer_pool),
            ("--cluster-dns-upstream", self.cluster_dns_upstream),
            (
                "--node-monitor-grace-period",
                self.node_monitor_grace_period,
            ),
            ("--pod-eviction-timeout", self.pod_eviction_timeout),
            (
                "--cluster-signing-duration",
                Some(self.cluster_signing_duration),
            ),
        ]);
        server::ServerConfig {
            dir: self.data_dir,
            listen: self.listen_address,
            advertise: self.advertise_address,
            api_port: self.api_port,
            control_plane_flags,
            token_ttl: self.token_ttl,
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Cmd::Demo { data_dir, port } => demo::run(data_dir, port).await,
        Cmd::Up(args) => cluster::up(args.into_config()).await,
        Cmd::Node {
            action,
            name,
            data_dir,
        } => cluster::node(action, &name, &data_dir),
        Cmd::Server(args) => server::server(args.into_config()).await,
        Cmd::Agent {
            server,
            token,
            ca_cert_hash,
            ca_file,
            data_dir,
            node_name,
            node_ip,
            pod_network,
            cluster_dns,
            kubelet_port,
        } => {
            agent::agent(agent::AgentConfig {
                server,
                token,
                ca_cert_hash,
                ca_file,
                dir: data_dir,
                node_name,
                node_ip,
                kubelet_port,
                node_flags: vec![
                    "--pod-network".into(),
                    pod_network.flag().into(),
                    "--cluster-dns".into(),
                    cluster_dns.to_string(),
                ],
            })
            .await
        }
        Cmd::Token { command, target } => token::run(command, &target),
        Cmd::Down { data_dir } => down::down(&data_dir).await,
        Cmd::Status { data_dir } => {
            if !status::status(&data_dir)? {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cmd, clap::Error> {
        Cli::try_parse_from(std::iter::once("skiff").chain(args.iter().copied())).map(|c| c.command)
    }

    /// The control plane's argv `skiff up` would start with `args`.
    fn up_argv(args: &[&str]) -> Vec<String> {
        let Ok(Cmd::Up(up)) = parse(&[&["up", "--data-dir", "/d"], args].concat()) else {
            panic!("not skiff up: {args:?}");
        };
        let config = up.into_config();
        cluster::control_plane_args(
            &config.dir,
            "127.0.0.1:6443",
            std::net::Ipv4Addr::new(172, 29, 1, 1),
            config.api_port,
            &config.control_plane_flags,
            "172.29.1.200-172.29.1.249",
        )
    }

    /// The control plane's argv `skiff server` would start with `args`.
    fn server_argv(args: &[&str]) -> Vec<String> {
        let Ok(Cmd::Server(server)) = parse(&[&["server", "--data-dir", "/d"], args].concat())
        else {
            panic!("not skiff server: {args:?}");
        };
        let config = server.into_config();
        server::control_plane_args(&config.dir, &config, "192.168.56.10".parse().expect("ip"))
    }

    fn passes(argv: &[String], flag: &str, value: &str) -> bool {
        argv.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn the_signing_duration_reaches_the_control_plane() {
        for argv in [up_argv, server_argv] {
            let set = argv(&["--cluster-signing-duration", "30m"]);
            assert!(passes(&set, "--cluster-signing-duration", "30m"), "{set:?}");
            assert_eq!(
                set.iter()
                    .filter(|a| *a == "--cluster-signing-duration")
                    .count(),
                1
            );
            // Unset: upstream's default, as the control plane's own.
            let default = argv(&[]);
            assert!(
                passes(&default, "--cluster-signing-duration", "8760h"),
                "{default:?}"
            );
            assert!(passes(&default, "--data-dir", "/d"), "{default:?}");
        }
    }

    #[test]
    fn a_bad_signing_duration_is_refused_as_the_control_plane_refuses_it() {
        for command in ["up", "server"] {
            let Err(e) = parse(&[
                command,
                "--data-dir",
                "/d",
                "--cluster-signing-duration",
                "10d",
            ]) else {
                panic!("{command} took 10d");
            };
            assert!(
                e.to_string().contains("time: invalid duration \"10d\""),
                "{e}"
            );
        }
    }

    #[test]
    fn help_documents_the_signing_duration() {
        for command in ["up", "server"] {
            let mut cli = Cli::command();
            let help = cli
                .find_subcommand_mut(command)
                .expect("subcommand")
                .render_long_help()
                .to_string();
            assert!(
                help.contains("--cluster-signing-duration <DURATION>")
                    && help.contains("[default: 8760h]"),
                "{help}"
            );
        }
    }
}
