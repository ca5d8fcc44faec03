//! The service proxy against the real kernel: each test builds its own
//! network namespaces (a "node" with a bridge, two "pods" on it, a "client"
//! on a veth to the node), applies the proxy's table inside the node
//! namespace (`ProxyConfig::netns`, i.e. `nsenter --net=`), and sends real
//! TCP connections from the client namespace. Nothing touches the host's
//! namespace; a Drop guard removes the namespaces even when a test fails.
//!
//! Needs root, `ip`, `nft` and `nsenter`. Without them the tests are skipped
//! with a message, unless `SKIFF_REQUIRE_E2E=1` (CI): then that is a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use skiff_kubelet::proxy::rules::service_chain_base;
use skiff_kubelet::proxy::{
    Endpoint, Protocol, ProxyConfig, ServicePort, ServicePortName, ServiceProxy, Syncer,
};

const POD_A: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 10);
const POD_B: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 11);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 200, 1);
const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 200, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
const POD_PORT: u16 = 8080;

fn required() -> bool {
    std::env::var("SKIFF_REQUIRE_E2E").is_ok_and(|v| v == "1" || v == "true")
}

fn missing_prerequisite() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not running as root".into());
    }
    for tool in ["ip", "nft", "nsenter"] {
        let found = Command::new(tool).arg("--version").output().is_ok();
        if !found {
            return Some(format!(
                "`{tool}` not found (apt-get install iproute2 nftables util-linux)"
            ));
        }
    }
    None
}

fn enabled(test: &str) -> bool {
    match missing_prerequisite() {
        None => true,
        Some(reason) if required() => panic!("{test}: cannot run: {reason}"),
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason} (set SKIFF_REQUIRE_E2E=1 to make this a failure)");
            false
        }
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "{}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Enters network namespace `ns` on the current thread (only this thread).
fn enter(ns: &str) {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    // SAFETY: setns on a valid namespace fd affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// Runs `f` on a fresh thread inside namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_owned();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("netns thread")
}

/// One connection: what the server wrote (its pod name), or the error.
fn hit(addr: SocketAddrV4) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(3))?;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

/// `n` connections from the client namespace, counted by answer.
fn hits(lab: &Lab, addr: SocketAddrV4, n: usize) -> BTreeMap<String, usize> {
    in_netns(&lab.client, move || {
        let mut seen = BTreeMap::new();
        for _ in 0..n {
            let answer = hit(addr).unwrap_or_else(|e| format!("error: {e}"));
            *seen.entry(answer).or_insert(0) += 1;
        }
        seen
    })
}

static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// The namespaces of one test and the pod servers in them.
struct Lab {
    node: String,
    pods: [String; 2],
    client: String,
    stop: Arc<AtomicBool>,
    servers: Vec<JoinHandle<()>>,
}

