//! Unit tests of the CronJob controller: CronJobs and Jobs in the
//! in-memory store, a fake clock moved across minutes and hours, and the
//! test playing the Job controller (finishing Jobs).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::sync::{CronJobSync, SCHEDULED_TIMESTAMP, job_name};
use crate::clock::Clock;
use crate::controllers::batch::timestamp;
use crate::controllers::batch::{TestEnv, test_env};
use crate::registry::kinds;

const NS: &str = "default";

fn t(s: &str) -> DateTime<Utc> {
    s.parse().expect("time")
}

type Env = TestEnv<CronJobSync>;

fn env(now: &str) -> Env {
    test_env(t(now), CronJobSync::new)
}

/// The seed's `hello` CronJob with `spec` merged in.
fn cronjob(name: &str, schedule: &str, spec: Value) -> Value {
    let mut cj = json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"schedule": schedule, "jobTemplate": {
            "metadata": {"labels": {"app": "hello"}},
            "spec": {"template": {"spec": {
                "restartPolicy": "OnFailure",
                "containers": [{"name": "hello", "image": "busybox",
                                "command": ["/bin/sh", "-c", "date; echo Hello from Kubernetes Cluster"]}],
            }}},
        }},
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        cj["spec"][k] = v.clone();
    }
    cj
}

impl Env {
    /// Creates the CronJob as made at the clock's time.
    async fn create(&self, cj: Value) {
        let rt = kinds::CRONJOBS;
        let created = self.objects.create(rt, cj).await.expect("create");
        let now = timestamp(self.clock.now());
        let name = created["metadata"]["name"].as_str().expect("name");
        self.objects
            .update(rt, Some(NS), name, |c| {
                c["metadata"]["creationTimestamp"] = json!(now);
                true
            })
            .await
            .expect("backdate");
    }

    async fn at(&self, now: &str) {
        self.clock.set(t(now));
    }

    async fn sync(&self, name: &str) -> Option<Duration> {
        self.sync.sync(NS, name).await.expect("sync")
    }

    async fn status(&self, name: &str) -> Value {
        self.objects
            .get(kinds::CRONJOBS, Some(NS), name)
            .await
            .expect("cronjob")["status"]
            .clone()
    }

    async fn jobs(&self) -> Vec<Value> {
        let (mut jobs, _) = self.objects.list(kinds::JOBS).await.expect("jobs");
        jobs.sort_by_key(|j| j["metadata"]["name"].as_str().map(String::from));
        jobs
    }

    async fn job_names(&self) -> Vec<String> {
        self.jobs()
            .await
            .iter()
            .filter_map(|j| j["metadata"]["name"].as_str().map(String::from))
            .collect()
    }

    /// Plays the Job controller: the Job started at `started` and finished
    /// (`Complete` or `Failed`) now.
    async fn finish(&self, job: &str, kind: &str, started: &str) {
        let now = timestamp(self.clock.now());
        self.objects
            .update(kinds::JOBS, Some(NS), job, |j| {
                j["status"]["startTime"] = json!(started);
                j["status"]["conditions"] = json!([{"type": kind, "status": "True",
                    "lastTransitionTime": now, "lastProbeTime": now}]);
                if kind == "Complete" {
                    j["status"]["completionTime"] = json!(now);
                }
                true
            })
            .await
            .expect("finish job");
    }

    async fn events(&self) -> Vec<(String, String)> {
        let rt = kinds::EVENTS;
        let (events, _) = self.objects.list(rt).await.expect("events");
        events
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    async fn has_event(&self, reason: &str) -> bool {
        self.events().await.iter().any(|(r, _)| r == reason)
    }
}

fn minutes(s: &str) -> i64 {
    t(s).timestamp() / 60
}

fn active_names(status: &Value) -> Vec<String> {
    status["active"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn each_minute_starts_one_job_named_by_its_minute() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "hello",
        "*/1 * * * *",
        json!({"concurrencyPolicy": "Allow"}),
    ))
    .await;
    env.at("2026-03-01T10:00:30Z").await;
    assert_eq!(
        env.sync("hello").await,
        Some(Duration::from_millis(30_100)),
        "wait for 10:01 (+100 ms)"
    );
    assert!(env.jobs().await.is_empty());

