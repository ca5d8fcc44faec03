//! The garbage collector, as upstream's: it deletes objects whose owners
//! (`metadata.ownerReferences`, matched by uid) are all gone, and carries
//! out the deletions the API server leaves to it through finalizers:
//!
//! - `Background` (kubectl's default): the owner is removed at once; its
//!   dependents follow when the collector sees them ownerless.
//! - `Foreground`: the owner stays with `deletionTimestamp` and the
//!   `foregroundDeletion` finalizer; the collector deletes its dependents
//!   and removes the finalizer once no dependent with
//!   `blockOwnerDeletion: true` is left, which removes the owner.
//! - `Orphan`: the owner stays with the `orphan` finalizer until the
//!   collector has removed its uid from every dependent's references.
//!
//! The collector keeps a [`graph::Graph`] of every watched object (all
//! kinds but Events, fed by store watches after a full list of each) and
//! acts only once every kind was listed. Whether an owner exists is asked
//! of the store when the graph does not know it (so an owner that never
//! existed, or a namesake with another uid, counts as gone).

pub mod decide;
pub mod graph;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde_json::Value;
use tracing::{debug, info, info_span};

use self::decide::{Action, OwnerState, decide};
use self::graph::{Graph, Item, OwnerRef, Uid, Work};
use super::claim;
use super::runtime::{self, Controller, Key, OwnerIndex, Reconciler, Trigger, retry_delay};
use crate::registry::deletion::{self, DeleteOptions, FOREGROUND, ORPHAN};
use crate::registry::objects::Objects;
use crate::registry::resources::{self, RESOURCES, ResourceType};
use crate::store::{Event, EventKind, StoreError};

/// Why one piece of work failed (it is retried with back-off).
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An owner reference names a kind the API does not serve (yet).
    #[error("cannot resolve the owner kind {kind} of {api_version}")]
    UnknownKind {
        /// The reference's `apiVersion`.
        api_version: String,
        /// The reference's `kind`.
        kind: String,
    },
}

/// What a watch event means to the collector.
#[derive(Debug)]
pub enum GcChange {
    /// The watch of `RESOURCES[i]` (re)started: list that kind afresh.
    Listed(usize),
    /// An object of `RESOURCES[ty]` changed at `revision` (for `Deleted`,
    /// its last state).
    Changed {
        /// Index of its type in `RESOURCES`.
        ty: usize,
        /// What happened.
        kind: EventKind,
        /// When.
        revision: u64,
        /// The object's metadata.
        item: Box<Item>,
    },
}

/// Failures in a row after which a piece of work is dropped (until a
/// change queues it again): about five minutes of back-off.
const MAX_ATTEMPTS: u32 = 10;

/// Verified-absent owners kept before the cache starts over.
const ABSENT_CACHE: usize = 10_000;

/// The kinds the collector watches: all but Events, which nothing owns
/// and which are written the most (upstream ignores them too).
fn watched() -> impl Iterator<Item = (usize, &'static ResourceType)> {
    RESOURCES
        .iter()
        .enumerate()
        .filter(|(_, rt)| rt.kind != "Event")
}

/// The collector actor.
pub type GarbageCollector = Controller<Collector>;

/// Starts a garbage collector over `objects` outside the supervisor, for
/// tests of the controllers whose objects it cleans up.
#[cfg(test)]
pub(crate) async fn start_unsupervised(
    objects: &Objects,
) -> ractor::ActorRef<runtime::RuntimeMsg<Collector>> {
    let args = (objects.store().clone(), Collector::new(objects.clone()));
    let (gc, _) = ractor::Actor::spawn(None, GarbageCollector::default(), args)
        .await
        .expect("spawn the garbage collector");
    gc
}

/// The collector's reconciler: its key is a piece of [`Work`] about one
/// object (by uid).
pub struct Collector {
    objects: Objects,
    graph: Graph,
    /// Kinds listed at least once, with the revision of their last listing
    /// (events up to it are in the listing already).
    listed: HashMap<usize, u64>,
    /// Work the last reconcile found (blocking dependents to delete).
    follow_ups: Vec<Work>,
    /// Owner uids verified absent: uids are never reused, so they stay so.
    absent: HashSet<Uid>,
}

