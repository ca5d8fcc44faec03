//! A pod's and its containers' securityContext, validated with the API
//! server's paths and wording: user and group ids, seccomp and AppArmor
//! profile types (a `Localhost` profile needs its path, below the node's
//! profile folder), `procMount`, sysctl names, and the combinations upstream
//! forbids with `allowPrivilegeEscalation: false`. `windowsOptions` are
//! not checked (Skiff runs Linux pods only, as upstream ignores them there).

use k8s_openapi::api::core::v1::{
    AppArmorProfile, Container, PodSpec, SeccompProfile, SecurityContext,
};

/// The largest user or group id the API accepts.
const MAX_ID: i64 = 2_147_483_647;

fn check_id(path: &str, id: Option<i64>, errors: &mut Vec<String>) {
    if let Some(id) = id
        && !(0..=MAX_ID).contains(&id)
    {
        errors.push(format!(
            "{path}: Invalid value: {id}: must be between 0 and {MAX_ID}, inclusive"
        ));
    }
}

/// Upstream's `validateLocalDescendingPath`.
fn check_descending_path(path: &str, value: &str, errors: &mut Vec<String>) {
    if value.starts_with('/') {
        errors.push(format!(
            "{path}: Invalid value: {value:?}: must be a relative path"
        ));
    }
    if value.split(['/', '\\']).any(|part| part == "..") {
        errors.push(format!(
            "{path}: Invalid value: {value:?}: must not contain '..'"
        ));
    }
}

fn check_seccomp(path: &str, profile: Option<&SeccompProfile>, errors: &mut Vec<String>) {
    let Some(p) = profile else { return };
    match p.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errors.push(format!("{path}.type: Required value")),
        other => errors.push(format!(
            "{path}.type: Unsupported value: {other:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
        )),
    }
    let local = format!("{path}.localhostProfile");
    match (p.type_.as_str(), p.localhost_profile.as_deref()) {
        ("Localhost", None) => errors.push(format!(
            "{local}: Required value: must be set when seccomp type is Localhost"
        )),
        ("Localhost", Some(v)) => check_descending_path(&local, v, errors),
        (_, Some(v)) => errors.push(format!(
            "{local}: Invalid value: {v:?}: can only be set when seccomp type is Localhost"
        )),
        (_, None) => {}
    }
}

fn check_app_armor(path: &str, profile: Option<&AppArmorProfile>, errors: &mut Vec<String>) {
    let Some(p) = profile else { return };
    match p.type_.as_str() {
        "Localhost" | "RuntimeDefault" | "Unconfined" => {}
        "" => errors.push(format!("{path}.type: Required value")),
        other => errors.push(format!(
            "{path}.type: Unsupported value: {other:?}: supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\""
        )),
    }
    let local = format!("{path}.localhostProfile");
    match (p.type_.as_str(), p.localhost_profile.as_deref()) {
        ("Localhost", None | Some("")) => errors.push(format!(
            "{local}: Required value: must be set when AppArmor type is Localhost"
        )),
        ("Localhost", Some(_)) | (_, None) => {}
        (_, Some(v)) => errors.push(format!(
            "{local}: Invalid value: {v:?}: can only be set when AppArmor type is Localhost"
        )),
    }
}

/// A container's `securityContext` at `path`
/// (`spec.containers[0].securityContext`).
pub fn validate_container(path: &str, sc: &SecurityContext) -> Vec<String> {
    let mut errors = Vec::new();
    check_id(&format!("{path}.runAsUser"), sc.run_as_user, &mut errors);
    check_id(&format!("{path}.runAsGroup"), sc.run_as_group, &mut errors);
    if let Some(mount) = sc.proc_mount.as_deref()
        && !matches!(mount, "Default" | "Unmasked")
    {
        errors.push(format!(
            "{path}.procMount: Unsupported value: {mount:?}: supported values: \"Default\", \"Unmasked\""
        ));
    }
    check_seccomp(
        &format!("{path}.seccompProfile"),
        sc.seccomp_profile.as_ref(),
        &mut errors,
    );
    check_app_armor(
        &format!("{path}.appArmorProfile"),
        sc.app_armor_profile.as_ref(),
        &mut errors,
    );
    if sc.allow_privilege_escalation == Some(false) {
        // NB: upstream prints the whole internal struct as the value.
        if sc.privileged == Some(true) {
            errors.push(format!(
                "{path}: Invalid value: core.SecurityContext{{...}}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true"
            ));
        }
        if sc
            .capabilities
            .as_ref()
            .and_then(|c| c.add.as_ref())
            .is_some_and(|add| add.iter().any(|c| c == "SYS_ADMIN"))
        {
            errors.push(format!(
                "{path}: Invalid value: core.SecurityContext{{...}}: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"
            ));
        }
    }
    errors
}

/// Whether `name` is a sysctl name upstream accepts (dots or slashes
/// between lower-case segments, at most 253 characters).
fn valid_sysctl_name(name: &str) -> bool {
    let segment_ok = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'_')
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
    };
    name.len() <= 253 && name.split(['.', '/']).all(segment_ok)
}

