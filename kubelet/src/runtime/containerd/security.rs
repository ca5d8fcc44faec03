//! A container's securityContext in the OCI runtime spec, as containerd's
//! CRI plugin translates the CRI's `LinuxContainerSecurityContext`:
//! capabilities over containerd's default set, privileged mode, the
//! namespaces a pod may share with the host, masked and read-only `/proc`
//! paths, sysctls and the seccomp filter ([`super::seccomp`]).
//!
//! Pure functions of [`SecurityConfig`] and [`HostFacts`]; what has to be
//! read from the machine (the kernel's capabilities, `/dev`) is gathered
//! once by [`HostFacts::probe`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Capability, LinuxDevice, LinuxDeviceBuilder, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxSeccomp,
};

use crate::runtime::{SeccompProfile, SecurityConfig};

/// Every capability by its number in the kernel (`include/uapi/linux/capability.h`);
/// the index is the bit in `/proc/<pid>/status`'s `CapEff`.
const CAPABILITIES_BY_NUMBER: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// containerd's (and Docker's) default capability set: what a container
/// gets when its securityContext says nothing about capabilities.
pub(crate) const DEFAULT_CAPABILITIES: [&str; 14] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// `/proc` and `/sys` paths hidden from unprivileged containers (runc's and
/// containerd's defaults): they leak host information or allow host-wide
/// actions.
pub(crate) const MASKED_PATHS: [&str; 10] = [
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
];

/// `/proc` paths that stay visible but read-only.
pub(crate) const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// What the machine contributes to a spec: the capabilities its kernel
/// knows (a privileged container gets all of them) and its devices (a
/// privileged container sees them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Capabilities the kernel knows, `CAP_*` names.
    pub capabilities: Vec<String>,
    /// The host's device nodes.
    pub devices: Vec<HostDevice>,
}

/// One device node of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Path under `/dev`.
    pub path: PathBuf,
    /// Block (true) or character device.
    pub block: bool,
    /// Major number.
    pub major: i64,
    /// Minor number.
    pub minor: i64,
    /// Permission bits.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

impl HostFacts {
    /// Reads the capabilities this process holds (a privileged container
    /// gets those, as containerd's `WithAllCurrentCapabilities`: asking
    /// for one the runtime lacks makes runc fail) and, when
    /// `with_devices`, walks `/dev` as containerd's `WithHostDevices` does.
    pub fn probe(with_devices: bool) -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let capabilities = current_capabilities(&status);
        let mut devices = Vec::new();
        if with_devices {
            collect_devices(Path::new("/dev"), &mut devices);
        }
        Self {
            capabilities,
            devices,
        }
    }
}

/// The `CapEff` capabilities of a `/proc/<pid>/status` text.
fn current_capabilities(status: &str) -> Vec<String> {
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    CAPABILITIES_BY_NUMBER
        .iter()
        .enumerate()
        .filter(|(bit, _)| mask & (1u64 << bit) != 0)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Device folders containerd leaves out: they are the container's own
/// (pts, shm, mqueue) or not devices at all.
const SKIPPED_DEVICE_DIRS: [&str; 6] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts"];

fn collect_devices(dir: &Path, out: &mut Vec<HostDevice>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            if !SKIPPED_DEVICE_DIRS.iter().any(|s| name == *s) {
                collect_devices(&path, out);
            }
            continue;
        }
        if name == "console" || !(ft.is_block_device() || ft.is_char_device()) {
            continue;
        }
        let rdev = meta.rdev();
        out.push(HostDevice {
            path,
            block: ft.is_block_device(),
            major: libc::major(rdev) as i64,
            minor: libc::minor(rdev) as i64,
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
        });
    }
}

/// Why a securityContext cannot be put into a spec.
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A capability name the kernel does not know.
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    /// A `Localhost` seccomp profile that cannot be read.
    #[error("cannot load seccomp profile {path:?}: {reason}")]
    SeccompProfile {
        /// The profile file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// oci-spec refused a value.
    #[error(transparent)]
    Spec(#[from] OciSpecError),
}

fn parse_capability(name: &str) -> Result<Capability, SecurityError> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| SecurityError::UnknownCapability(name.to_string()))
}

/// Kubernetes' capability names carry no `CAP_` prefix; the CRI plugin
/// adds it (and upper-cases).
fn kernel_name(kubernetes: &str) -> String {
    let upper = kubernetes.to_ascii_uppercase();
    if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    }
}

