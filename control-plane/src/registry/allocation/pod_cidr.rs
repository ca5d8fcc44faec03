//! The pod network (`--cluster-cidr`, `--node-cidr-mask-size`): one IPv4
//! CIDR cut into equal per-node subnets, as upstream's node IPAM range
//! allocator does. A node's subnet is written to its `spec.podCIDR`, so the
//! Node objects themselves are the record of what is taken: nothing else
//! to persist, and deleting a Node frees its subnet.

use std::collections::HashSet;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

/// A cluster CIDR flag pair that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterCidrError {
    /// Not an IPv4 CIDR with a zero host part.
    #[error("invalid cluster CIDR {0:?}: want an IPv4 network such as 10.244.0.0/16")]
    Cidr(String),
    /// The node mask does not fit inside the cluster CIDR.
    #[error(
        "invalid node CIDR mask size {mask} for cluster CIDR {cidr}: want a size between {min} and 30"
    )]
    Mask {
        /// The cluster CIDR.
        cidr: String,
        /// The asked-for size.
        mask: u8,
        /// The cluster CIDR's own prefix length.
        min: u8,
    },
}

/// The pod network and how it is split per node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterCidr {
    network: u32,
    prefix: u8,
    node_prefix: u8,
}

impl Default for ClusterCidr {
    /// Upstream's usual `10.244.0.0/16` (kubeadm with flannel) with a /24
    /// per node (kube-controller-manager's default mask size).
    fn default() -> Self {
        Self {
            network: u32::from(Ipv4Addr::new(10, 244, 0, 0)),
            prefix: 16,
            node_prefix: 24,
        }
    }
}

/// An IPv4 CIDR with a zero host part, as `(network, prefix length)`.
fn parse_cidr(text: &str) -> Option<(u32, u8)> {
    let net: ipnet::Ipv4Net = text.trim().parse().ok()?;
    (net == net.trunc() && net.prefix_len() > 0)
        .then(|| (u32::from(net.network()), net.prefix_len()))
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

impl ClusterCidr {
    /// Parses `10.244.0.0/16` with a per-node prefix length of `node_mask`.
    pub fn parse(cidr: &str, node_mask: u8) -> Result<Self, ClusterCidrError> {
        let (network, prefix) =
            parse_cidr(cidr).ok_or_else(|| ClusterCidrError::Cidr(cidr.to_string()))?;
        // Upstream caps the split at 2^16 subnets; so does this, which keeps
        // a subnet index in a u16-sized search.
        if node_mask < prefix || node_mask > 30 || node_mask - prefix > 16 {
            return Err(ClusterCidrError::Mask {
                cidr: cidr.to_string(),
                mask: node_mask,
                min: prefix,
            });
        }
        Ok(Self {
            network,
            prefix,
            node_prefix: node_mask,
        })
    }

    /// How many nodes can have a subnet.
    pub fn subnets(&self) -> u32 {
        1 << (self.node_prefix - self.prefix)
    }

    /// The `index`th node subnet, as `a.b.c.d/n`.
    pub fn subnet(&self, index: u32) -> String {
        let base = self.network + (index << (32 - self.node_prefix));
        format!("{}/{}", Ipv4Addr::from(base), self.node_prefix)
    }

    /// Which node subnet `cidr` is, if it is exactly one of them.
    pub fn index_of(&self, cidr: &str) -> Option<u32> {
        let (network, prefix) = parse_cidr(cidr)?;
        if prefix != self.node_prefix || network & mask(self.prefix) != self.network {
            return None;
        }
        Some((network - self.network) >> (32 - self.node_prefix))
    }

    /// The lowest subnet not in `taken`, as upstream's allocator hands
    /// them out; `None` when every one is taken.
    pub fn first_free(&self, taken: &HashSet<u32>) -> Option<u32> {
        (0..self.subnets()).find(|i| !taken.contains(i))
    }
}

impl fmt::Display for ClusterCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

static CLUSTER_CIDR: OnceLock<ClusterCidr> = OnceLock::new();

/// Sets the process's pod network (once, at start-up, from the flags).
pub fn set_cluster_cidr(cidr: ClusterCidr) {
    let _ = CLUSTER_CIDR.set(cidr);
}

/// The process's pod network: the flags', or the default.
pub fn cluster_cidr() -> ClusterCidr {
    CLUSTER_CIDR.get().copied().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_a_slash_24_per_node_of_10_244() {
        let c = ClusterCidr::default();
        assert_eq!(c.to_string(), "10.244.0.0/16");
        assert_eq!(c.subnets(), 256);
        assert_eq!(c.subnet(0), "10.244.0.0/24");
        assert_eq!(c.subnet(255), "10.244.255.0/24");
        assert_eq!(c.index_of("10.244.7.0/24"), Some(7));
    }

    #[test]
    fn foreign_or_misaligned_subnets_are_not_ours() {
        let c = ClusterCidr::default();
        assert_eq!(c.index_of("10.245.1.0/24"), None);
        assert_eq!(c.index_of("10.244.1.0/25"), None);
        assert_eq!(c.index_of("10.244.1.1/24"), None);
        assert_eq!(c.index_of("nonsense"), None);
    }

    #[test]
    fn lowest_free_subnet_is_handed_out() {
        let c = ClusterCidr::parse("10.0.0.0/29", 30).expect("parse");
        assert_eq!(c.subnets(), 2);
        let mut taken = HashSet::new();
        assert_eq!(c.first_free(&taken), Some(0));
        taken.insert(0);
        assert_eq!(c.first_free(&taken), Some(1));
        taken.insert(1);
        assert_eq!(c.first_free(&taken), None);
        taken.remove(&0);
        assert_eq!(c.first_free(&taken), Some(0));
    }

    #[test]
    fn bad_flags_are_refused() {
        assert!(matches!(
            ClusterCidr::parse("10.244.0.1/16", 24),
            Err(ClusterCidrError::Cidr(_))
        ));
        assert!(matches!(
            ClusterCidr::parse("10.244.0.0/16", 8),
            Err(ClusterCidrError::Mask { .. })
        ));
        assert!(matches!(
            ClusterCidr::parse("10.0.0.0/8", 28),
            Err(ClusterCidrError::Mask { .. })
        ));
        assert!(ClusterCidr::parse("10.0.0.0/8", 24).is_ok());
    }
}
