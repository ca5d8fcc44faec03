//! A container's effective securityContext: the pod's and the container's
//! merged as upstream's kubelet does (`DetermineEffectiveSecurityContext`),
//! turned into the runtime's [`SecurityConfig`].
//!
//! The container's value wins for the fields both levels have (`runAsUser`,
//! `runAsGroup`, `runAsNonRoot`, `seccompProfile`); capabilities,
//! `privileged`, `readOnlyRootFilesystem`, `allowPrivilegeEscalation` and
//! `procMount` exist on the container only; host namespaces, groups and
//! sysctls on the pod only.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, Pod, SeccompProfile as ApiSeccomp};

use crate::runtime::{SeccompProfile, SecurityConfig};

/// Where the node's `Localhost` seccomp profiles live, under the state dir
/// (upstream: `<root-dir>/seccomp`).
pub const SECCOMP_DIR: &str = "seccomp";

/// Why a container's securityContext cannot be honoured
/// (`CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityContextError {
    /// `type: Localhost` without the profile's path.
    #[error("localhostProfile must be set if seccompProfile type is Localhost.")]
    LocalhostWithoutProfile,
    /// A profile type this kubelet does not know.
    #[error("unsupported seccomp profile type {0:?}")]
    UnknownSeccompType(String),
    /// A `localhostProfile` that leaves the seccomp folder.
    #[error("localhostProfile {0:?} must be a path below the kubelet's seccomp folder")]
    LocalhostOutsideRoot(String),
}

/// The user and security settings of `container` in `pod`: `(uid, gid)` to
/// run as when the pod names one, and the rest. `seccomp_default` is the
/// kubelet's `--seccomp-default` (RuntimeDefault for pods that name no
/// profile); `state_dir` roots `Localhost` profiles.
pub fn effective(
    pod: &Pod,
    container: &Container,
    seccomp_default: bool,
    state_dir: &Path,
) -> Result<(Option<(u32, u32)>, SecurityConfig), SecurityContextError> {
    let spec = pod.spec.as_ref();
    let pod_sc = spec.and_then(|s| s.security_context.as_ref());
    let sc = container.security_context.as_ref();

    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_sc.and_then(|p| p.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_sc.and_then(|p| p.run_as_group));
    let run_as_non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_sc.and_then(|p| p.run_as_non_root))
        .unwrap_or(false);
    // The API keeps ids within 0..=2147483647.
    let user = run_as_user.map(|uid| (uid as u32, run_as_group.unwrap_or(0) as u32));

    let mut supplemental_groups: Vec<u32> = Vec::new();
    if let Some(fs_group) = pod_sc.and_then(|p| p.fs_group) {
        supplemental_groups.push(fs_group as u32);
    }
    for g in pod_sc
        .and_then(|p| p.supplemental_groups.as_ref())
        .into_iter()
        .flatten()
    {
        if !supplemental_groups.contains(&(*g as u32)) {
            supplemental_groups.push(*g as u32);
        }
    }

    let capabilities = sc.and_then(|s| s.capabilities.as_ref());
    let seccomp_api = sc
        .and_then(|s| s.seccomp_profile.as_ref())
        .or_else(|| pod_sc.and_then(|p| p.seccomp_profile.as_ref()));
    let seccomp = match seccomp_api {
        Some(profile) => seccomp_profile(profile, state_dir)?,
        None if seccomp_default => SeccompProfile::RuntimeDefault,
        None => SeccompProfile::Unconfined,
    };

    let security = SecurityConfig {
        run_as_group: run_as_group
            .filter(|_| run_as_user.is_none())
            .map(|g| g as u32),
        privileged: sc.and_then(|s| s.privileged).unwrap_or(false),
        add_capabilities: capabilities.and_then(|c| c.add.clone()).unwrap_or_default(),
        drop_capabilities: capabilities
            .and_then(|c| c.drop.clone())
            .unwrap_or_default(),
        run_as_non_root,
        supplemental_groups,
        read_only_root_filesystem: sc
            .and_then(|s| s.read_only_root_filesystem)
            .unwrap_or(false),
        // Upstream's AddNoNewPrivileges: only an explicit
        // `allowPrivilegeEscalation: false` sets no_new_privs.
        no_new_privileges: sc.and_then(|s| s.allow_privilege_escalation) == Some(false),
        host_pid: spec.and_then(|s| s.host_pid).unwrap_or(false),
        host_ipc: spec.and_then(|s| s.host_ipc).unwrap_or(false),
        seccomp,
        unmasked_proc: sc.and_then(|s| s.proc_mount.as_deref()) == Some("Unmasked"),
        sysctls: pod_sc
            .and_then(|p| p.sysctls.as_ref())
            .into_iter()
            .flatten()
            .map(|s| (s.name.clone(), s.value.clone()))
            .collect(),
    };
    Ok((user, security))
}

