//! The collector's picture of ownership: every watched object by uid, with
//! the owners it names, and the reverse index from an owner's uid to its
//! dependents. The index is kept for owners the picture does not hold
//! (never seen, or deleted), which is how their dependents are found.
//!
//! Changes return the [`Work`] they call for, so the picture stays a plain
//! data structure and the actor decides when to act.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::controllers::head::Meta;
pub use crate::controllers::head::OwnerRef;
use crate::registry::deletion::{FOREGROUND, ORPHAN};
use crate::registry::resources::ResourceType;

/// An object's uid.
pub type Uid = String;

/// One object as the collector sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// Its type.
    pub rt: &'static ResourceType,
    /// Its namespace (`None` for cluster-scoped kinds).
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: Uid,
    /// The owners it names.
    pub owners: Vec<OwnerRef>,
    /// Whether it has a `deletionTimestamp`.
    pub deleting: bool,
    /// Its finalizers.
    pub finalizers: Vec<String>,
}

impl Item {
    fn from_meta(rt: &'static ResourceType, meta: Meta) -> Option<Self> {
        if meta.uid.is_empty() {
            return None;
        }
        Some(Self {
            rt,
            namespace: meta.namespace.filter(|_| rt.namespaced),
            name: meta.name,
            uid: meta.uid,
            owners: meta.owner_references,
            deleting: meta.deletion_timestamp.is_some(),
            finalizers: meta.finalizers,
        })
    }

    /// From a stored object's bytes, reading only its metadata.
    pub fn from_json(rt: &'static ResourceType, bytes: &[u8]) -> Option<Self> {
        Self::from_meta(rt, Meta::from_json(bytes)?)
    }

    /// From an object already decoded.
    pub fn from_value(rt: &'static ResourceType, obj: &Value) -> Option<Self> {
        let meta: Meta = serde_json::from_value(obj.get("metadata")?.clone()).ok()?;
        Self::from_meta(rt, meta)
    }

    /// Being deleted in the foreground: it waits for its blocking dependents.
    pub fn waits_for_dependents(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == FOREGROUND)
    }

    /// Being deleted with its dependents orphaned.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.finalizers.iter().any(|f| f == ORPHAN)
    }

    /// Whether a foreground deletion of `owner` waits for this object.
    pub fn blocks(&self, owner: &str) -> bool {
        self.owners
            .iter()
            .any(|r| r.uid == owner && r.block_owner_deletion == Some(true))
    }

    /// `namespace/name` (or `name`), for logs.
    pub fn path(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// What the collector has to look at.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Work {
    /// Whether the object's owners are all gone (then it goes too), or, for
    /// an owner deleted in the foreground, whether its blocking dependents
    /// are gone (then its `foregroundDeletion` finalizer goes).
    AttemptToDelete(Uid),
    /// An owner deleted with `orphan`: strip its references from its
    /// dependents, then its finalizer.
    AttemptToOrphan(Uid),
}

/// See the module documentation.
#[derive(Debug, Default)]
pub struct Graph {
    items: HashMap<Uid, Item>,
    dependents: HashMap<Uid, BTreeSet<Uid>>,
}

impl Graph {
    /// The object of `uid`, if in the picture.
    pub fn get(&self, uid: &str) -> Option<&Item> {
        self.items.get(uid)
    }

