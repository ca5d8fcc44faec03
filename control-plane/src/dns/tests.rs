//! The index and the answers: every record kind, NXDOMAIN versus NODATA,
//! case, TTL, readiness changes, removal.

use std::net::IpAddr;
use std::str::FromStr;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::{Name, RData, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde_json::{Value, json};

use super::answer::{Answer, DnsConfig, answer};
use super::index::DnsIndex;

fn service(ns: &str, name: &str, spec: Value) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }))
    .expect("service")
}

/// A slice of `svc` with `(address, hostname, ready)` endpoints.
fn slice(ns: &str, name: &str, svc: &str, eps: &[(&str, Option<&str>, bool)]) -> EndpointSlice {
    let endpoints: Vec<Value> = eps
        .iter()
        .map(|(ip, host, ready)| {
            let mut e = json!({"addresses": [ip], "conditions": {"ready": ready}});
            if let Some(h) = host {
                e["hostname"] = json!(h);
            }
            e
        })
        .collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns,
                     "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }))
    .expect("slice")
}

fn cluster_ip(ip: &str) -> Value {
    json!({"type": "ClusterIP", "clusterIP": ip, "clusterIPs": [ip],
           "ports": [{"name": "http", "port": 80, "protocol": "TCP"},
                     {"name": "dns", "port": 53, "protocol": "UDP"},
                     {"port": 9000, "protocol": "TCP"}]})
}

fn headless() -> Value {
    json!({"clusterIP": "None", "clusterIPs": ["None"],
           "ports": [{"name": "web", "port": 80, "protocol": "TCP"}]})
}

fn ask(index: &DnsIndex, name: &str, qtype: RecordType) -> Answer {
    answer(
        index,
        &DnsConfig::default(),
        &Name::from_ascii(name).expect("name"),
        qtype,
    )
}

fn ips(a: &Answer) -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = a
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    ips.sort();
    ips
}

fn ip(text: &str) -> IpAddr {
    text.parse().expect("ip")
}

fn assert_nxdomain(a: &Answer) {
    assert_eq!(a.rcode, ResponseCode::NXDomain, "{a:?}");
    assert!(a.answers.is_empty());
    assert_eq!(a.authorities.len(), 1);
    assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
}

fn assert_nodata(a: &Answer) {
    assert_eq!(a.rcode, ResponseCode::NoError, "{a:?}");
    assert!(a.answers.is_empty(), "{a:?}");
    assert_eq!(a.authorities.len(), 1, "{a:?}");
    assert_eq!(a.authorities[0].record_type(), RecordType::SOA);
}

fn sample() -> DnsIndex {
    let mut index = DnsIndex::new();
    index.upsert_service(&service("default", "web", cluster_ip("10.96.0.20")));
    index.upsert_service(&service("default", "nginx", headless()));
    index.upsert_slice(&slice(
        "default",
        "nginx-abc",
        "nginx",
        &[
            ("10.244.1.5", Some("web-0"), true),
            ("10.244.2.6", Some("web-1"), true),
            ("10.244.3.7", None, true),
            ("10.244.4.8", Some("web-3"), false),
        ],
    ));
    index.upsert_service(&service(
        "default",
        "ext",
        json!({"type": "ExternalName", "externalName": "example.com"}),
    ));
    index
}

