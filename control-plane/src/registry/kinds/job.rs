//! Jobs.

use crate::registry::resource_type::{ALL, ResourceType, rt};

/// `jobs.batch` in `batch/v1`.
pub const JOBS: &ResourceType = &rt!(
    "batch",
    "v1",
    "jobs",
    "job",
    "Job",
    true,
    &[],
    ALL,
    &["status"]
);
