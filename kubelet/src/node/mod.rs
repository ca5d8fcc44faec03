//! The node agent: one [`NodeAgent`] actor owns the node's pods. It spawns a
//! supervised [`PodActor`] per pod UID, keeps the latest status of each, and
//! fans reports (status, events, removals) out to watchers (the gRPC
//! `WatchPods` streams, `/pods`).

pub mod checkpoint;
pub mod identity;
pub mod manifests;
pub mod registration;
pub mod rotation;
pub mod system_info;

// Shared with the pods; re-exported here where the node's users look for them.
pub use crate::{context, events, metrics};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};
use tokio::sync::broadcast;
use tracing::{info, warn};

pub use context::NodeContext;
use events::Event;

use crate::pod::{PodActor, PodArgs, PodKey, PodMsg, PodReporter};
use crate::runtime::LabelFilter;
use skiff_api_rules::pod::validate_pod;

/// Where a pod came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PodSource {
    /// Assigned over the API (gRPC); checkpointed.
    Api,
    /// A manifest file in the node's manifests folder.
    Static(PathBuf),
}

/// What watchers are told.
#[derive(Debug, Clone)]
pub enum Report {
    /// A pod's status changed (the pod carries its new status).
    Status {
        /// The pod with `status` filled in.
        pod: Box<Pod>,
        /// From the manifests folder.
        static_pod: bool,
    },
    /// An event happened.
    Event(Box<Event>),
    /// A pod is gone: its containers, sandbox and files are removed.
    Gone(PodKey),
}

/// Messages of the node agent.
#[derive(Debug)]
pub enum NodeMsg {
    /// Run (or update) a pod. Replies with validation errors.
    Assign {
        /// The pod.
        pod: Box<Pod>,
        /// Where it came from.
        source: PodSource,
        /// `Err` lists what is invalid.
        reply: Option<RpcReplyPort<Result<(), String>>>,
    },
    /// Stop and forget a pod. Replies whether it was known.
    Remove {
        /// Pod UID.
        uid: String,
        /// Grace period override.
        grace: Option<Duration>,
        /// Known?
        reply: Option<RpcReplyPort<bool>>,
    },
    /// The complete set of API pods: others are removed. Replies with rejections.
    SyncApiPods {
        /// Desired pods.
        pods: Vec<Pod>,
        /// `(uid, reason)` of refused pods.
        reply: RpcReplyPort<Vec<(String, String)>>,
    },
    /// From a pod actor: its status changed.
    PodStatus {
        /// Pod UID.
        uid: String,
        /// New status.
        status: Box<PodStatus>,
    },
    /// From a pod actor or the manifests watcher: something happened.
    Event(Box<Event>),
    /// From a pod actor: it finished removing its pod.
    PodGone {
        /// Pod UID.
        uid: String,
    },
    /// Every pod with its live status.
    ListPods(RpcReplyPort<Vec<Pod>>),
    /// A snapshot of every pod's status plus a live feed of what follows.
    Watch(RpcReplyPort<(Vec<Report>, broadcast::Receiver<Report>)>),
}

struct Entry {
    pod: Pod,
    source: PodSource,
    actor: Option<ActorRef<PodMsg>>,
    status: Option<PodStatus>,
    terminating: Option<Option<Duration>>,
}

impl Entry {
    fn with_status(&self) -> Pod {
        let mut pod = self.pod.clone();
        if self.status.is_some() {
            pod.status = self.status.clone();
        }
        pod
    }

    fn report(&self) -> Report {
        Report::Status {
            pod: Box::new(self.with_status()),
            static_pod: matches!(self.source, PodSource::Static(_)),
        }
    }
}

/// State of the node agent.
pub struct NodeState {
    ctx: Arc<NodeContext>,
    pods: HashMap<String, Entry>,
    reports: broadcast::Sender<Report>,
}

/// Spawn arguments of the node agent.
pub struct NodeArgs {
    /// Shared context.
    pub ctx: Arc<NodeContext>,
    /// Pods to start with (checkpoints and static manifests).
    pub initial: Vec<(Pod, PodSource)>,
}

/// The node agent actor (stateless; see [`NodeState`]).
pub struct NodeAgent;

/// How pod actors reach the node agent: their reports become messages.
struct NodeReporter(ActorRef<NodeMsg>);

