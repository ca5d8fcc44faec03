//! What the kubelet asks the runtime for and what it gets back.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use skiff_images::ImageName;

/// Label keys every Skiff container carries. They use the same names as the
/// CRI so people who know `crictl` recognise them, and they let a restarted
/// kubelet find what it left running.
pub mod labels {
    /// Marks containers created by Skiff.
    pub const MANAGED: &str = "dev.skiff.managed";
    /// UID of the pod.
    pub const POD_UID: &str = "io.kubernetes.pod.uid";
    /// Namespace of the pod.
    pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
    /// Name of the pod.
    pub const POD_NAME: &str = "io.kubernetes.pod.name";
    /// Name of the container within the pod.
    pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
    /// How many times this container was restarted before this instance.
    pub const RESTART_COUNT: &str = "io.kubernetes.container.restartCount";
    /// Where this instance's CRI-format log goes.
    pub const LOG_PATH: &str = "dev.skiff.log-path";
}

/// Who a container belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodRef {
    /// Pod UID.
    pub uid: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
}

/// Which network namespace a container uses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NetworkMode {
    /// A new network namespace of its own with only loopback.
    #[default]
    Private,
    /// Join an existing namespace (the pod sandbox), e.g. `/run/netns/pod-x`.
    Join(PathBuf),
    /// The host's network namespace (`hostNetwork: true`).
    Host,
}

/// A file or directory of the host made visible in the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Path on the host.
    pub host_path: PathBuf,
    /// Path in the container.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Which seccomp filter a container's process runs under.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompProfile {
    /// No filter (upstream's default when the pod names none and the
    /// kubelet runs without `--seccomp-default`).
    #[default]
    Unconfined,
    /// The runtime's default allowlist.
    RuntimeDefault,
    /// A profile file on the node (OCI `linux.seccomp` JSON), already
    /// resolved under the kubelet's seccomp folder.
    Localhost(PathBuf),
}

/// How a container is confined: the runtime-neutral form of a pod's and a
/// container's securityContext after the kubelet merged them, the shape
/// the CRI's `LinuxContainerSecurityContext` gives containerd. The default
/// is what a pod without any securityContext gets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityConfig {
    /// All capabilities, host devices, writable `/sys`, no masked or
    /// read-only paths, no seccomp.
    pub privileged: bool,
    /// Capabilities added to the runtime's default set, Kubernetes names
    /// without `CAP_` (`NET_ADMIN`, or `ALL`).
    pub add_capabilities: Vec<String>,
    /// Capabilities dropped from it (`ALL` drops every one before the adds).
    pub drop_capabilities: Vec<String>,
    /// Refuse to create the container when it would run as uid 0 (or as a
    /// user whose uid the image does not say).
    pub run_as_non_root: bool,
    /// `runAsGroup` without `runAsUser`: the image's user with this
    /// primary group.
    pub run_as_group: Option<u32>,
    /// Extra groups of the process (`fsGroup`, then `supplementalGroups`).
    pub supplemental_groups: Vec<u32>,
    /// Mount the root filesystem read-only.
    pub read_only_root_filesystem: bool,
    /// Set `no_new_privs` (`allowPrivilegeEscalation: false`).
    pub no_new_privileges: bool,
    /// Share the host's PID namespace (`hostPID`).
    pub host_pid: bool,
    /// Share the host's IPC namespace (`hostIPC`).
    pub host_ipc: bool,
    /// The seccomp filter.
    pub seccomp: SeccompProfile,
    /// `procMount: Unmasked`: no masked or read-only paths under `/proc`.
    pub unmasked_proc: bool,
    /// Namespaced sysctls to set (`spec.securityContext.sysctls`).
    pub sysctls: BTreeMap<String, String>,
}

/// Everything needed to create one container.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// Runtime-wide unique id chosen by the caller.
    pub id: String,
    /// Image to run (must be present).
    pub image: ImageName,
    /// Pod the container belongs to.
    pub pod: PodRef,
    /// Container name within the pod.
    pub name: String,
    /// Restart count recorded on the container (label), for recovery.
    pub restart_count: u32,
    /// Kubernetes `command`: replaces the image ENTRYPOINT when non-empty.
    pub command: Vec<String>,
    /// Kubernetes `args`: replaces the image CMD when non-empty.
    pub args: Vec<String>,
    /// Environment; merged over the image's, later entries win.
    pub env: Vec<(String, String)>,
    /// Kubernetes `workingDir`; the image's WORKDIR when `None`.
    pub working_dir: Option<String>,
    /// Hostname inside the container.
    pub hostname: Option<String>,
    /// Network namespace.
    pub network: NetworkMode,
    /// Extra bind mounts (`/etc/hosts`, volumes).
    pub mounts: Vec<BindMount>,
    /// `uid:gid` to run as; the image's USER (or root) when `None`.
    pub user: Option<(u32, u32)>,
    /// How the container is confined (securityContext).
    pub security: SecurityConfig,
    /// Where stdout and stderr go, in CRI log format.
    pub log_path: PathBuf,
    /// Additional labels.
    pub extra_labels: BTreeMap<String, String>,
}