    /// How many objects the picture holds.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the picture is empty.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The objects naming `owner` as an owner.
    pub fn dependents_of(&self, owner: &str) -> Vec<&Item> {
        self.dependents
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|d| self.items.get(d))
            .collect()
    }

    /// The dependents a foreground deletion of `owner` waits for.
    pub fn blocking_dependents(&self, owner: &str) -> Vec<&Item> {
        self.dependents_of(owner)
            .into_iter()
            .filter(|d| d.blocks(owner))
            .collect()
    }

    fn unlink(&mut self, owner: &str, dependent: &str) {
        if let Some(set) = self.dependents.get_mut(owner) {
            set.remove(dependent);
            if set.is_empty() {
                self.dependents.remove(owner);
            }
        }
    }

    fn waiting(&self, uid: &str) -> bool {
        self.items.get(uid).is_some_and(Item::waits_for_dependents)
    }

    /// Records `item` as it is now.
    pub fn upsert(&mut self, item: Item) -> Vec<Work> {
        let mut work = Vec::new();
        let old_owners: Vec<Uid> = self
            .items
            .remove(&item.uid)
            .map(|old| old.owners.into_iter().map(|r| r.uid).collect())
            .unwrap_or_default();
        for owner in &old_owners {
            self.unlink(owner, &item.uid);
        }
        for r in &item.owners {
            self.dependents
                .entry(r.uid.clone())
                .or_default()
                .insert(item.uid.clone());
        }
        if item.waits_for_dependents() {
            work.push(Work::AttemptToDelete(item.uid.clone()));
        }
        if item.orphaning() {
            work.push(Work::AttemptToOrphan(item.uid.clone()));
        }
        // An owner waiting on its dependents looks again whenever one
        // changes or stops naming it.
        let named: HashSet<&str> = item.owners.iter().map(|r| r.uid.as_str()).collect();
        for owner in old_owners.iter().filter(|o| !named.contains(o.as_str())) {
            if self.waiting(owner) {
                work.push(Work::AttemptToDelete(owner.clone()));
            }
        }
        let mut unseen_owner = false;
        for r in &item.owners {
            match self.items.get(&r.uid) {
                // Not seen (yet, or any more): whether it exists is checked.
                None => unseen_owner = true,
                Some(owner) if owner.waits_for_dependents() => {
                    work.push(Work::AttemptToDelete(owner.uid.clone()));
                }
                Some(_) => {}
            }
        }
        if unseen_owner {
            work.push(Work::AttemptToDelete(item.uid.clone()));
        }
        self.items.insert(item.uid.clone(), item);
        work
    }

    /// Forgets the object `uid`, which was deleted.
    pub fn remove(&mut self, uid: &str) -> Vec<Work> {
        let Some(item) = self.items.remove(uid) else {
            return Vec::new();
        };
        let mut work = Vec::new();
        for r in &item.owners {
            self.unlink(&r.uid, uid);
            if self.waiting(&r.uid) {
                work.push(Work::AttemptToDelete(r.uid.clone()));
            }
        }
        work.extend(
            self.dependents
                .get(uid)
                .into_iter()
                .flatten()
                .map(|d| Work::AttemptToDelete(d.clone())),
        );
        work
    }

    /// Replaces every object of `rt` by a fresh listing of that type.
    pub fn replace_type(&mut self, rt: &ResourceType, listed: Vec<Item>) -> Vec<Work> {
        let fresh: HashSet<&str> = listed.iter().map(|i| i.uid.as_str()).collect();
        let gone: Vec<Uid> = self
            .items
            .values()
            .filter(|i| {
                i.rt.group == rt.group
                    && i.rt.plural == rt.plural
                    && !fresh.contains(i.uid.as_str())
            })
            .map(|i| i.uid.clone())
            .collect();
        let mut work = Vec::new();
        for uid in gone {
            work.extend(self.remove(&uid));
        }
        for item in listed {
            work.extend(self.upsert(item));
        }
        work
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::registry::resources;

    fn rt(plural: &str) -> &'static ResourceType {
        resources::RESOURCES
            .iter()
            .find(|r| r.plural == plural)
            .expect("type")
    }

    fn item(plural: &str, uid: &str, owners: &[(&str, bool)]) -> Item {
        let refs: Vec<Value> = owners
            .iter()
            .map(|(o, block)| json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": o, "uid": o, "blockOwnerDeletion": block}))
            .collect();
        let obj = json!({"metadata": {"name": uid, "namespace": "default", "uid": uid, "ownerReferences": refs}});
        Item::from_value(rt(plural), &obj).expect("item")
    }

    fn foreground(mut i: Item) -> Item {
        i.deleting = true;
        i.finalizers = vec![FOREGROUND.into()];
        i
    }

    #[test]
    fn metadata_is_read_from_the_stored_bytes() {
        let bytes = br#"{"kind":"Pod","metadata":{"name":"p","namespace":"ns","uid":"u1",
            "finalizers":["orphan"],"deletionTimestamp":"2026-01-01T00:00:00Z",
            "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"rs","uid":"o1","controller":true,"blockOwnerDeletion":true}]},
            "spec":{"containers":[]}}"#;
        let i = Item::from_json(rt("pods"), bytes).expect("item");
        assert_eq!((i.path(), i.uid.as_str()), ("ns/p".to_string(), "u1"));
        assert!(i.orphaning() && !i.waits_for_dependents());
        assert!(i.blocks("o1") && !i.blocks("o2"));
        assert_eq!(i.owners[0].kind, "ReplicaSet");
        // Cluster-scoped kinds have no namespace, whatever the object says.
        let node = Item::from_json(
            rt("nodes"),
            br#"{"metadata":{"name":"n","namespace":"x","uid":"n1"}}"#,
        )
        .expect("node");
        assert_eq!(node.namespace, None);
        assert!(Item::from_json(rt("pods"), br#"{"metadata":{"name":"no-uid"}}"#).is_none());
    }

    #[test]
    fn a_dependent_of_an_unseen_owner_is_checked() {
        let mut g = Graph::default();
        assert_eq!(
            g.upsert(item("pods", "p1", &[("rs1", true)])),
            vec![Work::AttemptToDelete("p1".into())]
        );
        // Once the owner is seen, a change of the dependent needs no check.
        assert!(g.upsert(item("replicasets", "rs1", &[])).is_empty());
        assert!(g.upsert(item("pods", "p1", &[("rs1", true)])).is_empty());
        assert_eq!(g.dependents_of("rs1").len(), 1);
    }

    #[test]
    fn deleting_an_owner_checks_its_dependents() {
        let mut g = Graph::default();
        g.upsert(item("replicasets", "rs1", &[]));
        g.upsert(item("pods", "p1", &[("rs1", true)]));
        g.upsert(item("pods", "p2", &[("rs1", false)]));
        let mut work = g.remove("rs1");
        work.sort();
        assert_eq!(
            work,
            vec![
                Work::AttemptToDelete("p1".into()),
                Work::AttemptToDelete("p2".into())
            ]
        );
        // The index outlives the owner: its dependents still name it.
        assert_eq!(g.dependents_of("rs1").len(), 2);
        assert!(g.get("rs1").is_none());
    }

    #[test]
    fn a_foreground_owner_looks_again_when_a_blocking_dependent_changes_or_goes() {
        let mut g = Graph::default();
        g.upsert(item("pods", "p1", &[("rs1", true)]));
        g.upsert(item("pods", "p2", &[("rs1", false)]));
        assert_eq!(
            g.upsert(foreground(item("replicasets", "rs1", &[]))),
            vec![Work::AttemptToDelete("rs1".into())]
        );
        let blocking: Vec<&str> = g
            .blocking_dependents("rs1")
            .iter()
            .map(|i| i.uid.as_str())
            .collect();
        assert_eq!(blocking, vec!["p1"]);
        let mut terminating = item("pods", "p1", &[("rs1", true)]);
        terminating.deleting = true;
        assert_eq!(
            g.upsert(terminating),
            vec![Work::AttemptToDelete("rs1".into())]
        );
        assert_eq!(g.remove("p1"), vec![Work::AttemptToDelete("rs1".into())]);
        assert!(g.blocking_dependents("rs1").is_empty());
        // A dependent that stops naming it also wakes it.
        assert_eq!(
            g.upsert(item("pods", "p2", &[])),
            vec![Work::AttemptToDelete("rs1".into())]
        );
    }

    #[test]
    fn an_orphaning_owner_is_queued_for_orphaning() {
        let mut g = Graph::default();
        let mut rs = item("replicasets", "rs1", &[]);
        rs.deleting = true;
        rs.finalizers = vec![ORPHAN.into()];
        assert_eq!(g.upsert(rs), vec![Work::AttemptToOrphan("rs1".into())]);
    }

    #[test]
    fn a_fresh_listing_forgets_what_it_no_longer_holds() {
        let mut g = Graph::default();
        g.upsert(item("replicasets", "rs1", &[]));
        g.upsert(item("replicasets", "rs2", &[]));
        g.upsert(item("pods", "p1", &[("rs1", true)]));
        let work = g.replace_type(rt("replicasets"), vec![item("replicasets", "rs2", &[])]);
        assert_eq!(work, vec![Work::AttemptToDelete("p1".into())]);
        assert!(g.get("rs1").is_none() && g.get("rs2").is_some() && g.get("p1").is_some());
        assert_eq!(g.len(), 2);
    }
}
