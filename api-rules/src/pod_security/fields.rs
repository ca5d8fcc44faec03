//! The walk nearly every check shares: one field of the pod-level
//! securityContext, then the same field of each container in the order
//! upstream visits them, keeping what upstream's messages name: whether
//! the pod is at fault, which containers are, and the refused values.
//!
//! A check supplies where the field sits (a pod-level and a container-level
//! accessor) and which values it refuses; the walk and the bookkeeping are
//! written once here, so every check reports its setters the same way.

use k8s_openapi::api::core::v1::{Container, PodSecurityContext, PodSpec, SecurityContext};

use super::{Violation, containers_phrase, sorted_set};

/// Who is at fault for one check (set a refused value, or left a required
/// one unset), and the refused values.
#[derive(Debug, Default)]
pub(crate) struct Refused {
    /// The pod-level securityContext holds a refused value.
    pub(crate) pod: bool,
    /// Containers holding one, in visiting order: upstream lists them as
    /// it meets them, not sorted.
    pub(crate) containers: Vec<String>,
    /// The refused values, sorted and de-duplicated, as upstream lists the
    /// set it collects them in.
    pub(crate) values: Vec<String>,
}

impl Refused {
    /// Whether nothing holds a refused value.
    pub(crate) fn is_empty(&self) -> bool {
        !self.pod && self.containers.is_empty()
    }

    /// `pod`, `container "a"`, `pod and containers "a", "b"`: the subject of
    /// upstream's messages.
    pub(crate) fn setters(&self) -> String {
        let mut parts = Vec::new();
        if self.pod {
            parts.push("pod".to_string());
        }
        if !self.containers.is_empty() {
            parts.push(containers_phrase(&self.containers));
        }
        parts.join(" and ")
    }

    /// `reason (detail)` when anything is refused; `detail` words it from
    /// what was found.
    pub(crate) fn violation(
        &self,
        reason: &str,
        detail: impl FnOnce(&Self) -> String,
    ) -> Option<Violation> {
        (!self.is_empty()).then(|| Violation::new(reason, detail(self)))
    }
}

/// Init containers, containers, then ephemeral containers, as upstream
/// visits them; an ephemeral container is seen through the fields it
/// shares with a container (upstream casts the same way).
pub(crate) fn containers(spec: &PodSpec) -> Vec<Container> {
    let ephemeral = spec
        .ephemeral_containers
        .iter()
        .flatten()
        .map(|e| Container {
            name: e.name.clone(),
            image: e.image.clone(),
            ports: e.ports.clone(),
            liveness_probe: e.liveness_probe.clone(),
            readiness_probe: e.readiness_probe.clone(),
            startup_probe: e.startup_probe.clone(),
            lifecycle: e.lifecycle.clone(),
            security_context: e.security_context.clone(),
            ..Container::default()
        });
    spec.init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter())
        .cloned()
        .chain(ephemeral)
        .collect()
}

/// The pod-level accessor of a field only containers have (`privileged`,
/// `procMount`, `capabilities`, `allowPrivilegeEscalation`).
pub(crate) fn container_only<T: ?Sized>(_: &PodSecurityContext) -> Option<&T> {
    None
}

/// Who sets the field to a value `refuses` says no to; for fields whose
/// message names no value (`privileged=true`, `runAsUser=0`).
pub(crate) fn refused<T: ?Sized>(
    spec: &PodSpec,
    pod: impl Fn(&PodSecurityContext) -> Option<&T>,
    container: impl Fn(&SecurityContext) -> Option<&T>,
    mut refuses: impl FnMut(&T) -> bool,
) -> Refused {
    walk(
        spec.security_context.as_ref().and_then(pod),
        spec,
        |c| c.security_context.as_ref().and_then(&container),
        |v| refuses(v).then(Vec::new),
    )
}

/// Who sets the field to a refused value, and the values: `refused_in`
/// gives those a set value holds (none: the value is allowed).
pub(crate) fn refused_values<T: ?Sized, I: IntoIterator<Item = String>>(
    spec: &PodSpec,
    pod: impl Fn(&PodSecurityContext) -> Option<&T>,
    container: impl Fn(&SecurityContext) -> Option<&T>,
    refused_in: impl FnMut(&T) -> I,
) -> Refused {
    walk(
        spec.security_context.as_ref().and_then(pod),
        spec,
        |c| c.security_context.as_ref().and_then(&container),
        some_if_any(refused_in),
    )
}

/// Which containers refer to refused values outside their securityContext
/// (host ports, probe hosts), and the values: `refused_in` gives those a
/// container holds.
pub(crate) fn refused_in_containers(
    spec: &PodSpec,
    refused_in: impl FnMut(&Container) -> Vec<String>,
) -> Refused {
    walk(None, spec, |c| Some(c), some_if_any(refused_in))
}

/// Containers that do not set the field to a value `allowed` accepts,
/// leaving it unset included: for fields every container must set
/// (upstream's `must set ...`).
pub(crate) fn containers_not_setting<T: ?Sized>(
    spec: &PodSpec,
    container: impl Fn(&SecurityContext) -> Option<&T>,
    allowed: impl Fn(&T) -> bool,
) -> Refused {
    let containers = containers(spec)
        .into_iter()
        .filter(|c| {
            !c.security_context
                .as_ref()
                .and_then(&container)
                .is_some_and(&allowed)
        })
        .map(|c| c.name)
        .collect();
    Refused {
        containers,
        ..Refused::default()
    }
}

/// Containers left without an allowed value of a field the pod-level
/// value stands in for: none when the pod sets an allowed one, else those
/// not setting one themselves (upstream's `pod or containers ... must
/// set`).
pub(crate) fn not_set_by_pod_or_container<T: ?Sized>(
    spec: &PodSpec,
    pod: impl Fn(&PodSecurityContext) -> Option<&T>,
    container: impl Fn(&SecurityContext) -> Option<&T>,
    allowed: impl Fn(&T) -> bool,
) -> Refused {
    let pod_allows = spec
        .security_context
        .as_ref()
        .and_then(pod)
        .is_some_and(&allowed);
    if pod_allows {
        return Refused::default();
    }
    containers_not_setting(spec, container, allowed)
}

/// A value is refused when it holds at least one refused value.
fn some_if_any<T: ?Sized, I: IntoIterator<Item = String>>(
    mut refused_in: impl FnMut(&T) -> I,
) -> impl FnMut(&T) -> Option<Vec<String>> {
    move |v| {
        let values: Vec<String> = refused_in(v).into_iter().collect();
        (!values.is_empty()).then_some(values)
    }
}

/// The pod-level value, then each container's, through `refused_in`
/// (`Some`: refused, with the values to name).
fn walk<T: ?Sized>(
    pod: Option<&T>,
    spec: &PodSpec,
    container: impl Fn(&Container) -> Option<&T>,
    mut refused_in: impl FnMut(&T) -> Option<Vec<String>>,
) -> Refused {
    let mut values = Vec::new();
    let pod = pod
        .and_then(&mut refused_in)
        .map(|v| values.extend(v))
        .is_some();
    let mut bad_containers = Vec::new();
    for c in containers(spec) {
        if let Some(v) = container(&c).and_then(&mut refused_in) {
            bad_containers.push(c.name.clone());
            values.extend(v);
        }
    }
    Refused {
        pod,
        containers: bad_containers,
        values: sorted_set(values),
    }
}