impl Lab {
    fn new() -> Lab {
        let id = format!(
            "{}-{}",
            std::process::id() % 100_000,
            NEXT_LAB.fetch_add(1, Ordering::SeqCst)
        );
        let mut lab = Lab {
            node: format!("pxn{id}"),
            pods: [format!("pxa{id}"), format!("pxb{id}")],
            client: format!("pxc{id}"),
            stop: Arc::new(AtomicBool::new(false)),
            servers: Vec::new(),
        };
        // Registered before anything is made so Drop cleans up a half-built lab.
        for ns in [&lab.node, &lab.pods[0], &lab.pods[1], &lab.client] {
            sh(&["ip", "netns", "add", ns]);
        }
        let n = lab.node.clone();
        sh(&["ip", "-n", &n, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &n, "link", "add", "br0", "type", "bridge"]);
        sh(&["ip", "-n", &n, "addr", "add", "10.244.1.1/24", "dev", "br0"]);
        sh(&["ip", "-n", &n, "link", "set", "br0", "up"]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &n,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        // Service addresses are routed somewhere (here the bridge) as on a real
        // node; without a route, traffic to a VIP with no endpoints would be
        // refused by routing, not by the proxy.
        sh(&["ip", "-n", &n, "route", "add", "10.96.0.0/12", "dev", "br0"]);
        for (i, ip) in [POD_A, POD_B].into_iter().enumerate() {
            let pod = lab.pods[i].clone();
            let veth = format!("vp{i}");
            sh(&[
                "ip", "-n", &n, "link", "add", &veth, "type", "veth", "peer", "name", "eth0",
                "netns", &pod,
            ]);
            sh(&["ip", "-n", &n, "link", "set", &veth, "master", "br0", "up"]);
            // As the bridge CNI's `hairpinMode: true`: with br_netfilter, a
            // pod balanced to itself gets its DNATed packet bridged back out
            // the port it came in on.
            sh(&[
                "ip",
                "-n",
                &n,
                "link",
                "set",
                &veth,
                "type",
                "bridge_slave",
                "hairpin",
                "on",
            ]);
            sh(&[
                "ip",
                "-n",
                &pod,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                "eth0",
            ]);
            sh(&["ip", "-n", &pod, "link", "set", "eth0", "up"]);
            sh(&["ip", "-n", &pod, "link", "set", "lo", "up"]);
            sh(&[
                "ip",
                "-n",
                &pod,
                "route",
                "add",
                "default",
                "via",
                "10.244.1.1",
            ]);
        }
        let c = lab.client.clone();
        sh(&[
            "ip", "-n", &n, "link", "add", "vc", "type", "veth", "peer", "name", "eth0", "netns",
            &c,
        ]);
        sh(&[
            "ip",
            "-n",
            &n,
            "addr",
            "add",
            &format!("{NODE_IP}/24"),
            "dev",
            "vc",
        ]);
        sh(&["ip", "-n", &n, "link", "set", "vc", "up"]);
        sh(&[
            "ip",
            "-n",
            &c,
            "addr",
            "add",
            &format!("{CLIENT_IP}/24"),
            "dev",
            "eth0",
        ]);
        sh(&["ip", "-n", &c, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &c, "link", "set", "lo", "up"]);
        sh(&[
            "ip",
            "-n",
            &c,
            "route",
            "add",
            "default",
            "via",
            &NODE_IP.to_string(),
        ]);
        for i in 0..2 {
            lab.serve(i);
        }
        lab
    }

    /// A TCP server in pod `i` answering its name to every connection.
    fn serve(&mut self, i: usize) {
        let ns = self.pods[i].clone();
        let name = ["pod-a", "pod-b"][i];
        let stop = self.stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        self.servers.push(std::thread::spawn(move || {
            enter(&ns);
            let listener = TcpListener::bind(("0.0.0.0", POD_PORT)).expect("bind");
            listener.set_nonblocking(true).expect("nonblocking");
            let _ = ready_tx.send(());
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.set_nonblocking(false);
                        let _ = conn.write_all(name.as_bytes());
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(_) => break,
                }
            }
        }));
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("server ready");
    }

    fn config(&self) -> ProxyConfig {
        let mut config = ProxyConfig::new("node-1");
        config.netns = Some(PathBuf::from(format!("/run/netns/{}", self.node)));
        config
    }

    fn nft(&self, args: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.node, "nft"])
            .args(args)
            .output()
            .expect("nft")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for server in self.servers.drain(..) {
            let _ = server.join();
        }
        for ns in [&self.client, &self.pods[0], &self.pods[1], &self.node] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

fn web(endpoints: &[Ipv4Addr]) -> ServicePort {
    let mut svc = ServicePort::cluster_ip(
        ServicePortName::new("default", "web", "http", Protocol::Tcp),
        VIP,
        80,
    );
    svc.endpoints = endpoints
        .iter()
        .map(|ip| {
            Endpoint::ready(
                *ip,
                POD_PORT,
                Some(if *ip == POD_A { "node-1" } else { "node-2" }),
            )
        })
        .collect();
    svc
}

