//! The seed's Job and CronJob sessions with the real kubectl, a real
//! control plane and a real kubelet on containerd (busybox for perl and
//! ubuntu):
//! - `completions: 3, parallelism: 3` runs three pods at once to
//!   `Complete 3/3`, and `kubectl logs job/NAME` reads one of them;
//! - the failing `ls "unvalid path"` with `restartPolicy: Never` gets new
//!   pods until `backoffLimit`, then the Job is `Failed` with reason
//!   `BackoffLimitExceeded`;
//! - the same with `OnFailure` keeps one pod whose container restarts count
//!   toward the limit (`backoffLimit: 3` there, so the climb is seen);
//! - a `*/1 * * * *` CronJob with `concurrencyPolicy: Forbid` starts one
//!   Job `<cronjob>-<minutes since epoch>` at the next minute and none at
//!   the following minute while it still runs; `kubectl create job
//!   --from=cronjob/NAME` starts one by hand.
//!
//! The control plane runs with a lab back-off for failed pods (1 s
//! doubling, `--job-backoff-base`), the kubelet with its lab crash back-off.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skiff_tests::TestEnv;
use skiff_tests::control_plane::{TestControlPlane, kubectl_enabled};
use skiff_tests::kubelet::TestKubelet;

const PARALLEL: &str = "apiVersion: batch/v1
kind: Job
metadata:
  name: mypi-para
spec:
  completions: 3
  parallelism: 3
  template:
    spec:
      containers:
      - image: busybox
        name: mypi
        command: [sh, -c, 'echo hi from $(hostname); sleep 1']
      restartPolicy: OnFailure
";

fn unvalid(name: &str, restart: &str, backoff_limit: u32) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
  backoffLimit: {backoff_limit}
  template:
    spec:
      containers:
      - name: errorjob-unvalidcommand
        image: busybox
        command: [\"ls\", \"unvalid path\"]
      restartPolicy: {restart}
"
    )
}

const CRONJOB: &str = "apiVersion: batch/v1
kind: CronJob
metadata:
  name: hello
spec:
  schedule: \"*/1 * * * *\"
  concurrencyPolicy: Forbid
  jobTemplate:
    spec:
      template:
        spec:
          terminationGracePeriodSeconds: 1
          containers:
          - name: name
            image: busybox
            imagePullPolicy: IfNotPresent
            command:
            - /bin/sh
            - -c
            - date; echo Hello from Kubernetes Cluster; sleep 150
          restartPolicy: OnFailure
";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `kubectl get` with a jsonpath.
fn jsonpath(cp: &TestControlPlane, what: &str, path: &str) -> String {
    let words: Vec<&str> = what.split_whitespace().collect();
    let mut args = vec!["get"];
    args.extend(words);
    let spec = format!("jsonpath={path}");
    args.extend(["-o", &spec]);
    cp.kubectl_ok(&args)
}

