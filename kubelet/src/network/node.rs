//! What the node itself needs for pod traffic, kept in step with the control
//! plane's [`NodeNetwork`]:
//!
//! - forwarding sysctls in the node's namespace (`net.ipv4.ip_forward`, and
//!   `net.bridge.bridge-nf-call-iptables`: without it pod → Service VIP →
//!   pod on the same bridge times out, measured);
//! - a route `peer podCIDR via peer address` for every peer node. Skiff's
//!   routes carry their own protocol number ([`ROUTE_PROTO`]), so the node
//!   finds, changes and removes exactly its own and never anyone else's;
//! - masquerade for pod traffic leaving the cluster CIDR, in Skiff's own
//!   nftables table ([`TABLE`]), built with the `nftables` crate's types and
//!   applied as one JSON batch through `nft -j -f -` (atomic).
//!
//! [`run`] applies on every change of the watch and again every
//! [`RESYNC`] (level-triggered: a route someone deleted comes back);
//! [`NodeSetup::cleanup`] undoes the routes and the table when the kubelet
//! stops.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::Ipv4Net;
use nftables::batch::Batch;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField};
use nftables::schema::{Chain, FlushObject, NfCmd, NfListObject, Rule};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use serde::Deserialize;
use tracing::{Instrument, debug, info, info_span, warn};

use super::guard::{Guard, guard_batch};
use super::table::{TABLE, prefix, table};
use super::{NetworkError, NodeNetwork, NodeNetworkRx, run_in_node};

/// The chain in [`TABLE`] that masquerades pod traffic leaving the cluster.
pub const POSTROUTING: &str = "postrouting";

/// The route protocol Skiff's peer routes carry (unassigned in
/// `/etc/iproute2/rt_protos`), so they can be told from every other route.
pub const ROUTE_PROTO: &str = "147";

/// How often the node's state is applied again without a change.
pub const RESYNC: Duration = Duration::from_secs(30);

/// After a failed apply, how soon it is tried again.
const RETRY: Duration = Duration::from_secs(2);

/// The routes to add or change, and those to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoutePlan {
    /// `ip route replace <net> via <gw>`.
    pub replace: Vec<(Ipv4Net, Ipv4Addr)>,
    /// `ip route delete <net>` (Skiff's own only).
    pub delete: Vec<Ipv4Net>,
}

/// The routes `network` wants: one per valid peer, except a peer claiming
/// the node's own range (the bridge route covers that). Bad peers are
/// logged and skipped so one cannot keep the others unreachable.
pub fn desired_routes(network: &NodeNetwork) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    let own = network.pod_net().ok();
    let mut routes = BTreeMap::new();
    for peer in &network.peers {
        match peer.route() {
            Ok((net, _)) if Some(net) == own => {
                warn!(peer = %peer.node, %net, "peer claims this node's podCIDR; no route");
            }
            Ok((net, via)) => {
                routes.insert(net, via);
            }
            Err(e) => warn!(peer = %peer.node, error = %e, "skipping peer"),
        }
    }
    routes
}

/// What to change so that Skiff's routes (`present`, as listed) become
/// `desired`.
pub fn plan_routes(
    desired: &BTreeMap<Ipv4Net, Ipv4Addr>,
    present: &BTreeMap<Ipv4Net, Option<Ipv4Addr>>,
) -> RoutePlan {
    RoutePlan {
        replace: desired
            .iter()
            .filter(|(net, via)| present.get(net) != Some(&Some(**via)))
            .map(|(net, via)| (*net, *via))
            .collect(),
        delete: present
            .keys()
            .filter(|net| !desired.contains_key(net))
            .copied()
            .collect(),
    }
}

/// One route as `ip -j route show` prints it.
#[derive(Debug, Deserialize)]
struct IpRoute {
    dst: String,
    #[serde(default)]
    gateway: Option<String>,
}

/// Parses `ip -j route show` output into destination → gateway. `default`
/// and unparsable entries are left out (Skiff never makes them).
pub fn parse_routes(json: &str) -> Result<BTreeMap<Ipv4Net, Option<Ipv4Addr>>, serde_json::Error> {
    let routes: Vec<IpRoute> = if json.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(json)?
    };
    Ok(routes
        .into_iter()
        .filter_map(|r| {
            // A host route is printed without its /32.
            let net = r
                .dst
                .parse::<Ipv4Net>()
                .ok()
                .or_else(|| r.dst.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))?;
            Some((net, r.gateway.and_then(|g| g.parse().ok())))
        })
        .collect())
}

fn ip_field(field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: "ip".into(),
            field: field.into(),
        },
    )))
}