fn desired(ports: Vec<ServicePort>) -> BTreeMap<ServicePortName, ServicePort> {
    ports.into_iter().map(|p| (p.name.clone(), p)).collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn vip() -> SocketAddrV4 {
    SocketAddrV4::new(VIP, 80)
}

/// A ClusterIP spreads connections over both endpoints; when one endpoint
/// goes, the sync touches only that service's chains and every connection
/// reaches the other.
#[test]
fn cluster_ip_balances_over_both_endpoints_then_follows_removal() {
    if !enabled("cluster_ip_balances_over_both_endpoints_then_follows_removal") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    let report = rt
        .block_on(syncer.sync(&desired(vec![web(&[POD_A, POD_B])])))
        .expect("full sync");
    assert!(report.full);

    let seen = hits(&lab, vip(), 60);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["pod-a", "pod-b"],
        "{seen:?}"
    );

    let next = desired(vec![web(&[POD_A])]);
    let objects = syncer.preview(&next).objects();
    let base = service_chain_base(&web(&[]).name);
    for object in &objects {
        assert!(
            object == &format!("chain service-{base}") || object.starts_with("chain endpoint-"),
            "{objects:?}"
        );
    }
    let report = rt.block_on(syncer.sync(&next)).expect("incremental sync");
    assert!(!report.full);
    assert_eq!(report.services_changed, 1);

    let seen = hits(&lab, vip(), 30);
    assert_eq!(seen, BTreeMap::from([("pod-a".to_owned(), 30)]));
    // The removed endpoint's chain is gone from the kernel too.
    let listing = String::from_utf8_lossy(&lab.nft(&["list", "table", "ip", "skiff-proxy"]).stdout)
        .into_owned();
    assert!(!listing.contains("10.244.1.11"), "{listing}");
}

/// A Service with no endpoints refuses at once (a TCP reset from the
/// filter chains), not after a timeout.
#[test]
fn service_without_endpoints_refuses_at_once() {
    if !enabled("service_without_endpoints_refuses_at_once") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    rt.block_on(syncer.sync(&desired(vec![web(&[])])))
        .expect("sync");
    let (elapsed, result) = in_netns(&lab.client, || {
        let start = Instant::now();
        let result = hit(vip());
        (start.elapsed(), result.map_err(|e| e.kind()))
    });
    assert_eq!(result, Err(ErrorKind::ConnectionRefused));
    assert!(
        elapsed < Duration::from_millis(500),
        "refused after {elapsed:?}"
    );

    // Endpoints appear: the same address now answers.
    rt.block_on(syncer.sync(&desired(vec![web(&[POD_B])])))
        .expect("sync");
    assert_eq!(
        hits(&lab, vip(), 5),
        BTreeMap::from([("pod-b".to_owned(), 5)])
    );
}