/// The process's capability set (bounding = effective = permitted).
///
/// As containerd's `WithCapabilities`: privileged gets every capability
/// the kernel knows; otherwise start from the default set, `add: [ALL]`
/// first makes it everything, `drop: [ALL]` then empties it, and only
/// after both do the named adds and drops apply, so `drop: [ALL], add:
/// [NET_ADMIN]` leaves exactly NET_ADMIN.
pub(crate) fn capabilities(
    security: &SecurityConfig,
    host: &HostFacts,
) -> Result<HashSet<Capability>, SecurityError> {
    // Unknown host (unit tests): every capability.
    let all = || -> Vec<String> {
        if host.capabilities.is_empty() {
            CAPABILITIES_BY_NUMBER
                .iter()
                .map(|c| c.to_string())
                .collect()
        } else {
            host.capabilities.clone()
        }
    };
    let is_all = |c: &String| c.eq_ignore_ascii_case("ALL");
    let mut names: Vec<String> = if security.privileged {
        all()
    } else {
        DEFAULT_CAPABILITIES.iter().map(|c| c.to_string()).collect()
    };
    if !security.privileged {
        if security.add_capabilities.iter().any(is_all) {
            names = all();
        }
        if security.drop_capabilities.iter().any(is_all) {
            names.clear();
        }
        for add in security.add_capabilities.iter().filter(|c| !is_all(c)) {
            let name = kernel_name(add);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        for drop in security.drop_capabilities.iter().filter(|c| !is_all(c)) {
            let name = kernel_name(drop);
            names.retain(|n| *n != name);
        }
    }
    names.iter().map(|n| parse_capability(n)).collect()
}

/// Paths hidden in `/proc` and `/sys`: none for privileged containers or
/// `procMount: Unmasked`, runc's defaults otherwise.
pub(crate) fn masked_paths(security: &SecurityConfig) -> Vec<String> {
    if security.privileged || security.unmasked_proc {
        Vec::new()
    } else {
        MASKED_PATHS.map(String::from).to_vec()
    }
}

/// Read-only `/proc` paths, under the same rule as [`masked_paths`].
pub(crate) fn readonly_paths(security: &SecurityConfig) -> Vec<String> {
    if security.privileged || security.unmasked_proc {
        Vec::new()
    } else {
        READONLY_PATHS.map(String::from).to_vec()
    }
}

/// The device cgroup: everything for privileged containers, otherwise deny
/// all and let runc add its default allowlist (null, zero, full, tty,
/// urandom, random, ptmx, ...).
pub(crate) fn device_cgroup(
    security: &SecurityConfig,
) -> Result<Vec<LinuxDeviceCgroup>, OciSpecError> {
    Ok(vec![
        LinuxDeviceCgroupBuilder::default()
            .allow(security.privileged)
            .access("rwm")
            .build()?,
    ])
}

/// The host's devices for a privileged container, none otherwise.
pub(crate) fn devices(
    security: &SecurityConfig,
    host: &HostFacts,
) -> Result<Vec<LinuxDevice>, OciSpecError> {
    if !security.privileged {
        return Ok(Vec::new());
    }
    host.devices
        .iter()
        .map(|d| {
            LinuxDeviceBuilder::default()
                .path(d.path.clone())
                .typ(if d.block {
                    LinuxDeviceType::B
                } else {
                    LinuxDeviceType::C
                })
                .major(d.major)
                .minor(d.minor)
                .file_mode(d.mode)
                .uid(d.uid)
                .gid(d.gid)
                .build()
        })
        .collect()
}

/// The seccomp filter: none for privileged containers (the CRI plugin
/// skips seccomp for them whatever the profile says) or `Unconfined`, the
/// built-in allowlist for `RuntimeDefault`, the node's file for
/// `Localhost`.
pub(crate) fn seccomp(
    security: &SecurityConfig,
    capabilities: &HashSet<Capability>,
) -> Result<Option<LinuxSeccomp>, SecurityError> {
    if security.privileged {
        return Ok(None);
    }
    match &security.seccomp {
        SeccompProfile::Unconfined => Ok(None),
        SeccompProfile::RuntimeDefault => Ok(Some(super::seccomp::runtime_default(capabilities)?)),
        SeccompProfile::Localhost(path) => {
            let failed = |reason: String| SecurityError::SeccompProfile {
                path: path.clone(),
                reason,
            };
            let text = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
            serde_json::from_slice(&text)
                .map(Some)
                .map_err(|e| failed(e.to_string()))
        }
    }
}

/// Whether `/sys` is mounted writable (privileged containers only, as the
/// CRI plugin does).
pub(crate) fn sys_read_only(security: &SecurityConfig) -> bool {
    !security.privileged
}

/// Sorted `CAP_*` names of a set, for assertions.
#[cfg(test)]
pub(crate) fn cap_names(caps: &HashSet<Capability>) -> Vec<String> {
    let mut v: Vec<String> = caps
        .iter()
        .map(|c| {
            serde_json::to_value(c)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default()
        })
        .collect();
    v.sort();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> HostFacts {
        HostFacts {
            capabilities: CAPABILITIES_BY_NUMBER
                .iter()
                .map(|c| c.to_string())
                .collect(),
            ..HostFacts::default()
        }
    }

    fn caps(security: &SecurityConfig) -> Vec<String> {
        cap_names(&capabilities(security, &host()).expect("capabilities"))
    }

    #[test]
    fn default_set_is_containerd_s() {
        let c = caps(&SecurityConfig::default());
        assert_eq!(c.len(), 14);
        assert!(c.contains(&"CAP_NET_RAW".to_string()));
        assert!(!c.contains(&"CAP_SYS_ADMIN".to_string()));
    }

    #[test]
    fn drop_all_then_add_keeps_only_the_adds() {
        let s = SecurityConfig {
            drop_capabilities: vec!["ALL".into()],
            add_capabilities: vec!["NET_ADMIN".into()],
            ..SecurityConfig::default()
        };
        assert_eq!(caps(&s), ["CAP_NET_ADMIN"]);
    }

    #[test]
    fn add_all_minus_a_drop_and_named_drops() {
        let s = SecurityConfig {
            add_capabilities: vec!["ALL".into()],
            drop_capabilities: vec!["chown".into()],
            ..SecurityConfig::default()
        };
        let c = caps(&s);
        assert_eq!(c.len(), 40);
        assert!(!c.contains(&"CAP_CHOWN".to_string()));
        let s = SecurityConfig {
            drop_capabilities: vec!["NET_RAW".into()],
            add_capabilities: vec!["SYS_TIME".into()],
            ..SecurityConfig::default()
        };
        let c = caps(&s);
        assert_eq!(c.len(), 14);
        assert!(c.contains(&"CAP_SYS_TIME".to_string()));
        assert!(!c.contains(&"CAP_NET_RAW".to_string()));
    }

    #[test]
    fn privileged_gets_every_known_capability_and_ignores_drops() {
        let s = SecurityConfig {
            privileged: true,
            drop_capabilities: vec!["ALL".into()],
            ..SecurityConfig::default()
        };
        assert_eq!(caps(&s).len(), 41);
        let mut older = host();
        older.capabilities.truncate(38);
        let c = capabilities(&s, &older).expect("capabilities");
        assert_eq!(c.len(), 38, "only what the kernel knows");
    }

    #[test]
    fn unknown_capability_is_an_error() {
        let s = SecurityConfig {
            add_capabilities: vec!["FLY".into()],
            ..SecurityConfig::default()
        };
        let err = capabilities(&s, &host()).expect_err("unknown");
        assert_eq!(err.to_string(), "unknown capability \"CAP_FLY\"");
    }

    #[test]
    fn privileged_and_unmasked_have_no_masked_paths() {
        assert_eq!(masked_paths(&SecurityConfig::default()).len(), 10);
        assert_eq!(readonly_paths(&SecurityConfig::default()).len(), 5);
        for s in [
            SecurityConfig {
                privileged: true,
                ..SecurityConfig::default()
            },
            SecurityConfig {
                unmasked_proc: true,
                ..SecurityConfig::default()
            },
        ] {
            assert!(masked_paths(&s).is_empty());
            assert!(readonly_paths(&s).is_empty());
        }
    }

    #[test]
    fn privileged_skips_seccomp_and_localhost_reads_the_file() {
        let privileged = SecurityConfig {
            privileged: true,
            seccomp: SeccompProfile::RuntimeDefault,
            ..SecurityConfig::default()
        };
        let c = capabilities(&privileged, &host()).expect("caps");
        assert!(seccomp(&privileged, &c).expect("seccomp").is_none());

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("audit.json");
        std::fs::write(&path, r#"{"defaultAction":"SCMP_ACT_LOG"}"#).expect("write");
        let local = SecurityConfig {
            seccomp: SeccompProfile::Localhost(path),
            ..SecurityConfig::default()
        };
        let profile = seccomp(&local, &c).expect("reads").expect("a profile");
        assert_eq!(
            profile.default_action(),
            oci_spec::runtime::LinuxSeccompAction::ScmpActLog
        );
        let missing = SecurityConfig {
            seccomp: SeccompProfile::Localhost(dir.path().join("nope.json")),
            ..SecurityConfig::default()
        };
        let err = seccomp(&missing, &c).expect_err("missing file");
        assert!(
            err.to_string().contains("cannot load seccomp profile"),
            "{err}"
        );
    }

    #[test]
    fn current_capabilities_come_from_cap_eff() {
        let caps = current_capabilities("Name:\tx\nCapEff:\t0000000000003001\n");
        assert_eq!(caps, ["CAP_CHOWN", "CAP_NET_ADMIN", "CAP_NET_RAW"]);
        assert!(current_capabilities("").is_empty());
    }

    #[test]
    fn host_devices_are_found() {
        let facts = HostFacts::probe(true);
        assert!(
            facts
                .devices
                .iter()
                .any(|d| d.path == Path::new("/dev/null") && !d.block && d.major == 1),
            "{:?}",
            facts.devices.first()
        );
        assert!(!facts.devices.iter().any(|d| d.path.starts_with("/dev/pts")));
        assert!(!facts.capabilities.is_empty());
    }
}
