//! PodDisruptionBudgets.

use crate::registry::resource_type::{ResourceType, rt};

/// `poddisruptionbudgets.policy` in `policy/v1`.
pub const PODDISRUPTIONBUDGETS: &ResourceType = &rt!(
    "policy",
    "v1",
    "poddisruptionbudgets",
    "poddisruptionbudget",
    "PodDisruptionBudget",
    true,
    &["pdb"],
    &[],
    &["status"]
);
