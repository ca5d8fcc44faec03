//! Service IP and NodePort allocation, as upstream's Service REST storage
//! does it: synchronously in the create and update path, so the answer to
//! a `POST` already carries `spec.clusterIP` and the nodePorts.
//!
//! - [`bands`]: KEP-3070's static and dynamic bands of a range.
//! - [`ip`]: the Service CIDR; [`port`]: the NodePort range.
//! - [`service`]: what a Service asks for and holds, and upstream's field
//!   handling on type changes (pure, on the object's JSON).
//! - [`reservations`]: one store key per reserved value, written in the
//!   same transaction as the Service, so two creates can never get the
//!   same value and nothing is reserved for a Service that was not stored;
//!   release on delete and type change, and the start-up repair.
//! - [`kubernetes`]: the `kubernetes` Service in `default`.
//! - [`lb_pool`]: the LoadBalancer address pool (handed out by the
//!   LoadBalancer controller, into Services' status, not here).
//! - [`pod_cidr`]: the pod network and its per-node subnets (Nodes, not
//!   Services; kept here as the other range the control plane hands out).
//!
//! A reservation is valid only while its Service (same uid) exists and
//! holds its value; any other is stale and may be taken over. So a release
//! that is lost (a crash after the Service went) never leaks a value for
//! good: the next allocator or the start-up repair takes it back.

pub mod bands;
pub mod ip;
pub mod kubernetes;
pub mod lb_pool;
pub mod pod_cidr;
pub mod port;
pub mod reservations;
pub mod service;

use std::net::Ipv4Addr;
use std::sync::OnceLock;

use super::error::ApiError;
use super::resource_type::ResourceType;
use crate::store::StoreError;

pub use ip::IpRange;
pub use port::PortRange;

/// The ranges Services are given values from (the control plane's
/// `--service-cluster-ip-range` and `--service-node-port-range`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceRanges {
    /// Cluster IPs.
    pub ips: IpRange,
    /// NodePorts.
    pub node_ports: PortRange,
}

static RANGES: OnceLock<ServiceRanges> = OnceLock::new();

/// Sets the process's ranges (once, at start-up, from the flags).
pub fn set_ranges(ranges: ServiceRanges) {
    let _ = RANGES.set(ranges);
}

/// The process's ranges: the flags', or upstream's defaults.
pub fn ranges() -> ServiceRanges {
    RANGES.get().copied().unwrap_or_default()
}

/// A range flag that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Not an IPv4 CIDR with a zero host part and room for Services.
    #[error("invalid service CIDR {0:?}: want an IPv4 network such as 10.96.0.0/12")]
    Cidr(String),
    /// Not `first-last`.
    #[error("invalid node port range {0:?}: want first-last, such as 30000-32767")]
    Ports(String),
}

/// Why an explicitly asked-for value cannot be had, in upstream's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Another Service holds the address.
    #[error("provided IP is already allocated")]
    IpAllocated,
    /// The address is outside the Service CIDR.
    #[error("the provided IP ({ip}) is not in the valid range. The range of valid IPs is {range}")]
    IpNotInRange {
        /// The address asked for.
        ip: Ipv4Addr,
        /// The Service CIDR.
        range: IpRange,
    },
    /// Another Service holds the port.
    #[error("provided port is already allocated")]
    PortAllocated,
    /// The port is outside the NodePort range.
    #[error("provided port is not in the valid range. The range of valid ports is {range}")]
    PortNotInRange {
        /// The NodePort range.
        range: PortRange,
    },
}

/// What allocating for a Service can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// An explicit cluster IP that cannot be had (upstream reports it
    /// under `spec.clusterIPs`, with the whole list as the value, rendered
    /// as JSON as field errors have been since 1.32).
    #[error("spec.clusterIPs: Invalid value: [{quoted}]: failed to allocate IP {ip}: {refusal}", quoted = format!("{ip:?}"))]
    Ip {
        /// The address as written.
        ip: String,
        /// Why not.
        refusal: Refusal,
    },
    /// An explicit nodePort that cannot be had.
    #[error("spec.ports[{index}].nodePort: Invalid value: {port}: {refusal}")]
    NodePort {
        /// The port's index in `spec.ports`.
        index: usize,
        /// The port asked for.
        port: i64,
        /// Why not.
        refusal: Refusal,
    },
    /// An explicit health check nodePort that cannot be had (upstream
    /// answers it as an internal error).
    #[error("failed to allocate requested HealthCheck NodePort {port}: {refusal}")]
    HealthCheckPort {
        /// The port asked for.
        port: i64,
        /// Why not.
        refusal: Refusal,
    },
    /// A field the Service's type does not allow or a value that does not
    /// parse, as a field error line (`spec.…: Forbidden: …`).
    #[error("{0}")]
    Field(String),
    /// No address left.
    #[error("failed to allocate a serviceIP: range is full")]
    IpRangeFull,
    /// No port left.
    #[error("failed to allocate a nodePort: range is full")]
    PortRangeFull,
    /// Writers kept taking the values picked; upstream's answer to a
    /// lost race is a conflict the client retries.
    #[error("too many concurrent allocations")]
    Contended,
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AllocError {
    /// The API's answer: field errors are 422 Invalid with their cause,
    /// a full range a 500 as upstream's internal error.
    pub fn into_api(self, rt: &ResourceType, name: &str) -> ApiError {
        match self {
            Self::Ip { .. } | Self::NodePort { .. } | Self::Field(_) => {
                ApiError::invalid(rt, name, &[self.to_string()])
            }
            Self::IpRangeFull | Self::PortRangeFull | Self::HealthCheckPort { .. } => {
                ApiError::internal(format!("Internal error occurred: {self}"))
            }
            Self::Contended => ApiError::conflict(rt, name),
            Self::Store(e) => ApiError::from_store(e, rt, name),
        }
    }
}

/// Whether writes of `rt` allocate (core `v1` Services).
pub fn applies_to(rt: &ResourceType) -> bool {
    rt == super::kinds::SERVICES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_as_upstreams() {
        let ip = AllocError::Ip {
            ip: "10.96.0.10".into(),
            refusal: Refusal::IpAllocated,
        };
        assert_eq!(
            ip.to_string(),
            "spec.clusterIPs: Invalid value: [\"10.96.0.10\"]: failed to allocate IP 10.96.0.10: provided IP is already allocated"
        );
        let outside = AllocError::Ip {
            ip: "1.1.1.1".into(),
            refusal: Refusal::IpNotInRange {
                ip: Ipv4Addr::new(1, 1, 1, 1),
                range: IpRange::default(),
            },
        };
        assert_eq!(
            outside.to_string(),
            "spec.clusterIPs: Invalid value: [\"1.1.1.1\"]: failed to allocate IP 1.1.1.1: the provided IP (1.1.1.1) is not in the valid range. The range of valid IPs is 10.96.0.0/12"
        );
        let port = AllocError::NodePort {
            index: 0,
            port: 8080,
            refusal: Refusal::PortNotInRange {
                range: PortRange::default(),
            },
        };
        assert_eq!(
            port.to_string(),
            "spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        let api = port.into_api(super::super::kinds::SERVICES, "web");
        assert_eq!(api.code, 422);
        assert_eq!(
            api.message,
            "Service \"web\" is invalid: spec.ports[0].nodePort: Invalid value: 8080: provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
    }
}
