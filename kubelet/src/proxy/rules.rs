//! The nftables objects of kube-proxy's nftables mode, computed from the
//! desired model with no I/O.
//!
//! Shape (upstream `pkg/proxy/nftables`): one table of family `ip`; base
//! chains `nat-prerouting`/`nat-output` jump to `services`, which dispatches
//! with the verdict maps `service-ips` (ClusterIP, LoadBalancer and external
//! IPs) and `service-nodeports` (local destinations only); one `service-…`
//! chain per Service port balancing with `numgen random mod N vmap`; one
//! `endpoint-…` chain per endpoint (hairpin mark, affinity refresh, DNAT);
//! masquerade by mark 0x4000 in `nat-postrouting`; ports without endpoints
//! are rejected (or dropped, for Local policy) from filter chains on the
//! input, forward and output hooks through `no-endpoint-services` and
//! `no-endpoint-nodeports`.
//!
//! Every Service port owns a [`ServiceRules`]: its chains, its map elements
//! and its affinity sets. The sync diffs those per port, so the static part
//! ([`base_commands`]) is written only on a full sync.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;

use nftables::expr::{
    self, BinaryOperation, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression,
    NgMode, Numgen, Payload, PayloadField, Prefix, SetItem,
};
use nftables::schema::{self, Chain, NfCmd, NfListObject, Rule, SetFlag, SetTypeValue};
use nftables::stmt::{self, JumpTarget, Mangle, Match, NATFlag, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};
use sha2::{Digest, Sha256};

use super::model::{Endpoint, Protocol, ProxyConfig, ServicePort, ServicePortName};

/// The masquerade bit (upstream's default `--masquerade-bit 14`).
pub const MASQ_MARK: u32 = 0x4000;

/// Chains every table has (upstream's names).
pub const SERVICES_CHAIN: &str = "services";
/// Sets the masquerade bit.
pub const MARK_MASQ_CHAIN: &str = "mark-for-masquerade";
/// Masquerades marked packets (postrouting).
pub const MASQUERADING_CHAIN: &str = "masquerading";
/// Looks up `no-endpoint-*` maps (filter hooks).
pub const ENDPOINTS_CHECK_CHAIN: &str = "endpoints-check";
/// Target of `no-endpoint-*` elements for ports with no endpoint anywhere.
pub const REJECT_CHAIN: &str = "reject-chain";

/// Longest chain-name base; prefixes ("service-", "endpoint-", …) take at
/// most 16 more, staying under nft's 256-byte name limit (as upstream).
const CHAIN_NAME_BASE_MAX: usize = 240;

/// The proxy's verdict maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MapName {
    /// `ip daddr . meta l4proto . th dport : verdict` → service chains.
    ServiceIps,
    /// `meta l4proto . th dport : verdict` for local destinations.
    ServiceNodePorts,
    /// Same key as `service-ips`: reject or drop.
    NoEndpointServices,
    /// Same key as `service-nodeports`: reject or drop.
    NoEndpointNodePorts,
}

impl MapName {
    /// Every map, in declaration order.
    pub const ALL: [MapName; 4] = [
        MapName::ServiceIps,
        MapName::ServiceNodePorts,
        MapName::NoEndpointServices,
        MapName::NoEndpointNodePorts,
    ];

    /// The map's nft name.
    pub fn as_str(self) -> &'static str {
        match self {
            MapName::ServiceIps => "service-ips",
            MapName::ServiceNodePorts => "service-nodeports",
            MapName::NoEndpointServices => "no-endpoint-services",
            MapName::NoEndpointNodePorts => "no-endpoint-nodeports",
        }
    }

    /// Whether keys carry a destination address.
    pub fn keyed_by_ip(self) -> bool {
        matches!(self, MapName::ServiceIps | MapName::NoEndpointServices)
    }
}

/// Key of a map element: `ip . proto . port`, or `proto . port` for the
/// NodePort maps (`ip` is `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ElemKey {
    /// Destination address (IP-keyed maps only).
    pub ip: Option<Ipv4Addr>,
    /// Protocol.
    pub protocol: Protocol,
    /// Destination port.
    pub port: u16,
}

/// Value of a map element.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ElemVerdict {
    /// `goto <chain>`.
    Goto(String),
    /// `drop` (Local policy with no local endpoint).
    Drop,
}

/// One rule: its statements.
pub type RuleExprs = Vec<Statement<'static>>;

