//! Which qemu accelerator runs the machines. KVM where it runs a stock
//! Debian kernel; qemu's own emulator (TCG) where it cannot: a machine
//! whose `/dev/kvm` is PVM (`kvm_pvm`, the page-table based nested
//! hypervisor of sandboxed hosts) only runs kernels built as PVM guests,
//! and a stock kernel spins in its boot code there. `SKIFF_VM_ACCEL=kvm`
//! or `tcg` overrides the choice.

use std::path::Path;

/// How qemu runs the machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    /// Hardware virtualization.
    Kvm,
    /// qemu's translator, one host thread per virtual CPU.
    Tcg,
}

impl Accel {
    /// The accelerator for this host.
    pub fn detect() -> Self {
        match std::env::var("SKIFF_VM_ACCEL").as_deref() {
            Ok("kvm") => return Self::Kvm,
            Ok("tcg") => return Self::Tcg,
            _ => {}
        }
        let kvm = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
        if kvm && !Path::new("/sys/module/kvm_pvm").exists() {
            Self::Kvm
        } else {
            Self::Tcg
        }
    }

    /// qemu's arguments for it.
    pub fn qemu_args(self) -> &'static [&'static str] {
        match self {
            Self::Kvm => &["-enable-kvm", "-cpu", "host", "-smp", "2"],
            Self::Tcg => &[
                "-accel",
                "tcg,thread=multi,tb-size=256",
                "-cpu",
                "max",
                "-smp",
                "1",
            ],
        }
    }

    /// How long a machine may take from power-on to sshd.
    pub fn boot_limit(self) -> std::time::Duration {
        match self {
            Self::Kvm => std::time::Duration::from_secs(90),
            Self::Tcg => std::time::Duration::from_secs(300),
        }
    }
}