/// Changing one of two services rewrites only that service's chain and
/// elements (checked on the generated transaction), and the other keeps
/// working.
#[test]
fn incremental_sync_touches_only_the_changed_service() {
    if !enabled("incremental_sync_touches_only_the_changed_service") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    let mut other = ServicePort::cluster_ip(
        ServicePortName::new("shop", "cart", "", Protocol::Tcp),
        Ipv4Addr::new(10, 96, 0, 20),
        81,
    );
    other.endpoints = vec![Endpoint::ready(POD_B, POD_PORT, Some("node-2"))];
    rt.block_on(syncer.sync(&desired(vec![web(&[]), other.clone()])))
        .expect("full sync");

    let next = desired(vec![web(&[POD_A]), other.clone()]);
    let tx = syncer.preview(&next);
    let base = service_chain_base(&web(&[]).name);
    let expected: BTreeSet<String> = [
        format!("chain service-{base}"),
        "element no-endpoint-services 10.96.0.10 . tcp . 80".to_owned(),
        "element service-ips 10.96.0.10 . tcp . 80".to_owned(),
    ]
    .into_iter()
    .collect();
    let objects = tx.objects();
    let endpoint_chains: Vec<&String> = objects
        .iter()
        .filter(|o| o.starts_with("chain endpoint-"))
        .collect();
    assert_eq!(endpoint_chains.len(), 1, "{objects:?}");
    assert!(endpoint_chains[0].contains("default/web/tcp/http__10.244.1.10/8080"));
    assert_eq!(
        objects
            .iter()
            .filter(|o| !o.starts_with("chain endpoint-"))
            .cloned()
            .collect::<BTreeSet<_>>(),
        expected
    );
    assert!(
        !objects
            .iter()
            .any(|o| o.contains("cart") || o.contains("10.96.0.20")),
        "{objects:?}"
    );

    let report = rt.block_on(syncer.sync(&next)).expect("incremental");
    assert!(!report.full);
    assert_eq!(report.services_changed, 1);
    assert_eq!(
        hits(&lab, vip(), 5),
        BTreeMap::from([("pod-a".to_owned(), 5)])
    );
    let cart = SocketAddrV4::new(Ipv4Addr::new(10, 96, 0, 20), 81);
    assert_eq!(
        hits(&lab, cart, 5),
        BTreeMap::from([("pod-b".to_owned(), 5)])
    );
    // Nothing left to do: no transaction at all.
    assert_eq!(rt.block_on(syncer.sync(&next)).expect("no-op").commands, 0);
}

/// A NodePort answers on the node's own address (Cluster policy).
#[test]
fn node_port_answers_on_the_node_address() {
    if !enabled("node_port_answers_on_the_node_address") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    let mut svc = web(&[POD_A, POD_B]);
    svc.node_port = Some(30080);
    rt.block_on(syncer.sync(&desired(vec![svc]))).expect("sync");
    let seen = hits(&lab, SocketAddrV4::new(NODE_IP, 30080), 40);
    assert_eq!(
        seen.keys().cloned().collect::<Vec<_>>(),
        ["pod-a", "pod-b"],
        "{seen:?}"
    );
    // Another port of the node is not captured.
    let other = in_netns(&lab.client, || {
        hit(SocketAddrV4::new(NODE_IP, 30081)).map_err(|e| e.kind())
    });
    assert_eq!(other, Err(ErrorKind::ConnectionRefused));
}

/// Local policy with no endpoint on this node drops NodePort traffic; with
/// one, traffic goes only there.
#[test]
fn node_port_local_policy_uses_only_local_endpoints() {
    if !enabled("node_port_local_policy_uses_only_local_endpoints") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    let mut svc = web(&[POD_B]); // on node-2 only
    svc.node_port = Some(30080);
    svc.external_traffic_local = true;
    rt.block_on(syncer.sync(&desired(vec![svc.clone()])))
        .expect("sync");
    let dropped = in_netns(&lab.client, || {
        let start = Instant::now();
        let r = TcpStream::connect_timeout(
            &SocketAddr::V4(SocketAddrV4::new(NODE_IP, 30080)),
            Duration::from_millis(700),
        );
        (r.map(|_| ()).map_err(|e| e.kind()), start.elapsed())
    });
    assert_eq!(
        dropped.0,
        Err(ErrorKind::TimedOut),
        "dropped, not refused: {dropped:?}"
    );

    svc.endpoints
        .push(Endpoint::ready(POD_A, POD_PORT, Some("node-1")));
    rt.block_on(syncer.sync(&desired(vec![svc]))).expect("sync");
    let seen = hits(&lab, SocketAddrV4::new(NODE_IP, 30080), 20);
    assert_eq!(seen, BTreeMap::from([("pod-a".to_owned(), 20)]));
}

/// With `sessionAffinity: ClientIP` every connection of a client goes to
/// the same endpoint.
#[test]
fn session_affinity_sticks_to_one_endpoint() {
    if !enabled("session_affinity_sticks_to_one_endpoint") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    let mut svc = web(&[POD_A, POD_B]);
    svc.session_affinity = Some(60);
    rt.block_on(syncer.sync(&desired(vec![svc]))).expect("sync");
    let seen = hits(&lab, vip(), 30);
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen.values().sum::<usize>(), 30);
}

