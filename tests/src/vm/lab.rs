//! A lab of machines on one host network, with this build's Skiff shared
//! into all of them and the real kubectl on the host driving the cluster
//! through the server's kubeconfig. Dropping it powers every machine off
//! and removes the taps, bridge, table, overlays and the run's folder.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::accel::Accel;
use super::image::Image;
use super::machine::{Machine, Spec};
use super::network::HostNetwork;
use super::phases::say;
use super::target_dir;
use crate::{kubectl, workspace_binary};

/// Skiff's binaries the machines run.
const BINARIES: [&str; 4] = [
    "skiff",
    "skiff-control-plane",
    "skiff-kubelet",
    "skiff-cri-logger",
];

/// The running lab.
#[derive(Debug)]
pub struct Lab {
    // Declared in drop order: machines off before their taps go, the
    // network before the folder.
    machines: Vec<Machine>,
    network: HostNetwork,
    run: tempfile::TempDir,
    accel: Accel,
}

impl Lab {
    /// Boots one machine per `(name, host octet)` from `image` and waits for
    /// each to answer ssh.
    pub fn boot(image: &Image, machines: &[(&str, u8)]) -> Self {
        let runs = target_dir().join("vm-runs");
        // One lab at a time owns the bridge (see `HostNetwork::create`), so
        // any older run's folder is what a killed test left.
        let _ = std::fs::remove_dir_all(&runs);
        std::fs::create_dir_all(&runs).expect("create target/vm-runs");
        let run = tempfile::Builder::new()
            .prefix("lab-")
            .tempdir_in(&runs)
            .expect("the run's folder");
        let share = run.path().join("share");
        link_skiff_into(&share);
        let accel = Accel::detect();
        say(&format!("vm lab: qemu accelerator {accel:?}"));
        let mut network = HostNetwork::create();
        let mut booted = Vec::new();
        for (name, host) in machines {
            booted.push(Machine::boot(
                image,
                &mut network,
                &Spec {
                    name,
                    host: *host,
                    share: &share,
                    dir: run.path(),
                },
                accel,
            ));
        }
        let mut lab = Self {
            machines: booted,
            network,
            run,
            accel,
        };
        for machine in &mut lab.machines {
            machine.wait_for_ssh(accel.boot_limit());
        }
        lab
    }

    /// The machine called `name`.
    pub fn machine(&self, name: &str) -> &Machine {
        self.machines
            .iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no machine {name}"))
    }

    /// Pulls the plug of machine `name`.
    pub fn power_off(&mut self, name: &str) {
        let machine = self
            .machines
            .iter_mut()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| panic!("no machine {name}"));
        machine.power_off();
        assert!(!machine.is_running(), "{name} still runs");
    }

    /// How the machines run.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The host network.
    pub fn network(&self) -> &HostNetwork {
        &self.network
    }

    /// Where the host's kubectl finds the cluster.
    pub fn kubeconfig_path(&self) -> PathBuf {
        self.run.path().join("kubeconfig")
    }

    /// Keeps the server's kubeconfig for kubectl.
    pub fn set_kubeconfig(&self, text: &str) {
        std::fs::write(self.kubeconfig_path(), text).expect("write the kubeconfig");
    }

    /// A file in the run's folder.
    pub fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.run.path().join(name);
        std::fs::write(&path, text).expect("write a file of the run");
        path
    }

    /// Runs the host's kubectl against the lab: success and output.
    pub fn kubectl(&self, args: &[&str]) -> (bool, String) {
        kubectl::run(&self.kubeconfig_path(), self.run.path(), args)
    }

    /// kubectl that must succeed.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let (ok, out) = self.kubectl(args);
        assert!(ok, "kubectl {args:?}: {out}");
        out
    }

    /// Repeats kubectl until `check` accepts its output, for at most
    /// `limit`; the output and when the call that saw it began.
    pub fn eventually(
        &self,
        args: &[&str],
        what: &str,
        limit: Duration,
        check: impl Fn(&str) -> bool,
    ) -> (String, Instant) {
        kubectl::eventually(|| self.kubectl(args), what, limit, check)
    }
}

/// `share/bin`: this build's binaries, hard-linked where possible (same
/// file system), else copied. The machines build the catalog images
/// themselves, as `skiff agent` does on any machine.
fn link_skiff_into(share: &Path) {
    let bin = share.join("bin");
    std::fs::create_dir_all(&bin).expect("share/bin");
    for name in BINARIES {
        link(&workspace_binary(name), &bin.join(name));
    }
}

fn link(from: &Path, to: &Path) {
    if std::fs::hard_link(from, to).is_err() {
        std::fs::copy(from, to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
    }
}
