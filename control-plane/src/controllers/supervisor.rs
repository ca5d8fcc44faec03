//! The root actor: starts the scheduler, the workload controllers
//! (ReplicaSet, Deployment, DaemonSet, Job, CronJob), the EndpointSlice
//! and Endpoints controllers, the LoadBalancer controller, the garbage collector and one
//! node actor per Node
//! object, and restarts any of them that fails (they rebuild their view
//! from the store, so a restart loses nothing). It also watches pods once
//! for all node actors and hands each the changes of its own pods, as the
//! API server's watch cache does for kubelets watching with
//! `fieldSelector=spec.nodeName=...`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use serde_json::Value;
use tracing::{info, warn};

use super::certificates::approver::Approver;
use super::certificates::signer::Signer;
use super::clusterrole_aggregation::Aggregation;
use super::cronjob::CronJobs;
use super::daemonset::DaemonSets;
use super::deployment::Deployments;
use super::disruption::Budgets;
use super::endpoints::EndpointsReconciler;
use super::endpointslice::EndpointSlices;
use super::garbage_collector::Collector;
use super::head::ForKubelet;
use super::job::{Backoff, Jobs};
use super::loadbalancer::LoadBalancers;
use super::node::{NodeActor, NodeActorMsg};
use super::node_ipam::NodeIpam;
use super::node_lifecycle::{LifecycleConfig, NodeLifecycle};
use super::replicaset::ReplicaSets;
use super::root_ca::{RootCaPublisher, root_ca};
use super::runtime::{Controller, Reconciler};
use super::scheduler::Scheduler;
use super::serviceaccount::ServiceAccounts;
use super::statefulset::StatefulSets;
use super::token_cleaner::TokenCleaner;
use super::volume::VolumeController;
use super::{object_of, watch_for, watch_prefix};
use crate::clock::{SharedClock, SystemClock};
use crate::meta;
use crate::nodes::liveness::Liveness;
use crate::nodes::view::NodeView;
use crate::registry::allocation::lb_pool::load_balancer_pool;
use crate::registry::allocation::pod_cidr::cluster_cidr;
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::EventKind;

/// Supervisor messages.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Compare node actors with Node objects (after a full list).
    ResyncNodes,
    /// A Node object was added or removed.
    NodeChanged(EventKind, String),
    /// The pod watch (re)started: re-list pods.
    ResyncPods,
    /// A pod changed (for `Deleted`: its last state) at a revision.
    PodChanged(EventKind, u64, Arc<Value>),
}

/// Pods bound to each node, by `namespace/name`, as of their last change of
/// metadata or spec: their status may be older (nobody here reads it).
type PodIndex = HashMap<String, HashMap<String, Arc<Value>>>;

fn pod_key(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or("default"),
        pod["metadata"]["name"].as_str().unwrap_or_default()
    )
}

