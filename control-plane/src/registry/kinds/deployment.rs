//! Deployments.

use crate::registry::resource_type::{ALL, ResourceType, rt};

/// `deployments.apps` in `apps/v1`.
pub const DEPLOYMENTS: &ResourceType = &rt!(
    "apps",
    "v1",
    "deployments",
    "deployment",
    "Deployment",
    true,
    &["deploy"],
    ALL,
    &["status", "scale"]
);
