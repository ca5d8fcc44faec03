//! Which qemu accelerator runs the machines. KVM where it runs a stock
//! Debian kernel; qemu's own emulator (TCG) where it cannot: a machine
//! whose `/dev/kvm` is PVM (`kvm_pvm`, the page-table based nested
//! hypervisor of sandboxed hosts) only runs kernels built as PVM guests,
//! and a stock kernel spins in its boot code there. `SKIFF_VM_ACCEL=kvm`
//! or `tcg` overrides the choice.

use std::path::Path;
use std::time::Duration;

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

    /// How fast the control plane gives up on a silent node. With KVM the
    /// lab's own (4 s node-monitor grace, 4 s eviction: the 10 s heal of
    /// `skiff node stop`); emulated machines run Skiff several times slower
    /// and would miss heartbeats at that pace, so they get a longer grace,
    /// and their replacements take some 20 s to start (measured: NotReady
    /// 19.7 s, Running 44.8 s after the power-off).
    pub fn pace(self) -> Pace {
        match self {
            Self::Kvm => Pace {
                grace: Duration::from_secs(4),
                eviction: Duration::from_secs(4),
                heal: Duration::from_secs(10),
            },
            Self::Tcg => Pace {
                grace: Duration::from_secs(20),
                eviction: Duration::from_secs(4),
                heal: Duration::from_secs(60),
            },
        }
    }

    /// How long a machine may take from power-on to sshd.
    pub fn boot_limit(self) -> Duration {
        match self {
            Self::Kvm => Duration::from_secs(90),
            Self::Tcg => Duration::from_secs(300),
        }
    }
}

/// The control plane's node timing, and the bound on healing it implies.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// `--node-monitor-grace-period`.
    pub grace: Duration,
    /// `--pod-eviction-timeout`.
    pub eviction: Duration,
    /// Power-off to replacements Running: grace, eviction, and the
    /// replacements' start.
    pub heal: Duration,
}
