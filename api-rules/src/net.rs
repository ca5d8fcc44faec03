//! IP addresses and CIDRs as upstream judges them in Node and Endpoints
//! fields: syntax, family, and the ranges an endpoint may not point into.

use std::net::IpAddr;

use crate::metadata::go_quote;

/// Upstream's message for something that is not an IP address.
pub const NOT_AN_IP: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";
/// Upstream's message for something that is not a CIDR.
pub const NOT_A_CIDR: &str = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)";

/// Parses an address; an IPv4-mapped IPv6 address counts as IPv4, as Go's
/// `net.IP` treats it.
pub fn parse_ip(value: &str) -> Option<IpAddr> {
    let ip: IpAddr = value.parse().ok()?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

/// Parses `address/prefix` (host bits may be set, as upstream allows).
pub fn parse_cidr(value: &str) -> Option<(IpAddr, u8)> {
    let (address, prefix) = value.split_once('/')?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 3 {
        return None;
    }
    let prefix: u8 = prefix.parse().ok()?;
    let ip: IpAddr = address.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (prefix <= max).then_some((ip, prefix))
}

fn invalid(path: &str, value: &str, message: &str) -> String {
    format!("{path}: Invalid value: {}: {message}", go_quote(value))
}

fn is_link_local_multicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.octets()[..3] == [224, 0, 0],
        IpAddr::V6(v6) => v6.octets()[0] == 0xff && v6.octets()[1] & 0x0f == 0x02,
    }
}

fn is_link_local_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Upstream's `ValidateNonSpecialIP`: an endpoint may not be unspecified,
/// loopback or link-local (those mean the node itself, or its metadata
/// service).
pub fn non_special_ip_errors(path: &str, value: &str) -> Vec<String> {
    let Some(ip) = parse_ip(value) else {
        return vec![invalid(path, value, "must be a valid IP address")];
    };
    let mut errors = Vec::new();
    if ip.is_unspecified() {
        errors.push(invalid(
            path,
            value,
            &format!("may not be unspecified ({value})"),
        ));
    }
    if ip.is_loopback() {
        errors.push(invalid(
            path,
            value,
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    if is_link_local_unicast(ip) {
        errors.push(invalid(
            path,
            value,
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    if is_link_local_multicast(ip) {
        errors.push(invalid(
            path,
            value,
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errors
}

/// `Invalid value` unless `value` is an IP address.
pub fn ip_errors(path: &str, value: &str) -> Vec<String> {
    match parse_ip(value) {
        Some(_) => Vec::new(),
        None => vec![invalid(path, value, NOT_AN_IP)],
    }
}

/// `Invalid value` unless `value` is an address of the family `v4` names.
pub fn family_errors(path: &str, value: &str, v4: bool) -> Vec<String> {
    match parse_ip(value) {
        Some(ip) if ip.is_ipv4() == v4 => Vec::new(),
        _ => vec![invalid(
            path,
            value,
            if v4 {
                "must be a valid IPv4 address"
            } else {
                "must be a valid IPv6 address"
            },
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_ranges_are_named() {
        assert!(non_special_ip_errors("ip", "10.1.2.3").is_empty());
        assert!(non_special_ip_errors("ip", "2001:db8::1").is_empty());
        assert_eq!(
            non_special_ip_errors("ip", "127.0.0.1"),
            [
                "ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)"
            ]
        );
        assert_eq!(
            non_special_ip_errors("ip", "0.0.0.0"),
            ["ip: Invalid value: \"0.0.0.0\": may not be unspecified (0.0.0.0)"]
        );
        assert_eq!(
            non_special_ip_errors("ip", "fe80::1"),
            [
                "ip: Invalid value: \"fe80::1\": may not be in the link-local range (169.254.0.0/16, fe80::/10)"
            ]
        );
        assert_eq!(
            non_special_ip_errors("ip", "224.0.0.1"),
            [
                "ip: Invalid value: \"224.0.0.1\": may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)"
            ]
        );
        assert_eq!(
            non_special_ip_errors("ip", "::ffff:127.0.0.1").len(),
            1,
            "a mapped address is judged as IPv4"
        );
        assert_eq!(
            non_special_ip_errors("ip", "x"),
            ["ip: Invalid value: \"x\": must be a valid IP address"]
        );
    }

    #[test]
    fn cidrs_and_families() {
        assert!(parse_cidr("10.0.0.0/24").is_some());
        assert!(parse_cidr("10.0.0.1/24").is_some(), "host bits are allowed");
        assert!(parse_cidr("fd00::/64").is_some());
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/",
            "x/8",
            "fd00::/129",
            "10.0.0.0/+8",
        ] {
            assert!(parse_cidr(bad).is_none(), "{bad}");
        }
        assert!(family_errors("a", "10.0.0.1", true).is_empty());
        assert_eq!(
            family_errors("a", "10.0.0.1", false),
            ["a: Invalid value: \"10.0.0.1\": must be a valid IPv6 address"]
        );
        assert_eq!(
            ip_errors("a", "1.2.3"),
            [
                "a: Invalid value: \"1.2.3\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
            ]
        );
    }
}