    env.at("2026-03-01T10:01:00Z").await;
    assert_eq!(env.sync("hello").await, Some(Duration::from_millis(60_100)));
    let jobs = env.jobs().await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    let expected = format!("hello-{}", minutes("2026-03-01T10:01:00Z"));
    assert_eq!(job["metadata"]["name"], expected.as_str());
    assert_eq!(expected, job_name("hello", t("2026-03-01T10:01:00Z")));
    assert_eq!(
        job["metadata"]["annotations"][SCHEDULED_TIMESTAMP],
        "2026-03-01T10:01:00Z"
    );
    assert_eq!(job["metadata"]["labels"]["app"], "hello");
    let owner = &job["metadata"]["ownerReferences"][0];
    assert_eq!(
        (owner["kind"].as_str(), owner["controller"].as_bool()),
        (Some("CronJob"), Some(true))
    );
    // The Job got the Job defaults, its generated selector included.
    assert_eq!(job["spec"]["backoffLimit"], 6);
    assert!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"].is_string()
    );
    let st = env.status("hello").await;
    assert_eq!(active_names(&st), std::slice::from_ref(&expected));
    assert_eq!(st["active"][0]["kind"], "Job");
    assert_eq!(st["lastScheduleTime"], "2026-03-01T10:01:00Z");
    assert!(env.has_event("SuccessfulCreate").await);

    // The same minute never runs twice.
    env.at("2026-03-01T10:01:40Z").await;
    env.sync("hello").await;
    assert_eq!(env.jobs().await.len(), 1);
    // Across ten minutes, one Job a minute.
    for m in 2..=11 {
        env.at(&format!("2026-03-01T10:{m:02}:00Z")).await;
        env.sync("hello").await;
    }
    assert_eq!(env.jobs().await.len(), 11);
}

#[tokio::test]
async fn forbid_waits_for_the_running_job() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "fb",
        "* * * * *",
        json!({"concurrencyPolicy": "Forbid"}),
    ))
    .await;
    env.at("2026-03-01T10:01:00Z").await;
    env.sync("fb").await;
    let first = env.job_names().await;
    assert_eq!(first.len(), 1);
    env.at("2026-03-01T10:02:00Z").await;
    assert_eq!(env.sync("fb").await, Some(Duration::from_millis(60_100)));
    assert_eq!(env.job_names().await, first, "no second Job while one runs");
    assert!(env.has_event("JobAlreadyActive").await);
    // The first one completes: the missed 10:02 still runs (no deadline).
    env.at("2026-03-01T10:02:30Z").await;
    env.finish(&first[0], "Complete", "2026-03-01T10:01:00Z")
        .await;
    env.sync("fb").await;
    let names = env.job_names().await;
    let second = format!("fb-{}", minutes("2026-03-01T10:02:00Z"));
    assert_eq!(names, [first[0].clone(), second.clone()]);
    let st = env.status("fb").await;
    assert_eq!(active_names(&st), [second]);
    assert!(env.has_event("SawCompletedJob").await);
    // The finished Job's completion becomes lastSuccessfulTime.
    env.sync("fb").await;
    assert_eq!(
        env.status("fb").await["lastSuccessfulTime"],
        "2026-03-01T10:02:30Z"
    );
}