/// The row of `name` in a `kubectl get` table, split into cells.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn jobs_and_cronjobs_run_on_a_real_node() {
    let test = "jobs_and_cronjobs_run_on_a_real_node";
    if !kubectl_enabled(test) {
        return;
    }
    let Some(env) = TestEnv::start(test).await else {
        return;
    };
    let cp = TestControlPlane::start_with(&["--job-backoff-base", "1s", "--job-backoff-max", "4s"])
        .await;
    let node = format!("n{}j", std::process::id());
    let _kubelet = TestKubelet::start_with(&env, &node, &["--control-plane", &cp.grpc]).await;
    cp.eventually(&["get", "nodes"], "the node Ready", |o| {
        o.contains(" Ready ")
    });

    // The CronJob first: it needs a real minute to pass.
    let cronjob_created = now_secs();
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("cronjob.yaml", CRONJOB)]);
    let first_minute = cronjob_created / 60 + 1;

    // completions 3, parallelism 3.
    cp.kubectl_ok(&["apply", "-f", &cp.manifest("para.yaml", PARALLEL)]);
    let jobs = cp.eventually(&["get", "jobs"], "mypi-para Complete 3/3", |o| {
        let r = row(o, "mypi-para");
        r.get(1).map(String::as_str) == Some("Complete")
            && r.get(2).map(String::as_str) == Some("3/3")
    });
    let header: Vec<&str> = jobs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{jobs}"
    );
    let pods = cp.kubectl_ok(&["get", "pods", "-l", "job-name=mypi-para", "--no-headers"]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
    assert!(
        pods.lines()
            .all(|l| l.starts_with("mypi-para-") && l.contains("Completed")),
        "{pods}"
    );
    let logs = cp.kubectl(&["logs", "job/mypi-para"]);
    let out = String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.status.success() && out.starts_with("hi from mypi-para-"),
        "{out}{}",
        String::from_utf8_lossy(&logs.stderr)
    );
    let describe = cp.kubectl_ok(&["describe", "job", "mypi-para"]);
    assert!(
        describe.contains("3 Succeeded")
            && describe.contains("SuccessfulCreate")
            && describe.contains("Completed"),
        "{describe}"
    );
    let status = jsonpath(
        &cp,
        "job mypi-para",
        "{.status.succeeded} {.status.conditions[?(@.type==\"Complete\")].reason} {.status.uncountedTerminatedPods}",
    );
    assert_eq!(status, "3 CompletionsReached {}");

    // restartPolicy Never: a new pod per failure, then BackoffLimitExceeded.
    cp.kubectl_ok(&[
        "apply",
        "-f",
        &cp.manifest("never.yaml", &unvalid("errorjob-never", "Never", 2)),
    ]);
    // restartPolicy OnFailure: one pod, restarted in place.
    cp.kubectl_ok(&[
        "apply",
        "-f",
        &cp.manifest(
            "onfailure.yaml",
            &unvalid("errorjob-onfailure", "OnFailure", 3),
        ),
    ]);
    cp.eventually(&["get", "jobs"], "errorjob-never Failed", |o| {
        row(o, "errorjob-never").get(1).map(String::as_str) == Some("Failed")
    });
    let failed = jsonpath(
        &cp,
        "job errorjob-never",
        "{.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}",
    );
    assert_eq!(
        failed, "3 BackoffLimitExceeded",
        "backoffLimit 2: three pods fail"
    );
    let pods = cp.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "job-name=errorjob-never",
        "--no-headers",
    ]);
    assert_eq!(pods.lines().count(), 3, "{pods}");
    assert!(pods.lines().all(|l| l.contains("Error")), "{pods}");
    let describe = cp.kubectl_ok(&["describe", "job", "errorjob-never"]);
    assert!(
        describe.contains("BackoffLimitExceeded")
            && describe.contains("Job has reached the specified backoff limit"),
        "{describe}"
    );

    // OnFailure: the one pod's restarts climb; at 3 the Job fails.
    let restarts = cp.eventually(
        &[
            "get",
            "pods",
            "-l",
            "job-name=errorjob-onfailure",
            "--no-headers",
        ],
        "the OnFailure pod restarting",
        |o| {
            row(o, o.split_whitespace().next().unwrap_or("-"))
                .get(3)
                .is_some_and(|r| r != "0")
        },
    );
    assert_eq!(
        restarts.lines().count(),
        1,
        "one pod, restarted in place: {restarts}"
    );
    cp.eventually(&["get", "jobs"], "errorjob-onfailure Failed", |o| {
        row(o, "errorjob-onfailure").get(1).map(String::as_str) == Some("Failed")
    });
    let failed = jsonpath(
        &cp,
        "job errorjob-onfailure",
        "{.status.failed} {.status.conditions[?(@.type==\"Failed\")].reason}",
    );
    assert_eq!(failed, "1 BackoffLimitExceeded");
    let created = cp.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=errorjob-onfailure,reason=SuccessfulCreate",
        "--no-headers",
    ]);
    assert_eq!(created.lines().count(), 1, "one pod only: {created}");

    // The CronJob: one Job at the first minute after it was created.
    let first = format!("hello-{first_minute}");
    let shown = cp.eventually(&["get", "jobs"], "the CronJob's first Job", |o| {
        !row(o, &first).is_empty()
    });
    let hello_jobs: Vec<&str> = shown
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with("hello-"))
        .collect();
    assert_eq!(hello_jobs, [first.as_str()], "{shown}");
    let meta = jsonpath(
        &cp,
        &format!("job {first}"),
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name} {.metadata.annotations.batch\\.kubernetes\\.io/cronjob-scheduled-timestamp}",
    );
    let (owner, stamp) = meta.split_once(' ').unwrap_or_default();
    assert_eq!(owner, "CronJob/hello");
    assert!(stamp.ends_with(":00Z"), "scheduled on the minute: {stamp}");
    cp.eventually(
        &["logs", &format!("job/{first}")],
        "the CronJob's output",
        |o| o.contains("Hello from Kubernetes Cluster"),
    );
    let cronjobs = cp.kubectl_ok(&["get", "cronjobs"]);
    let header: Vec<&str> = cronjobs
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        [
            "NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST", "SCHEDULE", "AGE"
        ],
        "{cronjobs}"
    );
    let r = row(&cronjobs, "hello");
    assert_eq!(r[1..6], ["*/1", "*", "*", "*", "*"], "{cronjobs}");
    assert_eq!(r[6..9], ["<none>", "False", "1"], "{cronjobs}");

    // Forbid: the next minute passes while the first Job still runs.
    let next_minute_passed = (first_minute + 1) * 60 + 5;
    let wait = next_minute_passed.saturating_sub(now_secs());
    tokio::time::sleep(Duration::from_secs(wait)).await;
    let shown = cp.kubectl_ok(&["get", "jobs", "--no-headers"]);
    let hello_jobs = shown.lines().filter(|l| l.starts_with("hello-")).count();
    assert_eq!(
        hello_jobs, 1,
        "Forbid: no second Job while one runs: {shown}"
    );
    let describe = cp.kubectl_ok(&["describe", "cronjob", "hello"]);
    assert!(
        describe.contains("JobAlreadyActive") && describe.contains(&format!("Created job {first}")),
        "{describe}"
    );

    // A Job by hand from the CronJob's template.
    let out = cp.kubectl_ok(&["create", "job", "--from=cronjob/hello", "hello-manual"]);
    assert!(out.contains("job.batch/hello-manual created"), "{out}");
    cp.eventually(
        &["logs", "job/hello-manual"],
        "the manual Job's output",
        |o| o.contains("Hello from Kubernetes Cluster"),
    );
    let manual = jsonpath(
        &cp,
        "job hello-manual",
        "{.metadata.annotations.cronjob\\.kubernetes\\.io/instantiate}",
    );
    assert_eq!(manual, "manual");

    // Deleting the CronJob takes its Jobs and, once the Job controller has
    // dropped their tracking finalizers, their running pods.
    cp.kubectl_ok(&["delete", "cronjob", "hello"]);
    cp.eventually(
        &["get", "pods", "--no-headers"],
        "the CronJob's pods gone",
        |o| !o.lines().any(|l| l.starts_with("hello-")),
    );
    cp.eventually(
        &["get", "jobs", "--no-headers"],
        "the CronJob's Jobs gone",
        |o| !o.lines().any(|l| l.starts_with("hello-")),
    );
}
