//! [`ContainerRuntime`] on a real containerd (1.6+), over its gRPC socket.
//!
//! One container = a writable snapshot on top of the image's layer chain, a
//! container record holding the OCI spec, and (once started) a task run by
//! the runc v2 shim. stdout/stderr go to `skiff-cri-logger` through
//! containerd's `binary://` stdio scheme, so logging belongs to the shim and
//! survives kubelet restarts.

mod client;
pub mod daemon;
mod exec;
mod image;
mod import;
mod runc;
mod seccomp;
mod security;
mod spec;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use containerd_client::services::v1::container::Runtime;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateRequest as CreateLeaseRequest, CreateTaskRequest,
    DeleteContainerRequest, DeleteRequest as DeleteLeaseRequest, DeleteTaskRequest,
    GetContainerRequest, GetRequest, KillRequest, ListContainersRequest, ListTasksRequest,
    StartRequest, WaitRequest,
};
use containerd_client::types::v1::Status as TaskStatus;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use prost_types::Any;
use skiff_images::ImageName;
use tracing::{debug, instrument};

use self::client::{Services, ignore_not_found};
use self::runc::{RUNTIME_NAME, RuncOptions};
use super::{
    ContainerConfig, ContainerInfo, ContainerRuntime, ContainerState, ExecOptions, ExecOutput,
    ExecSession, ExitStatus, LabelFilter, Result, RuntimeError, labels, valid_container_id,
};

pub use self::daemon::{DaemonError, ManagedContainerd};

/// SIGTERM, sent first when stopping.
const SIGTERM: u32 = 15;
/// SIGKILL, sent after the grace period.
const SIGKILL: u32 = 9;
/// How long to wait for a task to die after SIGKILL.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// How to reach containerd and where Skiff keeps its side of things.
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    /// containerd's gRPC socket.
    pub socket: PathBuf,
    /// containerd namespace holding Skiff's images and containers.
    pub namespace: String,
    /// Snapshotter images are unpacked for and containers run on.
    pub snapshotter: String,
    /// Private runc state directory (see [`RuncOptions::root`]); the shim's
    /// default when `None`.
    pub runc_root: Option<PathBuf>,
    /// The `skiff-cri-logger` binary the shim runs for container output.
    pub logger: PathBuf,
    /// Where FIFOs for `exec` output are created.
    pub exec_dir: PathBuf,
}

impl ContainerdConfig {
    /// A configuration with the usual defaults (`overlayfs`, exec FIFOs
    /// under `state_dir/exec`).
    pub fn new(
        socket: impl Into<PathBuf>,
        namespace: impl Into<String>,
        logger: impl Into<PathBuf>,
        state_dir: &Path,
    ) -> Self {
        Self {
            socket: socket.into(),
            namespace: namespace.into(),
            snapshotter: "overlayfs".into(),
            runc_root: None,
            logger: logger.into(),
            exec_dir: state_dir.join("exec"),
        }
    }
}

