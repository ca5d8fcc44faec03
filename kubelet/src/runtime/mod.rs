//! The container runtime seam: everything the kubelet needs from a
//! container engine, behind one trait with two implementations.
//!
//! - [`containerd::ContainerdRuntime`] drives a real containerd over gRPC.
//! - [`fake::FakeRuntime`] keeps containers in memory, records every call and
//!   can inject failures, for unit tests and node-scale benchmarks.
//! - [`conformance`] is what both must do, checked against each of them.
//!
//! The split between [`create_container`](ContainerRuntime::create_container)
//! and [`start_container`](ContainerRuntime::start_container) follows the CRI:
//! a restart is a new container, so the previous instance's exit status and
//! log stay inspectable until the kubelet removes it.

pub mod conformance;
pub mod containerd;
pub mod error;
pub mod fake;
pub mod process;
pub mod types;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use skiff_images::ImageName;

pub use error::{Result, RuntimeError};
pub use types::{
    BindMount, ContainerConfig, ContainerInfo, ContainerState, ExecEvent, ExecInput, ExecOptions,
    ExecOutput, ExecSession, ExitStatus, LabelFilter, NetworkMode, PodRef, SeccompProfile,
    SecurityConfig, labels, valid_container_id,
};

/// A container engine as the kubelet uses it. Every method is safe to call
/// concurrently for different containers. The errors named below are part
/// of the contract ([`conformance`] checks them).
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// The engine's `<name>://<version>`, as `status.nodeInfo.containerRuntimeVersion`.
    async fn version(&self) -> Result<String> {
        Ok("fake://0.0.0".to_string())
    }

    /// Imports every image of an OCI image-layout tarball and unpacks it.
    /// Idempotent: importing the same archive twice changes nothing.
    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageName>>;

    /// Whether `image` is in the store and ready to run.
    async fn image_present(&self, image: &ImageName) -> Result<bool>;

    /// Creates (but does not start) a container. `AlreadyExists` when the id
    /// is taken, `InvalidConfig` when it is not a [`valid_container_id`],
    /// `ImageNotPresent` when the image is missing.
    async fn create_container(&self, config: &ContainerConfig) -> Result<()>;

    /// Starts a created container; returns its host pid. Output goes to the
    /// configured log file in CRI format, written by a process that outlives
    /// the kubelet. `NotFound` for an unknown id; a second start fails.
    async fn start_container(&self, id: &str) -> Result<u32>;

    /// Waits until the container's main process exits; after that, answers
    /// at once with the same status. `NotFound` for an unknown id or a
    /// container never started.
    async fn wait_container(&self, id: &str) -> Result<ExitStatus>;

    /// Sends SIGTERM, waits up to `grace`, then SIGKILLs every process of the
    /// container. Returns how it ended (137 when it had to be killed); for a
    /// container that already exited, how it did. `NotRunning` for one never
    /// started (or unknown).
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<ExitStatus>;

    /// Runs `command` inside a running container and collects its output.
    /// The command is killed when `timeout` passes. `NotFound` for an unknown
    /// id, `NotRunning` before a start, `InvalidConfig` without a command.
    async fn exec(&self, id: &str, command: &[String], timeout: Duration) -> Result<ExecOutput>;

    /// Starts `options.command` inside a running container and streams its
    /// input and output (`kubectl exec -i -t`). The default runs the command
    /// to completion without stdin, for runtimes that cannot stream.
    async fn exec_session(&self, id: &str, options: ExecOptions) -> Result<ExecSession> {
        let out = self
            .exec(id, &options.command, Duration::from_secs(3600))
            .await?;
        let (input, _) = tokio::sync::mpsc::channel(1);
        let (tx, events) = tokio::sync::mpsc::channel(3);
        for event in [
            ExecEvent::Stdout(out.stdout),
            ExecEvent::Stderr(out.stderr),
            ExecEvent::Exited(out.exit_code),
        ] {
            // The channel holds all three; a closed receiver just drops them.
            let _ = tx.try_send(event);
        }
        Ok(ExecSession { input, events })
    }

    /// The container's labels and state; `NotFound` for an unknown id.
    async fn container_info(&self, id: &str) -> Result<ContainerInfo>;

    /// Skiff's containers whose labels include every pair of `filter`.
    async fn list_containers(&self, filter: &LabelFilter) -> Result<Vec<ContainerInfo>>;

    /// Kills the container if needed and removes every trace of it from the
    /// engine (task, container record, writable snapshot). The log file stays.
    /// Removing a container that does not exist succeeds.
    async fn remove_container(&self, id: &str) -> Result<()>;
}
