//! What the host needs to run VM tests; `scripts/setup.sh` installs it.

use std::path::Path;

use crate::{REQUIRE_ENV, missing_prerequisite, which};

/// Programs the VM harness runs on the host.
const TOOLS: [(&str, &str); 6] = [
    ("qemu-system-x86_64", "qemu-system-x86"),
    ("qemu-img", "qemu-utils"),
    ("debootstrap", "debootstrap"),
    ("mke2fs", "e2fsprogs"),
    ("ssh", "openssh-client"),
    ("ssh-keygen", "openssh-client"),
];

/// Why VM tests cannot run here, if they cannot.
pub fn missing() -> Option<String> {
    if let Some(reason) = missing_prerequisite() {
        return Some(reason);
    }
    for (tool, package) in TOOLS {
        let found =
            which(tool).or_else(|| Some(Path::new("/usr/sbin").join(tool)).filter(|p| p.is_file()));
        if found.is_none() {
            return Some(format!(
                "`{tool}` not found (scripts/setup.sh installs {package})"
            ));
        }
    }
    None
}

/// `true` if the VM test may run; panics when something is missing and
/// [`REQUIRE_ENV`] is set.
pub fn vm_enabled(test: &str) -> bool {
    match missing() {
        None => true,
        Some(reason) if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1" || v == "true") => {
            panic!("{test}: cannot run the VM test: {reason}")
        }
        Some(reason) => {
            eprintln!("SKIPPED {test}: {reason} (set {REQUIRE_ENV}=1 to make this a failure)");
            false
        }
    }
}
