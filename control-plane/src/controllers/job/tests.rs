//! Unit tests of the Job controller: Jobs and pods in the in-memory store,
//! a fake clock, and the test playing the kubelet (pod phases, restarts,
//! removal of terminated pods).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::backoff::Backoff;
use super::pods::{self, TRACKING_FINALIZER};
use super::status;
use super::sync::JobSync;
use crate::clock::Clock;
use crate::controllers::batch::{TestEnv, test_env};
use crate::registry::kinds;
use crate::registry::objects::Objects;
use crate::store::memory::MemoryStore;

const NS: &str = "default";

type Env = TestEnv<JobSync>;

fn start() -> DateTime<Utc> {
    "2026-01-01T00:00:00Z".parse().expect("time")
}

fn env() -> Env {
    test_env(start(), |objects, clock| {
        JobSync::new(objects, clock, Backoff::default())
    })
}

/// A Job `name` with `spec` merged over a busybox template.
fn job(name: &str, restart: &str, spec: Value) -> Value {
    let mut j = json!({
        "metadata": {"name": name, "namespace": NS},
        "spec": {"template": {"spec": {
            "restartPolicy": restart,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo hi"]}],
        }}},
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        j["spec"][k] = v.clone();
    }
    j
}

impl Env {
    async fn create(&self, job: Value) -> Value {
        self.objects
            .create(kinds::JOBS, job)
            .await
            .expect("create job")
    }

    /// Syncs `name`; returns the requested wake-up.
    async fn sync(&self, name: &str) -> Option<Duration> {
        self.sync.sync(NS, name).await.expect("sync")
    }

    async fn job(&self, name: &str) -> Option<Value> {
        self.objects.get(kinds::JOBS, Some(NS), name).await.ok()
    }

    async fn status(&self, name: &str) -> Value {
        self.job(name).await.expect("job")["status"].clone()
    }

    /// Pods by name.
    async fn pods(&self) -> Vec<Value> {
        let (mut pods, _) = self.objects.list(kinds::PODS).await.expect("pods");
        pods.sort_by_key(name);
        pods
    }

    async fn active_pods(&self) -> Vec<Value> {
        self.pods().await.into_iter().filter(pods::active).collect()
    }

    /// Plays the kubelet: sets the pod's phase (and its container's
    /// termination at the clock's time for finished phases).
    async fn set_phase(&self, pod: &str, phase: &str) {
        let now = status::timestamp(self.clock.now());
        self.objects
            .update(kinds::PODS, Some(NS), pod, |p| {
                p["status"]["phase"] = json!(phase);
                if phase == "Succeeded" || phase == "Failed" {
                    let code = if phase == "Succeeded" { 0 } else { 1 };
                    p["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": 0,
                        "state": {"terminated": {"exitCode": code, "finishedAt": now}}}]);
                }
                true
            })
            .await
            .expect("update pod");
    }

    async fn edit_pod(&self, pod: &str, change: impl FnMut(&mut Value) -> bool) {
        self.objects
            .update(kinds::PODS, Some(NS), pod, change)
            .await
            .expect("update pod");
    }

    async fn edit_job(&self, name: &str, change: impl FnMut(&mut Value) -> bool) {
        self.objects
            .update(kinds::JOBS, Some(NS), name, change)
            .await
            .expect("update job");
    }

    async fn advance(&self, secs: i64) {
        self.clock.advance(chrono::Duration::seconds(secs));
    }

    async fn event_reasons(&self) -> Vec<String> {
        let rt = kinds::EVENTS;
        let (events, _) = self.objects.list(rt).await.expect("events");
        events
            .iter()
            .filter_map(|e| e["reason"].as_str().map(String::from))
            .collect()
    }
}

fn name(p: &Value) -> String {
    pods::name(p).to_string()
}

fn condition(status: &Value, kind: &str) -> Option<(String, String, String)> {
    status::condition(status, kind).map(|c| {
        (
            c["status"].as_str().unwrap_or_default().to_string(),
            c["reason"].as_str().unwrap_or_default().to_string(),
            c["message"].as_str().unwrap_or_default().to_string(),
        )
    })
}

