//! The network of a `skiff up` cluster: each node lives in its own network
//! namespace with its own address on a private bridge, as separate machines
//! would, so one node can be cut off from the control plane (`skiff node
//! partition`) without touching the others.
//!
//! Cluster `n` uses bridge `skiff<n>` with 172.29.<n>.1/24 (the control plane's
//! side) and node `i` gets namespace `skiff<n>-node<i>` at 172.29.<n>.<10+i>.
//! A partition is an nftables set of cut-off node addresses in the cluster's
//! own table `inet skiff<n>`, so healing is removing one element and tearing
//! the cluster down is deleting one table.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The most clusters one machine runs at once.
const MAX_CLUSTERS: u8 = 250;
/// Nodes per cluster: node addresses are .11 to .210.
pub const MAX_NODES: usize = 200;

/// A cluster's share of the machine's network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterNetwork {
    /// The cluster number: it names the bridge, namespaces and table.
    pub id: u8,
    /// The bridge's interface index when this cluster made it: after a
    /// crash the number is only this cluster's while the bridge of that
    /// name is still the one it made (or none is left).
    #[serde(default)]
    pub bridge_ifindex: Option<u32>,
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn nft(script: &str) -> anyhow::Result<()> {
    run("nft", &[script])
}

impl ClusterNetwork {
    /// Claims the first free cluster number by creating its bridge (creation
    /// fails if another cluster holds it, so two `skiff up` never share one),
    /// then the nftables table that partitions use.
    pub fn create() -> anyhow::Result<Self> {
        for id in 1..=MAX_CLUSTERS {
            let mut net = Self {
                id,
                bridge_ifindex: None,
            };
            if run("ip", &["link", "add", &net.bridge(), "type", "bridge"]).is_err() {
                continue;
            }
            net.bridge_ifindex = ifindex(&net.bridge());
            net.configure_bridge()?;
            return Ok(net);
        }
        bail!("no free cluster network: {MAX_CLUSTERS} bridges skiff1.. exist already")
    }

    fn configure_bridge(&self) -> anyhow::Result<()> {
        let bridge = self.bridge();
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", self.gateway()),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        let table = self.table();
        nft(&format!(
            "add table {table}
             add set {table} partitioned {{ type ipv4_addr; }}
             add chain {table} input {{ type filter hook input priority 0; policy accept; }}
             add chain {table} output {{ type filter hook output priority 0; policy accept; }}
             add rule {table} input ip saddr @partitioned drop
             add rule {table} output ip daddr @partitioned drop"
        ))
        .context("creating the nftables table for partitions (apt-get install nftables)")?;
        // Between nodes, traffic is bridged, not routed by the host: a
        // partitioned node's bridge port drops it all, pod traffic included
        // (pods' addresses are not the node's, so the set above misses it).
        let ports = self.ports_table();
        nft(&format!(
            "add table {ports}
             add set {ports} partitioned {{ type ifname; }}
             add chain {ports} forward {{ type filter hook forward priority 0; policy accept; }}
             add rule {ports} forward iifname @partitioned drop
             add rule {ports} forward oifname @partitioned drop"
        ))
        .context("creating the bridge table for partitions")
    }

    fn ports_table(&self) -> String {
        format!("bridge skiff{}", self.id)
    }

    /// The nftables tables the cluster made on the host (`family name`).
    pub fn tables(&self) -> [String; 2] {
        [self.table(), self.ports_table()]
    }

    /// Whether the names of this cluster number are still this cluster's:
    /// its bridge is the one it made, or gone (then no other cluster holds
    /// the number, as claiming it makes the bridge first).
    pub fn owned(&self) -> bool {
        match (ifindex(&self.bridge()), self.bridge_ifindex) {
            (None, _) => true,
            (Some(now), Some(made)) => now == made,
            // Recorded by an older skiff: the number is all there is.
            (Some(_), None) => true,
        }
    }

