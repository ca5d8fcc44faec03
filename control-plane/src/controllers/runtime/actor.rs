//! The one actor every [`Reconciler`] runs in.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;
use tracing::{Instrument, warn};

use super::owners::OwnerIndex;
use super::queue::WorkQueue;
use super::{Reconciler, Trigger};
use crate::controllers::watch_prefix;
use crate::store::{EventKind, Store};

/// Messages of a [`Controller`].
pub enum RuntimeMsg<R: Reconciler> {
    /// A watch event, decoded.
    Watched(Trigger<R::Key, R::Change>),
    /// Reconcile the queued keys.
    Drain,
    /// A requeue or retry is due.
    Due(R::Key),
}

/// The actor; its arguments are the store to watch and the reconciler.
pub struct Controller<R>(PhantomData<fn() -> R>);

impl<R> Default for Controller<R> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// Its state.
pub struct ControllerState<R: Reconciler> {
    reconciler: R,
    queue: WorkQueue<R::Key>,
    owners: OwnerIndex<R::Key>,
    /// The earliest requeue already scheduled per key.
    due: HashMap<R::Key, Instant>,
}

impl<R: Reconciler> ControllerState<R> {
    fn enqueue(&mut self, me: &ActorRef<RuntimeMsg<R>>, keys: impl IntoIterator<Item = R::Key>) {
        for key in keys {
            if self.queue.add(key) {
                let _ = me.cast(RuntimeMsg::Drain);
            }
        }
    }

    /// Reconciles `key` after `delay`, unless an earlier one is scheduled.
    fn schedule(&mut self, me: &ActorRef<RuntimeMsg<R>>, key: R::Key, delay: Duration) {
        let now = Instant::now();
        let at = now + delay;
        if self
            .due
            .get(&key)
            .is_some_and(|pending| *pending > now && *pending <= at)
        {
            return;
        }
        self.due.insert(key.clone(), at);
        me.send_after(delay, move || RuntimeMsg::Due(key));
    }

    async fn watched(
        &mut self,
        me: &ActorRef<RuntimeMsg<R>>,
        trigger: Trigger<R::Key, R::Change>,
    ) -> Result<(), ActorProcessingErr> {
        match trigger {
            Trigger::Object(EventKind::Deleted, key) => {
                self.owners.remove(&key);
                self.queue.forget(&key);
                self.due.remove(&key);
                self.reconciler.forget(&key);
            }
            Trigger::Object(_, key) => {
                self.owners.insert(&key);
                self.enqueue(me, [key]);
            }
            Trigger::Resync => {
                let keys = self.reconciler.list().await.map_err(|e| e.to_string())?;
                self.owners.replace(&keys);
                self.enqueue(me, keys);
            }
            Trigger::Dependent(dependent) => {
                let keys = self.owners.concerned(dependent);
                self.enqueue(me, keys);
            }
            Trigger::Namespace(namespace) => {
                let keys = self.owners.in_namespace(&namespace);
                self.enqueue(me, keys);
            }
            Trigger::Change(change) => {
                let keys = self
                    .reconciler
                    .changes(change, &self.owners)
                    .await
                    .map_err(|e| e.to_string())?;
                self.enqueue(me, keys);
            }
        }
        // A reconciler that was not ready may be now.
        if self.reconciler.ready() && self.queue.kick() {
            let _ = me.cast(RuntimeMsg::Drain);
        }
        Ok(())
    }

    async fn drain(&mut self, me: &ActorRef<RuntimeMsg<R>>) {
        if !self.reconciler.ready() {
            self.queue.hold();
            return;
        }
        // Coalesced: each key reconciles once however many changes queued it.
        for key in self.queue.take() {
            let span = self.reconciler.span(&key);
            let outcome = self
                .reconciler
                .reconcile(&key)
                .instrument(span.clone())
                .await;
            match outcome {
                Ok(action) => {
                    self.queue.succeeded(&key);
                    if let Some(delay) = action.requeue_after() {
                        self.schedule(me, key, delay);
                    }
                }
                Err(e) => {
                    let failures = self.queue.failed(&key);
                    let _entered = span.enter();
                    match self.reconciler.error_policy(&key, &e, failures) {
                        Some(delay) => {
                            warn!(error = %e, retry_in = ?delay, "reconcile failed");
                            self.schedule(me, key, delay);
                        }
                        None => {
                            warn!(error = %e, attempts = failures, "giving up until the object changes again");
                            self.queue.forget(&key);
                        }
                    }
                }
            }
            let more = self.reconciler.follow_ups();
            self.enqueue(me, more);
        }
    }
}

impl<R: Reconciler> Actor for Controller<R> {
    type Msg = RuntimeMsg<R>;
    type State = ControllerState<R>;
    type Arguments = (Arc<dyn Store>, R);

    async fn pre_start(
        &self,
        myself: ActorRef<RuntimeMsg<R>>,
        (store, reconciler): Self::Arguments,
    ) -> Result<ControllerState<R>, ActorProcessingErr> {
        let prefixes = reconciler.watches().map_err(|e| e.to_string())?;
        for (watch, prefix) in prefixes.into_iter().enumerate() {
            let me = myself.clone();
            watch_prefix(store.clone(), prefix, move |event| {
                match R::decode(watch, event.as_ref()) {
                    Some(trigger) => me.cast(RuntimeMsg::Watched(trigger)).is_ok(),
                    None => true,
                }
            });
        }
        if let Some(period) = reconciler.resync_period() {
            myself.send_interval(period, || RuntimeMsg::Watched(Trigger::Resync));
        }
        Ok(ControllerState {
            reconciler,
            queue: WorkQueue::default(),
            owners: OwnerIndex::default(),
            due: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<RuntimeMsg<R>>,
        msg: RuntimeMsg<R>,
        state: &mut ControllerState<R>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RuntimeMsg::Watched(trigger) => state.watched(&myself, trigger).await?,
            RuntimeMsg::Drain => state.drain(&myself).await,
            RuntimeMsg::Due(key) => {
                let now = Instant::now();
                if state.due.get(&key).is_some_and(|at| *at <= now) {
                    state.due.remove(&key);
                }
                state.enqueue(&myself, [key]);
            }
        }
        Ok(())
    }
}
