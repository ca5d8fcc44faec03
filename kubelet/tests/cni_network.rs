//! The CNI pod network and the node's routes on the real plugins
//! (`containernetworking-plugins`, `/usr/lib/cni`), `ip` and `nft`.
//!
//! Each test makes its own network namespace as the "node" and runs
//! everything inside it (the code under test enters it per child process,
//! `node_netns`), so nothing touches the machine's own network. A guard
//! removes the node namespace (with its bridge, veths, routes and table) and
//! every pod namespace the test made, even when the test fails.
//!
//! Needs root and the plugins: skipped with a message otherwise, and a
//! failure instead when `SKIFF_REQUIRE_E2E=1` (as CI sets it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use skiff_kubelet::network::node::NodeSetup;
use skiff_kubelet::network::{CniNetwork, CniOptions, NodeNetwork, Peer};
use skiff_kubelet::pod::sandbox::PodNetwork;
use skiff_kubelet::pod::spec::PodKey;

const PLUGINS: &str = "/usr/lib/cni";

fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    for plugin in ["loopback", "bridge", "host-local"] {
        if !Path::new(PLUGINS).join(plugin).is_file() {
            return Some(format!(
                "{PLUGINS}/{plugin} missing (apt-get install containernetworking-plugins)"
            ));
        }
    }
    for tool in ["ip", "nft", "busybox"] {
        if !Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("`{tool}` not found"));
        }
    }
    None
}

fn enabled(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(reason)
            if std::env::var("SKIFF_REQUIRE_E2E").is_ok_and(|v| v == "1" || v == "true") =>
        {
            panic!("{test}: cannot run: {reason}")
        }
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason} (set SKIFF_REQUIRE_E2E=1 to make this a failure)");
            false
        }
    }
}

fn sh(program: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A node namespace, its data dir, and everything made in them; removed on drop.
struct TestNode {
    name: String,
    pod_prefix: String,
    data: tempfile::TempDir,
    /// Other namespaces the test made (an "outside" host).
    extra: std::sync::Mutex<Vec<String>>,
}

impl TestNode {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let node = Self {
            name: format!("skiff-cninode-{id}"),
            pod_prefix: format!("skiff-cnitest-{id}"),
            data: tempfile::tempdir().expect("tempdir"),
            extra: std::sync::Mutex::new(Vec::new()),
        };
        sh("ip", &["netns", "add", &node.name]).expect("node namespace");
        sh("ip", &["-n", &node.name, "link", "set", "lo", "up"]).expect("lo up");
        eprintln!("{tag}: node namespace {}", node.name);
        node
    }

    /// Another namespace (deleted with the node), linked to the node by a
    /// veth: `eth0` 172.31.250.11/24 on the node, `eth0` 172.31.250.1/24 in it.
    fn outside_host(&self) -> String {
        let name = format!("{}-out", self.name);
        sh("ip", &["netns", "add", &name]).expect("outside namespace");
        self.extra
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
        let node = self.name.as_str();
        for args in [
            vec![
                "-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "out0",
            ],
            vec!["-n", node, "link", "set", "out0", "netns", &name],
            vec!["-n", node, "addr", "add", "172.31.250.11/24", "dev", "eth0"],
            vec!["-n", node, "link", "set", "eth0", "up"],
            vec!["-n", &name, "addr", "add", "172.31.250.1/24", "dev", "out0"],
            vec!["-n", &name, "link", "set", "out0", "up"],
            vec!["-n", &name, "link", "set", "lo", "up"],
        ] {
            sh("ip", &args).expect("outside link");
        }
        name
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    fn exec(&self, args: &[&str]) -> Result<String, String> {
        let mut all = vec!["netns", "exec", &self.name];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    fn pod_namespaces(&self) -> Vec<String> {
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.starts_with(&format!("{}-", self.pod_prefix)))
            .collect()
    }

    fn network(&self, plugin_dirs: Vec<PathBuf>, rx: NetRx) -> CniNetwork {
        let options = CniOptions {
            plugin_dirs,
            wait_for_pod_cidr: Duration::from_secs(10),
            node_netns: Some(self.path()),
            ..CniOptions::default()
        };
        CniNetwork::with_options(&self.pod_prefix, self.data.path(), rx, options)
    }

    /// Addresses host-local holds (one file per address, named by it).
    fn reservations(&self) -> BTreeSet<String> {
        std::fs::read_dir(self.data.path().join("cni/host-local/skiff"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.parse::<std::net::Ipv4Addr>().is_ok())
            .collect()
    }

    fn cached_results(&self) -> usize {
        std::fs::read_dir(self.data.path().join("cni/results"))
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        let extra = std::mem::take(&mut *self.extra.lock().unwrap_or_else(|p| p.into_inner()));
        for ns in extra {
            let _ = sh("ip", &["netns", "delete", &ns]);
        }
        for ns in self.pod_namespaces() {
            let _ = sh("ip", &["netns", "delete", &ns]);
        }
        // The bridge, host-side veths, routes and nft table live and die with it.
        let _ = sh("ip", &["netns", "delete", &self.name]);
    }
}

type NetRx = tokio::sync::watch::Receiver<Option<NodeNetwork>>;

fn node_network(peers: Vec<Peer>) -> NodeNetwork {
    NodeNetwork {
        pod_cidr: "10.244.1.0/24".into(),
        cluster_cidr: "10.244.0.0/16".into(),
        peers,
    }
}

fn pod(name: &str, n: usize) -> PodKey {
    PodKey {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("{n:08x}-aaaa-4bbb-8ccc-{:012x}", std::process::id()),
    }
}

/// Plugin shims that log each call (`<plugin> <command>`) and run the real
/// plugin, so a test can see which verbs ran.
fn logging_plugins(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let log = dir.join("calls.log");
    for plugin in ["loopback", "bridge", "host-local"] {
        let path = dir.join(plugin);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{plugin} $CNI_COMMAND\" >> {}\nexec {PLUGINS}/{plugin} \"$@\"\n",
                log.display()
            ),
        )
        .expect("shim");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    log
}

fn calls(log: &Path, plugin: &str, command: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| *l == format!("{plugin} {command}"))
        .count()
}

