//! Cluster DNS: the `cluster.local` names of Services, their endpoints and
//! pods, answered inside the control plane as CoreDNS's kubernetes plugin
//! answers them (one server for the cluster, reached by pods through the
//! `kube-dns` Service at the Service CIDR's tenth address).
//!
//! Why here and not as a pod: the control plane already holds every
//! Service and EndpointSlice (the only kinds the answers need), so an
//! in-memory index fed by its own store watches answers without an API
//! client, a cache or a second process, on `skiff up` and on a multi-VM
//! lab alike (the kubelets' service proxy carries pods' queries to it).
//!
//! - [`index`]: the in-memory index (Services, ready endpoints, reverse
//!   map), updated incrementally.
//! - [`answer`]: a name and type → the response's sections (pure).
//! - [`server`]: the hickory `RequestHandler`, UDP and TCP, EDNS,
//!   truncation, metrics counters.
//! - [`forward`]: names outside the cluster to the operator's upstreams
//!   (off unless configured).
//! - [`feed`]: the index following the store's Services and slices.
//! - [`service`]: the `kube-dns` Service and its EndpointSlice.

pub mod answer;
pub mod feed;
pub mod forward;
pub mod index;
pub mod server;
pub mod service;

pub use answer::{Answer, DnsConfig, answer};
pub use index::DnsIndex;
pub use server::{DnsMetrics, RunningDns, SharedIndex, serve};

#[cfg(test)]
mod server_tests;
#[cfg(test)]
mod tests;