/// Everything one Service port owns in the table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceRules {
    /// Chain name → rules, in order.
    pub chains: BTreeMap<String, Vec<RuleExprs>>,
    /// Map elements.
    pub elements: BTreeMap<(MapName, ElemKey), ElemVerdict>,
    /// Affinity set name → timeout in seconds.
    pub affinity_sets: BTreeMap<String, u32>,
}

/// The endpoints a Service port uses on this node (upstream's
/// `CategorizeEndpoints`, without topology hints).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Categorized {
    /// Endpoints for Cluster policy: ready ones, or serving+terminating ones
    /// when none is ready.
    pub cluster: Vec<Endpoint>,
    /// Endpoints on this node, with the same fallback (Local policy only).
    pub local: Vec<Endpoint>,
}

impl Categorized {
    /// Whether any endpoint can take traffic.
    pub fn has_endpoints(&self) -> bool {
        !self.cluster.is_empty() || !self.local.is_empty()
    }

    /// Every endpoint that gets an endpoint chain, without duplicates.
    pub fn reachable(&self) -> Vec<&Endpoint> {
        let mut all: Vec<&Endpoint> = self.cluster.iter().collect();
        for ep in &self.local {
            if !all.iter().any(|e| e.ip == ep.ip && e.port == ep.port) {
                all.push(ep);
            }
        }
        all
    }
}

/// Splits a port's endpoints into those usable for Cluster and Local policy.
pub fn categorize(config: &ProxyConfig, service: &ServicePort) -> Categorized {
    fn usable<'a>(eps: impl Iterator<Item = &'a Endpoint> + Clone) -> Vec<Endpoint> {
        let ready: Vec<Endpoint> = eps.clone().filter(|e| e.ready).cloned().collect();
        if !ready.is_empty() {
            return ready;
        }
        // Upstream (KEP-1669): with no ready endpoint, terminating endpoints
        // that still serve take the traffic instead of dropping it.
        eps.filter(|e| e.serving && e.terminating)
            .cloned()
            .collect()
    }
    let mut eps: Vec<&Endpoint> = service.endpoints.iter().collect();
    // A stable order keeps the numgen rule (and so the diff) unchanged when
    // an EndpointSlice lists the same endpoints in another order.
    eps.sort_by_key(|e| (e.ip, e.port));
    eps.dedup_by_key(|e| (e.ip, e.port));
    let cluster = usable(eps.iter().copied());
    let local = if service.external_traffic_local {
        usable(
            eps.iter()
                .copied()
                .filter(|e| e.node.as_deref() == Some(config.node_name.as_str())),
        )
    } else {
        Vec::new()
    };
    Categorized { cluster, local }
}

/// `HASH-name` cut to [`CHAIN_NAME_BASE_MAX`]: the hash keeps names unique
/// when cut and tells apart chains whose names differ in one digit.
fn hash_and_truncate(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut out = base32_prefix(&digest[..5]);
    out.push('-');
    out.push_str(name);
    if out.len() > CHAIN_NAME_BASE_MAX {
        // Names are ASCII ([a-z0-9-./_]), so byte truncation is safe.
        out.truncate(CHAIN_NAME_BASE_MAX - 3);
        out.push_str("...");
    }
    out
}

/// RFC 4648 base32 of exactly 5 bytes (8 characters).
fn base32_prefix(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut value: u64 = 0;
    for b in bytes.iter().take(5) {
        value = (value << 8) | u64::from(*b);
    }
    (0..8)
        .rev()
        .map(|i| char::from(ALPHABET[((value >> (i * 5)) & 31) as usize]))
        .collect()
}

/// `HASH-ns/name/proto/port` (upstream's `servicePortChainNameBase`).
pub fn service_chain_base(name: &ServicePortName) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}",
        name.namespace, name.name, name.protocol, name.port_name
    ))
}

/// `HASH-ns/name/proto/port__ip/port` (upstream's endpoint chain base).
pub fn endpoint_chain_base(name: &ServicePortName, ep: &Endpoint) -> String {
    hash_and_truncate(&format!(
        "{}/{}/{}/{}__{}/{}",
        name.namespace, name.name, name.protocol, name.port_name, ep.ip, ep.port
    ))
}

// ----- expression helpers -----

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn string(s: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(s.into()))
}

fn matches(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}

fn fib_type(flag: FibFlag) -> Expression<'static> {
    let mut flags = HashSet::new();
    flags.insert(flag);
    Expression::Named(NamedExpression::Fib(Fib {
        result: FibResult::Type,
        flags,
    }))
}

fn target(chain: &str) -> JumpTarget<'static> {
    JumpTarget {
        target: Cow::Owned(chain.to_owned()),
    }
}