impl PodReporter for NodeReporter {
    fn status_changed(&self, uid: &str, status: PodStatus) {
        let _ = self.0.cast(NodeMsg::PodStatus {
            uid: uid.to_string(),
            status: Box::new(status),
        });
    }

    fn event(&self, event: Event) {
        let _ = self.0.cast(NodeMsg::Event(Box::new(event)));
    }

    fn gone(&self, uid: &str) {
        let _ = self.0.cast(NodeMsg::PodGone {
            uid: uid.to_string(),
        });
    }
}

impl NodeState {
    async fn spawn_pod(&self, myself: &ActorRef<NodeMsg>, pod: Pod) -> Option<ActorRef<PodMsg>> {
        let args = PodArgs {
            pod,
            ctx: self.ctx.clone(),
            reporter: Arc::new(NodeReporter(myself.clone())),
        };
        match Actor::spawn_linked(None, PodActor, args, myself.get_cell()).await {
            Ok((actor, _)) => Some(actor),
            Err(e) => {
                warn!(error = %e, "cannot spawn pod actor");
                None
            }
        }
    }

    async fn assign(
        &mut self,
        myself: &ActorRef<NodeMsg>,
        pod: Pod,
        source: PodSource,
    ) -> Result<(), String> {
        let errors = validate_pod(&pod);
        if !errors.is_empty() {
            return Err(format!(
                "Pod \"{}\" is invalid: {}",
                pod.metadata.name.clone().unwrap_or_default(),
                errors.join(", ")
            ));
        }
        let key = PodKey::of(&pod);
        if key.uid.is_empty() {
            return Err(format!(
                "Pod \"{}\" is invalid: metadata.uid: Required value",
                key.name
            ));
        }
        if let Some(entry) = self.pods.get_mut(&key.uid) {
            if entry.pod != pod && entry.terminating.is_none() {
                if let Some(actor) = &entry.actor {
                    let _ = actor.cast(PodMsg::UpdateSpec(Box::new(pod.clone())));
                }
                entry.pod = pod.clone();
                if source == PodSource::Api {
                    checkpoint::save(&self.ctx.state_dir, &key.uid, &pod);
                }
            }
            return Ok(());
        }
        if source == PodSource::Api {
            checkpoint::save(&self.ctx.state_dir, &key.uid, &pod);
        }
        info!(pod = %key.ns_name(), uid = %key.uid, "pod assigned");
        let actor = self.spawn_pod(myself, pod.clone()).await;
        self.pods.insert(
            key.uid.clone(),
            Entry {
                pod,
                source,
                actor,
                status: None,
                terminating: None,
            },
        );
        Ok(())
    }

    fn remove(&mut self, uid: &str, grace: Option<Duration>) -> bool {
        let Some(entry) = self.pods.get_mut(uid) else {
            return false;
        };
        if entry.terminating.is_none() {
            entry.terminating = Some(grace);
            if let Some(actor) = &entry.actor {
                let _ = actor.cast(PodMsg::Terminate { grace });
            }
        }
        true
    }

    fn broadcast(&self, report: Report) {
        // No receivers is fine: nobody is watching.
        let _ = self.reports.send(report);
    }
}

/// Removes what a previous life of this node left and nobody owns now:
/// containers of unknown pods, and their pod folders.
async fn remove_orphans(ctx: Arc<NodeContext>, known: Vec<String>) {
    let Ok(all) = ctx.runtime.list_containers(&LabelFilter::new()).await else {
        return;
    };
    for c in all {
        let uid = c
            .labels
            .get(crate::runtime::labels::POD_UID)
            .cloned()
            .unwrap_or_default();
        if !known.contains(&uid) {
            info!(container = %c.id, pod_uid = %uid, "removing orphaned container");
            let _ = ctx.runtime.remove_container(&c.id).await;
            let key = PodKey {
                namespace: c
                    .labels
                    .get(crate::runtime::labels::POD_NAMESPACE)
                    .cloned()
                    .unwrap_or_default(),
                name: c
                    .labels
                    .get(crate::runtime::labels::POD_NAME)
                    .cloned()
                    .unwrap_or_default(),
                uid,
            };
            let _ = ctx.network.teardown(&key).await;
            let _ = tokio::fs::remove_dir_all(key.dir(&ctx.state_dir)).await;
        }
    }
}