#[tokio::test]
async fn defaults_give_a_generated_selector_and_labels() {
    let env = env();
    let created = env.create(job("pi", "Never", json!({}))).await;
    let uid = created["metadata"]["uid"].as_str().expect("uid");
    let spec = &created["spec"];
    assert_eq!(
        (
            &spec["completions"],
            &spec["parallelism"],
            &spec["backoffLimit"],
            &spec["completionMode"],
            &spec["suspend"],
        ),
        (
            &json!(1),
            &json!(1),
            &json!(6),
            &json!("NonIndexed"),
            &json!(false)
        )
    );
    assert_eq!(
        spec["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
    );
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(labels["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(labels["controller-uid"], uid);
    assert_eq!(labels["batch.kubernetes.io/job-name"], "pi");
    assert_eq!(labels["job-name"], "pi");
}

#[tokio::test]
async fn a_single_job_runs_one_pod_to_completion() {
    let env = env();
    env.create(job("pi", "Never", json!({}))).await;
    assert_eq!(env.sync("pi").await, None);
    let pods = env.pods().await;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let pod_name = name(pod);
    assert!(
        pod_name.starts_with("pi-") && pod_name.len() == "pi-".len() + 5,
        "{pod_name}"
    );
    assert!(pods::tracked(pod));
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(pod["metadata"]["labels"]["job-name"], "pi");
    let st = env.status("pi").await;
    assert_eq!(
        (st["active"].as_i64(), st["ready"].as_i64()),
        (Some(1), Some(0))
    );
    assert_eq!(st["startTime"], "2026-01-01T00:00:00Z");
    assert_eq!(st["uncountedTerminatedPods"], json!({}));

    env.advance(3).await;
    env.set_phase(&pod_name, "Succeeded").await;
    env.sync("pi").await;
    let st = env.status("pi").await;
    assert_eq!(st["succeeded"], 1);
    assert!(st.get("active").is_none());
    assert_eq!(st["completionTime"], "2026-01-01T00:00:03Z");
    let done = (
        "True".to_string(),
        "CompletionsReached".to_string(),
        "Reached expected number of succeeded pods".to_string(),
    );
    assert_eq!(condition(&st, "SuccessCriteriaMet"), Some(done.clone()));
    assert_eq!(condition(&st, "Complete"), Some(done));
    assert_eq!(st["uncountedTerminatedPods"], json!({}));
    // Counted: the finalizer is gone, and no second pod was made.
    let pods = env.pods().await;
    assert_eq!(pods.len(), 1);
    assert!(!pods::tracked(&pods[0]));
    let reasons = env.event_reasons().await;
    assert!(
        reasons.contains(&"SuccessfulCreate".into()) && reasons.contains(&"Completed".into()),
        "{reasons:?}"
    );
}

/// Marks one active pod per call as Succeeded, oldest names first.
async fn succeed_one(env: &Env) -> String {
    let mut active = env.active_pods().await;
    active.sort_by_key(name);
    let pod = name(&active[0]);
    env.set_phase(&pod, "Succeeded").await;
    pod
}

#[tokio::test]
async fn fixed_completions_run_at_most_parallelism_pods() {
    let env = env();
    env.create(job(
        "fixed",
        "Never",
        json!({"completions": 5, "parallelism": 2}),
    ))
    .await;
    for done in 1..=5 {
        env.sync("fixed").await;
        let active = env.active_pods().await.len();
        let remaining = 5 - (done - 1);
        assert_eq!(active, remaining.min(2), "before completion {done}");
        succeed_one(&env).await;
    }
    env.sync("fixed").await;
    let st = env.status("fixed").await;
    assert_eq!(st["succeeded"], 5);
    assert!(status::is_true(&st, "Complete"));
    assert_eq!(env.pods().await.len(), 5, "exactly one pod per completion");
}

#[tokio::test]
async fn a_work_queue_is_done_when_one_succeeded_and_all_finished() {
    let env = env();
    // No completions: the seed's "queue" rows of the table.
    let mut j = job("queue", "Never", json!({"parallelism": 3}));
    j["spec"]["completions"] = Value::Null;
    let created = env.create(j).await;
    assert!(
        created["spec"]
            .get("completions")
            .is_none_or(Value::is_null)
    );
    env.sync("queue").await;
    assert_eq!(env.active_pods().await.len(), 3);
    succeed_one(&env).await;
    env.sync("queue").await;
    // One success: no new pods, the others keep running, not complete yet.
    assert_eq!(env.pods().await.len(), 3);
    assert_eq!(env.active_pods().await.len(), 2);
    let st = env.status("queue").await;
    assert!(!status::is_true(&st, "Complete"));
    assert_eq!(
        (st["succeeded"].as_i64(), st["active"].as_i64()),
        (Some(1), Some(2))
    );
    succeed_one(&env).await;
    succeed_one(&env).await;
    env.sync("queue").await;
    let st = env.status("queue").await;
    assert!(status::is_true(&st, "Complete"));
    assert_eq!(st["succeeded"], 3);
}

#[tokio::test]
async fn never_pods_are_replaced_after_a_doubling_backoff_until_the_limit() {
    let env = env();
    env.create(job("err", "Never", json!({"backoffLimit": 2})))
        .await;
    env.sync("err").await;
    let first = name(&env.pods().await[0]);
    env.set_phase(&first, "Failed").await;
    // First failure: wait 10 s before the replacement.
    assert_eq!(env.sync("err").await, Some(Duration::from_secs(10)));
    assert_eq!(env.pods().await.len(), 1);
    let st = env.status("err").await;
    assert_eq!(st["failed"], 1);
    assert!(!pods::tracked(&env.pods().await[0]));
    env.advance(4).await;
    assert_eq!(env.sync("err").await, Some(Duration::from_secs(6)));
    env.advance(6).await;
    env.sync("err").await;
    let active = env.active_pods().await;
    assert_eq!(active.len(), 1);
    // Second failure: 20 s.
    env.advance(5).await;
    env.set_phase(&name(&active[0]), "Failed").await;
    assert_eq!(env.sync("err").await, Some(Duration::from_secs(20)));
    env.advance(20).await;
    env.sync("err").await;
    let active = env.active_pods().await;
    assert_eq!(active.len(), 1);
    // Third failure: more than backoffLimit (2) failures fail the Job.
    env.set_phase(&name(&active[0]), "Failed").await;
    assert_eq!(env.sync("err").await, None);
    let st = env.status("err").await;
    assert_eq!(st["failed"], 3);
    let limit = (
        "True".to_string(),
        "BackoffLimitExceeded".to_string(),
        "Job has reached the specified backoff limit".to_string(),
    );
    assert_eq!(condition(&st, "FailureTarget"), Some(limit.clone()));
    assert_eq!(condition(&st, "Failed"), Some(limit));
    assert!(st.get("completionTime").is_none());
    assert_eq!(env.pods().await.len(), 3);
    assert!(
        env.event_reasons()
            .await
            .contains(&"BackoffLimitExceeded".into())
    );
    // Finished: nothing more happens.
    env.advance(3600).await;
    env.sync("err").await;
    assert_eq!(env.pods().await.len(), 3);
}

#[tokio::test]
async fn on_failure_restarts_count_toward_the_limit() {
    let env = env();
    env.create(job("retry", "OnFailure", json!({"backoffLimit": 2})))
        .await;
    env.sync("retry").await;
    let pod = name(&env.pods().await[0]);
    // The kubelet runs it on a node and restarts the container in place.
    let restarts = |n: i64| {
        move |p: &mut Value| {
            p["spec"]["nodeName"] = json!("node1");
            p["status"]["phase"] = json!("Running");
            p["status"]["containerStatuses"] = json!([{"name": "c", "restartCount": n,
                "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]);
            true
        }
    };
    env.edit_pod(&pod, restarts(1)).await;
    env.sync("retry").await;
    assert_eq!(env.pods().await.len(), 1, "the same pod is kept");
    assert!(!status::is_true(
        &env.status("retry").await,
        "FailureTarget"
    ));
    env.edit_pod(&pod, restarts(2)).await;
    env.sync("retry").await;
    let st = env.status("retry").await;
    assert!(status::is_true(&st, "FailureTarget"));
    // The pod is terminating on its node: Failed waits for it.
    assert!(!status::is_true(&st, "Failed"));
    assert_eq!(st["failed"], 1);
    assert_eq!(st["terminating"], 1);
    let pods = env.pods().await;
    assert!(pods::deleting(&pods[0]));
    // The kubelet removes the pod; the Job fails.
    env.objects
        .delete(kinds::PODS, Some(NS), &pod)
        .await
        .expect("delete");
    env.sync("retry").await;
    let st = env.status("retry").await;
    assert_eq!(
        condition(&st, "Failed").map(|c| c.1),
        Some("BackoffLimitExceeded".into())
    );
    assert_eq!(
        (st["failed"].as_i64(), st["terminating"].as_i64()),
        (Some(1), Some(0))
    );
}

#[tokio::test]
async fn the_active_deadline_fails_the_job() {
    let env = env();
    env.create(job(
        "slow",
        "Never",
        json!({"activeDeadlineSeconds": 30, "parallelism": 2, "completions": 4}),
    ))
    .await;
    assert_eq!(env.sync("slow").await, Some(Duration::from_secs(30)));
    assert_eq!(env.active_pods().await.len(), 2);
    env.advance(30).await;
    env.sync("slow").await;
    let st = env.status("slow").await;
    let deadline = (
        "True".to_string(),
        "DeadlineExceeded".to_string(),
        "Job was active longer than specified deadline".to_string(),
    );
    assert_eq!(condition(&st, "Failed"), Some(deadline));
    assert_eq!(st["failed"], 2, "the running pods count as failed");
    assert!(env.pods().await.is_empty(), "unscheduled pods go at once");
    assert!(
        env.event_reasons()
            .await
            .contains(&"DeadlineExceeded".into())
    );
}

#[tokio::test]
async fn ttl_deletes_the_finished_job_with_its_pods() {
    let env = env();
    let gc = crate::controllers::garbage_collector::start_unsupervised(&env.objects).await;
    env.create(job("ttl", "Never", json!({"ttlSecondsAfterFinished": 60})))
        .await;
    env.sync("ttl").await;
    succeed_one(&env).await;
    assert_eq!(env.sync("ttl").await, Some(Duration::from_secs(60)));
    env.advance(59).await;
    assert_eq!(env.sync("ttl").await, Some(Duration::from_secs(1)));
    assert!(env.job("ttl").await.is_some());
    env.advance(1).await;
    assert_eq!(env.sync("ttl").await, None);
    // Deleted in the foreground: the collector takes the pod, then the Job.
    for _ in 0..400 {
        if env.job("ttl").await.is_none() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(env.job("ttl").await.is_none());
    assert!(env.pods().await.is_empty());
    gc.stop(None);
}

#[tokio::test]
async fn pods_of_a_deleted_job_lose_their_tracking_finalizer() {
    let env = env();
    let created = env.create(job("bye", "Never", json!({}))).await;
    let uid = created["metadata"]["uid"]
        .as_str()
        .expect("uid")
        .to_string();
    env.sync("bye").await;
    let pod = name(&env.pods().await[0]);
    env.edit_pod(&pod, |p| {
        p["spec"]["nodeName"] = json!("node1");
        p["status"]["phase"] = json!("Running");
        true
    })
    .await;
    let owner = Some(("bye".to_string(), uid));
    // While the Job runs, its pod is its business.
    assert_eq!(
        env.sync
            .release_orphan(NS, &pod, owner.as_ref())
            .await
            .expect("release"),
        Some("bye".into())
    );
    assert!(pods::tracked(&env.pods().await[0]));
    // The Job goes; the collector deletes the pod, which the finalizer holds.
    env.objects
        .delete(kinds::JOBS, Some(NS), "bye")
        .await
        .expect("delete job");
    env.objects.delete_pod(NS, &pod).await.expect("delete pod");
    let held = env.pods().await;
    assert!(pods::deleting(&held[0]) && pods::tracked(&held[0]));
    assert_eq!(
        env.sync
            .release_orphan(NS, &pod, owner.as_ref())
            .await
            .expect("release"),
        None
    );
    let released = env.pods().await;
    assert!(
        !pods::tracked(&released[0]),
        "{:?}",
        released[0]["metadata"]
    );
}

#[tokio::test]
async fn suspend_removes_pods_uncounted_and_resume_restarts_the_clock() {
    let env = env();
    env.create(job(
        "sus",
        "Never",
        json!({"parallelism": 2, "completions": 4, "activeDeadlineSeconds": 100}),
    ))
    .await;
    env.sync("sus").await;
    assert_eq!(env.active_pods().await.len(), 2);
    env.edit_job("sus", |j| {
        j["spec"]["suspend"] = json!(true);
        true
    })
    .await;
    env.advance(50).await;
    assert_eq!(env.sync("sus").await, None, "no deadline while suspended");
    assert!(env.pods().await.is_empty());
    let st = env.status("sus").await;
    assert_eq!(
        condition(&st, "Suspended"),
        Some(("True".into(), "JobSuspended".into(), "Job suspended".into()))
    );
    assert!(
        st.get("failed").is_none(),
        "suspended pods are not failures"
    );
    assert!(st.get("active").is_none());

    env.advance(500).await;
    env.edit_job("sus", |j| {
        j["spec"]["suspend"] = json!(false);
        true
    })
    .await;
    assert_eq!(env.sync("sus").await, Some(Duration::from_secs(100)));
    assert_eq!(env.active_pods().await.len(), 2);
    let st = env.status("sus").await;
    assert_eq!(
        condition(&st, "Suspended"),
        Some(("False".into(), "JobResumed".into(), "Job resumed".into()))
    );
    assert_eq!(st["startTime"], "2026-01-01T00:09:10Z");
    let reasons = env.event_reasons().await;
    assert!(
        reasons.contains(&"Suspended".into()) && reasons.contains(&"Resumed".into()),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn indexed_jobs_run_each_index_once() {
    let env = env();
    env.create(job(
        "idx",
        "Never",
        json!({"completions": 3, "parallelism": 2, "completionMode": "Indexed"}),
    ))
    .await;
    env.sync("idx").await;
    let mut active = env.active_pods().await;
    active.sort_by_key(pods::completion_index);
    let indexes: Vec<Option<usize>> = active.iter().map(pods::completion_index).collect();
    assert_eq!(indexes, [Some(0), Some(1)]);
    assert!(name(&active[1]).starts_with("idx-1-"));
    env.set_phase(&name(&active[1]), "Succeeded").await;
    env.sync("idx").await;
    let st = env.status("idx").await;
    assert_eq!(
        (st["completedIndexes"].as_str(), st["succeeded"].as_i64()),
        (Some("1"), Some(1))
    );
    let mut active = env.active_pods().await;
    active.sort_by_key(pods::completion_index);
    let indexes: Vec<Option<usize>> = active.iter().map(pods::completion_index).collect();
    assert_eq!(indexes, [Some(0), Some(2)]);
    for p in &active {
        env.set_phase(&name(p), "Succeeded").await;
    }
    env.sync("idx").await;
    let st = env.status("idx").await;
    assert_eq!(st["completedIndexes"], "0-2");
    assert!(status::is_true(&st, "Complete"));
}

#[tokio::test]
async fn a_counted_pod_stays_counted_after_it_is_deleted() {
    let env = env();
    env.create(job("keep", "Never", json!({"completions": 2})))
        .await;
    env.sync("keep").await;
    let first = succeed_one(&env).await;
    env.sync("keep").await;
    assert_eq!(env.status("keep").await["succeeded"], 1);
    env.objects
        .delete(kinds::PODS, Some(NS), &first)
        .await
        .expect("delete");
    env.sync("keep").await;
    assert_eq!(env.status("keep").await["succeeded"], 1);
    assert_eq!(env.pods().await.len(), 1, "one more pod, not two");
}

#[tokio::test]
async fn a_pod_deleted_while_running_counts_as_failed_and_is_replaced() {
    let env = env();
    env.create(job("gone", "Never", json!({}))).await;
    env.sync("gone").await;
    let pod = name(&env.pods().await[0]);
    env.edit_pod(&pod, |p| {
        p["spec"]["nodeName"] = json!("node1");
        p["status"]["phase"] = json!("Running");
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:30Z");
        true
    })
    .await;
    // Replaced at once (TerminatingOrFailed) after the first failure's
    // back-off; counted as failed.
    assert_eq!(env.sync("gone").await, Some(Duration::from_secs(10)));
    let st = env.status("gone").await;
    assert_eq!(
        (st["failed"].as_i64(), st["terminating"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(st["uncountedTerminatedPods"], json!({}));
    env.advance(10).await;
    env.sync("gone").await;
    assert_eq!(env.active_pods().await.len(), 1);
}

#[tokio::test]
async fn orphans_matching_the_selector_are_adopted() {
    let env = env();
    let created = env
        .create(job(
            "adopt",
            "Never",
            json!({"completions": 2, "parallelism": 2}),
        ))
        .await;
    let labels = created["spec"]["template"]["metadata"]["labels"].clone();
    env.objects
        .create(
            kinds::PODS,
            json!({"metadata": {"name": "stray", "namespace": NS, "labels": labels},
                   "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await
        .expect("pod");
    env.sync("adopt").await;
    let pods = env.pods().await;
    assert_eq!(pods.len(), 2, "adopted one, created one");
    let stray = pods.iter().find(|p| name(p) == "stray").expect("stray");
    assert_eq!(
        stray["metadata"]["ownerReferences"][0]["uid"],
        created["metadata"]["uid"]
    );
    assert_eq!(stray["metadata"]["finalizers"], json!([TRACKING_FINALIZER]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_actor_creates_pods_for_a_new_job() {
    use ractor::Actor;
    let objects = Objects::new(Arc::new(MemoryStore::new()));
    let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
    let jobs = super::Jobs::new(objects.clone(), Backoff::default(), clock);
    let (actor, handle) = Actor::spawn(
        None,
        super::JobController::default(),
        (objects.store().clone(), jobs),
    )
    .await
    .expect("spawn");
    objects
        .create(
            kinds::JOBS,
            job(
                "watched",
                "Never",
                json!({"parallelism": 2, "completions": 2}),
            ),
        )
        .await
        .expect("job");
    let mut pods = Vec::new();
    for _ in 0..100 {
        pods = objects.list(kinds::PODS).await.expect("pods").0;
        if pods.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pods.len(), 2);
    actor.stop(None);
    let _ = handle.await;
}
