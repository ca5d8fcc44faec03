//! The Service IP range (`--service-cluster-ip-range`): an IPv4 CIDR whose
//! addresses, without the network and broadcast addresses, are handed to
//! Services; the first is the `kubernetes` Service's.

use std::fmt;
use std::net::Ipv4Addr;

use super::RangeError;
use super::bands::Bands;

/// An IPv4 Service CIDR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    network: u32,
    prefix: u8,
}

impl IpRange {
    /// Parses `10.96.0.0/12`. Host bits must be zero, as upstream's flag
    /// requires, and the range must leave at least two usable addresses.
    pub fn parse(text: &str) -> Result<Self, RangeError> {
        let bad = || RangeError::Cidr(text.to_string());
        let net: ipnet::Ipv4Net = text.trim().parse().map_err(|_| bad())?;
        if !(1..=30).contains(&net.prefix_len()) || net != net.trunc() {
            return Err(bad());
        }
        Ok(Self {
            network: u32::from(net.network()),
            prefix: net.prefix_len(),
        })
    }

    /// Addresses Services can get: the CIDR without its network and
    /// broadcast addresses.
    pub fn usable(&self) -> u64 {
        (1u64 << (32 - self.prefix)) - 2
    }

    /// The static and dynamic bands (KEP-3070: the static band is the
    /// CIDR's size over 16, between 16 and 256 addresses, none for a CIDR
    /// of 16 addresses or fewer).
    pub fn bands(&self) -> Bands {
        Bands::new(self.usable(), 1u64 << (32 - self.prefix), 16, 16, 256)
    }

    /// The address at `offset` of the usable addresses.
    pub fn at(&self, offset: u64) -> Ipv4Addr {
        // Offsets come from `0..usable()`, which fits below 2^32.
        let offset = u32::try_from(offset).unwrap_or(0);
        Ipv4Addr::from(self.network + 1 + offset)
    }

    /// The offset of `ip` among the usable addresses, `None` outside them.
    pub fn offset(&self, ip: Ipv4Addr) -> Option<u64> {
        let ip = u64::from(u32::from(ip));
        let first = u64::from(self.network) + 1;
        (first..first + self.usable())
            .contains(&ip)
            .then(|| ip - first)
    }

    /// The first usable address: the `kubernetes` Service's.
    pub fn first(&self) -> Ipv4Addr {
        self.at(0)
    }

    /// The tenth usable address, the cluster DNS Service's (kubeadm's
    /// convention: `10.96.0.10`); `None` in a range of fewer addresses.
    /// Automatic allocation never hands it out, so it is free for
    /// `kube-dns` whenever cluster DNS is turned on.
    pub fn dns(&self) -> Option<Ipv4Addr> {
        (self.usable() >= 10).then(|| self.at(9))
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

impl Default for IpRange {
    /// 10.96.0.0/12, kubeadm's default.
    fn default() -> Self {
        Self {
            network: u32::from(Ipv4Addr::new(10, 96, 0, 0)),
            prefix: 12,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_range_and_its_first_address() {
        let range = IpRange::parse("10.96.0.0/12").expect("parse");
        assert_eq!(range, IpRange::default());
        assert_eq!(range.to_string(), "10.96.0.0/12");
        assert_eq!(range.first(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(range.dns(), Some(Ipv4Addr::new(10, 96, 0, 10)));
        assert_eq!(IpRange::parse("10.0.0.0/29").expect("parse").dns(), None);
        assert_eq!(range.usable(), (1 << 20) - 2);
        assert_eq!(range.bands().static_size(), 256);
        assert_eq!(
            range.at(range.usable() - 1),
            Ipv4Addr::new(10, 111, 255, 254)
        );
    }

    #[test]
    fn offsets_exclude_network_broadcast_and_outsiders() {
        let range = IpRange::parse("10.0.0.0/24").expect("parse");
        assert_eq!(range.offset(Ipv4Addr::new(10, 0, 0, 0)), None);
        assert_eq!(range.offset(Ipv4Addr::new(10, 0, 0, 1)), Some(0));
        assert_eq!(range.offset(Ipv4Addr::new(10, 0, 0, 254)), Some(253));
        assert_eq!(range.offset(Ipv4Addr::new(10, 0, 0, 255)), None);
        assert_eq!(range.offset(Ipv4Addr::new(1, 1, 1, 1)), None);
        assert_eq!(range.at(16), Ipv4Addr::new(10, 0, 0, 17));
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in [
            "10.96.0.0",
            "10.96.0.1/12",
            "10.96.0.0/33",
            "10.96.0.0/31",
            "x/12",
            "fd00::/108",
        ] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
    }
}
