//! What every [`ContainerRuntime`] must do, as a suite run against each
//! implementation ([`run_all`]): the in-memory fake in the kubelet's unit
//! tests, containerd in the e2e tests. The fake exists so the kubelet can be
//! tested without root; this suite is what keeps it honest.
//!
//! A runtime cannot be told "run `sh`" in the same way: a real one runs a
//! command in an image, the fake is scripted. A [`Fixture`] turns the few
//! [`Behaviour`]s the checks need into a container configuration for its
//! runtime. Each check cleans up after itself and uses its own ids, so they
//! can share one runtime.

use std::path::Path;
use std::time::{Duration, Instant};

use skiff_images::ImageName;

use super::{ContainerConfig, ContainerRuntime, ContainerState, LabelFilter, RuntimeError, labels};
use crate::logs::cri::{self, Stream};

/// What the process of a conformance container does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Writes one line to stdout and one to stderr, then exits with `code`.
    Exit {
        /// The stdout line (a single word).
        stdout: &'static str,
        /// The stderr line (a single word).
        stderr: &'static str,
        /// Exit code.
        code: i32,
    },
    /// Writes `ready` to stdout, then runs until SIGTERM, on which it exits 143.
    UntilTerm,
    /// Runs until killed: it ignores SIGTERM.
    IgnoresTerm,
}

/// What the suite needs from a runtime besides the trait.
pub trait Fixture: Send + Sync {
    /// A configuration for a container `id` of pod `pod_uid` whose process
    /// behaves as `behaviour`, with its image present and a log path of its
    /// own. Container name and id are the same.
    fn config(&self, id: &str, pod_uid: &str, behaviour: Behaviour) -> ContainerConfig;
}

/// Longest time a check waits for something a real runtime does at once.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs every check.
pub async fn run_all(rt: &dyn ContainerRuntime, fx: &dyn Fixture) {
    a_container_runs_to_its_exit_code(rt, fx).await;
    output_lands_in_the_cri_log(rt, fx).await;
    stop_sends_sigterm_then_sigkill_after_the_grace(rt, fx).await;
    list_filters_by_labels_and_shows_each_state(rt, fx).await;
    removal_kills_forgets_and_keeps_the_log(rt, fx).await;
    missing_things_are_errors_of_their_own(rt, fx).await;
    misuse_is_refused(rt, fx).await;
}

async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {PATIENCE:?}"))
}

/// The plain text of a container's log (empty while it does not exist).
fn log_text(path: &Path) -> String {
    String::from_utf8_lossy(&cri::plain_text(&std::fs::read(path).unwrap_or_default())).into_owned()
}