fn seccomp_profile(
    profile: &ApiSeccomp,
    state_dir: &Path,
) -> Result<SeccompProfile, SecurityContextError> {
    match profile.type_.as_str() {
        "Unconfined" => Ok(SeccompProfile::Unconfined),
        "RuntimeDefault" => Ok(SeccompProfile::RuntimeDefault),
        "Localhost" => {
            let Some(name) = profile
                .localhost_profile
                .as_deref()
                .filter(|p| !p.is_empty())
            else {
                return Err(SecurityContextError::LocalhostWithoutProfile);
            };
            let relative = Path::new(name);
            if relative.is_absolute()
                || relative
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                return Err(SecurityContextError::LocalhostOutsideRoot(name.to_string()));
            }
            Ok(SeccompProfile::Localhost(
                state_dir.join(SECCOMP_DIR).join(relative),
            ))
        }
        other => Err(SecurityContextError::UnknownSeccompType(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).expect("yaml")
    }

    fn eval(p: &Pod, seccomp_default: bool) -> (Option<(u32, u32)>, SecurityConfig) {
        let c = &p.spec.as_ref().expect("spec").containers[0];
        effective(p, c, seccomp_default, Path::new("/var/lib/skiff")).expect("effective")
    }

    #[test]
    fn nothing_set_is_upstream_s_default() {
        let p = pod("metadata: {name: p}\nspec: {containers: [{name: c, image: busybox}]}");
        let (user, s) = eval(&p, false);
        assert_eq!(user, None);
        assert_eq!(s, SecurityConfig::default());
        assert!(
            !s.no_new_privileges,
            "allowPrivilegeEscalation defaults to true"
        );
        assert_eq!(eval(&p, true).1.seccomp, SeccompProfile::RuntimeDefault);
    }

    #[test]
    fn container_values_win_over_the_pod_s() {
        let p = pod(r#"
metadata: {name: p}
spec:
  hostPID: true
  hostIPC: true
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    runAsNonRoot: true
    fsGroup: 2000
    supplementalGroups: [4000, 2000]
    seccompProfile: {type: RuntimeDefault}
    sysctls: [{name: net.ipv4.ping_group_range, value: "0 1000"}]
  containers:
  - name: c
    image: busybox
    securityContext:
      runAsUser: 1001
      seccompProfile: {type: Unconfined}
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      privileged: false
      procMount: Unmasked
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
"#);
        let (user, s) = eval(&p, false);
        assert_eq!(user, Some((1001, 3000)));
        assert!(s.run_as_non_root);
        assert_eq!(s.supplemental_groups, [2000, 4000]);
        assert_eq!(s.seccomp, SeccompProfile::Unconfined);
        assert!(s.no_new_privileges && s.read_only_root_filesystem && s.unmasked_proc);
        assert!(s.host_pid && s.host_ipc && !s.privileged);
        assert_eq!(s.add_capabilities, ["NET_ADMIN"]);
        assert_eq!(s.drop_capabilities, ["ALL"]);
        assert_eq!(
            s.sysctls
                .get("net.ipv4.ping_group_range")
                .map(String::as_str),
            Some("0 1000")
        );
    }

    #[test]
    fn localhost_profiles_resolve_under_the_seccomp_folder() {
        let p = pod(r#"
metadata: {name: p}
spec:
  securityContext: {seccompProfile: {type: Localhost, localhostProfile: profiles/audit.json}}
  containers: [{name: c, image: busybox}]
"#);
        assert_eq!(
            eval(&p, false).1.seccomp,
            SeccompProfile::Localhost("/var/lib/skiff/seccomp/profiles/audit.json".into())
        );
        for (profile, err) in [
            (
                "{type: Localhost}",
                "localhostProfile must be set if seccompProfile type is Localhost.",
            ),
            (
                "{type: Localhost, localhostProfile: ../../etc/x.json}",
                "localhostProfile \"../../etc/x.json\" must be a path below the kubelet's seccomp folder",
            ),
        ] {
            let p = pod(&format!(
                "metadata: {{name: p}}\nspec: {{securityContext: {{seccompProfile: {profile}}}, containers: [{{name: c, image: busybox}}]}}"
            ));
            let c = &p.spec.as_ref().expect("spec").containers[0];
            let e = effective(&p, c, false, Path::new("/s")).expect_err("refused");
            assert_eq!(e.to_string(), err);
        }
    }
}
