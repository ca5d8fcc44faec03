//! An in-memory [`ContainerRuntime`] that records calls and injects failures.
//!
//! Containers never run anything: they move between states when the test
//! says so ([`FakeRuntime::exit`]) or by scripted behaviour
//! ([`FakeRuntime::script_exit_on_start`], [`FakeRuntime::ignore_sigterm`]).
//! Waiting uses tokio time, so tests with paused time are deterministic.
//! Where it answers differently from containerd, containerd is right: the
//! [`conformance`](super::conformance) suite runs against both.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use skiff_images::ImageName;
use tokio::sync::watch;

use super::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, ExecOutput, ExitStatus,
    LabelFilter, Result, RuntimeError, valid_container_id,
};
use crate::logs::cri::{self, Stream};

/// The runtime operations, for failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `import_image`
    ImportImage,
    /// `image_present`
    ImagePresent,
    /// `create_container`
    Create,
    /// `start_container`
    Start,
    /// `wait_container`
    Wait,
    /// `stop_container`
    Stop,
    /// `exec`
    Exec,
    /// `container_info`
    Info,
    /// `list_containers`
    List,
    /// `remove_container`
    Remove,
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `import_image(path)`
    ImportImage(PathBuf),
    /// `image_present(name)`
    ImagePresent(String),
    /// `create_container(config.id)`
    Create(String),
    /// `start_container(id)`
    Start(String),
    /// `wait_container(id)`
    Wait(String),
    /// `stop_container(id, grace)`
    Stop(String, Duration),
    /// `exec(id, command)`
    Exec(String, Vec<String>),
    /// `container_info(id)`
    Info(String),
    /// `list_containers(filter)`
    List(LabelFilter),
    /// `remove_container(id)`
    Remove(String),
}

struct FakeContainer {
    config: ContainerConfig,
    created_at: chrono::DateTime<Utc>,
    state: watch::Sender<ContainerState>,
}

#[derive(Default)]
struct Inner {
    images: BTreeSet<ImageName>,
    /// Images' USER (empty, i.e. root, when not set).
    image_users: HashMap<ImageName, String>,
    archives: HashMap<PathBuf, Vec<ImageName>>,
    containers: BTreeMap<String, FakeContainer>,
    calls: Vec<Call>,
    failures: HashMap<Op, VecDeque<String>>,
    exit_on_start: HashMap<String, i32>,
    output_on_start: HashMap<String, Vec<(Stream, String)>>,
    ignores_sigterm: BTreeSet<String>,
    exec_results: HashMap<String, ExecOutput>,
    next_pid: u32,
}

/// See the module documentation.
#[derive(Default)]
pub struct FakeRuntime {
    inner: Mutex<Inner>,
}

impl FakeRuntime {
    /// An empty runtime.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking test thread must not hide the state from the others.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes `image` present, as if imported.
    pub fn add_image(&self, image: ImageName) {
        self.lock().images.insert(image);
    }

    /// Sets the USER of `image`'s configuration (`runAsNonRoot` checks it).
    pub fn set_image_user(&self, image: ImageName, user: impl Into<String>) {
        self.lock().image_users.insert(image, user.into());
    }

    /// Declares what importing `archive` yields.
    pub fn add_archive(&self, archive: impl Into<PathBuf>, images: Vec<ImageName>) {
        self.lock().archives.insert(archive.into(), images);
    }

    /// The next call of `op` fails with `message` (queued, one per call).
    pub fn fail_next(&self, op: Op, message: impl Into<String>) {
        self.lock()
            .failures
            .entry(op)
            .or_default()
            .push_back(message.into());
    }

    /// Containers named `container_name` exit with `code` as soon as they start.
    pub fn script_exit_on_start(&self, container_name: impl Into<String>, code: i32) {
        self.lock()
            .exit_on_start
            .insert(container_name.into(), code);
    }

    /// Containers named `container_name` write `lines` to their log as soon as
    /// they start (before a scripted exit).
    pub fn script_output(&self, container_name: impl Into<String>, lines: Vec<(Stream, String)>) {
        self.lock()
            .output_on_start
            .insert(container_name.into(), lines);
    }

    /// Containers named `container_name` ignore SIGTERM (they are killed after the grace period).
    pub fn ignore_sigterm(&self, container_name: impl Into<String>) {
        self.lock().ignores_sigterm.insert(container_name.into());
    }

    /// `exec` of a command whose first word is `program` returns `output`.
    pub fn script_exec(&self, program: impl Into<String>, output: ExecOutput) {
        self.lock().exec_results.insert(program.into(), output);
    }

