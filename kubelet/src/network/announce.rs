//! Announces the LoadBalancer addresses this node owns on the lab network,
//! MetalLB's L2 mode without its memberlist: every node computes, for each
//! address in `status.loadBalancer.ingress` of the cluster's Services, the
//! owner among itself and its Ready peers — the node with the smallest
//! SHA-256 of (node name, address) — so all nodes agree without talking to
//! each other, and an address moves only when its owner goes or comes.
//!
//! The owner puts the address on the interface that carries its node IP
//! (`/32`, so the kernel answers ARP for it and nothing routes differently)
//! and sends gratuitous ARP (`arping -U`, Debian's `iputils-arping`), so
//! the neighbours' caches point at it at once after a failover. Traffic to
//! the address is then DNATed by the node's service proxy like a NodePort's.
//! Only addresses this announcer added are ever removed: they are recorded
//! in a state file, so a restarted kubelet still knows them.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

use super::{NetworkError, NodeNetwork, NodeNetworkRx, run_in_node};
use crate::services::ServiceCache;

/// How often the addresses are checked even if nothing changed (someone
/// removed one by hand, a missed change).
pub const RESYNC: Duration = Duration::from_secs(30);

/// The state file's name under the kubelet's state directory.
pub const STATE_FILE: &str = "loadbalancer-addresses.json";

/// The owner's score for `ip`: the smaller, the likelier the owner. A
/// cryptographic hash only for its stability across builds and machines
/// (`DefaultHasher` is neither) and its spread.
fn score(node: &str, ip: Ipv4Addr) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(node.as_bytes());
    // A separator, so ("node1", "0.…") and ("node10", "…") cannot collide.
    hash.update([0u8]);
    hash.update(ip.octets());
    hash.finalize().into()
}

/// The node among `candidates` that announces `ip` (ties, which would take
/// a SHA-256 collision, go to the smaller name).
pub fn owner<'a>(ip: Ipv4Addr, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .min_by(|a, b| score(a, ip).cmp(&score(b, ip)).then(a.cmp(b)))
}

/// Which nodes may announce a LoadBalancer address: any node, or (for
/// `externalTrafficPolicy: Local`, as MetalLB does) only the nodes with a
/// ready endpoint of the Service, since the proxy there drops external
/// traffic rather than send it to another node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eligible {
    AnyNode,
    Nodes(BTreeSet<String>),
}

impl Eligible {
    fn admits(&self, node: &str) -> bool {
        match self {
            Eligible::AnyNode => true,
            Eligible::Nodes(nodes) => nodes.contains(node),
        }
    }

    /// Two Services sharing an address: a node either may announce for.
    fn merge(&mut self, other: Eligible) {
        match (&mut *self, other) {
            (Eligible::AnyNode, _) => {}
            (_, Eligible::AnyNode) => *self = Eligible::AnyNode,
            (Eligible::Nodes(a), Eligible::Nodes(b)) => a.extend(b),
        }
    }
}

/// Nodes with a ready endpoint of Service `namespace/name`.
fn nodes_with_ready_endpoints(
    cache: &ServiceCache,
    namespace: &str,
    name: &str,
) -> BTreeSet<String> {
    cache
        .slices_of(namespace, name)
        .flat_map(|slice| slice.endpoints.iter())
        .filter(|ep| ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|ep| ep.node_name.clone())
        .collect()
}

/// Every IPv4 address in the Services' `status.loadBalancer.ingress`, with
/// the nodes that may announce it.
pub fn load_balancer_ips(services: &ServiceCache) -> BTreeMap<Ipv4Addr, Eligible> {
    let mut out: BTreeMap<Ipv4Addr, Eligible> = BTreeMap::new();
    for service in services.services() {
        let Some(ingress) = service
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
        else {
            continue;
        };
        let local = service
            .spec
            .as_ref()
            .and_then(|s| s.external_traffic_policy.as_deref())
            == Some("Local");
        let eligible = if local {
            Eligible::Nodes(nodes_with_ready_endpoints(
                services,
                service.metadata.namespace.as_deref().unwrap_or("default"),
                service.metadata.name.as_deref().unwrap_or_default(),
            ))
        } else {
            Eligible::AnyNode
        };
        for ip in ingress.iter().filter_map(|i| i.ip.as_deref()?.parse().ok()) {
            match out.get_mut(&ip) {
                Some(e) => e.merge(eligible.clone()),
                None => {
                    out.insert(ip, eligible.clone());
                }
            }
        }
    }
    out
}

