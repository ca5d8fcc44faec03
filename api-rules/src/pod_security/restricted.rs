//! The `restricted` standard: baseline plus hardening. Some checks replace
//! a baseline check of the same concern (listed by [`overridden_baseline_checks`]);
//! results follow every remaining baseline result, sorted by upstream's id.

use k8s_openapi::api::core::v1::{PodSpec, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::baseline::{self, Entry, confining_seccomp};
use super::{Check, Violation, fields, join_quote, pluralize, sorted_set};

/// Restricted checks, sorted by id, with the baseline check each replaces.
const CHECKS: &[(Entry, Option<&str>)] = &[
    (
        Entry {
            id: "allowPrivilegeEscalation",
            since: 8,
            check: allow_privilege_escalation,
        },
        None,
    ),
    (
        Entry {
            id: "capabilities_restricted",
            since: 22,
            check: capabilities,
        },
        Some("capabilities_baseline"),
    ),
    (
        Entry {
            id: "procMount_restricted",
            since: 35,
            check: proc_mount,
        },
        Some("procMount"),
    ),
    (
        Entry {
            id: "restrictedVolumes",
            since: 0,
            check: volume_types,
        },
        Some("hostPathVolumes"),
    ),
    (
        Entry {
            id: "runAsNonRoot",
            since: 0,
            check: run_as_non_root,
        },
        None,
    ),
    (
        Entry {
            id: "runAsUser",
            since: 23,
            check: run_as_user,
        },
        None,
    ),
    (
        Entry {
            id: "seccompProfile_restricted",
            since: 19,
            check: seccomp,
        },
        Some("seccompProfile_baseline"),
    ),
];

/// The restricted checks of 1.`minor`.
pub(crate) fn checks(minor: u32) -> Vec<Check> {
    CHECKS
        .iter()
        .filter(|(e, _)| e.since <= minor)
        .map(|(e, _)| e.check)
        .collect()
}

/// Baseline checks that 1.`minor`'s restricted checks replace.
pub(crate) fn overridden_baseline_checks(minor: u32) -> Vec<&'static str> {
    CHECKS
        .iter()
        .filter(|(e, _)| e.since <= minor)
        .filter_map(|(_, replaced)| *replaced)
        .collect()
}

fn allow_privilege_escalation(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    if super::windows_exempts(spec, minor) {
        return None;
    }
    let refused = fields::containers_not_setting(
        spec,
        |s| s.allow_privilege_escalation.as_ref(),
        |&escalates| !escalates,
    );
    refused.violation("allowPrivilegeEscalation != false", |r| {
        format!(
            "{} must set securityContext.allowPrivilegeEscalation=false",
            r.setters()
        )
    })
}

fn capabilities(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    if super::windows_exempts(spec, minor) {
        return None;
    }
    let missing_drop_all = fields::containers_not_setting(
        spec,
        |s| s.capabilities.as_ref(),
        |caps| caps.drop.iter().flatten().any(|d| d == "ALL"),
    );
    let mut details = Vec::new();
    if !missing_drop_all.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            missing_drop_all.setters()
        ));
    }
    details.extend(baseline::added_capabilities(spec, |c| {
        c == "NET_BIND_SERVICE"
    }));
    (!details.is_empty()).then(|| Violation::new("unrestricted capabilities", details.join("; ")))
}

fn proc_mount(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    baseline::proc_mount(spec)
}