impl Key for Work {
    fn kind(&self) -> &str {
        ""
    }

    fn object_ref(&self) -> String {
        match self {
            Work::AttemptToDelete(uid) | Work::AttemptToOrphan(uid) => uid.to_string(),
        }
    }

    fn namespace(&self) -> Option<&str> {
        None
    }
}

impl Reconciler for Collector {
    type Key = Work;
    type Change = GcChange;
    type Error = GcError;
    const NAME: &'static str = "garbage-collector";

    fn watches(&self) -> Result<Vec<String>, GcError> {
        Ok(watched().map(|(_, rt)| rt.prefix()).collect())
    }

    fn decode(watch: usize, event: Option<&Event>) -> Option<Trigger<Work, GcChange>> {
        let (ty, rt) = watched().nth(watch)?;
        let change = match event {
            None => GcChange::Listed(ty),
            // Decoded here, on the watch's task, not in the actor.
            Some(e) => GcChange::Changed {
                ty,
                kind: e.kind,
                revision: e.revision,
                item: Box::new(Item::from_json(rt, &e.value)?),
            },
        };
        Some(Trigger::Change(change))
    }

    async fn changes(
        &mut self,
        change: GcChange,
        _: &OwnerIndex<Work>,
    ) -> Result<Vec<Work>, GcError> {
        Ok(match change {
            GcChange::Listed(ty) => self.resync(ty).await?,
            GcChange::Changed {
                ty,
                kind,
                revision,
                item,
            } => self.changed(ty, kind, revision, *item),
        })
    }

    /// The collector has no objects of its own to list: its graph is
    /// rebuilt kind by kind as each watch (re)starts.
    async fn list(&mut self) -> Result<Vec<Work>, GcError> {
        Ok(Vec::new())
    }

    async fn reconcile(&mut self, work: &Work) -> Result<runtime::Action, GcError> {
        self.process(work).await?;
        Ok(runtime::Action::await_change())
    }

    fn error_policy(&self, _: &Work, _: &GcError, failures: u32) -> Option<Duration> {
        (failures < MAX_ATTEMPTS).then(|| retry_delay(failures))
    }

    fn ready(&self) -> bool {
        self.synced()
    }

    fn follow_ups(&mut self) -> Vec<Work> {
        std::mem::take(&mut self.follow_ups)
    }

    /// Every watch event already says what to look at.
    fn resync_period(&self) -> Option<Duration> {
        None
    }

    fn span(&self, work: &Work) -> tracing::Span {
        let (what, uid) = match work {
            Work::AttemptToDelete(uid) => ("attempt_to_delete", uid),
            Work::AttemptToOrphan(uid) => ("attempt_to_orphan", uid),
        };
        let item = self.graph.get(uid);
        let object_ref = match item {
            Some(Item {
                namespace: Some(ns),
                name,
                ..
            }) => format!("{ns}/{name}"),
            Some(item) => item.name.clone(),
            None => String::new(),
        };
        info_span!(
            "reconcile",
            controller = Self::NAME,
            work = what,
            "object.kind" = item.map_or("", |i| i.rt.kind),
            "object.ref" = %object_ref,
            uid = %uid,
        )
    }
}

impl Collector {
    /// The collector, reading and deleting through `objects`.
    pub fn new(objects: Objects) -> Self {
        Self {
            objects,
            graph: Graph::default(),
            listed: HashMap::new(),
            follow_ups: Vec::new(),
            absent: HashSet::new(),
        }
    }

    fn synced(&self) -> bool {
        watched().all(|(i, _)| self.listed.contains_key(&i))
    }

    async fn resync(&mut self, ty: usize) -> Result<Vec<Work>, GcError> {
        let Some(rt) = RESOURCES.get(ty) else {
            return Ok(Vec::new());
        };
        let listing = self.objects.store().list(&rt.prefix()).await?;
        let items = listing
            .items
            .iter()
            .filter_map(|kv| Item::from_json(rt, &kv.value))
            .collect();
        let work = self.graph.replace_type(rt, items);
        let first = self.listed.insert(ty, listing.revision).is_none();
        if first && self.synced() {
            info!(
                objects = self.graph.len(),
                "garbage collector: every kind listed"
            );
        }
        Ok(work)
    }

