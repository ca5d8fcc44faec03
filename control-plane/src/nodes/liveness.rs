//! When each node was last heard from, kept in memory: the registry
//! records every heartbeat here and the node-lifecycle actor reads it.
//! It plays the part of upstream's Lease objects (renewed every 10 s by
//! kubelets) without costing a store write per heartbeat: a control plane
//! restart loses it, which is why the lifecycle falls back to the stored
//! `lastHeartbeatTime` and waits a grace period after its own start.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::time::Instant;

/// See the module documentation. Shared as `Arc<Liveness>`.
#[derive(Debug)]
pub struct Liveness {
    heard: Mutex<HashMap<String, Instant>>,
    started: Instant,
}

impl Default for Liveness {
    fn default() -> Self {
        Self::new()
    }
}

impl Liveness {
    /// An empty table; "now" is the control plane's start.
    pub fn new() -> Self {
        Self {
            heard: Mutex::new(HashMap::new()),
            started: Instant::now(),
        }
    }

    /// When the table was made (the control plane's start).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The node `name` spoke just now (registration or heartbeat).
    /// Returns when it was heard before, if ever.
    pub fn heard(&self, name: &str) -> Option<Instant> {
        let now = Instant::now();
        // A panic elsewhere cannot leave a timestamp map inconsistent.
        let mut heard = self.heard.lock().unwrap_or_else(PoisonError::into_inner);
        match heard.get_mut(name) {
            Some(t) => Some(std::mem::replace(t, now)),
            None => {
                heard.insert(name.to_string(), now);
                None
            }
        }
    }

    /// When the node `name` was last heard from since the start.
    pub fn last_heard(&self, name: &str) -> Option<Instant> {
        self.heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(name)
            .copied()
    }

    /// Drops nodes that no longer exist, so the table stays as large as
    /// the cluster.
    pub fn retain(&self, mut exists: impl FnMut(&str) -> bool) {
        self.heard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| exists(name));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn records_and_returns_the_previous_time() {
        let table = Liveness::new();
        assert_eq!(table.last_heard("n1"), None);
        assert_eq!(table.heard("n1"), None);
        let first = table.last_heard("n1").expect("heard");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(table.heard("n1"), Some(first));
        assert_eq!(table.last_heard("n1"), Some(first + Duration::from_secs(3)));
        table.heard("n2");
        table.retain(|n| n == "n2");
        assert_eq!(table.last_heard("n1"), None);
        assert!(table.last_heard("n2").is_some());
    }
}