fn bound_node(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// The supervisor actor.
pub struct Supervisor;

/// What the children are started with.
#[derive(Clone)]
struct Deps {
    objects: Objects,
    config: LifecycleConfig,
    liveness: Arc<Liveness>,
    view: Arc<NodeView>,
    job_backoff: Backoff,
    clock: SharedClock,
}

type Spawned = Pin<Box<dyn Future<Output = Result<ActorCell, ActorProcessingErr>> + Send>>;

/// One child: its name (for logs) and how it is started, the same way at
/// start and on restart.
struct Child {
    name: &'static str,
    spawn: fn(Deps, ActorCell) -> Spawned,
}

async fn linked<A: Actor>(
    actor: A,
    args: A::Arguments,
    supervisor: ActorCell,
) -> Result<ActorCell, ActorProcessingErr> {
    let (child, _) = Actor::spawn_linked(None, actor, args, supervisor).await?;
    Ok(child.get_cell())
}

/// Starts the reconciler `make` builds on the controller runtime,
/// watching the store of `deps.objects`.
fn run<R: Reconciler>(deps: &Deps, make: impl FnOnce(Objects) -> R, s: ActorCell) -> Spawned {
    let args = (deps.objects.store().clone(), make(deps.objects.clone()));
    Box::pin(linked(Controller::<R>::default(), args, s))
}

impl Child {
    const fn new(name: &'static str, spawn: fn(Deps, ActorCell) -> Spawned) -> Self {
        Self { name, spawn }
    }
}

/// The supervisor's children but the node actors, in start order.
const CHILDREN: [Child; 21] = [
    Child::new("scheduler", |d, s| {
        Box::pin(async move {
            Ok(Scheduler::spawn_on_own_thread(d.objects, s)
                .await?
                .get_cell())
        })
    }),
    Child::new("node lifecycle", |d, s| {
        let args = (d.objects, d.config, d.liveness, d.view);
        Box::pin(linked(NodeLifecycle, args, s))
    }),
    Child::new("replicaset controller", |d, s| run(&d, ReplicaSets::new, s)),
    Child::new("deployment controller", |d, s| run(&d, Deployments::new, s)),
    Child::new("job controller", |d, s| {
        run(&d, |o| Jobs::new(o, d.job_backoff, d.clock.clone()), s)
    }),
    Child::new("cronjob controller", |d, s| {
        run(&d, |o| CronJobs::new(o, d.clock.clone()), s)
    }),
    Child::new("daemonset controller", |d, s| run(&d, DaemonSets::new, s)),
    Child::new("garbage collector", |d, s| run(&d, Collector::new, s)),
    Child::new("statefulset controller", |d, s| {
        run(&d, StatefulSets::new, s)
    }),
    Child::new("volume controller", |d, s| {
        Box::pin(linked(VolumeController, d.objects, s))
    }),
    Child::new("disruption controller", |d, s| run(&d, Budgets::new, s)),
    Child::new("node ipam controller", |d, s| {
        run(&d, |o| NodeIpam::new(o, d.view.clone(), cluster_cidr()), s)
    }),
    Child::new("endpointslice controller", |d, s| {
        run(&d, EndpointSlices::new, s)
    }),
    Child::new("endpoints controller", |d, s| {
        run(&d, EndpointsReconciler::new, s)
    }),
    Child::new("loadbalancer controller", |d, s| {
        run(&d, |o| LoadBalancers::new(o, load_balancer_pool()), s)
    }),
    Child::new("clusterrole aggregation controller", |d, s| {
        run(&d, Aggregation::new, s)
    }),
    Child::new("serviceaccount controller", |d, s| {
        run(&d, ServiceAccounts::new, s)
    }),
    Child::new("csrapproving controller", |d, s| {
        run(&d, Approver::configured, s)
    }),
    Child::new("csrsigning controller", |d, s| {
        run(&d, Signer::configured, s)
    }),
    Child::new("root-ca-cert-publisher", |d, s| {
        run(
            &d,
            |o| RootCaPublisher::new(o, root_ca().unwrap_or_default()),
            s,
        )
    }),
    Child::new("tokencleaner", |d, s| run(&d, TokenCleaner::new, s)),
];

/// Its state.
pub struct SupervisorState {
    objects: Objects,
    deps: Deps,
    /// The running cell of each of [`CHILDREN`], by index.
    children: Vec<ActorCell>,
    nodes: HashMap<String, ActorRef<NodeActorMsg>>,
    /// `None` until pods were first listed.
    pods: Option<PodIndex>,
    pods_synced: u64,
}

impl SupervisorState {
    async fn start_node(&mut self, myself: &ActorRef<SupervisorMsg>, name: &str) {
        if self.nodes.contains_key(name) {
            return;
        }
        match Actor::spawn_linked(
            None,
            NodeActor,
            (name.to_string(), self.objects.clone()),
            myself.get_cell(),
        )
        .await
        {
            Ok((actor, _)) => {
                info!(node = %name, "node actor started");
                self.snapshot(name, &actor);
                self.nodes.insert(name.to_string(), actor);
            }
            Err(e) => warn!(node = %name, error = %e, "cannot start node actor"),
        }
    }
}

impl SupervisorState {
    /// Pods bound to a node whose object was deleted are deleted at once,
    /// as upstream's pod garbage collector does with orphaned pods: no
    /// kubelet will ever confirm them gone, and a StatefulSet waits for
    /// that before it creates the ordinal again.
    fn remove_pods_of_deleted_node(&self, node: &str) {
        let Some(pods) = self.pods.as_ref().and_then(|i| i.get(node)) else {
            return;
        };
        let keys: Vec<String> = pods.keys().cloned().collect();
        if keys.is_empty() {
            return;
        }
        let objects = self.objects.clone();
        let node = node.to_string();
        tokio::spawn(async move {
            let rt = kinds::PODS;
            for key in keys {
                let (namespace, name) = key.split_once('/').unwrap_or(("default", &key));
                info!(pod = %key, %node, "node deleted; deleting its pod");
                if let Err(e) = objects.delete(rt, Some(namespace), name).await {
                    warn!(pod = %key, error = %e, "cannot delete the pod of a deleted node");
                }
            }
        });
    }

    fn snapshot(&self, name: &str, actor: &ActorRef<NodeActorMsg>) {
        if let Some(index) = &self.pods {
            let pods = index
                .get(name)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default();
            let _ = actor.cast(NodeActorMsg::Snapshot(pods));
        }
    }

    async fn resync_pods(&mut self) -> Result<(), ActorProcessingErr> {
        let rt = kinds::PODS;
        let (pods, revision) = self.objects.list(rt).await?;
        let mut index = PodIndex::new();
        for pod in pods {
            if let Some(node) = bound_node(&pod).map(String::from) {
                index
                    .entry(node)
                    .or_default()
                    .insert(pod_key(&pod), Arc::new(pod));
            }
        }
        self.pods = Some(index);
        self.pods_synced = revision;
        for (name, actor) in &self.nodes {
            self.snapshot(name, actor);
        }
        Ok(())
    }

    fn pod_changed(&mut self, kind: EventKind, revision: u64, pod: Arc<Value>) {
        // Already in the listing the index was built from.
        if revision <= self.pods_synced {
            return;
        }
        let Some(node) = bound_node(&pod).map(String::from) else {
            return;
        };
        if let Some(index) = self.pods.as_mut() {
            let on_node = index.entry(node.clone()).or_default();
            if kind == EventKind::Deleted {
                on_node.remove(&pod_key(&pod));
            } else {
                on_node.insert(pod_key(&pod), pod.clone());
            }
        }
        if let Some(actor) = self.nodes.get(&node) {
            let _ = actor.cast(NodeActorMsg::PodChanged(kind, pod));
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = (
        Objects,
        LifecycleConfig,
        Arc<Liveness>,
        Arc<NodeView>,
        Backoff,
    );

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        (objects, config, liveness, view, job_backoff): Self::Arguments,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let deps = Deps {
            objects: objects.clone(),
            config,
            liveness,
            view,
            job_backoff,
            clock: Arc::new(SystemClock),
        };
        let mut children = Vec::with_capacity(CHILDREN.len());
        for child in &CHILDREN {
            children.push((child.spawn)(deps.clone(), myself.get_cell()).await?);
        }
        watch_for(
            &objects,
            kinds::NODES.prefix(),
            &myself,
            || SupervisorMsg::ResyncNodes,
            |e| {
                let name = object_of(&e).map(|node| meta::name(&node).to_string());
                Some(SupervisorMsg::NodeChanged(e.kind, name.unwrap_or_default()))
            },
        );
        let me = myself.clone();
        // What the node actors were last handed of each bound pod, by key.
        let mut handed: HashMap<String, u64> = HashMap::new();
        watch_prefix(
            objects.store().clone(),
            kinds::PODS.prefix(),
            move |event| {
                let Some(e) = event else {
                    handed.clear();
                    return me.cast(SupervisorMsg::ResyncPods).is_ok();
                };
                // Pods waiting for a node are none of the node actors'
                // business, and most changes of a bound pod are its
                // kubelet's own status reports written back: only bound
                // pods whose metadata or spec changed are decoded, here on
                // the watch's task rather than in the actor.
                let Some(view) = ForKubelet::from_json(&e.value).filter(|v| v.node.is_some())
                else {
                    return true;
                };
                if e.kind == EventKind::Deleted {
                    handed.remove(&e.key);
                } else if handed.insert(e.key.clone(), view.fingerprint) == Some(view.fingerprint) {
                    return true;
                }
                match object_of(&e) {
                    Some(pod) => me
                        .cast(SupervisorMsg::PodChanged(e.kind, e.revision, Arc::new(pod)))
                        .is_ok(),
                    None => true,
                }
            },
        );
        Ok(SupervisorState {
            objects,
            deps,
            children,
            nodes: HashMap::new(),
            pods: None,
            pods_synced: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::ResyncNodes => {
                let rt = kinds::NODES;
                let (nodes, _) = state.objects.list(rt).await?;
                let names: Vec<String> = nodes
                    .iter()
                    .filter_map(|n| n["metadata"]["name"].as_str().map(String::from))
                    .collect();
                for name in &names {
                    state.start_node(&myself, name).await;
                }
                let gone: Vec<String> = state
                    .nodes
                    .keys()
                    .filter(|n| !names.contains(n))
                    .cloned()
                    .collect();
                for name in gone {
                    if let Some(actor) = state.nodes.remove(&name) {
                        actor.stop(None);
                    }
                }
            }
            SupervisorMsg::NodeChanged(EventKind::Deleted, name) => {
                if let Some(actor) = state.nodes.remove(&name) {
                    actor.stop(None);
                }
                state.remove_pods_of_deleted_node(&name);
            }
            SupervisorMsg::NodeChanged(_, name) => state.start_node(&myself, &name).await,
            SupervisorMsg::ResyncPods => state.resync_pods().await?,
            SupervisorMsg::PodChanged(kind, revision, pod) => {
                state.pod_changed(kind, revision, pod);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Policy: restart whichever child failed; it rebuilds from the store.
        if let SupervisionEvent::ActorFailed(cell, reason) = event {
            let is = |c: &ActorCell| c.get_id() == cell.get_id();
            if let Some(i) = state.children.iter().position(is) {
                let child = &CHILDREN[i];
                warn!(%reason, "{} failed; restarting it", child.name);
                state.children[i] = (child.spawn)(state.deps.clone(), myself.get_cell()).await?;
            } else if let Some(name) = state
                .nodes
                .iter()
                .find(|(_, a)| is(&a.get_cell()))
                .map(|(n, _)| n.clone())
            {
                warn!(node = %name, %reason, "node actor failed; restarting it");
                state.nodes.remove(&name);
                state.start_node(&myself, &name).await;
            }
        }
        Ok(())
    }
}
