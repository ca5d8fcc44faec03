//! Configuration: ConfigMaps, Secrets, ServiceAccounts.

use crate::registry::resource_type::{ResourceType, rt};

/// `configmaps` in `v1`.
pub const CONFIGMAPS: &ResourceType = &rt!(
    "",
    "v1",
    "configmaps",
    "configmap",
    "ConfigMap",
    true,
    &["cm"],
    &[],
    &[]
);

/// `secrets` in `v1`.
pub const SECRETS: &ResourceType =
    &rt!("", "v1", "secrets", "secret", "Secret", true, &[], &[], &[]);

/// `serviceaccounts` in `v1`.
pub const SERVICEACCOUNTS: &ResourceType = &rt!(
    "",
    "v1",
    "serviceaccounts",
    "serviceaccount",
    "ServiceAccount",
    true,
    &["sa"],
    &[],
    &[]
);