    /// Makes a running container exit with `code`.
    pub fn exit(&self, id: &str, code: i32) -> Result<()> {
        let inner = self.lock();
        let c = inner
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.into() })?;
        c.state.send_replace(ContainerState::Exited(ExitStatus {
            code,
            finished_at: Utc::now(),
        }));
        Ok(())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Forgets the recorded calls.
    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    /// Ids of the containers that exist now.
    pub fn container_ids(&self) -> Vec<String> {
        self.lock().containers.keys().cloned().collect()
    }

    /// The configuration a container was created with.
    pub fn config_of(&self, id: &str) -> Option<ContainerConfig> {
        self.lock().containers.get(id).map(|c| c.config.clone())
    }

    fn record(&self, op: Op, call: Call) -> Result<()> {
        let mut inner = self.lock();
        inner.calls.push(call);
        match inner.failures.get_mut(&op).and_then(VecDeque::pop_front) {
            Some(message) => Err(RuntimeError::Injected(message)),
            None => Ok(()),
        }
    }

    fn state_rx(&self, id: &str) -> Result<watch::Receiver<ContainerState>> {
        self.lock()
            .containers
            .get(id)
            .map(|c| c.state.subscribe())
            .ok_or_else(|| RuntimeError::NotFound { id: id.into() })
    }

    /// Appends a started container's scripted output to its log, in CRI
    /// format, as containerd's logger would.
    fn write_output(log_path: &Path, lines: &[(Stream, String)]) -> Result<()> {
        let mut records = Vec::new();
        for (stream, line) in lines {
            cri::encode_line(Utc::now(), *stream, line.as_bytes(), &mut records);
        }
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| RuntimeError::io("cannot create log directory", dir, e))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)
            .map_err(|e| RuntimeError::io("cannot open log", log_path, e))?;
        std::io::Write::write_all(&mut file, &records)
            .map_err(|e| RuntimeError::io("cannot write log", log_path, e))
    }

    fn info(id: &str, c: &FakeContainer) -> ContainerInfo {
        ContainerInfo {
            id: id.to_string(),
            image: c.config.image.to_string(),
            labels: c.config.labels(),
            state: *c.state.borrow(),
            created_at: Some(c.created_at),
        }
    }
}

async fn wait_exit(mut rx: watch::Receiver<ContainerState>, id: &str) -> Result<ExitStatus> {
    loop {
        if let ContainerState::Exited(status) = *rx.borrow_and_update() {
            return Ok(status);
        }
        if rx.changed().await.is_err() {
            return Err(RuntimeError::NotFound { id: id.into() });
        }
    }
}

#[async_trait]
impl ContainerRuntime for FakeRuntime {
    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageName>> {
        self.record(Op::ImportImage, Call::ImportImage(archive.to_path_buf()))?;
        let mut inner = self.lock();
        let images =
            inner
                .archives
                .get(archive)
                .cloned()
                .ok_or_else(|| RuntimeError::InvalidArchive {
                    path: archive.to_path_buf(),
                    reason: "unknown to the fake runtime".into(),
                })?;
        inner.images.extend(images.iter().cloned());
        Ok(images)
    }