/// The addresses of `ips` node `me` announces: those it owns among itself
/// and the Ready peers of `network` that the address admits. A node always
/// counts itself as up: it is running, and the control plane's view of it
/// may be stale.
pub fn owned(
    me: &str,
    network: &NodeNetwork,
    ips: &BTreeMap<Ipv4Addr, Eligible>,
) -> BTreeSet<Ipv4Addr> {
    let up: Vec<&str> = std::iter::once(me)
        .chain(
            network
                .peers
                .iter()
                .filter(|p| p.ready)
                .map(|p| p.node.as_str()),
        )
        .collect();
    ips.iter()
        .filter(|(ip, eligible)| {
            let candidates = up.iter().copied().filter(|n| eligible.admits(n));
            owner(**ip, candidates) == Some(me)
        })
        .map(|(ip, _)| *ip)
        .collect()
}

/// What decides who announces, apart from the addresses: the Ready peers
/// and how many times the node has (re)connected to the control plane.
/// When it moves, every owned address is announced again — a node coming
/// back from a partition still holds its addresses, but its neighbours'
/// caches point at the node that stood in for it.
fn view(network: &NodeNetwork, services: &ServiceCache) -> (u64, BTreeSet<String>) {
    let ready = network
        .peers
        .iter()
        .filter(|p| p.ready)
        .map(|p| p.node.clone())
        .collect();
    (services.resets(), ready)
}

/// What the announcer does to the node's network; the real one runs `ip`
/// and `arping`, tests use a fake.
pub trait Link: Send + Sync {
    /// The interface carrying the node IP, and its IPv4 addresses.
    fn addresses(
        &self,
    ) -> impl Future<Output = Result<(String, BTreeSet<Ipv4Addr>), NetworkError>> + Send;
    /// Adds `ip/32` to `interface`.
    fn add(
        &self,
        interface: &str,
        ip: Ipv4Addr,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Removes `ip/32` from `interface`.
    fn remove(
        &self,
        interface: &str,
        ip: Ipv4Addr,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
    /// Tells the neighbours that `ip` is at `interface`'s MAC now.
    fn gratuitous_arp(
        &self,
        interface: &str,
        ip: Ipv4Addr,
    ) -> impl Future<Output = Result<(), NetworkError>> + Send;
}

/// The node's own network, through `ip` and `arping` in its namespace.
#[derive(Debug, Clone)]
pub struct IpLink {
    node_ip: Ipv4Addr,
    netns: Option<PathBuf>,
}

impl IpLink {
    /// Works on the interface that carries `node_ip`, in the current
    /// namespace (a `skiff up` kubelet runs in its node's).
    pub fn new(node_ip: Ipv4Addr) -> Self {
        Self {
            node_ip,
            netns: None,
        }
    }
}

/// Interface names and addresses of `ip -4 -o addr show` lines such as
/// `2: eth0    inet 172.29.1.11/24 brd 172.29.1.255 scope global eth0\ ...`.
fn parse_addresses(out: &str) -> Vec<(String, Ipv4Addr)> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let interface = words.nth(1)?.split('@').next()?.to_string();
            if words.next()? != "inet" {
                return None;
            }
            let ip = words.next()?.split('/').next()?.parse().ok()?;
            Some((interface, ip))
        })
        .collect()
}

impl Link for IpLink {
    async fn addresses(&self) -> Result<(String, BTreeSet<Ipv4Addr>), NetworkError> {
        let out = run_in_node(self.netns.as_deref(), "ip", &["-4", "-o", "addr", "show"]).await?;
        let all = parse_addresses(&out);
        let interface = all
            .iter()
            .find(|(_, ip)| *ip == self.node_ip)
            .map(|(i, _)| i.clone())
            .ok_or_else(|| NetworkError::Invalid {
                what: "node IP (no interface carries it)",
                value: self.node_ip.to_string(),
            })?;
        let on_it = all
            .into_iter()
            .filter(|(i, _)| *i == interface)
            .map(|(_, ip)| ip)
            .collect();
        Ok((interface, on_it))
    }

