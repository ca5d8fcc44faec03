//! The cluster's Services and EndpointSlices as this node knows them, fed
//! by the control plane's `NodeRegistry.WatchServices` stream: what pods'
//! service environment variables ([`env`]) and the node's service proxy
//! are made from.
//!
//! - [`cache`]: the objects, applied update by update.
//! - [`env`]: upstream kubelet's `{SVC}_SERVICE_HOST`, `{SVC}_PORT`, ...

pub mod cache;
pub mod env;

pub use cache::ServiceCache;
