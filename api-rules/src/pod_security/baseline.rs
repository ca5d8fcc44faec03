//! The `baseline` standard: no known privilege escalation. One function
//! per upstream check, listed in [`CHECKS`] by upstream's check id (the
//! order results are reported in), each with the version it starts at.

use k8s_openapi::api::core::v1::{
    HTTPGetAction, LifecycleHandler, PodSpec, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Check, Violation, containers_phrase, fields, join_quote, pluralize, sorted_set};

/// A check, the id upstream knows it by, and the first version it applies to.
pub(crate) struct Entry {
    pub(crate) id: &'static str,
    pub(crate) since: u32,
    pub(crate) check: Check,
}

/// Baseline checks, sorted by id.
pub(crate) const CHECKS: &[Entry] = &[
    Entry {
        id: "appArmorProfile",
        since: 0,
        check: app_armor_profile,
    },
    Entry {
        id: "capabilities_baseline",
        since: 0,
        check: capabilities,
    },
    Entry {
        id: "hostNamespaces",
        since: 0,
        check: host_namespaces,
    },
    Entry {
        id: "hostPathVolumes",
        since: 0,
        check: host_path_volumes,
    },
    Entry {
        id: "hostPorts",
        since: 0,
        check: host_ports,
    },
    Entry {
        id: "hostProbesAndHostLifecycle",
        since: 34,
        check: probe_hosts,
    },
    Entry {
        id: "privileged",
        since: 0,
        check: privileged,
    },
    Entry {
        id: "procMount",
        since: 0,
        check: proc_mount_baseline,
    },
    Entry {
        id: "seLinuxOptions",
        since: 0,
        check: se_linux_options,
    },
    Entry {
        id: "seccompProfile_baseline",
        since: 0,
        check: seccomp_baseline,
    },
    Entry {
        id: "sysctls",
        since: 0,
        check: sysctls,
    },
    Entry {
        id: "windowsHostProcess",
        since: 0,
        check: windows_host_process,
    },
];

/// The baseline checks of version 1.`minor`.
pub(crate) fn checks(minor: u32) -> Vec<Check> {
    checks_except(minor, &[])
}

/// The baseline checks of 1.`minor` but those with an id in `overridden`
/// (restricted replaces them with stricter ones).
pub(crate) fn checks_except(minor: u32, overridden: &[&str]) -> Vec<Check> {
    CHECKS
        .iter()
        .filter(|e| e.since <= minor && !overridden.contains(&e.id))
        .map(|e| e.check)
        .collect()
}

/// The capabilities containerd and Docker grant by default, less NET_RAW:
/// adding any other is a privilege beyond baseline.
pub const ALLOWED_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

const APPARMOR_ANNOTATION_PREFIX: &str = "container.apparmor.security.beta.kubernetes.io/";

fn app_armor_profile(meta: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    let refused = fields::refused_values(
        spec,
        |p| p.app_armor_profile.as_ref(),
        |s| s.app_armor_profile.as_ref(),
        |p| (!matches!(p.type_.as_str(), "RuntimeDefault" | "Localhost")).then(|| p.type_.clone()),
    );
    // The fields and the older annotations are reported together, the
    // annotations last.
    let mut who = Vec::new();
    if !refused.is_empty() {
        who.push(refused.setters());
    }
    let mut values = refused.values;
    let mut annotations: Vec<String> = meta
        .annotations
        .iter()
        .flatten()
        .filter(|(k, v)| {
            k.starts_with(APPARMOR_ANNOTATION_PREFIX)
                && !(v.is_empty() || *v == "runtime/default" || v.starts_with("localhost/"))
        })
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    if !annotations.is_empty() {
        annotations.sort();
        who.push(pluralize("annotation", "annotations", annotations.len()).to_string());
        values.extend(annotations);
    }
    if who.is_empty() {
        return None;
    }
    Some(Violation::new(
        pluralize(
            "forbidden AppArmor profile",
            "forbidden AppArmor profiles",
            values.len(),
        ),
        format!(
            "{} must not set AppArmor profile type to {}",
            who.join(" and "),
            join_quote(&values)
        ),
    ))
}