    async fn add(&self, interface: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let addr = format!("{ip}/32");
        run_in_node(
            self.netns.as_deref(),
            "ip",
            &["addr", "add", &addr, "dev", interface],
        )
        .await
        .map(drop)
    }

    async fn remove(&self, interface: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let addr = format!("{ip}/32");
        match run_in_node(
            self.netns.as_deref(),
            "ip",
            &["addr", "del", &addr, "dev", interface],
        )
        .await
        {
            // Already gone (removed by hand, or the node's network was reset).
            Err(NetworkError::Command { detail, .. })
                if detail.contains("Cannot assign requested address") =>
            {
                Ok(())
            }
            other => other.map(drop),
        }
    }

    async fn gratuitous_arp(&self, interface: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
        let ip = ip.to_string();
        // Two, a second apart, as MetalLB's first burst; `-U` sends
        // unsolicited replies with the address as source and target.
        run_in_node(
            self.netns.as_deref(),
            "arping",
            &["-U", "-c", "2", "-I", interface, &ip],
        )
        .await
        .map(drop)
    }
}

/// The announcer's memory: the addresses it added (persisted) and those it
/// has sent gratuitous ARP for since it started.
#[derive(Debug)]
pub struct Announcer<L> {
    node_name: String,
    link: L,
    state_file: PathBuf,
    added: BTreeSet<Ipv4Addr>,
    announced: BTreeSet<Ipv4Addr>,
}

fn load_state(path: &Path) -> BTreeSet<Ipv4Addr> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            warn!(path = %path.display(), error = %e, "unreadable announcer state, starting empty");
            BTreeSet::new()
        }),
        Err(_) => BTreeSet::new(),
    }
}

impl<L: Link> Announcer<L> {
    /// An announcer for node `node_name`, recording what it adds in
    /// `state_dir`.
    pub fn new(node_name: impl Into<String>, link: L, state_dir: &Path) -> Self {
        let state_file = state_dir.join(STATE_FILE);
        let added = load_state(&state_file);
        Self {
            node_name: node_name.into(),
            link,
            state_file,
            added,
            announced: BTreeSet::new(),
        }
    }

    /// The addresses this announcer added and has not removed.
    pub fn added(&self) -> &BTreeSet<Ipv4Addr> {
        &self.added
    }

    fn save(&self) {
        let write = serde_json::to_vec(&self.added)
            .map_err(std::io::Error::other)
            .and_then(|bytes| {
                let tmp = self.state_file.with_extension("tmp");
                std::fs::write(&tmp, bytes)?;
                std::fs::rename(&tmp, &self.state_file)
            });
        if let Err(e) = write {
            warn!(path = %self.state_file.display(), error = %e, "cannot record the announced addresses");
        }
    }

