//! ControllerRevisions.

use crate::registry::resource_type::{ResourceType, rt};

/// `controllerrevisions.apps` in `apps/v1`.
pub const CONTROLLERREVISIONS: &ResourceType = &rt!(
    "apps",
    "v1",
    "controllerrevisions",
    "controllerrevision",
    "ControllerRevision",
    true,
    &[],
    &[],
    &[]
);