fn capabilities(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    added_capabilities(spec, |c| ALLOWED_CAPABILITIES.contains(&c))
        .map(|detail| Violation::new("non-default capabilities", detail))
}

/// Who adds a capability `allowed` says no to, worded as both levels word
/// it (restricted allows only NET_BIND_SERVICE).
pub(crate) fn added_capabilities(spec: &PodSpec, allowed: impl Fn(&str) -> bool) -> Option<String> {
    let refused = fields::refused_values(
        spec,
        fields::container_only,
        |s| s.capabilities.as_ref()?.add.as_ref(),
        |added| {
            added
                .iter()
                .filter(|a| !allowed(a))
                .cloned()
                .collect::<Vec<_>>()
        },
    );
    (!refused.is_empty()).then(|| {
        format!(
            "{} must not include {} in securityContext.capabilities.add",
            refused.setters(),
            join_quote(&refused.values)
        )
    })
}

fn host_namespaces(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    let shared: Vec<&str> = [
        (spec.host_network, "hostNetwork=true"),
        (spec.host_pid, "hostPID=true"),
        (spec.host_ipc, "hostIPC=true"),
    ]
    .iter()
    .filter(|(on, _)| *on == Some(true))
    .map(|(_, text)| *text)
    .collect();
    (!shared.is_empty()).then(|| Violation::new("host namespaces", shared.join(", ")))
}

fn host_path_volumes(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    let names: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter(|v| v.host_path.is_some())
        .map(|v| v.name.clone())
        .collect();
    (!names.is_empty()).then(|| {
        Violation::new(
            "hostPath volumes",
            format!(
                "{} {}",
                pluralize("volume", "volumes", names.len()),
                join_quote(&names)
            ),
        )
    })
}

fn host_ports(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    let refused = fields::refused_in_containers(spec, |c| {
        c.ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port.filter(|h| *h != 0))
            .map(|h| h.to_string())
            .collect()
    });
    // Upstream sorts the ports as strings, and does not quote them.
    refused.violation("hostPort", |r| {
        format!(
            "{} {} {} {}",
            r.setters(),
            pluralize("uses", "use", r.containers.len()),
            pluralize("hostPort", "hostPorts", r.values.len()),
            r.values.join(", ")
        )
    })
}

fn probe_hosts(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    fn hosts(http: Option<&HTTPGetAction>, tcp: Option<&TCPSocketAction>) -> Vec<String> {
        let http = http.and_then(|h| h.host.clone());
        let tcp = tcp.and_then(|t| t.host.clone());
        [http, tcp]
            .into_iter()
            .flatten()
            .filter(|h| !h.is_empty())
            .collect()
    }
    let of_probe = |p: &Option<Probe>| {
        p.as_ref()
            .map(|p| hosts(p.http_get.as_ref(), p.tcp_socket.as_ref()))
            .unwrap_or_default()
    };
    let of_handler = |h: Option<&LifecycleHandler>| {
        h.map(|h| hosts(h.http_get.as_ref(), h.tcp_socket.as_ref()))
            .unwrap_or_default()
    };
    let refused = fields::refused_in_containers(spec, |c| {
        let lifecycle = c.lifecycle.as_ref();
        [
            of_probe(&c.liveness_probe),
            of_probe(&c.readiness_probe),
            of_probe(&c.startup_probe),
            of_handler(lifecycle.and_then(|l| l.post_start.as_ref())),
            of_handler(lifecycle.and_then(|l| l.pre_stop.as_ref())),
        ]
        .concat()
    });
    refused.violation("probe or lifecycle host", |r| {
        // Upstream collects these containers in a set, so names them sorted.
        let names = sorted_set(r.containers.clone());
        format!(
            "{} {} {} {}",
            containers_phrase(&names),
            pluralize("uses", "use", names.len()),
            pluralize(
                "probe or lifecycle host",
                "probe or lifecycle hosts",
                r.values.len()
            ),
            join_quote(&r.values)
        )
    })
}

fn privileged(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    let refused = fields::refused(
        spec,
        fields::container_only,
        |s| s.privileged.as_ref(),
        |&on| on,
    );
    refused.violation("privileged", |r| {
        format!(
            "{} must not set securityContext.privileged=true",
            r.setters()
        )
    })
}

