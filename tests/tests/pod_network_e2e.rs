//! The pod network on `skiff up --nodes 3` (real containerd, real CNI
//! plugins, real kubectl): each node gets a pod subnet, pods get addresses
//! from it and reach each other across nodes, a hostNetwork pod has the
//! node's address, a deleted pod's address is released, a partitioned
//! node's pods are cut off, and pods see the Services made before them in
//! their environment.

use std::path::Path;

use serde_json::Value;
use skiff_tests::cluster::SkiffUp;
use skiff_tests::control_plane::kubectl_enabled;
use skiff_tests::e2e_enabled;

fn apply(cluster: &SkiffUp, yaml: &str) {
    let file = cluster.dir().join("manifest.yaml");
    std::fs::write(&file, yaml).expect("write manifest");
    cluster.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
}

fn json(cluster: &SkiffUp, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl_ok(&all)).expect("kubectl json")
}

/// Whether `ip` is inside `cidr` (IPv4, `a.b.c.d/n`).
fn inside(ip: &str, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').expect("cidr");
    let bits: u32 = bits.parse().expect("prefix");
    let as_u32 = |a: &str| u32::from(a.parse::<std::net::Ipv4Addr>().expect("ipv4"));
    let mask = u32::MAX << (32 - bits);
    as_u32(ip) & mask == as_u32(net) & mask
}

/// What `wget` of `url` from the client pod prints, or `None` when it
/// fails. Busybox 1.35's `wget -T` crashes, so the time limit is `timeout`'s.
fn fetch(cluster: &SkiffUp, url: &str) -> Option<String> {
    let (ok, out) = cluster.kubectl(&["exec", "client", "--", "timeout", "5", "wget", "-qO-", url]);
    ok.then_some(out)
}

fn web_pod(name: &str, node: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: web}}}}\nspec:\n  nodeName: {node}\n  terminationGracePeriodSeconds: 0\n  tolerations: [{{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute}}, {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute}}]\n  containers:\n  - name: web\n    image: skiff.dev/webapp:v1\n    ports: [{{containerPort: 8080}}]\n    readinessProbe: {{httpGet: {{path: /ready, port: 8080}}, periodSeconds: 1}}\n---\n"
    )
}

