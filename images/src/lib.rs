//! Skiff's images, built locally: there is no registry on a lab machine, so
//! every image Skiff needs is produced here as an OCI image-layout tarball
//! that containerd imports (`ctr images import`, or the kubelet's runtime).
//!
//! # Layout
//! - [`name`]: image references, normalised like containerd (`busybox` =
//!   `docker.io/library/busybox:latest`).
//! - [`layer`]: deterministic gzipped tar layers and their digests.
//! - [`layout`]: index, manifest and config (oci-spec types) written as an
//!   image-layout tarball with the annotations containerd names images by.
//! - [`catalog`]: the images themselves (busybox, `skiff.dev/webapp:v1`/`v2`).

pub mod catalog;
pub mod error;
pub mod layer;
pub mod layout;
pub mod name;

pub use catalog::{CATALOG, CatalogEntry, Sources, build, build_all};
pub use error::ImageError;
pub use layout::BuiltImage;
pub use name::ImageName;

/// Result of image building.
pub type Result<T, E = ImageError> = std::result::Result<T, E>;
