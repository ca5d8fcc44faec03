//! Nodes.

use crate::registry::resource_type::{ResourceType, rt};

/// `nodes` in `v1`.
pub const NODES: &ResourceType = &rt!(
    "",
    "v1",
    "nodes",
    "node",
    "Node",
    false,
    &["no"],
    &[],
    &["status", "proxy"]
);
