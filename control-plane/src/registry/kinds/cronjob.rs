//! CronJobs.

use crate::registry::resource_type::{ALL, ResourceType, rt};

/// `cronjobs.batch` in `batch/v1`.
pub const CRONJOBS: &ResourceType = &rt!(
    "batch",
    "v1",
    "cronjobs",
    "cronjob",
    "CronJob",
    true,
    &["cj"],
    ALL,
    &["status"]
);
