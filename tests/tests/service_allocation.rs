//! Service cluster IPs and nodePorts allocated by a real
//! `skiff-control-plane` (issue 14, item 2): answered in the create's
//! response, refused with upstream's wording when taken or out of range
//! (nothing stored, nothing reserved), released on type change and delete,
//! distinct under concurrent creates, kept across a restart; and what
//! `kubectl get svc` shows of them.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json, kubectl_enabled};
use skiff_tests::request_as;

const SERVICES: &str = "/api/v1/namespaces/default/services";

fn send(cp: &TestControlPlane, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (code, text) = http_json(method, &cp.address, path, &body).expect("request");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn get(cp: &TestControlPlane, name: &str) -> (u16, Value) {
    send(cp, "GET", &format!("{SERVICES}/{name}"), &Value::Null)
}

fn service(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

fn created(cp: &TestControlPlane, obj: Value) -> Value {
    let (code, body) = send(cp, "POST", SERVICES, &obj);
    assert_eq!(code, 201, "{body}");
    body
}

/// Asserts the create is refused as 422 Invalid with `message` (and the
/// cause's field), and that nothing was stored.
fn refused(cp: &TestControlPlane, obj: Value, field: &str, message: &str) {
    let name = obj["metadata"]["name"].as_str().expect("name").to_string();
    let (code, status) = send(cp, "POST", SERVICES, &obj);
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    assert_eq!(status["message"], message, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], field, "{status}");
    assert_eq!(get(cp, &name).0, 404, "{name} was stored");
}

fn merge_patch(cp: &TestControlPlane, name: &str, patch: &Value) -> Value {
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{SERVICES}/{name}"),
        "application/merge-patch+json",
        &patch.to_string(),
    )
    .expect("patch");
    assert_eq!(code, 200, "{text}");
    serde_json::from_str(&text).expect("json")
}

fn delete(cp: &TestControlPlane, name: &str) {
    let (code, body) = send(cp, "DELETE", &format!("{SERVICES}/{name}"), &Value::Null);
    assert_eq!(code, 200, "{body}");
}

fn ip(obj: &Value) -> Ipv4Addr {
    obj["spec"]["clusterIP"]
        .as_str()
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no cluster IP: {obj}"))
}

fn node_port(obj: &Value, index: usize) -> i64 {
    obj["spec"]["ports"][index]["nodePort"]
        .as_i64()
        .unwrap_or_else(|| panic!("no nodePort: {obj}"))
}

/// Offset of `ip` from 10.96.0.0: the static band is the 256 addresses
/// after the network address (10.96.0.1 to 10.96.1.0).
fn offset(ip: Ipv4Addr) -> u32 {
    u32::from(ip) - u32::from(Ipv4Addr::new(10, 96, 0, 0))
}

