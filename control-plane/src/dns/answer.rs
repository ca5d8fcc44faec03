//! What a name and record type resolve to, as CoreDNS's kubernetes
//! plugin answers them: pure logic over the [`DnsIndex`], no I/O, so every
//! record kind and every NXDOMAIN-versus-NODATA case is a unit test.
//!
//! Names (lower-cased first; DNS is case-insensitive):
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA → cluster IPs; headless → one
//!   record per ready endpoint (NXDOMAIN with none); ExternalName →
//!   CNAME (chased only when the target is inside the cluster domain:
//!   outside names are never resolved here); SRV → one per port.
//! - `<endpoint>.<svc>.<ns>.svc.<domain>`: an endpoint by its hostname,
//!   else by its dashed address (`10-244-1-5`).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV for a named port.
//! - `<a-b-c-d>.<ns>.pod.<domain>`: the address in the name (CoreDNS's
//!   `pods insecure`).
//! - `dns-version.<domain>` TXT, the apex's SOA and NS, and
//!   `ns.dns.<domain>` (the `kube-dns` Service's address).
//! - `…in-addr.arpa` / `…ip6.arpa` PTR for cluster IPs and endpoints.
//!
//! A name that exists without records of the asked type is NODATA
//! (NOERROR, SOA in authority); a name that does not exist is NXDOMAIN.
//! Names outside the cluster domain and the reverse zones are REFUSED
//! (marked [`Answer::outside`], for the server to forward when an
//! upstream is configured).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use hickory_server::proto::op::ResponseCode;
use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record, RecordType};

use super::index::{DnsIndex, Endpoint, Entry, ServiceKind, ServiceRecord, dashed};

/// The version CoreDNS's kubernetes plugin reports (the DNS
/// specification's schema version).
pub const DNS_SCHEMA_VERSION: &str = "1.1.0";

/// How many CNAMEs inside the cluster domain an answer follows.
const MAX_CNAME_CHAIN: usize = 8;

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// The cluster domain (`cluster.local`), lower-case, no trailing dot.
    pub domain: String,
    /// TTL of every record, in seconds (CoreDNS's default 5).
    pub ttl: u32,
    /// Servers that answer names outside the cluster (CoreDNS's
    /// `forward . /etc/resolv.conf`); empty, the default: such names are
    /// REFUSED and nothing is ever sent elsewhere.
    pub upstreams: Vec<std::net::SocketAddr>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            domain: "cluster.local".into(),
            ttl: 5,
            upstreams: Vec::new(),
        }
    }
}

impl DnsConfig {
    /// A config for `domain` (dots at the ends and case dropped).
    pub fn new(domain: &str, ttl: u32) -> Self {
        Self {
            domain: domain.trim_matches('.').to_ascii_lowercase(),
            ttl,
            upstreams: Vec::new(),
        }
    }
}

/// A response's code and sections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// NOERROR, NXDOMAIN or REFUSED.
    pub rcode: ResponseCode,
    /// Whether the server is authoritative (inside its zones).
    pub authoritative: bool,
    /// The answer section.
    pub answers: Vec<Record>,
    /// The authority section (the SOA of negative answers, NS).
    pub authorities: Vec<Record>,
    /// The additional section (addresses of SRV targets).
    pub additionals: Vec<Record>,
    /// The name is not the cluster's to answer: outside its zones, or a
    /// reverse name of an address it does not know (CoreDNS's
    /// `fallthrough in-addr.arpa ip6.arpa`). An upstream, if configured,
    /// answers it instead.
    pub outside: bool,
}

impl Answer {
    fn refused(outside: bool) -> Self {
        Self {
            rcode: ResponseCode::Refused,
            authoritative: false,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            outside,
        }
    }

    fn empty(rcode: ResponseCode) -> Self {
        Self {
            rcode,
            authoritative: true,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            outside: false,
        }
    }
}

/// What a lookup inside a zone found.
enum Found {
    /// The name does not exist.
    NxDomain,
    /// The name exists; these are its records of the asked type (none:
    /// NODATA).
    Records(Vec<Record>, Vec<Record>),
    /// The name is an alias: this CNAME record, to this target.
    Alias(Box<Record>, Name),
}

