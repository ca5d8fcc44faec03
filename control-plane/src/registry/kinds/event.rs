//! Events, core and `events.k8s.io`.

use crate::registry::resource_type::{ResourceType, rt};

/// `events` in `v1`.
pub const EVENTS: &ResourceType = &rt!(
    "",
    "v1",
    "events",
    "event",
    "Event",
    true,
    &["ev"],
    &[],
    &[]
);

/// `events.events.k8s.io` in `events.k8s.io/v1`.
/// Stored as core Events: one object behind two group versions.
pub const EVENTS_V1: &ResourceType = &ResourceType {
    storage_group: "",
    ..rt!(
        "events.k8s.io",
        "v1",
        "events",
        "event",
        "Event",
        true,
        &["ev"],
        &[],
        &[]
    )
};
