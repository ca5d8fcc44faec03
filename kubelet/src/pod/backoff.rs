//! Restart back-off (CrashLoopBackOff, ImagePullBackOff): the first retry is
//! immediate, then `base`, doubling up to `max`; a container that ran
//! cleanly for `reset_after` starts over.

use std::time::Duration;

/// Back-off settings of a node (upstream: 10 s, 300 s, 10 min).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffConfig {
    /// Delay before the second retry.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
    /// A container that ran this long without problems resets its back-off.
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(300),
            reset_after: Duration::from_secs(600),
        }
    }
}

/// Consecutive failures of one container (or image) and the delay they earn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backoff {
    failures: u32,
}

impl Backoff {
    /// Records one more failure and returns how long to wait before retrying.
    pub fn next_delay(&mut self, config: &BackoffConfig) -> Duration {
        let delay = match self.failures {
            0 => Duration::ZERO,
            n => {
                let factor = 1u32.checked_shl(n - 1).unwrap_or(u32::MAX);
                config.base.saturating_mul(factor).min(config.max)
            }
        };
        self.failures = self.failures.saturating_add(1);
        delay
    }

    /// Forgets past failures.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_retry_is_immediate_then_doubles_to_the_cap() {
        let config = BackoffConfig::default();
        let mut b = Backoff::default();
        let delays: Vec<u64> = (0..8).map(|_| b.next_delay(&config).as_secs()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300]);
        b.reset();
        assert_eq!(b.next_delay(&config), Duration::ZERO);
    }

    #[test]
    fn lab_settings_scale_the_same_way() {
        let config = BackoffConfig {
            base: Duration::from_millis(500),
            max: Duration::from_secs(2),
            reset_after: Duration::from_secs(60),
        };
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..6).map(|_| b.next_delay(&config).as_millis()).collect();
        assert_eq!(delays, [0, 500, 1000, 2000, 2000, 2000]);
    }
}
