//! Pod Security Standards as upstream's Pod Security Admission evaluates
//! them: a namespace's `pod-security.kubernetes.io/*` labels pick a level
//! and version for each mode ([`levels`]), and a pod (or a workload's pod
//! template) is checked against the `baseline` ([`baseline`]) or
//! `restricted` ([`restricted`]) checks of that version. Most checks read
//! one field of the pod and of each container, through the walk in
//! `fields`. Results read as upstream's do: `hostPath volumes (volume
//! "root"), privileged (container "c" must not set
//! securityContext.privileged=true)`.
//!
//! Pure functions; the control plane's admission hook decides what to do
//! with the results (refuse, warn, audit).

pub mod baseline;
mod fields;
pub mod levels;
pub mod restricted;

use k8s_openapi::api::core::v1::PodSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub use levels::{Level, LevelVersion, Policy, Version};

/// One failed check: a short reason and, usually, which parts of the pod
/// caused it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `hostPath volumes`, `privileged`, ...
    pub reason: String,
    /// `volume "root"`, `container "c" must not set ...`; may be empty.
    pub detail: String,
}

impl Violation {
    pub(crate) fn new(reason: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
            detail: detail.into(),
        }
    }
}

/// A check: the pod's metadata and spec in, a violation or nothing out.
pub(crate) type Check = fn(&ObjectMeta, &PodSpec, u32) -> Option<Violation>;

/// Evaluates `pod` (its metadata and spec) at `lv`: every violated check,
/// in upstream's order (baseline checks by id, then restricted ones). A
/// `privileged` level allows everything.
pub fn evaluate(lv: LevelVersion, meta: &ObjectMeta, spec: &PodSpec) -> Vec<Violation> {
    let minor = lv.version.minor();
    let checks: Vec<Check> = match lv.level {
        Level::Privileged => return Vec::new(),
        Level::Baseline => baseline::checks(minor),
        Level::Restricted => {
            let overridden = restricted::overridden_baseline_checks(minor);
            baseline::checks_except(minor, &overridden)
                .into_iter()
                .chain(restricted::checks(minor))
                .collect()
        }
    };
    checks
        .into_iter()
        .filter_map(|check| check(meta, spec, minor))
        .collect()
}