fn jump(chain: &str) -> Statement<'static> {
    Statement::Jump(target(chain))
}

fn goto(chain: &str) -> Statement<'static> {
    Statement::Goto(target(chain))
}

/// `ip daddr . meta l4proto . th dport` (or without `ip daddr`).
fn dispatch_key(with_ip: bool) -> Expression<'static> {
    let mut parts = Vec::with_capacity(3);
    if with_ip {
        parts.push(payload("ip", "daddr"));
    }
    parts.push(meta(MetaKey::L4proto));
    parts.push(payload("th", "dport"));
    Expression::Named(NamedExpression::Concat(parts))
}

fn vmap_lookup(map: MapName) -> Statement<'static> {
    Statement::VerdictMap(stmt::VerdictMap {
        key: dispatch_key(map.keyed_by_ip()),
        data: string(format!("@{}", map.as_str())),
    })
}

fn local_destination() -> [Statement<'static>; 2] {
    [
        matches(fib_type(FibFlag::Daddr), Operator::EQ, string("local")),
        // NodePorts on loopback would need route_localnet; upstream skips them.
        matches(
            payload("ip", "daddr"),
            Operator::NEQ,
            prefix(Ipv4Addr::LOCALHOST, 8),
        ),
    ]
}

fn prefix(addr: Ipv4Addr, len: u8) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(string(addr.to_string())),
        len: u32::from(len),
    }))
}

fn l4proto_is(protocol: Protocol) -> Statement<'static> {
    matches(
        meta(MetaKey::L4proto),
        Operator::EQ,
        string(protocol.as_str()),
    )
}

/// The element key as nft JSON: a concatenation.
pub fn elem_key_expr(key: &ElemKey) -> Expression<'static> {
    let mut parts = Vec::with_capacity(3);
    if let Some(ip) = key.ip {
        parts.push(string(ip.to_string()));
    }
    parts.push(string(key.protocol.as_str()));
    parts.push(Expression::Number(u32::from(key.port)));
    Expression::Named(NamedExpression::Concat(parts))
}

/// The element value as nft JSON: a verdict.
pub fn elem_verdict_expr(verdict: &ElemVerdict) -> Expression<'static> {
    match verdict {
        ElemVerdict::Goto(chain) => Expression::Verdict(expr::Verdict::Goto(target(chain))),
        ElemVerdict::Drop => Expression::Verdict(expr::Verdict::Drop),
    }
}

// ----- the static part -----

/// A chain object of the table (base chain when `hook` is given).
pub fn chain(config: &ProxyConfig, name: &str) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: Cow::Owned(config.table.clone()),
        name: Cow::Owned(name.to_owned()),
        ..Chain::default()
    }
}

fn base_chain(
    config: &ProxyConfig,
    name: &str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> Chain<'static> {
    Chain {
        _type: Some(kind),
        hook: Some(hook),
        // Numbers, not `dstnat`/`srcnat`: nft 1.0.6 rejects `priority dstnat`
        // on the output hook.
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..chain(config, name)
    }
}

/// A rule object in `chain_name`.
pub fn rule(config: &ProxyConfig, chain_name: &str, expr: RuleExprs) -> Rule<'static> {
    Rule {
        family: NfFamily::IP,
        table: Cow::Owned(config.table.clone()),
        chain: Cow::Owned(chain_name.to_owned()),
        expr: Cow::Owned(expr),
        ..Rule::default()
    }
}

/// The table object.
pub fn table(config: &ProxyConfig) -> schema::Table<'static> {
    schema::Table {
        family: NfFamily::IP,
        name: Cow::Owned(config.table.clone()),
        handle: None,
    }
}