/// The logger binary installed next to the running executable, if any.
pub fn logger_next_to_current_exe() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    // Test binaries live in `target/<profile>/deps`; the logger one level up.
    [
        dir.join("skiff-cri-logger"),
        dir.parent()?.join("skiff-cri-logger"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// See the module documentation.
pub struct ContainerdRuntime {
    config: ContainerdConfig,
    svc: Services,
    /// Guards the `/<namespace>` cgroup parent that runc creates on a
    /// task's first start: held exclusively while it is missing (two runcs
    /// making it at once: the second one's mkdir says it exists before the
    /// kernel shows its files, and its write of the parent's `cpuset.cpus`
    /// failed the start with "openat2 …/cpuset.cpus: no such file or
    /// directory", seen on a node's first two-container pod) and while it
    /// is pruned; shared by task creations once it exists.
    cgroup_parent: tokio::sync::RwLock<()>,
}

fn timestamp(ts: Option<prost_types::Timestamp>) -> DateTime<Utc> {
    ts.and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .unwrap_or_else(Utc::now)
}

/// containerd filter value, quoted.
fn quote(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

impl ContainerdRuntime {
    /// Connects to containerd. Fails if the socket does not answer.
    pub async fn connect(config: ContainerdConfig) -> Result<Self> {
        let channel = containerd_client::connect(&config.socket)
            .await
            .map_err(|source| RuntimeError::Connect {
                socket: config.socket.clone(),
                source,
            })?;
        let svc = Services::new(channel, &config.namespace)?;
        Ok(Self {
            config,
            svc,
            cgroup_parent: tokio::sync::RwLock::new(()),
        })
    }

    /// The configuration this runtime was connected with.
    pub fn config(&self) -> &ContainerdConfig {
        &self.config
    }

    fn log_uri(&self, log_path: &Path) -> String {
        let encoded =
            utf8_percent_encode(&log_path.to_string_lossy(), NON_ALPHANUMERIC).to_string();
        format!("binary://{}?log={encoded}", self.config.logger.display())
    }

    async fn get_container(&self, id: &str) -> Result<Container> {
        self.svc
            .containers
            .clone()
            .get(self.svc.req(GetContainerRequest { id: id.to_string() }))
            .await
            .map_err(|s| RuntimeError::rpc("Containers.Get", id, s))?
            .into_inner()
            .container
            .ok_or_else(|| RuntimeError::NotFound { id: id.to_string() })
    }

    /// The task's process, or `None` if the container has no task.
    async fn task(&self, id: &str) -> Result<Option<containerd_client::types::v1::Process>> {
        match self
            .svc
            .tasks
            .clone()
            .get(self.svc.req(GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await
        {
            Ok(r) => Ok(r.into_inner().process),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(RuntimeError::rpc("Tasks.Get", "", s)),
        }
    }

    fn state_of(process: Option<&containerd_client::types::v1::Process>) -> ContainerState {
        match process {
            None => ContainerState::Created,
            Some(p) => match TaskStatus::try_from(p.status) {
                Ok(TaskStatus::Running) => ContainerState::Running { pid: p.pid },
                Ok(TaskStatus::Created) => ContainerState::Created,
                Ok(TaskStatus::Stopped) => ContainerState::Exited(ExitStatus {
                    code: p.exit_status as i32,
                    finished_at: timestamp(p.exited_at),
                }),
                _ => ContainerState::Unknown,
            },
        }
    }

    async fn kill(&self, id: &str, signal: u32, all: bool) -> Result<()> {
        match self
            .svc
            .tasks
            .clone()
            .kill(self.svc.req(KillRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
                signal,
                all,
            }))
            .await
        {
            Ok(_) => Ok(()),
            // "process already finished": nothing left to signal.
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(RuntimeError::rpc("Tasks.Kill", "", s)),
        }
    }

    /// Starts waiting for the task in the background. Waiting must begin
    /// before a signal is sent, so the exit cannot be missed.
    fn spawn_wait(&self, id: &str) -> tokio::task::JoinHandle<Result<ExitStatus>> {
        let svc = self.svc.clone();
        let id = id.to_string();
        tokio::spawn(async move { wait_task(&svc, &id).await })
    }
}

async fn wait_task(svc: &Services, id: &str) -> Result<ExitStatus> {
    let r = svc
        .tasks
        .clone()
        .wait(svc.req(WaitRequest {
            container_id: id.to_string(),
            exec_id: String::new(),
        }))
        .await
        .map_err(|s| RuntimeError::rpc("Tasks.Wait", id, s))?
        .into_inner();
    Ok(ExitStatus {
        code: r.exit_status as i32,
        finished_at: timestamp(r.exited_at),
    })
}

async fn join_wait(handle: tokio::task::JoinHandle<Result<ExitStatus>>) -> Result<ExitStatus> {
    handle.await.map_err(|e| RuntimeError::Rpc {
        operation: "Tasks.Wait",
        status: Box::new(tonic::Status::internal(format!("wait task failed: {e}"))),
    })?
}

#[async_trait]
impl ContainerRuntime for ContainerdRuntime {
    async fn version(&self) -> Result<String> {
        let answer = self
            .svc
            .version
            .clone()
            .version(())
            .await
            .map_err(|s| RuntimeError::rpc("Version.Version", "", s))?
            .into_inner();
        Ok(format!(
            "containerd://{}",
            answer.version.trim_start_matches('v')
        ))
    }

    #[instrument(skip(self), fields(archive = %archive.display()))]
    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageName>> {
        let names = import::import_archive(
            &self.svc,
            archive,
            &self.config.namespace,
            &self.config.snapshotter,
        )
        .await?;
        debug!(?names, "imported");
        Ok(names)
    }

    async fn image_present(&self, image: &ImageName) -> Result<bool> {
        match image::resolve(&self.svc, image, &self.config.snapshotter).await {
            Ok(_) => Ok(true),
            Err(RuntimeError::ImageNotPresent { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    #[instrument(skip(self, config), fields(container = %config.id, pod = %config.pod.uid, image = %config.image))]
    async fn create_container(&self, config: &ContainerConfig) -> Result<()> {
        let id = config.id.as_str();
        let invalid = |reason: String| RuntimeError::InvalidConfig {
            container: id.to_string(),
            reason,
        };
        if !valid_container_id(id) {
            return Err(invalid("ids are 1-76 characters of [A-Za-z0-9_.-]".into()));
        }
        let image = image::resolve(&self.svc, &config.image, &self.config.snapshotter).await?;
        let process = super::process::resolve(config, &image.defaults).map_err(|e| match e {
            super::process::ProcessError::NonRoot(violation) => RuntimeError::NonRoot {
                container: id.to_string(),
                violation,
            },
            e => invalid(e.to_string()),
        })?;
        let cgroups_path = format!("/{}/{id}", self.config.namespace);
        let host = security::HostFacts::probe(config.security.privileged);
        let spec = spec::build_spec(config, &process, &cgroups_path, &host)
            .map_err(|e| invalid(e.to_string()))?;
        let spec_json = serde_json::to_vec(&spec).map_err(|e| invalid(e.to_string()))?;

        let svc = &self.svc;
        // The lease keeps GC off the new snapshot until the container record
        // references it.
        let lease = format!("skiff-create-{id}");
        let expire = (Utc::now() + chrono::Duration::minutes(10)).to_rfc3339();
        svc.leases
            .clone()
            .create(svc.req(CreateLeaseRequest {
                id: lease.clone(),
                labels: HashMap::from([("containerd.io/gc.expire".to_string(), expire)]),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("Leases.Create", "", s))?;
        let result = async {
            svc.snapshots
                .clone()
                .prepare(svc.leased(
                    PrepareSnapshotRequest {
                        snapshotter: self.config.snapshotter.clone(),
                        key: id.to_string(),
                        parent: image.chain_id.clone(),
                        labels: HashMap::new(),
                    },
                    &lease,
                ))
                .await
                .map_err(|s| RuntimeError::rpc("Snapshots.Prepare", id, s))?;
            let runc_options = RuncOptions {
                root: self
                    .config
                    .runc_root
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                systemd_cgroup: false,
            };
            let container = Container {
                id: id.to_string(),
                labels: config.labels().into_iter().collect(),
                image: config.image.to_string(),
                runtime: Some(Runtime {
                    name: RUNTIME_NAME.to_string(),
                    options: Some(runc_options.to_any()),
                }),
                spec: Some(Any {
                    type_url: spec::SPEC_TYPE_URL.to_string(),
                    value: spec_json,
                }),
                snapshotter: self.config.snapshotter.clone(),
                snapshot_key: id.to_string(),
                ..Container::default()
            };
            let created = svc
                .containers
                .clone()
                .create(svc.leased(
                    CreateContainerRequest {
                        container: Some(container),
                    },
                    &lease,
                ))
                .await
                .map_err(|s| RuntimeError::rpc("Containers.Create", id, s));
            if created.is_err() {
                let _ = svc
                    .snapshots
                    .clone()
                    .remove(svc.req(RemoveSnapshotRequest {
                        snapshotter: self.config.snapshotter.clone(),
                        key: id.to_string(),
                    }))
                    .await;
            }
            created.map(|_| ())
        }
        .await;
        let _ = svc
            .leases
            .clone()
            .delete(svc.req(DeleteLeaseRequest {
                id: lease,
                sync: false,
            }))
            .await;
        debug!(manifest = %image.manifest_digest, ok = result.is_ok(), "container created");
        result
    }

    #[instrument(skip(self))]
    async fn start_container(&self, id: &str) -> Result<u32> {
        let container = self.get_container(id).await?;
        let log_path = container
            .labels
            .get(labels::LOG_PATH)
            .map(PathBuf::from)
            .ok_or_else(|| RuntimeError::InvalidConfig {
                container: id.to_string(),
                reason: "container has no log path label".into(),
            })?;
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| RuntimeError::io("cannot create log directory", dir, e))?;
        }
        let svc = &self.svc;
        let mounts = svc
            .snapshots
            .clone()
            .mounts(svc.req(MountsRequest {
                snapshotter: container.snapshotter.clone(),
                key: container.snapshot_key.clone(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("Snapshots.Mounts", id, s))?
            .into_inner()
            .mounts;
        let uri = self.log_uri(&log_path);
        let creating = if self.cgroup_parent_exists() {
            (Some(self.cgroup_parent.read().await), None)
        } else {
            (None, Some(self.cgroup_parent.write().await))
        };
        svc.tasks
            .clone()
            .create(svc.req(CreateTaskRequest {
                container_id: id.to_string(),
                rootfs: mounts,
                stdin: String::new(),
                stdout: uri.clone(),
                stderr: uri,
                terminal: false,
                ..CreateTaskRequest::default()
            }))
            .await
            .map_err(|s| RuntimeError::rpc("Tasks.Create", "", s))?;
        drop(creating);
        let started = svc
            .tasks
            .clone()
            .start(svc.req(StartRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            }))
            .await;
        match started {
            Ok(r) => Ok(r.into_inner().pid),
            Err(s) => {
                // Leave no half-created task behind: the container can be retried.
                let _ = svc
                    .tasks
                    .clone()
                    .delete(svc.req(DeleteTaskRequest {
                        container_id: id.to_string(),
                    }))
                    .await;
                Err(RuntimeError::rpc("Tasks.Start", "", s))
            }
        }
    }

    async fn wait_container(&self, id: &str) -> Result<ExitStatus> {
        wait_task(&self.svc, id).await
    }

    #[instrument(skip(self))]
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<ExitStatus> {
        let process = self
            .task(id)
            .await?
            .ok_or_else(|| RuntimeError::NotRunning { id: id.to_string() })?;
        if let ContainerState::Exited(status) = Self::state_of(Some(&process)) {
            return Ok(status);
        }
        let waiting = self.spawn_wait(id);
        self.kill(id, SIGTERM, false).await?;
        let mut waiting = waiting;
        match tokio::time::timeout(grace, &mut waiting).await {
            Ok(joined) => {
                return joined.map_err(|e| RuntimeError::Rpc {
                    operation: "Tasks.Wait",
                    status: Box::new(tonic::Status::internal(e.to_string())),
                })?;
            }
            Err(_) => debug!(
                grace_seconds = grace.as_secs_f64(),
                "grace period over, sending SIGKILL"
            ),
        }
        self.kill(id, SIGKILL, true).await?;
        match tokio::time::timeout(KILL_TIMEOUT, join_wait(waiting)).await {
            Ok(status) => status,
            Err(_) => Err(RuntimeError::Timeout {
                operation: "stop",
                id: id.to_string(),
                seconds: (grace + KILL_TIMEOUT).as_secs_f64(),
            }),
        }
    }

    async fn exec(&self, id: &str, command: &[String], timeout: Duration) -> Result<ExecOutput> {
        exec::run(self, id, command, timeout).await
    }

    async fn exec_session(&self, id: &str, options: ExecOptions) -> Result<ExecSession> {
        exec::start(self, id, options).await
    }

    async fn container_info(&self, id: &str) -> Result<ContainerInfo> {
        let container = self.get_container(id).await?;
        let process = self.task(id).await?;
        Ok(ContainerInfo {
            state: Self::state_of(process.as_ref()),
            created_at: container.created_at.map(|t| timestamp(Some(t))),
            id: container.id,
            image: container.image,
            labels: container.labels.into_iter().collect(),
        })
    }

    async fn list_containers(&self, filter: &LabelFilter) -> Result<Vec<ContainerInfo>> {
        let mut conditions = vec![format!(
            "labels.{}=={}",
            quote(labels::MANAGED),
            quote("true")
        )];
        conditions.extend(
            filter
                .iter()
                .map(|(k, v)| format!("labels.{}=={}", quote(k), quote(v))),
        );
        let svc = &self.svc;
        let containers = svc
            .containers
            .clone()
            .list(svc.req(ListContainersRequest {
                filters: vec![conditions.join(",")],
            }))
            .await
            .map_err(|s| RuntimeError::rpc("Containers.List", "", s))?
            .into_inner()
            .containers;
        let tasks: HashMap<String, containerd_client::types::v1::Process> = svc
            .tasks
            .clone()
            .list(svc.req(ListTasksRequest {
                filter: String::new(),
            }))
            .await
            .map_err(|s| RuntimeError::rpc("Tasks.List", "", s))?
            .into_inner()
            .tasks
            .into_iter()
            .map(|t| (t.id.clone(), t))
            .collect();
        let mut out: Vec<ContainerInfo> = containers
            .into_iter()
            .map(|c| ContainerInfo {
                state: Self::state_of(tasks.get(&c.id)),
                created_at: c.created_at.map(|t| timestamp(Some(t))),
                id: c.id,
                image: c.image,
                labels: c.labels.into_iter().collect(),
            })
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    #[instrument(skip(self))]
    async fn remove_container(&self, id: &str) -> Result<()> {
        let svc = &self.svc;
        if let Some(process) = self.task(id).await? {
            if !matches!(Self::state_of(Some(&process)), ContainerState::Exited(_)) {
                let waiting = self.spawn_wait(id);
                self.kill(id, SIGKILL, true).await?;
                let _ = tokio::time::timeout(KILL_TIMEOUT, join_wait(waiting)).await;
            }
            // NB: the task must go before the container record; deleting the
            // record first orphans a live shim that no API call can reach.
            ignore_not_found(
                svc.tasks
                    .clone()
                    .delete(svc.req(DeleteTaskRequest {
                        container_id: id.to_string(),
                    }))
                    .await,
            )
            .map_err(|s| RuntimeError::rpc("Tasks.Delete", "", s))?;
        }
        let (snapshotter, key) = match self.get_container(id).await {
            Ok(c) => (c.snapshotter, c.snapshot_key),
            Err(e) if e.is_not_found() => (self.config.snapshotter.clone(), id.to_string()),
            Err(e) => return Err(e),
        };
        ignore_not_found(
            svc.containers
                .clone()
                .delete(svc.req(DeleteContainerRequest { id: id.to_string() }))
                .await,
        )
        .map_err(|s| RuntimeError::rpc("Containers.Delete", "", s))?;
        // Deleting the record does not remove its writable layer.
        ignore_not_found(
            svc.snapshots
                .clone()
                .remove(svc.req(RemoveSnapshotRequest { snapshotter, key }))
                .await,
        )
        .map_err(|s| RuntimeError::rpc("Snapshots.Remove", "", s))?;
        self.prune_cgroup_parent();
        Ok(())
    }
}

impl ContainerdRuntime {
    /// Where runc puts the `/<namespace>` cgroup parent: under cgroup v2's
    /// one hierarchy, or under each v1 hierarchy (its controllers, the
    /// named `systemd` one and a hybrid setup's `unified`).
    fn cgroup_parents(&self) -> Vec<PathBuf> {
        let root = Path::new("/sys/fs/cgroup");
        if root.join("cgroup.controllers").exists() {
            return vec![root.join(&self.config.namespace)];
        }
        std::fs::read_dir(root)
            .map(|hierarchies| {
                hierarchies
                    .flatten()
                    .map(|h| h.path())
                    .filter(|h| h.join("cgroup.procs").exists())
                    .map(|h| h.join(&self.config.namespace))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether the `/<namespace>` cgroup parent exists in every hierarchy.
    fn cgroup_parent_exists(&self) -> bool {
        self.cgroup_parents().iter().all(|p| p.is_dir())
    }

    /// runc removes a container's cgroup but leaves the `/<namespace>`
    /// parent behind. Removing it is best effort: it only succeeds once the
    /// last container of the namespace is gone, and it is skipped while a
    /// task is being created (the next removal prunes).
    fn prune_cgroup_parent(&self) {
        let Ok(_pruning) = self.cgroup_parent.try_write() else {
            return;
        };
        for parent in self.cgroup_parents() {
            let _ = std::fs::remove_dir(parent);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_values_are_quoted() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
    }
}
