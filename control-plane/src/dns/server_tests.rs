//! The real server on 127.0.0.1:0 over UDP and TCP: answers, EDNS,
//! truncation, error codes, and a seeded, bounded fuzz of hostile
//! packets after which it still answers.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use hickory_server::proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_server::proto::rr::{DNSClass, Name, RData, RecordType};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::answer::DnsConfig;
use super::index::DnsIndex;
use super::server::{DnsMetrics, RunningDns, serve};
use skiff_fuzzing::Rng;

async fn start() -> RunningDns {
    start_with(DnsConfig::default()).await
}

async fn start_with(config: DnsConfig) -> RunningDns {
    let mut index = DnsIndex::new();
    index.upsert_service(
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "http", "port": 80}]},
        }))
        .expect("service"),
    );
    index.upsert_service(
        &serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "many", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"name": "http", "port": 80}]},
        }))
        .expect("service"),
    );
    let endpoints: Vec<_> = (1..=50)
        .map(|i| json!({"addresses": [format!("10.244.0.{i}")], "conditions": {"ready": true}}))
        .collect();
    index.upsert_slice(
        &serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "many-1", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": "many"}},
            "addressType": "IPv4", "endpoints": endpoints,
        }))
        .expect("slice"),
    );
    serve(
        "127.0.0.1:0".parse().expect("addr"),
        Arc::new(RwLock::new(index)),
        config,
        Arc::new(DnsMetrics::default()),
    )
    .await
    .expect("serve")
}

fn query(name: &str, qtype: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::new(0x4242, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().expect("encode")
}

async fn udp(addr: SocketAddr, packet: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(packet, addr).await.ok()?;
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(wait, socket.recv(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(n);
    Some(buf)
}

async fn tcp(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    let len = u16::try_from(packet.len()).ok()?;
    stream.write_all(&len.to_be_bytes()).await.ok()?;
    stream.write_all(packet).await.ok()?;
    let read = async {
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).await.ok()?;
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        stream.read_exact(&mut buf).await.ok()?;
        Some(buf)
    };
    tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .ok()
        .flatten()
}

fn decode(bytes: &[u8]) -> Message {
    Message::from_vec(bytes).expect("a response that decodes")
}

const WAIT: Duration = Duration::from_secs(2);

#[tokio::test]
async fn answers_over_udp_and_tcp() {
    let dns = start().await;
    assert_eq!(dns.udp.port(), dns.tcp.port());
    let q = query("web.default.svc.cluster.local.", RecordType::A, None);
    for bytes in [
        udp(dns.udp, &q, WAIT).await.expect("udp answer"),
        tcp(dns.tcp, &q).await.expect("tcp answer"),
    ] {
        let m = decode(&bytes);
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.authoritative);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert_eq!(m.answers.len(), 1);
        assert!(matches!(&m.answers[0].data, RData::A(a) if a.0.to_string() == "10.96.0.20"));
        assert!(m.edns.is_none(), "no OPT unless asked");
    }
    let nx = decode(
        &udp(
            dns.udp,
            &query("nope.default.svc.cluster.local.", RecordType::A, None),
            WAIT,
        )
        .await
        .expect("answer"),
    );
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities.len(), 1);
    dns.shutdown().await;
}

#[tokio::test]
async fn edns_is_echoed_and_big_udp_answers_are_truncated() {
    let dns = start().await;
    let name = "many.default.svc.cluster.local.";
    // Plain UDP: 50 addresses do not fit in 512 bytes.
    let plain = udp(dns.udp, &query(name, RecordType::A, None), WAIT)
        .await
        .expect("answer");
    assert!(plain.len() <= 512, "{}", plain.len());
    let m = decode(&plain);
    assert!(m.metadata.truncation);
    assert!(m.answers.len() < 50);
    // With EDNS at 1232 they do, and the answer carries our OPT.
    let big = udp(dns.udp, &query(name, RecordType::A, Some(4096)), WAIT)
        .await
        .expect("answer");
    assert!(big.len() <= 1232, "{}", big.len());
    let m = decode(&big);
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 50);
    let edns = m.edns.expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232);
    // A tiny advertised size counts as 512.
    let small = udp(dns.udp, &query(name, RecordType::A, Some(100)), WAIT)
        .await
        .expect("answer");
    assert!(small.len() <= 512);
    assert!(decode(&small).metadata.truncation);
    // TCP: everything.
    let m = decode(
        &tcp(dns.tcp, &query(name, RecordType::A, None))
            .await
            .expect("answer"),
    );
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 50);
    dns.shutdown().await;
}