/// Table, base chains, helper chains and their rules (all but the maps,
/// which the `nftables` crate cannot declare: see `sync.rs`).
pub fn base_commands(config: &ProxyConfig) -> Vec<NfCmd<'static>> {
    use NfChainType::{Filter, NAT};
    let mut out = vec![NfCmd::Add(NfListObject::Table(table(config)))];
    // Filter chains run before DNAT (-110 < -100) upstream; on input and
    // forward they see packets after prerouting's DNAT anyway, so only
    // ports left un-DNATed (no endpoints) hit `endpoints-check`.
    let base = [
        ("filter-input", Filter, NfHook::Input, -110),
        ("filter-forward", Filter, NfHook::Forward, -110),
        ("filter-output", Filter, NfHook::Output, -110),
        ("nat-prerouting", NAT, NfHook::Prerouting, -100),
        ("nat-output", NAT, NfHook::Output, -100),
        ("nat-postrouting", NAT, NfHook::Postrouting, 100),
    ];
    for (name, kind, hook, prio) in base {
        out.push(NfCmd::Add(NfListObject::Chain(base_chain(
            config, name, kind, hook, prio,
        ))));
    }
    for name in [
        SERVICES_CHAIN,
        MARK_MASQ_CHAIN,
        MASQUERADING_CHAIN,
        ENDPOINTS_CHECK_CHAIN,
        REJECT_CHAIN,
    ] {
        out.push(NfCmd::Add(NfListObject::Chain(chain(config, name))));
    }
    let ct_new = || {
        matches(
            Expression::Named(NamedExpression::CT(expr::CT {
                key: Cow::Borrowed("state"),
                family: None,
                dir: None,
            })),
            Operator::IN,
            string("new"),
        )
    };
    let mark = || meta(MetaKey::Mark);
    let mut rules: Vec<(&str, RuleExprs)> = vec![
        ("filter-input", vec![ct_new(), jump(ENDPOINTS_CHECK_CHAIN)]),
        (
            "filter-forward",
            vec![ct_new(), jump(ENDPOINTS_CHECK_CHAIN)],
        ),
        ("filter-output", vec![ct_new(), jump(ENDPOINTS_CHECK_CHAIN)]),
        ("nat-prerouting", vec![jump(SERVICES_CHAIN)]),
        ("nat-output", vec![jump(SERVICES_CHAIN)]),
        ("nat-postrouting", vec![jump(MASQUERADING_CHAIN)]),
        (
            MARK_MASQ_CHAIN,
            vec![Statement::Mangle(Mangle {
                key: mark(),
                value: Expression::BinaryOperation(Box::new(BinaryOperation::OR(vec![
                    mark(),
                    Expression::Number(MASQ_MARK),
                ]))),
            })],
        ),
        (
            MASQUERADING_CHAIN,
            vec![
                matches(
                    Expression::BinaryOperation(Box::new(BinaryOperation::AND(
                        mark(),
                        Expression::Number(MASQ_MARK),
                    ))),
                    Operator::EQ,
                    Expression::Number(0),
                ),
                Statement::Return(None),
            ],
        ),
        (
            MASQUERADING_CHAIN,
            // Clear the bit so a packet that is routed again (hairpin) is not
            // masqueraded twice.
            vec![Statement::Mangle(Mangle {
                key: mark(),
                value: Expression::BinaryOperation(Box::new(BinaryOperation::XOR(
                    mark(),
                    Expression::Number(MASQ_MARK),
                ))),
            })],
        ),
        (
            MASQUERADING_CHAIN,
            vec![Statement::Masquerade(Some(stmt::NAT {
                addr: None,
                family: None,
                port: None,
                flags: Some([NATFlag::FullyRandom].into_iter().collect()),
            }))],
        ),
        // A TCP client sees "connection refused" at once from the reset; other
        // protocols get ICMP port unreachable (ECONNREFUSED for UDP too).
        (
            REJECT_CHAIN,
            vec![
                l4proto_is(Protocol::Tcp),
                Statement::Reject(Some(stmt::Reject::new(
                    Some(stmt::RejectType::TCPReset),
                    None,
                ))),
            ],
        ),
        (
            REJECT_CHAIN,
            vec![Statement::Reject(Some(stmt::Reject::new(
                Some(stmt::RejectType::ICMP),
                Some(RejectCode::PortUnreach),
            )))],
        ),
        (
            ENDPOINTS_CHECK_CHAIN,
            vec![vmap_lookup(MapName::NoEndpointServices)],
        ),
        (SERVICES_CHAIN, vec![vmap_lookup(MapName::ServiceIps)]),
    ];
    let mut nodeport_check: RuleExprs = local_destination().into();
    nodeport_check.push(vmap_lookup(MapName::NoEndpointNodePorts));
    rules.push((ENDPOINTS_CHECK_CHAIN, nodeport_check));
    let mut nodeport_dispatch: RuleExprs = local_destination().into();
    nodeport_dispatch.push(vmap_lookup(MapName::ServiceNodePorts));
    rules.push((SERVICES_CHAIN, nodeport_dispatch));
    for (chain_name, expr) in rules {
        out.push(NfCmd::Add(NfListObject::Rule(rule(
            config, chain_name, expr,
        ))));
    }
    out
}