#[test]
fn cluster_ip_services_resolve_to_their_address() {
    let index = sample();
    let a = ask(&index, "web.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert!(a.authoritative);
    assert_eq!(ips(&a), [ip("10.96.0.20")]);
    assert_eq!(a.answers[0].ttl, 5);
    // No IPv6 address: NODATA.
    assert_nodata(&ask(
        &index,
        "web.default.svc.cluster.local.",
        RecordType::AAAA,
    ));
    assert_nodata(&ask(
        &index,
        "web.default.svc.cluster.local.",
        RecordType::TXT,
    ));
    assert_nxdomain(&ask(
        &index,
        "nope.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask(&index, "web.other.svc.cluster.local.", RecordType::A));
}

#[test]
fn names_are_case_insensitive_and_answered_as_asked() {
    let index = sample();
    let a = ask(&index, "WEB.Default.SVC.Cluster.Local.", RecordType::A);
    assert_eq!(ips(&a), [ip("10.96.0.20")]);
    assert_eq!(
        a.answers[0].name.to_string(),
        "WEB.Default.SVC.Cluster.Local."
    );
}

#[test]
fn the_ttl_follows_the_config() {
    let index = sample();
    let config = DnsConfig::new("Cluster.Local.", 30);
    assert_eq!(config.domain, "cluster.local");
    let a = answer(
        &index,
        &config,
        &Name::from_str("web.default.svc.cluster.local.").expect("name"),
        RecordType::A,
    );
    assert_eq!(a.answers[0].ttl, 30);
    let other = DnsConfig::new("example.internal", 5);
    let a = answer(
        &index,
        &other,
        &Name::from_str("web.default.svc.example.internal.").expect("name"),
        RecordType::A,
    );
    assert_eq!(ips(&a), [ip("10.96.0.20")]);
    let a = answer(
        &index,
        &other,
        &Name::from_str("web.default.svc.cluster.local.").expect("name"),
        RecordType::A,
    );
    assert_eq!(a.rcode, ResponseCode::Refused);
}

#[test]
fn headless_services_resolve_to_ready_endpoints() {
    let index = sample();
    let a = ask(&index, "nginx.default.svc.cluster.local.", RecordType::A);
    assert_eq!(
        ips(&a),
        [ip("10.244.1.5"), ip("10.244.2.6"), ip("10.244.3.7")]
    );
    // Per-endpoint names: hostname, else the dashed address.
    let a = ask(
        &index,
        "web-0.nginx.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(ips(&a), [ip("10.244.1.5")]);
    let a = ask(
        &index,
        "10-244-3-7.nginx.default.svc.cluster.local.",
        RecordType::A,
    );
    assert_eq!(ips(&a), [ip("10.244.3.7")]);
    // A hostname'd endpoint is not named by its address; a not-ready
    // one not at all.
    assert_nxdomain(&ask(
        &index,
        "10-244-1-5.nginx.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask(
        &index,
        "web-3.nginx.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nodata(&ask(
        &index,
        "web-0.nginx.default.svc.cluster.local.",
        RecordType::AAAA,
    ));
}

#[test]
fn a_headless_service_without_ready_endpoints_is_nxdomain() {
    let mut index = DnsIndex::new();
    index.upsert_service(&service("default", "db", headless()));
    assert_nxdomain(&ask(&index, "db.default.svc.cluster.local.", RecordType::A));
    let not_ready = slice("default", "db-1", "db", &[("10.244.1.9", None, false)]);
    index.upsert_slice(&not_ready);
    assert_nxdomain(&ask(&index, "db.default.svc.cluster.local.", RecordType::A));
    // It becomes ready, then not again.
    index.upsert_slice(&slice(
        "default",
        "db-1",
        "db",
        &[("10.244.1.9", None, true)],
    ));
    let a = ask(&index, "db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ips(&a), [ip("10.244.1.9")]);
    index.upsert_slice(&not_ready);
    assert_nxdomain(&ask(&index, "db.default.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask(&index, "9.1.244.10.in-addr.arpa.", RecordType::PTR));
}

#[test]
fn a_slice_before_its_service_counts_once_the_service_comes() {
    let mut index = DnsIndex::new();
    index.upsert_slice(&slice(
        "default",
        "db-1",
        "db",
        &[("10.244.1.9", None, true)],
    ));
    assert_nxdomain(&ask(&index, "db.default.svc.cluster.local.", RecordType::A));
    index.upsert_service(&service("default", "db", headless()));
    let a = ask(&index, "db.default.svc.cluster.local.", RecordType::A);
    assert_eq!(ips(&a), [ip("10.244.1.9")]);
}

#[test]
fn a_slice_that_changes_service_moves() {
    let mut index = DnsIndex::new();
    index.upsert_service(&service("default", "a", headless()));
    index.upsert_service(&service("default", "b", headless()));
    index.upsert_slice(&slice("default", "s", "a", &[("10.244.1.9", None, true)]));
    assert_eq!(
        ips(&ask(&index, "a.default.svc.cluster.local.", RecordType::A)),
        [ip("10.244.1.9")]
    );
    index.upsert_slice(&slice("default", "s", "b", &[("10.244.1.9", None, true)]));
    assert_nxdomain(&ask(&index, "a.default.svc.cluster.local.", RecordType::A));
    assert_eq!(
        ips(&ask(&index, "b.default.svc.cluster.local.", RecordType::A)),
        [ip("10.244.1.9")]
    );
    let ptr = ask(&index, "9.1.244.10.in-addr.arpa.", RecordType::PTR);
    assert_eq!(ptr.answers.len(), 1);
}

#[test]
fn removal_forgets_services_slices_and_reverse_names() {
    let mut index = sample();
    index.remove_service("default", "web");
    assert_nxdomain(&ask(
        &index,
        "web.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask(&index, "20.0.96.10.in-addr.arpa.", RecordType::PTR));
    index.remove_slice("default", "nginx-abc");
    assert_nxdomain(&ask(
        &index,
        "nginx.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nxdomain(&ask(&index, "5.1.244.10.in-addr.arpa.", RecordType::PTR));
    index.remove_service("default", "nginx");
    index.remove_service("default", "ext");
    assert_eq!(index.service_count(), 0);
    assert_nxdomain(&ask(&index, "default.svc.cluster.local.", RecordType::A));
    // Removing what is not there is harmless.
    index.remove_service("default", "web");
    index.remove_slice("x", "y");
}

#[test]
fn replace_drops_what_a_relist_lacks() {
    let mut index = sample();
    index.replace_services(&[service("default", "new", cluster_ip("10.96.0.30"))]);
    assert_nxdomain(&ask(
        &index,
        "web.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_eq!(
        ips(&ask(
            &index,
            "new.default.svc.cluster.local.",
            RecordType::A
        )),
        [ip("10.96.0.30")]
    );
    index.replace_slices(&[]);
    assert_nxdomain(&ask(&index, "5.1.244.10.in-addr.arpa.", RecordType::PTR));
}

#[test]
fn srv_records_for_named_ports() {
    let index = sample();
    let a = ask(
        &index,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(a.answers.len(), 1);
    let RData::SRV(srv) = &a.answers[0].data else {
        panic!("not SRV: {a:?}")
    };
    assert_eq!(srv.port, 80);
    assert_eq!(srv.weight, 100);
    assert_eq!(srv.target.to_string(), "web.default.svc.cluster.local.");
    assert_eq!(
        ips(&Answer {
            answers: a.additionals.clone(),
            ..a.clone()
        }),
        [ip("10.96.0.20")]
    );
    // UDP port by its protocol; a wrong protocol or name does not exist.
    let a = ask(
        &index,
        "_dns._udp.web.default.svc.cluster.local.",
        RecordType::SRV,
    );
    assert_eq!(a.answers.len(), 1);
    assert_nxdomain(&ask(
        &index,
        "_dns._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    ));
    assert_nxdomain(&ask(
        &index,
        "_nope._tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    ));
    // The SRV name exists: other types are NODATA; so is its parent.
    assert_nodata(&ask(
        &index,
        "_http._tcp.web.default.svc.cluster.local.",
        RecordType::A,
    ));
    assert_nodata(&ask(
        &index,
        "_tcp.web.default.svc.cluster.local.",
        RecordType::SRV,
    ));
    // SRV of the Service name: every port, unnamed too.
    let a = ask(&index, "web.default.svc.cluster.local.", RecordType::SRV);
    assert_eq!(a.answers.len(), 3);
    assert!(
        a.answers
            .iter()
            .all(|r| matches!(&r.data, RData::SRV(s) if s.weight == 33))
    );
}

#[test]
fn headless_srv_names_each_endpoint() {
    let index = sample();
    let a = ask(
        &index,
        "_web._tcp.nginx.default.svc.cluster.local.",
        RecordType::SRV,
    );
    let mut targets: Vec<String> = a
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(format!("{} {} {}", s.weight, s.port, s.target)),
            _ => None,
        })
        .collect();
    targets.sort();
    assert_eq!(
        targets,
        [
            "33 80 10-244-3-7.nginx.default.svc.cluster.local.",
            "33 80 web-0.nginx.default.svc.cluster.local.",
            "33 80 web-1.nginx.default.svc.cluster.local.",
        ]
    );
    assert_eq!(a.additionals.len(), 3);
}

#[test]
fn external_names_are_cnames_never_resolved_outside() {
    let mut index = sample();
    let a = ask(&index, "ext.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.rcode, ResponseCode::NoError);
    assert_eq!(a.answers.len(), 1);
    let RData::CNAME(target) = &a.answers[0].data else {
        panic!("not a CNAME: {a:?}")
    };
    assert_eq!(target.0.to_string(), "example.com.");
    // To a name inside the cluster: followed.
    index.upsert_service(&service(
        "other",
        "alias",
        json!({"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}),
    ));
    let a = ask(&index, "alias.other.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers.len(), 2);
    assert_eq!(ips(&a), [ip("10.96.0.20")]);
    let a = ask(&index, "alias.other.svc.cluster.local.", RecordType::CNAME);
    assert_eq!(a.answers.len(), 1);
    // A loop ends.
    index.upsert_service(&service(
        "other",
        "loop",
        json!({"type": "ExternalName", "externalName": "loop.other.svc.cluster.local"}),
    ));
    let a = ask(&index, "loop.other.svc.cluster.local.", RecordType::A);
    assert!(a.answers.len() <= 8);
}

#[test]
fn ptr_for_cluster_ips_and_endpoints() {
    let index = sample();
    let ptr = |name: &str| {
        let a = ask(&index, name, RecordType::PTR);
        a.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::PTR(p) => Some(p.0.to_string()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ptr("20.0.96.10.in-addr.arpa."),
        ["web.default.svc.cluster.local."]
    );
    assert_eq!(
        ptr("5.1.244.10.in-addr.arpa."),
        ["web-0.nginx.default.svc.cluster.local."]
    );
    assert_eq!(
        ptr("7.3.244.10.in-addr.arpa."),
        ["10-244-3-7.nginx.default.svc.cluster.local."]
    );
    assert_nxdomain(&ask(&index, "8.4.244.10.in-addr.arpa.", RecordType::PTR));
    assert_nxdomain(&ask(&index, "1.1.1.1.in-addr.arpa.", RecordType::PTR));
    assert_nodata(&ask(&index, "20.0.96.10.in-addr.arpa.", RecordType::A));
}

#[test]
fn pod_names_carry_their_address() {
    let index = sample();
    let a = ask(
        &index,
        "10-244-1-5.default.pod.cluster.local.",
        RecordType::A,
    );
    assert_eq!(ips(&a), [ip("10.244.1.5")]);
    assert_nodata(&ask(
        &index,
        "10-244-1-5.default.pod.cluster.local.",
        RecordType::AAAA,
    ));
    let a = ask(
        &index,
        "fd00--1.default.pod.cluster.local.",
        RecordType::AAAA,
    );
    assert_eq!(ips(&a), [ip("fd00::1")]);
    assert_nxdomain(&ask(
        &index,
        "not-an-ip.default.pod.cluster.local.",
        RecordType::A,
    ));
    assert_nodata(&ask(&index, "default.pod.cluster.local.", RecordType::A));
}

#[test]
fn the_zone_apex_version_and_empty_names() {
    let index = sample();
    let a = ask(&index, "cluster.local.", RecordType::SOA);
    assert_eq!(a.answers.len(), 1);
    let RData::SOA(soa) = &a.answers[0].data else {
        panic!("not SOA")
    };
    assert_eq!(soa.mname.to_string(), "ns.dns.cluster.local.");
    assert_eq!(soa.minimum, 5);
    assert_eq!(
        ask(&index, "cluster.local.", RecordType::NS).answers.len(),
        1
    );
    assert_nodata(&ask(&index, "cluster.local.", RecordType::A));
    let a = ask(&index, "dns-version.cluster.local.", RecordType::TXT);
    let RData::TXT(txt) = &a.answers[0].data else {
        panic!("not TXT")
    };
    assert_eq!(txt.to_string(), "1.1.0");
    assert_nodata(&ask(&index, "dns-version.cluster.local.", RecordType::A));
    // Empty non-terminals exist; unknown names do not.
    assert_nodata(&ask(&index, "svc.cluster.local.", RecordType::A));
    assert_nodata(&ask(&index, "default.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask(&index, "nowhere.svc.cluster.local.", RecordType::A));
    assert_nxdomain(&ask(&index, "foo.cluster.local.", RecordType::A));
    assert_nxdomain(&ask(&index, "a.b.c.d.e.f.cluster.local.", RecordType::A));
    // Outside the zones: refused (no upstream).
    let out = ask(&index, "example.com.", RecordType::A);
    assert_eq!(out.rcode, ResponseCode::Refused);
    assert!(!out.authoritative);
}

#[test]
fn ns_dns_is_the_kube_dns_address() {
    let mut index = sample();
    assert_nxdomain(&ask(&index, "ns.dns.cluster.local.", RecordType::A));
    index.upsert_service(&service(
        "kube-system",
        "kube-dns",
        cluster_ip("10.96.0.10"),
    ));
    let a = ask(&index, "ns.dns.cluster.local.", RecordType::A);
    assert_eq!(ips(&a), [ip("10.96.0.10")]);
    let ns = ask(&index, "cluster.local.", RecordType::NS);
    assert_eq!(ns.additionals.len(), 1);
}

#[test]
fn the_serial_moves_with_changes() {
    let mut index = DnsIndex::new();
    let before = index.serial();
    index.upsert_service(&service("default", "web", cluster_ip("10.96.0.20")));
    assert!(index.serial() > before);
    // The same object again changes nothing.
    let same = index.serial();
    index.upsert_service(&service("default", "web", cluster_ip("10.96.0.20")));
    assert_eq!(index.serial(), same);
}

#[test]
fn a_changed_cluster_ip_moves_its_ptr() {
    let mut index = sample();
    index.upsert_service(&service("default", "web", cluster_ip("10.96.0.21")));
    assert_nxdomain(&ask(&index, "20.0.96.10.in-addr.arpa.", RecordType::PTR));
    assert_eq!(
        ask(&index, "21.0.96.10.in-addr.arpa.", RecordType::PTR)
            .answers
            .len(),
        1
    );
}

/// 1,000 Services and 10,000 endpoints: the index stays small (measured
/// through the allocator would need a global hook; this checks the shape
/// builds and answers, the memory figure is in the report).
#[test]
fn a_thousand_services_and_ten_thousand_endpoints() {
    let mut index = DnsIndex::new();
    for s in 0..1000u32 {
        let name = format!("svc-{s}");
        let ip = format!("10.96.{}.{}", 1 + s / 250, 1 + s % 250);
        index.upsert_service(&service("default", &name, cluster_ip(&ip)));
        let eps: Vec<(String, Option<&str>, bool)> = (0..10u32)
            .map(|e| {
                let n = s * 10 + e;
                (format!("10.244.{}.{}", n / 250, 1 + n % 250), None, true)
            })
            .collect();
        let eps: Vec<(&str, Option<&str>, bool)> =
            eps.iter().map(|(a, h, r)| (a.as_str(), *h, *r)).collect();
        index.upsert_slice(&slice("default", &format!("{name}-x"), &name, &eps));
    }
    assert_eq!(index.service_count(), 1000);
    let a = ask(&index, "svc-999.default.svc.cluster.local.", RecordType::A);
    assert_eq!(a.answers.len(), 1);
}
