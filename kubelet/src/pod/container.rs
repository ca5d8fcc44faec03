//! One container of a pod over its whole life, across restarts: what runs
//! now, how the last instances ended, and what to do next. Everything here
//! is pure (no I/O, time passed in), so the restart rules — restartPolicy,
//! CrashLoopBackOff, image and create errors — are unit-tested exhaustively.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus,
};
use tokio::time::Instant;

use super::backoff::{Backoff, BackoffConfig};
use super::restart_policy::RestartPolicy;
use super::status::k8s_time;

/// How one container instance ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// Runtime container id.
    pub container_id: String,
    /// Exit code (137 after SIGKILL).
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `StartError`.
    pub reason: String,
    /// Extra detail (start errors).
    pub message: Option<String>,
    /// When it started, if it did.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

impl Termination {
    /// The reason upstream gives an exit code.
    pub fn reason_for(exit_code: i32) -> &'static str {
        if exit_code == 0 { "Completed" } else { "Error" }
    }
}

/// What currently runs for the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// Nothing: never started yet, or waiting to be (re)started.
    Idle,
    /// A start (image, create, start) is in flight.
    Starting,
    /// An instance is running.
    Running {
        /// Runtime container id.
        id: String,
        /// When it started.
        started_at: DateTime<Utc>,
    },
}

/// Why a container that is not running waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// `ContainerCreating`, `CrashLoopBackOff`, `ErrImagePull`, ...
    pub reason: String,
    /// Human-readable detail.
    pub message: Option<String>,
}

/// Why a start failed before the container ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartFailure {
    /// The image could not be made present (`ErrImagePull`, then `ImagePullBackOff`).
    ImagePull(String),
    /// The image is missing and the policy forbids pulling (`ErrImageNeverPull`).
    ImageNeverPull(String),
    /// The container could not be created (`CreateContainerError`).
    Create(String),
    /// The container's configuration cannot be honoured, e.g. `runAsNonRoot`
    /// with a root image (`CreateContainerConfigError`).
    Config(String),
    /// The container was created but its process could not start (`StartError`,
    /// counted as a crash).
    Run(String),
}

/// The next thing to do for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Start an instance now.
    Start,
    /// Start one at this time (back-off).
    WaitUntil(Instant),
    /// Nothing to do (running, in flight, finished for good, or terminating).
    Idle,
}

/// One container of a pod, across restarts. Its fields change only through
/// the `on_*` transitions below, so every rule lives here.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Container spec from the pod.
    spec: Container,
    /// What runs now.
    current: Current,
    /// Instances started after the first.
    restart_count: u32,
    /// How the most recent instance ended.
    last: Option<Termination>,
    /// How the one before it ended.
    previous: Option<Termination>,
    /// Why the container waits (while `current` is `Idle`).
    waiting: Option<Waiting>,
    /// Crash back-off.
    crash_backoff: Backoff,
    /// Image pull back-off.
    image_backoff: Backoff,
    /// Earliest time of the next start.
    retry_at: Option<Instant>,
    /// Readiness probe verdict (true without a readiness probe once running).
    ready: bool,
    /// Startup probe verdict (true without a startup probe once running).
    started: bool,
    /// A stop (liveness kill, termination) is in flight.
    stopping: bool,
    /// The restart policy says this container is finished for good.
    done: bool,
    /// At least one instance has started.
    ever_started: bool,
}

