//! ReplicaSets and ReplicationControllers.

use crate::registry::resource_type::{ALL, ResourceType, rt};

/// `replicationcontrollers` in `v1`.
pub const REPLICATIONCONTROLLERS: &ResourceType = &rt!(
    "",
    "v1",
    "replicationcontrollers",
    "replicationcontroller",
    "ReplicationController",
    true,
    &["rc"],
    ALL,
    &["status", "scale"]
);

/// `replicasets.apps` in `apps/v1`.
pub const REPLICASETS: &ResourceType = &rt!(
    "apps",
    "v1",
    "replicasets",
    "replicaset",
    "ReplicaSet",
    true,
    &["rs"],
    ALL,
    &["status", "scale"]
);
