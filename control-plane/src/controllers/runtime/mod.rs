//! The controller runtime every workload controller and the garbage
//! collector run on, in the shape of kube-runtime's: a [`Reconciler`] says
//! what to watch, which keys a change touches and how to reconcile one
//! key; one generic actor ([`Controller`]) owns the rest — the coalescing
//! work queue, the owner index, requeues, the error back-off, the periodic
//! resync and a tracing span per reconcile.
//!
//! Reconcilers are level-triggered: `reconcile` reads the object and what
//! it owns afresh, so it never learns why it runs (a watch event, a
//! requeue, a resync or a retry all look the same).

mod actor;
pub mod owners;
pub mod queue;
#[cfg(test)]
mod tests;

use std::fmt::{Debug, Display};
use std::future::Future;
use std::hash::Hash;
use std::time::Duration;

pub use self::actor::{Controller, RuntimeMsg};
pub use self::owners::{Controlled, ObjectRef, OwnerIndex, Owners, list_refs};
pub use self::queue::retry_delay;
use crate::store::{Event, EventKind};

/// How often every object is reconciled even if nothing changed: a
/// safety net for missed or coalesced-away changes.
pub const RESYNC_PERIOD: Duration = Duration::from_secs(30);

/// What a reconcile asks for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Action {
    requeue_after: Option<Duration>,
}

impl Action {
    /// Reconcile the key again after `delay`, even if nothing changes (a
    /// deadline, a back-off, a pod becoming available).
    pub fn requeue(delay: Duration) -> Self {
        Self {
            requeue_after: Some(delay),
        }
    }

    /// Reconcile again only when a watched change touches the key.
    pub fn await_change() -> Self {
        Self {
            requeue_after: None,
        }
    }

    /// `requeue(delay)` if there is a delay, else `await_change()`.
    pub fn requeue_opt(delay: Option<Duration>) -> Self {
        Self {
            requeue_after: delay,
        }
    }

    /// When to reconcile again without a change.
    pub fn requeue_after(&self) -> Option<Duration> {
        self.requeue_after
    }
}

/// A reconciler's key: which object it is about.
pub trait Key: Clone + Ord + Hash + Debug + Send + Sync + 'static {
    /// The object's kind, for the span.
    fn kind(&self) -> &str;
    /// `namespace/name` (or whatever names the object), for the span.
    fn object_ref(&self) -> String;
    /// The namespace the owner index files the key under; `None` keeps
    /// it out of the index.
    fn namespace(&self) -> Option<&str>;
}

/// What a watch event means to the runtime, decoded on the watch's task.
#[derive(Debug)]
pub enum Trigger<K, C> {
    /// One of the reconciler's own objects was added, changed or deleted:
    /// the runtime files it in the owner index and queues (or forgets) it.
    Object(EventKind, K),
    /// Re-list the reconciler's objects and queue them all.
    Resync,
    /// A dependent changed: the runtime queues its controller or, for an
    /// orphan, every object of its namespace (each may adopt it).
    Dependent(Controlled<K>),
    /// Something in this namespace changed that may concern every object
    /// of the reconciler's there: the runtime queues them all.
    Namespace(String),
    /// Something else changed; [`Reconciler::changes`] says which keys
    /// it touches.
    Change(C),
}

/// One controller's logic; see the module documentation.
pub trait Reconciler: Send + 'static {
    /// Which object a reconcile is about.
    type Key: Key;
    /// A decoded watch event that is not about the reconciler's own
    /// objects (a pod, a node, a dependent).
    type Change: Debug + Send + 'static;
    /// Why a reconcile failed.
    type Error: Display + Send + 'static;

    /// The controller's name in logs and spans.
    const NAME: &'static str;

    /// Store prefixes to watch; [`Self::decode`] learns the index.
    fn watches(&self) -> Result<Vec<String>, Self::Error>;

    /// What an event of watch `watch` means (`None` event: the watch
    /// (re)started after a full list). Runs on the watch's task, not the
    /// actor's, so decoding does not hold the queue up.
    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<Self::Key, Self::Change>>;

    /// The keys a change touches (it may also update the reconciler's own
    /// caches); `owners` knows every object of the reconciler's kinds.
    /// Default: none, for reconcilers whose watches decode to no `Change`
    /// (their `Change` is [`std::convert::Infallible`]).
    fn changes(
        &mut self,
        change: Self::Change,
        owners: &OwnerIndex<Self::Key>,
    ) -> impl Future<Output = Result<Vec<Self::Key>, Self::Error>> + Send {
        let _ = (change, owners);
        async { Ok(Vec::new()) }
    }

    /// Every object of the reconciler's kinds (for a resync). Failing
    /// fails the actor, which its supervisor restarts.
    fn list(&mut self) -> impl Future<Output = Result<Vec<Self::Key>, Self::Error>> + Send;

    /// Brings one object's world to its desired state.
    fn reconcile(
        &mut self,
        key: &Self::Key,
    ) -> impl Future<Output = Result<Action, Self::Error>> + Send;

    /// How long to wait after `failures` failed reconciles of `key` in a
    /// row; `None` gives up until a change queues the key again. Default:
    /// 2 s doubling to 60 s, for ever.
    fn error_policy(
        &self,
        key: &Self::Key,
        error: &Self::Error,
        failures: u32,
    ) -> Option<Duration> {
        let _ = (key, error);
        Some(retry_delay(failures))
    }

    /// `key`'s object was deleted: drop what the reconciler remembers of it.
    fn forget(&mut self, key: &Self::Key) {
        let _ = key;
    }

    /// Whether the reconciler can reconcile yet (the garbage collector
    /// waits for every kind to be listed). Queued keys wait.
    fn ready(&self) -> bool {
        true
    }

    /// Keys the last reconcile found also need a reconcile (the garbage
    /// collector's blocking dependents).
    fn follow_ups(&mut self) -> Vec<Self::Key> {
        Vec::new()
    }

    /// How often every object is reconciled anyway; `None`: never.
    fn resync_period(&self) -> Option<Duration> {
        Some(RESYNC_PERIOD)
    }

    /// The span a reconcile of `key` runs in.
    fn span(&self, key: &Self::Key) -> tracing::Span {
        tracing::info_span!(
            "reconcile",
            controller = Self::NAME,
            "object.kind" = key.kind(),
            "object.ref" = %key.object_ref(),
        )
    }
}
