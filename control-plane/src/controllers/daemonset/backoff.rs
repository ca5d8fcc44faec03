//! Back-off for replacing failed daemon pods, per DaemonSet and node, as
//! upstream's `failedPodsBackoff` (1 s doubling to 15 min): a kubelet that
//! keeps rejecting a pod must not make the controller delete and recreate
//! it in a hot loop.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

const INITIAL: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last: Instant,
}

/// Delays by key (`namespace/daemonset/node`).
#[derive(Debug, Default)]
pub struct Backoff {
    entries: HashMap<String, Entry>,
}

impl Backoff {
    /// `Ok` if a failed pod under `key` may be replaced now (and the next
    /// one will wait longer), else how long until it may.
    pub fn attempt(&mut self, key: &str, now: Instant) -> Result<(), Duration> {
        match self.entries.get_mut(key) {
            Some(e) if now.saturating_duration_since(e.last) < e.delay => {
                Err(e.delay - now.saturating_duration_since(e.last))
            }
            // Quiet for long enough: start over.
            Some(e) if now.saturating_duration_since(e.last) > 2 * MAX => {
                *e = Entry {
                    delay: INITIAL,
                    last: now,
                };
                Ok(())
            }
            Some(e) => {
                *e = Entry {
                    delay: (e.delay * 2).min(MAX),
                    last: now,
                };
                Ok(())
            }
            None => {
                self.entries.insert(
                    key.to_string(),
                    Entry {
                        delay: INITIAL,
                        last: now,
                    },
                );
                Ok(())
            }
        }
    }

    /// Forgets the keys under `prefix` (a deleted DaemonSet's).
    pub fn forget(&mut self, prefix: &str) {
        self.entries.retain(|k, _| !k.starts_with(prefix));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn replacements_wait_longer_each_time() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.attempt("ns/ds/n1", t0), Ok(()));
        // Within a second of the first replacement: wait.
        let t = t0 + Duration::from_millis(400);
        assert_eq!(b.attempt("ns/ds/n1", t), Err(Duration::from_millis(600)));
        // Another node is not held back.
        assert_eq!(b.attempt("ns/ds/n2", t), Ok(()));
        let t = t0 + Duration::from_secs(1);
        assert_eq!(b.attempt("ns/ds/n1", t), Ok(()));
        assert_eq!(
            b.attempt("ns/ds/n1", t + Duration::from_secs(1)),
            Err(Duration::from_secs(1))
        );
        assert_eq!(b.attempt("ns/ds/n1", t + Duration::from_secs(2)), Ok(()));
        b.forget("ns/ds/");
        assert_eq!(b.attempt("ns/ds/n1", t + Duration::from_secs(2)), Ok(()));
    }
}