/// An affinity set declaration.
pub fn affinity_set(config: &ProxyConfig, name: &str, timeout: u32) -> schema::Set<'static> {
    schema::Set {
        family: NfFamily::IP,
        table: Cow::Owned(config.table.clone()),
        name: Cow::Owned(name.to_owned()),
        set_type: SetTypeValue::Single(schema::SetType::Ipv4Addr),
        // No `dynamic`: nft 1.0.6's JSON parser refuses that flag; the
        // kernel adds it itself for sets updated from the packet path.
        flags: Some([SetFlag::Timeout].into_iter().collect()),
        timeout: Some(timeout),
        ..schema::Set::default()
    }
}

// ----- per Service port -----

/// The chains, elements and affinity sets of one Service port.
pub fn service_rules(config: &ProxyConfig, svc: &ServicePort) -> ServiceRules {
    let mut out = ServiceRules::default();
    if svc.cluster_ips.is_empty() && !svc.externally_accessible() {
        // Headless: DNS only, nothing to proxy.
        return out;
    }
    let eps = categorize(config, svc);
    let base = service_chain_base(&svc.name);
    let cluster_chain = format!("service-{base}");
    let local_chain = format!("local-{base}");
    let external_chain = format!("external-{base}");
    let has_endpoints = eps.has_endpoints();
    let has_cluster = !eps.cluster.is_empty();
    let has_external = if svc.external_traffic_local {
        !eps.local.is_empty()
    } else {
        has_cluster
    };
    let proto = svc.name.protocol;
    // No endpoint anywhere: reject. Endpoints, but none for external traffic
    // under Local policy: drop whatever the external chain did not
    // short-circuit.
    let no_external = if has_endpoints {
        ElemVerdict::Drop
    } else {
        ElemVerdict::Goto(REJECT_CHAIN.to_owned())
    };

    for ip in &svc.cluster_ips {
        let key = ElemKey {
            ip: Some(*ip),
            protocol: proto,
            port: svc.port,
        };
        if has_cluster {
            out.elements.insert(
                (MapName::ServiceIps, key),
                ElemVerdict::Goto(cluster_chain.clone()),
            );
        } else {
            out.elements.insert(
                (MapName::NoEndpointServices, key),
                ElemVerdict::Goto(REJECT_CHAIN.to_owned()),
            );
        }
    }
    for ip in svc.external_ips.iter().chain(&svc.load_balancer_ips) {
        let key = ElemKey {
            ip: Some(*ip),
            protocol: proto,
            port: svc.port,
        };
        if has_endpoints {
            out.elements.insert(
                (MapName::ServiceIps, key),
                ElemVerdict::Goto(external_chain.clone()),
            );
        }
        if !has_external {
            out.elements
                .insert((MapName::NoEndpointServices, key), no_external.clone());
        }
    }
    if let Some(node_port) = svc.node_port {
        let key = ElemKey {
            ip: None,
            protocol: proto,
            port: node_port,
        };
        if has_endpoints {
            out.elements.insert(
                (MapName::ServiceNodePorts, key),
                ElemVerdict::Goto(external_chain.clone()),
            );
        }
        if !has_external {
            out.elements
                .insert((MapName::NoEndpointNodePorts, key), no_external);
        }
    }

    if has_cluster {
        let mut rules = Vec::new();
        for ip in &svc.cluster_ips {
            // Off-cluster clients reaching a ClusterIP (a static route to the
            // service range) are masqueraded so replies come back through here.
            rules.push(vec![
                matches(payload("ip", "daddr"), Operator::EQ, string(ip.to_string())),
                l4proto_is(proto),
                matches(
                    payload("th", "dport"),
                    Operator::EQ,
                    Expression::Number(u32::from(svc.port)),
                ),
                matches(
                    payload("ip", "saddr"),
                    Operator::NEQ,
                    prefix(config.cluster_cidr.0, config.cluster_cidr.1),
                ),
                jump(MARK_MASQ_CHAIN),
            ]);
        }
        rules.extend(balance_rules(svc, &eps.cluster));
        out.chains.insert(cluster_chain.clone(), rules);
    }
    if svc.external_traffic_local && !eps.local.is_empty() {
        out.chains
            .insert(local_chain.clone(), balance_rules(svc, &eps.local));
    }
    if has_endpoints && svc.externally_accessible() {
        let rules = external_rules(
            config,
            svc,
            &cluster_chain,
            &local_chain,
            has_cluster,
            has_external,
        );
        out.chains.insert(external_chain, rules);
    }
    add_endpoint_chains(svc, &eps, &mut out);
    out
}