#[tokio::test]
async fn replace_deletes_the_running_job_and_its_pods() {
    let env = env("2026-03-01T10:00:00Z");
    let gc = crate::controllers::garbage_collector::start_unsupervised(&env.objects).await;
    env.create(cronjob(
        "rp",
        "* * * * *",
        json!({"concurrencyPolicy": "Replace"}),
    ))
    .await;
    env.at("2026-03-01T10:01:00Z").await;
    env.sync("rp").await;
    let first = env.jobs().await.remove(0);
    let first_name = first["metadata"]["name"]
        .as_str()
        .expect("name")
        .to_string();
    env.objects
        .create(
            kinds::PODS,
            json!({"metadata": {"name": "p1", "namespace": NS, "ownerReferences": [{
                "apiVersion": "batch/v1", "kind": "Job", "name": first_name,
                "uid": first["metadata"]["uid"], "controller": true}]},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await
        .expect("pod");
    env.at("2026-03-01T10:02:00Z").await;
    env.sync("rp").await;
    let second = format!("rp-{}", minutes("2026-03-01T10:02:00Z"));
    assert_eq!(env.job_names().await, std::slice::from_ref(&second));
    assert_eq!(active_names(&env.status("rp").await), [second]);
    // The collector takes the replaced Job's pods.
    let mut pods = Vec::new();
    for _ in 0..400 {
        pods = env.objects.list(kinds::PODS).await.expect("pods").0;
        if pods.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(pods.is_empty(), "the replaced Job's pods went with it");
    gc.stop(None);
    let events = env.events().await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "SuccessfulDelete" && *m == format!("Deleted job {first_name}")),
        "{events:?}"
    );
}

#[tokio::test]
async fn allow_runs_jobs_side_by_side() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "al",
        "* * * * *",
        json!({"concurrencyPolicy": "Allow"}),
    ))
    .await;
    for m in ["10:01", "10:02", "10:03"] {
        env.at(&format!("2026-03-01T{m}:00Z")).await;
        env.sync("al").await;
    }
    assert_eq!(env.jobs().await.len(), 3);
    assert_eq!(active_names(&env.status("al").await).len(), 3);
}

#[tokio::test]
async fn after_downtime_only_the_most_recent_missed_time_runs() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "late",
        "*/5 * * * *",
        json!({"concurrencyPolicy": "Allow"}),
    ))
    .await;
    env.at("2026-03-01T10:17:30Z").await;
    assert_eq!(
        env.sync("late").await,
        Some(Duration::from_millis(150_100)),
        "next: 10:20"
    );
    assert_eq!(
        env.job_names().await,
        [format!("late-{}", minutes("2026-03-01T10:15:00Z"))]
    );
    assert!(!env.has_event("TooManyMissedTimes").await);

    // Hours of downtime with a one-minute schedule: too many missed times.
    let env = env_with_minutely("2026-03-01T10:00:00Z").await;
    env.at("2026-03-01T13:00:30Z").await;
    env.sync("every").await;
    assert_eq!(
        env.job_names().await,
        [format!("every-{}", minutes("2026-03-01T13:00:00Z"))]
    );
    let events = env.events().await;
    assert!(
        events.iter().any(|(r, m)| r == "TooManyMissedTimes"
            && m.starts_with("too many missed start times")),
        "{events:?}"
    );
}

async fn env_with_minutely(now: &str) -> Env {
    let env = env(now);
    env.create(cronjob(
        "every",
        "* * * * *",
        json!({"concurrencyPolicy": "Allow"}),
    ))
    .await;
    env
}

#[tokio::test]
async fn the_starting_deadline_skips_times_too_late_to_start() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "dl",
        "*/5 * * * *",
        json!({"concurrencyPolicy": "Allow", "startingDeadlineSeconds": 60}),
    ))
    .await;
    // 10:05 is two minutes late: past its 60 s window.
    env.at("2026-03-01T10:07:00Z").await;
    assert_eq!(
        env.sync("dl").await,
        Some(Duration::from_millis(180_100)),
        "next: 10:10"
    );
    assert!(env.jobs().await.is_empty());
    // 10:10 seen 30 s late: within the window.
    env.at("2026-03-01T10:10:30Z").await;
    env.sync("dl").await;
    assert_eq!(
        env.job_names().await,
        [format!("dl-{}", minutes("2026-03-01T10:10:00Z"))]
    );
}

#[tokio::test]
async fn history_limits_keep_the_newest_finished_jobs() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "hist",
        "* * * * *",
        json!({"concurrencyPolicy": "Allow", "successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1}),
    ))
    .await;
    let mut made = Vec::new();
    for m in 1..=6 {
        let at = format!("2026-03-01T10:{m:02}:00Z");
        env.at(&at).await;
        env.sync("hist").await;
        let name = format!("hist-{}", minutes(&at));
        env.at(&format!("2026-03-01T10:{m:02}:30Z")).await;
        // Minutes 1-4 succeed, 5 and 6 fail.
        let kind = if m <= 4 { "Complete" } else { "Failed" };
        env.finish(&name, kind, &at).await;
        made.push(name);
    }
    env.sync("hist").await;
    assert_eq!(
        env.job_names().await,
        [made[2].clone(), made[3].clone(), made[5].clone()],
        "the two newest successes and the newest failure"
    );
    assert!(env.has_event("SuccessfulDelete").await);
    let st = env.status("hist").await;
    assert!(active_names(&st).is_empty());
    assert_eq!(st["lastSuccessfulTime"], "2026-03-01T10:04:30Z");
}