/// The batch that makes the table hold exactly the masquerade rule for
/// `cluster`: `add` is a no-op for what exists and the flush empties the
/// chain, so applying it again (or with a new CIDR) leaves one rule.
pub fn masquerade_batch(cluster: Ipv4Net) -> Batch<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    let chain = Chain {
        family: NfFamily::IP,
        table: TABLE.into(),
        name: POSTROUTING.into(),
        _type: Some(NfChainType::NAT),
        hook: Some(NfHook::Postrouting),
        // srcnat
        prio: Some(100),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    };
    batch.add(NfListObject::Chain(chain.clone()));
    batch.add_cmd(NfCmd::Flush(FlushObject::Chain(chain)));
    let expr = vec![
        Statement::Match(Match {
            left: ip_field("saddr"),
            right: prefix(cluster),
            op: Operator::EQ,
        }),
        Statement::Match(Match {
            left: ip_field("daddr"),
            right: prefix(cluster),
            op: Operator::NEQ,
        }),
        Statement::Masquerade(None),
    ];
    batch.add(NfListObject::Rule(Rule {
        family: NfFamily::IP,
        table: TABLE.into(),
        chain: POSTROUTING.into(),
        expr: expr.into(),
        comment: Some("skiff: pod traffic leaving the cluster CIDR".into()),
        ..Rule::default()
    }));
    batch
}

/// The batch that removes the table: adding it first makes deleting one that
/// is not there succeed.
pub fn remove_table_batch() -> Batch<'static> {
    let mut batch = Batch::new();
    batch.add(NfListObject::Table(table()));
    batch.delete(NfListObject::Table(table()));
    batch
}

/// The node's side of the pod network, in the node's namespace.
#[derive(Debug, Clone, Default)]
pub struct NodeSetup {
    node_netns: Option<PathBuf>,
    guard: Guard,
}

impl NodeSetup {
    /// Works in the current namespace (a `skiff up` kubelet runs in its node's).
    pub fn new() -> Self {
        Self::default()
    }

    /// Works in the namespace at `netns` (tests, standalone use).
    pub fn in_node_netns(netns: Option<PathBuf>) -> Self {
        Self {
            node_netns: netns,
            guard: Guard::default(),
        }
    }

    /// Also keeps pods from what `guard` names.
    pub fn with_guard(mut self, guard: Guard) -> Self {
        self.guard = guard;
        self
    }

    /// Makes the node match `network`; idempotent.
    pub async fn apply(&self, network: &NodeNetwork) -> Result<(), NetworkError> {
        let cluster = network.cluster_net()?;
        self.sysctls().await?;
        self.sync_routes(&desired_routes(network)).await?;
        self.nft(&masquerade_batch(cluster)).await?;
        let nodes: Vec<Ipv4Addr> = network
            .peers
            .iter()
            .filter_map(|p| p.address.parse().ok())
            .collect();
        self.nft(&guard_batch(cluster, &self.guard, &nodes)).await?;
        Ok(())
    }

    /// Removes Skiff's routes and its table; the sysctls stay (other users of
    /// the namespace may rely on forwarding). Idempotent.
    pub async fn cleanup(&self) -> Result<(), NetworkError> {
        self.sync_routes(&BTreeMap::new()).await?;
        self.nft(&remove_table_batch()).await
    }

    /// Skiff's routes in the node's namespace.
    pub async fn routes(&self) -> Result<BTreeMap<Ipv4Net, Option<Ipv4Addr>>, NetworkError> {
        let args = [
            "-j",
            "-4",
            "route",
            "show",
            "table",
            "main",
            "proto",
            ROUTE_PROTO,
        ];
        let out = run_in_node(self.netns(), "ip", &args).await?;
        parse_routes(&out).map_err(|e| NetworkError::Command {
            command: format!("ip {}", args.join(" ")),
            detail: format!("unreadable output: {e}"),
        })
    }