/// Any `procMount` but `Default` (restricted uses the same rule from 1.35,
/// without the user-namespace exception).
pub(crate) fn proc_mount(spec: &PodSpec) -> Option<Violation> {
    let refused = fields::refused_values(
        spec,
        fields::container_only,
        |s| s.proc_mount.as_ref(),
        |t| (t != "Default").then(|| t.clone()),
    );
    refused.violation("procMount", |r| {
        format!(
            "{} must not set securityContext.procMount to {}",
            r.setters(),
            join_quote(&r.values)
        )
    })
}

fn proc_mount_baseline(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    if super::user_namespace_exempts(spec, minor) {
        return None;
    }
    proc_mount(spec)
}

fn se_linux_options(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    let mut allowed = vec!["", "container_t", "container_init_t", "container_kvm_t"];
    if minor >= 31 {
        allowed.push("container_engine_t");
    }
    // One value can break three rules; the message names each broken rule
    // once across the pod and its containers, so they are gathered here
    // rather than as refused values.
    let mut bad_types = Vec::new();
    let (mut set_user, mut set_role) = (false, false);
    let refused = fields::refused(
        spec,
        |p| p.se_linux_options.as_ref(),
        |s| s.se_linux_options.as_ref(),
        |o| {
            let t = o.type_.clone().unwrap_or_default();
            let mut ok = true;
            if !allowed.contains(&t.as_str()) {
                bad_types.push(t);
                ok = false;
            }
            if o.user.as_deref().is_some_and(|u| !u.is_empty()) {
                set_user = true;
                ok = false;
            }
            if o.role.as_deref().is_some_and(|r| !r.is_empty()) {
                set_role = true;
                ok = false;
            }
            !ok
        },
    );
    refused.violation("seLinuxOptions", |r| {
        let mut data = Vec::new();
        let bad_types = sorted_set(bad_types);
        if !bad_types.is_empty() {
            data.push(format!(
                "{} {}",
                pluralize("type", "types", bad_types.len()),
                join_quote(&bad_types)
            ));
        }
        if set_user {
            data.push("user may not be set".to_string());
        }
        if set_role {
            data.push("role may not be set".to_string());
        }
        format!(
            "{} set forbidden securityContext.seLinuxOptions: {}",
            r.setters(),
            data.join("; ")
        )
    })
}

/// Whether a seccomp profile type confines the container.
pub(crate) fn confining_seccomp(t: &str) -> bool {
    matches!(t, "RuntimeDefault" | "Localhost")
}

const SECCOMP_POD_ANNOTATION: &str = "seccomp.security.alpha.kubernetes.io/pod";
const SECCOMP_CONTAINER_ANNOTATION_PREFIX: &str = "container.seccomp.security.alpha.kubernetes.io/";

fn seccomp_baseline(meta: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    if minor < 19 {
        // Before the field existed: the alpha annotations.
        let valid = |v: &str| {
            v == "runtime/default" || v == "docker/default" || v.starts_with("localhost/")
        };
        let annotations = meta.annotations.clone().unwrap_or_default();
        let mut forbidden = Vec::new();
        if let Some(v) = annotations
            .get(SECCOMP_POD_ANNOTATION)
            .filter(|v| !valid(v))
        {
            forbidden.push(format!("{SECCOMP_POD_ANNOTATION}={v:?}"));
        }
        for c in fields::containers(spec) {
            let key = format!("{SECCOMP_CONTAINER_ANNOTATION_PREFIX}{}", c.name);
            if let Some(v) = annotations.get(&key).filter(|v| !valid(v)) {
                forbidden.push(format!("{key}={v:?}"));
            }
        }
        let forbidden = sorted_set(forbidden);
        return (!forbidden.is_empty()).then(|| {
            Violation::new(
                "seccompProfile",
                format!(
                    "forbidden {} {}",
                    pluralize("annotation", "annotations", forbidden.len()),
                    forbidden.join(", ")
                ),
            )
        });
    }
    unconfined_seccomp(spec)
}

