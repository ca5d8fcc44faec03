//! Endpoints and EndpointSlices.

use crate::registry::resource_type::{ResourceType, rt};

/// `endpoints` in `v1`.
pub const ENDPOINTS: &ResourceType = &rt!(
    "",
    "v1",
    "endpoints",
    "endpoints",
    "Endpoints",
    true,
    &["ep"],
    &[],
    &[]
);

/// `endpointslices.discovery.k8s.io` in `discovery.k8s.io/v1`.
pub const ENDPOINTSLICES: &ResourceType = &rt!(
    "discovery.k8s.io",
    "v1",
    "endpointslices",
    "endpointslice",
    "EndpointSlice",
    true,
    &[],
    &[],
    &[]
);
