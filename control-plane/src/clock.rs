//! Wall-clock time for controllers, behind a trait so tests can run a
//! schedule across hours without waiting: [`SystemClock`] reads the
//! system time, [`FakeClock`] is set and advanced by the test.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

/// A source of "now".
pub trait Clock: Send + Sync + Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// A clock shared by a controller's parts.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until told otherwise.
#[derive(Debug)]
pub struct FakeClock {
    now: Mutex<DateTime<Utc>>,
}

impl FakeClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: DateTime<Utc>) {
        // A poisoned lock still holds a valid time.
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for FakeClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fake_clock_moves_only_when_told() {
        let start: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().expect("time");
        let clock = FakeClock::new(start);
        assert_eq!(clock.now(), start);
        clock.advance(chrono::Duration::minutes(90));
        assert_eq!(clock.now(), start + chrono::Duration::minutes(90));
        clock.set(start);
        assert_eq!(clock.now(), start);
        let system = SystemClock.now();
        assert!((Utc::now() - system).num_seconds().abs() < 5);
    }
}
