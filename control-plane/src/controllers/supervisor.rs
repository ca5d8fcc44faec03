//! The root actor: starts the scheduler and one node actor per Node
//! object, and restarts any of them that fails (they rebuild their view
//! from the store, so a restart loses nothing).

use std::collections::HashMap;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SupervisionEvent};
use tracing::{info, warn};

use super::node::{NodeActor, NodeActorMsg};
use super::node_lifecycle::{LifecycleConfig, LifecycleMsg, NodeLifecycle};
use super::scheduler::{Scheduler, SchedulerMsg};
use super::{object_of, watch_prefix};
use crate::api::internal::Objects;
use crate::store::EventKind;

/// Supervisor messages.
#[derive(Debug)]
pub enum SupervisorMsg {
    /// Compare node actors with Node objects (after a full list).
    ResyncNodes,
    /// A Node object was added or removed.
    NodeChanged(EventKind, String),
}

/// The supervisor actor.
pub struct Supervisor;

/// Its state.
pub struct SupervisorState {
    objects: Objects,
    scheduler: Option<ActorRef<SchedulerMsg>>,
    lifecycle: Option<ActorRef<LifecycleMsg>>,
    config: LifecycleConfig,
    nodes: HashMap<String, ActorRef<NodeActorMsg>>,
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
                self.nodes.insert(name.to_string(), actor);
            }
            Err(e) => warn!(node = %name, error = %e, "cannot start node actor"),
        }
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = (Objects, LifecycleConfig);

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        (objects, config): (Objects, LifecycleConfig),
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let (scheduler, _) =
            Actor::spawn_linked(None, Scheduler, objects.clone(), myself.get_cell()).await?;
        let (lifecycle, _) = Actor::spawn_linked(
            None,
            NodeLifecycle,
            (objects.clone(), config),
            myself.get_cell(),
        )
        .await?;
        let me = myself.clone();
        watch_prefix(
            objects.store().clone(),
            "/registry/core/nodes/".into(),
            move |event| {
                let msg = match event {
                    None => SupervisorMsg::ResyncNodes,
                    Some(e) => {
                        let name = object_of(&e)
                            .and_then(|o| o["metadata"]["name"].as_str().map(String::from))
                            .unwrap_or_default();
                        SupervisorMsg::NodeChanged(e.kind, name)
                    }
                };
                me.cast(msg).is_ok()
            },
        );
        Ok(SupervisorState {
            objects,
            scheduler: Some(scheduler),
            lifecycle: Some(lifecycle),
            config,
            nodes: HashMap::new(),
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
                let rt = crate::api::resources::find("", "v1", "nodes").ok_or("nodes type")?;
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
            }
            SupervisorMsg::NodeChanged(_, name) => state.start_node(&myself, &name).await,
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
            if state.scheduler.as_ref().is_some_and(|s| is(&s.get_cell())) {
                warn!(%reason, "scheduler failed; restarting it");
                let (scheduler, _) =
                    Actor::spawn_linked(None, Scheduler, state.objects.clone(), myself.get_cell())
                        .await?;
                state.scheduler = Some(scheduler);
            } else if state.lifecycle.as_ref().is_some_and(|l| is(&l.get_cell())) {
                warn!(%reason, "node lifecycle failed; restarting it");
                let (lifecycle, _) = Actor::spawn_linked(
                    None,
                    NodeLifecycle,
                    (state.objects.clone(), state.config),
                    myself.get_cell(),
                )
                .await?;
                state.lifecycle = Some(lifecycle);
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
