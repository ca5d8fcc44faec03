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
use skiff_images::Sources;
use skiff_kubelet::pod::sandbox::pod_netns_name;
use skiff_kubelet::runtime::ContainerRuntime;
use skiff_kubelet::runtime::containerd::{ContainerdConfig, ContainerdRuntime, ManagedContainerd};
use skiff_kubelet::runtime::labels;

use crate::network::{self, ClusterNetwork};

/// One node of the running cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node name.
    pub name: String,
    /// Kubelet pid (0 when killed).
    pub pid: u32,
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
    /// The control plane's pid.
    pub control_plane_pid: u32,
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

fn record_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

fn load(dir: &Path) -> anyhow::Result<ClusterRecord> {
    let text = std::fs::read_to_string(record_path(dir)).with_context(|| {
        format!(
            "no running cluster in {} (start one with `skiff up --data-dir {}`)",
            dir.display(),
            dir.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

fn save(dir: &Path, record: &ClusterRecord) -> anyhow::Result<()> {
    let tmp = dir.join("cluster.json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(tmp, record_path(dir))?;
    Ok(())
}

fn sibling(binary: &str) -> anyhow::Result<PathBuf> {
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

fn signal(pid: u32, sig: i32) {
    if pid > 0 {
        // SAFETY: sending a signal to a process we started.
        unsafe {
            libc::kill(pid as i32, sig);
        }
    }
}

fn spawn(
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

fn step(text: &str) {
    eprintln!("==> {text}");
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
    let dir = &config.dir;
    if nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    if nodes > network::MAX_NODES {
        bail!("--nodes can be at most {}", network::MAX_NODES);
    }
    if let Ok(old) = load(&dir) {
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(old.pid as i32, 0) } == 0 {
            bail!(
                "a cluster is already running from {} (pid {})",
                dir.display(),
                old.pid
            );
        }
        // A cluster that died without cleaning up: free its network first.
        if let Some(net) = &old.network {
            net.remove(old.nodes.len());
        }
    }
    // Before anything starts: a taken port would otherwise fail the
    // control plane after the images, containerd and the bridge are up,
    // or worse, another cluster's API would answer the readiness checks.
    ports_free(config.api_port)?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs)?;

    step("building images");
    let images = dir.join("images");
    skiff_images::build_all(&Sources::default(), &images, |i| {
        eprintln!("    {}", i.name)
    })?;

    step("starting containerd");
    let containerd = ManagedContainerd::start(&dir.join("containerd")).await?;

    step("creating the node network");
    let net = ClusterNetwork::create()?;
    eprintln!(
        "    bridge {} ({}/24), nftables table inet {}",
        net.bridge(),
        net.gateway(),
        net.bridge()
    );
    let result = run_cluster(&config, &dir, &containerd, &net).await;
    step("stopping the cluster");
    let record = load(&dir).ok();
    if let Some(record) = &record {
        remove_nodes(record, &dir, &containerd).await;
    }
    net.remove(nodes);
    containerd.stop().await;
    let _ = std::fs::remove_file(record_path(&dir));
    eprintln!("    done");
    result
}

/// Starts the control plane and the nodes, waits for them, then runs until
/// SIGINT/SIGTERM. The caller cleans up whatever was started.
async fn run_cluster(
    config: &UpConfig,
    dir: &Path,
    containerd: &ManagedContainerd,
    net: &ClusterNetwork,
) -> anyhow::Result<()> {
    let UpConfig {
        nodes,
        api_port,
        control_plane_flags,
        node_flags,
        load_balancer_pool_size,
        ..
    } = config;
    let (nodes, api_port) = (*nodes, *api_port);
    let logs = dir.join("logs");
    let images = dir.join("images");
    step("starting the control plane");
    let api = format!("127.0.0.1:{api_port}");
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
    let mut control_plane = spawn(
        &sibling("skiff-control-plane")?,
        &cp_args,
        &logs.join("control-plane.log"),
        None,
    )?;
    let mut record = ClusterRecord {
        pid: std::process::id(),
        control_plane_pid: control_plane.id(),
        api: api.clone(),
        containerd_socket: containerd.socket(),
        nodes: Vec::new(),
        network: Some(net.clone()),
    };
    save(dir, &record)?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = crate::api::Api::new(&api, dir);
    while !client.ok("/healthz") {
        if Instant::now() > deadline || control_plane.try_wait()?.is_some() {
            bail!(
                "the control plane did not start; see {}",
                logs.join("control-plane.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let kubelet = sibling("skiff-kubelet")?;
    let logger = sibling("skiff-cri-logger")?;
    for i in 1..=nodes {
        let name = format!("node{i}");
        let ip = net.node_ip(i).to_string();
        step(&format!("starting {name} ({ip})"));
        net.add_node(i)?;
        let namespace = net.node_netns(i);
        let mut args: Vec<String> = [
            "--node-name",
            &name,
            "--containerd-socket",
            &containerd.socket().display().to_string(),
            "--containerd-namespace",
            &namespace,
            "--runc-root",
            &containerd.runc_root().display().to_string(),
            "--state-dir",
            &dir.join("nodes").join(&name).display().to_string(),
            "--image-dir",
            &images.display().to_string(),
            "--manifests-dir",
            &dir.join("nodes")
                .join(&name)
                .join("manifests")
                .display()
                .to_string(),
            "--grpc-listen",
            &format!("{ip}:10250"),
            "--http-listen",
            &format!("{ip}:10255"),
            "--node-ip",
            &ip,
            "--control-plane",
            &grpc,
            "--cri-logger",
            &logger.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--cluster-dns".into(), cluster_dns.to_string()]);
        args.extend_from_slice(node_flags);
        std::fs::create_dir_all(dir.join("nodes").join(&name).join("manifests"))?;
        let netns = net.node_netns_path(i);
        let child = spawn(
            &kubelet,
            &args,
            &logs.join(format!("{name}.log")),
            Some(&netns),
        )?;
        record.nodes.push(NodeRecord {
            name,
            pid: child.id(),
            args,
            namespace,
            stopped: false,
            index: i,
            netns: Some(netns),
            partitioned: false,
        });
        save(dir, &record)?;
    }

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = client.ready_nodes();
        eprint!("\r    {ready}/{nodes} nodes Ready");
        if ready >= nodes {
            eprintln!();
            break;
        }
        if Instant::now() > deadline {
            eprintln!();
            bail!("nodes did not become Ready; see {}", logs.display());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("Skiff is up: {nodes} node(s) Ready.");
    println!("  export KUBECONFIG={}", dir.join("kubeconfig").display());
    println!("  kubectl get nodes");
    println!("Press Ctrl-C to stop and clean up.");

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    signal(control_plane.id(), libc::SIGTERM);
    let _ = control_plane.wait();
    Ok(())
}

/// Fails, naming the port, unless the ports the cluster listens on are
/// free on every address: the API (`api_port`), the node registry
/// (`+1`) and cluster DNS (`+2`, TCP and UDP). Bound on the wildcard
/// address, which any listener of the same port on any address blocks.
fn ports_free(api_port: u16) -> anyhow::Result<()> {
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
fn dns_service_ip(control_plane_flags: &[String]) -> anyhow::Result<Ipv4Addr> {
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

/// Kills the kubelets and removes every container and pod namespace they made.
async fn remove_nodes(record: &ClusterRecord, dir: &Path, containerd: &ManagedContainerd) {
    signal(record.control_plane_pid, libc::SIGKILL);
    let Ok(logger) = sibling("skiff-cri-logger") else {
        return;
    };
    for node in &record.nodes {
        set_frozen(&node.namespace, false);
        signal(node.pid, libc::SIGCONT);
        signal(node.pid, libc::SIGKILL);
        let mut config = ContainerdConfig::new(
            containerd.socket(),
            &node.namespace,
            &logger,
            &dir.join("nodes").join(&node.name),
        );
        config.runc_root = Some(containerd.runc_root());
        let mut pod_uids = std::collections::BTreeSet::new();
        if let Ok(runtime) = ContainerdRuntime::connect(config).await
            && let Ok(all) = runtime.list_containers(&Default::default()).await
        {
            for c in all {
                if let Some(uid) = c.labels.get(labels::POD_UID) {
                    pod_uids.insert(uid.clone());
                }
                let _ = runtime.remove_container(&c.id).await;
            }
        }
        // The pods' namespaces, named `skiff-<node>-<uid>` by the kubelet;
        // only this cluster's pods, as another cluster may have a `node1` too.
        for uid in pod_uids {
            let name = pod_netns_name(&format!("skiff-{}", node.name), &uid);
            if Path::new("/run/netns").join(&name).exists() {
                let _ = Command::new("ip").args(["netns", "delete", &name]).status();
            }
        }
        // The pods are gone, and with them their addresses: the CNI
        // reservations and cached results would otherwise hold those
        // addresses for a cluster started again on this data dir.
        let _ = std::fs::remove_dir_all(dir.join("nodes").join(&node.name).join("cni"));
    }
}

/// Freezes (or thaws) every container of a node: they all sit under the
/// cgroup named after the node's containerd namespace.
fn set_frozen(namespace: &str, frozen: bool) {
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
    let node = record
        .nodes
        .iter_mut()
        .find(|n| n.name == name)
        .with_context(|| format!("no node named {name}"))?;
    match action {
        NodeAction::Stop => {
            signal(node.pid, libc::SIGSTOP);
            set_frozen(&node.namespace, true);
            node.stopped = true;
            println!("node/{name} stopped");
        }
        NodeAction::Kill => {
            signal(node.pid, libc::SIGCONT);
            signal(node.pid, libc::SIGKILL);
            node.pid = 0;
            println!("node/{name} killed");
        }
        NodeAction::Start => {
            set_frozen(&node.namespace, false);
            if node.pid == 0 {
                let child = spawn(
                    &sibling("skiff-kubelet")?,
                    &node.args,
                    &dir.join("logs").join(format!("{name}.log")),
                    node.netns.as_deref(),
                )?;
                node.pid = child.id();
            } else {
                signal(node.pid, libc::SIGCONT);
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