#[test]
fn pods_get_addresses_from_their_nodes_subnet_and_reach_each_other() {
    let test = "pods_get_addresses_from_their_nodes_subnet_and_reach_each_other";
    if !kubectl_enabled(test) || !e2e_enabled(test) {
        return;
    }
    let temp = tempfile::Builder::new()
        .prefix("skiff-podnet-")
        .tempdir()
        .expect("tempdir");
    let cluster = SkiffUp::start(3, temp.path());

    // Every node has its own /24 of 10.244.0.0/16.
    let nodes = json(&cluster, &["get", "nodes"]);
    let mut subnets = std::collections::BTreeMap::new();
    let mut node_ips = std::collections::BTreeMap::new();
    for node in nodes["items"].as_array().expect("nodes") {
        let name = node["metadata"]["name"].as_str().expect("name").to_string();
        let cidr = node["spec"]["podCIDR"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no podCIDR: {node}"));
        assert!(inside(
            cidr.split('/').next().expect("net"),
            "10.244.0.0/16"
        ));
        assert!(cidr.ends_with("/24"), "{cidr}");
        assert_eq!(node["spec"]["podCIDRs"][0], cidr);
        let ip = node["status"]["addresses"]
            .as_array()
            .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
            .and_then(|a| a["address"].as_str())
            .expect("InternalIP")
            .to_string();
        subnets.insert(name.clone(), cidr.to_string());
        node_ips.insert(name, ip);
    }
    let distinct: std::collections::BTreeSet<&String> = subnets.values().collect();
    assert_eq!(distinct.len(), 3, "{subnets:?}");

    // A Service made before the client: the client's environment has it.
    apply(
        &cluster,
        "apiVersion: v1\nkind: Service\nmetadata: {name: webui-svc}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n",
    );
    let mut pods = String::new();
    for (i, node) in ["node1", "node2", "node3"].iter().enumerate() {
        pods.push_str(&web_pod(&format!("web-{}", i + 1), node));
    }
    pods.push_str("apiVersion: v1\nkind: Pod\nmetadata: {name: client}\nspec:\n  nodeName: node1\n  terminationGracePeriodSeconds: 0\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n---\n");
    pods.push_str("apiVersion: v1\nkind: Pod\nmetadata: {name: host}\nspec:\n  nodeName: node3\n  hostNetwork: true\n  terminationGracePeriodSeconds: 0\n  containers: [{name: c, image: busybox, command: [sleep, '3600']}]\n");
    apply(&cluster, &pods);
    cluster.eventually(&["get", "pods"], "every pod Running", |o| {
        o.lines().skip(1).count() == 5 && o.lines().skip(1).all(|l| l.contains("Running"))
    });

    let listed = json(&cluster, &["get", "pods"]);
    let mut web = Vec::new();
    for pod in listed["items"].as_array().expect("pods") {
        let name = pod["metadata"]["name"].as_str().expect("name");
        let node = pod["spec"]["nodeName"].as_str().expect("node");
        let ip = pod["status"]["podIP"]
            .as_str()
            .unwrap_or_else(|| panic!("{name} has no podIP: {}", pod["status"]));
        assert_eq!(pod["status"]["podIPs"][0]["ip"], ip, "{name}");
        assert_eq!(pod["status"]["hostIP"], node_ips[node].as_str(), "{name}");
        if name == "host" {
            assert_eq!(ip, node_ips[node], "a hostNetwork pod has the node's IP");
        } else {
            assert!(
                inside(ip, &subnets[node]),
                "{name} on {node}: {ip} not in {}",
                subnets[node]
            );
        }
        if name.starts_with("web-") {
            web.push((name.to_string(), node.to_string(), ip.to_string()));
        }
    }
    web.sort();
    assert_eq!(web.len(), 3);

    // The client on node1 reaches every web pod by its address, two of
    // them across nodes; each answers with its own hostname.
    for (name, _, ip) in &web {
        let body = fetch(&cluster, &format!("http://{ip}:8080/"))
            .unwrap_or_else(|| panic!("client cannot reach {name} at {ip}"));
        assert!(body.contains(name.as_str()), "{name} at {ip}: {body}");
    }
    // Pods cannot reach the kubelets' ports nor the control plane's node
    // registry (nothing authenticates there yet), on their own node or
    // another, while other ports on those networks stay reachable.
    let record = cluster.record();
    let api = record["api"].as_str().expect("api address");
    let (_, api_port) = api.rsplit_once(':').expect("host:port");
    let registry_port = api_port.parse::<u16>().expect("port") + 1;
    let id = record["network"]["id"].as_u64().expect("network id");
    let gateway = format!("172.29.{id}.1");
    let connects = |host: &str, port: u16| {
        let (_, out) = cluster.kubectl(&[
            "exec",
            "client",
            "--",
            "sh",
            "-c",
            &format!("nc -w 3 {host} {port} </dev/null; echo rc=$?"),
        ]);
        out.contains("rc=0")
    };
    for (node, ip) in &node_ips {
        for port in [10250, 10255] {
            assert!(
                !connects(ip, port),
                "a pod reached {node}'s kubelet port {port}"
            );
        }
    }
    assert!(
        !connects(&gateway, registry_port),
        "a pod reached the node registry at {gateway}:{registry_port}"
    );
    assert!(connects(&web[1].2, 8080), "nc cannot connect at all");

    // The hostNetwork pod uses the node's name as its hostname.
    let hostname = cluster.kubectl_ok(&["exec", "host", "--", "hostname"]);
    assert_eq!(hostname.trim(), "node3");

    // Service variables, and the kubernetes Service's, as upstream's kubelet sets them.
    let svc = json(&cluster, &["get", "svc", "webui-svc"]);
    let cluster_ip = svc["spec"]["clusterIP"].as_str().expect("clusterIP");
    let env = cluster.kubectl_ok(&["exec", "client", "--", "env"]);
    for line in [
        format!("WEBUI_SVC_SERVICE_HOST={cluster_ip}"),
        "WEBUI_SVC_SERVICE_PORT=80".to_string(),
        "WEBUI_SVC_SERVICE_PORT_HTTP=80".to_string(),
        format!("WEBUI_SVC_PORT=tcp://{cluster_ip}:80"),
        format!("WEBUI_SVC_PORT_80_TCP_ADDR={cluster_ip}"),
        "KUBERNETES_SERVICE_HOST=10.96.0.1".to_string(),
        "HOSTNAME=client".to_string(),
    ] {
        assert!(
            env.lines().any(|l| l == line),
            "{line} missing from:\n{env}"
        );
    }

    // The Service's endpoints are the web pods' addresses.
    let described = cluster.eventually(&["describe", "svc", "webui-svc"], "three endpoints", |o| {
        web.iter()
            .all(|(_, _, ip)| o.contains(&format!("{ip}:8080")))
    });
    assert!(described.contains("Endpoints:"), "{described}");

    // The service proxy: 30 requests to the ClusterIP are answered by all
    // three pods, across nodes.
    let mut answered = std::collections::BTreeSet::new();
    for _ in 0..30 {
        if let Some(body) = fetch(&cluster, &format!("http://{cluster_ip}/")) {
            for (name, _, _) in &web {
                if body.contains(name.as_str()) {
                    answered.insert(name.clone());
                }
            }
        }
    }
    assert_eq!(answered.len(), 3, "answered by {answered:?}");
    // The node itself reaches the ClusterIP too (its own traffic takes
    // the proxy's output hook; it needs the node's default route).
    let from_node = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("skiff{id}-node1"),
            "busybox",
            "wget",
            "-qO-",
        ])
        .arg(format!("http://{cluster_ip}/"))
        .output()
        .expect("ip netns exec");
    assert!(
        String::from_utf8_lossy(&from_node.stdout).contains("webapp"),
        "node1 cannot reach the ClusterIP: {}",
        String::from_utf8_lossy(&from_node.stderr)
    );

    // A Service without endpoints refuses at once; a NodePort answers
    // from the host on every node's address, whichever node the pod is on.
    apply(
        &cluster,
        "apiVersion: v1\nkind: Service\nmetadata: {name: nobody}\nspec:\n  selector: {app: nobody}\n  ports: [{port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: web-np}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30123}]\n",
    );
    let nobody = json(&cluster, &["get", "svc", "nobody"]);
    let nobody_ip = nobody["spec"]["clusterIP"]
        .as_str()
        .expect("clusterIP")
        .to_string();
    let (_, refused) = cluster.kubectl(&[
        "exec",
        "client",
        "--",
        "sh",
        "-c",
        &format!("time nc -w 5 {nobody_ip} 80 </dev/null; echo rc=$?"),
    ]);
    assert!(!refused.contains("rc=0"), "{refused}");
    assert!(
        refused.contains("real\t0m 0.") || refused.contains("real\t0m 1."),
        "not at once: {refused}"
    );
    let get = |addr: &str| -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect_timeout(
            &addr.parse().ok()?,
            std::time::Duration::from_secs(3),
        )
        .ok()?;
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut body = String::new();
        stream.read_to_string(&mut body).ok()?;
        Some(body)
    };
    for (node, ip) in &node_ips {
        let answered = (0..30).any(|_| {
            let ok = get(&format!("{ip}:30123")).is_some_and(|b| b.contains("webapp"));
            if !ok {
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
            ok
        });
        assert!(answered, "NodePort 30123 on {node} ({ip}) did not answer");
    }

    // A partitioned node's pods are cut off, and back once healed (the web
    // pods tolerate the unreachable taint, so skiff up's quick eviction
    // does not take web-2 away meanwhile).
    let (_, _, ip2) = &web[1];
    cluster.node("partition", "node2");
    assert!(
        fetch(&cluster, &format!("http://{ip2}:8080/")).is_none(),
        "web-2 answered through a partition"
    );
    cluster.node("heal", "node2");
    let healed = (0..20).any(|_| {
        let reached = fetch(&cluster, &format!("http://{ip2}:8080/")).is_some();
        if !reached {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        reached
    });
    assert!(
        healed,
        "web-2 unreachable after heal: {}",
        cluster.kubectl(&["get", "pods", "-o", "wide"]).1
    );

    // Readiness: an unready pod leaves the endpoints and gets no traffic,
    // and comes back once ready again.
    let (name1, _, ip1) = &web[0];
    let ready_of = |ip: &str| -> Option<bool> {
        let slices = json(
            &cluster,
            &[
                "get",
                "endpointslices",
                "-l",
                "kubernetes.io/service-name=webui-svc",
            ],
        );
        slices["items"]
            .as_array()?
            .iter()
            .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
            .find(|e| e["addresses"][0] == ip)
            .and_then(|e| e["conditions"]["ready"].as_bool())
    };
    let post = |path: &str| {
        cluster.kubectl_ok(&[
            "exec",
            "client",
            "--",
            "wget",
            "-qO-",
            "--post-data=",
            &format!("http://{ip1}:8080{path}"),
        ]);
    };
    post("/unready");
    let wait = |want: bool| {
        (0..60).any(|_| {
            let now = ready_of(ip1) == Some(want);
            if !now {
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
            now
        })
    };
    assert!(wait(false), "{name1} stayed ready in its EndpointSlice");
    // The proxy follows within its debounce; give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    for _ in 0..20 {
        let body = fetch(&cluster, &format!("http://{cluster_ip}/")).unwrap_or_default();
        assert!(
            !body.contains(name1.as_str()),
            "unready {name1} got traffic"
        );
    }
    post("/ready");
    assert!(wait(true), "{name1} did not come back");

    // A restarted kubelet keeps its pods' addresses, and traffic flows
    // while it is down (routes and rules stay).
    cluster.node("kill", "node2");
    assert!(
        fetch(&cluster, &format!("http://{ip2}:8080/")).is_some(),
        "web-2 unreachable while its kubelet is down"
    );
    cluster.node("start", "node2");
    let again = cluster.eventually(
        &[
            "get",
            "pod",
            "web-2",
            "-o",
            "jsonpath={.status.podIP} {.status.containerStatuses[0].ready}",
        ],
        "web-2 ready after the kubelet restart",
        |o| o.trim().ends_with("true"),
    );
    assert_eq!(
        again.split_whitespace().next(),
        Some(ip2.as_str()),
        "web-2's address changed"
    );
    assert!(
        fetch(&cluster, &format!("http://{cluster_ip}/")).is_some(),
        "the Service stopped answering after the kubelet restart"
    );

    // A deleted pod's address is released on its node.
    let (_, node3, ip3) = &web[2];
    let reservation = cluster
        .dir()
        .join("nodes")
        .join(node3)
        .join("cni/host-local/skiff")
        .join(ip3);
    assert!(
        reservation.exists(),
        "no reservation at {}",
        reservation.display()
    );
    cluster.kubectl_ok(&["delete", "pod", "web-3", "--wait=true"]);
    let released = (0..100).any(|_| {
        std::thread::sleep(std::time::Duration::from_millis(100));
        !reservation.exists()
    });
    assert!(released, "{} still reserved", ip3);

    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    // Stopping the cluster leaves no reservation behind.
    for node in ["node1", "node2", "node3"] {
        let cni = dir.join("nodes").join(node).join("cni");
        assert!(!Path::new(&cni).exists(), "{} left behind", cni.display());
    }
}