    /// The node numbers whose namespace exists (a node added but not yet
    /// recorded when `skiff up` died).
    pub fn netns_indexes_present(&self) -> Vec<usize> {
        let prefix = format!("skiff{}-node", self.id);
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_prefix(&prefix)?.parse().ok())
            .filter(|i| (1..=MAX_NODES).contains(i))
            .collect()
    }

    /// Node `i`'s port on the bridge (the host side of its veth).
    pub fn port(&self, i: usize) -> String {
        format!("sk{}n{i}", self.id)
    }

    /// The bridge's name.
    pub fn bridge(&self) -> String {
        format!("skiff{}", self.id)
    }

    fn table(&self) -> String {
        format!("inet skiff{}", self.id)
    }

    /// The control plane's address on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(172, 29, self.id, 1)
    }

    /// The LoadBalancer Services' addresses: `size` (at most 50) from
    /// `.200` of the bridge's /24, clear of the gateway and of the `nodes`
    /// nodes' addresses (`.11` up: past 189 nodes the pool starts above
    /// the last node and ends at `.254`).
    pub fn load_balancer_pool(&self, size: u8, nodes: usize) -> String {
        let after_nodes = u8::try_from(11 + nodes.min(MAX_NODES)).unwrap_or(u8::MAX);
        let first = after_nodes.max(200);
        let last = first.saturating_add(size.clamp(1, 50) - 1).min(254);
        format!("172.29.{0}.{first}-172.29.{0}.{last}", self.id)
    }

    /// Node `i`'s address (1-based).
    pub fn node_ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(172, 29, self.id, 10 + i as u8)
    }

    /// Node `i`'s network namespace name.
    pub fn node_netns(&self, i: usize) -> String {
        format!("skiff{}-node{i}", self.id)
    }

    /// Where node `i`'s namespace is mounted.
    pub fn node_netns_path(&self, i: usize) -> PathBuf {
        PathBuf::from("/run/netns").join(self.node_netns(i))
    }

    /// Makes node `i`'s namespace: a veth into the bridge, its address, loopback.
    pub fn add_node(&self, i: usize) -> anyhow::Result<()> {
        if i == 0 || i > MAX_NODES {
            bail!("node numbers go from 1 to {MAX_NODES}");
        }
        let ns = self.node_netns(i);
        let host_side = self.port(i);
        // Leftovers of a cluster that died with this number: we hold its
        // bridge now, so anything else under its names is stale.
        let _ = run("ip", &["netns", "delete", &ns]);
        let _ = run("ip", &["link", "delete", &host_side]);
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &host_side, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run(
            "ip",
            &["link", "set", &host_side, "master", &self.bridge(), "up"],
        )?;
        let addr = format!("{}/24", self.node_ip(i));
        run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        // As a machine on a LAN has: without a default route the node's
        // own connections to a ClusterIP fail before the service proxy's
        // DNAT (locally made packets are routed first, then translated).
        run(
            "ip",
            &[
                "-n",
                &ns,
                "route",
                "add",
                "default",
                "via",
                &self.gateway().to_string(),
            ],
        )?;
        Ok(())
    }

    /// Cuts node `i` off from the control plane (both directions).
    pub fn partition(&self, i: usize) -> anyhow::Result<()> {
        nft(&format!(
            "add element {} partitioned {{ {} }}
             add element {} partitioned {{ {} }}",
            self.table(),
            self.node_ip(i),
            self.ports_table(),
            self.port(i)
        ))
    }

    /// Undoes [`partition`](Self::partition); healing a connected node succeeds.
    pub fn heal(&self, i: usize) -> anyhow::Result<()> {
        if self.is_partitioned(i) {
            nft(&format!(
                "delete element {} partitioned {{ {} }}
                 delete element {} partitioned {{ {} }}",
                self.table(),
                self.node_ip(i),
                self.ports_table(),
                self.port(i)
            ))?;
        }
        Ok(())
    }

    fn is_partitioned(&self, i: usize) -> bool {
        Command::new("nft")
            .args(["list", "set"])
            .args(self.table().split(' '))
            .arg("partitioned")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).contains(&self.node_ip(i).to_string()))
            .unwrap_or(false)
    }
}

/// The interface index of link `name`, if it exists.
fn ifindex(name: &str) -> Option<u32> {
    std::fs::read_to_string(
        std::path::Path::new("/sys/class/net")
            .join(name)
            .join("ifindex"),
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

/// Runs `command` inside the network namespace at `netns` (only the network:
/// the mount namespace stays the machine's, so the namespaces the node makes
/// for its pods are visible to containerd).
pub fn enter_netns(command: &mut Command, netns: PathBuf) -> anyhow::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    let file = std::fs::File::open(&netns)
        .with_context(|| format!("opening network namespace {}", netns.display()))?;
    // SAFETY: setns is async-signal-safe; the closure only makes that one
    // system call on a descriptor that stays open (the closure owns `file`).
    unsafe {
        command.pre_exec(move || {
            if libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_load_balancer_pool_stays_clear_of_the_nodes() {
        let net = ClusterNetwork {
            id: 3,
            bridge_ifindex: None,
        };
        assert_eq!(net.load_balancer_pool(50, 3), "172.29.3.200-172.29.3.249");
        assert_eq!(net.load_balancer_pool(2, 3), "172.29.3.200-172.29.3.201");
        // 195 nodes end at .205: the pool starts after them, up to .254.
        assert_eq!(net.load_balancer_pool(50, 195), "172.29.3.206-172.29.3.254");
        assert_eq!(
            net.load_balancer_pool(50, MAX_NODES),
            "172.29.3.211-172.29.3.254"
        );
    }
}
