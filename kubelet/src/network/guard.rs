//! Keeping pods away from the cluster's own control channels. Until nodes
//! and the control plane authenticate each other, the kubelet's ports
//! (gRPC `NodeAgent`: exec, pod assignment; HTTP `/pods`) and the control
//! plane's node gRPC (`NodeRegistry`: registering as a node) answer anyone
//! who reaches them. Giving pods addresses must not hand them that: pod
//! traffic (source in the cluster CIDR) to those ports is rejected in the
//! node's namespace, before masquerade would make it look like the node's.

use std::net::{Ipv4Addr, SocketAddrV4};

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Rule};
use nftables::stmt::{Match, Operator, Reject, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook, RejectCode};

use super::table::{TABLE, prefix, table};

/// Chain for pod traffic to this node's own addresses.
pub const GUARD_INPUT: &str = "guard-input";
/// Chain for pod traffic routed elsewhere (other nodes, the control plane).
pub const GUARD_FORWARD: &str = "guard-forward";

/// What pods may not reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    /// The kubelets' TCP ports (this node's; peers listen on the same).
    pub kubelet_ports: Vec<u16>,
    /// The control plane's node gRPC address.
    pub control_plane: Option<SocketAddrV4>,
}

fn field(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: protocol.into(),
            field: field.into(),
        },
    )))
}

fn equals(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

fn reject() -> Statement<'static> {
    // A TCP reset: the client fails at once instead of timing out.
    Statement::Reject(Some(Reject::new(
        Some(nftables::stmt::RejectType::TCPReset),
        None::<RejectCode>,
    )))
}

fn base_chain(name: &'static str, hook: NfHook) -> Chain<'static> {
    Chain {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(NfChainType::Filter),
        hook: Some(hook),
        prio: Some(0),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    }
}

fn rule(
    chain: &'static str,
    expr: Vec<Statement<'static>>,
    comment: &str,
) -> NfListObject<'static> {
    NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: TABLE.into(),
        chain: chain.into(),
        expr: expr.into(),
        comment: Some(comment.to_string().into()),
        ..Rule::default()
    })
}

/// The batch that makes the guard chains hold exactly the rules for
/// `guard`, with `nodes` the other nodes' addresses; like the masquerade
/// batch, applying it again leaves the same rules.
pub fn guard_batch(cluster: Ipv4Net, guard: &Guard, nodes: &[Ipv4Addr]) -> Batch<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    for (name, hook) in [
        (GUARD_INPUT, NfHook::Input),
        (GUARD_FORWARD, NfHook::Forward),
    ] {
        let chain = base_chain(name, hook);
        batch.add(NfListObject::Chain(chain.clone()));
        batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain)));
    }
    let from_pods = || equals(field("ip", "saddr"), prefix(cluster));
    let to_port = |port: u16| equals(field("tcp", "dport"), Expression::Number(u32::from(port)));
    let to_addr = |addr: Ipv4Addr| {
        equals(
            field("ip", "daddr"),
            Expression::String(addr.to_string().into()),
        )
    };
    for port in &guard.kubelet_ports {
        batch.add(rule(
            GUARD_INPUT,
            vec![from_pods(), to_port(*port), reject()],
            "skiff: pods may not reach this node's kubelet",
        ));
        for node in nodes {
            batch.add(rule(
                GUARD_FORWARD,
                vec![from_pods(), to_addr(*node), to_port(*port), reject()],
                "skiff: pods may not reach another node's kubelet",
            ));
        }
    }
    if let Some(cp) = guard.control_plane {
        for chain in [GUARD_INPUT, GUARD_FORWARD] {
            batch.add(rule(
                chain,
                vec![from_pods(), to_addr(*cp.ip()), to_port(cp.port()), reject()],
                "skiff: pods may not reach the control plane's node registry",
            ));
        }
    }
    batch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_are_kept_from_kubelets_and_the_node_registry() {
        let guard = Guard {
            kubelet_ports: vec![10250, 10255],
            control_plane: Some("172.29.1.1:6444".parse().expect("addr")),
        };
        let cluster: Ipv4Net = "10.244.0.0/16".parse().expect("cidr");
        let batch = guard_batch(cluster, &guard, &["172.29.1.12".parse().expect("ip")]);
        let text = serde_json::to_string(&batch.to_nftables()).expect("json");
        // Two ports on this node, the same two on the one peer, the
        // registry on both hooks.
        assert_eq!(text.matches("\"reject\"").count(), 2 + 2 + 2, "{text}");
        for needle in [
            "10250",
            "10255",
            "6444",
            "172.29.1.12",
            "172.29.1.1\"",
            "10.244.0.0",
        ] {
            assert!(text.contains(needle), "{needle} missing: {text}");
        }
        assert!(text.contains("\"flush\""), "chains are refilled: {text}");
    }
}