/// A seccomp profile set to anything but a confining type (restricted
/// refuses the same, then also requires a profile).
pub(crate) fn unconfined_seccomp(spec: &PodSpec) -> Option<Violation> {
    let refused = fields::refused_values(
        spec,
        |p| p.seccomp_profile.as_ref(),
        |s| s.seccomp_profile.as_ref(),
        |p| (!confining_seccomp(&p.type_)).then(|| p.type_.clone()),
    );
    refused.violation("seccompProfile", |r| {
        format!(
            "{} must not set securityContext.seccompProfile.type to {}",
            r.setters(),
            join_quote(&r.values)
        )
    })
}

/// Sysctls that only affect the pod's own namespaces, by the version that
/// allowed them.
const SAFE_SYSCTLS: &[(u32, &str)] = &[
    (0, "kernel.shm_rmid_forced"),
    (0, "net.ipv4.ip_local_port_range"),
    (0, "net.ipv4.tcp_syncookies"),
    (0, "net.ipv4.ping_group_range"),
    (0, "net.ipv4.ip_unprivileged_port_start"),
    (27, "net.ipv4.ip_local_reserved_ports"),
    (29, "net.ipv4.tcp_keepalive_time"),
    (29, "net.ipv4.tcp_fin_timeout"),
    (29, "net.ipv4.tcp_keepalive_intvl"),
    (29, "net.ipv4.tcp_keepalive_probes"),
    (32, "net.ipv4.tcp_rmem"),
    (32, "net.ipv4.tcp_wmem"),
];

fn sysctls(_: &ObjectMeta, spec: &PodSpec, minor: u32) -> Option<Violation> {
    let forbidden: Vec<String> = spec
        .security_context
        .as_ref()
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .filter(|s| {
            !SAFE_SYSCTLS
                .iter()
                .any(|(since, name)| *since <= minor && *name == s.name)
        })
        .map(|s| s.name.clone())
        .collect();
    (!forbidden.is_empty()).then(|| Violation::new("forbidden sysctls", forbidden.join(", ")))
}

