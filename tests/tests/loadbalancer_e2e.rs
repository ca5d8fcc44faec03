//! LoadBalancer Services on `skiff up --nodes 3` (real containerd, real
//! kubectl, the host as a client on the cluster's bridge): a Service gets
//! an address of the pool, shown as EXTERNAL-IP; one node holds it and the
//! host reaches the webapp through it; when that node stops, another takes
//! the address over and the host reaches it again; with the pool used up a
//! Service stays `<pending>` with an `AllocationFailed` event, and gets the
//! address another Service frees by a type change (its status cleared) or
//! a delete. A node back from a stop or a partition announces its address
//! again (the host's neighbour entry follows), and with
//! `externalTrafficPolicy: Local` only a node with a ready endpoint
//! announces.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use skiff_tests::cluster::SkiffUp;
use skiff_tests::control_plane::kubectl_enabled;
use skiff_tests::e2e_enabled;

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: web
        image: skiff.dev/webapp:v1
        ports: [{containerPort: 8080}]
        readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
";

fn lb_service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports: [{{name: http, port: 80, targetPort: 8080}}]\n"
    )
}

fn apply(cluster: &SkiffUp, yaml: &str) {
    let file = cluster.dir().join("manifest.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    cluster.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
}

/// The EXTERNAL-IP column of `kubectl get svc name`.
fn external_ip(cluster: &SkiffUp, name: &str) -> Option<String> {
    let (ok, out) = cluster.kubectl(&["get", "svc", name]);
    if !ok {
        return None;
    }
    let header: Vec<&str> = out.lines().next()?.split_whitespace().collect();
    let column = header.iter().position(|h| *h == "EXTERNAL-IP")?;
    Some(
        out.lines()
            .nth(1)?
            .split_whitespace()
            .nth(column)?
            .to_string(),
    )
}

/// An HTTP GET of `/` from the host, the body if it answered.
fn get(ip: &str, port: u16) -> Option<String> {
    let addr = SocketAddr::new(ip.parse().ok()?, port);
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// Waits up to `limit` for `check`; how long it took.
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    panic!("not within {limit:?}: {what}");
}

/// The nodes whose namespace has `ip` on an interface.
fn holders(cluster_id: u8, ip: &str) -> Vec<String> {
    (1..=3)
        .map(|i| format!("node{i}"))
        .filter(|node| {
            let out = Command::new("ip")
                .args(["-n", &format!("skiff{cluster_id}-{node}"), "-4", "addr"])
                .output()
                .expect("ip");
            String::from_utf8_lossy(&out.stdout).contains(&format!("inet {ip}/32"))
        })
        .collect()
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect(program);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The MAC of `node`'s `eth0`.
fn node_mac(cluster_id: u8, node: &str) -> String {
    let out = run(
        "ip",
        &[
            "-n",
            &format!("skiff{cluster_id}-{node}"),
            "link",
            "show",
            "eth0",
        ],
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words
        .iter()
        .position(|w| *w == "link/ether")
        .expect("link/ether");
    words[at + 1].to_string()
}

/// The MAC the host's neighbour table has for `ip` on the cluster's bridge.
fn host_neighbour(cluster_id: u8, ip: &str) -> Option<String> {
    let out = run(
        "ip",
        &["neigh", "show", ip, "dev", &format!("skiff{cluster_id}")],
    );
    let words: Vec<&str> = out.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "lladdr")?;
    Some(words.get(at + 1)?.to_string())
}

fn webapp_answers(ip: &str) -> bool {
    get(ip, 80).is_some_and(|b| b.contains("webapp v1 on "))
}

#[test]
fn loadbalancer_services_get_pool_addresses_announced_by_one_ready_node() {
    let test = "loadbalancer_services_get_pool_addresses_announced_by_one_ready_node";
    if !kubectl_enabled(test) || !e2e_enabled(test) {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-lb-")
        .tempdir()
        .expect("tempdir");
    // Two addresses: enough for two Services, not for a third.
    let cluster = SkiffUp::start_with(3, temp.path(), &["--load-balancer-pool-size", "2"]);
    let nodes: Value = serde_json::from_str(&cluster.kubectl_ok(&["get", "nodes", "-o", "json"]))
        .expect("nodes json");
    let node_ip: Ipv4Addr = nodes["items"][0]["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .and_then(|a| a["address"].as_str())
        .and_then(|a| a.parse().ok())
        .expect("InternalIP");
    let id = node_ip.octets()[2];
    let first = format!("172.29.{id}.200");
    let second = format!("172.29.{id}.201");

    apply(&cluster, &format!("{WEB}---\n{}", lb_service("web-lb")));
    cluster.eventually(&["get", "deploy", "web"], "3 web pods ready", |o| {
        o.contains("3/3")
    });
    cluster.eventually(
        &["get", "svc", "web-lb"],
        "an EXTERNAL-IP from the pool",
        |o| o.contains(&first),
    );
    assert_eq!(
        external_ip(&cluster, "web-lb").as_deref(),
        Some(first.as_str())
    );
    let status: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "svc", "web-lb", "-o", "json"]))
            .expect("svc json");
    assert_eq!(
        status["status"]["loadBalancer"]["ingress"],
        serde_json::json!([{"ip": first, "ipMode": "VIP"}])
    );

    // Exactly one node holds the address, and the host reaches the webapp
    // through it.
    within(
        Duration::from_secs(30),
        "one node holds the address",
        || holders(id, &first).len() == 1,
    );
    within(Duration::from_secs(30), "the host reaches web-lb", || {
        webapp_answers(&first)
    });
    let announcer = holders(id, &first).remove(0);
    assert_eq!(
        host_neighbour(id, &first),
        Some(node_mac(id, &announcer)),
        "the host reaches {first} at {announcer}"
    );

    // The second Service gets the second address; the third none.
    apply(&cluster, &lb_service("second-lb"));
    cluster.eventually(&["get", "svc", "second-lb"], "the second address", |o| {
        o.contains(&second)
    });
    apply(&cluster, &lb_service("third-lb"));
    cluster.eventually(
        &[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=third-lb",
        ],
        "AllocationFailed for third-lb",
        |o| {
            o.contains("AllocationFailed")
                && o.contains("Failed to allocate IP for \"default/third-lb\": no available IPs")
        },
    );
    assert_eq!(
        external_ip(&cluster, "third-lb").as_deref(),
        Some("<pending>")
    );

    // The announcing node stops: once the control plane sees it silent,
    // another node holds the address and the host is answered again.
    cluster.node("stop", &announcer);
    let took = within(
        Duration::from_secs(90),
        "another node announces the address and the webapp answers",
        || {
            let now = holders(id, &first);
            now.iter().any(|n| *n != announcer) && webapp_answers(&first)
        },
    );
    eprintln!("failover from {announcer} took {took:?}");
    let after = holders(id, &first);
    let others: Vec<&String> = after.iter().filter(|n| **n != announcer).collect();
    assert_eq!(others.len(), 1, "one new holder: {after:?}");
    // The stopped node's kernel still forwards what reaches it, so the
    // answer alone proves little: the host's neighbour entry moved to the
    // new holder (its gratuitous ARP), not by waiting out the old entry.
    let new_mac = node_mac(id, others[0]);
    within(
        Duration::from_secs(5),
        "the host's neighbour entry moves",
        || host_neighbour(id, &first).as_ref() == Some(&new_mac),
    );
    // Until the stopped node's pods leave the endpoints (its Ready
    // condition going Unknown marks them not ready), some requests are
    // sent to a frozen pod; after that every one is answered.
    within(Duration::from_secs(30), "five answers in a row", || {
        (0..5).all(|_| webapp_answers(&first))
    });

    // A Service that stops being a LoadBalancer loses its address to the
    // waiting one; its status is cleared.
    cluster.kubectl_ok(&[
        "patch",
        "svc",
        "second-lb",
        "-p",
        r#"{"spec":{"type":"ClusterIP"}}"#,
    ]);
    cluster.eventually(&["get", "svc", "third-lb"], "the freed address", |o| {
        o.contains(&second)
    });
    assert_eq!(
        external_ip(&cluster, "second-lb").as_deref(),
        Some("<none>")
    );
    let cleared: Value =
        serde_json::from_str(&cluster.kubectl_ok(&["get", "svc", "second-lb", "-o", "json"]))
            .expect("svc json");
    assert_eq!(cleared["status"]["loadBalancer"], serde_json::json!({}));
    // Deleting one frees its address too.
    cluster.kubectl_ok(&["delete", "svc", "third-lb"]);
    apply(&cluster, &lb_service("fourth-lb"));
    cluster.eventually(&["get", "svc", "fourth-lb"], "the address again", |o| {
        o.contains(&second)
    });

    // The stopped node comes back: it wins its address again (the hash
    // has not changed) and the host is told.
    cluster.node("start", &announcer);
    within(
        Duration::from_secs(60),
        "the returned node holds the first address alone",
        || holders(id, &first) == [announcer.clone()],
    );
    let announcer_mac = node_mac(id, &announcer);
    within(
        Duration::from_secs(10),
        "the host's neighbour entry is back",
        || host_neighbour(id, &first).as_ref() == Some(&announcer_mac),
    );

    // A partition (the node's link cut, its L2 neighbours unaware): another
    // node takes the address; once healed, the returning node (which never
    // dropped it) announces it again, so the host stops sending to the
    // stand-in, which has let the address go.
    cluster.node("partition", &announcer);
    within(
        Duration::from_secs(90),
        "a stand-in announces the first address",
        || host_neighbour(id, &first).is_some_and(|mac| mac != announcer_mac && !mac.is_empty()),
    );
    cluster.node("heal", &announcer);
    within(
        Duration::from_secs(60),
        "the stand-in lets the address go",
        || holders(id, &first) == [announcer.clone()],
    );
    within(
        Duration::from_secs(10),
        "the host's neighbour entry returns to the healed node",
        || host_neighbour(id, &first).as_ref() == Some(&announcer_mac),
    );
    within(Duration::from_secs(60), "the webapp answers again", || {
        webapp_answers(&first)
    });

    // externalTrafficPolicy: Local: only a node with a ready endpoint
    // announces (one pod, so exactly its node), whatever the hash says.
    cluster.kubectl_ok(&["delete", "svc", "fourth-lb"]);
    apply(
        &cluster,
        "apiVersion: apps/v1
kind: Deployment
metadata: {name: solo}
spec:
  replicas: 1
  selector: {matchLabels: {app: solo}}
  template:
    metadata: {labels: {app: solo}}
    spec:
      containers:
      - name: web
        image: skiff.dev/webapp:v1
        readinessProbe: {httpGet: {path: /ready, port: 8080}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: local-lb}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  selector: {app: solo}
  ports: [{port: 80, targetPort: 8080}]
",
    );
    cluster.eventually(&["get", "deploy", "solo"], "the solo pod ready", |o| {
        o.contains("1/1")
    });
    cluster.eventually(&["get", "svc", "local-lb"], "an address", |o| {
        o.contains(&second)
    });
    let solo_node = cluster
        .kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=solo",
            "-o",
            "jsonpath={.items[0].spec.nodeName}",
        ])
        .trim()
        .to_string();
    within(
        Duration::from_secs(30),
        "the solo pod's node announces local-lb",
        || holders(id, &second) == [solo_node.clone()],
    );
    within(Duration::from_secs(30), "the host reaches local-lb", || {
        webapp_answers(&second)
    });
}