/// The upstream name of a volume's source, for the kinds restricted refuses.
fn volume_type(v: &Volume) -> Option<&'static str> {
    let allowed = v.config_map.is_some()
        || v.csi.is_some()
        || v.downward_api.is_some()
        || v.empty_dir.is_some()
        || v.ephemeral.is_some()
        || v.image.is_some()
        || v.persistent_volume_claim.is_some()
        || v.projected.is_some()
        || v.secret.is_some();
    if allowed {
        return None;
    }
    let kinds = [
        (v.host_path.is_some(), "hostPath"),
        (v.gce_persistent_disk.is_some(), "gcePersistentDisk"),
        (v.aws_elastic_block_store.is_some(), "awsElasticBlockStore"),
        (v.git_repo.is_some(), "gitRepo"),
        (v.nfs.is_some(), "nfs"),
        (v.iscsi.is_some(), "iscsi"),
        (v.glusterfs.is_some(), "glusterfs"),
        (v.rbd.is_some(), "rbd"),
        (v.flex_volume.is_some(), "flexVolume"),
        (v.cinder.is_some(), "cinder"),
        (v.cephfs.is_some(), "cephfs"),
        (v.flocker.is_some(), "flocker"),
        (v.fc.is_some(), "fc"),
        (v.azure_file.is_some(), "azureFile"),
        (v.vsphere_volume.is_some(), "vsphereVolume"),
        (v.quobyte.is_some(), "quobyte"),
        (v.azure_disk.is_some(), "azureDisk"),
        (v.photon_persistent_disk.is_some(), "photonPersistentDisk"),
        (v.portworx_volume.is_some(), "portworxVolume"),
        (v.scale_io.is_some(), "scaleIO"),
        (v.storageos.is_some(), "storageos"),
    ];
    Some(
        kinds
            .iter()
            .find(|(set, _)| *set)
            .map_or("unknown", |(_, name)| *name),
    )
}

fn volume_types(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    let mut names = Vec::new();
    let mut types = Vec::new();
    for v in spec.volumes.iter().flatten() {
        if let Some(t) = volume_type(v) {
            names.push(v.name.clone());
            types.push(t.to_string());
        }
    }
    if names.is_empty() {
        return None;
    }
    let types = sorted_set(types);
    Some(Violation::new(
        "restricted volume types",
        format!(
            "{} {} {} {} {}",
            pluralize("volume", "volumes", names.len()),
            join_quote(&names),
            pluralize("uses", "use", names.len()),
            pluralize(
                "restricted volume type",
                "restricted volume types",
                types.len()
            ),
            join_quote(&types)
        ),
    ))
}

fn run_as_non_root(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    if super::user_namespace_exempts(spec, minor) {
        return None;
    }
    let refused = fields::refused(
        spec,
        |p| p.run_as_non_root.as_ref(),
        |s| s.run_as_non_root.as_ref(),
        |&non_root| !non_root,
    );
    if !refused.is_empty() {
        return refused.violation("runAsNonRoot != true", |r| {
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                r.setters()
            )
        });
    }
    // Nothing says false, so only a container left without true remains.
    let unset = fields::not_set_by_pod_or_container(
        spec,
        |p| p.run_as_non_root.as_ref(),
        |s| s.run_as_non_root.as_ref(),
        |&non_root| non_root,
    );
    unset.violation("runAsNonRoot != true", |r| {
        format!(
            "pod or {} must set securityContext.runAsNonRoot=true",
            r.setters()
        )
    })
}

fn run_as_user(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    if super::user_namespace_exempts(spec, minor) {
        return None;
    }
    let refused = fields::refused(
        spec,
        |p| p.run_as_user.as_ref(),
        |s| s.run_as_user.as_ref(),
        |&uid| uid == 0,
    );
    refused.violation("runAsUser=0", |r| {
        format!("{} must not set runAsUser=0", r.setters())
    })
}