fn ping(from_netns: &str, ip: &str) -> Result<String, String> {
    sh(
        "ip",
        &[
            "netns", "exec", from_netns, "busybox", "ping", "-c1", "-W1", ip,
        ],
    )
}

#[tokio::test]
async fn two_pods_get_addresses_ping_each_other_and_survive_a_restart() {
    if !enabled("two_pods_get_addresses_ping_each_other_and_survive_a_restart") {
        return;
    }
    let node = TestNode::new("two_pods");
    let shims = tempfile::tempdir().expect("tempdir");
    let log = logging_plugins(shims.path());
    let (tx, rx) = tokio::sync::watch::channel(None);
    let net = node.network(vec![shims.path().to_path_buf()], rx.clone());
    let (a, b) = (pod("a", 1), pod("b", 2));

    // Before the control plane assigns a podCIDR, setup waits.
    let pending = tokio::spawn({
        let net = node.network(vec![shims.path().to_path_buf()], rx.clone());
        let a = a.clone();
        async move { net.setup(&a).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!pending.is_finished(), "setup must wait for the podCIDR");
    tx.send_replace(Some(node_network(vec![])));
    let att_a = pending.await.expect("join").expect("setup a");
    let att_b = net.setup(&b).await.expect("setup b");

    let (ip_a, ip_b) = (
        att_a.pod_ip.clone().expect("pod ip a"),
        att_b.pod_ip.clone().expect("pod ip b"),
    );
    eprintln!("pod a {ip_a} in {}, pod b {ip_b}", att_a.netns.display());
    assert_ne!(ip_a, ip_b);
    for ip in [&ip_a, &ip_b] {
        assert!(ip.starts_with("10.244.1.") && ip != "10.244.1.1", "{ip}");
    }
    assert_eq!(
        att_a.netns,
        PathBuf::from("/run/netns").join(net.netns_name(&a))
    );
    assert_eq!(net.locate(&a), Some(att_a.netns.clone()));
    assert_eq!(
        node.reservations(),
        BTreeSet::from([ip_a.clone(), ip_b.clone()])
    );

    // Pod to pod over cni0, both ways, and the node to a pod.
    ping(&net.netns_name(&a), &ip_b).expect("a pings b");
    ping(&net.netns_name(&b), &ip_a).expect("b pings a");
    node.exec(&["busybox", "ping", "-c1", "-W1", &ip_a])
        .expect("node pings a");
    let bridge = node
        .exec(&["ip", "-4", "addr", "show", "cni0"])
        .expect("cni0");
    assert!(bridge.contains("10.244.1.1/24"), "{bridge}");

    // A restarted kubelet (a new instance on the same data dir) finds the
    // same address with a CHECK and no second ADD.
    let adds = calls(&log, "bridge", "ADD");
    assert_eq!(adds, 2);
    let restarted = node.network(vec![shims.path().to_path_buf()], rx.clone());
    let again = restarted.setup(&a).await.expect("setup after restart");
    assert_eq!(again.pod_ip.as_deref(), Some(ip_a.as_str()));
    assert_eq!(again.netns, att_a.netns);
    assert_eq!(calls(&log, "bridge", "ADD"), adds, "no second ADD");
    assert_eq!(calls(&log, "bridge", "CHECK"), 1);
    ping(&net.netns_name(&b), &ip_a).expect("b still pings a");

    // Teardown releases the reservation and removes the namespace; twice is fine.
    restarted.teardown(&a).await.expect("teardown a");
    assert_eq!(node.reservations(), BTreeSet::from([ip_b.clone()]));
    assert!(!att_a.netns.exists());
    assert_eq!(restarted.locate(&a), None);
    restarted.teardown(&a).await.expect("teardown a again");
    net.teardown(&b).await.expect("teardown b");
    assert!(node.reservations().is_empty());
    assert!(node.pod_namespaces().is_empty());
    assert_eq!(node.cached_results(), 0);
}

#[tokio::test]
async fn a_namespace_lost_under_a_cached_result_gets_a_fresh_attach() {
    if !enabled("a_namespace_lost_under_a_cached_result_gets_a_fresh_attach") {
        return;
    }
    let node = TestNode::new("lost_netns");
    let (_tx, rx) = tokio::sync::watch::channel(Some(node_network(vec![])));
    let net = node.network(vec![PLUGINS.into()], rx);
    let p = pod("lost", 3);
    let first = net.setup(&p).await.expect("setup");
    // As after a reboot: the namespace is gone, the cache is not.
    sh("ip", &["netns", "delete", &net.netns_name(&p)]).expect("delete netns");
    let second = net.setup(&p).await.expect("setup again");
    assert!(second.netns.exists());
    let ip = second.pod_ip.clone().expect("ip");
    // The old reservation was released, not leaked.
    assert_eq!(node.reservations(), BTreeSet::from([ip.clone()]));
    node.exec(&["busybox", "ping", "-c1", "-W1", &ip])
        .expect("node pings the pod");
    eprintln!("before {:?}, after {ip}", first.pod_ip);
    net.teardown(&p).await.expect("teardown");
    assert!(node.reservations().is_empty());
}

#[tokio::test]
async fn without_a_pod_cidr_setup_fails_clearly_and_teardown_still_cleans_up() {
    if !enabled("without_a_pod_cidr_setup_fails_clearly_and_teardown_still_cleans_up") {
        return;
    }
    let node = TestNode::new("no_cidr");
    let (_tx, rx) = tokio::sync::watch::channel(None);
    let options = CniOptions {
        plugin_dirs: vec![PLUGINS.into()],
        wait_for_pod_cidr: Duration::from_millis(200),
        node_netns: Some(node.path()),
        ..CniOptions::default()
    };
    let net = CniNetwork::with_options(&node.pod_prefix, node.data.path(), rx, options);
    let p = pod("pending", 4);
    let err = net.setup(&p).await.expect_err("no podCIDR");
    assert_eq!(
        err.to_string(),
        "the node has no podCIDR yet (waited 200ms); the pod stays pending"
    );
    net.teardown(&p).await.expect("teardown");
    assert!(node.pod_namespaces().is_empty());
    assert!(node.reservations().is_empty());
}

#[tokio::test]
async fn fifty_setup_teardown_cycles_leave_nothing_behind() {
    if !enabled("fifty_setup_teardown_cycles_leave_nothing_behind") {
        return;
    }
    let node = TestNode::new("fifty");
    let (_tx, rx) = tokio::sync::watch::channel(Some(node_network(vec![])));
    let net = node.network(vec![PLUGINS.into()], rx);
    let started = Instant::now();
    for i in 0..50 {
        let p = pod("cycle", 100 + i);
        let att = net.setup(&p).await.expect("setup");
        assert!(att.pod_ip.is_some());
        net.teardown(&p).await.expect("teardown");
    }
    eprintln!("50 cycles in {:?}", started.elapsed());
    assert!(node.reservations().is_empty(), "{:?}", node.reservations());
    assert!(
        node.pod_namespaces().is_empty(),
        "{:?}",
        node.pod_namespaces()
    );
    assert_eq!(node.cached_results(), 0);
    let veths = node
        .exec(&["ip", "-o", "link", "show", "type", "veth"])
        .expect("links");
    assert_eq!(veths.trim(), "", "no veth left on the node");
}

fn skiff_routes(node: &TestNode) -> BTreeSet<String> {
    node.exec(&["ip", "-4", "route", "show", "proto", "147"])
        .expect("routes")
        .lines()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .collect()
}

async fn wait_for_routes(node: &TestNode, want: &[&str]) {
    let want: BTreeSet<String> = want.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = skiff_routes(node);
        if got == want {
            return;
        }
        assert!(Instant::now() < deadline, "routes {got:?}, want {want:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn peer(node: &str, cidr: &str, address: &str) -> Peer {
    Peer {
        node: node.into(),
        pod_cidr: cidr.into(),
        address: address.into(),
        ready: true,
    }
}

#[tokio::test]
async fn node_routes_follow_the_watch_and_cleanup_removes_them() {
    if !enabled("node_routes_follow_the_watch_and_cleanup_removes_them") {
        return;
    }
    let node = TestNode::new("routes");
    // The node's own link on the nodes' L2, so the peers are next hops.
    // (A veth pair: this kernel has no dummy links.)
    node.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p",
    ])
    .expect("veth");
    node.exec(&["ip", "link", "set", "eth0p", "up"])
        .expect("up");
    node.exec(&["ip", "addr", "add", "172.31.250.11/24", "dev", "eth0"])
        .expect("addr");
    node.exec(&["ip", "link", "set", "eth0", "up"]).expect("up");
    // Somebody else's route inside the cluster CIDR: never touched.
    node.exec(&[
        "ip",
        "route",
        "add",
        "10.244.9.0/24",
        "via",
        "172.31.250.99",
    ])
    .expect("foreign route");

    let setup = NodeSetup::in_node_netns(Some(node.path()));
    let (tx, rx) = tokio::sync::watch::channel(None);
    let task = tokio::spawn(setup.clone().run(rx));
    tx.send_replace(Some(node_network(vec![
        peer("node2", "10.244.2.0/24", "172.31.250.12"),
        peer("node3", "10.244.3.0/24", "172.31.250.13"),
    ])));
    wait_for_routes(
        &node,
        &[
            "10.244.2.0/24 via 172.31.250.12",
            "10.244.3.0/24 via 172.31.250.13",
        ],
    )
    .await;
    for (key, value) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.bridge.bridge-nf-call-iptables", "1"),
    ] {
        let got = node.exec(&["cat", &format!("/proc/sys/{}", key.replace('.', "/"))]);
        assert_eq!(got.expect(key).trim(), value, "{key}");
    }
    // The rules follow the routes in the same pass: wait for them too (a
    // loaded machine may look between the two).
    let rule = "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 masquerade";
    let deadline = Instant::now() + Duration::from_secs(10);
    let table = loop {
        let table = node
            .exec(&["nft", "list", "table", "ip", "skiff-node"])
            .unwrap_or_default();
        if table.contains(rule) || Instant::now() > deadline {
            break table;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(table.contains(rule), "{table}");

    // node2 goes, node3 moves, node4 comes.
    tx.send_replace(Some(node_network(vec![
        peer("node3", "10.244.3.0/24", "172.31.250.33"),
        peer("node4", "10.244.4.0/24", "172.31.250.14"),
    ])));
    wait_for_routes(
        &node,
        &[
            "10.244.3.0/24 via 172.31.250.33",
            "10.244.4.0/24 via 172.31.250.14",
        ],
    )
    .await;
    // Applying again changes nothing: one rule, same routes.
    let again = NodeSetup::in_node_netns(Some(node.path()));
    again
        .apply(&node_network(vec![
            peer("node3", "10.244.3.0/24", "172.31.250.33"),
            peer("node4", "10.244.4.0/24", "172.31.250.14"),
        ]))
        .await
        .expect("apply again");
    let table = node
        .exec(&["nft", "list", "table", "ip", "skiff-node"])
        .expect("table");
    assert_eq!(table.matches("masquerade").count(), 1, "{table}");

    drop(tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run ends when the sender goes")
        .expect("join");
    setup.cleanup().await.expect("cleanup");
    assert!(skiff_routes(&node).is_empty());
    assert!(
        node.exec(&["nft", "list", "table", "ip", "skiff-node"])
            .is_err()
    );
    let all = node.exec(&["ip", "-4", "route"]).expect("routes");
    assert!(all.contains("10.244.9.0/24 via 172.31.250.99"), "{all}");
    setup.cleanup().await.expect("cleanup twice");
}

/// Several first setups at once on a fresh node (all racing to make `cni0`)
/// get distinct addresses.
#[tokio::test]
async fn concurrent_setups_on_a_fresh_node_get_distinct_addresses() {
    if !enabled("concurrent_setups_on_a_fresh_node_get_distinct_addresses") {
        return;
    }
    let node = TestNode::new("concurrent");
    let (_tx, rx) = tokio::sync::watch::channel(Some(node_network(vec![])));
    let net = std::sync::Arc::new(node.network(vec![PLUGINS.into()], rx));
    let pods: Vec<PodKey> = (0..8).map(|i| pod("many", 200 + i)).collect();
    let tasks: Vec<_> = pods
        .iter()
        .cloned()
        .map(|p| {
            let net = net.clone();
            tokio::spawn(async move { net.setup(&p).await })
        })
        .collect();
    let mut ips = BTreeSet::new();
    for task in tasks {
        let att = task.await.expect("join").expect("setup");
        ips.insert(att.pod_ip.expect("pod ip"));
    }
    assert_eq!(ips.len(), 8, "{ips:?}");
    assert_eq!(node.reservations(), ips);
    for p in &pods {
        net.teardown(p).await.expect("teardown");
    }
    assert!(node.reservations().is_empty());
}

/// Pod traffic leaving the cluster CIDR is masqueraded: the outside host has
/// no route back to 10.244.0.0/16, so its answer reaches the pod only once
/// the node's masquerade rule is in place.
#[tokio::test]
async fn traffic_leaving_the_cluster_is_masqueraded() {
    if !enabled("traffic_leaving_the_cluster_is_masqueraded") {
        return;
    }
    let node = TestNode::new("masquerade");
    let _outside = node.outside_host();
    let (_tx, rx) = tokio::sync::watch::channel(Some(node_network(vec![])));
    let net = node.network(vec![PLUGINS.into()], rx);
    let p = pod("egress", 5);
    net.setup(&p).await.expect("setup");
    let pod_ns = net.netns_name(&p);
    // Forwarding is on either way, so only the masquerade rule differs.
    node.exec(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"])
        .expect("forwarding");
    assert!(
        ping(&pod_ns, "172.31.250.1").is_err(),
        "without masquerade the answer has no way back"
    );
    let setup = NodeSetup::in_node_netns(Some(node.path()));
    setup.apply(&node_network(vec![])).await.expect("apply");
    ping(&pod_ns, "172.31.250.1").expect("pod reaches the outside host");
    setup.cleanup().await.expect("cleanup");
    net.teardown(&p).await.expect("teardown");
}

/// Two nodes on one L2 (a veth between their namespaces), each with its own
/// podCIDR and the other as peer: a pod on one reaches a pod on the other
/// over the peer routes, no overlay.
#[tokio::test]
async fn pods_on_two_nodes_reach_each_other_over_peer_routes() {
    if !enabled("pods_on_two_nodes_reach_each_other_over_peer_routes") {
        return;
    }
    let (one, two) = (TestNode::new("node_one"), TestNode::new("node_two"));
    for args in [
        vec![
            "-n", &one.name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
            "netns", &two.name,
        ],
        vec![
            "-n",
            &one.name,
            "addr",
            "add",
            "172.31.251.11/24",
            "dev",
            "eth0",
        ],
        vec![
            "-n",
            &two.name,
            "addr",
            "add",
            "172.31.251.12/24",
            "dev",
            "eth0",
        ],
        vec!["-n", &one.name, "link", "set", "eth0", "up"],
        vec!["-n", &two.name, "link", "set", "eth0", "up"],
    ] {
        sh("ip", &args).expect("node link");
    }
    let network = |own: &str, peer_name: &str, peer_cidr: &str, peer_ip: &str| NodeNetwork {
        pod_cidr: own.into(),
        cluster_cidr: "10.244.0.0/16".into(),
        peers: vec![peer(peer_name, peer_cidr, peer_ip)],
    };
    let net_one = network("10.244.1.0/24", "two", "10.244.2.0/24", "172.31.251.12");
    let net_two = network("10.244.2.0/24", "one", "10.244.1.0/24", "172.31.251.11");
    let mut pods = Vec::new();
    for (node, net) in [(&one, &net_one), (&two, &net_two)] {
        NodeSetup::in_node_netns(Some(node.path()))
            .apply(net)
            .await
            .expect("node setup");
        let (_tx, rx) = tokio::sync::watch::channel(Some(net.clone()));
        let cni = node.network(vec![PLUGINS.into()], rx);
        let p = pod("cross", pods.len() + 10);
        let att = cni.setup(&p).await.expect("setup");
        pods.push((cni, p, att.pod_ip.expect("pod ip")));
    }
    let (a, b) = (&pods[0], &pods[1]);
    assert!(a.2.starts_with("10.244.1.") && b.2.starts_with("10.244.2."));
    ping(&a.0.netns_name(&a.1), &b.2).expect("pod on one reaches pod on two");
    ping(&b.0.netns_name(&b.1), &a.2).expect("pod on two reaches pod on one");
    for (cni, p, _) in &pods {
        cni.teardown(p).await.expect("teardown");
    }
}