    async fn sync_routes(&self, desired: &BTreeMap<Ipv4Net, Ipv4Addr>) -> Result<(), NetworkError> {
        let plan = plan_routes(desired, &self.routes().await?);
        let mut first_err = None;
        for (net, via) in &plan.replace {
            let (net, via) = (net.to_string(), via.to_string());
            let args = ["route", "replace", &net, "via", &via, "proto", ROUTE_PROTO];
            match run_in_node(self.netns(), "ip", &args).await {
                Ok(_) => info!(%net, %via, "peer route set"),
                // One unreachable peer must not keep the others' routes out.
                Err(e) => {
                    warn!(error = %e, "peer route not set");
                    first_err.get_or_insert(e);
                }
            }
        }
        for net in &plan.delete {
            let net = net.to_string();
            let args = ["route", "delete", &net, "proto", ROUTE_PROTO];
            match run_in_node(self.netns(), "ip", &args).await {
                Ok(_) => info!(%net, "stale peer route removed"),
                Err(e) => {
                    warn!(error = %e, "stale peer route not removed");
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Applies one batch with `nft -j -f -` in the node's namespace. The
    /// crate's own helper is not used because it cannot enter a namespace
    /// and drops nft's stderr.
    async fn nft(&self, batch: &Batch<'_>) -> Result<(), NetworkError> {
        use tokio::io::AsyncWriteExt;
        let line = "nft -j -f -".to_string();
        let fail = |detail: String| NetworkError::Command {
            command: line.clone(),
            detail,
        };
        let payload =
            serde_json::to_vec(&batch.clone().to_nftables()).map_err(|e| fail(e.to_string()))?;
        let mut child = super::node_command("nft", self.netns())
            .map_err(|e| fail(e.to_string()))?
            .args(["-j", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| fail(e.to_string()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(&payload)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(fail(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }

    /// Writes the sysctls on a thread of its own that enters the node's
    /// namespace first (`/proc/sys/net` is the namespace of the thread that
    /// opens it; setns moves only that thread, which then ends).
    async fn sysctls(&self) -> Result<(), NetworkError> {
        let netns = self.node_netns.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("skiff-sysctl".into())
            .spawn(move || {
                let _ = tx.send(write_sysctls(netns.as_deref()));
            })
            .map_err(|source| NetworkError::Io {
                path: PathBuf::from("/proc/sys/net"),
                source,
            })?;
        rx.await.unwrap_or_else(|_| {
            Err(NetworkError::Io {
                path: PathBuf::from("/proc/sys/net"),
                source: std::io::Error::other("sysctl thread ended without an answer"),
            })
        })
    }

    fn netns(&self) -> Option<&Path> {
        self.node_netns.as_deref()
    }

    /// Applies `rx`'s network on every change and every [`RESYNC`] until the
    /// sender is dropped. Errors are logged and retried; nothing is undone
    /// on return (the caller runs [`NodeSetup::cleanup`] when the kubelet stops).
    pub async fn run(self, mut rx: NodeNetworkRx) {
        loop {
            let current = rx.borrow_and_update().clone();
            let pause = match current {
                None => RESYNC,
                Some(network) => {
                    let span = info_span!("node_network", pod_cidr = %network.pod_cidr);
                    match self.apply(&network).instrument(span).await {
                        Ok(()) => {
                            debug!(peers = network.peers.len(), "node network applied");
                            RESYNC
                        }
                        Err(e) => {
                            warn!(error = %e, "node network not applied; retrying");
                            RETRY
                        }
                    }
                }
            };
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

/// Keeps the node in step with `rx` in the current namespace (see
/// [`NodeSetup::run`]).
pub async fn run(rx: NodeNetworkRx) {
    NodeSetup::new().run(rx).await
}

const IP_FORWARD: &str = "/proc/sys/net/ipv4/ip_forward";
const BRIDGE_NF_CALL_IPTABLES: &str = "/proc/sys/net/bridge/bridge-nf-call-iptables";

fn write_sysctls(netns: Option<&Path>) -> Result<(), NetworkError> {
    if let Some(netns) = netns {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(netns).map_err(|source| NetworkError::Io {
            path: netns.to_path_buf(),
            source,
        })?;
        // SAFETY: setns has no memory-safety preconditions; it moves only
        // this short-lived thread, which ends right after the writes.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(NetworkError::Io {
                path: netns.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
    }
    write_sysctl(IP_FORWARD)?;
    // The bridge sysctls exist once br_netfilter is loaded (modules are the
    // machine's; the settings are per namespace).
    if !Path::new(BRIDGE_NF_CALL_IPTABLES).exists() {
        let out = std::process::Command::new("modprobe")
            .arg("br_netfilter")
            .output()
            .map_err(|e| NetworkError::Command {
                command: "modprobe br_netfilter".into(),
                detail: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(NetworkError::Command {
                command: "modprobe br_netfilter".into(),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
    }
    write_sysctl(BRIDGE_NF_CALL_IPTABLES)
}

fn write_sysctl(path: &str) -> Result<(), NetworkError> {
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, b"1").map_err(|source| NetworkError::Io {
        path: PathBuf::from(path),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::Peer;

    fn net(s: &str) -> Ipv4Net {
        s.parse().expect("address")
    }

    fn network(peers: &[(&str, &str, &str)]) -> NodeNetwork {
        NodeNetwork {
            pod_cidr: "10.244.1.0/24".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            peers: peers
                .iter()
                .map(|(n, c, a)| Peer {
                    node: (*n).into(),
                    pod_cidr: (*c).into(),
                    address: (*a).into(),
                    ready: true,
                })
                .collect(),
        }
    }

    #[test]
    fn desired_routes_skip_bad_peers_and_the_own_range() {
        let routes = desired_routes(&network(&[
            ("node2", "10.244.2.0/24", "172.29.1.12"),
            ("node3", "10.244.3.0/24", "not-an-ip"),
            ("me", "10.244.1.0/24", "172.29.1.11"),
            ("node4", "10.244.4.0/24", "172.29.1.14"),
        ]));
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            [
                (
                    net("10.244.2.0/24"),
                    "172.29.1.12".parse().expect("address")
                ),
                (
                    net("10.244.4.0/24"),
                    "172.29.1.14".parse().expect("address")
                ),
            ]
        );
    }

    #[test]
    fn the_plan_adds_new_replaces_changed_and_deletes_gone_routes() {
        let desired = BTreeMap::from([
            (
                net("10.244.2.0/24"),
                "172.29.1.12".parse().expect("address"),
            ),
            (
                net("10.244.3.0/24"),
                "172.29.1.99".parse().expect("address"),
            ),
            (
                net("10.244.5.0/24"),
                "172.29.1.15".parse().expect("address"),
            ),
        ]);
        let present = BTreeMap::from([
            (
                net("10.244.2.0/24"),
                Some("172.29.1.12".parse().expect("address")),
            ),
            (
                net("10.244.3.0/24"),
                Some("172.29.1.13".parse().expect("address")),
            ),
            (
                net("10.244.4.0/24"),
                Some("172.29.1.14".parse().expect("address")),
            ),
        ]);
        assert_eq!(
            plan_routes(&desired, &present),
            RoutePlan {
                replace: vec![
                    (
                        net("10.244.3.0/24"),
                        "172.29.1.99".parse().expect("address")
                    ),
                    (
                        net("10.244.5.0/24"),
                        "172.29.1.15".parse().expect("address")
                    ),
                ],
                delete: vec![net("10.244.4.0/24")],
            }
        );
        assert_eq!(plan_routes(&desired, &BTreeMap::new()).replace.len(), 3);
        assert_eq!(
            plan_routes(&BTreeMap::new(), &present).delete.len(),
            3,
            "cleanup deletes every Skiff route"
        );
    }

    #[test]
    fn ip_json_routes_parse() {
        let out = r#"[{"dst":"10.244.2.0/24","gateway":"172.29.1.12","dev":"eth0","protocol":"147","flags":[]},
                      {"dst":"10.9.9.9","gateway":"172.29.1.13","dev":"eth0","flags":[]},
                      {"dst":"default","gateway":"172.29.1.1","flags":[]}]"#;
        let routes = parse_routes(out).expect("valid");
        assert_eq!(
            routes.into_iter().collect::<Vec<_>>(),
            [
                (
                    net("10.9.9.9/32"),
                    Some("172.29.1.13".parse().expect("address"))
                ),
                (
                    net("10.244.2.0/24"),
                    Some("172.29.1.12".parse().expect("address"))
                ),
            ]
        );
        assert!(parse_routes("").expect("valid").is_empty());
        assert!(parse_routes("[]").expect("valid").is_empty());
        assert!(parse_routes("{").is_err());
    }

    #[test]
    fn the_masquerade_batch_is_nft_json() {
        let json = serde_json::to_value(masquerade_batch(net("10.244.0.0/16")).to_nftables())
            .expect("valid");
        let expected = serde_json::json!({"nftables": [
            {"add": {"table": {"family": "ip", "name": "skiff-node"}}},
            {"add": {"chain": {"family": "ip", "table": "skiff-node", "name": "postrouting",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
            {"flush": {"chain": {"family": "ip", "table": "skiff-node", "name": "postrouting",
                "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}},
            {"add": {"rule": {"family": "ip", "table": "skiff-node", "chain": "postrouting",
                "comment": "skiff: pod traffic leaving the cluster CIDR",
                "expr": [
                    {"match": {"left": {"payload": {"protocol": "ip", "field": "saddr"}},
                        "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}, "op": "=="}},
                    {"match": {"left": {"payload": {"protocol": "ip", "field": "daddr"}},
                        "right": {"prefix": {"addr": "10.244.0.0", "len": 16}}, "op": "!="}},
                    {"masquerade": null}
                ]}}}
        ]});
        assert_eq!(json, expected);
        let remove = serde_json::to_value(remove_table_batch().to_nftables()).expect("json");
        assert_eq!(
            remove,
            serde_json::json!({"nftables": [
                {"add": {"table": {"family": "ip", "name": "skiff-node"}}},
                {"delete": {"table": {"family": "ip", "name": "skiff-node"}}}
            ]})
        );
    }
}