    /// Makes the node hold exactly the addresses of `owned` it should
    /// (adding, announcing, removing what it added and no longer owns).
    /// Every step is tried; the first error is returned.
    pub async fn sync(&mut self, owned: &BTreeSet<Ipv4Addr>) -> Result<(), NetworkError> {
        let (interface, present) = self.link.addresses().await?;
        let mut first_error = None;
        for ip in owned {
            if !present.contains(ip) {
                if let Err(e) = self.link.add(&interface, *ip).await {
                    first_error.get_or_insert(e);
                    continue;
                }
                info!(ip = %ip, interface = %interface, "announcing load balancer address");
                self.announced.remove(ip);
            }
            self.added.insert(*ip);
            if !self.announced.contains(ip) {
                match self.link.gratuitous_arp(&interface, *ip).await {
                    Ok(()) => {
                        self.announced.insert(*ip);
                    }
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        let stale: Vec<Ipv4Addr> = self.added.difference(owned).copied().collect();
        for ip in stale {
            if present.contains(&ip) {
                if let Err(e) = self.link.remove(&interface, ip).await {
                    first_error.get_or_insert(e);
                    continue;
                }
                info!(ip = %ip, interface = %interface, "no longer announcing load balancer address");
            }
            self.added.remove(&ip);
            self.announced.remove(&ip);
        }
        self.save();
        first_error.map_or(Ok(()), Err)
    }

    /// Follows `network` and `services` until either sender goes away:
    /// recomputes what the node owns on every change, and every
    /// [`RESYNC`] syncs it even if nothing changed.
    pub async fn run(
        mut self,
        mut network: NodeNetworkRx,
        mut services: watch::Receiver<ServiceCache>,
    ) {
        let span = info_span!("announcer", node = %self.node_name);
        async move {
            let mut last: Option<BTreeSet<Ipv4Addr>> = None;
            let mut last_view = None;
            let mut resync = tokio::time::interval(RESYNC);
            resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut due = true;
            loop {
                let net = network.borrow_and_update().clone();
                let owned = {
                    let cache = services.borrow_and_update();
                    // Until the first full set and the peers are known,
                    // what this node owns is unknown: touch nothing (a
                    // restarted kubelet would drop every address).
                    net.filter(|_| cache.synced()).map(|net| {
                        let now = view(&net, &cache);
                        if last_view.as_ref() != Some(&now) {
                            self.announced.clear();
                            due = true;
                            last_view = Some(now);
                        }
                        owned(&self.node_name, &net, &load_balancer_ips(&cache))
                    })
                };
                if let Some(owned) = owned
                    && (due || last.as_ref() != Some(&owned))
                {
                    debug!(owned = owned.len(), "syncing load balancer addresses");
                    match self.sync(&owned).await {
                        Ok(()) => last = Some(owned),
                        Err(e) => {
                            warn!(error = %e, "cannot announce load balancer addresses");
                            last = None;
                        }
                    }
                }
                due = false;
                tokio::select! {
                    changed = network.changed() => if changed.is_err() { return },
                    changed = services.changed() => if changed.is_err() { return },
                    _ = resync.tick() => due = true,
                }
            }
        }
        .instrument(span)
        .await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use skiff_proto::node::v1 as pb;

    use super::*;
    use crate::network::Peer;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 29, 1, last)
    }

    fn net(peers: &[(&str, bool)]) -> NodeNetwork {
        NodeNetwork {
            pod_cidr: "10.244.0.0/24".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            peers: peers
                .iter()
                .enumerate()
                .map(|(i, (n, ready))| Peer {
                    node: (*n).into(),
                    pod_cidr: format!("10.244.{}.0/24", i + 1),
                    address: format!("172.29.1.{}", 12 + i),
                    ready: *ready,
                })
                .collect(),
        }
    }

    #[test]
    fn every_node_picks_the_same_owner() {
        let nodes = ["node1", "node2", "node3"];
        for last in 200..250 {
            let a = owner(ip(last), nodes);
            let b = owner(ip(last), ["node3", "node1", "node2"]);
            assert_eq!(a, b, "order must not matter");
            assert!(a.is_some());
        }
        // Spread: fifty addresses over three nodes do not all land on one.
        let owners: BTreeSet<&str> = (200..250).filter_map(|l| owner(ip(l), nodes)).collect();
        assert!(owners.len() > 1, "{owners:?}");
        // Stable across builds: a fixed value.
        assert_eq!(owner(ip(200), nodes), owner(ip(200), nodes));
    }

    fn any(ips: &BTreeSet<Ipv4Addr>) -> BTreeMap<Ipv4Addr, Eligible> {
        ips.iter().map(|ip| (*ip, Eligible::AnyNode)).collect()
    }

    #[test]
    fn an_unready_owner_hands_its_addresses_to_another() {
        let set: BTreeSet<Ipv4Addr> = (200..210).map(ip).collect();
        let ips = &any(&set);
        let all = [("node2", true), ("node3", true)];
        let mine = owned("node1", &net(&all), ips);
        let theirs2 = owned("node2", &net(&[("node1", true), ("node3", true)]), ips);
        let theirs3 = owned("node3", &net(&[("node1", true), ("node2", true)]), ips);
        // A partition of the addresses: each exactly once.
        assert!(
            mine.is_disjoint(&theirs2)
                && mine.is_disjoint(&theirs3)
                && theirs2.is_disjoint(&theirs3)
        );
        assert_eq!(mine.len() + theirs2.len() + theirs3.len(), set.len());
        // node2 goes unready: node1 and node3 share its addresses, and
        // nothing else moves.
        let mine_after = owned("node1", &net(&[("node2", false), ("node3", true)]), ips);
        let theirs3_after = owned("node3", &net(&[("node1", true), ("node2", false)]), ips);
        assert!(mine.is_subset(&mine_after));
        assert!(theirs3.is_subset(&theirs3_after));
        let union: BTreeSet<Ipv4Addr> = mine_after.union(&theirs3_after).copied().collect();
        assert_eq!(union, set);
        assert!(mine_after.is_disjoint(&theirs3_after));
        // Alone, a node owns everything.
        assert_eq!(owned("node1", &net(&[]), ips), set);
    }

    #[test]
    fn external_traffic_policy_local_is_announced_only_where_an_endpoint_is_ready() {
        let lb = |name: &str, ip: &str, policy: &str| {
            serde_json::to_vec(
                &serde_json::json!({"metadata": {"name": name, "namespace": "default"},
                "spec": {"type": "LoadBalancer", "externalTrafficPolicy": policy},
                "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}),
            )
            .expect("json")
        };
        let slice = serde_json::json!({"metadata": {"name": "local-1", "namespace": "default",
            "labels": {"kubernetes.io/service-name": "local"}}, "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.244.2.5"], "nodeName": "node2", "conditions": {"ready": true}},
                {"addresses": ["10.244.3.5"], "nodeName": "node3", "conditions": {"ready": false}}]});
        let mut cache = ServiceCache::default();
        cache.apply(&pb::ServiceUpdate {
            reset: true,
            services: vec![
                lb("local", "172.29.1.200", "Local"),
                lb("cluster", "172.29.1.201", "Cluster"),
            ],
            endpoint_slices: vec![serde_json::to_vec(&slice).expect("json")],
            ..Default::default()
        });
        let ips = load_balancer_ips(&cache);
        assert_eq!(
            ips[&ip(200)],
            Eligible::Nodes(BTreeSet::from(["node2".to_string()]))
        );
        assert_eq!(ips[&ip(201)], Eligible::AnyNode);
        // Only node2 has a ready endpoint: it announces the Local address
        // whatever the hash says, the others never do.
        let peers = |me: &str| {
            let others: Vec<(&str, bool)> = ["node1", "node2", "node3"]
                .into_iter()
                .filter(|n| *n != me)
                .map(|n| (n, true))
                .collect();
            net(&others)
        };
        assert!(owned("node2", &peers("node2"), &ips).contains(&ip(200)));
        assert!(!owned("node1", &peers("node1"), &ips).contains(&ip(200)));
        assert!(!owned("node3", &peers("node3"), &ips).contains(&ip(200)));
        // node2 unready: nobody may announce it (MetalLB leaves it dark too).
        let without2 = net(&[("node2", false), ("node3", true)]);
        assert!(!owned("node1", &without2, &ips).contains(&ip(200)));
    }

    #[test]
    fn ingress_ips_are_read_from_the_services() {
        let svc = serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.29.1.200", "ipMode": "VIP"}, {"hostname": "x"}]}}});
        let mut cache = ServiceCache::default();
        cache.apply(&pb::ServiceUpdate {
            reset: true,
            services: vec![serde_json::to_vec(&svc).expect("json")],
            ..Default::default()
        });
        assert_eq!(
            load_balancer_ips(&cache),
            BTreeMap::from([(ip(200), Eligible::AnyNode)])
        );
    }

    #[test]
    fn ip_output_is_parsed() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                   2: eth0    inet 172.29.1.11/24 brd 172.29.1.255 scope global eth0\\       valid_lft forever\n\
                   2: eth0    inet 172.29.1.200/32 scope global eth0\\       valid_lft forever\n";
        assert_eq!(
            parse_addresses(out),
            [
                ("lo".to_string(), Ipv4Addr::new(127, 0, 0, 1)),
                ("eth0".to_string(), ip(11)),
                ("eth0".to_string(), ip(200)),
            ]
        );
    }