fn seccomp(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    if super::windows_exempts(spec, minor) {
        return None;
    }
    if let Some(unconfined) = baseline::unconfined_seccomp(spec) {
        return Some(unconfined);
    }
    // Nothing is unconfined, so only a container left without a profile
    // remains.
    let unset = fields::not_set_by_pod_or_container(
        spec,
        |p| p.seccomp_profile.as_ref(),
        |s| s.seccomp_profile.as_ref(),
        |p| confining_seccomp(&p.type_),
    );
    unset.violation("seccompProfile", |r| {
        format!(
            "pod or {} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"",
            r.setters()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{expect_messages, run, with_contexts};
    use super::*;

    // As in baseline's tests: each container-walking check's message for
    // the pod alone, one container, several (init, regular, ephemeral) and
    // the pod with containers, pinned before the walk is shared.

    #[test]
    fn privilege_escalation_messages() {
        let on = "{allowPrivilegeEscalation: true}";
        let off = "{allowPrivilegeEscalation: false}";
        expect_messages(
            allow_privilege_escalation,
            &[
                (
                    "one container",
                    with_contexts("", &[("a", on), ("b", off)]),
                    35,
                    Some(
                        "allowPrivilegeEscalation != false (container \"a\" must set securityContext.allowPrivilegeEscalation=false)",
                    ),
                ),
                (
                    "one unset",
                    with_contexts("", &[("a", off), ("b", "")]),
                    35,
                    Some(
                        "allowPrivilegeEscalation != false (container \"b\" must set securityContext.allowPrivilegeEscalation=false)",
                    ),
                ),
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", ""),
                            ("a", on),
                            ("b", off),
                            ("c", "{privileged: false}"),
                            ("eph1", on),
                        ],
                    ),
                    35,
                    Some(
                        "allowPrivilegeEscalation != false (containers \"init1\", \"a\", \"c\", \"eph1\" must set securityContext.allowPrivilegeEscalation=false)",
                    ),
                ),
                (
                    "allowed",
                    with_contexts("", &[("init1", off), ("a", off), ("eph1", off)]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn capabilities_messages() {
        let drop_all = "{capabilities: {drop: [ALL]}}";
        expect_messages(
            capabilities,
            &[
                (
                    "one missing drop",
                    with_contexts(
                        "",
                        &[("a", "{capabilities: {drop: [NET_RAW]}}"), ("b", drop_all)],
                    ),
                    35,
                    Some(
                        "unrestricted capabilities (container \"a\" must set securityContext.capabilities.drop=[\"ALL\"])",
                    ),
                ),
                (
                    "one adding",
                    with_contexts(
                        "",
                        &[(
                            "a",
                            "{capabilities: {drop: [ALL], add: [SYS_ADMIN, NET_BIND_SERVICE]}}",
                        )],
                    ),
                    35,
                    Some(
                        "unrestricted capabilities (container \"a\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
                    ),
                ),
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", ""),
                            ("a", "{capabilities: {drop: [ALL], add: [NET_RAW]}}"),
                            ("b", "{capabilities: {add: [SYS_ADMIN, NET_RAW]}}"),
                            ("eph1", "{capabilities: {add: [BPF]}}"),
                        ],
                    ),
                    35,
                    Some(
                        "unrestricted capabilities (containers \"init1\", \"b\", \"eph1\" must set securityContext.capabilities.drop=[\"ALL\"]; containers \"a\", \"b\", \"eph1\" must not include \"BPF\", \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add)",
                    ),
                ),
                (
                    "allowed",
                    with_contexts(
                        "",
                        &[
                            (
                                "a",
                                "{capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}",
                            ),
                            ("eph1", drop_all),
                        ],
                    ),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn proc_mount_messages() {
        expect_messages(
            proc_mount,
            &[
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", "{procMount: Unmasked}"),
                            ("a", "{procMount: Default}"),
                            ("eph1", "{procMount: Unmasked}"),
                        ],
                    ),
                    35,
                    Some(
                        "procMount (containers \"init1\", \"eph1\" must not set securityContext.procMount to \"Unmasked\")",
                    ),
                ),
                (
                    "allowed",
                    with_contexts("", &[("a", "{procMount: Default}")]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn run_as_non_root_messages() {
        let yes = "{runAsNonRoot: true}";
        let no = "{runAsNonRoot: false}";
        expect_messages(
            run_as_non_root,
            &[
                (
                    "pod",
                    with_contexts(no, &[("a", yes)]),
                    35,
                    Some(
                        "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)",
                    ),
                ),
                (
                    "one container",
                    with_contexts(yes, &[("a", no), ("b", "")]),
                    35,
                    Some(
                        "runAsNonRoot != true (container \"a\" must not set securityContext.runAsNonRoot=false)",
                    ),
                ),
                (
                    "several containers",
                    with_contexts("", &[("init1", no), ("a", ""), ("eph1", no)]),
                    35,
                    Some(
                        "runAsNonRoot != true (containers \"init1\", \"eph1\" must not set securityContext.runAsNonRoot=false)",
                    ),
                ),
                (
                    "pod and containers",
                    with_contexts(no, &[("a", no), ("b", no), ("c", "")]),
                    35,
                    Some(
                        "runAsNonRoot != true (pod and containers \"a\", \"b\" must not set securityContext.runAsNonRoot=false)",
                    ),
                ),
                (
                    "one unset",
                    with_contexts("", &[("a", yes), ("b", "")]),
                    35,
                    Some(
                        "runAsNonRoot != true (pod or container \"b\" must set securityContext.runAsNonRoot=true)",
                    ),
                ),
                (
                    "several unset",
                    with_contexts("", &[("init1", ""), ("a", yes), ("eph1", "{runAsUser: 1}")]),
                    35,
                    Some(
                        "runAsNonRoot != true (pod or containers \"init1\", \"eph1\" must set securityContext.runAsNonRoot=true)",
                    ),
                ),
                (
                    "set on the pod",
                    with_contexts(yes, &[("init1", ""), ("a", ""), ("eph1", "")]),
                    35,
                    None,
                ),
                (
                    "set on every container",
                    with_contexts("", &[("init1", yes), ("a", yes), ("eph1", yes)]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn run_as_user_messages() {
        let root = "{runAsUser: 0}";
        expect_messages(
            run_as_user,
            &[
                (
                    "pod",
                    with_contexts(root, &[("a", "{runAsUser: 1}")]),
                    35,
                    Some("runAsUser=0 (pod must not set runAsUser=0)"),
                ),
                (
                    "one container",
                    with_contexts("{runAsUser: 1}", &[("a", root), ("b", "")]),
                    35,
                    Some("runAsUser=0 (container \"a\" must not set runAsUser=0)"),
                ),
                (
                    "several containers",
                    with_contexts("", &[("init1", root), ("a", ""), ("eph1", root)]),
                    35,
                    Some("runAsUser=0 (containers \"init1\", \"eph1\" must not set runAsUser=0)"),
                ),
                (
                    "pod and containers",
                    with_contexts(root, &[("a", root), ("b", root)]),
                    35,
                    Some("runAsUser=0 (pod and containers \"a\", \"b\" must not set runAsUser=0)"),
                ),
                (
                    "allowed",
                    with_contexts("{runAsUser: 1}", &[("a", "{runAsUser: 2}"), ("b", "")]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn seccomp_restricted_messages() {
        let unconfined = "{seccompProfile: {type: Unconfined}}";
        let default = "{seccompProfile: {type: RuntimeDefault}}";
        expect_messages(
            seccomp,
            &[
                (
                    "pod",
                    with_contexts(unconfined, &[("a", default)]),
                    35,
                    Some(
                        "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")",
                    ),
                ),
                (
                    "one container",
                    with_contexts(default, &[("a", unconfined), ("b", "")]),
                    35,
                    Some(
                        "seccompProfile (container \"a\" must not set securityContext.seccompProfile.type to \"Unconfined\")",
                    ),
                ),
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", unconfined),
                            ("a", ""),
                            ("eph1", "{seccompProfile: {type: Bogus}}"),
                        ],
                    ),
                    35,
                    Some(
                        "seccompProfile (containers \"init1\", \"eph1\" must not set securityContext.seccompProfile.type to \"Bogus\", \"Unconfined\")",
                    ),
                ),
                (
                    "pod and containers",
                    with_contexts(
                        unconfined,
                        &[("a", unconfined), ("b", unconfined), ("c", "")],
                    ),
                    35,
                    Some(
                        "seccompProfile (pod and containers \"a\", \"b\" must not set securityContext.seccompProfile.type to \"Unconfined\")",
                    ),
                ),
                (
                    "one unset",
                    with_contexts("", &[("a", default), ("b", "")]),
                    35,
                    Some(
                        "seccompProfile (pod or container \"b\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                    ),
                ),
                (
                    "several unset",
                    with_contexts(
                        "",
                        &[("init1", ""), ("a", default), ("eph1", "{runAsUser: 1}")],
                    ),
                    35,
                    Some(
                        "seccompProfile (pod or containers \"init1\", \"eph1\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")",
                    ),
                ),
                (
                    "set on the pod",
                    with_contexts(default, &[("init1", ""), ("a", ""), ("eph1", "")]),
                    35,
                    None,
                ),
                (
                    "set on every container",
                    with_contexts("", &[("init1", default), ("a", default), ("eph1", default)]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn overrides_by_version() {
        assert_eq!(
            overridden_baseline_checks(35),
            [
                "capabilities_baseline",
                "procMount",
                "hostPathVolumes",
                "seccompProfile_baseline"
            ]
        );
        assert_eq!(overridden_baseline_checks(18), ["hostPathVolumes"]);
        assert_eq!(checks(22).len(), 5);
        assert_eq!(checks(7).len(), 2);
    }

    #[test]
    fn privilege_escalation_must_be_false_except_on_windows() {
        let y = r#"
metadata: {name: x}
spec:
  containers:
  - {name: a, image: i}
  - {name: b, image: i, securityContext: {allowPrivilegeEscalation: true}}
  - {name: c, image: i, securityContext: {allowPrivilegeEscalation: false}}
"#;
        assert_eq!(
            run(allow_privilege_escalation, y, 35).as_deref(),
            Some(
                "allowPrivilegeEscalation != false (containers \"a\", \"b\" must set securityContext.allowPrivilegeEscalation=false)"
            )
        );
        let windows = y.replace("spec:\n", "spec:\n  os: {name: windows}\n");
        assert_eq!(run(allow_privilege_escalation, &windows, 35), None);
        assert!(run(allow_privilege_escalation, &windows, 24).is_some());
    }

    #[test]
    fn capabilities_drop_all_and_only_net_bind_service() {
        let y = r#"
metadata: {name: x}
spec:
  containers:
  - {name: a, image: i}
  - {name: b, image: i, securityContext: {capabilities: {drop: [ALL], add: [NET_BIND_SERVICE, NET_ADMIN]}}}
  - {name: c, image: i, securityContext: {capabilities: {drop: [ALL], add: [NET_BIND_SERVICE]}}}
"#;
        assert_eq!(
            run(capabilities, y, 35).as_deref(),
            Some(
                "unrestricted capabilities (container \"a\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"b\" must not include \"NET_ADMIN\" in securityContext.capabilities.add)"
            )
        );
    }

    #[test]
    fn volume_types_outside_the_allowed_list() {
        let y = r#"
metadata: {name: x}
spec:
  volumes:
  - {name: a, hostPath: {path: /}}
  - {name: b, nfs: {server: s, path: /}}
  - {name: c, configMap: {name: m}}
  - {name: d, persistentVolumeClaim: {claimName: p}}
  containers: [{name: c, image: i}]
"#;
        assert_eq!(
            run(volume_types, y, 35).as_deref(),
            Some(
                "restricted volume types (volumes \"a\", \"b\" use restricted volume types \"hostPath\", \"nfs\")"
            )
        );
    }

    #[test]
    fn run_as_non_root_and_run_as_user() {
        let y = r#"
metadata: {name: x}
spec:
  securityContext: {runAsNonRoot: true, runAsUser: 0}
  containers:
  - {name: a, image: i}
  - {name: b, image: i, securityContext: {runAsNonRoot: false, runAsUser: 0}}
"#;
        assert_eq!(
            run(run_as_non_root, y, 35).as_deref(),
            Some(
                "runAsNonRoot != true (container \"b\" must not set securityContext.runAsNonRoot=false)"
            )
        );
        assert_eq!(
            run(run_as_user, y, 35).as_deref(),
            Some("runAsUser=0 (pod and container \"b\" must not set runAsUser=0)")
        );
        let unset = "metadata: {name: x}\nspec: {containers: [{name: a, image: i}]}";
        assert_eq!(
            run(run_as_non_root, unset, 35).as_deref(),
            Some(
                "runAsNonRoot != true (pod or container \"a\" must set securityContext.runAsNonRoot=true)"
            )
        );
        let userns =
            "metadata: {name: x}\nspec: {hostUsers: false, containers: [{name: a, image: i}]}";
        assert_eq!(run(run_as_non_root, userns, 35), None);
    }

    #[test]
    fn seccomp_must_be_runtime_default_or_localhost() {
        let y = r#"
metadata: {name: x}
spec:
  containers:
  - {name: a, image: i}
  - {name: b, image: i, securityContext: {seccompProfile: {type: Localhost, localhostProfile: p.json}}}
"#;
        assert_eq!(
            run(seccomp, y, 35).as_deref(),
            Some(
                "seccompProfile (pod or container \"a\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
            )
        );
        let pod_level = y.replace(
            "spec:\n",
            "spec:\n  securityContext: {seccompProfile: {type: RuntimeDefault}}\n",
        );
        assert_eq!(run(seccomp, &pod_level, 35), None);
        let unconfined = y.replace(
            "spec:\n",
            "spec:\n  securityContext: {seccompProfile: {type: Unconfined}}\n",
        );
        assert_eq!(
            run(seccomp, &unconfined, 35).as_deref(),
            Some(
                "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
            )
        );
    }
}