#[tokio::test]
async fn suspended_cronjobs_start_nothing_until_resumed() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "sus",
        "* * * * *",
        json!({"concurrencyPolicy": "Allow", "suspend": true}),
    ))
    .await;
    env.at("2026-03-01T10:03:30Z").await;
    assert_eq!(env.sync("sus").await, None);
    assert!(env.jobs().await.is_empty());
    env.objects
        .update(kinds::CRONJOBS, Some(NS), "sus", |c| {
            c["spec"]["suspend"] = json!(false);
            true
        })
        .await
        .expect("resume");
    env.sync("sus").await;
    assert_eq!(
        env.job_names().await,
        [format!("sus-{}", minutes("2026-03-01T10:03:00Z"))]
    );
}

#[tokio::test]
async fn time_zones_set_the_wall_clock_and_the_annotation() {
    let env = env("2026-03-01T12:00:00Z");
    env.create(cronjob(
        "seoul",
        "0 9 * * *",
        json!({"concurrencyPolicy": "Allow", "timeZone": "Asia/Seoul"}),
    ))
    .await;
    // 09:00 in Seoul is 00:00 UTC.
    env.at("2026-03-02T00:00:05Z").await;
    env.sync("seoul").await;
    let jobs = env.jobs().await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        jobs[0]["metadata"]["name"],
        format!("seoul-{}", minutes("2026-03-02T00:00:00Z")).as_str()
    );
    assert_eq!(
        jobs[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP],
        "2026-03-02T09:00:00+09:00"
    );
}

#[tokio::test]
async fn a_vanished_active_job_is_dropped() {
    let env = env("2026-03-01T10:00:00Z");
    env.create(cronjob(
        "gone",
        "* * * * *",
        json!({"concurrencyPolicy": "Forbid"}),
    ))
    .await;
    env.at("2026-03-01T10:01:00Z").await;
    env.sync("gone").await;
    let name = env.job_names().await.remove(0);
    env.objects
        .delete(kinds::JOBS, Some(NS), &name)
        .await
        .expect("delete");
    env.at("2026-03-01T10:01:20Z").await;
    env.sync("gone").await;
    assert!(active_names(&env.status("gone").await).is_empty());
    let events = env.events().await;
    assert!(
        events
            .iter()
            .any(|(r, m)| r == "MissingJob" && *m == format!("Active job went missing: {name}")),
        "{events:?}"
    );
}

#[tokio::test]
async fn invalid_schedules_are_refused_by_the_api() {
    let env = env("2026-03-01T10:00:00Z");
    let rt = kinds::CRONJOBS;
    let obj = cronjob("bad", "* * * *", json!({}));
    let mut defaulted = obj.clone();
    crate::registry::strategy::apply_defaults(rt, &mut defaulted);
    let err = crate::registry::strategy::validate(rt, &defaulted).expect_err("invalid");
    assert!(
        err.message.contains(
            "spec.schedule: Invalid value: \"* * * *\": expected exactly 5 fields, found 4"
        ),
        "{}",
        err.message
    );
    // A valid one passes and gets upstream's defaults.
    env.create(cronjob("good", "@hourly", json!({}))).await;
    let cj = env
        .objects
        .get(rt, Some(NS), "good")
        .await
        .expect("cronjob");
    assert_eq!(
        (
            &cj["spec"]["concurrencyPolicy"],
            &cj["spec"]["successfulJobsHistoryLimit"],
            &cj["spec"]["failedJobsHistoryLimit"],
            &cj["spec"]["suspend"]
        ),
        (&json!("Allow"), &json!(3), &json!(1), &json!(false))
    );
}