    fn changed(&mut self, ty: usize, kind: EventKind, revision: u64, item: Item) -> Vec<Work> {
        // Already in the listing the graph was built from.
        if self
            .listed
            .get(&ty)
            .is_none_or(|listed| revision <= *listed)
        {
            return Vec::new();
        }
        match kind {
            EventKind::Deleted => self.graph.remove(&item.uid),
            _ => self.graph.upsert(item),
        }
    }

    async fn process(&mut self, work: &Work) -> Result<(), GcError> {
        match work {
            Work::AttemptToDelete(uid) => self.attempt_to_delete(uid).await,
            Work::AttemptToOrphan(uid) => self.attempt_to_orphan(uid).await,
        }
    }

    /// The object of `uid` as stored now, if it is still that object.
    async fn latest(&self, uid: &str) -> Result<Option<(Item, Value)>, GcError> {
        let Some(item) = self.graph.get(uid) else {
            return Ok(None);
        };
        let namespace = item.namespace.as_deref();
        // Gone: its deletion event is on the way.
        let Some(obj) = self.objects.find(item.rt, namespace, &item.name).await? else {
            return Ok(None);
        };
        // A namesake: the object we know was deleted.
        Ok(Item::from_value(item.rt, &obj)
            .filter(|latest| latest.uid == uid)
            .map(|latest| (latest, obj)))
    }

    async fn attempt_to_delete(&mut self, uid: &str) -> Result<(), GcError> {
        let Some((item, obj)) = self.latest(uid).await? else {
            return Ok(());
        };
        if item.deleting {
            if item.waits_for_dependents() {
                self.process_deleting_dependents(&item).await?;
            }
            return Ok(());
        }
        let mut states = Vec::with_capacity(item.owners.len());
        for owner in &item.owners {
            states.push((owner.uid.clone(), self.owner_state(&item, owner).await?));
        }
        let has_dependents = !self.graph.dependents_of(uid).is_empty();
        match decide(&item, &states, has_dependents) {
            Action::Keep => {}
            Action::RemoveReferences(stale) => {
                info!(owners = ?stale, "removing references to owners that are gone or waiting");
                self.remove_references(&item, &stale).await?;
            }
            Action::Delete(policy) => {
                let options = DeleteOptions {
                    propagation: Some(policy),
                    grace_period_seconds: self.grace_for(&item, &obj).await?,
                    uid: Some(item.uid.clone()),
                    resource_version: None,
                };
                let outcome = self
                    .objects
                    .delete_with(item.rt, item.namespace.as_deref(), &item.name, &options)
                    .await?;
                info!(
                    policy = policy.as_str(),
                    ?outcome,
                    "deleted an object whose owners are gone"
                );
            }
        }
        Ok(())
    }

    /// An owner deleted in the foreground: its blocking dependents are
    /// deleted; once none is left, so is its `foregroundDeletion` finalizer.
    async fn process_deleting_dependents(&mut self, owner: &Item) -> Result<(), GcError> {
        let blocking = self.graph.blocking_dependents(&owner.uid);
        let waiting = blocking.len();
        let to_delete: Vec<Uid> = blocking
            .iter()
            .filter(|d| !d.deleting)
            .map(|d| d.uid.clone())
            .collect();
        if waiting == 0 {
            info!("no blocking dependents left: removing the {FOREGROUND} finalizer");
            return self.remove_finalizer(owner, FOREGROUND).await;
        }
        debug!(
            waiting,
            to_delete = to_delete.len(),
            "waiting for blocking dependents"
        );
        self.follow_ups
            .extend(to_delete.into_iter().map(Work::AttemptToDelete));
        Ok(())
    }