/// One chain per endpoint: hairpin mark, affinity refresh, DNAT.
fn add_endpoint_chains(svc: &ServicePort, eps: &Categorized, out: &mut ServiceRules) {
    let proto = svc.name.protocol;
    for ep in eps.reachable() {
        let ep_base = endpoint_chain_base(&svc.name, ep);
        let affinity = format!("affinity-{ep_base}");
        let mut rules = vec![vec![
            matches(
                payload("ip", "saddr"),
                Operator::EQ,
                string(ep.ip.to_string()),
            ),
            jump(MARK_MASQ_CHAIN),
        ]];
        if let Some(timeout) = svc.session_affinity {
            rules.push(vec![Statement::Set(stmt::Set {
                op: stmt::SetOp::Update,
                elem: payload("ip", "saddr"),
                set: Cow::Owned(format!("@{affinity}")),
            })]);
            out.affinity_sets.insert(affinity, timeout);
        }
        rules.push(vec![
            l4proto_is(proto),
            Statement::DNAT(Some(stmt::NAT {
                addr: Some(string(ep.ip.to_string())),
                family: None,
                port: Some(Expression::Number(u32::from(ep.port))),
                flags: None,
            })),
        ]);
        out.chains.insert(format!("endpoint-{ep_base}"), rules);
    }
}

/// Rules of the `external-…` chain (NodePort, LoadBalancer, external IPs).
fn external_rules(
    config: &ProxyConfig,
    svc: &ServicePort,
    cluster_chain: &str,
    local_chain: &str,
    has_cluster: bool,
    has_external: bool,
) -> Vec<RuleExprs> {
    let mut rules = Vec::new();
    if !svc.external_traffic_local {
        // The endpoint may be on another node: masquerade so the reply returns
        // through this node to be un-DNATed.
        rules.push(vec![jump(MARK_MASQ_CHAIN)]);
        if has_cluster {
            rules.push(vec![goto(cluster_chain)]);
        }
        return rules;
    }
    if has_cluster {
        // Pods reaching an external address of the Service are treated as
        // if they went out to a load balancer and back: Cluster policy.
        rules.push(vec![
            matches(
                payload("ip", "saddr"),
                Operator::EQ,
                prefix(config.cluster_cidr.0, config.cluster_cidr.1),
            ),
            goto(cluster_chain),
        ]);
        // The node itself: its source address is local, so masquerade.
        rules.push(vec![
            matches(fib_type(FibFlag::Saddr), Operator::EQ, string("local")),
            jump(MARK_MASQ_CHAIN),
        ]);
        rules.push(vec![
            matches(fib_type(FibFlag::Saddr), Operator::EQ, string("local")),
            goto(cluster_chain),
        ]);
    }
    if has_external {
        // Local policy keeps the client's address: no masquerade.
        rules.push(vec![goto(local_chain)]);
    }
    rules
}

