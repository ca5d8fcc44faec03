//! Errors of the container runtime layer.

use std::path::PathBuf;

/// Everything a [`ContainerRuntime`](super::ContainerRuntime) call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    // ----- Invalid inputs -----
    /// The image is not in the runtime's store (Kubernetes: `ErrImageNeverPull`
    /// when pulling is not allowed).
    #[error("image {image} is not present")]
    ImageNotPresent {
        /// Normalised image name.
        image: String,
    },
    /// A tarball is not a usable OCI image layout.
    #[error("{} is not a usable OCI image archive: {reason}", path.display())]
    InvalidArchive {
        /// The tarball.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The image's manifest or config cannot be used.
    #[error("image {image} is unusable: {reason}")]
    InvalidImage {
        /// Normalised image name.
        image: String,
        /// What is wrong.
        reason: String,
    },
    /// The container configuration cannot be turned into a runtime spec
    /// (Kubernetes: `CreateContainerError`).
    #[error("invalid container configuration for {container}: {reason}")]
    InvalidConfig {
        /// Container id.
        container: String,
        /// What is wrong.
        reason: String,
    },
    /// `runAsNonRoot` refuses the container's user (Kubernetes:
    /// `CreateContainerConfigError`).
    #[error("{violation}")]
    NonRoot {
        /// Container id.
        container: String,
        /// Which rule it breaks.
        violation: super::process::NonRootViolation,
    },

    // ----- State -----
    /// No such container (or task, or exec process).
    #[error("container {id} not found")]
    NotFound {
        /// Container id.
        id: String,
    },
    /// A container with that id exists already.
    #[error("container {id} already exists")]
    AlreadyExists {
        /// Container id.
        id: String,
    },
    /// The operation needs a running container.
    #[error("container {id} is not running")]
    NotRunning {
        /// Container id.
        id: String,
    },
    /// The operation did not finish in time.
    #[error("{operation} on {id} timed out after {seconds:.1}s")]
    Timeout {
        /// What was attempted.
        operation: &'static str,
        /// Container id.
        id: String,
        /// How long it was given.
        seconds: f64,
    },

    // ----- Transport and host -----
    /// containerd answered with an error.
    #[error("containerd {operation} failed: {status}")]
    Rpc {
        /// The RPC, e.g. `Tasks.Create`.
        operation: &'static str,
        /// containerd's answer (message text is containerd's own).
        #[source]
        status: Box<tonic::Status>,
    },
    /// The containerd socket cannot be reached.
    #[error("cannot connect to containerd at {}: {source}", socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// Underlying error.
        #[source]
        source: tonic::transport::Error,
    },
    /// A local file operation failed.
    #[error("{context} {}: {source}", path.display())]
    Io {
        /// What was being done.
        context: &'static str,
        /// The file involved.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A failure injected by the fake runtime (tests only).
    #[error("injected failure: {0}")]
    Injected(String),
}

impl RuntimeError {
    /// Wraps a gRPC status from `operation`, turning the codes that have a
    /// meaning for callers into their own variants.
    pub(crate) fn rpc(operation: &'static str, id: &str, status: tonic::Status) -> Self {
        match status.code() {
            tonic::Code::NotFound if !id.is_empty() => Self::NotFound { id: id.to_string() },
            tonic::Code::AlreadyExists if !id.is_empty() => {
                Self::AlreadyExists { id: id.to_string() }
            }
            _ => Self::Rpc {
                operation,
                status: Box::new(status),
            },
        }
    }

    pub(crate) fn io(
        context: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Self::Io {
            context,
            path: path.into(),
            source,
        }
    }

    /// True when the error means "it does not exist" (safe to ignore on cleanup).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::NotFound { .. } => true,
            Self::Rpc { status, .. } => status.code() == tonic::Code::NotFound,
            _ => false,
        }
    }
}

/// Result of runtime calls.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