impl Slot {
    /// A container not started yet.
    pub fn new(spec: Container) -> Self {
        Self {
            spec,
            current: Current::Idle,
            restart_count: 0,
            last: None,
            previous: None,
            waiting: Some(Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            }),
            crash_backoff: Backoff::default(),
            image_backoff: Backoff::default(),
            retry_at: None,
            ready: false,
            started: false,
            stopping: false,
            done: false,
            ever_started: false,
        }
    }

    /// Container name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The running instance's id, if any.
    pub fn running_id(&self) -> Option<&str> {
        match &self.current {
            Current::Running { id, .. } => Some(id),
            _ => None,
        }
    }

    /// The container spec in force.
    pub fn spec(&self) -> &Container {
        &self.spec
    }

    /// Instances started after the first.
    pub fn restart_count(&self) -> u32 {
        self.restart_count
    }

    /// How the instance before the most recent one ended.
    pub fn previous(&self) -> Option<&Termination> {
        self.previous.as_ref()
    }

    /// Why the container waits, if it does.
    pub fn waiting(&self) -> Option<&Waiting> {
        self.waiting.as_ref()
    }

    /// Whether the container waits in CrashLoopBackOff.
    pub fn crash_looping(&self) -> bool {
        self.waiting
            .as_ref()
            .is_some_and(|w| w.reason == "CrashLoopBackOff")
    }

    /// A start is in flight.
    pub fn is_starting(&self) -> bool {
        self.current == Current::Starting
    }

    /// When the running instance started, if one runs.
    pub fn running_since(&self) -> Option<DateTime<Utc>> {
        match &self.current {
            Current::Running { started_at, .. } => Some(*started_at),
            _ => None,
        }
    }

    /// The restart count the next instance is created with (its id and label).
    pub fn next_instance(&self) -> u32 {
        if self.ever_started {
            self.restart_count + 1
        } else {
            0
        }
    }

    /// What to do next, given the pod is (not) terminating.
    pub fn next_step(&self, terminating: bool, now: Instant) -> Step {
        if terminating || self.stopping || self.done || self.current != Current::Idle {
            return Step::Idle;
        }
        match self.retry_at {
            Some(at) if at > now => Step::WaitUntil(at),
            _ => Step::Start,
        }
    }

    /// A start is under way.
    pub fn on_start_requested(&mut self) {
        self.current = Current::Starting;
        self.retry_at = None;
        if self
            .waiting
            .as_ref()
            .is_none_or(|w| w.reason == "CrashLoopBackOff")
        {
            self.waiting = Some(Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            });
        }
    }

    /// An instance started.
    pub fn on_started(
        &mut self,
        id: String,
        started_at: DateTime<Utc>,
        has_readiness: bool,
        has_startup: bool,
    ) {
        if self.ever_started {
            self.restart_count += 1;
        }
        self.ever_started = true;
        self.current = Current::Running { id, started_at };
        self.waiting = None;
        self.image_backoff.reset();
        self.ready = !has_readiness && !has_startup;
        self.started = !has_startup;
    }

    /// Adopts an instance found running in the runtime (kubelet restart).
    pub fn adopt_running(
        &mut self,
        id: String,
        started_at: DateTime<Utc>,
        restart_count: u32,
        has_readiness: bool,
        has_startup: bool,
    ) {
        self.ever_started = true;
        self.restart_count = restart_count;
        self.current = Current::Running { id, started_at };
        self.waiting = None;
        self.ready = !has_readiness && !has_startup;
        self.started = !has_startup;
    }

    /// Takes a new spec from an updated pod. Only an image change matters
    /// (the rest of a container's spec is immutable); returns whether it changed.
    pub fn update_spec(&mut self, spec: Container) -> bool {
        if spec.image == self.spec.image {
            return false;
        }
        self.spec = spec;
        true
    }

    /// A stop (liveness kill, changed definition) is under way; the exit follows.
    pub fn on_stop_requested(&mut self) {
        self.stopping = true;
    }

    /// A start finished after the pod began terminating: the instance is
    /// removed at once and never counted.
    pub fn on_start_abandoned(&mut self) {
        self.current = Current::Idle;
    }

    /// The readiness probe's verdict (ready only once started).
    pub fn on_readiness(&mut self, ok: bool) {
        self.ready = ok && self.started;
    }

    /// The startup probe succeeded: the container counts as started and, without
    /// a readiness probe, as ready.
    pub fn on_startup_succeeded(&mut self, has_readiness: bool) {
        self.started = true;
        self.ready = !has_readiness;
    }

    /// Adopts what a previous kubelet left of this container when its newest
    /// instance cannot be used (never started): it is removed, and the next
    /// instance continues the count.
    pub fn adopt_unusable(&mut self, restart_count: u32) {
        self.ever_started = restart_count > 0;
        self.restart_count = restart_count.saturating_sub(1);
    }

    /// The running instance ended. Applies the restart policy and back-off;
    /// `pod` names the pod in the CrashLoopBackOff message (`name_ns(uid)`).
    pub fn on_exited(
        &mut self,
        termination: Termination,
        policy: RestartPolicy,
        config: &BackoffConfig,
        now: Instant,
        pod: &str,
    ) {
        let ran_cleanly_for = termination
            .started_at
            .map(|s| (termination.finished_at - s).to_std().unwrap_or_default())
            .unwrap_or_default();
        let exit_code = termination.exit_code;
        self.previous = self.last.take();
        self.last = Some(termination);
        self.current = Current::Idle;
        self.stopping = false;
        self.ready = false;
        self.started = false;
        if !policy.restarts(exit_code) {
            self.done = true;
            self.waiting = None;
            self.retry_at = None;
            return;
        }
        if ran_cleanly_for >= config.reset_after {
            self.crash_backoff.reset();
        }
        let delay = self.crash_backoff.next_delay(config);
        self.retry_at = Some(now + delay);
        self.waiting = if delay.is_zero() {
            None
        } else {
            Some(Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {} restarting failed container={} pod={pod}",
                    go_duration(delay),
                    self.name()
                )),
            })
        };
    }

    /// A start failed before anything ran.
    pub fn on_start_failed(
        &mut self,
        failure: StartFailure,
        policy: RestartPolicy,
        config: &BackoffConfig,
        now: Instant,
        pod: &str,
    ) {
        self.current = Current::Idle;
        let (reason, message, backoff) = match failure {
            StartFailure::ImagePull(m) => {
                let reason = if self.image_backoff.failures() == 0 {
                    "ErrImagePull"
                } else {
                    "ImagePullBackOff"
                };
                (reason, m, &mut self.image_backoff)
            }
            StartFailure::ImageNeverPull(m) => ("ErrImageNeverPull", m, &mut self.image_backoff),
            StartFailure::Create(m) => ("CreateContainerError", m, &mut self.crash_backoff),
            StartFailure::Config(m) => ("CreateContainerConfigError", m, &mut self.crash_backoff),
            StartFailure::Run(message) => {
                let termination = Termination {
                    container_id: String::new(),
                    exit_code: 128,
                    reason: "StartError".into(),
                    message: Some(message),
                    started_at: None,
                    finished_at: Utc::now(),
                };
                // A process that cannot start counts as a crash.
                self.ever_started = true;
                self.on_exited(termination, policy, config, now, pod);
                return;
            }
        };
        let mut delay = backoff.next_delay(config);
        if delay.is_zero() {
            // Even the first retry of a failed pull or create waits a little,
            // so a hopeless spec does not spin.
            delay = backoff.next_delay(config);
        }
        self.retry_at = Some(now + delay);
        self.waiting = Some(Waiting {
            reason: reason.into(),
            message: Some(message),
        });
    }

    /// The kubernetes `ContainerStatus` of this container.
    pub fn status(&self, image_id: &str) -> ContainerStatus {
        let terminated = |t: &Termination| ContainerState {
            terminated: Some(ContainerStateTerminated {
                container_id: (!t.container_id.is_empty())
                    .then(|| format!("containerd://{}", t.container_id)),
                exit_code: t.exit_code,
                reason: Some(t.reason.clone()),
                message: t.message.clone(),
                started_at: t.started_at.map(k8s_time),
                finished_at: Some(k8s_time(t.finished_at)),
                signal: None,
            }),
            ..ContainerState::default()
        };
        let waiting = |w: &Waiting| ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some(w.reason.clone()),
                message: w.message.clone(),
            }),
            ..ContainerState::default()
        };
        let creating = Waiting {
            reason: "ContainerCreating".into(),
            message: None,
        };
        let (state, last_state, container_id) = match &self.current {
            Current::Running { id, started_at } => (
                ContainerState {
                    running: Some(ContainerStateRunning {
                        started_at: Some(k8s_time(*started_at)),
                    }),
                    ..ContainerState::default()
                },
                self.last.as_ref().map(terminated),
                Some(id.clone()),
            ),
            Current::Starting => (
                waiting(self.waiting.as_ref().unwrap_or(&creating)),
                self.last.as_ref().map(terminated),
                None,
            ),
            Current::Idle => match (&self.last, &self.waiting) {
                (Some(last), None) if self.done || self.retry_at.is_some() => (
                    terminated(last),
                    self.previous.as_ref().map(terminated),
                    Some(last.container_id.clone()),
                ),
                (last, Some(w)) => (
                    waiting(w),
                    last.as_ref().map(terminated),
                    last.as_ref().map(|l| l.container_id.clone()),
                ),
                (last, None) => (waiting(&creating), last.as_ref().map(terminated), None),
            },
        };
        let running = matches!(self.current, Current::Running { .. });
        ContainerStatus {
            name: self.spec.name.clone(),
            image: self.spec.image.clone().unwrap_or_default(),
            image_id: image_id.to_string(),
            container_id: container_id
                .filter(|id| !id.is_empty())
                .map(|id| format!("containerd://{id}")),
            ready: running && self.ready,
            started: Some(running && self.started),
            restart_count: self.restart_count as i32,
            state: Some(state),
            last_state: Some(last_state.unwrap_or_default()),
            ..ContainerStatus::default()
        }
    }
}

