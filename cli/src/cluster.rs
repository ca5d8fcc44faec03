//! `skiff up` and `skiff node ...`: a whole local cluster on one machine —
//! a private containerd, the control plane and N kubelets — and chaos
//! actions on its nodes. The running cluster is described in
//! `DIR/cluster.json`, which `skiff node` reads.

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::kubelet::{JoinWith, KubeletFlags};
use crate::network::{self, ClusterNetwork};
use crate::process::{self, ProcessId};
use crate::progress::{self, detail, step};
use crate::session::{Parts, Session};

/// Each node's kubelet gRPC port, on the node's own address.
const KUBELET_PORT: u16 = 10250;

/// One node of the running cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node name.
    pub name: String,
    /// Kubelet pid (0 when killed).
    pub pid: u32,
    /// The kubelet's start time (see [`ProcessId`]).
    #[serde(default)]
    pub start_time: u64,
    /// Kubelet command line, to start it again.
    pub args: Vec<String>,
    /// containerd namespace of the node (also its cgroup parent).
    pub namespace: String,
    /// `stopped` when frozen with `skiff node stop`.
    pub stopped: bool,
    /// Its number in the cluster (`node<index>`).
    #[serde(default)]
    pub index: usize,
    /// Its network namespace, when it has one.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// `true` while cut off with `skiff node partition`.
    #[serde(default)]
    pub partitioned: bool,
}

/// What `DIR/cluster.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// `skiff up`'s own pid.
    pub pid: u32,
    /// `skiff up`'s start time (see [`ProcessId`]).
    #[serde(default)]
    pub start_time: u64,
    /// The boot the processes ran in: start times count from it.
    #[serde(default)]
    pub boot_id: String,
    /// The control plane's pid.
    pub control_plane_pid: u32,
    /// The control plane's start time.
    #[serde(default)]
    pub control_plane_start_time: u64,
    /// The private containerd.
    #[serde(default)]
    pub containerd: Option<ProcessId>,
    /// Kubernetes API address.
    pub api: String,
    /// The containerd socket.
    pub containerd_socket: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeRecord>,
    /// The bridge, namespaces and nftables table the cluster made.
    #[serde(default)]
    pub network: Option<ClusterNetwork>,
}

impl ClusterRecord {
    /// A recorded process, if it was recorded in this boot with its start
    /// time (a record of an older skiff, or from before a reboot, names
    /// nothing that can still run).
    fn process(&self, pid: u32, start_time: u64) -> Option<ProcessId> {
        (pid > 0 && start_time > 0 && self.boot_id == process::boot_id())
            .then_some(ProcessId { pid, start_time })
    }

    /// `skiff up` itself.
    pub fn skiff_up(&self) -> Option<ProcessId> {
        self.process(self.pid, self.start_time)
    }

    /// The control plane.
    pub fn control_plane(&self) -> Option<ProcessId> {
        self.process(self.control_plane_pid, self.control_plane_start_time)
    }

    /// The private containerd.
    pub fn containerd_process(&self) -> Option<ProcessId> {
        self.containerd
            .and_then(|c| self.process(c.pid, c.start_time))
    }

    /// Every process `skiff up` started (and itself), by role.
    pub fn processes(&self) -> Vec<(String, ProcessId)> {
        let mut all = vec![
            ("skiff-up".to_string(), self.skiff_up()),
            ("control-plane".to_string(), self.control_plane()),
            ("containerd".to_string(), self.containerd_process()),
        ];
        for node in &self.nodes {
            all.push((node.name.clone(), node.kubelet(self)));
        }
        all.into_iter()
            .filter_map(|(role, id)| Some((role, id?)))
            .collect()
    }
}

impl NodeRecord {
    /// The node's kubelet, as recorded.
    pub fn kubelet(&self, record: &ClusterRecord) -> Option<ProcessId> {
        record.process(self.pid, self.start_time)
    }
}

pub(crate) fn record_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