#[tokio::test]
async fn malformed_and_unsupported_queries_get_error_codes() {
    let dns = start().await;
    let code = |bytes: Option<Vec<u8>>| decode(&bytes.expect("an answer")).metadata.response_code;
    // Two questions.
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    let name = Name::from_ascii("web.default.svc.cluster.local.").expect("name");
    m.add_query(Query::query(name.clone(), RecordType::A));
    m.add_query(Query::query(name.clone(), RecordType::AAAA));
    let two = m.to_vec().expect("encode");
    assert_eq!(code(udp(dns.udp, &two, WAIT).await), ResponseCode::FormErr);
    // None.
    let none = Message::new(8, MessageType::Query, OpCode::Query)
        .to_vec()
        .expect("encode");
    assert_eq!(code(udp(dns.udp, &none, WAIT).await), ResponseCode::FormErr);
    // An opcode other than QUERY.
    let mut status = Message::new(9, MessageType::Query, OpCode::Status);
    status.add_query(Query::query(name.clone(), RecordType::A));
    let status = status.to_vec().expect("encode");
    assert_eq!(
        code(udp(dns.udp, &status, WAIT).await),
        ResponseCode::NotImp
    );
    // Class CH, and a zone transfer.
    let mut chaos = Query::query(name.clone(), RecordType::TXT);
    chaos.set_query_class(DNSClass::CH);
    let mut m = Message::new(10, MessageType::Query, OpCode::Query);
    m.add_query(chaos);
    let chaos = m.to_vec().expect("encode");
    assert_eq!(
        code(udp(dns.udp, &chaos, WAIT).await),
        ResponseCode::Refused
    );
    let axfr = query("cluster.local.", RecordType::AXFR, None);
    assert_eq!(code(tcp(dns.tcp, &axfr).await), ResponseCode::Refused);
    // A question cut short.
    let good = query("web.default.svc.cluster.local.", RecordType::A, None);
    assert_eq!(
        code(udp(dns.udp, &good[..good.len() - 3], WAIT).await),
        ResponseCode::FormErr
    );
    // Shorter than a header: no answer at all.
    assert!(
        udp(dns.udp, &good[..5], Duration::from_millis(300))
            .await
            .is_none()
    );
    // A response is not answered (no reflection).
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(
        udp(dns.udp, &response, Duration::from_millis(300))
            .await
            .is_none()
    );
    dns.shutdown().await;
}

/// A header: id, flags, and the four counts.
fn header(flags: u16, counts: [u16; 4]) -> Vec<u8> {
    let mut h = vec![0x13, 0x37];
    h.extend(flags.to_be_bytes());
    for c in counts {
        h.extend(c.to_be_bytes());
    }
    h
}

