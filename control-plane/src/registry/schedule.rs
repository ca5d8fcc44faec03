//! CronJob schedules: standard 5-field cron and the `@hourly`-style
//! macros, parsed by `croner` and evaluated in the CronJob's `timeZone`
//! (IANA names via `chrono-tz`; UTC without one), and upstream's rules for
//! which schedule time is due (`mostRecentScheduleTime`,
//! `nextScheduleTimeDuration`): only the most recent missed time runs, and
//! more than 100 missed times are reported.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// Upstream pads wake-ups by 100 ms against clock skew.
pub const NEXT_SCHEDULE_DELTA: Duration = Duration::from_millis(100);
/// More missed start times than this are reported as too many.
pub const TOO_MANY_MISSED: i64 = 100;

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The cron expression does not parse.
    #[error("{0}")]
    Unparseable(String),
    /// The time zone is unknown.
    #[error("unknown time zone {0}")]
    UnknownTimeZone(String),
    /// Two consecutive times are less than a second apart, or never come.
    #[error("time difference between two schedules is less than 1 second")]
    Invalid,
}

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

/// How many start times were missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// None.
    None,
    /// A few (each will not run; only the most recent does).
    Few,
    /// More than [`TOO_MANY_MISSED`].
    Many,
}

/// Upstream's `mostRecentScheduleTime` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recent {
    /// Where counting started (last schedule time or creation, or the
    /// starting deadline's window).
    pub earliest: DateTime<Utc>,
    /// The most recent schedule time not after now, if one is due.
    pub most_recent: Option<DateTime<Utc>>,
    /// How many times were missed, roughly.
    pub missed: Missed,
    /// The (estimated) number of times due since `earliest`.
    pub count: i64,
}

fn parser() -> CronParser {
    // Five fields as robfig/cron's standard parser; `a/b` steps as it
    // accepts them.
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .sloppy_ranges(true)
        .build()
}

impl Schedule {
    /// Parses `schedule` for `time_zone` (UTC when `None`).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Self, ScheduleError> {
        let zone = match time_zone {
            None => Tz::UTC,
            Some(name) => name
                .parse::<Tz>()
                .map_err(|_| ScheduleError::UnknownTimeZone(name.to_string()))?,
        };
        let trimmed = schedule.trim();
        if !trimmed.starts_with('@') {
            let fields: Vec<&str> = trimmed.split_whitespace().collect();
            if fields.len() != 5 {
                return Err(ScheduleError::Unparseable(format!(
                    "expected exactly 5 fields, found {}: [{}]",
                    fields.len(),
                    fields.join(" ")
                )));
            }
        }
        let cron = parser()
            .parse(trimmed)
            .map_err(|e| ScheduleError::Unparseable(e.to_string()))?;
        Ok(Self { cron, zone })
    }

    /// The first schedule time strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.on_wall_clock(t, |cron, local| cron.find_next_occurrence(local, false))
    }

    /// The last schedule time at or before `t`.
    pub fn last_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.on_wall_clock(t, |cron, local| cron.find_previous_occurrence(local, true))
    }

    /// What `find` answers for `t` read on the schedule's wall clock, in UTC.
    fn on_wall_clock<E>(
        &self,
        t: DateTime<Utc>,
        find: impl FnOnce(&Cron, &DateTime<Tz>) -> Result<DateTime<Tz>, E>,
    ) -> Option<DateTime<Utc>> {
        let local = self.zone.from_utc_datetime(&t.naive_utc());
        find(&self.cron, &local).ok().map(|n| n.with_timezone(&Utc))
    }

    /// `t` written in the schedule's time zone, RFC 3339 (the Job's
    /// `batch.kubernetes.io/cronjob-scheduled-timestamp`).
    pub fn local_rfc3339(&self, t: DateTime<Utc>) -> String {
        t.with_timezone(&self.zone)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    }

    /// Upstream's `mostRecentScheduleTime`: the latest schedule time due
    /// since the last one run (or the CronJob's creation), optionally
    /// limited to the `startingDeadlineSeconds` window.
    pub fn most_recent(
        &self,
        created: DateTime<Utc>,
        last_scheduled: Option<DateTime<Utc>>,
        starting_deadline: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<Recent, ScheduleError> {
        let mut earliest = last_scheduled.unwrap_or(created);
        if let Some(deadline) = starting_deadline {
            let window = now - chrono::Duration::seconds(deadline);
            if window > earliest {
                earliest = window;
            }
        }
        let none = Recent {
            earliest,
            most_recent: None,
            missed: Missed::None,
            count: 0,
        };
        let Some(t1) = self.next_after(earliest) else {
            return Ok(none);
        };
        if now < t1 {
            return Ok(none);
        }
        let Some(t2) = self.next_after(t1) else {
            return Err(ScheduleError::Invalid);
        };
        if now < t2 {
            return Ok(Recent {
                most_recent: Some(t1),
                count: 1,
                ..none
            });
        }
        let between = (t2 - t1).num_milliseconds().saturating_add(500) / 1000;
        if between < 1 {
            return Err(ScheduleError::Invalid);
        }
        // Upstream estimates the count from the interval (enough to tell
        // "many"); the time itself is found exactly.
        let count = (now - t1).num_seconds() / between + 1;
        let most_recent = self.last_until(now).filter(|t| *t >= t1).unwrap_or(t1);
        Ok(Recent {
            earliest,
            most_recent: Some(most_recent),
            missed: if count > TOO_MANY_MISSED {
                Missed::Many
            } else {
                Missed::Few
            },
            count,
        })
    }

    /// Upstream's `nextScheduleTimeDuration`: how long until the next
    /// schedule time after the most recent one (plus 100 ms).
    pub fn next_wake(
        &self,
        created: DateTime<Utc>,
        last_scheduled: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let from = match self.most_recent(created, last_scheduled, None, now) {
            Err(_) => now,
            Ok(Recent {
                most_recent: Some(t),
                ..
            }) => t,
            Ok(Recent {
                earliest,
                missed: Missed::None,
                ..
            }) => earliest,
            Ok(_) => now,
        };
        let next = self.next_after(from)?;
        Some((next - now).to_std().unwrap_or_default() + NEXT_SCHEDULE_DELTA)
    }
}