/// The pod-level `securityContext` and every container's, under `path`
/// (`spec`).
pub fn validate_pod(path: &str, spec: &PodSpec) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(sc) = spec.security_context.as_ref() {
        let sp = format!("{path}.securityContext");
        check_id(&format!("{sp}.runAsUser"), sc.run_as_user, &mut errors);
        check_id(&format!("{sp}.runAsGroup"), sc.run_as_group, &mut errors);
        check_id(&format!("{sp}.fsGroup"), sc.fs_group, &mut errors);
        for (i, g) in sc.supplemental_groups.iter().flatten().enumerate() {
            check_id(
                &format!("{sp}.supplementalGroups[{i}]"),
                Some(*g),
                &mut errors,
            );
        }
        check_seccomp(
            &format!("{sp}.seccompProfile"),
            sc.seccomp_profile.as_ref(),
            &mut errors,
        );
        check_app_armor(
            &format!("{sp}.appArmorProfile"),
            sc.app_armor_profile.as_ref(),
            &mut errors,
        );
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in sc.sysctls.iter().flatten().enumerate() {
            let p = format!("{sp}.sysctls[{i}].name");
            if s.name.is_empty() {
                errors.push(format!("{p}: Required value"));
            } else if !valid_sysctl_name(&s.name) {
                errors.push(format!(
                    "{p}: Invalid value: {:?}: must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
                    s.name
                ));
            } else if !seen.insert(s.name.clone()) {
                errors.push(format!("{p}: Duplicate value: {:?}", s.name));
            }
        }
    }
    let groups: [(&str, &[Container]); 2] = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", &spec.containers),
    ];
    for (field, containers) in groups {
        for (i, c) in containers.iter().enumerate() {
            if let Some(sc) = c.security_context.as_ref() {
                errors.extend(validate_container(
                    &format!("{path}.{field}[{i}].securityContext"),
                    sc,
                ));
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::*;

    fn errors(yaml: &str) -> Vec<String> {
        let p: Pod = serde_yaml::from_str(yaml).expect("pod");
        validate_pod("spec", p.spec.as_ref().expect("spec"))
    }

    #[test]
    fn a_restricted_pod_is_valid() {
        assert!(
            errors(
                r#"
metadata: {name: p}
spec:
  securityContext:
    runAsUser: 1000
    fsGroup: 2000
    supplementalGroups: [3000]
    seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}
    sysctls: [{name: net.ipv4.ping_group_range, value: "0 1"}, {name: kernel/shm_rmid_forced, value: "1"}]
  containers:
  - name: c
    image: busybox
    securityContext:
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
      seccompProfile: {type: RuntimeDefault}
      procMount: Default
      windowsOptions: {hostProcess: false, runAsUserName: anything}
"#
            )
            .is_empty()
        );
    }

    #[test]
    fn seccomp_profiles_are_checked_as_upstream() {
        assert_eq!(
            errors(
                r#"
metadata: {name: p}
spec:
  securityContext: {seccompProfile: {type: Localhost}}
  containers:
  - name: a
    image: busybox
    securityContext: {seccompProfile: {type: Strict}}
  - name: b
    image: busybox
    securityContext: {seccompProfile: {type: RuntimeDefault, localhostProfile: x.json}}
  - name: c
    image: busybox
    securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../x.json}}
"#
            ),
            [
                "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
                "spec.containers[0].securityContext.seccompProfile.type: Unsupported value: \"Strict\": supported values: \"Localhost\", \"RuntimeDefault\", \"Unconfined\"",
                "spec.containers[1].securityContext.seccompProfile.localhostProfile: Invalid value: \"x.json\": can only be set when seccomp type is Localhost",
                "spec.containers[2].securityContext.seccompProfile.localhostProfile: Invalid value: \"../x.json\": must not contain '..'",
            ]
        );
    }

    #[test]
    fn ids_proc_mount_sysctls_and_escalation() {
        assert_eq!(
            errors(
                r#"
metadata: {name: p}
spec:
  securityContext:
    runAsUser: -1
    supplementalGroups: [1, 2147483648]
    sysctls: [{name: Net.Bad, value: "1"}, {name: kernel.msgmax, value: "1"}, {name: kernel.msgmax, value: "2"}]
  initContainers:
  - name: i
    image: busybox
    securityContext: {allowPrivilegeEscalation: false, privileged: true, capabilities: {add: [SYS_ADMIN]}}
  containers:
  - name: c
    image: busybox
    securityContext: {procMount: Hidden, appArmorProfile: {type: Localhost}}
"#
            ),
            [
                "spec.securityContext.runAsUser: Invalid value: -1: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.supplementalGroups[1]: Invalid value: 2147483648: must be between 0 and 2147483647, inclusive",
                "spec.securityContext.sysctls[0].name: Invalid value: \"Net.Bad\": must have at most 253 characters and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
                "spec.securityContext.sysctls[2].name: Duplicate value: \"kernel.msgmax\"",
                "spec.initContainers[0].securityContext: Invalid value: core.SecurityContext{...}: cannot set `allowPrivilegeEscalation` to false and `privileged` to true",
                "spec.initContainers[0].securityContext: Invalid value: core.SecurityContext{...}: cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN",
                "spec.containers[0].securityContext.procMount: Unsupported value: \"Hidden\": supported values: \"Default\", \"Unmasked\"",
                "spec.containers[0].securityContext.appArmorProfile.localhostProfile: Required value: must be set when AppArmor type is Localhost",
            ]
        );
    }
}