/// Violations as upstream's message lists them: `reason (detail), ...`.
pub fn forbidden_detail(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.reason.clone()
            } else {
                format!("{} ({})", v.reason, v.detail)
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Only the reasons, as the namespace check's per-pod warnings use them.
pub fn forbidden_reasons(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `"a", "b"`: upstream's `joinQuote`.
pub(crate) fn join_quote<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let quoted: Vec<String> = items
        .iter()
        .map(|s| format!("\"{}\"", s.as_ref()))
        .collect();
    quoted.join(", ")
}

/// `singular` for one, `plural` otherwise.
pub(crate) fn pluralize<'a>(singular: &'a str, plural: &'a str, count: usize) -> &'a str {
    if count == 1 { singular } else { plural }
}

/// `container "a"` / `containers "a", "b"`.
pub(crate) fn containers_phrase<S: AsRef<str>>(names: &[S]) -> String {
    format!(
        "{} {}",
        pluralize("container", "containers", names.len()),
        join_quote(names)
    )
}

/// A sorted, de-duplicated list (upstream's `sets.NewString().List()`).
pub(crate) fn sorted_set(mut items: Vec<String>) -> Vec<String> {
    items.sort();
    items.dedup();
    items
}

/// Whether the pod runs in a user namespace (`hostUsers: false`), which
/// from 1.35 exempts it from the checks on the user a container runs as
/// (root in the pod is not root on the node).
pub(crate) fn user_namespace_exempts(spec: &PodSpec, minor: u32) -> bool {
    minor >= 35 && spec.host_users == Some(false)
}

/// Whether the pod says it runs on Windows, which from 1.25 exempts it
/// from the checks on Linux-only fields.
pub(crate) fn windows_exempts(spec: &PodSpec, minor: u32) -> bool {
    minor >= 25 && spec.os.as_ref().is_some_and(|os| os.name == "windows")
}

#[cfg(test)]
pub(crate) mod test_support {
    use k8s_openapi::api::core::v1::Pod;

    /// A pod from YAML, as the checks see it.
    pub fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("pod yaml")
    }

    /// `check`'s result for the pod in `yaml` at 1.`minor`, as
    /// `reason (detail)`.
    pub fn run(check: super::Check, yaml: &str, minor: u32) -> Option<String> {
        let p = pod(yaml);
        check(&p.metadata, p.spec.as_ref().expect("spec"), minor)
            .map(|v| format!("{} ({})", v.reason, v.detail))
    }

    /// YAML of a pod whose pod-level securityContext is `pod_context` (a
    /// flow mapping, or "" for none) and whose containers are
    /// `(name, securityContext)` pairs: a name starting `init` makes an
    /// init container, `eph` an ephemeral one, any other a container. The
    /// per-check message tables read far shorter in this form.
    pub fn with_contexts(pod_context: &str, containers: &[(&str, &str)]) -> String {
        let mut yaml = String::from("metadata: {name: x}\nspec:\n");
        if !pod_context.is_empty() {
            yaml.push_str(&format!("  securityContext: {pod_context}\n"));
        }
        let kind = |name: &str| {
            if name.starts_with("init") {
                "initContainers"
            } else if name.starts_with("eph") {
                "ephemeralContainers"
            } else {
                "containers"
            }
        };
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let entries: Vec<String> = containers
                .iter()
                .filter(|(name, _)| kind(name) == list)
                .map(|(name, context)| {
                    if context.is_empty() {
                        format!("{{name: {name}, image: i}}")
                    } else {
                        format!("{{name: {name}, image: i, securityContext: {context}}}")
                    }
                })
                .collect();
            if !entries.is_empty() || list == "containers" {
                yaml.push_str(&format!("  {list}: [{}]\n", entries.join(", ")));
            }
        }
        yaml
    }

    /// Runs `check` on each `(case, yaml, minor)` and compares its
    /// `reason (detail)` with the expected one; reports every mismatch at
    /// once, so a changed message shows all the cases it breaks.
    pub fn expect_messages(check: super::Check, cases: &[(&str, String, u32, Option<&str>)]) {
        let mismatches: Vec<String> = cases
            .iter()
            .filter_map(|(case, yaml, minor, want)| {
                let got = run(check, yaml, *minor);
                (got.as_deref() != *want)
                    .then(|| format!("{case}:\n  got  {got:?}\n  want {want:?}"))
            })
            .collect();
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::pod;
    use super::*;

    fn eval(level: &str, yaml: &str) -> String {
        let p = pod(yaml);
        let lv = LevelVersion {
            level: Level::parse(level).expect("level"),
            version: Version::Latest,
        };
        forbidden_detail(&evaluate(lv, &p.metadata, p.spec.as_ref().expect("spec")))
    }

    const HOST_ROOT: &str = r#"
metadata: {name: x}
spec:
  volumes: [{name: root, hostPath: {path: /}}]
  containers:
  - name: c
    image: busybox
    securityContext: {privileged: true}
"#;

    #[test]
    fn baseline_lists_violations_in_upstream_order() {
        assert_eq!(
            eval("baseline", HOST_ROOT),
            "hostPath volumes (volume \"root\"), privileged (container \"c\" must not set securityContext.privileged=true)"
        );
        assert_eq!(eval("privileged", HOST_ROOT), "");
    }

    #[test]
    fn restricted_replaces_overridden_baseline_checks() {
        let detail = eval("restricted", HOST_ROOT);
        assert_eq!(
            detail,
            "privileged (container \"c\" must not set securityContext.privileged=true), \
             allowPrivilegeEscalation != false (container \"c\" must set securityContext.allowPrivilegeEscalation=false), \
             unrestricted capabilities (container \"c\" must set securityContext.capabilities.drop=[\"ALL\"]), \
             restricted volume types (volume \"root\" uses restricted volume type \"hostPath\"), \
             runAsNonRoot != true (pod or container \"c\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"c\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
        );
    }

    #[test]
    fn a_restricted_pod_passes_every_level() {
        let ok = r#"
metadata: {name: x}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  volumes: [{name: data, emptyDir: {}}]
  initContainers:
  - name: init
    image: busybox
    securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
  containers:
  - name: c
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}
"#;
        for level in ["privileged", "baseline", "restricted"] {
            assert_eq!(eval(level, ok), "", "{level}");
        }
    }

    #[test]
    fn reasons_only_for_namespace_warnings() {
        let p = pod(HOST_ROOT);
        let v = evaluate(
            LevelVersion {
                level: Level::Baseline,
                version: Version::Latest,
            },
            &p.metadata,
            p.spec.as_ref().expect("spec"),
        );
        assert_eq!(forbidden_reasons(&v), "hostPath volumes, privileged");
    }
}
