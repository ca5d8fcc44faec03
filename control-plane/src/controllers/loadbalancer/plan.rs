//! What the LoadBalancer controller does with one Service, decided on the
//! Service's JSON, the pool and the addresses other Services hold (pure,
//! so it is tested without a store).

use std::collections::HashMap;
use std::net::Ipv4Addr;

use serde_json::{Value, json};

use crate::registry::allocation::lb_pool::LbPool;

/// The decision for one Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Nothing to do: not a LoadBalancer of ours and holding none of the
    /// pool's addresses.
    Ignore,
    /// It holds `0` and may keep it (the status already says so).
    Keep(Ipv4Addr),
    /// Write `0` into its status.
    Assign(Ipv4Addr),
    /// It holds pool addresses it should not (no longer a LoadBalancer):
    /// clear its status.
    Release,
    /// It wants an address and cannot have one: why.
    Fail(Failure),
}

/// Why a Service gets no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// Every pool address is held.
    #[error("no available IPs")]
    Exhausted,
    /// `spec.loadBalancerIP` is outside the pool.
    #[error("{ip} is not in the pool {pool}")]
    NotInPool {
        /// The asked-for address.
        ip: Ipv4Addr,
        /// The pool.
        pool: String,
    },
    /// `spec.loadBalancerIP` is another Service's.
    #[error("{ip} is already in use by {holder}")]
    InUse {
        /// The asked-for address.
        ip: Ipv4Addr,
        /// `namespace/name` of the Service holding it.
        holder: String,
    },
    /// `spec.loadBalancerIP` is not an IPv4 address.
    #[error("invalid spec.loadBalancerIP {0:?}")]
    Invalid(String),
}

/// The Service's type is LoadBalancer and no other implementation was
/// asked for (`spec.loadBalancerClass` unset, as upstream's own service
/// controller requires).
pub fn wants_address(service: &Value) -> bool {
    service["spec"]["type"] == "LoadBalancer"
        && service["spec"]["loadBalancerClass"]
            .as_str()
            .is_none_or(str::is_empty)
}

/// The IPv4 addresses in `status.loadBalancer.ingress`.
pub fn ingress_ips(service: &Value) -> Vec<Ipv4Addr> {
    service["status"]["loadBalancer"]["ingress"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["ip"].as_str()?.parse().ok())
        .collect()
}

/// The pool address the Service holds by its status, if any.
pub fn held(service: &Value, pool: &LbPool) -> Option<Ipv4Addr> {
    ingress_ips(service)
        .into_iter()
        .find(|ip| pool.contains(*ip))
}

/// Decides for `service`; `others` maps the addresses other Services hold
/// to their `namespace/name`.
pub fn plan(service: &Value, pool: &LbPool, others: &HashMap<Ipv4Addr, String>) -> Plan {
    let current = held(service, pool);
    if service["spec"]["type"] == "LoadBalancer" && !wants_address(service) {
        // Another implementation's Service: its status is not ours.
        return Plan::Ignore;
    }
    if !wants_address(service) {
        return if current.is_some() {
            Plan::Release
        } else {
            Plan::Ignore
        };
    }
    let explicit = service["spec"]["loadBalancerIP"]
        .as_str()
        .filter(|s| !s.is_empty());
    if let Some(text) = explicit {
        let Ok(ip) = text.parse::<Ipv4Addr>() else {
            return Plan::Fail(Failure::Invalid(text.to_string()));
        };
        if current == Some(ip) && !others.contains_key(&ip) {
            return Plan::Keep(ip);
        }
        if !pool.contains(ip) {
            return Plan::Fail(Failure::NotInPool {
                ip,
                pool: pool.to_string(),
            });
        }
        return match others.get(&ip) {
            Some(holder) => Plan::Fail(Failure::InUse {
                ip,
                holder: holder.clone(),
            }),
            None => Plan::Assign(ip),
        };
    }
    // An address held and not also claimed by another Service is kept:
    // clients know it.
    if let Some(ip) = current.filter(|ip| !others.contains_key(ip)) {
        return Plan::Keep(ip);
    }
    match pool.addresses().find(|ip| !others.contains_key(ip)) {
        Some(ip) => Plan::Assign(ip),
        None => Plan::Fail(Failure::Exhausted),
    }
}

