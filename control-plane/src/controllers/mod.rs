//! The control plane's actors: each reconciles one concern from the store
//! (level-triggered: every pass reads desired and observed state afresh).
//!
//! - [`scheduler`]: binds pending pods to nodes.
//! - [`node`]: one actor per registered node pushes its pods to the
//!   kubelet over gRPC and writes back what the kubelet reports.
//! - [`mirror`]: how a node's static pods appear in the API (mirror pods).
//! - [`node_ipam`]: gives each node its pod subnet (`spec.podCIDR`).
//! - [`node_lifecycle`]: marks silent nodes unreachable and evicts their pods.
//! - [`deployment`]: rolls Deployments out over ReplicaSets.
//! - [`replicaset`]: keeps ReplicaSets' and ReplicationControllers' pods.
//! - [`job`]: runs Jobs' pods to completion.
//! - [`cronjob`]: starts Jobs on a cron schedule.
//! - [`statefulset`]: runs StatefulSets' ordered pods and their claims.
//! - [`volume`]: the PersistentVolume controller (default class,
//!   reclaiming); the storage model is [`crate::volumes`].
//! - [`daemonset`]: one pod per eligible node for each DaemonSet.
//! - [`disruption`]: PodDisruptionBudgets' status (disruptions allowed).
//! - [`endpointslice`]: Services' EndpointSlices from the pods they select.
//! - [`endpoints`]: Services' legacy Endpoints from the pods they select.
//! - [`loadbalancer`]: gives LoadBalancer Services an address of the
//!   `--load-balancer-pool` (status.loadBalancer.ingress).
//! - [`clusterrole_aggregation`]: fills aggregated ClusterRoles' rules
//!   from the roles their selectors match (`admin`, `edit`, `view`).
//! - [`garbage_collector`]: deletes dependents whose owners are gone, and
//!   carries out foreground and orphaning deletions.
//! - [`serviceaccount`]: a `default` ServiceAccount in every namespace.
//! - [`root_ca`]: the `kube-root-ca.crt` ConfigMap in every namespace.
//! - [`token_cleaner`]: deletes expired bootstrap token Secrets.
//! - [`namespace_key`]: the namespace key those two share.
//! - [`head`]: decoding only the fields a watch reads of an object.
//! - [`supervisor`]: starts the actors above and restarts them on failure.
//! - [`runtime`]: the controller runtime the workload controllers and the
//!   garbage collector run on (work queue, owner index, back-off, resync).
//! - [`pod`]: pod helpers the controllers that own pods share.
//! - [`claim`]: adopting orphans and releasing dependents.
//! - [`batch`]: what the Job and CronJob controllers both know of Jobs.
//! - [`template_hash`]: the hash that names a pod template's revision.
//! - [`intstr`]: int-or-percent values of rolling strategies.
//! - [`service_pods`]: Services, their selected pods and ports, shared
//!   by the EndpointSlice and Endpoints controllers.
//! - [`affinity`]: node selectors and node affinity, shared by the
//!   scheduler and the DaemonSet controller.

pub mod affinity;
pub mod batch;
pub mod certificates;
pub mod claim;
pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod disruption;
pub mod endpoints;
pub mod endpointslice;
pub mod fields;
pub mod garbage_collector;
pub mod head;
pub mod intstr;
pub mod job;
pub mod loadbalancer;
pub mod mirror;
pub mod namespace_key;
pub mod node;
pub mod node_ipam;
pub mod node_lifecycle;
pub mod pod;
pub mod replicaset;
pub mod root_ca;
pub mod runtime;
pub mod scheduler;
pub mod service_pods;
pub mod serviceaccount;
pub mod statefulset;
pub mod supervisor;
pub mod template_hash;
pub mod token_cleaner;
pub mod volume;

use serde_json::{Value, json};

use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::{Event, StoreError};

pub use crate::registry::watch::{object_of, watch_prefix};

/// Follows `prefix` for `actor`: every (re)list casts `resync()`, every
/// event whatever `message` makes of it (`None`: not the actor's
/// business). Stops once the actor is gone.
pub fn watch_for<M: ractor::Message>(
    objects: &Objects,
    prefix: String,
    actor: &ractor::ActorRef<M>,
    resync: impl Fn() -> M + Send + 'static,
    mut message: impl FnMut(Event) -> Option<M> + Send + 'static,
) {
    let actor = actor.clone();
    watch_prefix(objects.store().clone(), prefix, move |event| {
        match event.map_or_else(|| Some(resync()), &mut message) {
            Some(msg) => actor.cast(msg).is_ok(),
            None => true,
        }
    });
}

/// The object of a store event with only the metadata owners read
/// ([`head::Meta`]): what the owners' watches on their dependents need.
pub fn metadata_of(event: &Event) -> Option<Value> {
    head::Meta::from_json(&event.value).map(head::Meta::into_object)
}

/// Every object of `rt` in `namespace`, as stored now, each with its
/// `metadata.resourceVersion` (for writes that must not race).
pub async fn namespace_objects(
    objects: &Objects,
    rt: &ResourceType,
    namespace: &str,
) -> Result<Vec<Value>, StoreError> {
    let prefix = format!("{}{namespace}/", rt.prefix());
    let listing = objects.store().list(&prefix).await?;
    Ok(listing
        .items
        .iter()
        .filter_map(|kv| {
            let mut v: Value = serde_json::from_slice(&kv.value).ok()?;
            v["metadata"]["resourceVersion"] = json!(kv.revision.to_string());
            Some(v)
        })
        .collect())
}