/// One hostile packet of kind `kind`; `true` if it must get FORMERR.
fn hostile(rng: &mut Rng, kind: usize) -> (Vec<u8>, bool) {
    let good = query("web.default.svc.cluster.local.", RecordType::A, Some(1232));
    match kind {
        // Random bytes.
        0 => {
            let n = rng.below(600);
            (rng.bytes(n), false)
        }
        // A valid query cut anywhere after the header.
        1 => {
            let cut = 12 + rng.below(good.len() - 13);
            (good[..cut].to_vec(), true)
        }
        // A name that points at itself (a compression loop).
        2 => {
            let mut p = header(0x0100, [1, 0, 0, 0]);
            p.extend([0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
            (p, true)
        }
        // Two pointers pointing at each other.
        3 => {
            let mut p = header(0x0100, [1, 0, 0, 0]);
            p.extend([0xc0, 0x0e, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01]);
            (p, true)
        }
        // Oversized: a valid query followed by kilobytes of junk.
        4 => {
            let mut p = good.clone();
            let n = 2000 + rng.below(6000);
            p.extend(rng.bytes(n));
            (p, false)
        }
        // A valid query with random flag bits (opcodes, QR, Z, rcode).
        5 => {
            let mut p = good.clone();
            p[2] = rng.next_u64() as u8;
            p[3] = rng.next_u64() as u8;
            (p, false)
        }
        // Claims many questions, holds one.
        6 => {
            let mut p = good.clone();
            p[4] = 0xff;
            p[5] = 0xff;
            (p, true)
        }
        // Random class and type.
        7 => {
            let mut p = query("web.default.svc.cluster.local.", RecordType::A, None);
            let end = p.len();
            let t = rng.bytes(4);
            p[end - 4..].copy_from_slice(&t);
            (p, false)
        }
        // A label longer than 63 or a name longer than 255.
        8 => {
            let mut p = header(0x0100, [1, 0, 0, 0]);
            for _ in 0..5 {
                p.push(63);
                p.extend(std::iter::repeat_n(b'a', 63));
            }
            p.extend([0, 0, 1, 0, 1]);
            (p, true)
        }
        // A valid header and random records after one question.
        _ => {
            let mut p = good.clone();
            p[7] = 3;
            let n = rng.below(200);
            p.extend(rng.bytes(n));
            (p, false)
        }
    }
}

#[tokio::test]
async fn hostile_packets_never_break_the_server() {
    let dns = start().await;
    let mut rng = Rng::new(0x5eed_d45e_0000_0015);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut buf = vec![0u8; 65_535];
    for i in 0..2_000u16 {
        let (mut packet, formerr) = hostile(&mut rng, usize::from(i) % 10);
        // Each packet its own id, so a late answer is told from this one's.
        if packet.len() >= 2 {
            packet[..2].copy_from_slice(&i.to_be_bytes());
        }
        socket.send_to(&packet, dns.udp).await.expect("send");
        let wait = if formerr {
            WAIT
        } else {
            Duration::from_millis(20)
        };
        let deadline = tokio::time::Instant::now() + wait;
        let mut answered = false;
        while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, socket.recv(&mut buf)).await {
            assert!(n >= 12, "a short answer near packet {i}");
            assert!(buf[2] & 0x80 != 0, "answers are responses");
            if buf[..2] != i.to_be_bytes() {
                continue; // a late answer to an earlier packet
            }
            answered = true;
            if formerr {
                let code = buf[3] & 0x0f;
                assert_eq!(code, 1, "packet {i} ({packet:02x?}) got rcode {code}");
            }
            break;
        }
        assert!(
            answered || !formerr,
            "packet {i} ({packet:02x?}) got no FORMERR"
        );
    }
    // TCP: hostile frames, bogus lengths, connections dropped mid-frame.
    for i in 0..200 {
        let Ok(mut stream) = TcpStream::connect(dns.tcp).await else {
            panic!("TCP connect {i} refused");
        };
        let (packet, _) = hostile(&mut rng, i % 10);
        match i % 3 {
            0 => {
                let len = u16::try_from(packet.len().min(65_535)).unwrap_or(u16::MAX);
                let _ = stream.write_all(&len.to_be_bytes()).await;
                let _ = stream.write_all(&packet[..usize::from(len)]).await;
                let mut reply = [0u8; 2];
                let _ =
                    tokio::time::timeout(Duration::from_millis(50), stream.read_exact(&mut reply))
                        .await;
            }
            1 => {
                // Announces more than it sends, then goes.
                let _ = stream.write_all(&[0xff, 0xff]).await;
                let _ = stream.write_all(&packet).await;
            }
            _ => {
                let _ = stream.write_all(&packet).await;
            }
        }
        drop(stream);
    }
    // Still answering, both ways.
    let q = query("web.default.svc.cluster.local.", RecordType::A, None);
    let m = decode(&udp(dns.udp, &q, WAIT).await.expect("udp still answers"));
    assert_eq!(m.answers.len(), 1);
    let m = decode(&tcp(dns.tcp, &q).await.expect("tcp still answers"));
    assert_eq!(m.answers.len(), 1);
    dns.shutdown().await;
}

/// Upstream forwarding, to a second server of ours on loopback (never
/// anything outside the machine): names outside the cluster go there,
/// over the client's protocol; an upstream that does not answer is
/// SERVFAIL; without upstreams they are REFUSED.
#[tokio::test]
async fn outside_names_go_to_the_configured_upstream_only() {
    let upstream = start_with(DnsConfig::new("upstream.test", 5)).await;
    let dns = start_with(DnsConfig {
        upstreams: vec![upstream.udp],
        ..DnsConfig::default()
    })
    .await;
    let outside = query("web.default.svc.upstream.test.", RecordType::A, Some(1232));
    for bytes in [
        udp(dns.udp, &outside, WAIT).await.expect("udp answer"),
        tcp(dns.tcp, &outside).await.expect("tcp answer"),
    ] {
        let m = decode(&bytes);
        assert_eq!(m.metadata.id, 0x4242);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        assert!(!m.metadata.authoritative);
        assert!(matches!(&m.answers[0].data, RData::A(a) if a.0.to_string() == "10.96.0.20"));
    }
    // The cluster's own names are still answered here.
    let own = query("web.default.svc.cluster.local.", RecordType::A, None);
    assert!(
        decode(&udp(dns.udp, &own, WAIT).await.expect("answer"))
            .metadata
            .authoritative
    );
    // An unknown address's reverse name falls through to the upstream.
    let ptr = query("9.9.9.10.in-addr.arpa.", RecordType::PTR, None);
    let m = decode(&udp(dns.udp, &ptr, WAIT).await.expect("answer"));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(!m.metadata.authoritative, "the upstream's answer");
    // Without upstreams: refused.
    let plain = start().await;
    let m = decode(&udp(plain.udp, &outside, WAIT).await.expect("answer"));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    // A silent upstream: SERVFAIL.
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let stuck = start_with(DnsConfig {
        upstreams: vec![silent.local_addr().expect("addr")],
        ..DnsConfig::default()
    })
    .await;
    let m = decode(
        &udp(stuck.udp, &outside, Duration::from_secs(5))
            .await
            .expect("answer"),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    for server in [dns, upstream, plain, stuck] {
        server.shutdown().await;
    }
}