    async fn image_present(&self, image: &ImageName) -> Result<bool> {
        self.record(Op::ImagePresent, Call::ImagePresent(image.to_string()))?;
        Ok(self.lock().images.contains(image))
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<()> {
        self.record(Op::Create, Call::Create(config.id.clone()))?;
        if !valid_container_id(&config.id) {
            return Err(RuntimeError::InvalidConfig {
                container: config.id.clone(),
                reason: "ids are 1-76 characters of [A-Za-z0-9_.-]".into(),
            });
        }
        let mut inner = self.lock();
        if !inner.images.contains(&config.image) {
            return Err(RuntimeError::ImageNotPresent {
                image: config.image.to_string(),
            });
        }
        if config.security.run_as_non_root {
            let image_user = inner
                .image_users
                .get(&config.image)
                .cloned()
                .unwrap_or_default();
            super::process::verify_non_root(config.user.map(|(uid, _)| uid), &image_user).map_err(
                |violation| RuntimeError::NonRoot {
                    container: config.id.clone(),
                    violation,
                },
            )?;
        }
        if inner.containers.contains_key(&config.id) {
            return Err(RuntimeError::AlreadyExists {
                id: config.id.clone(),
            });
        }
        let (state, _) = watch::channel(ContainerState::Created);
        inner.containers.insert(
            config.id.clone(),
            FakeContainer {
                config: config.clone(),
                created_at: Utc::now(),
                state,
            },
        );
        Ok(())
    }

    async fn start_container(&self, id: &str) -> Result<u32> {
        self.record(Op::Start, Call::Start(id.into()))?;
        let mut inner = self.lock();
        inner.next_pid += 1;
        let pid = 1000 + inner.next_pid;
        let (exit_code, output, log_path) = {
            let c = inner
                .containers
                .get(id)
                .ok_or_else(|| RuntimeError::NotFound { id: id.into() })?;
            (
                inner.exit_on_start.get(&c.config.name).copied(),
                inner.output_on_start.get(&c.config.name).cloned(),
                c.config.log_path.clone(),
            )
        };
        let c = inner
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.into() })?;
        if *c.state.borrow() != ContainerState::Created {
            return Err(RuntimeError::InvalidConfig {
                container: id.into(),
                reason: "already started".into(),
            });
        }
        if let Some(lines) = output {
            Self::write_output(&log_path, &lines)?;
        }
        c.state.send_replace(match exit_code {
            Some(code) => ContainerState::Exited(ExitStatus {
                code,
                finished_at: Utc::now(),
            }),
            None => ContainerState::Running { pid },
        });
        Ok(pid)
    }

    async fn wait_container(&self, id: &str) -> Result<ExitStatus> {
        self.record(Op::Wait, Call::Wait(id.into()))?;
        let rx = self.state_rx(id)?;
        // Like containerd: there is nothing to wait for before a start.
        if *rx.borrow() == ContainerState::Created {
            return Err(RuntimeError::NotFound { id: id.into() });
        }
        wait_exit(rx, id).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<ExitStatus> {
        self.record(Op::Stop, Call::Stop(id.into(), grace))?;
        // Like containerd: only a started container can be stopped.
        let not_running = || RuntimeError::NotRunning { id: id.into() };
        let (rx, ignores) = {
            let inner = self.lock();
            let c = inner.containers.get(id).ok_or_else(not_running)?;
            (
                c.state.subscribe(),
                inner.ignores_sigterm.contains(&c.config.name),
            )
        };
        if *rx.borrow() == ContainerState::Created {
            return Err(not_running());
        }
        if let ContainerState::Exited(status) = *rx.borrow() {
            return Ok(status);
        }
        let code = if ignores {
            tokio::time::sleep(grace).await;
            137
        } else {
            143
        };
        if let ContainerState::Exited(status) = *rx.borrow() {
            return Ok(status);
        }
        self.exit(id, code)?;
        wait_exit(rx, id).await
    }

    async fn exec(&self, id: &str, command: &[String], _timeout: Duration) -> Result<ExecOutput> {
        self.record(Op::Exec, Call::Exec(id.into(), command.to_vec()))?;
        if command.is_empty() {
            return Err(RuntimeError::InvalidConfig {
                container: id.into(),
                reason: "exec needs a command".into(),
            });
        }
        let inner = self.lock();
        let c = inner
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.into() })?;
        if !matches!(*c.state.borrow(), ContainerState::Running { .. }) {
            return Err(RuntimeError::NotRunning { id: id.into() });
        }
        let program = command.first().cloned().unwrap_or_default();
        Ok(inner
            .exec_results
            .get(&program)
            .cloned()
            .unwrap_or(ExecOutput {
                exit_code: 0,
                stdout: Vec::new(),
                stderr: Vec::new(),
            }))
    }

    async fn container_info(&self, id: &str) -> Result<ContainerInfo> {
        self.record(Op::Info, Call::Info(id.into()))?;
        let inner = self.lock();
        let c = inner
            .containers
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound { id: id.into() })?;
        Ok(Self::info(id, c))
    }

    async fn list_containers(&self, filter: &LabelFilter) -> Result<Vec<ContainerInfo>> {
        self.record(Op::List, Call::List(filter.clone()))?;
        let inner = self.lock();
        Ok(inner
            .containers
            .iter()
            .map(|(id, c)| Self::info(id, c))
            .filter(|info| filter.iter().all(|(k, v)| info.labels.get(k) == Some(v)))
            .collect())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.record(Op::Remove, Call::Remove(id.into()))?;
        self.lock().containers.remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::conformance::{self, Behaviour, Fixture};
    use crate::runtime::labels;

    fn busybox() -> ImageName {
        ImageName::parse("busybox").expect("valid")
    }

    fn config(id: &str, name: &str) -> ContainerConfig {
        let mut c = ContainerConfig::new(id, busybox(), format!("/logs/{id}.log"));
        c.name = name.into();
        c.pod.uid = "pod-1".into();
        c
    }

    #[tokio::test]
    async fn create_needs_the_image() {
        let rt = FakeRuntime::new();
        let err = rt
            .create_container(&config("a", "main"))
            .await
            .expect_err("no image");
        assert!(matches!(err, RuntimeError::ImageNotPresent { .. }));
        rt.add_image(busybox());
        rt.create_container(&config("a", "main"))
            .await
            .expect("created");
        assert!(matches!(
            rt.create_container(&config("a", "main")).await,
            Err(RuntimeError::AlreadyExists { .. })
        ));
    }

    #[tokio::test]
    async fn scripted_exit_is_seen_by_wait() {
        let rt = FakeRuntime::new();
        rt.add_image(busybox());
        rt.script_exit_on_start("crasher", 3);
        rt.create_container(&config("a", "crasher"))
            .await
            .expect("created");
        rt.start_container("a").await.expect("started");
        assert_eq!(rt.wait_container("a").await.expect("exited").code, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn sigterm_ignorers_are_killed_after_the_grace_period() {
        let rt = FakeRuntime::new();
        rt.add_image(busybox());
        rt.ignore_sigterm("stubborn");
        rt.create_container(&config("a", "stubborn"))
            .await
            .expect("created");
        rt.create_container(&config("b", "polite"))
            .await
            .expect("created");
        rt.start_container("a").await.expect("started");
        rt.start_container("b").await.expect("started");
        let before = tokio::time::Instant::now();
        let a = rt
            .stop_container("a", Duration::from_secs(30))
            .await
            .expect("stopped");
        assert_eq!(a.code, 137);
        assert!(before.elapsed() >= Duration::from_secs(30));
        let b = rt
            .stop_container("b", Duration::from_secs(30))
            .await
            .expect("stopped");
        assert_eq!(b.code, 143);
    }

    #[tokio::test]
    async fn injected_failures_are_consumed_once_and_calls_recorded() {
        let rt = FakeRuntime::new();
        rt.add_image(busybox());
        rt.fail_next(Op::Create, "disk full");
        let err = rt
            .create_container(&config("a", "main"))
            .await
            .expect_err("injected");
        assert_eq!(err.to_string(), "injected failure: disk full");
        rt.create_container(&config("a", "main"))
            .await
            .expect("second try works");
        assert_eq!(
            rt.calls(),
            [Call::Create("a".into()), Call::Create("a".into())]
        );
    }

    #[tokio::test]
    async fn list_filters_by_labels() {
        let rt = FakeRuntime::new();
        rt.add_image(busybox());
        rt.create_container(&config("a", "one"))
            .await
            .expect("created");
        let mut other = config("b", "two");
        other.pod.uid = "pod-2".into();
        rt.create_container(&other).await.expect("created");
        let filter = LabelFilter::from([(labels::POD_UID.to_string(), "pod-2".to_string())]);
        let found = rt.list_containers(&filter).await.expect("listed");
        assert_eq!(
            found.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["b"]
        );
        rt.remove_container("b").await.expect("removed");
        assert!(
            rt.list_containers(&filter)
                .await
                .expect("listed")
                .is_empty()
        );
    }

    /// Scripts the fake so its containers behave as the conformance suite asks.
    struct Scripted<'a> {
        rt: &'a FakeRuntime,
        logs: tempfile::TempDir,
    }

    impl Fixture for Scripted<'_> {
        fn config(&self, id: &str, pod_uid: &str, behaviour: Behaviour) -> ContainerConfig {
            let mut c =
                ContainerConfig::new(id, busybox(), self.logs.path().join(format!("{id}.log")));
            c.name = id.into();
            c.pod.uid = pod_uid.into();
            c.pod.namespace = "default".into();
            c.pod.name = format!("pod-{id}");
            match behaviour {
                Behaviour::Exit {
                    stdout,
                    stderr,
                    code,
                } => {
                    let lines = vec![
                        (Stream::Stdout, stdout.into()),
                        (Stream::Stderr, stderr.into()),
                    ];
                    self.rt.script_output(id, lines);
                    self.rt.script_exit_on_start(id, code);
                }
                Behaviour::UntilTerm => self
                    .rt
                    .script_output(id, vec![(Stream::Stdout, "ready".into())]),
                Behaviour::IgnoresTerm => self.rt.ignore_sigterm(id),
            }
            c
        }
    }

    #[tokio::test]
    async fn the_fake_passes_the_runtime_conformance_suite() {
        let rt = FakeRuntime::new();
        rt.add_image(busybox());
        let fixture = Scripted {
            rt: &rt,
            logs: tempfile::tempdir().expect("tempdir"),
        };
        conformance::run_all(&rt, &fixture).await;
    }
}