impl Actor for NodeAgent {
    type Msg = NodeMsg;
    type State = NodeState;
    type Arguments = NodeArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<NodeMsg>,
        args: NodeArgs,
    ) -> Result<NodeState, ActorProcessingErr> {
        let (reports, _) = broadcast::channel(4096);
        let mut state = NodeState {
            ctx: args.ctx,
            pods: HashMap::new(),
            reports,
        };
        for (pod, source) in args.initial {
            if let Err(e) = state.assign(&myself, pod, source).await {
                warn!(error = %e, "skipping pod from an earlier run");
            }
        }
        let known: Vec<String> = state.pods.keys().cloned().collect();
        tokio::spawn(remove_orphans(state.ctx.clone(), known));
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<NodeMsg>,
        msg: NodeMsg,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            NodeMsg::Assign { pod, source, reply } => {
                let result = state.assign(&myself, *pod, source).await;
                if let Err(e) = &result {
                    warn!(error = %e, "pod rejected");
                }
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            NodeMsg::Remove { uid, grace, reply } => {
                let found = state.remove(&uid, grace);
                if let Some(reply) = reply {
                    let _ = reply.send(found);
                }
            }
            NodeMsg::SyncApiPods { pods, reply } => {
                let mut rejected = Vec::new();
                let mut wanted = Vec::new();
                for pod in pods {
                    let uid = pod.metadata.uid.clone().unwrap_or_default();
                    wanted.push(uid.clone());
                    if let Err(e) = state.assign(&myself, pod, PodSource::Api).await {
                        rejected.push((uid, e));
                    }
                }
                let stale: Vec<String> = state
                    .pods
                    .iter()
                    .filter(|(uid, e)| e.source == PodSource::Api && !wanted.contains(uid))
                    .map(|(uid, _)| uid.clone())
                    .collect();
                for uid in stale {
                    state.remove(&uid, None);
                }
                let _ = reply.send(rejected);
            }
            NodeMsg::PodStatus { uid, status } => {
                if let Some(entry) = state.pods.get_mut(&uid) {
                    entry.status = Some(*status);
                    let report = entry.report();
                    state.broadcast(report);
                }
            }
            NodeMsg::Event(event) => {
                info!(reason = %event.reason, message = %event.message, "event");
                state.broadcast(Report::Event(event));
            }
            NodeMsg::PodGone { uid } => {
                if let Some(entry) = state.pods.remove(&uid) {
                    let key = PodKey::of(&entry.pod);
                    info!(pod = %key.ns_name(), uid = %uid, "pod removed");
                    checkpoint::remove(&state.ctx.state_dir, &uid);
                    state.broadcast(Report::Gone(key));
                }
            }
            NodeMsg::ListPods(reply) => {
                let mut pods: Vec<Pod> = state.pods.values().map(Entry::with_status).collect();
                pods.sort_by(|a, b| {
                    (&a.metadata.namespace, &a.metadata.name)
                        .cmp(&(&b.metadata.namespace, &b.metadata.name))
                });
                let _ = reply.send(pods);
            }
            NodeMsg::Watch(reply) => {
                let snapshot = state.pods.values().map(Entry::report).collect();
                let _ = reply.send((snapshot, state.reports.subscribe()));
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<NodeMsg>,
        event: SupervisionEvent,
        state: &mut NodeState,
    ) -> Result<(), ActorProcessingErr> {
        // Policy: a pod actor that fails is restarted with the same pod; it
        // re-adopts its containers from the runtime, so nothing restarts.
        if let SupervisionEvent::ActorFailed(cell, reason) = event {
            let failed = |cell: &ActorCell, e: &Entry| {
                e.actor
                    .as_ref()
                    .is_some_and(|a| a.get_id() == cell.get_id())
            };
            let uid = state
                .pods
                .iter()
                .find(|(_, e)| failed(&cell, e))
                .map(|(uid, _)| uid.clone());
            if let Some(uid) = uid {
                warn!(pod_uid = %uid, %reason, "pod actor failed; restarting it");
                let pod = state.pods[&uid].pod.clone();
                let actor = state.spawn_pod(&myself, pod).await;
                if let Some(entry) = state.pods.get_mut(&uid) {
                    if let (Some(actor), Some(grace)) = (&actor, entry.terminating) {
                        let _ = actor.cast(PodMsg::Terminate { grace });
                    }
                    entry.actor = actor;
                }
            }
        }
        Ok(())
    }
}

/// A cheap, clonable handle to a running node agent.
#[derive(Clone)]
pub struct NodeHandle {
    /// The node agent.
    pub agent: ActorRef<NodeMsg>,
    /// Shared context.
    pub ctx: Arc<NodeContext>,
}

/// Errors of [`NodeHandle`] calls.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The pod is invalid.
    #[error("{0}")]
    Invalid(String),
    /// The node agent is not running.
    #[error("node agent unavailable: {0}")]
    Unavailable(String),
}