fn windows_host_process(_: &ObjectMeta, spec: &PodSpec, _: u32) -> Option<Violation> {
    let refused = fields::refused(
        spec,
        |p| p.windows_options.as_ref(),
        |s| s.windows_options.as_ref(),
        |w| w.host_process == Some(true),
    );
    refused.violation("hostProcess", |r| {
        format!(
            "{} must not set securityContext.windowsOptions.hostProcess=true",
            r.setters()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{expect_messages, run, with_contexts};
    use super::*;

    // The tables below pin each container-walking check's message for the
    // pod alone, one container, several (init, regular and ephemeral, in
    // upstream's visiting order) and the pod with containers, so the
    // wording cannot drift when the walk changes.

    #[test]
    fn app_armor_messages() {
        let unconfined = "{appArmorProfile: {type: Unconfined}}";
        expect_messages(
            app_armor_profile,
            &[
                (
                    "pod",
                    with_contexts(unconfined, &[("a", "")]),
                    35,
                    Some(
                        "forbidden AppArmor profile (pod must not set AppArmor profile type to \"Unconfined\")",
                    ),
                ),
                (
                    "one container",
                    with_contexts(
                        "",
                        &[
                            ("a", unconfined),
                            ("b", "{appArmorProfile: {type: RuntimeDefault}}"),
                        ],
                    ),
                    35,
                    Some(
                        "forbidden AppArmor profile (container \"a\" must not set AppArmor profile type to \"Unconfined\")",
                    ),
                ),
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", unconfined),
                            ("a", unconfined),
                            ("eph1", "{appArmorProfile: {type: Bogus}}"),
                        ],
                    ),
                    35,
                    Some(
                        "forbidden AppArmor profiles (containers \"init1\", \"a\", \"eph1\" must not set AppArmor profile type to \"Bogus\", \"Unconfined\")",
                    ),
                ),
                (
                    "pod and containers",
                    with_contexts(
                        "{appArmorProfile: {type: Bogus}}",
                        &[("a", unconfined), ("b", unconfined)],
                    ),
                    35,
                    Some(
                        "forbidden AppArmor profiles (pod and containers \"a\", \"b\" must not set AppArmor profile type to \"Bogus\", \"Unconfined\")",
                    ),
                ),
                (
                    "allowed",
                    with_contexts(
                        "{appArmorProfile: {type: RuntimeDefault}}",
                        &[(
                            "a",
                            "{appArmorProfile: {type: Localhost, localhostProfile: p}}",
                        )],
                    ),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn capabilities_messages() {
        expect_messages(
            capabilities,
            &[
                (
                    "one container",
                    with_contexts(
                        "",
                        &[
                            ("a", "{capabilities: {add: [SYS_ADMIN, CHOWN]}}"),
                            ("b", ""),
                        ],
                    ),
                    35,
                    Some(
                        "non-default capabilities (container \"a\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
                    ),
                ),
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", "{capabilities: {add: [NET_RAW]}}"),
                            ("a", "{capabilities: {add: [SYS_ADMIN, NET_RAW]}}"),
                            ("b", "{capabilities: {add: [KILL]}}"),
                            ("eph1", "{capabilities: {add: [BPF]}}"),
                        ],
                    ),
                    35,
                    Some(
                        "non-default capabilities (containers \"init1\", \"a\", \"eph1\" must not include \"BPF\", \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add)",
                    ),
                ),
                (
                    "allowed",
                    with_contexts("", &[("a", "{capabilities: {add: [CHOWN], drop: [ALL]}}")]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn host_port_messages() {
        let ports = |spec: &str| format!("metadata: {{name: x}}\nspec:\n{spec}");
        expect_messages(
            host_ports,
            &[
                (
                    "one container",
                    ports(
                        "  containers:\n  - {name: a, image: i, ports: [{containerPort: 80, hostPort: 80}]}\n  - {name: b, image: i, ports: [{containerPort: 80, hostPort: 0}]}\n",
                    ),
                    35,
                    Some("hostPort (container \"a\" uses hostPort 80)"),
                ),
                (
                    "several containers",
                    ports(
                        "  initContainers: [{name: init1, image: i, ports: [{containerPort: 1, hostPort: 9000}]}]\n  containers:\n  - {name: a, image: i, ports: [{containerPort: 80, hostPort: 80}, {containerPort: 81, hostPort: 9000}]}\n  ephemeralContainers: [{name: eph1, image: i, ports: [{containerPort: 2, hostPort: 443}]}]\n",
                    ),
                    35,
                    Some(
                        "hostPort (containers \"init1\", \"a\", \"eph1\" use hostPorts 443, 80, 9000)",
                    ),
                ),
                (
                    "allowed",
                    ports("  containers: [{name: a, image: i, ports: [{containerPort: 80}]}]\n"),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn probe_host_messages() {
        let spec = |spec: &str| format!("metadata: {{name: x}}\nspec:\n{spec}");
        expect_messages(
            probe_hosts,
            &[
                (
                    "one container",
                    spec(
                        "  containers:\n  - {name: a, image: i, readinessProbe: {tcpSocket: {host: h, port: 1}}}\n  - {name: b, image: i, livenessProbe: {httpGet: {host: '', port: 1}}}\n",
                    ),
                    35,
                    Some(
                        "probe or lifecycle host (container \"a\" uses probe or lifecycle host \"h\")",
                    ),
                ),
                (
                    "several containers",
                    spec(
                        "  initContainers: [{name: init1, image: i, startupProbe: {httpGet: {host: h2, port: 1}}}]\n  containers:\n  - {name: z, image: i, lifecycle: {postStart: {httpGet: {host: h1, port: 1}}}}\n  - {name: a, image: i, livenessProbe: {httpGet: {host: h1, port: 1}}}\n  ephemeralContainers: [{name: eph1, image: i, lifecycle: {preStop: {tcpSocket: {host: h3, port: 1}}}}]\n",
                    ),
                    35,
                    Some(
                        "probe or lifecycle host (containers \"a\", \"eph1\", \"init1\", \"z\" use probe or lifecycle hosts \"h1\", \"h2\", \"h3\")",
                    ),
                ),
            ],
        );
    }

    #[test]
    fn privileged_messages() {
        let on = "{privileged: true}";
        expect_messages(
            privileged,
            &[
                (
                    "one container",
                    with_contexts("", &[("a", on), ("b", "{privileged: false}")]),
                    35,
                    Some(
                        "privileged (container \"a\" must not set securityContext.privileged=true)",
                    ),
                ),
                (
                    "several containers",
                    with_contexts("", &[("init1", on), ("a", ""), ("b", on), ("eph1", on)]),
                    35,
                    Some(
                        "privileged (containers \"init1\", \"b\", \"eph1\" must not set securityContext.privileged=true)",
                    ),
                ),
                (
                    "allowed",
                    with_contexts("", &[("a", "{privileged: false}")]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn proc_mount_messages() {
        let unmasked = "{procMount: Unmasked}";
        expect_messages(
            proc_mount_baseline,
            &[
                (
                    "one container",
                    with_contexts("", &[("a", unmasked), ("b", "{procMount: Default}")]),
                    35,
                    Some(
                        "procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\")",
                    ),
                ),
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", "{procMount: Other}"),
                            ("a", unmasked),
                            ("eph1", unmasked),
                        ],
                    ),
                    35,
                    Some(
                        "procMount (containers \"init1\", \"a\", \"eph1\" must not set securityContext.procMount to \"Other\", \"Unmasked\")",
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
    fn se_linux_messages() {
        expect_messages(
            se_linux_options,
            &[
                (
                    "pod",
                    with_contexts("{seLinuxOptions: {role: r}}", &[("a", "")]),
                    35,
                    Some(
                        "seLinuxOptions (pod set forbidden securityContext.seLinuxOptions: role may not be set)",
                    ),
                ),
                (
                    "one container",
                    with_contexts(
                        "",
                        &[
                            ("a", "{seLinuxOptions: {type: spc_t}}"),
                            ("b", "{seLinuxOptions: {type: container_t}}"),
                        ],
                    ),
                    35,
                    Some(
                        "seLinuxOptions (container \"a\" set forbidden securityContext.seLinuxOptions: type \"spc_t\")",
                    ),
                ),
                (
                    "several containers",
                    with_contexts(
                        "",
                        &[
                            ("init1", "{seLinuxOptions: {user: u}}"),
                            ("a", "{seLinuxOptions: {type: spc_t}}"),
                            ("eph1", "{seLinuxOptions: {type: unconfined_t}}"),
                        ],
                    ),
                    35,
                    Some(
                        "seLinuxOptions (containers \"init1\", \"a\", \"eph1\" set forbidden securityContext.seLinuxOptions: types \"spc_t\", \"unconfined_t\"; user may not be set)",
                    ),
                ),
                (
                    "pod and containers",
                    with_contexts(
                        "{seLinuxOptions: {type: spc_t}}",
                        &[
                            ("a", "{seLinuxOptions: {type: spc_t}}"),
                            ("b", "{seLinuxOptions: {type: other_t}}"),
                        ],
                    ),
                    35,
                    Some(
                        "seLinuxOptions (pod and containers \"a\", \"b\" set forbidden securityContext.seLinuxOptions: types \"other_t\", \"spc_t\")",
                    ),
                ),
                (
                    "allowed",
                    with_contexts(
                        "{seLinuxOptions: {level: s0}}",
                        &[("a", "{seLinuxOptions: {type: container_init_t}}")],
                    ),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn seccomp_baseline_messages() {
        let unconfined = "{seccompProfile: {type: Unconfined}}";
        expect_messages(
            seccomp_baseline,
            &[
                (
                    "pod",
                    with_contexts(unconfined, &[("a", "")]),
                    35,
                    Some(
                        "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")",
                    ),
                ),
                (
                    "one container",
                    with_contexts(
                        "",
                        &[
                            ("a", unconfined),
                            ("b", "{seccompProfile: {type: RuntimeDefault}}"),
                        ],
                    ),
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
                    with_contexts(unconfined, &[("a", unconfined), ("b", unconfined)]),
                    35,
                    Some(
                        "seccompProfile (pod and containers \"a\", \"b\" must not set securityContext.seccompProfile.type to \"Unconfined\")",
                    ),
                ),
                (
                    "allowed",
                    with_contexts("{seccompProfile: {type: RuntimeDefault}}", &[("a", "")]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn host_process_messages() {
        let on = "{windowsOptions: {hostProcess: true}}";
        expect_messages(
            windows_host_process,
            &[
                (
                    "pod",
                    with_contexts(on, &[("a", "")]),
                    35,
                    Some(
                        "hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)",
                    ),
                ),
                (
                    "one container",
                    with_contexts("", &[("a", on), ("b", "")]),
                    35,
                    Some(
                        "hostProcess (container \"a\" must not set securityContext.windowsOptions.hostProcess=true)",
                    ),
                ),
                (
                    "several containers",
                    with_contexts("", &[("init1", on), ("a", on), ("eph1", on)]),
                    35,
                    Some(
                        "hostProcess (containers \"init1\", \"a\", \"eph1\" must not set securityContext.windowsOptions.hostProcess=true)",
                    ),
                ),
                (
                    "pod and containers",
                    with_contexts(on, &[("a", on), ("b", on)]),
                    35,
                    Some(
                        "hostProcess (pod and containers \"a\", \"b\" must not set securityContext.windowsOptions.hostProcess=true)",
                    ),
                ),
                (
                    "allowed",
                    with_contexts("{windowsOptions: {hostProcess: false}}", &[("a", "")]),
                    35,
                    None,
                ),
            ],
        );
    }

    #[test]
    fn checks_are_sorted_by_id_as_upstream_orders_them() {
        let ids: Vec<&str> = CHECKS.iter().map(|e| e.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
        assert_eq!(checks(33).len(), 11, "probe hosts start at 1.34");
        assert_eq!(checks(35).len(), 12);
    }

    #[test]
    fn app_armor() {
        let y = r#"
metadata:
  name: x
  annotations: {container.apparmor.security.beta.kubernetes.io/c: unconfined}
spec:
  securityContext: {appArmorProfile: {type: Unconfined}}
  containers:
  - {name: c, image: i, securityContext: {appArmorProfile: {type: Unconfined}}}
  - {name: d, image: i, securityContext: {appArmorProfile: {type: Localhost, localhostProfile: p}}}
"#;
        assert_eq!(
            run(app_armor_profile, y, 35).as_deref(),
            Some(
                // Upstream quotes the annotation as it is, inner quotes and all.
                "forbidden AppArmor profiles (pod and container \"c\" and annotation must not set AppArmor profile type to \"Unconfined\", \"container.apparmor.security.beta.kubernetes.io/c=\"unconfined\"\")"
            )
        );
    }

    #[test]
    fn capabilities_beyond_the_default_set() {
        let y = r#"
metadata: {name: x}
spec:
  containers:
  - {name: a, image: i, securityContext: {capabilities: {add: [NET_RAW, CHOWN]}}}
  - {name: b, image: i, securityContext: {capabilities: {add: [SYS_ADMIN]}}}
  - {name: c, image: i, securityContext: {capabilities: {add: [KILL]}}}
"#;
        assert_eq!(
            run(capabilities, y, 35).as_deref(),
            Some(
                "non-default capabilities (containers \"a\", \"b\" must not include \"NET_RAW\", \"SYS_ADMIN\" in securityContext.capabilities.add)"
            )
        );
    }

    #[test]
    fn host_namespaces_paths_and_ports() {
        let y = r#"
metadata: {name: x}
spec:
  hostNetwork: true
  hostIPC: true
  volumes: [{name: root, hostPath: {path: /}}, {name: logs, hostPath: {path: /var/log}}, {name: e, emptyDir: {}}]
  containers:
  - {name: a, image: i, ports: [{containerPort: 80, hostPort: 8080}, {containerPort: 81, hostPort: 10}]}
  - {name: b, image: i, ports: [{containerPort: 80}]}
"#;
        assert_eq!(
            run(host_namespaces, y, 35).as_deref(),
            Some("host namespaces (hostNetwork=true, hostIPC=true)")
        );
        assert_eq!(
            run(host_path_volumes, y, 35).as_deref(),
            Some("hostPath volumes (volumes \"root\", \"logs\")")
        );
        assert_eq!(
            run(host_ports, y, 35).as_deref(),
            Some("hostPort (container \"a\" uses hostPorts 10, 8080)")
        );
    }

    #[test]
    fn probe_and_lifecycle_hosts_from_1_34() {
        let y = r#"
metadata: {name: x}
spec:
  containers:
  - name: a
    image: i
    livenessProbe: {httpGet: {host: 10.0.0.1, port: 80}}
    lifecycle: {preStop: {tcpSocket: {host: evil, port: 1}}}
"#;
        assert_eq!(
            run(probe_hosts, y, 35).as_deref(),
            Some(
                "probe or lifecycle host (container \"a\" uses probe or lifecycle hosts \"10.0.0.1\", \"evil\")"
            )
        );
        assert_eq!(checks(33).len() + 1, checks(34).len());
    }

    #[test]
    fn privileged_proc_mount_and_windows() {
        let y = r#"
metadata: {name: x}
spec:
  securityContext: {windowsOptions: {hostProcess: true}}
  initContainers: [{name: i, image: i, securityContext: {privileged: true}}]
  containers:
  - {name: a, image: i, securityContext: {privileged: true, procMount: Unmasked}}
"#;
        assert_eq!(
            run(privileged, y, 35).as_deref(),
            Some(
                "privileged (containers \"i\", \"a\" must not set securityContext.privileged=true)"
            )
        );
        assert_eq!(
            run(proc_mount_baseline, y, 35).as_deref(),
            Some(
                "procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\")"
            )
        );
        assert_eq!(
            run(windows_host_process, y, 35).as_deref(),
            Some("hostProcess (pod must not set securityContext.windowsOptions.hostProcess=true)")
        );
        let userns = y.replace("spec:\n", "spec:\n  hostUsers: false\n");
        assert_eq!(run(proc_mount_baseline, &userns, 35), None);
        assert!(run(proc_mount_baseline, &userns, 34).is_some());
    }

    #[test]
    fn se_linux() {
        let y = r#"
metadata: {name: x}
spec:
  securityContext: {seLinuxOptions: {type: spc_t}}
  containers:
  - {name: a, image: i, securityContext: {seLinuxOptions: {user: u, role: r, type: container_engine_t}}}
"#;
        assert_eq!(
            run(se_linux_options, y, 35).as_deref(),
            Some(
                "seLinuxOptions (pod and container \"a\" set forbidden securityContext.seLinuxOptions: type \"spc_t\"; user may not be set; role may not be set)"
            )
        );
        assert!(
            run(se_linux_options, y, 30)
                .is_some_and(|m| m.contains("types \"container_engine_t\", \"spc_t\""))
        );
    }

    #[test]
    fn seccomp_unconfined_and_old_annotations() {
        let y = r#"
metadata:
  name: x
  annotations: {seccomp.security.alpha.kubernetes.io/pod: unconfined}
spec:
  securityContext: {seccompProfile: {type: Unconfined}}
  containers:
  - {name: a, image: i, securityContext: {seccompProfile: {type: RuntimeDefault}}}
"#;
        assert_eq!(
            run(seccomp_baseline, y, 35).as_deref(),
            Some(
                "seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"
            )
        );
        assert_eq!(
            run(seccomp_baseline, y, 18).as_deref(),
            Some(
                "seccompProfile (forbidden annotation seccomp.security.alpha.kubernetes.io/pod=\"unconfined\")"
            )
        );
    }

    #[test]
    fn unsafe_sysctls_by_version() {
        let y = r#"
metadata: {name: x}
spec:
  securityContext:
    sysctls: [{name: net.ipv4.tcp_rmem, value: "1"}, {name: kernel.msgmax, value: "1"}, {name: net.ipv4.ping_group_range, value: "0 1"}]
  containers: [{name: a, image: i}]
"#;
        assert_eq!(
            run(sysctls, y, 35).as_deref(),
            Some("forbidden sysctls (kernel.msgmax)")
        );
        assert_eq!(
            run(sysctls, y, 31).as_deref(),
            Some("forbidden sysctls (net.ipv4.tcp_rmem, kernel.msgmax)")
        );
    }
}
