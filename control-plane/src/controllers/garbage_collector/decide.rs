//! What to do with a dependent, given the state of each owner it names
//! (upstream's `attemptToDeleteItem` classification).

use super::graph::{Item, Uid};
use crate::registry::deletion::{FOREGROUND, ORPHAN, Propagation};

/// How an owner named by a dependent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// It exists with the uid named and is not deleted in the foreground.
    Solid,
    /// It does not exist, or an object of its name has another uid, or the
    /// reference cannot be valid (a namespaced owner of a cluster-scoped
    /// object).
    Dangling,
    /// It is being deleted in the foreground, waiting for its dependents.
    WaitingForDependents,
}

/// What the collector does with the dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// It keeps a real owner, and names no other: leave it.
    Keep,
    /// It keeps a real owner: only drop its references to these owners.
    RemoveReferences(Vec<Uid>),
    /// No owner holds it any more: delete it with this propagation.
    Delete(Propagation),
}

/// The decision for `item`, whose owners stand as `owners` (one entry per
/// reference); `has_dependents` tells whether objects name it in turn.
pub fn decide(item: &Item, owners: &[(Uid, OwnerState)], has_dependents: bool) -> Action {
    if owners.is_empty() {
        return Action::Keep;
    }
    let solid = owners.iter().any(|(_, s)| *s == OwnerState::Solid);
    if solid {
        let stale: Vec<Uid> = owners
            .iter()
            .filter(|(_, s)| *s != OwnerState::Solid)
            .map(|(uid, _)| uid.clone())
            .collect();
        return if stale.is_empty() {
            Action::Keep
        } else {
            Action::RemoveReferences(stale)
        };
    }
    let waiting = owners
        .iter()
        .any(|(_, s)| *s == OwnerState::WaitingForDependents);
    // An owner waiting in the foreground waits for the whole subtree.
    if waiting && has_dependents {
        return Action::Delete(Propagation::Foreground);
    }
    // A GC finalizer the object already carries is honoured.
    let policy = match item
        .finalizers
        .iter()
        .find(|f| *f == ORPHAN || *f == FOREGROUND)
    {
        Some(f) if f == ORPHAN => Propagation::Orphan,
        Some(_) => Propagation::Foreground,
        None => Propagation::Background,
    };
    Action::Delete(policy)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(finalizers: &[&str]) -> Item {
        let rt = crate::registry::kinds::PODS;
        Item::from_value(
            rt,
            &json!({"metadata": {"name": "p", "namespace": "default", "uid": "p1", "finalizers": finalizers}}),
        )
        .expect("item")
    }

    fn owners(states: &[(&str, OwnerState)]) -> Vec<(Uid, OwnerState)> {
        states.iter().map(|(u, s)| (u.to_string(), *s)).collect()
    }

    #[test]
    fn a_solid_owner_keeps_the_dependent_and_stale_references_go() {
        use OwnerState::*;
        assert_eq!(
            decide(&pod(&[]), &owners(&[("a", Solid)]), false),
            Action::Keep
        );
        assert_eq!(
            decide(
                &pod(&[]),
                &owners(&[("a", Solid), ("b", Dangling), ("c", WaitingForDependents)]),
                false
            ),
            Action::RemoveReferences(vec!["b".into(), "c".into()])
        );
    }

    #[test]
    fn without_a_solid_owner_the_dependent_is_deleted() {
        use OwnerState::*;
        assert_eq!(
            decide(&pod(&[]), &owners(&[("a", Dangling)]), true),
            Action::Delete(Propagation::Background)
        );
        assert_eq!(
            decide(&pod(&[]), &owners(&[("a", WaitingForDependents)]), false),
            Action::Delete(Propagation::Background)
        );
        assert_eq!(
            decide(&pod(&[]), &owners(&[("a", WaitingForDependents)]), true),
            Action::Delete(Propagation::Foreground)
        );
        assert_eq!(
            decide(&pod(&["orphan"]), &owners(&[("a", Dangling)]), true),
            Action::Delete(Propagation::Orphan)
        );
        assert_eq!(
            decide(&pod(&[FOREGROUND]), &owners(&[("a", Dangling)]), false),
            Action::Delete(Propagation::Foreground)
        );
        assert_eq!(decide(&pod(&[]), &[], true), Action::Keep);
    }
}
