//! Errors of the image builder.

use std::path::PathBuf;

/// Everything that can go wrong while building an image.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Writing a layer entry failed.
    #[error("cannot add {entry} to layer: {source}")]
    Layer {
        /// Path inside the layer.
        entry: String,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Reading an input (busybox binary, ...) or writing the tarball failed.
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
    /// An input binary is not usable inside an image.
    #[error("{} cannot be used: {reason}", path.display())]
    UnusableBinary {
        /// The binary.
        path: PathBuf,
        /// Why (e.g. dynamically linked).
        reason: String,
    },
    /// oci-spec refused to build a document.
    #[error("invalid OCI document: {0}")]
    Spec(#[from] oci_spec::OciSpecError),
    /// JSON encoding failed.
    #[error("cannot encode OCI document: {0}")]
    Json(#[from] serde_json::Error),
    /// No image with that name in the catalog.
    #[error("no image named {0} (see `skiff-images list`)")]
    UnknownImage(String),
    /// The name given is not an image reference.
    #[error(transparent)]
    InvalidName(#[from] crate::name::InvalidImageName),
}

impl ImageError {
    pub(crate) fn layer(entry: &str, source: std::io::Error) -> Self {
        Self::Layer {
            entry: entry.to_string(),
            source,
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
}