impl ContainerConfig {
    /// A configuration with Kubernetes' defaults for everything but the essentials.
    pub fn new(id: impl Into<String>, image: ImageName, log_path: impl Into<PathBuf>) -> Self {
        Self {
            id: id.into(),
            image,
            pod: PodRef::default(),
            name: String::new(),
            restart_count: 0,
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            hostname: None,
            network: NetworkMode::default(),
            mounts: Vec::new(),
            user: None,
            security: SecurityConfig::default(),
            log_path: log_path.into(),
            extra_labels: BTreeMap::new(),
        }
    }

    /// The labels stored on the container.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut l = self.extra_labels.clone();
        l.insert(labels::MANAGED.into(), "true".into());
        l.insert(labels::POD_UID.into(), self.pod.uid.clone());
        l.insert(labels::POD_NAMESPACE.into(), self.pod.namespace.clone());
        l.insert(labels::POD_NAME.into(), self.pod.name.clone());
        l.insert(labels::CONTAINER_NAME.into(), self.name.clone());
        l.insert(labels::RESTART_COUNT.into(), self.restart_count.to_string());
        l.insert(labels::LOG_PATH.into(), self.log_path.display().to_string());
        l
    }
}

/// How a container's main process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// Exit code; 128 + signal number when killed by a signal (137 for SIGKILL).
    pub code: i32,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
}

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started (or its task is gone).
    Created,
    /// Running with this host pid.
    Running {
        /// Host pid of the main process.
        pid: u32,
    },
    /// Ended.
    Exited(ExitStatus),
    /// The runtime cannot tell (e.g. paused or in transition).
    Unknown,
}

/// A container as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Container id.
    pub id: String,
    /// Image name as recorded at creation.
    pub image: String,
    /// Labels (see [`labels`]).
    pub labels: BTreeMap<String, String>,
    /// Current state.
    pub state: ContainerState,
    /// When the container record was created.
    pub created_at: Option<DateTime<Utc>>,
}

/// Output of a command run with [`exec`](super::ContainerRuntime::exec).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code of the command.
    pub exit_code: i32,
    /// What it wrote to stdout.
    pub stdout: Vec<u8>,
    /// What it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// How to run an interactive command with
/// [`exec_session`](super::ContainerRuntime::exec_session) (`kubectl exec -i -t`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    /// argv.
    pub command: Vec<String>,
    /// Whether the caller will send stdin.
    pub stdin: bool,
    /// Whether the command gets a terminal; with one, stderr is merged into stdout.
    pub tty: bool,
    /// The terminal's initial size (columns, rows).
    pub size: Option<(u16, u16)>,
}

/// What the caller of an exec session sends to the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInput {
    /// Bytes for the process's stdin.
    Stdin(Vec<u8>),
    /// End of stdin: the process reads EOF.
    CloseStdin,
    /// The caller's terminal changed size (columns, rows).
    Resize(u16, u16),
}

/// What an exec session reports, in order; `Exited` comes last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    /// Output on stdout (or the terminal).
    Stdout(Vec<u8>),
    /// Output on stderr.
    Stderr(Vec<u8>),
    /// The process ended with this exit code.
    Exited(i32),
}

/// A running exec. Dropping `events` ends the session: the process is killed.
#[derive(Debug)]
pub struct ExecSession {
    /// Input for the process (stdin, resizes). Dropping it closes stdin.
    pub input: tokio::sync::mpsc::Sender<ExecInput>,
    /// Output and the exit code.
    pub events: tokio::sync::mpsc::Receiver<ExecEvent>,
}

/// Whether a runtime can name a container `id`: 1–76 characters of
/// `[A-Za-z0-9_.-]`, starting with a letter or digit (containerd's rule).
pub fn valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 76
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

/// Equality label selector for [`list_containers`](super::ContainerRuntime::list_containers).
pub type LabelFilter = BTreeMap<String, String>;

/// Time given to a container between SIGTERM and SIGKILL (Kubernetes'
/// `terminationGracePeriodSeconds` default).
pub const DEFAULT_GRACE_PERIOD: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_restricted_to_safe_characters() {
        assert!(valid_container_id("pod-1_web.0"));
        for bad in ["", "-x", "a/b", "a b", &"x".repeat(77)] {
            assert!(!valid_container_id(bad), "{bad:?}");
        }
    }
}
