//! The multi-machine lab on real virtual machines (KVM): a server machine
//! and two agent machines, each with its own kernel and containerd, on a
//! private network the host sits on. The host's kubectl applies the seed
//! Deployment and LoadBalancer Service; both the NodePort and the
//! LoadBalancer address answer from the host; an agent machine powered
//! off hard (qemu killed) heals as `skiff node stop` does: NotReady after
//! the node-monitor grace, its pods evicted, replacements Running on the
//! other agent within the lab's 10 s with KVM (emulated machines, where
//! KVM cannot run them, get the slower pace of `Accel::pace`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use skiff_tests::control_plane::kubectl_enabled;
use skiff_tests::vm::phases::say;
use skiff_tests::vm::{Image, Lab, Phases, image_cache, roles, vm_enabled};

/// The seed manifests the lab applies: the study notes' nginx Deployment
/// (`app: webui`) and the LoadBalancer Service in front of it.
const DEPLOYMENT: &str = include_str!("../fixtures/seeds/deployment-deploy-nginx.yaml");
const SERVICE: &str = include_str!("../fixtures/seeds/service-loadbalancer-service.yaml");

/// The seed Deployment with the nginx image (not to be had offline)
/// replaced by the catalog's webapp listening on nginx's port 80.
fn deployment() -> String {
    let yaml = DEPLOYMENT.replace(
        "image: nginx:1.14",
        "image: skiff.dev/webapp:v1\n        env: [{name: PORT, value: \"80\"}]",
    );
    assert!(
        yaml.contains("skiff.dev/webapp"),
        "the seed changed: {DEPLOYMENT}"
    );
    yaml
}

/// `(name, status, node)` of each `app=webui` pod.
fn pods(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            Some((
                c.first()?.to_string(),
                c.get(2)?.to_string(),
                c.get(6)?.to_string(),
            ))
        })
        .collect()
}