    #[derive(Default, Clone)]
    struct Fake {
        present: Arc<Mutex<BTreeSet<Ipv4Addr>>>,
        arps: Arc<Mutex<Vec<Ipv4Addr>>>,
    }

    impl Link for Fake {
        async fn addresses(&self) -> Result<(String, BTreeSet<Ipv4Addr>), NetworkError> {
            Ok(("eth0".into(), self.present.lock().expect("lock").clone()))
        }
        async fn add(&self, _: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
            self.present.lock().expect("lock").insert(ip);
            Ok(())
        }
        async fn remove(&self, _: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
            self.present.lock().expect("lock").remove(&ip);
            Ok(())
        }
        async fn gratuitous_arp(&self, _: &str, ip: Ipv4Addr) -> Result<(), NetworkError> {
            self.arps.lock().expect("lock").push(ip);
            Ok(())
        }
    }

    #[tokio::test]
    async fn only_added_addresses_are_removed_and_new_ones_are_announced() {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = Fake::default();
        // The node IP and an address someone else put there.
        fake.present.lock().expect("lock").extend([ip(11), ip(99)]);
        let mut a = Announcer::new("node1", fake.clone(), dir.path());
        a.sync(&BTreeSet::from([ip(200), ip(201)]))
            .await
            .expect("sync");
        assert_eq!(
            *fake.present.lock().expect("lock"),
            BTreeSet::from([ip(11), ip(99), ip(200), ip(201)])
        );
        assert_eq!(*fake.arps.lock().expect("lock"), [ip(200), ip(201)]);
        // Nothing new: no second announcement.
        a.sync(&BTreeSet::from([ip(200), ip(201)]))
            .await
            .expect("again");
        assert_eq!(fake.arps.lock().expect("lock").len(), 2);
        // A restarted kubelet remembers what it added.
        let mut b = Announcer::new("node1", fake.clone(), dir.path());
        assert_eq!(*b.added(), BTreeSet::from([ip(200), ip(201)]));
        b.sync(&BTreeSet::from([ip(201)])).await.expect("moved");
        assert_eq!(
            *fake.present.lock().expect("lock"),
            BTreeSet::from([ip(11), ip(99), ip(201)])
        );
        b.sync(&BTreeSet::new()).await.expect("none");
        assert_eq!(
            *fake.present.lock().expect("lock"),
            BTreeSet::from([ip(11), ip(99)])
        );
    }

