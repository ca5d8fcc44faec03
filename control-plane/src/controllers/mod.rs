//! The control plane's actors: each reconciles one concern from the store
//! (level-triggered: every pass reads desired and observed state afresh).
//!
//! - [`scheduler`]: binds pending pods to nodes.
//! - [`node`]: one actor per registered node pushes its pods to the
//!   kubelet over gRPC and writes back what the kubelet reports.
//! - [`mirror`]: how a node's static pods appear in the API (mirror pods).
//! - [`node_lifecycle`]: marks silent nodes unreachable and evicts their pods.
//! - [`deployment`]: rolls Deployments out over ReplicaSets.
//! - [`replicaset`]: keeps ReplicaSets' and ReplicationControllers' pods.
//! - [`job`]: runs Jobs' pods to completion.
//! - [`cronjob`]: starts Jobs on a cron schedule.
//! - [`statefulset`]: runs StatefulSets' ordered pods and their claims.
//! - [`volume`]: node-local persistent volumes (default class, provisioning,
//!   reclaiming).
//! - [`daemonset`]: one pod per eligible node for each DaemonSet.
//! - [`disruption`]: PodDisruptionBudgets' status (disruptions allowed).
//! - [`garbage_collector`]: deletes dependents whose owners are gone, and
//!   carries out foreground and orphaning deletions.
//! - [`head`]: decoding only the fields a watch reads of an object.
//! - [`supervisor`]: starts the actors above and restarts them on failure.
//! - [`work_queue`]: the coalescing, retrying queue of keys the workload
//!   controllers share.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod garbage_collector;
pub mod head;
pub mod job;
pub mod mirror;
pub mod node;
pub mod node_lifecycle;
pub mod replicaset;
pub mod scheduler;
pub mod statefulset;
pub mod supervisor;
pub mod volume;
pub mod work_queue;

use serde_json::Value;

use crate::store::Event;

pub use crate::registry::watch::{object_of, watch_prefix};

/// The object of a store event with only the metadata owners read
/// ([`head::Meta`]): what the owners' watches on their dependents need.
pub fn metadata_of(event: &Event) -> Option<Value> {
    head::Meta::from_json(&event.value).map(head::Meta::into_object)
}
