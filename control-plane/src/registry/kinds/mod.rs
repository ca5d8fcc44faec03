//! The built-in kinds, one module per kind (or family of kinds): each
//! holds its served types as static values ([`PODS`], [`DEPLOYMENTS`], ...)
//! and its [`Behaviour`](super::resource_type::Behaviour): upstream's defaults, the status a created object
//! starts with, validation and update rules, the strict-decoding schema and
//! the columns `kubectl get` prints.
//!
//! Adding a kind: a module here with its `ResourceType` constant and a
//! `Behaviour` implementation (override what the kind has), its line
//! in [`super::resources::RESOURCES`], and its tests. The API serves it
//! (discovery, CRUD, watch, tables) and [`super::objects::Objects`] reads
//! and writes it with no other change.

pub mod certificates;
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
pub mod rbac;
pub mod replicaset;
pub mod review;
pub mod revision;
pub mod service;
pub mod statefulset;
pub mod storage;
mod support;

pub use certificates::CERTIFICATESIGNINGREQUESTS;
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
pub use rbac::{CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES};
pub use replicaset::{REPLICASETS, REPLICATIONCONTROLLERS};
pub use review::{
    LOCALSUBJECTACCESSREVIEWS, SELFSUBJECTACCESSREVIEWS, SELFSUBJECTREVIEWS,
    SELFSUBJECTRULESREVIEWS, SUBJECTACCESSREVIEWS, TOKENREVIEWS,
};
pub use revision::CONTROLLERREVISIONS;
pub use service::SERVICES;
pub use statefulset::STATEFULSETS;
pub use storage::{PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES};
