//! Real virtual machines for multi-machine tests: each with its own
//! kernel, systemd and containerd, on a private host bridge the host also
//! sits on, as the Vagrant lab's VMs sit on `192.168.56.0/24`
//! (`docs/vagrant/`).
//!
//! - [`prerequisites`]: what the host needs (KVM, qemu, debootstrap, ssh);
//!   a missing piece skips the test, or fails it under `SKIFF_REQUIRE_E2E=1`.
//! - [`accel`]: KVM, or qemu's emulator where this host's KVM cannot run
//!   a stock kernel.
//! - [`image`]: the Debian base image built with `debootstrap` from the
//!   machine's apt mirror, cached under the target directory, keyed by its
//!   package list and provisioning.
//! - [`network`]: the host bridge, one tap per VM, and the nftables table
//!   that keeps the VMs' traffic on the bridge.
//! - [`machine`]: one qemu/KVM machine on a copy-on-write overlay of the
//!   image, reached over ssh; powering it off is a SIGKILL of its qemu.
//! - [`lab`]: the machines of one run on one network, this build's Skiff
//!   shared into them, and the host's kubectl driving the cluster.
//! - [`roles`]: the Skiff command lines each machine runs (server, agent).
//! - [`phases`]: how long each phase took, written where CI logs show it.
//!
//! Everything a lab makes (qemu processes, taps, bridge, table, overlays)
//! goes when its owner is dropped, also when a test panics.

pub mod accel;
pub mod image;
pub mod lab;
pub mod machine;
pub mod network;
pub mod phases;
pub mod prerequisites;
pub mod roles;

pub use image::Image;
pub use lab::Lab;
pub use machine::Machine;
pub use network::HostNetwork;
pub use phases::Phases;
pub use prerequisites::vm_enabled;

use std::path::PathBuf;

/// The target directory the tests run from (`target/`): the runs' folders
/// and, unless `SKIFF_VM_CACHE` names another folder, the image cache.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    exe.ancestors()
        .nth(3)
        .expect("test binaries live in target/<profile>/deps")
        .to_path_buf()
}

/// Where built images are kept: `$SKIFF_VM_CACHE`, else `target/vm-images`.
pub fn image_cache() -> PathBuf {
    std::env::var_os("SKIFF_VM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("vm-images"))
}