/// Affinity lookups then `numgen random mod N vmap { i : goto endpoint-i }`.
fn balance_rules(svc: &ServicePort, eps: &[Endpoint]) -> Vec<RuleExprs> {
    let mut rules = Vec::new();
    let chains: Vec<(String, String)> = eps
        .iter()
        .map(|ep| {
            let base = endpoint_chain_base(&svc.name, ep);
            (format!("endpoint-{base}"), format!("affinity-{base}"))
        })
        .collect();
    if svc.session_affinity.is_some() {
        for (endpoint_chain, affinity) in &chains {
            rules.push(vec![
                matches(
                    payload("ip", "saddr"),
                    Operator::EQ,
                    string(format!("@{affinity}")),
                ),
                goto(endpoint_chain),
            ]);
        }
    }
    let items = chains
        .iter()
        .enumerate()
        .map(|(i, (endpoint_chain, _))| {
            SetItem::Mapping(
                Expression::Number(u32::try_from(i).unwrap_or(u32::MAX)),
                Expression::Verdict(expr::Verdict::Goto(target(endpoint_chain))),
            )
        })
        .collect();
    rules.push(vec![Statement::VerdictMap(stmt::VerdictMap {
        key: Expression::Named(NamedExpression::Numgen(Numgen {
            mode: NgMode::Random,
            ng_mod: u32::try_from(eps.len()).unwrap_or(u32::MAX),
            offset: None,
        })),
        data: Expression::Named(NamedExpression::Set(items)),
    })]);
    rules
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProxyConfig {
        ProxyConfig::new("node-1")
    }

    fn web(endpoints: Vec<Endpoint>) -> ServicePort {
        let mut svc = ServicePort::cluster_ip(
            ServicePortName::new("default", "web", "http", Protocol::Tcp),
            Ipv4Addr::new(10, 96, 0, 10),
            80,
        );
        svc.endpoints = endpoints;
        svc
    }

    fn ep(last: u8, node: &str) -> Endpoint {
        Endpoint::ready(Ipv4Addr::new(10, 244, 1, last), 8080, Some(node))
    }

    fn json(rules: &[RuleExprs]) -> String {
        serde_json::to_string(rules).unwrap_or_default()
    }

    #[test]
    fn chain_names_follow_upstream_shape() {
        let name = ServicePortName::new("ns1", "svc1", "p80", Protocol::Tcp);
        let base = service_chain_base(&name);
        assert_eq!(base.len(), 8 + 1 + "ns1/svc1/tcp/p80".len());
        assert!(base.ends_with("-ns1/svc1/tcp/p80"), "{base}");
        assert!(
            base[..8]
                .chars()
                .all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c))
        );
        let e = endpoint_chain_base(&name, &ep(1, "n"));
        assert!(e.ends_with("-ns1/svc1/tcp/p80__10.244.1.1/8080"), "{e}");
        let long = ServicePortName::new(
            &"n".repeat(63),
            &"s".repeat(63),
            &"p".repeat(63),
            Protocol::Sctp,
        );
        assert!(endpoint_chain_base(&long, &ep(1, "n")).len() <= CHAIN_NAME_BASE_MAX);
    }

    #[test]
    fn cluster_ip_with_two_endpoints_balances_with_numgen() {
        let rules = service_rules(&config(), &web(vec![ep(10, "node-1"), ep(11, "node-2")]));
        let base = service_chain_base(&web(vec![]).name);
        let svc_chain = format!("service-{base}");
        assert_eq!(
            rules.elements.get(&(
                MapName::ServiceIps,
                ElemKey {
                    ip: Some(Ipv4Addr::new(10, 96, 0, 10)),
                    protocol: Protocol::Tcp,
                    port: 80
                }
            )),
            Some(&ElemVerdict::Goto(svc_chain.clone()))
        );
        assert_eq!(rules.elements.len(), 1);
        let chain = json(&rules.chains[&svc_chain]);
        assert!(
            chain.contains(r#""numgen":{"mode":"random","mod":2}"#),
            "{chain}"
        );
        assert!(
            chain.contains(r#""prefix":{"addr":"10.244.0.0","len":16}"#),
            "{chain}"
        );
        // One service chain and two endpoint chains.
        assert_eq!(rules.chains.len(), 3);
        let ep_chain = rules
            .chains
            .iter()
            .find(|(k, _)| k.ends_with("__10.244.1.10/8080"))
            .map(|(_, v)| json(v))
            .unwrap_or_default();
        assert!(ep_chain.contains(r#"{"match":{"left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"10.244.1.10","op":"=="}},{"jump":{"target":"mark-for-masquerade"}}"#), "{ep_chain}");
        assert!(
            ep_chain.contains(r#"{"dnat":{"addr":"10.244.1.10","port":8080}}"#),
            "{ep_chain}"
        );
    }

    #[test]
    fn no_endpoints_rejects_through_the_filter_map() {
        let rules = service_rules(&config(), &web(vec![]));
        assert!(rules.chains.is_empty());
        assert_eq!(
            rules.elements.values().collect::<Vec<_>>(),
            vec![&ElemVerdict::Goto(REJECT_CHAIN.into())]
        );
        assert!(
            rules
                .elements
                .keys()
                .all(|(m, _)| *m == MapName::NoEndpointServices)
        );
    }

    #[test]
    fn terminating_serving_endpoints_are_a_fallback_only() {
        let mut term = ep(12, "node-1");
        term.ready = false;
        term.terminating = true;
        let only_term = categorize(&config(), &web(vec![term.clone()]));
        assert_eq!(only_term.cluster, vec![term.clone()]);
        let mixed = categorize(&config(), &web(vec![term, ep(10, "node-2")]));
        assert_eq!(mixed.cluster.len(), 1);
        assert_eq!(mixed.cluster[0].ip, Ipv4Addr::new(10, 244, 1, 10));
        let mut not_serving = ep(13, "node-1");
        not_serving.ready = false;
        not_serving.serving = false;
        assert!(!categorize(&config(), &web(vec![not_serving])).has_endpoints());
    }

    #[test]
    fn session_affinity_adds_sets_lookups_and_updates() {
        let mut svc = web(vec![ep(10, "node-1"), ep(11, "node-2")]);
        svc.session_affinity = Some(60);
        let rules = service_rules(&config(), &svc);
        assert_eq!(rules.affinity_sets.len(), 2);
        assert!(rules.affinity_sets.values().all(|t| *t == 60));
        let svc_chain = json(&rules.chains[&format!("service-{}", service_chain_base(&svc.name))]);
        assert_eq!(
            svc_chain.matches(r#""right":"@affinity-"#).count(),
            2,
            "{svc_chain}"
        );
        let updates: usize = rules
            .chains
            .values()
            .map(|r| json(r).matches(r#"{"set":{"op":"update""#).count())
            .sum();
        assert_eq!(updates, 2);
    }

    #[test]
    fn node_port_cluster_policy_masquerades_then_balances() {
        let mut svc = web(vec![ep(10, "node-2")]);
        svc.node_port = Some(30080);
        let rules = service_rules(&config(), &svc);
        let base = service_chain_base(&svc.name);
        assert_eq!(
            rules.elements.get(&(
                MapName::ServiceNodePorts,
                ElemKey {
                    ip: None,
                    protocol: Protocol::Tcp,
                    port: 30080
                }
            )),
            Some(&ElemVerdict::Goto(format!("external-{base}")))
        );
        let ext = json(&rules.chains[&format!("external-{base}")]);
        assert_eq!(
            ext,
            format!(
                r#"[[{{"jump":{{"target":"mark-for-masquerade"}}}}],[{{"goto":{{"target":"service-{base}"}}}}]]"#
            )
        );
    }

    #[test]
    fn local_policy_without_local_endpoint_drops_external_traffic() {
        let mut svc = web(vec![ep(10, "node-2")]);
        svc.node_port = Some(30080);
        svc.load_balancer_ips = vec![Ipv4Addr::new(172, 29, 1, 240)];
        svc.external_traffic_local = true;
        let rules = service_rules(&config(), &svc);
        let np = ElemKey {
            ip: None,
            protocol: Protocol::Tcp,
            port: 30080,
        };
        assert_eq!(
            rules.elements.get(&(MapName::NoEndpointNodePorts, np)),
            Some(&ElemVerdict::Drop)
        );
        let lb = ElemKey {
            ip: Some(Ipv4Addr::new(172, 29, 1, 240)),
            protocol: Protocol::Tcp,
            port: 80,
        };
        assert_eq!(
            rules.elements.get(&(MapName::NoEndpointServices, lb)),
            Some(&ElemVerdict::Drop)
        );
        let base = service_chain_base(&svc.name);
        assert!(!rules.chains.contains_key(&format!("local-{base}")));
        // The external chain still short-circuits pods and the node itself.
        let ext = json(&rules.chains[&format!("external-{base}")]);
        assert!(!ext.contains("local-"), "{ext}");
        assert!(
            ext.contains(r#""fib":{"result":"type","flags":["saddr"]}"#),
            "{ext}"
        );

        // With a local endpoint the external chain ends in the local chain,
        // which balances over local endpoints only.
        svc.endpoints.push(ep(20, "node-1"));
        let rules = service_rules(&config(), &svc);
        assert!(rules.elements.keys().all(|(m, _)| !matches!(
            m,
            MapName::NoEndpointNodePorts | MapName::NoEndpointServices
        )));
        let local = json(&rules.chains[&format!("local-{base}")]);
        assert!(
            local.contains(r#""mod":1"#) && local.contains("__10.244.1.20/8080"),
            "{local}"
        );
        let ext = json(&rules.chains[&format!("external-{base}")]);
        assert!(
            ext.ends_with(&format!(r#"[{{"goto":{{"target":"local-{base}"}}}}]]"#)),
            "{ext}"
        );
    }

    #[test]
    fn base_commands_use_numeric_priorities_and_upstream_chains() {
        let cmds = serde_json::to_string(&base_commands(&config())).unwrap_or_default();
        assert!(
            cmds.contains(r#""name":"nat-output","type":"nat","hook":"output","prio":-100"#),
            "{cmds}"
        );
        assert!(
            cmds.contains(r#""masquerade":{"flags":["fully-random"]}"#),
            "{cmds}"
        );
        assert!(cmds.contains(r#""data":"@service-ips""#));
        assert!(cmds.contains(r#""data":"@no-endpoint-nodeports""#));
        assert!(
            cmds.contains(r#"{"reject":{"type":"tcp reset"}}"#),
            "{cmds}"
        );
    }
}
