//! The delay before a Job replaces failed pods: upstream's pod failure
//! back-off, `base × 2ⁿ⁻¹` after the n-th failure since the last success,
//! capped, counted from the last failure. Upstream keeps the record in
//! memory; here it is read from the pods that exist, so a restarted
//! control plane (or a test) gets the same answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::pods;

/// Back-off settings (upstream: 10 s doubling to 10 min; labs shorten it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(10),
            max: Duration::from_secs(600),
        }
    }
}

impl Backoff {
    /// The delay after `failures` failures in a row.
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let mut delay = self.base;
        for _ in 1..failures {
            delay = delay.saturating_mul(2);
            if delay >= self.max {
                return self.max;
            }
        }
        delay.min(self.max)
    }

    /// How long the Job must still wait before creating pods, given its
    /// pods: failures after its latest success, timed from the last one.
    pub fn remaining(&self, pods: &[&Value], now: DateTime<Utc>) -> Duration {
        let last_success = pods
            .iter()
            .filter(|p| pods::succeeded(p))
            .filter_map(|p| pods::finish_time(p))
            .max();
        let failures: Vec<DateTime<Utc>> = pods
            .iter()
            .filter(|p| pods::failed(p) && (pods::tracked(p) || !pods::deleting(p)))
            .filter_map(|p| pods::finish_time(p))
            .filter(|t| last_success.is_none_or(|s| *t > s))
            .collect();
        let Some(last) = failures.iter().max() else {
            return Duration::ZERO;
        };
        let delay = self.delay(failures.len() as u32);
        let elapsed = (now - *last).to_std().unwrap_or_default();
        delay.saturating_sub(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        format!("2026-01-01T00:{s}Z").parse().expect("time")
    }

    fn pod(phase: &str, finished: &str) -> Value {
        json!({"status": {"phase": phase, "containerStatuses": [
            {"state": {"terminated": {"finishedAt": format!("2026-01-01T00:{finished}Z")}}}]}})
    }

    #[test]
    fn delays_double_up_to_the_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [0, 10, 20, 40, 80, 160, 320, 600, 600]);
        let lab = Backoff {
            base: Duration::from_secs(1),
            max: Duration::from_secs(4),
        };
        assert_eq!(lab.delay(5), Duration::from_secs(4));
    }

    #[test]
    fn remaining_counts_failures_since_the_last_success() {
        let b = Backoff::default();
        let (f1, f2) = (pod("Failed", "00:00"), pod("Failed", "00:30"));
        // Two failures: 20 s from the second.
        assert_eq!(
            b.remaining(&[&f1, &f2], at("00:35")),
            Duration::from_secs(15)
        );
        assert_eq!(b.remaining(&[&f1, &f2], at("00:50")), Duration::ZERO);
        // A success after the first failure resets the count.
        let ok = pod("Succeeded", "00:10");
        assert_eq!(
            b.remaining(&[&f1, &ok, &f2], at("00:35")),
            Duration::from_secs(5)
        );
        assert_eq!(b.remaining(&[&ok], at("00:35")), Duration::ZERO);
    }
}