    #[tokio::test]
    async fn a_reconnection_or_a_peer_change_announces_owned_addresses_again() {
        let dir = tempfile::tempdir().expect("tmp");
        let fake = Fake::default();
        fake.present.lock().expect("lock").insert(ip(11));
        let svc = serde_json::json!({"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "172.29.1.200"}]}}});
        let full_set = || pb::ServiceUpdate {
            reset: true,
            services: vec![serde_json::to_vec(&svc).expect("json")],
            ..Default::default()
        };
        let mut cache = ServiceCache::default();
        cache.apply(&full_set());
        let (services_tx, services) = watch::channel(cache);
        // Alone, node1 owns the address.
        let (network_tx, network) = watch::channel(Some(net(&[])));
        let announcer = Announcer::new("node1", fake.clone(), dir.path());
        let task = tokio::spawn(announcer.run(network, services));
        let arps = || fake.arps.lock().expect("lock").len();
        let wait_for = |n: usize| async move {
            for _ in 0..100 {
                if arps() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        wait_for(1).await;
        assert_eq!(arps(), 1, "announced once");
        // The same full set again: a reconnection after a partition.
        services_tx.send_modify(|c| c.apply(&full_set()));
        wait_for(2).await;
        assert_eq!(arps(), 2, "announced again after reconnecting");
        // A Ready peer appears that does not win the address.
        let peer = (2..20)
            .map(|i| format!("node{i}"))
            .find(|p| owner(ip(200), ["node1", p.as_str()]) == Some("node1"))
            .expect("some peer loses");
        network_tx.send_replace(Some(net(&[(peer.as_str(), true)])));
        wait_for(3).await;
        assert_eq!(arps(), 3, "announced again when the peers changed");
        task.abort();
    }
}
