//! The OCI runtime spec of a container: what runc is asked to create.
//! Built explicitly (oci-spec's `Spec::default()` has a read-only root, a
//! fixed hostname and a cgroup namespace that Kubernetes does not use).

use std::collections::{HashMap, HashSet};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxNamespaceBuilder, LinuxNamespaceType,
    LinuxResourcesBuilder, Mount, MountBuilder, Process, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use super::security::{self, HostFacts, SecurityError};
use crate::runtime::process::ResolvedProcess;
use crate::runtime::{ContainerConfig, NetworkMode, SecurityConfig};

/// Type URL containerd expects on a container's spec (`Any` with JSON bytes).
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// Type URL of an exec process spec.
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

fn mount(
    destination: &str,
    typ: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(destination)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()
}

/// The process part of the spec (exec reuses the stored one).
pub(crate) fn build_process(
    process: &ResolvedProcess,
    security: &SecurityConfig,
    caps: HashSet<Capability>,
    terminal: bool,
) -> Result<Process, OciSpecError> {
    let mut user = UserBuilder::default().uid(process.uid).gid(process.gid);
    if !security.supplemental_groups.is_empty() {
        user = user.additional_gids(security.supplemental_groups.clone());
    }
    ProcessBuilder::default()
        .terminal(terminal)
        .user(user.build()?)
        .args(process.args.clone())
        .env(process.env.clone())
        .cwd(process.cwd.clone())
        // Upstream's default is allowPrivilegeEscalation true: set-uid
        // binaries work unless the pod says otherwise.
        .no_new_privileges(security.no_new_privileges)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                // Empty, not oci-spec's default set: inherited and ambient
                // capabilities would survive exec into a non-root user
                // (containerd dropped them for CVE-2022-24769).
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()?,
        )
        // No rlimits: the process inherits containerd's, as with the CRI plugin
        // (a fixed NOFILE above the host's hard limit makes runc fail).
        .build()
}