/// An HTTP GET of `/` from the host: the response, if any.
fn get(addr: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Waits up to `limit` for `addr` to answer with the webapp.
fn answers(addr: SocketAddr, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(body) = get(addr).filter(|b| b.contains("webapp v1 on deploy-nginx-")) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} did not answer within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn skiff_on_three_machines_serves_the_seeds_and_heals_a_powered_off_agent() {
    let test = "skiff_on_three_machines_serves_the_seeds_and_heals_a_powered_off_agent";
    if !vm_enabled(test) || !kubectl_enabled(test) {
        return;
    }
    let mut phases = Phases::new();

    phases.start("image");
    let image = Image::cached_or_build(&image_cache());

    phases.start("boot");
    let mut lab = Lab::boot(&image, &[("cp", 10), ("node1", 11), ("node2", 12)]);

    phases.start("join");
    let pace = lab.accel().pace();
    say(&format!("vm lab: {:?}, {pace:?}", lab.accel()));
    let join = roles::start_server(lab.machine("cp"), pace);
    lab.set_kubeconfig(&roles::kubeconfig(lab.machine("cp")));
    // The host's kubectl reaches the API over HTTPS at the machine's lab
    // address: that address is in the serving certificate.
    lab.kubectl_ok(&["get", "--raw", "/readyz"]);
    roles::start_agent(lab.machine("node1"), &join);
    roles::start_agent(lab.machine("node2"), &join);
    let ready = |o: &str, node: &str| {
        o.lines().any(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            c.first() == Some(&node) && c.get(1) == Some(&"Ready")
        })
    };
    let (nodes, _) = lab.eventually(
        &["get", "nodes", "-o", "wide"],
        "both agents Ready",
        Duration::from_secs(240),
        |o| ready(o, "node1") && ready(o, "node2"),
    );
    for (node, ip) in [("node1", "192.168.56.11"), ("node2", "192.168.56.12")] {
        assert!(
            nodes.lines().any(|l| l.starts_with(node) && l.contains(ip)),
            "{node} has its machine's address: {nodes}"
        );
    }

    phases.start("apply");
    let manifests = lab.file("seeds.yaml", &format!("{}\n---\n{SERVICE}", deployment()));
    lab.kubectl_ok(&["apply", "-f", &manifests.display().to_string()]);
    let pods_wide = ["get", "pods", "-l", "app=webui", "-o", "wide"];
    let (spread, _) = lab.eventually(
        &pods_wide,
        "3 webui pods Running",
        Duration::from_secs(300),
        |o| {
            let p = pods(o);
            p.len() == 3 && p.iter().all(|p| p.1 == "Running")
        },
    );
    let on = |node: &str| pods(&spread).iter().filter(|p| p.2 == node).count();
    assert!(
        on("node1") >= 1 && on("node2") >= 1,
        "spread over both agents: {spread}"
    );
    let node_port: u16 = lab
        .kubectl_ok(&[
            "get",
            "svc",
            "loadbalancer-service",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .trim()
        .parse()
        .expect("a nodePort");
    let (external, _) = lab.eventually(
        &[
            "get",
            "svc",
            "loadbalancer-service",
            "-o",
            "jsonpath={.status.loadBalancer.ingress[0].ip}",
        ],
        "a LoadBalancer address",
        Duration::from_secs(30),
        |o| o.trim().starts_with("192.168.56."),
    );
    let external: std::net::Ipv4Addr = external.trim().parse().expect("an address");
    for node in ["192.168.56.11", "192.168.56.12"] {
        let addr = SocketAddr::new(node.parse().expect("ip"), node_port);
        answers(addr, Duration::from_secs(30));
    }
    let lb = SocketAddr::from((external, 80));
    answers(lb, Duration::from_secs(30));
    say(&format!(
        "vm lab: NodePort {node_port} on both agents and LoadBalancer {external} answer from the host {}",
        lab.network().host_ip()
    ));

    phases.start("heal");
    let victim = "node1";
    let survivor = "node2";
    let lost: Vec<String> = pods(&spread)
        .into_iter()
        .filter(|p| p.2 == victim)
        .map(|p| p.0)
        .collect();
    lab.power_off(victim);
    let off = Instant::now();
    let (_, noticed) = lab.eventually(
        &["get", "nodes"],
        "node1 NotReady",
        Duration::from_secs(30),
        |o| {
            o.lines().any(|l| {
                let c: Vec<&str> = l.split_whitespace().collect();
                c.first() == Some(&victim) && c.get(1) == Some(&"NotReady")
            })
        },
    );
    say(&format!(
        "vm lab: {victim} NotReady {:.1} s after power-off",
        noticed.duration_since(off).as_secs_f64()
    ));
    let (healed, running) = lab.eventually(
        &pods_wide,
        "replacements Running on node2",
        Duration::from_secs(60),
        |o| {
            pods(o)
                .iter()
                .filter(|p| p.1 == "Running" && p.2 == survivor && !lost.contains(&p.0))
                .count()
                == 3
        },
    );
    let took = running.duration_since(off);
    say(&format!(
        "vm lab: replacements Running on {survivor} {:.1} s after power-off",
        took.as_secs_f64()
    ));
    // With KVM the lab's 10 s, as `skiff node stop` heals in skiff_up.rs
    // (4 s node-monitor grace, 4 s eviction, the restart); see
    // `Accel::pace` for emulated machines.
    assert!(
        took < pace.heal,
        "replacements Running after {took:?} (bound {:?}, {:?}): {healed}",
        pace.heal,
        lab.accel()
    );
    // The Service follows: node2's NodePort and the LoadBalancer address
    // (now announced by node2) answer again.
    let addr = SocketAddr::new("192.168.56.12".parse().expect("ip"), node_port);
    answers(addr, Duration::from_secs(30));
    answers(lb, Duration::from_secs(30));
    say(&phases.summary());
}
