//! The built-in kinds, one module per kind (or family of kinds): each
//! holds its served types as static values ([`PODS`], [`DEPLOYMENTS`], ...).
//! A new kind is a new module here plus its line in
//! [`super::resources::RESOURCES`].

use skiff_api_rules::metadata::NameRule;

use super::resource_type::Behaviour;

pub mod config;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod event;
pub mod job;
pub mod lease;
pub mod namespace;
pub mod node;
pub mod pdb;
pub mod pod;
pub mod printing;
pub mod replicaset;
pub mod revision;
pub mod service;
pub mod statefulset;
pub mod storage;
mod support;

pub use config::{CONFIGMAPS, SECRETS, SERVICEACCOUNTS};
pub use cronjob::CRONJOBS;
pub use daemonset::DAEMONSETS;
pub use deployment::DEPLOYMENTS;
pub use endpoints::{ENDPOINTS, ENDPOINTSLICES};
pub use event::{EVENTS, EVENTS_V1};
pub use job::JOBS;
pub use lease::LEASES;
pub use namespace::NAMESPACES;
pub use node::NODES;
pub use pdb::PODDISRUPTIONBUDGETS;
pub use pod::PODS;
pub use replicaset::{REPLICASETS, REPLICATIONCONTROLLERS};
pub use revision::CONTROLLERREVISIONS;
pub use service::SERVICES;
pub use statefulset::STATEFULSETS;
pub use storage::{PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES};

/// A kind with no rules of its own: no defaults, no status on create,
/// subdomain names, nothing to validate, a Name and an Age column.
pub const PLAIN: Behaviour = Behaviour {
    defaults: |_| {},
    initial_status: |_| None,
    prepare_write: |_, _| {},
    name_rule: NameRule::Subdomain,
    validate: |_, _| Ok(Vec::new()),
    validate_update: |_, _, _| Ok(Vec::new()),
    round_trip: |_| None,
    columns: printing::plain,
};
