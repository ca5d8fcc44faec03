//! The node's `status.nodeInfo` (Kubernetes' NodeSystemInfo), read from the
//! host as upstream's kubelet (through cAdvisor) reads it. Clients with
//! typed models (the official Python client, lightkube) require every
//! field, so each is always sent, empty when the host cannot tell.

use std::path::Path;
use std::sync::OnceLock;

use skiff_proto::node::v1 as pb;

/// The Kubernetes minor version this kubelet reports, as the control plane's
/// `/version` does.
const KUBE_MINOR: &str = "35";

static RUNTIME_VERSION: OnceLock<String> = OnceLock::new();

/// Records the container runtime's `<name>://<version>` (asked once, at the
/// first registration).
pub fn set_runtime_version(version: String) {
    let _ = RUNTIME_VERSION.set(version);
}

/// Whether the runtime version is known yet.
pub fn runtime_version_known() -> bool {
    RUNTIME_VERSION.get().is_some()
}

fn read_trimmed(path: impl AsRef<Path>) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `PRETTY_NAME` of an os-release file, as cAdvisor reports `osImage`;
/// "Linux" when there is none.
pub fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim().trim_matches('"').trim_matches('\'').to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "Linux".to_string())
}

/// Go's `GOARCH` name of the architecture this binary runs on.
pub fn architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn host_info() -> &'static pb::NodeSystemInfo {
    static INFO: OnceLock<pb::NodeSystemInfo> = OnceLock::new();
    INFO.get_or_init(|| {
        // cAdvisor: /etc/machine-id, else D-Bus's copy.
        let mut machine_id = read_trimmed("/etc/machine-id");
        if machine_id.is_empty() {
            machine_id = read_trimmed("/var/lib/dbus/machine-id");
        }
        // cAdvisor: the DMI product UUID, else the device-tree one (arm),
        // else empty.
        let mut system_uuid = read_trimmed("/sys/class/dmi/id/product_uuid");
        if system_uuid.is_empty() {
            system_uuid = read_trimmed("/proc/device-tree/system-id");
        }
        let os_release = std::fs::read_to_string("/etc/os-release")
            .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
            .unwrap_or_default();
        pb::NodeSystemInfo {
            machine_id,
            system_uuid,
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            kernel_version: read_trimmed("/proc/sys/kernel/osrelease"),
            os_image: os_image(&os_release),
            container_runtime_version: String::new(),
            kubelet_version: format!("v1.{KUBE_MINOR}.0-skiff"),
            // Upstream's kubelet stopped reporting it (DisableNodeKubeProxyVersion,
            // on by default since 1.31): the field is sent empty.
            kube_proxy_version: String::new(),
            operating_system: std::env::consts::OS.to_string(),
            architecture: architecture().to_string(),
        }
    })
}

/// The node's system info as reported to the control plane.
pub fn node_info() -> pb::NodeSystemInfo {
    let mut info = host_info().clone();
    info.container_runtime_version = RUNTIME_VERSION.get().cloned().unwrap_or_default();
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_image_is_the_pretty_name() {
        let text = "NAME=\"Debian GNU/Linux\"\nPRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\n";
        assert_eq!(os_image(text), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os_image("ID=x\n"), "Linux");
    }

    #[test]
    fn host_fields_are_filled() {
        let info = node_info();
        assert_eq!(info.boot_id.len(), 36, "boot id {:?}", info.boot_id);
        assert!(!info.kernel_version.is_empty());
        assert_eq!(info.operating_system, "linux");
        assert!(info.kubelet_version.starts_with("v1."));
        assert!(!info.os_image.is_empty());
    }
}
