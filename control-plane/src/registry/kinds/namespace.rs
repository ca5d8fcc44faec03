//! Namespaces.

use crate::registry::resource_type::{ResourceType, rt};

/// `namespaces` in `v1`.
pub const NAMESPACES: &ResourceType = &rt!(
    "",
    "v1",
    "namespaces",
    "namespace",
    "Namespace",
    false,
    &["ns"],
    &[],
    &["status", "finalize"]
);