    /// An owner deleted with `orphan`: its dependents lose their reference
    /// to it, then it loses its finalizer.
    async fn attempt_to_orphan(&mut self, uid: &str) -> Result<(), GcError> {
        let Some((owner, _)) = self.latest(uid).await? else {
            return Ok(());
        };
        if !owner.orphaning() {
            return Ok(());
        }
        let dependents: Vec<Item> = self.graph.dependents_of(uid).into_iter().cloned().collect();
        for dependent in &dependents {
            self.remove_references(dependent, std::slice::from_ref(&owner.uid))
                .await?;
        }
        info!(
            dependents = dependents.len(),
            "dependents orphaned: removing the {ORPHAN} finalizer"
        );
        self.remove_finalizer(&owner, ORPHAN).await
    }

    /// How the owner `reference` of `dependent` stands.
    async fn owner_state(
        &mut self,
        dependent: &Item,
        reference: &OwnerRef,
    ) -> Result<OwnerState, GcError> {
        if self.absent.contains(&reference.uid) {
            return Ok(OwnerState::Dangling);
        }
        let rt = resources::by_kind(&reference.api_version, &reference.kind).ok_or_else(|| {
            GcError::UnknownKind {
                api_version: reference.api_version.clone(),
                kind: reference.kind.clone(),
            }
        })?;
        // A namespaced owner can only be in its dependent's namespace.
        if rt.namespaced && dependent.namespace.is_none() {
            return Ok(OwnerState::Dangling);
        }
        let namespace = dependent.namespace.as_deref().filter(|_| rt.namespaced);
        let state = |owner: &Item| {
            if owner.waits_for_dependents() {
                OwnerState::WaitingForDependents
            } else {
                OwnerState::Solid
            }
        };
        // Known to the graph: a deletion would already be on its way to us.
        if let Some(owner) = self.graph.get(&reference.uid)
            && owner.rt == rt
            && owner.namespace.as_deref() == namespace
        {
            return Ok(state(owner));
        }
        let found = (self.objects.find(rt, namespace, &reference.name).await?)
            .and_then(|obj| Item::from_value(rt, &obj))
            .filter(|o| o.uid == reference.uid);
        match found {
            Some(owner) => Ok(state(&owner)),
            None => {
                if self.absent.len() >= ABSENT_CACHE {
                    self.absent.clear();
                }
                self.absent.insert(reference.uid.clone());
                Ok(OwnerState::Dangling)
            }
        }
    }

    /// The grace period to delete `item` with: a pod bound to a node that
    /// no longer exists goes at once, as nothing is left to confirm it
    /// (upstream's pod GC removes such pods); others get their own.
    async fn grace_for(&self, item: &Item, obj: &Value) -> Result<Option<i64>, GcError> {
        if item.rt.kind != "Pod" {
            return Ok(None);
        }
        let Some(node) = obj["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let nodes = crate::registry::kinds::NODES;
        let gone = self.objects.find(nodes, None, node).await?.is_none();
        Ok(gone.then_some(0))
    }

    /// Drops `dependent`'s references to the owners `stale`.
    async fn remove_references(&self, dependent: &Item, stale: &[Uid]) -> Result<(), GcError> {
        let updated = self
            .objects
            .update(
                dependent.rt,
                dependent.namespace.as_deref(),
                &dependent.name,
                |obj| {
                    if obj["metadata"]["uid"].as_str() != Some(dependent.uid.as_str()) {
                        return false;
                    }
                    claim::release(obj, |uid| stale.iter().any(|s| s == uid))
                },
            )
            .await;
        match updated {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes `finalizer` from `item` (which an emptied list deletes).
    async fn remove_finalizer(&self, item: &Item, finalizer: &str) -> Result<(), GcError> {
        let updated = self
            .objects
            .update(item.rt, item.namespace.as_deref(), &item.name, |obj| {
                if obj["metadata"]["uid"].as_str() != Some(item.uid.as_str()) {
                    return false;
                }
                let before = deletion::finalizers(obj);
                if !before.iter().any(|f| f == finalizer) {
                    return false;
                }
                let after = before.into_iter().filter(|f| f != finalizer).collect();
                deletion::set_finalizers(obj, after);
                true
            })
            .await;
        match updated {
            Ok(_) | Err(StoreError::NotFound(_)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests;
