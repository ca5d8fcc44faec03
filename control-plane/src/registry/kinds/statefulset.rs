//! StatefulSets.

use crate::registry::resource_type::{ALL, ResourceType, rt};

/// `statefulsets.apps` in `apps/v1`.
pub const STATEFULSETS: &ResourceType = &rt!(
    "apps",
    "v1",
    "statefulsets",
    "statefulset",
    "StatefulSet",
    true,
    &["sts"],
    ALL,
    &["status", "scale"]
);
