//! Leases.

use crate::registry::resource_type::{ResourceType, rt};

/// `leases.coordination.k8s.io` in `coordination.k8s.io/v1`.
pub const LEASES: &ResourceType = &rt!(
    "coordination.k8s.io",
    "v1",
    "leases",
    "lease",
    "Lease",
    true,
    &[],
    &[],
    &[]
);