/// The `status.loadBalancer` that says the Service is reachable at `ip`.
pub fn status_for(ip: Ipv4Addr) -> Value {
    json!({"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> LbPool {
        LbPool::parse("172.29.1.200-172.29.1.202").expect("pool")
    }

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(172, 29, 1, last)
    }

    fn svc(kind: &str, explicit: Option<&str>, status_ip: Option<&str>) -> Value {
        let mut s = json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"type": kind}, "status": {"loadBalancer": {}}});
        if let Some(e) = explicit {
            s["spec"]["loadBalancerIP"] = json!(e);
        }
        if let Some(i) = status_ip {
            s["status"]["loadBalancer"] = json!({"ingress": [{"ip": i, "ipMode": "VIP"}]});
        }
        s
    }

    fn held_by(ips: &[u8]) -> HashMap<Ipv4Addr, String> {
        ips.iter()
            .map(|i| (ip(*i), format!("default/s{i}")))
            .collect()
    }

    #[test]
    fn the_lowest_free_address_is_given() {
        let s = svc("LoadBalancer", None, None);
        assert_eq!(plan(&s, &pool(), &held_by(&[])), Plan::Assign(ip(200)));
        assert_eq!(plan(&s, &pool(), &held_by(&[200])), Plan::Assign(ip(201)));
        assert_eq!(plan(&s, &pool(), &held_by(&[201])), Plan::Assign(ip(200)));
    }

    #[test]
    fn a_held_address_is_kept() {
        let s = svc("LoadBalancer", None, Some("172.29.1.202"));
        assert_eq!(plan(&s, &pool(), &held_by(&[])), Plan::Keep(ip(202)));
        // Claimed twice (a status written by hand): one of them moves.
        assert_eq!(plan(&s, &pool(), &held_by(&[202])), Plan::Assign(ip(200)));
    }

    #[test]
    fn an_explicit_address_in_the_pool_is_honoured_if_free() {
        let s = svc("LoadBalancer", Some("172.29.1.201"), None);
        assert_eq!(plan(&s, &pool(), &held_by(&[])), Plan::Assign(ip(201)));
        assert_eq!(
            plan(&s, &pool(), &held_by(&[201])),
            Plan::Fail(Failure::InUse {
                ip: ip(201),
                holder: "default/s201".into()
            })
        );
        let outside = svc("LoadBalancer", Some("10.0.0.1"), None);
        assert!(matches!(
            plan(&outside, &pool(), &held_by(&[])),
            Plan::Fail(Failure::NotInPool { .. })
        ));
        let moved = svc("LoadBalancer", Some("172.29.1.202"), Some("172.29.1.200"));
        assert_eq!(plan(&moved, &pool(), &held_by(&[])), Plan::Assign(ip(202)));
        let bad = svc("LoadBalancer", Some("nonsense"), None);
        assert!(matches!(
            plan(&bad, &pool(), &held_by(&[])),
            Plan::Fail(Failure::Invalid(_))
        ));
    }

    #[test]
    fn an_exhausted_pool_fails_with_metallbs_reason() {
        let s = svc("LoadBalancer", None, None);
        let failed = plan(&s, &pool(), &held_by(&[200, 201, 202]));
        assert_eq!(failed, Plan::Fail(Failure::Exhausted));
        if let Plan::Fail(f) = failed {
            assert_eq!(f.to_string(), "no available IPs");
        }
    }

    #[test]
    fn a_type_change_releases_and_others_are_ignored() {
        let was = svc("ClusterIP", None, Some("172.29.1.200"));
        assert_eq!(plan(&was, &pool(), &held_by(&[])), Plan::Release);
        let plain = svc("NodePort", None, None);
        assert_eq!(plan(&plain, &pool(), &held_by(&[])), Plan::Ignore);
        let mut foreign = svc("LoadBalancer", None, None);
        foreign["spec"]["loadBalancerClass"] = json!("example.com/lb");
        assert_eq!(plan(&foreign, &pool(), &held_by(&[])), Plan::Ignore);
        // Another implementation's address outside the pool is not ours.
        let outside = svc("ClusterIP", None, Some("1.2.3.4"));
        assert_eq!(plan(&outside, &pool(), &held_by(&[])), Plan::Ignore);
    }

    #[test]
    fn the_status_says_vip() {
        assert_eq!(
            status_for(ip(200)),
            json!({"ingress": [{"ip": "172.29.1.200", "ipMode": "VIP"}]})
        );
    }
}