/// Validation of `spec.schedule` and `spec.timeZone`, with the API
/// server's wording.
pub fn validate(schedule: &str, time_zone: Option<&str>) -> Vec<String> {
    let mut errors = Vec::new();
    if schedule.contains("TZ") {
        let why = if time_zone.is_some() {
            "cannot use both timeZone field and TZ or CRON_TZ in schedule"
        } else {
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
        };
        errors.push(format!(
            "spec.schedule: Invalid value: \"{schedule}\": {why}"
        ));
    } else if let Err(ScheduleError::Unparseable(e)) = Schedule::parse(schedule, None) {
        errors.push(format!("spec.schedule: Invalid value: \"{schedule}\": {e}"));
    }
    if let Some(zone) = time_zone {
        if zone.is_empty() {
            errors.push(
                "spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"
                    .into(),
            );
        } else if zone.parse::<Tz>().is_err() {
            errors.push(format!(
                "spec.timeZone: Invalid value: \"{zone}\": unknown time zone {zone}"
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("time")
    }

    /// `expr` in `zone` next fires after `after` at `expected`.
    fn assert_next(expr: &str, zone: Option<&str>, after: &str, expected: &str) {
        let schedule = Schedule::parse(expr, zone).expect("parse");
        assert_eq!(
            schedule.next_after(t(after)),
            Some(t(expected)),
            "{expr} after {after}"
        );
    }

    #[test]
    fn five_fields_and_macros_give_upstreams_times() {
        for (expr, after, expected) in [
            (
                "*/1 * * * *",
                "2026-03-01T10:00:00Z",
                "2026-03-01T10:01:00Z",
            ),
            (
                "*/1 * * * *",
                "2026-03-01T10:00:30Z",
                "2026-03-01T10:01:00Z",
            ),
            ("@hourly", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z"),
            ("@daily", "2026-03-01T10:00:00Z", "2026-03-02T00:00:00Z"),
            // Day of month with a star day of week: that day only.
            ("0 0 1 * *", "2026-03-01T10:00:00Z", "2026-04-01T00:00:00Z"),
            // Both restricted: either matches (Vixie cron, as robfig/cron).
            ("0 0 13 * 5", "2026-03-01T00:00:00Z", "2026-03-06T00:00:00Z"),
            // 2026-03-07 is a Saturday.
            (
                "30 6 * * mon-fri",
                "2026-03-07T00:00:00Z",
                "2026-03-09T06:30:00Z",
            ),
        ] {
            assert_next(expr, None, after, expected);
        }
    }

    #[test]
    fn time_zones_shift_the_wall_clock() {
        let (morning, seoul) = ("0 9 * * *", Some("Asia/Seoul"));
        assert_next(
            morning,
            seoul,
            "2026-03-01T00:00:00Z",
            "2026-03-02T00:00:00Z",
        );
        assert_eq!(
            Schedule::parse(morning, seoul)
                .expect("parse")
                .local_rfc3339(t("2026-03-02T00:00:00Z")),
            "2026-03-02T09:00:00+09:00"
        );
        // New York springs forward on 2026-03-08: 9:00 EDT is 13:00 UTC.
        let ny = Some("America/New_York");
        assert_next(morning, ny, "2026-03-08T00:00:00Z", "2026-03-08T13:00:00Z");
        assert!(matches!(
            Schedule::parse("* * * * *", Some("Mars/Base")),
            Err(ScheduleError::UnknownTimeZone(_))
        ));
    }

    #[test]
    fn only_the_most_recent_missed_time_is_due() {
        let s = Schedule::parse("*/5 * * * *", None).expect("parse");
        let created = t("2026-03-01T10:00:00Z");
        let due = |now: &str| {
            let r = s.most_recent(created, None, None, t(now)).expect("recent");
            (r.most_recent, r.missed, r.count)
        };
        // Nothing due before the first time.
        assert_eq!(due("2026-03-01T10:04:59Z").0, None);
        // Exactly one due.
        let (most_recent, missed, _) = due("2026-03-01T10:05:00Z");
        assert_eq!(
            (most_recent, missed),
            (Some(t("2026-03-01T10:05:00Z")), Missed::None)
        );
        // Three due: only the last runs.
        assert_eq!(
            due("2026-03-01T10:17:00Z"),
            (Some(t("2026-03-01T10:15:00Z")), Missed::Few, 3)
        );
        // Days of downtime: too many.
        let (most_recent, missed, _) = due("2026-03-03T10:17:00Z");
        assert_eq!(
            (most_recent, missed),
            (Some(t("2026-03-03T10:15:00Z")), Missed::Many)
        );
        // A starting deadline narrows the window to what can still run.
        let r = s
            .most_recent(created, None, Some(60), t("2026-03-03T10:17:00Z"))
            .expect("recent");
        assert_eq!(r.most_recent, None);
        assert_eq!(r.earliest, t("2026-03-03T10:16:00Z"));
    }

    #[test]
    fn wake_ups_aim_at_the_next_time() {
        let s = Schedule::parse("*/5 * * * *", None).expect("parse");
        let created = t("2026-03-01T10:00:00Z");
        let wait = s
            .next_wake(created, None, t("2026-03-01T10:03:00Z"))
            .expect("wake");
        assert_eq!(wait, Duration::from_secs(120) + NEXT_SCHEDULE_DELTA);
        // After running 10:05, the next is 10:10.
        let wait = s
            .next_wake(
                created,
                Some(t("2026-03-01T10:05:00Z")),
                t("2026-03-01T10:05:01Z"),
            )
            .expect("wake");
        assert_eq!(wait, Duration::from_secs(299) + NEXT_SCHEDULE_DELTA);
    }

    #[test]
    fn validation_uses_upstreams_wording() {
        assert!(validate("*/1 * * * *", Some("Asia/Seoul")).is_empty());
        assert!(validate("@weekly", None).is_empty());
        assert_eq!(
            validate("* * * *", None),
            [
                "spec.schedule: Invalid value: \"* * * *\": expected exactly 5 fields, found 4: [* * * *]"
            ]
        );
        assert_eq!(validate("61 * * * *", None).len(), 1);
        assert_eq!(
            validate("CRON_TZ=UTC * * * * *", None),
            [
                "spec.schedule: Invalid value: \"CRON_TZ=UTC * * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
            ]
        );
        assert_eq!(
            validate("* * * * *", Some("Mars/Base")),
            ["spec.timeZone: Invalid value: \"Mars/Base\": unknown time zone Mars/Base"]
        );
    }
}
