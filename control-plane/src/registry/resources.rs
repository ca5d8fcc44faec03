//! The resource types the API server serves: names, kinds, scope, short
//! names and categories, as upstream's discovery documents them.

use super::kinds;
pub use super::resource_type::ResourceType;

/// Every served resource type, in discovery order.
pub const RESOURCES: &[ResourceType] = &[
    *kinds::PODS,
    *kinds::SERVICES,
    *kinds::ENDPOINTS,
    *kinds::NODES,
    *kinds::NAMESPACES,
    *kinds::EVENTS,
    *kinds::REPLICATIONCONTROLLERS,
    *kinds::PERSISTENTVOLUMES,
    *kinds::PERSISTENTVOLUMECLAIMS,
    *kinds::CONFIGMAPS,
    *kinds::SECRETS,
    *kinds::SERVICEACCOUNTS,
    *kinds::DEPLOYMENTS,
    *kinds::REPLICASETS,
    *kinds::DAEMONSETS,
    *kinds::STATEFULSETS,
    *kinds::CONTROLLERREVISIONS,
    *kinds::JOBS,
    *kinds::CRONJOBS,
    *kinds::STORAGECLASSES,
    *kinds::ENDPOINTSLICES,
    *kinds::PODDISRUPTIONBUDGETS,
    *kinds::LEASES,
    *kinds::CERTIFICATESIGNINGREQUESTS,
    *kinds::EVENTS_V1,
    *kinds::CLUSTERROLEBINDINGS,
    *kinds::CLUSTERROLES,
    *kinds::ROLEBINDINGS,
    *kinds::ROLES,
    *kinds::SELFSUBJECTREVIEWS,
    *kinds::TOKENREVIEWS,
    *kinds::LOCALSUBJECTACCESSREVIEWS,
    *kinds::SELFSUBJECTACCESSREVIEWS,
    *kinds::SELFSUBJECTRULESREVIEWS,
    *kinds::SUBJECTACCESSREVIEWS,
];

/// The type served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The type of `apiVersion` + `kind`.
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// The groups served, in discovery order: `(group, version)`.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES.iter().filter(|r| !r.group.is_empty()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
