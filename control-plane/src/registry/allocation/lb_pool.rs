//! The LoadBalancer address pool (`--load-balancer-pool`): the addresses
//! the LoadBalancer controller hands to `type: LoadBalancer` Services, on a
//! network without a cloud provider (MetalLB's address pool). No pool, the
//! default, leaves such Services `<pending>`, as upstream without a cloud
//! provider does.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::OnceLock;

/// The most addresses a pool may hold: the allocator scans it linearly,
/// and a lab network never needs more.
pub const MAX_POOL: u32 = 1 << 16;

/// A `--load-balancer-pool` value that does not make sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// Neither `first-last` nor an IPv4 CIDR.
    #[error(
        "invalid load balancer pool {0:?}: want a range such as 172.29.1.200-172.29.1.249 or a CIDR such as 172.29.1.192/26"
    )]
    Syntax(String),
    /// The last address is below the first.
    #[error("invalid load balancer pool {0:?}: the last address is below the first")]
    Reversed(String),
    /// More than [`MAX_POOL`] addresses.
    #[error("load balancer pool {0:?} is too large: at most {MAX_POOL} addresses")]
    TooLarge(String),
}

/// An inclusive range of IPv4 addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LbPool {
    first: u32,
    last: u32,
}

impl LbPool {
    /// Parses `172.29.1.200-172.29.1.249` or `172.29.1.192/26` (every
    /// address of the CIDR, as MetalLB's pools do).
    pub fn parse(text: &str) -> Result<Self, PoolError> {
        let bad = || PoolError::Syntax(text.to_string());
        let t = text.trim();
        let (first, last) = if let Some((a, b)) = t.split_once('-') {
            let a: Ipv4Addr = a.trim().parse().map_err(|_| bad())?;
            let b: Ipv4Addr = b.trim().parse().map_err(|_| bad())?;
            (u32::from(a), u32::from(b))
        } else if t.contains('/') {
            let net: ipnet::Ipv4Net = t.parse().map_err(|_| bad())?;
            (u32::from(net.network()), u32::from(net.broadcast()))
        } else {
            let a: Ipv4Addr = t.parse().map_err(|_| bad())?;
            (u32::from(a), u32::from(a))
        };
        if last < first {
            return Err(PoolError::Reversed(text.to_string()));
        }
        if last - first >= MAX_POOL {
            return Err(PoolError::TooLarge(text.to_string()));
        }
        Ok(Self { first, last })
    }

    /// Whether `ip` is one of the pool's.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        (self.first..=self.last).contains(&u32::from(ip))
    }

    /// The pool's addresses, lowest first.
    pub fn addresses(&self) -> impl Iterator<Item = Ipv4Addr> + use<> {
        (self.first..=self.last).map(Ipv4Addr::from)
    }
}

impl fmt::Display for LbPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}-{}",
            Ipv4Addr::from(self.first),
            Ipv4Addr::from(self.last)
        )
    }
}

static POOL: OnceLock<Option<LbPool>> = OnceLock::new();

/// Sets the process's pool (once, at start-up, from the flags).
pub fn set_load_balancer_pool(pool: Option<LbPool>) {
    let _ = POOL.set(pool);
}

/// The process's pool, if one was given.
pub fn load_balancer_pool() -> Option<LbPool> {
    POOL.get().copied().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cidrs_and_single_addresses_parse() {
        let r = LbPool::parse("172.29.1.200-172.29.1.249").expect("range");
        assert_eq!(r.addresses().count(), 50);
        assert!(r.contains(Ipv4Addr::new(172, 29, 1, 249)));
        assert!(!r.contains(Ipv4Addr::new(172, 29, 1, 250)));
        assert_eq!(r.to_string(), "172.29.1.200-172.29.1.249");
        let c = LbPool::parse("172.29.1.192/30").expect("cidr");
        assert_eq!(c.to_string(), "172.29.1.192-172.29.1.195");
        let one = LbPool::parse("10.0.0.7").expect("one");
        assert_eq!(
            one.addresses().collect::<Vec<_>>(),
            [Ipv4Addr::new(10, 0, 0, 7)]
        );
    }

    #[test]
    fn nonsense_is_refused() {
        assert!(matches!(LbPool::parse("x"), Err(PoolError::Syntax(_))));
        assert!(matches!(
            LbPool::parse("10.0.0.0/33"),
            Err(PoolError::Syntax(_))
        ));
        assert!(matches!(
            LbPool::parse("10.0.0.9-10.0.0.1"),
            Err(PoolError::Reversed(_))
        ));
        assert!(matches!(
            LbPool::parse("10.0.0.0/8"),
            Err(PoolError::TooLarge(_))
        ));
    }
}
