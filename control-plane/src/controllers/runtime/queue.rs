//! The runtime's work queue: keys waiting for a reconcile, coalesced so
//! that each key reconciles once per batch however many changes queued it,
//! and failures in a row per key for the retry back-off.
//!
//! It holds no actor: the runtime casts its own `Drain` message when
//! [`WorkQueue::add`] asks for one and schedules its own retry with the
//! delay the reconciler's error policy gives.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::time::Duration;

/// Keys waiting for a sync and the failures in a row of each key.
#[derive(Debug)]
pub struct WorkQueue<K> {
    pending: BTreeSet<K>,
    /// A `Drain` is on its way: more keys join its batch without another.
    draining: bool,
    failures: HashMap<K, u32>,
}

// Not derived: a derived `Default` would ask the key to be `Default` too.
impl<K> Default for WorkQueue<K> {
    fn default() -> Self {
        Self {
            pending: BTreeSet::new(),
            draining: false,
            failures: HashMap::new(),
        }
    }
}

impl<K: Ord + Hash + Clone> WorkQueue<K> {
    /// Queues `key`. Returns `true` when no drain is pending: the caller must
    /// then cast its `Drain` message (once), which ends in [`Self::take`].
    #[must_use = "when true, the caller must cast its Drain message"]
    pub fn add(&mut self, key: K) -> bool {
        self.pending.insert(key);
        !std::mem::replace(&mut self.draining, true)
    }

    /// The batch to sync now; keys added from here on ask for a new drain.
    pub fn take(&mut self) -> BTreeSet<K> {
        self.draining = false;
        std::mem::take(&mut self.pending)
    }

    /// The drain found the reconciler not ready: the keys stay, and the
    /// next [`Self::kick`] asks for a drain again.
    pub fn hold(&mut self) {
        self.draining = false;
    }

    /// Whether keys wait with no drain on its way: the caller must then
    /// cast its `Drain` message (once).
    #[must_use = "when true, the caller must cast its Drain message"]
    pub fn kick(&mut self) -> bool {
        !self.pending.is_empty() && !std::mem::replace(&mut self.draining, true)
    }

    /// `key` synced: its back-off starts over.
    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// `key`'s object is gone: nothing to remember about it.
    pub fn forget(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// `key` failed to sync: counts the failure and gives the failures in
    /// a row so far.
    pub fn failed(&mut self, key: &K) -> u32 {
        let failures = self.failures.entry(key.clone()).or_default();
        *failures += 1;
        *failures
    }
}

/// Back-off after `failures` failed syncs in a row: 2 s for the first,
/// doubling, at most 60 s.
pub fn retry_delay(failures: u32) -> Duration {
    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_add_before_a_take_asks_for_a_drain() {
        let mut queue = WorkQueue::default();
        assert!(queue.add("a"));
        assert!(!queue.add("b"));
        assert!(!queue.add("a"));
        let _ = queue.take();
        assert!(queue.add("a"), "after a take, a new drain is needed");
        assert!(!queue.add("c"));
    }

    #[test]
    fn take_coalesces_and_empties_the_queue() {
        let mut queue = WorkQueue::default();
        for key in ["b", "a", "b", "a", "c"] {
            let _ = queue.add(key);
        }
        assert_eq!(
            queue.take().into_iter().collect::<Vec<_>>(),
            ["a", "b", "c"]
        );
        assert!(queue.take().is_empty());
    }

    #[test]
    fn failures_back_off_doubling_to_a_minute() {
        let mut queue = WorkQueue::default();
        let delays: Vec<u64> = (0..8)
            .map(|_| retry_delay(queue.failed(&"a")).as_secs())
            .collect();
        assert_eq!(delays, [2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(
            retry_delay(queue.failed(&"b")),
            Duration::from_secs(2),
            "per key"
        );
    }

    #[test]
    fn success_and_deletion_reset_the_back_off() {
        let mut queue = WorkQueue::default();
        let _ = queue.failed(&"a");
        let _ = queue.failed(&"a");
        queue.succeeded(&"a");
        assert_eq!(queue.failed(&"a"), 1);
        let _ = queue.failed(&"a");
        queue.forget(&"a");
        assert_eq!(queue.failed(&"a"), 1);
    }

    #[test]
    fn a_held_queue_is_kicked_once() {
        let mut queue = WorkQueue::default();
        assert!(!queue.kick(), "nothing pending");
        assert!(queue.add("a"));
        assert!(!queue.kick(), "a drain is on its way");
        queue.hold();
        assert!(queue.kick());
        assert!(!queue.kick());
        assert_eq!(queue.take().len(), 1);
    }

    #[test]
    fn retry_delay_is_capped() {
        assert_eq!(retry_delay(1), Duration::from_secs(2));
        assert_eq!(retry_delay(5), Duration::from_secs(32));
        assert_eq!(retry_delay(6), Duration::from_secs(60));
        assert_eq!(retry_delay(u32::MAX), Duration::from_secs(60));
    }
}