pub(crate) fn load(dir: &Path) -> anyhow::Result<ClusterRecord> {
    let text = std::fs::read_to_string(record_path(dir)).with_context(|| {
        format!(
            "no running cluster in {} (start one with `skiff up --data-dir {}`)",
            dir.display(),
            dir.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

pub(crate) fn save(dir: &Path, record: &ClusterRecord) -> anyhow::Result<()> {
    let tmp = dir.join("cluster.json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(tmp, record_path(dir))?;
    Ok(())
}

pub(crate) fn sibling(binary: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe
        .parent()
        .map(|d| d.join(binary))
        .context("no executable folder")?;
    if !path.is_file() {
        bail!(
            "{} not found next to skiff (cargo build --release --workspace --bins)",
            path.display()
        );
    }
    Ok(path)
}

pub(crate) fn spawn(
    binary: &Path,
    args: &[String],
    log: &Path,
    netns: Option<&Path>,
) -> anyhow::Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let mut command = Command::new(binary);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
    if let Some(netns) = netns {
        network::enter_netns(&mut command, netns.to_path_buf())?;
    }
    Ok(command.spawn()?)
}

/// `skiff up --nodes N --data-dir DIR`; `control_plane_flags` are passed
/// on to the control plane as they are.
/// How `skiff up` was asked to run the cluster.
pub struct UpConfig {
    pub nodes: usize,
    pub dir: PathBuf,
    pub api_port: u16,
    /// Passed to the control plane as they are.
    pub control_plane_flags: Vec<String>,
    /// Passed to every kubelet as they are.
    pub node_flags: Vec<String>,
    pub load_balancer_pool_size: u8,
}

pub async fn up(config: UpConfig) -> anyhow::Result<()> {
    let nodes = config.nodes;
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    if nodes > network::MAX_NODES {
        bail!("--nodes can be at most {}", network::MAX_NODES);
    }
    let api = format!("127.0.0.1:{}", config.api_port);
    let session = Session::claim(&config.dir, api, Some(config.api_port)).await?;
    session
        .run("stopping the cluster", async |parts| {
            run_cluster(&config, parts).await
        })
        .await
}

/// Starts containerd, the network, the control plane and the nodes, waits
/// for them, then runs until cancelled (by a signal). Each part is in
/// `record` (saved) as soon as it exists; the caller removes them all.
async fn run_cluster(config: &UpConfig, parts: &mut Parts) -> anyhow::Result<()> {
    let UpConfig {
        nodes,
        api_port,
        control_plane_flags,
        node_flags,
        load_balancer_pool_size,
        ..
    } = config;
    let (nodes, api_port) = (*nodes, *api_port);
    let images = parts.build_images()?;
    parts.start_containerd().await?;

    step("creating the node network");
    let net = ClusterNetwork::create()?;
    parts.record.network = Some(net.clone());
    parts.save()?;
    detail(&format!(
        "bridge {} ({}/24), nftables table inet {}",
        net.bridge(),
        net.gateway(),
        net.bridge()
    ));

    step("starting the control plane");
    let dir = parts.dir.clone();
    let api = parts.record.api.clone();
    // Nodes reach the control plane over the bridge, as over a LAN.
    let grpc = format!("{}:{}", net.gateway(), api_port + 1);
    let mut cp_args: Vec<String> = vec![
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        api.clone(),
        "--grpc-listen".into(),
        grpc.clone(),
    ];
    // Pods reach the API through the kubernetes Service, whose endpoint is
    // the API served on the bridge too.
    if !control_plane_flags
        .iter()
        .any(|f| f == "--advertise-address")
    {
        cp_args.push("--advertise-address".into());
        cp_args.push(net.gateway().to_string());
    }
    // Cluster DNS on the bridge, beside the node registry: pods reach it
    // through the kube-dns Service as a lab network's pods reach a DNS
    // server on the control-plane machine. A high port, so a resolver the
    // host runs on port 53 is no obstacle (the Service still says 53).
    cp_args.push("--cluster-dns-listen".into());
    cp_args.push(format!("{}:{}", net.gateway(), api_port + 2));
    cp_args.extend_from_slice(control_plane_flags);
    let cluster_dns = dns_service_ip(control_plane_flags)?;
    if !control_plane_flags
        .iter()
        .any(|f| f == "--load-balancer-pool")
    {
        // Addresses on the bridge's network, above the nodes', so the host
        // reaches LoadBalancer Services as a LAN client would.
        cp_args.push("--load-balancer-pool".into());
        cp_args.push(net.load_balancer_pool(*load_balancer_pool_size, nodes));
    }
    let client = crate::api::Api::new(&api, &dir);
    // Owned for the run: dropping the handle leaves the process running,
    // and the session's teardown stops it.
    let _control_plane = parts.start_control_plane(&cp_args, &client).await?;

    // Every node joins as a machine would: a bootstrap token, the CA
    // pinned by its hash; its certificates are kept in its state dir.
    let token = crate::join::create_token(&client, crate::join::TOKEN_TTL, "skiff up")?;
    let ca_hash = crate::join::ca_hash(&dir)?;
    let join = JoinWith {
        token: Some(token.to_string()),
        ca_cert_hash: Some(ca_hash),
        ca_file: None,
    };
    let extra: Vec<String> = ["--cluster-dns".to_string(), cluster_dns.to_string()]
        .into_iter()
        .chain(node_flags.iter().cloned())
        .collect();
    for i in 1..=nodes {
        let name = format!("node{i}");
        let ip = net.node_ip(i);
        step(&format!("starting {name} ({ip})"));
        let namespace = net.node_netns(i);
        let state = dir.join("nodes").join(&name);
        let Some(containerd) = parts.containerd() else {
            bail!("containerd is not running");
        };
        let flags = KubeletFlags {
            name: &name,
            containerd,
            namespace: &namespace,
            state: &state,
            images: &images,
            node_ip: ip.into(),
            grpc_port: KUBELET_PORT,
            control_plane: &grpc,
            join: &join,
            extra: &extra,
        };
        let (args, manifests) = (flags.args()?, flags.manifests());
        let node = NodeRecord {
            name: name.clone(),
            pid: 0,
            start_time: 0,
            args,
            namespace,
            stopped: false,
            index: i,
            netns: Some(net.node_netns_path(i)),
            partitioned: false,
        };
        // Its namespace is made once it is recorded, so `skiff down`
        // finds it whenever this process dies.
        parts.start_kubelet(node, || {
            net.add_node(i)?;
            Ok(std::fs::create_dir_all(&manifests)?)
        })?;
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.ready_nodes();
        progress::partial(&format!("\r    {ready}/{nodes} nodes Ready"));
        if ready >= nodes {
            progress::line("");
            break;
        }
        if Instant::now() > deadline {
            progress::line("");
            bail!(
                "nodes did not become Ready; see {}",
                dir.join("logs").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    progress::out(&format!("Skiff is up: {nodes} node(s) Ready."));
    progress::out(&format!(
        "  export KUBECONFIG={}",
        dir.join("kubeconfig").display()
    ));
    progress::out("  kubectl get nodes");
    progress::out("Press Ctrl-C to stop and clean up.");
    // Runs until a signal ends it (the caller's select).
    std::future::pending::<()>().await;
    Ok(())
}

/// Fails, naming the port, unless the ports the cluster listens on are
/// free on every address: the API (`api_port`), the node registry
/// (`+1`) and cluster DNS (`+2`, TCP and UDP). Bound on the wildcard
/// address, which any listener of the same port on any address blocks.
pub(crate) fn ports_free(api_port: u16) -> anyhow::Result<()> {
    let what = [
        (api_port, "the Kubernetes API (--api-port)"),
        (
            api_port.wrapping_add(1),
            "the node registry (--api-port + 1)",
        ),
        (api_port.wrapping_add(2), "cluster DNS (--api-port + 2)"),
    ];
    for (port, role) in what {
        if port == 0 {
            bail!("--api-port {api_port} leaves no room for {role}");
        }
        let any = std::net::SocketAddr::from(([0, 0, 0, 0], port));
        let tcp = std::net::TcpListener::bind(any).err();
        let udp = (port == api_port.wrapping_add(2))
            .then(|| std::net::UdpSocket::bind(any).err())
            .flatten();
        if let Some(e) = tcp.or(udp) {
            bail!(
                "port {port} is in use ({e}); it is needed for {role}: stop what holds it or choose another --api-port"
            );
        }
    }
    Ok(())
}

/// The kube-dns Service's address: the tenth of the Service CIDR (the
/// control plane's `--service-cluster-ip-range`, 10.96.0.0/12 unless set),
/// where the control plane publishes it, as kubeadm does.
pub(crate) fn dns_service_ip(control_plane_flags: &[String]) -> anyhow::Result<Ipv4Addr> {
    let range = control_plane_flags
        .iter()
        .position(|f| f == "--service-cluster-ip-range")
        .and_then(|i| control_plane_flags.get(i + 1))
        .map_or("10.96.0.0/12", String::as_str);
    let net: ipnet::Ipv4Net = range
        .parse()
        .with_context(|| format!("--service-cluster-ip-range {range}"))?;
    Ok(Ipv4Addr::from(u32::from(net.network()) + 10))
}

/// Freezes (or thaws) every container of a node: they all sit under the
/// cgroup named after the node's containerd namespace.
pub(crate) fn set_frozen(namespace: &str, frozen: bool) {
    let v1 = Path::new("/sys/fs/cgroup/freezer").join(namespace);
    if v1.is_dir() {
        let state = if frozen { "FROZEN" } else { "THAWED" };
        let _ = std::fs::write(v1.join("freezer.state"), state);
        return;
    }
    let v2 = Path::new("/sys/fs/cgroup")
        .join(namespace)
        .join("cgroup.freeze");
    if v2.is_file() {
        let _ = std::fs::write(v2, if frozen { "1" } else { "0" });
    }
}

/// What `skiff node ACTION NAME` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeAction {
    /// Freeze the node: its kubelet (SIGSTOP) and its containers (cgroup freezer).
    Stop,
    /// Undo `stop`, or start a killed kubelet again.
    Start,
    /// SIGKILL the node's kubelet (containers keep running).
    Kill,
    /// Cut the node's network to the control plane (nftables); the node keeps running.
    Partition,
    /// Undo `partition`.
    Heal,
}

/// `skiff node stop|start|kill|partition|heal NAME --data-dir DIR`.
pub fn node(action: NodeAction, name: &str, dir: &Path) -> anyhow::Result<()> {
    let mut record = load(dir)?;
    let network = record.network.clone();
    let snapshot = record.clone();
    let node = record
        .nodes
        .iter_mut()
        .find(|n| n.name == name)
        .with_context(|| format!("no node named {name}"))?;
    match action {
        NodeAction::Stop => {
            if let Some(kubelet) = node.kubelet(&snapshot) {
                kubelet.signal(libc::SIGSTOP);
            }
            set_frozen(&node.namespace, true);
            node.stopped = true;
            println!("node/{name} stopped");
        }
        NodeAction::Kill => {
            if let Some(kubelet) = node.kubelet(&snapshot) {
                kubelet.signal(libc::SIGCONT);
                kubelet.signal(libc::SIGKILL);
            }
            node.pid = 0;
            node.start_time = 0;
            println!("node/{name} killed");
        }
        NodeAction::Start => {
            set_frozen(&node.namespace, false);
            match node.kubelet(&snapshot).filter(ProcessId::is_running) {
                Some(kubelet) => {
                    kubelet.signal(libc::SIGCONT);
                }
                None => {
                    let child = spawn(
                        &sibling("skiff-kubelet")?,
                        &node.args,
                        &dir.join("logs").join(format!("{name}.log")),
                        node.netns.as_deref(),
                    )?;
                    node.pid = child.id();
                    node.start_time = ProcessId::of(child.id()).map_or(0, |p| p.start_time);
                }
            }
            node.stopped = false;
            println!("node/{name} started");
        }
        NodeAction::Partition | NodeAction::Heal => {
            let net = network.filter(|_| node.index > 0).context(
                "this cluster's nodes have no network of their own (started by an older skiff)",
            )?;
            if action == NodeAction::Partition {
                net.partition(node.index)?;
                node.partitioned = true;
                println!("node/{name} partitioned");
            } else {
                net.heal(node.index)?;
                node.partitioned = false;
                println!("node/{name} healed");
            }
        }
    }
    save(dir, &record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_before_anything_starts() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = held.local_addr().expect("addr").port();
        let err = ports_free(port).expect_err("taken").to_string();
        assert!(err.contains(&format!("port {port} is in use")), "{err}");
        assert!(err.contains("the Kubernetes API"), "{err}");
    }

    #[test]
    fn kube_dns_is_the_tenth_service_address() {
        assert_eq!(
            dns_service_ip(&[]).expect("default"),
            Ipv4Addr::new(10, 96, 0, 10)
        );
        let flags = [
            "--service-cluster-ip-range".to_string(),
            "10.100.0.0/16".into(),
        ];
        assert_eq!(
            dns_service_ip(&flags).expect("set"),
            Ipv4Addr::new(10, 100, 0, 10)
        );
        let bad = ["--service-cluster-ip-range".to_string(), "nonsense".into()];
        assert!(dns_service_ip(&bad).is_err());
    }
}
