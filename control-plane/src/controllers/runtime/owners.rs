//! The owner index: every object of a controller's own kinds by
//! namespace, so that a change to a dependent with no controller (an
//! orphan it may adopt) queues every candidate owner of its namespace.
//! The runtime keeps it from the controller's watch and resyncs; the
//! controllers only read it.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::{Key, Trigger};
use crate::controllers::{metadata_of, object_of};
use crate::meta;
use crate::registry::objects::Objects;
use crate::registry::resources::ResourceType;
use crate::store::{Event, StoreError};

/// A namespaced object of a known kind: the key of the workload
/// controllers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectRef {
    /// `kind`, as the controller spells it.
    pub kind: &'static str,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
}

impl ObjectRef {
    /// `kind` `namespace/name`.
    pub fn new(kind: &'static str, namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The object `obj` (its metadata) as a `kind`.
    pub fn of(kind: &'static str, obj: &Value) -> Self {
        Self::new(kind, meta::namespace(obj), meta::name(obj))
    }
}

impl Key for ObjectRef {
    fn kind(&self) -> &str {
        self.kind
    }

    fn object_ref(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn namespace(&self) -> Option<&str> {
        Some(&self.namespace)
    }
}

/// Every object of `rt`, as keys of `kind`: a reconciler's `list`.
pub async fn list_refs(
    objects: &Objects,
    rt: &ResourceType,
    kind: &'static str,
) -> Result<Vec<ObjectRef>, StoreError> {
    let (items, _) = objects.list(rt).await?;
    Ok(items.iter().map(|obj| ObjectRef::of(kind, obj)).collect())
}

/// The kinds a workload controller reconciles, each with the resource it
/// is listed from: what its `watches`, `decode` and `list` share, so that
/// a controller states only its dependents. The owners' watches come
/// first, in this order.
#[derive(Debug, Clone, Copy)]
pub struct Owners(pub &'static [(&'static str, &'static ResourceType)]);

impl Owners {
    /// The watch prefixes: the owners', then `dependents`'.
    pub fn watches(&self, dependents: &[&ResourceType]) -> Vec<String> {
        let owners = self.0.iter().map(|(_, rt)| *rt);
        owners
            .chain(dependents.iter().copied())
            .map(ResourceType::prefix)
            .collect()
    }

    /// What an event of watch `watch` means. An owner's watch files the
    /// owner, or on a (re)start resyncs them all; any other watch is
    /// `dependent`'s to read, given its index among the dependents.
    pub fn decode<C>(
        &self,
        watch: usize,
        event: Option<&Event>,
        dependent: impl FnOnce(usize, Option<&Event>) -> Option<Trigger<ObjectRef, C>>,
    ) -> Option<Trigger<ObjectRef, C>> {
        let Some((kind, _)) = self.0.get(watch) else {
            return dependent(watch - self.0.len(), event);
        };
        match event {
            None => Some(Trigger::Resync),
            Some(e) => Some(Trigger::Object(e.kind, ObjectRef::of(kind, &object_of(e)?))),
        }
    }

    /// Who a dependent's event concerns: `None` when another kind
    /// controls it (see [`Controlled::of`]).
    pub fn controlled(&self, event: &Event) -> Option<Controlled> {
        let dependent = metadata_of(event)?;
        let kinds: Vec<&'static str> = self.0.iter().map(|(kind, _)| *kind).collect();
        Controlled::of(&dependent, &kinds)
    }

    /// A dependent's event as the trigger that queues its controller, or
    /// for an orphan every owner of its namespace.
    pub fn dependent<C>(&self, event: &Event) -> Option<Trigger<ObjectRef, C>> {
        self.controlled(event).map(Trigger::Dependent)
    }

    /// Every owner, for a resync.
    pub async fn list(&self, objects: &Objects) -> Result<Vec<ObjectRef>, StoreError> {
        let mut keys = Vec::new();
        for (kind, rt) in self.0 {
            keys.extend(list_refs(objects, rt, kind).await?);
        }
        Ok(keys)
    }
}

/// Who a dependent's change concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Controlled<K = ObjectRef> {
    /// Its controller, one of ours.
    By(K),
    /// It has no controller: every owner of the namespace may adopt it.
    Orphan(String),
}

impl Controlled {
    /// Reads a dependent's metadata: `None` when another kind than
    /// `kinds` controls it (none of the controller's business).
    pub fn of(dependent: &Value, kinds: &[&'static str]) -> Option<Self> {
        let Some(controller) = meta::controller_ref(dependent) else {
            return Some(Self::Orphan(meta::namespace(dependent).to_string()));
        };
        let kind = kinds.iter().find(|k| controller["kind"] == **k)?;
        let name = controller["name"].as_str()?;
        Some(Self::By(ObjectRef::new(
            kind,
            meta::namespace(dependent),
            name,
        )))
    }
}

/// See the module documentation.
#[derive(Debug)]
pub struct OwnerIndex<K> {
    by_namespace: HashMap<String, BTreeSet<K>>,
}

// Not derived: a derived `Default` would ask the key to be `Default` too.
impl<K> Default for OwnerIndex<K> {
    fn default() -> Self {
        Self {
            by_namespace: HashMap::new(),
        }
    }
}

impl<K: Key> OwnerIndex<K> {
    /// Files `key` (added or changed).
    pub fn insert(&mut self, key: &K) {
        if let Some(ns) = key.namespace() {
            self.by_namespace
                .entry(ns.to_string())
                .or_default()
                .insert(key.clone());
        }
    }