/// The actor coalesces a burst of changes, applies them, and its cleanup
/// leaves no table behind.
#[test]
fn actor_applies_bursts_and_cleanup_leaves_no_table() {
    if !enabled("actor_applies_bursts_and_cleanup_leaves_no_table") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    rt.block_on(async {
        let proxy = ServiceProxy::spawn(lab.config()).await.expect("spawn");
        for i in 0..20u8 {
            let endpoints: &[Ipv4Addr] = if i % 2 == 0 {
                &[POD_A]
            } else {
                &[POD_A, POD_B]
            };
            proxy
                .service_changed("default", "web", vec![web(endpoints)])
                .expect("send");
        }
        // The debounce (20 ms) applies the last state; wait for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let out = lab.nft(&["list", "table", "ip", "skiff-proxy"]);
            if String::from_utf8_lossy(&out.stdout).contains("10.244.1.11") {
                break;
            }
            assert!(Instant::now() < deadline, "proxy never applied the burst");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let report = proxy.sync_now().await.expect("sync now");
        assert_eq!(report.commands, 0, "already applied: {report:?}");
        proxy.cleanup().await.expect("cleanup");
    });
    let out = lab.nft(&["list", "table", "ip", "skiff-proxy"]);
    assert!(
        !out.status.success(),
        "table still there: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// UDP: when an endpoint goes, its conntrack entries are deleted, so a
/// client reusing its source port reaches the new endpoint at once instead
/// of the old one for the flow's lifetime. Needs `conntrack`
/// (apt-get install conntrack).
#[test]
fn udp_flows_to_a_removed_endpoint_are_cleared() {
    if !enabled("udp_flows_to_a_removed_endpoint_are_cleared") {
        return;
    }
    if Command::new("conntrack").arg("--version").output().is_err() {
        let reason = "`conntrack` not found (apt-get install conntrack)";
        assert!(
            !required(),
            "udp_flows_to_a_removed_endpoint_are_cleared: {reason}"
        );
        eprintln!("SKIPPED udp_flows_to_a_removed_endpoint_are_cleared: {reason}");
        return;
    }
    let lab = Lab::new();
    for (i, name) in ["pod-a", "pod-b"].into_iter().enumerate() {
        let ns = lab.pods[i].clone();
        let stop = lab.stop.clone();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            enter(&ns);
            let socket = std::net::UdpSocket::bind(("0.0.0.0", 5353)).expect("bind udp");
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .expect("timeout");
            let _ = ready_tx.send(());
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((_, from)) = socket.recv_from(&mut buf) {
                    let _ = socket.send_to(name.as_bytes(), from);
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("udp server ready");
    }
    let dns = |ip: Ipv4Addr| {
        let mut svc = ServicePort::cluster_ip(
            ServicePortName::new("kube-system", "dns", "dns", Protocol::Udp),
            VIP,
            53,
        );
        svc.endpoints = vec![Endpoint::ready(ip, 5353, Some("node-1"))];
        svc
    };
    // One client socket, one source port, for the whole test: one flow.
    let ask = |lab: &Lab| {
        in_netns(&lab.client, || {
            let socket = std::net::UdpSocket::bind(("0.0.0.0", 40053)).expect("bind client");
            socket
                .set_read_timeout(Some(Duration::from_secs(2)))
                .expect("timeout");
            socket
                .send_to(b"q", SocketAddrV4::new(VIP, 53))
                .expect("send");
            let mut buf = [0u8; 64];
            let n = socket.recv(&mut buf).map_err(|e| e.kind())?;
            Ok::<_, ErrorKind>(String::from_utf8_lossy(&buf[..n]).into_owned())
        })
    };
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    rt.block_on(syncer.sync(&desired(vec![dns(POD_A)])))
        .expect("sync");
    assert_eq!(ask(&lab), Ok("pod-a".to_owned()));
    rt.block_on(syncer.sync(&desired(vec![dns(POD_B)])))
        .expect("sync");
    assert_eq!(
        ask(&lab),
        Ok("pod-b".to_owned()),
        "the old flow still went to pod-a"
    );
}

/// External IPs and LoadBalancer IPs routed to the node reach the
/// endpoints through the `external-…` chain.
#[test]
fn external_and_load_balancer_ips_reach_the_endpoints() {
    if !enabled("external_and_load_balancer_ips_reach_the_endpoints") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    let mut svc = web(&[POD_A, POD_B]);
    let external = Ipv4Addr::new(192, 168, 250, 50);
    let lb = Ipv4Addr::new(192, 168, 250, 60);
    svc.external_ips = vec![external];
    svc.load_balancer_ips = vec![lb];
    rt.block_on(syncer.sync(&desired(vec![svc]))).expect("sync");
    for ip in [external, lb] {
        let seen = hits(&lab, SocketAddrV4::new(ip, 80), 30);
        assert_eq!(
            seen.keys().cloned().collect::<Vec<_>>(),
            ["pod-a", "pod-b"],
            "{ip}: {seen:?}"
        );
    }
}

/// Hairpin: a pod reaching its own Service and balanced to itself is
/// masqueraded (the endpoint chain's `ip saddr` mark), so the reply comes
/// back through the node and is un-DNATed.
#[test]
fn a_pod_reaches_itself_through_its_service() {
    if !enabled("a_pod_reaches_itself_through_its_service") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    rt.block_on(syncer.sync(&desired(vec![web(&[POD_A])])))
        .expect("sync");
    let answers = in_netns(&lab.pods[0], || {
        (0..5)
            .map(|_| hit(vip()).unwrap_or_else(|e| format!("error: {e}")))
            .collect::<Vec<_>>()
    });
    assert_eq!(answers, vec!["pod-a"; 5]);
}

/// A pod reaches another pod on the same bridge through the Service: the
/// reply is bridged, and br_netfilter (`bridge-nf-call-iptables=1`, as the
/// pod network sets it) lets conntrack un-DNAT it.
#[test]
fn a_pod_reaches_a_neighbour_through_the_service() {
    if !enabled("a_pod_reaches_a_neighbour_through_the_service") {
        return;
    }
    let lab = Lab::new();
    sh(&[
        "ip",
        "netns",
        "exec",
        &lab.node,
        "sysctl",
        "-qw",
        "net.bridge.bridge-nf-call-iptables=1",
    ]);
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    rt.block_on(syncer.sync(&desired(vec![web(&[POD_A])])))
        .expect("sync");
    let answers = in_netns(&lab.pods[1], || {
        (0..5)
            .map(|_| hit(vip()).unwrap_or_else(|e| format!("error: {e}")))
            .collect::<Vec<_>>()
    });
    assert_eq!(answers, vec!["pod-a"; 5]);
}

/// A host-network process of the node reaches a ClusterIP (the output
/// hook: `nat-output` at priority -100) and a NodePort on the node's own
/// address.
#[test]
fn the_node_itself_reaches_cluster_ip_and_node_port() {
    if !enabled("the_node_itself_reaches_cluster_ip_and_node_port") {
        return;
    }
    let lab = Lab::new();
    let rt = runtime();
    let mut syncer = Syncer::new(lab.config());
    let mut svc = web(&[POD_A, POD_B]);
    svc.node_port = Some(30080);
    rt.block_on(syncer.sync(&desired(vec![svc]))).expect("sync");
    let seen = in_netns(&lab.node, || {
        let mut seen = BTreeSet::new();
        for addr in [vip(), SocketAddrV4::new(NODE_IP, 30080)] {
            for _ in 0..30 {
                seen.insert(hit(addr).unwrap_or_else(|e| format!("error: {e}")));
            }
        }
        seen
    });
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["pod-a", "pod-b"]);
}