fn unavailable(e: impl std::fmt::Display) -> NodeError {
    NodeError::Unavailable(e.to_string())
}

fn unavailable_text(e: String) -> NodeError {
    NodeError::Unavailable(e)
}

impl NodeHandle {
    /// Starts the node agent with `initial` pods.
    pub async fn start(
        ctx: Arc<NodeContext>,
        initial: Vec<(Pod, PodSource)>,
    ) -> Result<Self, NodeError> {
        let args = NodeArgs {
            ctx: ctx.clone(),
            initial,
        };
        let (agent, _) = Actor::spawn(None, NodeAgent, args)
            .await
            .map_err(unavailable)?;
        Ok(Self { agent, ctx })
    }

    /// Runs or updates an API pod.
    pub async fn assign(&self, pod: Pod) -> Result<(), NodeError> {
        self.agent
            .call(
                |reply| NodeMsg::Assign {
                    pod: Box::new(pod),
                    source: PodSource::Api,
                    reply: Some(reply),
                },
                Some(Duration::from_secs(30)),
            )
            .await
            .map_err(unavailable)?
            .into_result(unavailable_text)?
            .map_err(NodeError::Invalid)
    }

    /// Stops and forgets a pod; `false` if unknown.
    pub async fn remove(&self, uid: &str, grace: Option<Duration>) -> Result<bool, NodeError> {
        self.agent
            .call(
                |reply| NodeMsg::Remove {
                    uid: uid.to_string(),
                    grace,
                    reply: Some(reply),
                },
                Some(Duration::from_secs(30)),
            )
            .await
            .map_err(unavailable)?
            .into_result(unavailable_text)
    }

    /// Replaces the set of API pods; returns rejections.
    pub async fn sync(&self, pods: Vec<Pod>) -> Result<Vec<(String, String)>, NodeError> {
        self.agent
            .call(
                |reply| NodeMsg::SyncApiPods { pods, reply },
                Some(Duration::from_secs(60)),
            )
            .await
            .map_err(unavailable)?
            .into_result(unavailable_text)
    }

    /// Every pod with live status.
    pub async fn pods(&self) -> Result<Vec<Pod>, NodeError> {
        self.agent
            .call(NodeMsg::ListPods, Some(Duration::from_secs(30)))
            .await
            .map_err(unavailable)?
            .into_result(unavailable_text)
    }

    /// A snapshot of statuses plus the live report feed.
    pub async fn watch(&self) -> Result<(Vec<Report>, broadcast::Receiver<Report>), NodeError> {
        self.agent
            .call(NodeMsg::Watch, Some(Duration::from_secs(30)))
            .await
            .map_err(unavailable)?
            .into_result(unavailable_text)
    }

    /// Stops the agent and its pod actors; containers keep running (a
    /// kubelet restart must not restart them).
    pub fn shutdown(&self) {
        self.agent.stop(None);
    }
}

/// `CallResult` to `Result`.
trait CallResultExt<T> {
    fn into_result<E>(self, f: impl Fn(String) -> E) -> Result<T, E>;
}

impl<T> CallResultExt<T> for ractor::rpc::CallResult<T> {
    fn into_result<E>(self, f: impl Fn(String) -> E) -> Result<T, E> {
        match self {
            ractor::rpc::CallResult::Success(v) => Ok(v),
            ractor::rpc::CallResult::Timeout => Err(f("timed out".into())),
            ractor::rpc::CallResult::SenderError => Err(f("no reply".into())),
        }
    }
}
