//! DaemonSets.

use crate::registry::resource_type::{ALL, ResourceType, rt};

/// `daemonsets.apps` in `apps/v1`.
pub const DAEMONSETS: &ResourceType = &rt!(
    "apps",
    "v1",
    "daemonsets",
    "daemonset",
    "DaemonSet",
    true,
    &["ds"],
    ALL,
    &["status"]
);