/// The full runtime spec for `config` running `process` on a machine
/// described by `host`.
pub(crate) fn build_spec(
    config: &ContainerConfig,
    process: &ResolvedProcess,
    cgroups_path: &str,
    host: &HostFacts,
) -> Result<Spec, SecurityError> {
    let security = &config.security;
    let caps = security::capabilities(security, host)?;
    let seccomp = security::seccomp(security, &caps)?;
    let sys_options: &[&str] = if security::sys_read_only(security) {
        &["nosuid", "noexec", "nodev", "ro"]
    } else {
        &["nosuid", "noexec", "nodev", "rw"]
    };
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount("/sys", "sysfs", "sysfs", sys_options)?,
        mount(
            "/run",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
    ];
    for bind in &config.mounts {
        let mode = if bind.read_only { "ro" } else { "rw" };
        mounts.push(
            MountBuilder::default()
                .destination(bind.container_path.clone())
                .typ("bind")
                .source(bind.host_path.clone())
                .options(vec![
                    "rbind".to_string(),
                    "rprivate".to_string(),
                    mode.to_string(),
                ])
                .build()?,
        );
    }

    if security.host_ipc {
        // The host's IPC namespace comes with the host's /dev/shm, as the
        // CRI plugin mounts it for hostIPC sandboxes.
        mounts.retain(|m| m.destination() != std::path::Path::new("/dev/shm"));
        mounts.push(mount(
            "/dev/shm",
            "bind",
            "/dev/shm",
            &["rbind", "rprivate", "rw"],
        )?);
    }

    // Leaving a namespace out of the list keeps the host's (hostPID,
    // hostIPC, hostNetwork).
    let mut namespaces = Vec::new();
    for (typ, shared_with_host) in [
        (LinuxNamespaceType::Pid, security.host_pid),
        (LinuxNamespaceType::Ipc, security.host_ipc),
        (LinuxNamespaceType::Uts, false),
        (LinuxNamespaceType::Mount, false),
    ] {
        if !shared_with_host {
            namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
        }
    }
    match &config.network {
        NetworkMode::Host => {}
        NetworkMode::Private => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        ),
        NetworkMode::Join(path) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()?,
        ),
    }

    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(cgroups_path)
        .resources(
            LinuxResourcesBuilder::default()
                .devices(security::device_cgroup(security)?)
                .build()?,
        )
        .devices(security::devices(security, host)?)
        .masked_paths(security::masked_paths(security))
        .readonly_paths(security::readonly_paths(security));
    if !security.sysctls.is_empty() {
        linux = linux.sysctl(
            security
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        );
    }
    if let Some(seccomp) = seccomp {
        linux = linux.seccomp(seccomp);
    }
    let linux = linux.build()?;

    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(security.read_only_root_filesystem)
                .build()?,
        )
        .process(build_process(process, security, caps, false)?)
        .mounts(mounts)
        .linux(linux);
    if let Some(hostname) = &config.hostname {
        spec = spec.hostname(hostname.clone());
    }
    Ok(spec.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{BindMount, SeccompProfile};
    use skiff_images::ImageName;

    fn process() -> ResolvedProcess {
        ResolvedProcess {
            args: vec!["sh".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/work".into(),
            uid: 0,
            gid: 0,
        }
    }

    fn config(network: NetworkMode) -> ContainerConfig {
        let mut c = ContainerConfig::new("c1", ImageName::parse("busybox").expect("valid"), "/l");
        c.network = network;
        c.hostname = Some("pod-a".into());
        c
    }

    fn json(spec: &Spec) -> serde_json::Value {
        serde_json::to_value(spec).expect("serialises")
    }

    #[test]
    fn joining_a_pod_network_namespace_uses_its_path() {
        let spec = build_spec(
            &config(NetworkMode::Join("/run/netns/p1".into())),
            &process(),
            "/skiff/c1",
            &HostFacts::default(),
        )
        .expect("spec");
        let v = json(&spec);
        let net = v["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .find(|n| n["type"] == "network")
            .expect("network namespace")
            .clone();
        assert_eq!(net["path"], "/run/netns/p1");
        assert_eq!(v["hostname"], "pod-a");
        assert_eq!(v["process"]["cwd"], "/work");
        assert_eq!(v["root"]["readonly"], false);
        assert_eq!(v["linux"]["cgroupsPath"], "/skiff/c1");
    }

    #[test]
    fn host_network_has_no_network_namespace() {
        let spec = build_spec(
            &config(NetworkMode::Host),
            &process(),
            "/skiff/c1",
            &HostFacts::default(),
        )
        .expect("spec");
        let v = json(&spec);
        let namespaces = v["linux"]["namespaces"].as_array().expect("namespaces");
        assert!(namespaces.iter().all(|n| n["type"] != "network"));
        assert_eq!(namespaces.len(), 4);
    }

    #[test]
    fn bind_mounts_honour_read_only() {
        let mut c = config(NetworkMode::Private);
        c.mounts.push(BindMount {
            host_path: "/var/lib/skiff/hosts".into(),
            container_path: "/etc/hosts".into(),
            read_only: true,
        });
        let v =
            json(&build_spec(&c, &process(), "/skiff/c1", &HostFacts::default()).expect("spec"));
        let hosts = v["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/etc/hosts")
            .expect("hosts mount")
            .clone();
        assert_eq!(hosts["type"], "bind");
        assert!(
            hosts["options"]
                .as_array()
                .expect("options")
                .contains(&"ro".into())
        );
    }

    fn secured(security: SecurityConfig) -> serde_json::Value {
        let mut c = config(NetworkMode::Private);
        c.security = security;
        let host = HostFacts {
            capabilities: vec![
                "CAP_CHOWN".into(),
                "CAP_SYS_ADMIN".into(),
                "CAP_NET_ADMIN".into(),
            ],
            devices: vec![security::HostDevice {
                path: "/dev/fuse".into(),
                block: false,
                major: 10,
                minor: 229,
                mode: 0o666,
                uid: 0,
                gid: 0,
            }],
        };
        json(&build_spec(&c, &process(), "/skiff/c1", &host).expect("spec"))
    }

    fn caps(v: &serde_json::Value, set: &str) -> Vec<String> {
        let mut c: Vec<String> = v["process"]["capabilities"][set]
            .as_array()
            .expect("capability set")
            .iter()
            .map(|c| c.as_str().expect("name").to_string())
            .collect();
        c.sort();
        c
    }

    fn sys_options(v: &serde_json::Value) -> Vec<serde_json::Value> {
        v["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/sys")
            .expect("/sys")["options"]
            .as_array()
            .expect("options")
            .clone()
    }

    #[test]
    fn default_security_is_containerd_s_unprivileged_container() {
        let v = secured(SecurityConfig::default());
        assert_eq!(caps(&v, "effective").len(), 14);
        assert_eq!(caps(&v, "bounding"), caps(&v, "permitted"));
        assert!(caps(&v, "inheritable").is_empty() && caps(&v, "ambient").is_empty());
        assert_eq!(v["process"]["noNewPrivileges"], false);
        assert_eq!(v["root"]["readonly"], false);
        assert!(v["linux"].get("seccomp").is_none(), "Unconfined by default");
        assert_eq!(
            v["linux"]["maskedPaths"].as_array().expect("masked").len(),
            10
        );
        assert_eq!(v["linux"]["readonlyPaths"].as_array().expect("ro").len(), 5);
        assert!(sys_options(&v).contains(&"ro".into()));
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], false);
        assert!(
            v["linux"]
                .get("devices")
                .is_none_or(|d| d.as_array().is_some_and(|a| a.is_empty()))
        );
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|n| n["type"].as_str().expect("type"))
            .collect();
        assert_eq!(ns, ["pid", "ipc", "uts", "mount", "network"]);
    }

    #[test]
    fn privileged_gets_everything_and_no_confinement() {
        let v = secured(SecurityConfig {
            privileged: true,
            seccomp: SeccompProfile::RuntimeDefault,
            ..SecurityConfig::default()
        });
        assert_eq!(
            caps(&v, "effective"),
            ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"],
            "every capability the host knows"
        );
        assert!(v["linux"].get("seccomp").is_none());
        assert!(
            v["linux"]
                .get("maskedPaths")
                .is_none_or(|m| m.as_array().is_some_and(|a| a.is_empty()))
        );
        assert!(
            v["linux"]
                .get("readonlyPaths")
                .is_none_or(|m| m.as_array().is_some_and(|a| a.is_empty()))
        );
        assert!(sys_options(&v).contains(&"rw".into()));
        assert_eq!(v["linux"]["resources"]["devices"][0]["allow"], true);
        assert_eq!(v["linux"]["devices"][0]["path"], "/dev/fuse");
        assert_eq!(v["linux"]["devices"][0]["type"], "c");
    }

    #[test]
    fn capabilities_drop_all_add_one() {
        let v = secured(SecurityConfig {
            drop_capabilities: vec!["ALL".into()],
            add_capabilities: vec!["NET_ADMIN".into()],
            ..SecurityConfig::default()
        });
        for set in ["bounding", "effective", "permitted"] {
            assert_eq!(caps(&v, set), ["CAP_NET_ADMIN"], "{set}");
        }
    }

    #[test]
    fn users_groups_root_and_privilege_escalation() {
        let mut c = config(NetworkMode::Private);
        c.security = SecurityConfig {
            supplemental_groups: vec![2000, 4000],
            read_only_root_filesystem: true,
            no_new_privileges: true,
            ..SecurityConfig::default()
        };
        let mut p = process();
        p.uid = 1000;
        p.gid = 3000;
        let v = json(&build_spec(&c, &p, "/skiff/c1", &HostFacts::default()).expect("spec"));
        assert_eq!(v["process"]["user"]["uid"], 1000);
        assert_eq!(v["process"]["user"]["gid"], 3000);
        assert_eq!(
            v["process"]["user"]["additionalGids"],
            serde_json::json!([2000, 4000])
        );
        assert_eq!(v["root"]["readonly"], true);
        assert_eq!(v["process"]["noNewPrivileges"], true);
    }

    #[test]
    fn host_pid_and_ipc_leave_their_namespaces_out() {
        let v = secured(SecurityConfig {
            host_pid: true,
            host_ipc: true,
            ..SecurityConfig::default()
        });
        let ns: Vec<&str> = v["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .map(|n| n["type"].as_str().expect("type"))
            .collect();
        assert_eq!(ns, ["uts", "mount", "network"]);
        let shm = v["mounts"]
            .as_array()
            .expect("mounts")
            .iter()
            .find(|m| m["destination"] == "/dev/shm")
            .expect("shm");
        assert_eq!(shm["source"], "/dev/shm");
        assert_eq!(shm["type"], "bind");
    }

    #[test]
    fn runtime_default_seccomp_is_in_the_spec() {
        let v = secured(SecurityConfig {
            seccomp: SeccompProfile::RuntimeDefault,
            ..SecurityConfig::default()
        });
        assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(
            v["linux"]["seccomp"]["syscalls"]
                .as_array()
                .expect("rules")
                .len()
                > 3
        );
    }

    #[test]
    fn unmasked_proc_and_sysctls() {
        let v = secured(SecurityConfig {
            unmasked_proc: true,
            sysctls: [(
                "net.ipv4.ping_group_range".to_string(),
                "0 1000".to_string(),
            )]
            .into(),
            ..SecurityConfig::default()
        });
        assert!(
            v["linux"]
                .get("maskedPaths")
                .is_none_or(|m| m.as_array().is_some_and(|a| a.is_empty()))
        );
        assert_eq!(v["linux"]["sysctl"]["net.ipv4.ping_group_range"], "0 1000");
        assert!(
            sys_options(&v).contains(&"ro".into()),
            "/sys stays read-only"
        );
    }
}