async fn wait_for_log(config: &ContainerConfig, text: &str) {
    let deadline = Instant::now() + PATIENCE;
    while !log_text(&config.log_path).contains(text) {
        assert!(
            Instant::now() < deadline,
            "{}: {text:?} never reached the log",
            config.id
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates and starts each container.
async fn start_all(rt: &dyn ContainerRuntime, configs: &[&ContainerConfig]) {
    for c in configs {
        rt.create_container(c).await.expect("create");
        rt.start_container(&c.id).await.expect("start");
    }
}

/// Stops container `id`: its exit code and how long that took.
async fn timed_stop(rt: &dyn ContainerRuntime, id: &str, grace: Duration) -> (i32, Duration) {
    let started = Instant::now();
    let status = within("stop", rt.stop_container(id, grace))
        .await
        .expect("stop");
    (status.code, started.elapsed())
}

/// Create, start, wait: the state goes created → running or exited, the exit
/// code is kept, and waiting again gives the same answer. The record keeps
/// the image and every label.
pub async fn a_container_runs_to_its_exit_code(rt: &dyn ContainerRuntime, fx: &dyn Fixture) {
    let c = fx.config(
        "conf-exit",
        "conf-pod-exit",
        Behaviour::Exit {
            stdout: "out",
            stderr: "err",
            code: 3,
        },
    );
    assert!(rt.image_present(&c.image).await.expect("image_present"));
    rt.create_container(&c).await.expect("create");
    let info = rt.container_info(&c.id).await.expect("info");
    assert_eq!(info.state, ContainerState::Created);
    assert_eq!(info.id, c.id);
    assert_eq!(info.image, c.image.to_string());
    assert_eq!(info.labels, c.labels());
    assert!(info.created_at.is_some());

    let pid = rt.start_container(&c.id).await.expect("start");
    assert!(pid > 0);
    let status = within("wait", rt.wait_container(&c.id))
        .await
        .expect("wait");
    assert_eq!(status.code, 3);
    let again = within("second wait", rt.wait_container(&c.id))
        .await
        .expect("second wait");
    assert_eq!(again.code, 3);
    let info = rt.container_info(&c.id).await.expect("info");
    assert!(
        matches!(info.state, ContainerState::Exited(s) if s.code == 3),
        "{:?}",
        info.state
    );
    assert_eq!(
        rt.stop_container(&c.id, Duration::from_secs(1))
            .await
            .expect("stopping an exited container")
            .code,
        3,
        "stopping an exited container tells how it ended"
    );
    rt.remove_container(&c.id).await.expect("remove");
}

/// stdout and stderr reach the configured file as CRI records, tagged
/// apart, and the file outlives the container.
pub async fn output_lands_in_the_cri_log(rt: &dyn ContainerRuntime, fx: &dyn Fixture) {
    let c = fx.config(
        "conf-log",
        "conf-pod-log",
        Behaviour::Exit {
            stdout: "hello",
            stderr: "oops",
            code: 0,
        },
    );
    rt.create_container(&c).await.expect("create");
    rt.start_container(&c.id).await.expect("start");
    let status = within("wait", rt.wait_container(&c.id))
        .await
        .expect("wait");
    assert_eq!(status.code, 0);
    // Removal waits for the output to be written.
    rt.remove_container(&c.id).await.expect("remove");
    let raw = std::fs::read_to_string(&c.log_path).expect("the log file stays");
    let records: Option<Vec<cri::Record>> = raw
        .lines()
        .map(|l| cri::parse_record(l.as_bytes()))
        .collect();
    let records = records.unwrap_or_else(|| panic!("only CRI records: {raw}"));
    let lines_of = |stream: Stream| -> Vec<String> {
        records
            .iter()
            .filter(|r| r.stream == stream && !r.partial)
            .map(|r| String::from_utf8_lossy(&r.content).into_owned())
            .collect()
    };
    assert_eq!(lines_of(Stream::Stdout), ["hello"], "{raw}");
    assert_eq!(lines_of(Stream::Stderr), ["oops"], "{raw}");
}

/// A process that handles SIGTERM ends with its own code at once; one that
/// ignores it is killed (137) once the grace period is over, not before.
pub async fn stop_sends_sigterm_then_sigkill_after_the_grace(
    rt: &dyn ContainerRuntime,
    fx: &dyn Fixture,
) {
    let polite = fx.config("conf-polite", "conf-pod-stop", Behaviour::UntilTerm);
    let stubborn = fx.config("conf-stubborn", "conf-pod-stop", Behaviour::IgnoresTerm);
    start_all(rt, &[&polite, &stubborn]).await;
    // The handler must be in place before the signal.
    wait_for_log(&polite, "ready").await;
    let info = rt.container_info(&polite.id).await.expect("info");
    assert!(
        matches!(info.state, ContainerState::Running { pid } if pid > 0),
        "{:?}",
        info.state
    );

    let (code, took) = timed_stop(rt, &polite.id, Duration::from_secs(20)).await;
    assert_eq!(code, 143);
    assert!(took < Duration::from_secs(10), "{took:?}");
    let grace = Duration::from_secs(2);
    let (code, took) = timed_stop(rt, &stubborn.id, grace).await;
    assert_eq!(code, 137);
    assert!(took >= grace, "killed before the grace period: {took:?}");
    let waited = within("wait", rt.wait_container(&stubborn.id))
        .await
        .expect("wait");
    assert_eq!(waited.code, 137, "wait agrees with stop");
    for c in [&polite, &stubborn] {
        rt.remove_container(&c.id).await.expect("remove");
    }
}

/// Listing returns only the containers whose labels include the filter's,
/// in id order, each in its state.
pub async fn list_filters_by_labels_and_shows_each_state(
    rt: &dyn ContainerRuntime,
    fx: &dyn Fixture,
) {
    let exit = Behaviour::Exit {
        stdout: "x",
        stderr: "y",
        code: 0,
    };
    let created = fx.config("conf-list-a", "conf-pod-list", exit);
    let running = fx.config("conf-list-b", "conf-pod-list", Behaviour::UntilTerm);
    let exited = fx.config("conf-list-c", "conf-pod-list", exit);
    let other = fx.config("conf-list-d", "conf-pod-other", exit);
    for c in [&other, &exited, &running, &created] {
        rt.create_container(c).await.expect("create");
    }
    for c in [&running, &exited] {
        rt.start_container(&c.id).await.expect("start");
    }
    within("wait", rt.wait_container(&exited.id))
        .await
        .expect("wait");
    wait_for_log(&running, "ready").await;

    let filter = LabelFilter::from([(labels::POD_UID.to_string(), "conf-pod-list".to_string())]);
    let found = rt.list_containers(&filter).await.expect("list");
    let ids: Vec<&str> = found.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["conf-list-a", "conf-list-b", "conf-list-c"]);
    assert_eq!(found[0].state, ContainerState::Created);
    assert!(
        matches!(found[1].state, ContainerState::Running { pid } if pid > 0),
        "{:?}",
        found[1].state
    );
    assert!(
        matches!(found[2].state, ContainerState::Exited(s) if s.code == 0),
        "{:?}",
        found[2].state
    );
    assert_eq!(found[1].labels, running.labels());
    assert!(found.iter().all(|c| c.created_at.is_some()));

    let by_name = LabelFilter::from([
        (labels::POD_UID.to_string(), "conf-pod-list".to_string()),
        (
            labels::CONTAINER_NAME.to_string(),
            "conf-list-b".to_string(),
        ),
    ]);
    let found = rt.list_containers(&by_name).await.expect("list");
    assert_eq!(found.len(), 1, "every pair must match: {found:?}");
    let all = rt.list_containers(&LabelFilter::new()).await.expect("list");
    for c in [&created, &running, &exited, &other] {
        assert!(all.iter().any(|i| i.id == c.id), "{} not listed", c.id);
    }
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "sorted by id");

    for c in [&created, &running, &exited, &other] {
        rt.remove_container(&c.id).await.expect("remove");
    }
    assert!(rt.list_containers(&filter).await.expect("list").is_empty());
}

/// Removing kills a running container and forgets it (removing again, or an
/// id never seen, is fine); its log stays.
pub async fn removal_kills_forgets_and_keeps_the_log(rt: &dyn ContainerRuntime, fx: &dyn Fixture) {
    let c = fx.config("conf-remove", "conf-pod-remove", Behaviour::IgnoresTerm);
    let talker = fx.config("conf-remove-log", "conf-pod-remove", Behaviour::UntilTerm);
    start_all(rt, &[&c, &talker]).await;
    wait_for_log(&talker, "ready").await;
    for c in [&c, &talker] {
        within("remove", rt.remove_container(&c.id))
            .await
            .expect("remove a running container");
        rt.remove_container(&c.id).await.expect("remove again");
        let gone = rt.container_info(&c.id).await.expect_err("forgotten");
        assert!(matches!(gone, RuntimeError::NotFound { .. }), "{gone}");
    }
    rt.remove_container("conf-never-existed")
        .await
        .expect("removing an unknown id");
    assert!(log_text(&talker.log_path).contains("ready"));
}

/// Unknown ids and images each fail with the error that names them.
pub async fn missing_things_are_errors_of_their_own(rt: &dyn ContainerRuntime, fx: &dyn Fixture) {
    let ghost = "conf-ghost";
    let not_found = |e: RuntimeError| assert!(matches!(e, RuntimeError::NotFound { .. }), "{e}");
    not_found(rt.container_info(ghost).await.expect_err("info"));
    not_found(rt.start_container(ghost).await.expect_err("start"));
    not_found(rt.wait_container(ghost).await.expect_err("wait"));
    let command = ["true".to_string()];
    not_found(
        rt.exec(ghost, &command, Duration::from_secs(5))
            .await
            .expect_err("exec"),
    );
    let stopped = rt
        .stop_container(ghost, Duration::from_secs(1))
        .await
        .expect_err("stop");
    assert!(
        matches!(stopped, RuntimeError::NotRunning { .. }),
        "{stopped}"
    );

    let mut c = fx.config("conf-no-image", "conf-pod-missing", Behaviour::IgnoresTerm);
    c.image = ImageName::parse("skiff.dev/nothing:v1").expect("valid");
    assert!(!rt.image_present(&c.image).await.expect("image_present"));
    let err = rt.create_container(&c).await.expect_err("no image");
    assert!(matches!(err, RuntimeError::ImageNotPresent { .. }), "{err}");
    assert_eq!(err.to_string(), "image skiff.dev/nothing:v1 is not present");
    not_found(rt.container_info(&c.id).await.expect_err("nothing left"));
}

/// What the kubelet must never do is refused: a second container with the
/// same id, an id the runtime cannot name, starting twice, exec'ing into or
/// waiting for a container that does not run, stopping one never started.
pub async fn misuse_is_refused(rt: &dyn ContainerRuntime, fx: &dyn Fixture) {
    let c = fx.config("conf-misuse", "conf-pod-misuse", Behaviour::UntilTerm);
    rt.create_container(&c).await.expect("create");
    let err = rt.create_container(&c).await.expect_err("same id");
    assert!(matches!(err, RuntimeError::AlreadyExists { .. }), "{err}");
    let mut bad = fx.config("conf-bad-id", "conf-pod-misuse", Behaviour::UntilTerm);
    bad.id = "bad/id".into();
    let err = rt.create_container(&bad).await.expect_err("bad id");
    assert!(matches!(err, RuntimeError::InvalidConfig { .. }), "{err}");

    let command = ["true".to_string()];
    let err = rt
        .exec(&c.id, &command, Duration::from_secs(5))
        .await
        .expect_err("exec before start");
    assert!(matches!(err, RuntimeError::NotRunning { .. }), "{err}");
    let err = rt
        .wait_container(&c.id)
        .await
        .expect_err("wait before start");
    assert!(err.is_not_found(), "{err}");
    let err = rt
        .stop_container(&c.id, Duration::from_secs(1))
        .await
        .expect_err("stop before start");
    assert!(matches!(err, RuntimeError::NotRunning { .. }), "{err}");

    rt.start_container(&c.id).await.expect("start");
    wait_for_log(&c, "ready").await;
    rt.start_container(&c.id).await.expect_err("a second start");
    let err = rt
        .exec(&c.id, &[], Duration::from_secs(5))
        .await
        .expect_err("exec without a command");
    assert!(matches!(err, RuntimeError::InvalidConfig { .. }), "{err}");
    let out = within("exec", rt.exec(&c.id, &command, Duration::from_secs(10)))
        .await
        .expect("exec into a running container");
    assert_eq!(out.exit_code, 0);

    let (code, _) = timed_stop(rt, &c.id, Duration::from_secs(10)).await;
    assert_eq!(code, 143);
    let err = rt.exec(&c.id, &command, Duration::from_secs(5)).await;
    // containerd answers a stopped task's exec with an untyped error
    // ("cannot exec in a stopped state").
    let refused = matches!(
        err,
        Err(RuntimeError::NotRunning { .. } | RuntimeError::Rpc { .. })
    );
    assert!(refused, "exec after exit: {err:?}");
    rt.remove_container(&c.id).await.expect("remove");
}
