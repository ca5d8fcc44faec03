//! `skiff up` and `skiff node ...`: a whole local cluster on one machine —
//! a private containerd, the control plane and N kubelets — and chaos
//! actions on its nodes. The running cluster is described in
//! `DIR/cluster.json` ([`crate::record`]), which `skiff node` reads.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::freeze::set_frozen;
use crate::kubelet::{JoinWith, KubeletFlags};
use crate::network::{self, ClusterNetwork};
use crate::process::{ProcessId, sibling, spawn};
use crate::progress::{self, detail, step};
use crate::record::{self, NodeRecord};
use crate::session::{Parts, Session};

/// Each node's kubelet gRPC port, on the node's own address.
const KUBELET_PORT: u16 = 10250;

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
    let grpc = format!("{}:{}", net.gateway(), api_port + 1);
    let cluster_dns = dns_service_ip(control_plane_flags)?;
    let cp_args = control_plane_args(
        &dir,
        &api,
        net.gateway(),
        api_port,
        control_plane_flags,
        &net.load_balancer_pool(*load_balancer_pool_size, nodes),
    );
    let client = crate::api::Api::new(&api, &dir);
    // Owned for the run: dropping the handle leaves the process running,
    // and the session's teardown stops it.
    let _control_plane = parts.start_control_plane(&cp_args, &client).await?;

    // Every node joins as a machine would: a bootstrap token, the CA
    // pinned by its hash; its certificates are kept in its state dir.
    let token = crate::token::create(&client, crate::token::START_TTL, "skiff up")?;
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

/// The control plane's command line for a cluster on the bridge whose
/// host address is `gateway`: `flags` (the user's) are passed as they
/// are, after those `skiff up` sets.
pub(crate) fn control_plane_args(
    dir: &std::path::Path,
    api: &str,
    gateway: Ipv4Addr,
    api_port: u16,
    flags: &[String],
    load_balancer_pool: &str,
) -> Vec<String> {
    // Nodes reach the control plane over the bridge, as over a LAN.
    let mut args: Vec<String> = vec![
        "--data-dir".into(),
        dir.display().to_string(),
        "--listen".into(),
        api.to_string(),
        "--grpc-listen".into(),
        format!("{gateway}:{}", api_port + 1),
    ];
    // Pods reach the API through the kubernetes Service, whose endpoint is
    // the API served on the bridge too.
    if !flags.iter().any(|f| f == "--advertise-address") {
        args.push("--advertise-address".into());
        args.push(gateway.to_string());
    }
    // Cluster DNS on the bridge, beside the node registry: pods reach it
    // through the kube-dns Service as a lab network's pods reach a DNS
    // server on the control-plane machine. A high port, so a resolver the
    // host runs on port 53 is no obstacle (the Service still says 53).
    args.push("--cluster-dns-listen".into());
    args.push(format!("{gateway}:{}", api_port + 2));
    args.extend_from_slice(flags);
    if !flags.iter().any(|f| f == "--load-balancer-pool") {
        // Addresses on the bridge's network, above the nodes', so the host
        // reaches LoadBalancer Services as a LAN client would.
        args.push("--load-balancer-pool".into());
        args.push(load_balancer_pool.to_string());
    }
    args
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
    let mut record = record::load(dir)?;
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
    record::save(dir, &record)
}

#[cfg(test)]
mod tests {
    use super::*;

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