/// Answers `name` `qtype` from `index`.
pub fn answer(index: &DnsIndex, config: &DnsConfig, name: &Name, qtype: RecordType) -> Answer {
    // Matched lower-cased, answered under the name as asked (as CoreDNS
    // does), so clients that compare case exactly are content.
    let lower = name.to_lowercase();
    let Some(qlabels) = labels(&lower) else {
        return Answer::refused(false);
    };
    let domain: Vec<&str> = config.domain.split('.').filter(|l| !l.is_empty()).collect();
    let zone = if qlabels.ends_with(&domain) {
        Zone::Cluster(qlabels.len() - domain.len())
    } else if qlabels.ends_with(&["in-addr", "arpa"]) {
        Zone::Reverse4
    } else if qlabels.ends_with(&["ip6", "arpa"]) {
        Zone::Reverse6
    } else {
        return Answer::refused(true);
    };
    let mut out = Answer::empty(ResponseCode::NoError);
    let mut current_labels: Vec<String> = qlabels.iter().map(|l| l.to_string()).collect();
    let mut current = name.clone();
    let mut zone = zone;
    for _ in 0..MAX_CNAME_CHAIN {
        let refs: Vec<&str> = current_labels.iter().map(String::as_str).collect();
        let found = match zone {
            Zone::Cluster(n) => cluster(index, config, &current, &refs[..n], qtype),
            Zone::Reverse4 | Zone::Reverse6 => reverse(index, config, &current, qtype),
        };
        match found {
            Found::NxDomain => {
                // An unknown address's reverse name falls through.
                out.outside =
                    out.answers.is_empty() && matches!(zone, Zone::Reverse4 | Zone::Reverse6);
                // After CNAMEs, the code is that of the chain's last
                // name (RFC 6604), the CNAMEs staying in the answer.
                out.rcode = ResponseCode::NXDomain;
                out.authorities.push(soa(index, config, zone));
                return out;
            }
            Found::Records(answers, additionals) => {
                if answers.is_empty() {
                    out.authorities.push(soa(index, config, zone));
                }
                out.answers.extend(answers);
                out.additionals.extend(additionals);
                return out;
            }
            Found::Alias(record, target) => {
                out.answers.push(*record);
                if qtype == RecordType::CNAME {
                    return out;
                }
                let target = target.to_lowercase();
                let Some(target_labels) = labels(&target) else {
                    return out;
                };
                if !target_labels.ends_with(&domain) {
                    // Outside the cluster: the client resolves it.
                    return out;
                }
                zone = Zone::Cluster(target_labels.len() - domain.len());
                current_labels = target_labels.iter().map(|l| l.to_string()).collect();
                current = target;
            }
        }
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Zone {
    /// The cluster domain; how many labels precede it.
    Cluster(usize),
    Reverse4,
    Reverse6,
}

/// A name's labels as text (`None` for a label that is not UTF-8).
fn labels(name: &Name) -> Option<Vec<&str>> {
    name.iter().map(|l| std::str::from_utf8(l).ok()).collect()
}

fn record(name: &Name, ttl: u32, rdata: RData) -> Record {
    Record::from_rdata(name.clone(), ttl, rdata)
}

/// `text` as an absolute name. The names built here (SOA, Service and
/// endpoint names, PTR targets) are lower-case ASCII, for which IDNA
/// (`Name::from_str`) changes nothing but costs a good part of a negative
/// answer: they are read as ASCII; anything else goes through IDNA.
fn fqdn(text: &str) -> Option<Name> {
    let plain = text
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let parsed = if plain {
        Name::from_ascii(text)
    } else {
        Name::from_str(text)
    };
    let mut name = parsed.ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// The SOA of a zone, for the apex and negative answers (CoreDNS's
/// values: refresh 7200, retry 1800, expire 86400, minimum the TTL).
fn soa(index: &DnsIndex, config: &DnsConfig, zone: Zone) -> Record {
    let apex = match zone {
        Zone::Cluster(_) => config.domain.as_str(),
        Zone::Reverse4 => "in-addr.arpa",
        Zone::Reverse6 => "ip6.arpa",
    };
    let apex_name = fqdn(apex).unwrap_or_else(Name::root);
    let mname = fqdn(&format!("ns.dns.{apex}")).unwrap_or_else(Name::root);
    let rname = fqdn(&format!("hostmaster.{apex}")).unwrap_or_else(Name::root);
    record(
        &apex_name,
        config.ttl,
        RData::SOA(SOA::new(
            mname,
            rname,
            index.serial(),
            7200,
            1800,
            86400,
            config.ttl,
        )),
    )
}

fn address_record(name: &Name, ttl: u32, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => record(name, ttl, RData::A(A(v4))),
        IpAddr::V6(v6) => record(name, ttl, RData::AAAA(AAAA(v6))),
    }
}

/// Whether `ip` answers `qtype` (A for IPv4, AAAA for IPv6).
fn family_matches(ip: &IpAddr, qtype: RecordType) -> bool {
    matches!(
        (ip, qtype),
        (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
    )
}

/// Records of names under the cluster domain; `rel` are the labels
/// before it.
fn cluster(
    index: &DnsIndex,
    config: &DnsConfig,
    name: &Name,
    rel: &[&str],
    qtype: RecordType,
) -> Found {
    let ttl = config.ttl;
    let none = || Found::Records(Vec::new(), Vec::new());
    match rel {
        [] => match qtype {
            RecordType::SOA => {
                Found::Records(vec![soa(index, config, Zone::Cluster(0))], Vec::new())
            }
            RecordType::NS => match fqdn(&format!("ns.dns.{}", config.domain)) {
                Some(ns) => {
                    let additional = dns_address(index)
                        .map(|ip| address_record(&ns, ttl, ip))
                        .into_iter()
                        .collect();
                    Found::Records(vec![record(name, ttl, RData::NS(NS(ns)))], additional)
                }
                None => none(),
            },
            _ => none(),
        },
        ["dns-version"] => {
            if qtype == RecordType::TXT {
                let txt = TXT::new(vec![DNS_SCHEMA_VERSION.to_string()]);
                Found::Records(vec![record(name, ttl, RData::TXT(txt))], Vec::new())
            } else {
                none()
            }
        }
        ["dns"] | ["svc"] | ["pod"] => none(),
        ["ns", "dns"] => match dns_address(index) {
            Some(ip) if family_matches(&ip, qtype) => {
                Found::Records(vec![address_record(name, ttl, ip)], Vec::new())
            }
            Some(_) => none(),
            None => Found::NxDomain,
        },
        [ns, "svc"] => {
            if index.namespace_exists(ns) {
                none()
            } else {
                Found::NxDomain
            }
        }
        [svc, ns, "svc"] => service(index, config, name, ns, svc, qtype),
        [first, svc, ns, "svc"] => {
            if let Some(proto) = first.strip_prefix('_') {
                // `_tcp.svc…`: the parent of the SRV names, empty.
                match index.service(ns, svc) {
                    Some((s, _)) if s.ports.iter().any(|p| p.protocol.label() == proto) => none(),
                    _ => Found::NxDomain,
                }
            } else {
                endpoint(index, config, name, ns, svc, first, qtype)
            }
        }
        [port, proto, svc, ns, "svc"] => match (port.strip_prefix('_'), proto.strip_prefix('_')) {
            (Some(port), Some(proto)) => srv(index, config, name, ns, svc, port, proto, qtype),
            _ => Found::NxDomain,
        },
        [_ns, "pod"] => none(),
        [ip, _ns, "pod"] => match pod_address(ip) {
            Some(addr) if family_matches(&addr, qtype) => {
                Found::Records(vec![address_record(name, ttl, addr)], Vec::new())
            }
            Some(_) => none(),
            None => Found::NxDomain,
        },
        _ => Found::NxDomain,
    }
}

/// The cluster IP of `kube-system/kube-dns`, the DNS server's address.
fn dns_address(index: &DnsIndex) -> Option<IpAddr> {
    let (svc, _) = index.service("kube-system", "kube-dns")?;
    svc.cluster_ips.first().copied()
}

/// `10-244-1-5` → 10.244.1.5; `fd00--1` → fd00::1.
fn pod_address(label: &str) -> Option<IpAddr> {
    if let Ok(v4) = label.replace('-', ".").parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// The full name of a Service.
fn service_name(config: &DnsConfig, ns: &str, svc: &str) -> Option<Name> {
    fqdn(&format!("{svc}.{ns}.svc.{}", config.domain))
}

/// `<svc>.<ns>.svc.<domain>`.
fn service(
    index: &DnsIndex,
    config: &DnsConfig,
    name: &Name,
    ns: &str,
    svc: &str,
    qtype: RecordType,
) -> Found {
    let ttl = config.ttl;
    let Some((record_, entry)) = index.service(ns, svc) else {
        return Found::NxDomain;
    };
    match record_.kind {
        ServiceKind::ExternalName => match record_.external_name.as_deref().and_then(fqdn) {
            Some(target) => Found::Alias(
                Box::new(record(name, ttl, RData::CNAME(CNAME(target.clone())))),
                target,
            ),
            None => Found::NxDomain,
        },
        ServiceKind::ClusterIp => match qtype {
            RecordType::A | RecordType::AAAA => Found::Records(
                record_
                    .cluster_ips
                    .iter()
                    .filter(|ip| family_matches(ip, qtype))
                    .map(|ip| address_record(name, ttl, *ip))
                    .collect(),
                Vec::new(),
            ),
            RecordType::SRV => srv_records(config, name, ns, svc, record_, entry, None),
            _ => Found::Records(Vec::new(), Vec::new()),
        },
        ServiceKind::Headless => {
            if !entry.has_endpoints() {
                return Found::NxDomain;
            }
            match qtype {
                RecordType::A | RecordType::AAAA => {
                    // An address in two slices (moving between them)
                    // is answered once.
                    let mut seen = std::collections::HashSet::new();
                    let answers = entry
                        .endpoints()
                        .filter(|e| family_matches(&e.ip, qtype))
                        .filter(|e| seen.insert(e.ip))
                        .map(|e| address_record(name, ttl, e.ip))
                        .collect();
                    Found::Records(answers, Vec::new())
                }
                RecordType::SRV => srv_records(config, name, ns, svc, record_, entry, None),
                _ => Found::Records(Vec::new(), Vec::new()),
            }
        }
    }
}

/// `<endpoint>.<svc>.<ns>.svc.<domain>`: the endpoints named so.
fn endpoint(
    index: &DnsIndex,
    config: &DnsConfig,
    name: &Name,
    ns: &str,
    svc: &str,
    label: &str,
    qtype: RecordType,
) -> Found {
    let Some((_, entry)) = addressed_service(index, ns, svc) else {
        return Found::NxDomain;
    };
    // By hostname, else by address (parsed once, no string per endpoint).
    let by_address = pod_address(label);
    let named = |e: &&Endpoint| match &e.hostname {
        Some(host) => &**host == label,
        None => by_address == Some(e.ip),
    };
    let matching: Vec<&Endpoint> = entry.endpoints().filter(named).collect();
    if matching.is_empty() {
        return Found::NxDomain;
    }
    let mut answers: Vec<Record> = Vec::new();
    for e in matching {
        if family_matches(&e.ip, qtype) && !answers.iter().any(|r| rdata_ip(r) == Some(e.ip)) {
            answers.push(address_record(name, config.ttl, e.ip));
        }
    }
    Found::Records(answers, Vec::new())
}

/// Service `ns/svc` unless it is missing or an ExternalName: only
/// Services with addresses have endpoint and port names below them.
fn addressed_service<'a>(
    index: &'a DnsIndex,
    ns: &str,
    svc: &str,
) -> Option<(&'a ServiceRecord, &'a Entry)> {
    index
        .service(ns, svc)
        .filter(|(record, _)| record.kind != ServiceKind::ExternalName)
}

fn rdata_ip(record: &Record) -> Option<IpAddr> {
    match &record.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    }
}

/// `_<port>._<proto>.<svc>.<ns>.svc.<domain>`.
#[allow(clippy::too_many_arguments)]
fn srv(
    index: &DnsIndex,
    config: &DnsConfig,
    name: &Name,
    ns: &str,
    svc: &str,
    port: &str,
    proto: &str,
    qtype: RecordType,
) -> Found {
    let Some((record_, entry)) = addressed_service(index, ns, svc) else {
        return Found::NxDomain;
    };
    if !record_
        .ports
        .iter()
        .any(|p| p.name.as_deref() == Some(port) && p.protocol.label() == proto)
    {
        return Found::NxDomain;
    }
    if qtype != RecordType::SRV {
        return Found::Records(Vec::new(), Vec::new());
    }
    srv_records(config, name, ns, svc, record_, entry, Some((port, proto)))
}

/// SRV records of a Service's ports (all, or the one named `_port._proto`):
/// to the Service's name for a cluster IP, to each endpoint's name when
/// headless; the targets' addresses in the additional section. Weights
/// share 100 among the answer's records, as CoreDNS's do.
fn srv_records(
    config: &DnsConfig,
    name: &Name,
    ns: &str,
    svc: &str,
    record_: &ServiceRecord,
    entry: &super::index::Entry,
    only: Option<(&str, &str)>,
) -> Found {
    let ttl = config.ttl;
    let ports = record_.ports.iter().filter(|p| match only {
        Some((port, proto)) => p.name.as_deref() == Some(port) && p.protocol.label() == proto,
        None => true,
    });
    let Some(svc_name) = service_name(config, ns, svc) else {
        return Found::NxDomain;
    };
    let mut answers = Vec::new();
    let mut additionals: Vec<Record> = Vec::new();
    let targets: Vec<(Name, Vec<IpAddr>)> = match record_.kind {
        ServiceKind::ClusterIp => vec![(svc_name.clone(), record_.cluster_ips.to_vec())],
        _ => {
            let mut targets: Vec<(Name, Vec<IpAddr>)> = Vec::new();
            for e in entry.endpoints() {
                let Ok(target) = svc_name.prepend_label(e.label().as_bytes()) else {
                    continue;
                };
                match targets.iter_mut().find(|(t, _)| *t == target) {
                    Some((_, ips)) if !ips.contains(&e.ip) => ips.push(e.ip),
                    Some(_) => {}
                    None => targets.push((target, vec![e.ip])),
                }
            }
            targets
        }
    };
    if targets.is_empty() {
        return Found::Records(answers, additionals);
    }
    let ports: Vec<_> = ports.collect();
    // CoreDNS shares 100 among all the records of the answer.
    let records = (ports.len() * targets.len()).max(1);
    let weight = u16::try_from(100 / records).unwrap_or(1).max(1);
    for port in ports {
        for (target, _) in &targets {
            answers.push(record(
                name,
                ttl,
                RData::SRV(SRV::new(0, weight, port.port, target.clone())),
            ));
        }
    }
    if !answers.is_empty() {
        for (target, ips) in &targets {
            for ip in ips {
                additionals.push(address_record(target, ttl, *ip));
            }
        }
    }
    Found::Records(answers, additionals)
}

/// PTR names: cluster IPs and endpoint addresses.
fn reverse(index: &DnsIndex, config: &DnsConfig, name: &Name, qtype: RecordType) -> Found {
    let Ok(net) = name.to_lowercase().parse_arpa_name() else {
        return Found::NxDomain;
    };
    let full = match net {
        ipnet::IpNet::V4(n) => n.prefix_len() == 32,
        ipnet::IpNet::V6(n) => n.prefix_len() == 128,
    };
    if !full {
        // A partial reverse name (an empty non-terminal or nothing).
        return Found::NxDomain;
    }
    let targets = index.reverse(net.addr());
    if targets.is_empty() {
        return Found::NxDomain;
    }
    if qtype != RecordType::PTR {
        return Found::Records(Vec::new(), Vec::new());
    }
    let mut answers: Vec<Record> = Vec::new();
    for t in targets {
        let text = match (&t.slice, &t.hostname) {
            (None, _) => format!("{}.{}.svc.{}", t.service, t.namespace, config.domain),
            (Some(_), Some(host)) => {
                format!("{host}.{}.{}.svc.{}", t.service, t.namespace, config.domain)
            }
            (Some(_), None) => format!(
                "{}.{}.{}.svc.{}",
                dashed(net.addr()),
                t.service,
                t.namespace,
                config.domain
            ),
        };
        let Some(target) = fqdn(&text) else { continue };
        let rec = record(name, config.ttl, RData::PTR(PTR(target)));
        if !answers.contains(&rec) {
            answers.push(rec);
        }
    }
    Found::Records(answers, Vec::new())
}
