//! Services.

use crate::registry::resource_type::{ALL, ResourceType, rt};

/// `services` in `v1`.
pub const SERVICES: &ResourceType = &rt!(
    "",
    "v1",
    "services",
    "service",
    "Service",
    true,
    &["svc"],
    ALL,
    &["status", "proxy"]
);
