//! Kubernetes API rules that both sides of Skiff enforce the same way: the
//! control plane when an object is written, the kubelet when a pod arrives
//! (over gRPC or as a static manifest). Messages use the API server's
//! wording (`spec.containers[0].image: Required value`).
//!
//! # Layout
//! - [`batch`]: Job and CronJob specs (counts, modes, pod failure and
//!   success policies, generated selectors, what an update may change).
//! - [`config`]: ConfigMaps and Secrets (keys, size, types, `immutable`).
//! - [`coordination`]: Leases (duration, transitions).
//! - [`daemonset`]: DaemonSet specs (update strategy, rolling budget).
//! - [`dns`]: a pod's `dnsPolicy` and `dnsConfig`, and the resolv.conf limits.
//! - [`endpoints`]: Endpoints and EndpointSlices (addresses, ports).
//! - [`event`]: Events written through `events.k8s.io/v1`.
//! - [`metadata`]: every kind's metadata (names, labels, annotations,
//!   finalizers, owner references).
//! - [`names`]: DNS-1123 names and labels.
//! - [`namespace`]: Namespace spec finalizers.
//! - [`net`]: IP addresses and CIDRs (syntax, family, special ranges).
//! - [`node`]: Nodes (taints, pod CIDRs, what updates may not change).
//! - [`pod`]: pod specs (containers, probes, restartPolicy, ...).
//! - [`policy`]: PodDisruptionBudget specs and label selectors.
//! - [`rbac`]: Roles, ClusterRoles and their bindings.
//! - [`revision`]: ControllerRevisions (data, revision number).
//! - [`service`]: Service specs and port protocols.
//! - [`statefulset`]: StatefulSet specs (policies, update strategy, claim
//!   templates, service name, ordinals).
//! - [`storage`]: PersistentVolumeClaim specs.
//! - [`volume`]: PersistentVolumes and StorageClasses.
//! - [`workloads`]: controllers' selectors and templates.

pub mod batch;
pub mod config;
pub mod coordination;
pub mod daemonset;
pub mod dns;
pub mod endpoints;
pub mod event;
pub mod metadata;
pub mod names;
pub mod namespace;
pub mod net;
pub mod node;
pub mod pod;
pub mod policy;
pub mod rbac;
pub mod revision;
pub mod service;
pub mod statefulset;
pub mod storage;
pub mod volume;
pub mod workloads;

/// One invalid field: `field` and the message after it, as in
/// `spec.replicas: Invalid value: -1: must be greater than or equal to 0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Dotted field path.
    pub field: String,
    /// The message (starts with `Invalid value`, `Required value`, ...).
    pub message: String,
}

impl FieldError {
    /// Splits a `field: message` line.
    pub fn parse(line: &str) -> Self {
        match line.split_once(": ") {
            Some((field, message)) => Self {
                field: field.to_string(),
                message: message.to_string(),
            },
            None => Self {
                field: String::new(),
                message: line.to_string(),
            },
        }
    }
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}