#[tokio::test]
async fn services_get_addresses_and_node_ports_as_upstream_allocates_them() {
    let mut cp = TestControlPlane::start().await;
    let api_port: i64 = cp
        .address
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port");

    // The kubernetes Service, at the first address.
    let (code, kubernetes) = get(&cp, "kubernetes");
    assert_eq!(code, 200, "{kubernetes}");
    assert_eq!(kubernetes["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(
        kubernetes["spec"]["ports"],
        json!([{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}])
    );

    // Automatic: the response carries the address, from the dynamic band.
    let auto = created(
        &cp,
        service(
            "auto",
            json!({"selector": {"app": "a"}, "ports": [{"port": 80}]}),
        ),
    );
    let auto_ip = ip(&auto);
    assert!(
        (257..1 << 20).contains(&offset(auto_ip)),
        "{auto_ip} outside the dynamic band"
    );
    assert_eq!(auto["spec"]["clusterIPs"], json!([auto_ip.to_string()]));
    assert_eq!(auto["spec"]["ipFamilies"], json!(["IPv4"]));
    assert_eq!(auto["spec"]["ipFamilyPolicy"], "SingleStack");
    assert_eq!(get(&cp, "auto").1["spec"]["clusterIP"], auto_ip.to_string());

    // Explicit, then the same again and one out of range.
    let explicit = created(
        &cp,
        service(
            "explicit",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        ),
    );
    assert_eq!(explicit["spec"]["clusterIPs"], json!(["10.96.0.10"]));
    refused(
        &cp,
        service(
            "dup",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        ),
        "spec.clusterIPs",
        "Service \"dup\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated",
    );
    refused(
        &cp,
        service(
            "outside",
            json!({"clusterIP": "1.1.1.1", "ports": [{"port": 80}]}),
        ),
        "spec.clusterIPs",
        "Service \"outside\" is invalid: spec.clusterIPs: Invalid value: [\"1.1.1.1\"]: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12",
    );

    // Headless: no address.
    let headless = created(
        &cp,
        service(
            "headless",
            json!({"clusterIP": "None", "selector": {"app": "a"}, "ports": [{"port": 80}]}),
        ),
    );
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));

    // NodePorts: automatic from the dynamic band, explicit, duplicate, outside.
    let np_auto = created(
        &cp,
        service(
            "np-auto",
            json!({"type": "NodePort", "ports": [{"port": 80}]}),
        ),
    );
    assert!(
        (30086..=32767).contains(&node_port(&np_auto, 0)),
        "{np_auto}"
    );
    assert_eq!(np_auto["spec"]["externalTrafficPolicy"], "Cluster");
    let np = created(
        &cp,
        service(
            "np",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30123}]}),
        ),
    );
    assert_eq!(node_port(&np, 0), 30123);
    // A free address with a taken port: refused, and the address stays free.
    refused(
        &cp,
        service(
            "np-dup",
            json!({"type": "NodePort", "clusterIP": "10.96.0.50", "ports": [{"port": 80, "nodePort": 30123}]}),
        ),
        "spec.ports[0].nodePort",
        "Service \"np-dup\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated",
    );
    created(
        &cp,
        service(
            "fifty",
            json!({"clusterIP": "10.96.0.50", "ports": [{"port": 80}]}),
        ),
    );
    // An address, once set, stays.
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{SERVICES}/fifty"),
        "application/merge-patch+json",
        &json!({"spec": {"clusterIP": "10.96.0.51", "clusterIPs": ["10.96.0.51"]}}).to_string(),
    )
    .expect("patch");
    assert_eq!(code, 422, "{text}");
    let status: Value = serde_json::from_str(&text).expect("status");
    assert_eq!(
        status["message"],
        "Service \"fifty\" is invalid: spec.clusterIPs[0]: Invalid value: [\"10.96.0.51\"]: may not change once set"
    );
    assert_eq!(get(&cp, "fifty").1["spec"]["clusterIP"], "10.96.0.50");
    refused(
        &cp,
        service(
            "np-outside",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 8080}]}),
        ),
        "spec.ports[0].nodePort",
        "Service \"np-outside\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767",
    );

    // Type changes release: NodePort → ClusterIP frees 30123 ...
    let changed = merge_patch(&cp, "np", &json!({"spec": {"type": "ClusterIP"}}));
    assert!(
        changed["spec"]["ports"][0].get("nodePort").is_none(),
        "{changed}"
    );
    assert_eq!(changed["spec"]["clusterIP"], np["spec"]["clusterIP"]);
    let taker = created(
        &cp,
        service(
            "np-taker",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30123}]}),
        ),
    );
    assert_eq!(node_port(&taker, 0), 30123);
    // ... and ClusterIP → ExternalName frees the address.
    let external = merge_patch(
        &cp,
        "explicit",
        &json!({"spec": {"type": "ExternalName", "externalName": "db.example.com"}}),
    );
    assert!(external["spec"].get("clusterIP").is_none(), "{external}");
    created(
        &cp,
        service(
            "ten",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        ),
    );

    // Delete releases: the freed values can be taken again.
    delete(&cp, "auto");
    delete(&cp, "np-taker");
    let again = created(
        &cp,
        service(
            "again",
            json!({"type": "NodePort", "clusterIP": auto_ip.to_string(),
                   "ports": [{"port": 80, "nodePort": 30123}]}),
        ),
    );
    assert_eq!(ip(&again), auto_ip);
    // An update asking for a taken port is refused and changes nothing.
    let before = get(&cp, "np-auto").1;
    let (code, text) = request_as(
        "PATCH",
        &cp.address,
        &format!("{SERVICES}/np-auto"),
        "application/merge-patch+json",
        &json!({"spec": {"ports": [{"port": 80, "nodePort": 30123}]}}).to_string(),
    )
    .expect("patch");
    assert_eq!(code, 422, "{text}");
    let status: Value = serde_json::from_str(&text).expect("status");
    assert_eq!(
        status["message"],
        "Service \"np-auto\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated"
    );
    assert_eq!(
        get(&cp, "np-auto").1,
        before,
        "a refused update changed the Service"
    );

    // A dry run shows an address without reserving it.
    let (code, dry) = send(
        &cp,
        "POST",
        &format!("{SERVICES}?dryRun=All"),
        &service(
            "dry",
            json!({"clusterIP": "10.96.0.77", "ports": [{"port": 80}]}),
        ),
    );
    assert_eq!(code, 201, "{dry}");
    assert_eq!(dry["spec"]["clusterIPs"], json!(["10.96.0.77"]));
    assert_eq!(get(&cp, "dry").0, 404);
    // Deleting a namespace releases what its Services held.
    send(
        &cp,
        "POST",
        "/api/v1/namespaces",
        &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "scratch"}}),
    );
    let (code, body) = send(
        &cp,
        "POST",
        "/api/v1/namespaces/scratch/services",
        &service(
            "held",
            json!({"clusterIP": "10.96.0.77", "ports": [{"port": 80}]}),
        ),
    );
    assert_eq!(code, 201, "{body}");
    let (code, body) = send(&cp, "DELETE", "/api/v1/namespaces/scratch", &Value::Null);
    assert_eq!(code, 200, "{body}");
    created(
        &cp,
        service(
            "seventy-seven",
            json!({"clusterIP": "10.96.0.77", "ports": [{"port": 80}]}),
        ),
    );

    // Concurrent creates: every one gets its own address and port.
    let address = cp.address.clone();
    let threads: Vec<_> = (0..24)
        .map(|i| {
            let address = address.clone();
            std::thread::spawn(move || {
                let body = service(
                    &format!("burst-{i}"),
                    json!({"type": "NodePort", "ports": [{"port": 80}]}),
                );
                http_json("POST", &address, SERVICES, &body.to_string()).expect("post")
            })
        })
        .collect();
    let mut ips = std::collections::HashSet::new();
    let mut ports = std::collections::HashSet::new();
    ips.extend([
        auto_ip,
        ip(&np_auto),
        ip(&np),
        Ipv4Addr::new(10, 96, 0, 10),
        Ipv4Addr::new(10, 96, 0, 77),
    ]);
    ports.extend([node_port(&np_auto, 0), 30123]);
    for thread in threads {
        let (code, text) = thread.join().expect("thread");
        assert_eq!(code, 201, "{text}");
        let obj: Value = serde_json::from_str(&text).expect("json");
        assert!(ips.insert(ip(&obj)), "address given twice: {obj}");
        assert!(ports.insert(node_port(&obj, 0)), "port given twice: {obj}");
    }

    // A restart keeps every reservation and the kubernetes Service.
    cp.restart().await;
    assert_eq!(
        get(&cp, "kubernetes").1["metadata"]["uid"],
        kubernetes["metadata"]["uid"]
    );
    refused(
        &cp,
        service(
            "dup2",
            json!({"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}),
        ),
        "spec.clusterIPs",
        "Service \"dup2\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated",
    );
    refused(
        &cp,
        service(
            "np-dup2",
            json!({"type": "NodePort", "ports": [{"port": 80, "nodePort": 30123}]}),
        ),
        "spec.ports[0].nodePort",
        "Service \"np-dup2\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated",
    );
}

#[tokio::test]
async fn ranges_come_from_the_flags() {
    let cp = TestControlPlane::start_with(&[
        "--service-cluster-ip-range",
        "10.0.0.0/24",
        "--service-node-port-range",
        "31000-31099",
    ])
    .await;
    assert_eq!(get(&cp, "kubernetes").1["spec"]["clusterIP"], "10.0.0.1");
    let np = created(
        &cp,
        service("np", json!({"type": "NodePort", "ports": [{"port": 80}]})),
    );
    let ip = ip(&np);
    assert!(
        ip.octets()[..3] == [10, 0, 0] && ip.octets()[3] > 16,
        "{ip} outside the dynamic band of 10.0.0.0/24"
    );
    assert!((31000..=31099).contains(&node_port(&np, 0)), "{np}");
    let local = created(
        &cp,
        service(
            "local",
            json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "ports": [{"port": 80}]}),
        ),
    );
    let health = local["spec"]["healthCheckNodePort"]
        .as_i64()
        .unwrap_or_else(|| panic!("no health check port: {local}"));
    assert!((31000..=31099).contains(&health), "{local}");
    assert_ne!(health, node_port(&local, 0));
    assert_eq!(local["spec"]["allocateLoadBalancerNodePorts"], true);
    refused(
        &cp,
        service(
            "old-default",
            json!({"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [{"port": 80, "nodePort": 30123}]}),
        ),
        "spec.clusterIPs",
        "Service \"old-default\" is invalid: spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: the provided IP (10.96.0.10) is not in the valid range. The range of valid IPs is 10.0.0.0/24",
    );
}

#[tokio::test]
async fn the_kubernetes_service_points_at_the_advertised_api_address() {
    // Without an advertise address (API on loopback) it has none.
    let cp = TestControlPlane::start().await;
    let (code, _) = send(
        &cp,
        "GET",
        "/api/v1/namespaces/default/endpoints/kubernetes",
        &Value::Null,
    );
    assert_eq!(code, 404);
    drop(cp);
    let cp = TestControlPlane::start_with(&["--advertise-address", "192.0.2.10"]).await;
    let port: u16 = get(&cp, "kubernetes").1["spec"]["ports"][0]["targetPort"]
        .as_u64()
        .and_then(|p| u16::try_from(p).ok())
        .expect("targetPort");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (endpoints, slice) = loop {
        let (a, endpoints) = send(
            &cp,
            "GET",
            "/api/v1/namespaces/default/endpoints/kubernetes",
            &Value::Null,
        );
        let (b, slice) = send(
            &cp,
            "GET",
            "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/kubernetes",
            &Value::Null,
        );
        if a == 200 && b == 200 {
            break (endpoints, slice);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no endpoints: {endpoints} {slice}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(
        endpoints["subsets"],
        json!([{"addresses": [{"ip": "192.0.2.10"}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}])
    );
    assert_eq!(slice["endpoints"][0]["addresses"], json!(["192.0.2.10"]));
    assert_eq!(slice["ports"][0]["port"], port);
    assert_eq!(
        slice["metadata"]["labels"]["kubernetes.io/service-name"],
        "kubernetes"
    );
}

#[tokio::test]
async fn kubectl_get_svc_shows_addresses_and_node_ports() {
    let cp = TestControlPlane::start().await;
    if !kubectl_enabled("kubectl_get_svc_shows_addresses_and_node_ports") {
        return;
    }
    let file = cp.manifest(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports: [{port: 80, targetPort: 8080, nodePort: 30123}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: lb}\nspec:\n  type: LoadBalancer\n  clusterIP: 10.96.0.20\n  ports: [{port: 443, nodePort: 30443}]\n",
    );
    cp.kubectl_ok(&["apply", "-f", &file]);
    let out = cp.kubectl_ok(&["get", "svc", "--no-headers"]);
    let line = |name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let web = line("web");
    let web_ip = get(&cp, "web").1["spec"]["clusterIP"]
        .as_str()
        .expect("ip")
        .to_string();
    assert_eq!(
        web[..5],
        ["web", "NodePort", web_ip.as_str(), "<none>", "80:30123/TCP"],
        "{out}"
    );
    assert_eq!(
        line("kubernetes")[..5],
        ["kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP"],
        "{out}"
    );
    assert_eq!(
        line("lb")[..5],
        [
            "lb",
            "LoadBalancer",
            "10.96.0.20",
            "<pending>",
            "443:30443/TCP"
        ],
        "{out}"
    );
    let header = cp.kubectl_ok(&["get", "svc", "kubernetes"]);
    assert!(
        header
            .lines()
            .next()
            .is_some_and(|h| h.split_whitespace().eq([
                "NAME",
                "TYPE",
                "CLUSTER-IP",
                "EXTERNAL-IP",
                "PORT(S)",
                "AGE"
            ])),
        "{header}"
    );
    // kubectl's generators (protobuf bodies) get values the same way.
    cp.kubectl_ok(&["create", "service", "nodeport", "gen", "--tcp", "80:8080"]);
    let port: i64 = cp
        .kubectl_ok(&[
            "get",
            "svc",
            "gen",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .parse()
        .expect("a nodePort");
    assert!((30086..=32767).contains(&port), "{port}");
    cp.kubectl_ok(&[
        "create",
        "service",
        "clusterip",
        "bare",
        "--clusterip",
        "None",
    ]);
    assert_eq!(
        cp.kubectl_ok(&["get", "svc", "bare", "-o", "jsonpath={.spec.clusterIPs}"]),
        "[\"None\"]"
    );
    // kubectl sees the refusal in upstream's words.
    let dup = cp.manifest(
        "dup.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: dup}\nspec:\n  type: NodePort\n  ports: [{port: 80, nodePort: 30123}]\n",
    );
    let err = cp.kubectl_err(&["apply", "-f", &dup]);
    assert!(
        err.contains("The Service \"dup\" is invalid: spec.ports[0].nodePort: Invalid value: 30123: provided port is already allocated"),
        "{err}"
    );
}