    /// Drops `key` (deleted).
    pub fn remove(&mut self, key: &K) {
        if let Some(keys) = key.namespace().and_then(|ns| self.by_namespace.get_mut(ns)) {
            keys.remove(key);
        }
    }

    /// Starts over from a full listing.
    pub fn replace<'a>(&mut self, keys: impl IntoIterator<Item = &'a K>) {
        self.by_namespace.clear();
        for key in keys {
            self.insert(key);
        }
    }

    /// Every key of `namespace`.
    pub fn in_namespace(&self, namespace: &str) -> Vec<K> {
        self.by_namespace
            .get(namespace)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every key.
    pub fn all(&self) -> Vec<K> {
        self.by_namespace.values().flatten().cloned().collect()
    }

    /// The owners a dependent's change concerns: its controller, or for
    /// an orphan every owner of its namespace.
    pub fn concerned(&self, controlled: Controlled<K>) -> Vec<K> {
        match controlled {
            Controlled::By(owner) => vec![owner],
            Controlled::Orphan(namespace) => self.in_namespace(&namespace),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_dependent_concerns_its_controller_or_every_owner_of_its_namespace() {
        let mut index = OwnerIndex::default();
        for (ns, name) in [("a", "x"), ("a", "y"), ("b", "z")] {
            index.insert(&ObjectRef::new("ReplicaSet", ns, name));
        }
        let owned = json!({"metadata": {"namespace": "a", "ownerReferences": [
            {"kind": "ReplicaSet", "name": "x", "uid": "1", "controller": true}]}});
        let controlled = Controlled::of(&owned, &["ReplicaSet"]).expect("ours");
        assert_eq!(
            index.concerned(controlled),
            [ObjectRef::new("ReplicaSet", "a", "x")]
        );
        let orphan = json!({"metadata": {"namespace": "a"}});
        let controlled = Controlled::of(&orphan, &["ReplicaSet"]).expect("orphan");
        assert_eq!(index.concerned(controlled).len(), 2);
        assert_eq!(
            Controlled::of(&owned, &["StatefulSet"]),
            None,
            "another kind's"
        );
        index.remove(&ObjectRef::new("ReplicaSet", "a", "y"));
        assert_eq!(index.in_namespace("a").len(), 1);
        assert_eq!(index.all().len(), 2);
        index.replace(&[ObjectRef::new("ReplicaSet", "c", "w")]);
        assert_eq!(index.all(), [ObjectRef::new("ReplicaSet", "c", "w")]);
    }
}