/// A duration the way Go prints it (`10s`, `1m20s`, `5m0s`), as in upstream messages.
pub fn go_duration(d: std::time::Duration) -> String {
    let total_ms = d.as_millis();
    if total_ms < 1000 {
        return if total_ms == 0 {
            "0s".into()
        } else {
            format!("{total_ms}ms")
        };
    }
    let secs = d.as_secs();
    let frac = d.subsec_millis();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let s_text = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => s_text,
        (0, m) => format!("{m}m{s_text}"),
        (h, m) => format!("{h}h{m}m{s_text}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const POD: &str = "p_default(uid)";

    fn slot() -> Slot {
        Slot::new(Container {
            name: "app".into(),
            image: Some("busybox".into()),
            ..Container::default()
        })
    }

    fn exit(code: i32, ran: Duration) -> Termination {
        let finished = Utc::now();
        Termination {
            container_id: "c1".into(),
            exit_code: code,
            reason: Termination::reason_for(code).into(),
            message: None,
            started_at: Some(finished - chrono::Duration::from_std(ran).expect("fits")),
            finished_at: finished,
        }
    }

    fn run_once(s: &mut Slot, now: Instant) {
        assert_eq!(s.next_step(false, now), Step::Start);
        s.on_start_requested();
        s.on_started("c1".into(), Utc::now(), false, false);
    }

    #[test]
    fn restart_policy_matrix_matches_upstream() {
        let config = BackoffConfig::default();
        // (policy, exit code) -> (restarts?, final state reason)
        for (policy, code, restarts) in [
            (RestartPolicy::Always, 0, true),
            (RestartPolicy::Always, 1, true),
            (RestartPolicy::OnFailure, 0, false),
            (RestartPolicy::OnFailure, 1, true),
            (RestartPolicy::Never, 0, false),
            (RestartPolicy::Never, 1, false),
        ] {
            let now = Instant::now();
            let mut s = slot();
            run_once(&mut s, now);
            s.on_exited(
                exit(code, Duration::from_secs(1)),
                policy,
                &config,
                now,
                POD,
            );
            let status = s.status("");
            if restarts {
                assert_eq!(
                    s.next_step(false, now),
                    Step::Start,
                    "{policy:?}/{code}: first restart is immediate"
                );
                s.on_start_requested();
                s.on_started("c2".into(), Utc::now(), false, false);
                assert_eq!(s.restart_count, 1);
                let last = s
                    .status("")
                    .last_state
                    .and_then(|l| l.terminated)
                    .expect("lastState");
                assert_eq!(last.exit_code, code);
            } else {
                assert_eq!(s.next_step(false, now), Step::Idle, "{policy:?}/{code}");
                let t = status
                    .state
                    .and_then(|st| st.terminated)
                    .expect("terminated state");
                assert_eq!(
                    t.reason.as_deref(),
                    Some(if code == 0 { "Completed" } else { "Error" })
                );
                assert_eq!(status.restart_count, 0);
            }
        }
    }

    #[test]
    fn crash_loop_back_off_grows_and_is_reported_as_waiting() {
        let config = BackoffConfig::default();
        let now = Instant::now();
        let mut s = slot();
        run_once(&mut s, now);
        let mut delays = Vec::new();
        for _ in 0..4 {
            s.on_exited(
                exit(1, Duration::from_secs(1)),
                RestartPolicy::Always,
                &config,
                now,
                POD,
            );
            match s.next_step(false, now) {
                Step::Start => delays.push(0),
                Step::WaitUntil(at) => delays.push((at - now).as_secs()),
                Step::Idle => panic!("should restart"),
            }
            if delays.len() > 1 {
                let st = s.status("");
                let w = st.state.and_then(|x| x.waiting).expect("waiting");
                assert_eq!(w.reason.as_deref(), Some("CrashLoopBackOff"));
                assert!(
                    w.message
                        .as_deref()
                        .is_some_and(|m| m.starts_with("back-off ")),
                    "{w:?}"
                );
                assert!(st.last_state.and_then(|l| l.terminated).is_some());
            }
            s.on_start_requested();
            s.on_started("cx".into(), Utc::now(), false, false);
        }
        assert_eq!(delays, [0, 10, 20, 40]);
        assert_eq!(s.restart_count, 4);
    }

    #[test]
    fn ten_minutes_of_clean_running_resets_the_back_off() {
        let config = BackoffConfig::default();
        let now = Instant::now();
        let mut s = slot();
        run_once(&mut s, now);
        for _ in 0..3 {
            s.on_exited(
                exit(1, Duration::from_secs(1)),
                RestartPolicy::Always,
                &config,
                now,
                POD,
            );
            s.on_start_requested();
            s.on_started("c".into(), Utc::now(), false, false);
        }
        s.on_exited(
            exit(1, Duration::from_secs(601)),
            RestartPolicy::Always,
            &config,
            now,
            POD,
        );
        assert_eq!(s.next_step(false, now), Step::Start);
    }

    #[test]
    fn image_errors_wait_and_turn_into_back_off() {
        let config = BackoffConfig::default();
        let now = Instant::now();
        let mut s = slot();
        s.on_start_requested();
        s.on_start_failed(
            StartFailure::ImagePull("not found".into()),
            RestartPolicy::Always,
            &config,
            now,
            POD,
        );
        assert_eq!(
            s.waiting.as_ref().map(|w| w.reason.as_str()),
            Some("ErrImagePull")
        );
        assert!(matches!(s.next_step(false, now), Step::WaitUntil(_)));
        s.on_start_requested();
        s.on_start_failed(
            StartFailure::ImagePull("not found".into()),
            RestartPolicy::Always,
            &config,
            now,
            POD,
        );
        assert_eq!(
            s.waiting.as_ref().map(|w| w.reason.as_str()),
            Some("ImagePullBackOff")
        );
        let mut fresh = slot();
        fresh.on_start_requested();
        fresh.on_start_failed(
            StartFailure::ImageNeverPull("x".into()),
            RestartPolicy::Always,
            &config,
            now,
            POD,
        );
        let st = fresh.status("");
        assert_eq!(
            st.state
                .and_then(|x| x.waiting)
                .and_then(|w| w.reason)
                .as_deref(),
            Some("ErrImageNeverPull")
        );
    }

    #[test]
    fn a_process_that_cannot_start_counts_as_a_crash() {
        let config = BackoffConfig::default();
        let now = Instant::now();
        let mut s = slot();
        s.on_start_requested();
        s.on_start_failed(
            StartFailure::Run("exec: not found".into()),
            RestartPolicy::Always,
            &config,
            now,
            POD,
        );
        assert_eq!(
            s.last.as_ref().map(|t| t.reason.as_str()),
            Some("StartError")
        );
        assert_eq!(s.next_step(false, now), Step::Start);
    }

    #[test]
    fn terminating_pods_start_nothing() {
        assert_eq!(slot().next_step(true, Instant::now()), Step::Idle);
    }

    #[test]
    fn durations_print_like_go() {
        for (ms, text) in [
            (0, "0s"),
            (10_000, "10s"),
            (80_000, "1m20s"),
            (300_000, "5m0s"),
            (1_500, "1.5s"),
            (250, "250ms"),
        ] {
            assert_eq!(go_duration(Duration::from_millis(ms)), text);
        }
    }
}
