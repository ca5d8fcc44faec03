//! Cluster DNS in a real `skiff-control-plane` (issue 15): with
//! `--cluster-dns-listen` on a loopback port, `kube-system/kube-dns`
//! exists at the Service CIDR's tenth address with its slice pointing at
//! the listen address, and a Service created through the API resolves
//! within a second, then stops resolving within a second of its deletion;
//! an ExternalName to it and a headless Service's named endpoint resolve.
//! Queries are raw packets, built and read here (no resolver library,
//! nothing leaves the machine).

use std::net::{Ipv4Addr, UdpSocket};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use skiff_tests::control_plane::TestControlPlane;
use skiff_tests::{free_port, request};

/// A query for `name` of type `qtype` (1 = A).
fn query(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend(id.to_be_bytes());
    p.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        p.push(u8::try_from(label.len()).expect("short label"));
        p.extend(label.as_bytes());
    }
    p.push(0);
    p.extend(qtype.to_be_bytes());
    p.extend(1u16.to_be_bytes());
    p
}

/// Skips a (possibly compressed) name at `at`; the offset after it.
fn skip_name(p: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *p.get(at)?;
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        at += 1;
        if len == 0 {
            return Some(at);
        }
        at += usize::from(len);
    }
}

/// The rcode and the A records of a response to `id`.
fn read(p: &[u8], id: u16) -> Option<(u8, Vec<Ipv4Addr>)> {
    if p.len() < 12 || p[..2] != id.to_be_bytes() || p[2] & 0x80 == 0 {
        return None;
    }
    let rcode = p[3] & 0x0f;
    let questions = u16::from_be_bytes([p[4], p[5]]);
    let answers = u16::from_be_bytes([p[6], p[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(p, at)? + 4;
    }
    let mut ips = Vec::new();
    for _ in 0..answers {
        at = skip_name(p, at)?;
        let rtype = u16::from_be_bytes([*p.get(at)?, *p.get(at + 1)?]);
        let len = usize::from(u16::from_be_bytes([*p.get(at + 8)?, *p.get(at + 9)?]));
        let data = p.get(at + 10..at + 10 + len)?;
        if rtype == 1 && len == 4 {
            ips.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        at += 10 + len;
    }
    Some((rcode, ips))
}

/// Asks `server` over UDP: the rcode and the A records.
fn ask(server: &str, id: u16, name: &str) -> (u8, Vec<Ipv4Addr>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    socket.send_to(&query(id, name, 1), server).expect("send");
    let mut buf = [0u8; 1500];
    loop {
        let n = socket.recv(&mut buf).expect("an answer within 2 s");
        if let Some(answer) = read(&buf[..n], id) {
            return answer;
        }
    }
}

/// Asks `server` over TCP.
fn ask_tcp(server: &str, id: u16, name: &str) -> (u8, Vec<Ipv4Addr>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(server).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let q = query(id, name, 1);
    let len = u16::try_from(q.len()).expect("small");
    stream.write_all(&len.to_be_bytes()).expect("write");
    stream.write_all(&q).expect("write");
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("length");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).expect("body");
    read(&buf, id).expect("a response")
}

const NXDOMAIN: u8 = 3;

fn get(cp: &TestControlPlane, path: &str) -> Value {
    let (code, body) = request("GET", &cp.address, path, "").expect("GET");
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).expect("json")
}

#[tokio::test]
async fn services_resolve_within_a_second_and_kube_dns_is_published() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let cp = TestControlPlane::start_with(&[
        "--cluster-dns-listen",
        &listen,
        "--cluster-dns-metrics-port",
        "0",
    ])
    .await;

    // kube-dns at the tenth address, its slice at the listen address.
    let svc = get(&cp, "/api/v1/namespaces/kube-system/services/kube-dns");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(svc["metadata"]["labels"]["k8s-app"], "kube-dns");
    let ports: Vec<(String, i64, String, i64)> = svc["spec"]["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["port"].as_i64().unwrap_or_default(),
                p["protocol"].as_str().unwrap_or_default().to_string(),
                p["targetPort"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    let port = i64::from(port);
    assert_eq!(
        ports,
        [
            ("dns".into(), 53, "UDP".into(), port),
            ("dns-tcp".into(), 53, "TCP".into(), port),
            ("metrics".into(), 9153, "TCP".into(), 9153),
        ]
    );
    let slices = get(
        &cp,
        "/apis/discovery.k8s.io/v1/namespaces/kube-system/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dkube-dns",
    );
    let items = slices["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{slices}");
    assert_eq!(items[0]["endpoints"][0]["addresses"][0], "127.0.0.1");
    assert_eq!(items[0]["ports"][0]["port"], port);

    let (rcode, ips) = ask(&listen, 1, "kube-dns.kube-system.svc.cluster.local");
    assert_eq!((rcode, ips), (0, vec![Ipv4Addr::new(10, 96, 0, 10)]));
    let (rcode, ips) = ask_tcp(&listen, 2, "kubernetes.default.svc.cluster.local");
    assert_eq!((rcode, ips), (0, vec![Ipv4Addr::new(10, 96, 0, 1)]));

    // A new Service resolves within a second of its creation.
    let name = "probe.default.svc.cluster.local";
    assert_eq!(ask(&listen, 3, name).0, NXDOMAIN);
    let body = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "probe"},
        "spec": {"ports": [{"name": "http", "port": 80}], "selector": {"app": "probe"}}});
    let (code, created) = request(
        "POST",
        &cp.address,
        "/api/v1/namespaces/default/services",
        &body.to_string(),
    )
    .expect("create");
    assert_eq!(code, 201, "{created}");
    let created = Instant::now();
    let ip: Ipv4Addr = get(&cp, "/api/v1/namespaces/default/services/probe")["spec"]["clusterIP"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a cluster IP");
    assert_ne!(ip, Ipv4Addr::new(10, 96, 0, 10), "the DNS address is kept");
    let mut id = 10;
    loop {
        id += 1;
        let (rcode, ips) = ask(&listen, id, name);
        if rcode == 0 && ips == [ip] {
            break;
        }
        assert!(
            created.elapsed() < Duration::from_secs(1),
            "not resolved within 1 s: {rcode} {ips:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // An ExternalName to it resolves through the CNAME (inside the
    // cluster, so nothing asks outside).
    let alias = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "alias"},
        "spec": {"type": "ExternalName", "externalName": name}});
    let (code, body) = request(
        "POST",
        &cp.address,
        "/api/v1/namespaces/default/services",
        &alias.to_string(),
    )
    .expect("create alias");
    assert_eq!(code, 201, "{body}");
    // A headless Service with a hand-written slice: its endpoint by name.
    let db = json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "db"},
        "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}});
    let (code, body) = request(
        "POST",
        &cp.address,
        "/api/v1/namespaces/default/services",
        &db.to_string(),
    )
    .expect("create db");
    assert_eq!(code, 201, "{body}");
    let slice = json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-1", "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "ports": [{"name": "pg", "port": 5432}],
        "endpoints": [{"addresses": ["10.244.9.9"], "hostname": "db-0",
                       "conditions": {"ready": true}}]});
    let (code, body) = request(
        "POST",
        &cp.address,
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices",
        &slice.to_string(),
    )
    .expect("create slice");
    assert_eq!(code, 201, "{body}");
    let written = Instant::now();
    loop {
        id += 1;
        let alias = ask(&listen, id, "alias.default.svc.cluster.local");
        id += 1;
        let db = ask(&listen, id, "db-0.db.default.svc.cluster.local");
        if alias == (0, vec![ip]) && db == (0, vec![Ipv4Addr::new(10, 244, 9, 9)]) {
            break;
        }
        assert!(
            written.elapsed() < Duration::from_secs(1),
            "alias {alias:?}, db-0 {db:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // A deleted one stops resolving within a second.
    let (code, body) = request(
        "DELETE",
        &cp.address,
        "/api/v1/namespaces/default/services/probe",
        "",
    )
    .expect("delete");
    assert_eq!(code, 200, "{body}");
    let deleted = Instant::now();
    loop {
        id += 1;
        let (rcode, _) = ask(&listen, id, name);
        if rcode == NXDOMAIN {
            break;
        }
        assert!(
            deleted.elapsed() < Duration::from_secs(1),
            "still resolving 1 s after deletion"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
