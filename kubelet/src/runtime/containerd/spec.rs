//! The OCI runtime spec of a container: what runc is asked to create.
//! Built explicitly (oci-spec's `Spec::default()` has a read-only root, a
//! fixed hostname and a cgroup namespace that Kubernetes does not use).

use std::collections::HashSet;

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Mount, MountBuilder, Process,
    ProcessBuilder, RootBuilder, Spec, SpecBuilder, UserBuilder,
};

use crate::runtime::process::ResolvedProcess;
use crate::runtime::{ContainerConfig, NetworkMode};

/// Type URL containerd expects on a container's spec (`Any` with JSON bytes).
pub const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";
/// Type URL of an exec process spec.
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";

/// Docker's (and containerd CRI's) default capability set.
fn default_capabilities() -> HashSet<Capability> {
    HashSet::from([
        Capability::Chown,
        Capability::DacOverride,
        Capability::Fsetid,
        Capability::Fowner,
        Capability::Mknod,
        Capability::NetRaw,
        Capability::Setgid,
        Capability::Setuid,
        Capability::Setfcap,
        Capability::Setpcap,
        Capability::NetBindService,
        Capability::SysChroot,
        Capability::Kill,
        Capability::AuditWrite,
    ])
}

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

/// The process part of the spec (also used for exec).
pub(crate) fn build_process(
    process: &ResolvedProcess,
    terminal: bool,
) -> Result<Process, OciSpecError> {
    let caps = default_capabilities();
    ProcessBuilder::default()
        .terminal(terminal)
        .user(
            UserBuilder::default()
                .uid(process.uid)
                .gid(process.gid)
                .build()?,
        )
        .args(process.args.clone())
        .env(process.env.clone())
        .cwd(process.cwd.clone())
        .no_new_privileges(true)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(caps.clone())
                .effective(caps.clone())
                .permitted(caps)
                .build()?,
        )
        // No rlimits: the process inherits containerd's, as with the CRI plugin
        // (a fixed NOFILE above the host's hard limit makes runc fail).
        .build()
}

/// The full runtime spec for `config` running `process`.
pub(crate) fn build_spec(
    config: &ContainerConfig,
    process: &ResolvedProcess,
    cgroups_path: &str,
) -> Result<Spec, OciSpecError> {
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
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
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

    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ] {
        namespaces.push(LinuxNamespaceBuilder::default().typ(typ).build()?);
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

    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(cgroups_path)
        .resources(
            LinuxResourcesBuilder::default()
                // Deny everything; runc adds its default allow list.
                .devices(vec![
                    LinuxDeviceCgroupBuilder::default()
                        .allow(false)
                        .access("rwm")
                        .build()?,
                ])
                .build()?,
        )
        .masked_paths(
            [
                "/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
            ]
            .map(String::from)
            .to_vec(),
        )
        .readonly_paths(
            [
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ]
            .map(String::from)
            .to_vec(),
        )
        .build()?;

    let mut spec = SpecBuilder::default()
        .version("1.0.2-dev")
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(false)
                .build()?,
        )
        .process(build_process(process, false)?)
        .mounts(mounts)
        .linux(linux);
    if let Some(hostname) = &config.hostname {
        spec = spec.hostname(hostname.clone());
    }
    spec.build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::BindMount;
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
        let spec = build_spec(&config(NetworkMode::Host), &process(), "/skiff/c1").expect("spec");
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
        let v = json(&build_spec(&c, &process(), "/skiff/c1").expect("spec"));
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
}
