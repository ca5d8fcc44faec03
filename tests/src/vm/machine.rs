//! One virtual machine: qemu (KVM or TCG, see [`super::accel`]), its own kernel (the image's), a
//! copy-on-write qcow2 overlay of the image as its disk, a tap on the
//! lab bridge, and a host folder shared read-only at `/opt/skiff` (Skiff's
//! binaries and image tarballs, so nothing is copied into the disk).
//! The harness runs commands in it over ssh as root. Dropping it (or
//! [`Machine::power_off`]) kills qemu outright: a hard power-off.

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::accel::Accel;
use super::image::Image;
use super::network::{HostNetwork, lab_ip};

/// Memory of each machine.
const MEMORY_MIB: u32 = 1280;

/// What a machine is made of.
#[derive(Debug, Clone)]
pub struct Spec<'a> {
    /// Host name, also the node name (short: it names the tap too).
    pub name: &'a str,
    /// Last octet of its lab address.
    pub host: u8,
    /// The host folder shared at `/opt/skiff`.
    pub share: &'a Path,
    /// Where its overlay disk and console log go.
    pub dir: &'a Path,
}

/// A running machine.
#[derive(Debug)]
pub struct Machine {
    name: String,
    ip: Ipv4Addr,
    key: PathBuf,
    console: PathBuf,
    overlay: PathBuf,
    qemu: Option<Child>,
}

impl Machine {
    /// Boots a machine (returns once qemu runs; see [`Self::wait_for_ssh`]).
    pub fn boot(image: &Image, network: &mut HostNetwork, spec: &Spec<'_>, accel: Accel) -> Self {
        let ip = lab_ip(spec.host);
        let overlay = spec.dir.join(format!("{}.qcow2", spec.name));
        let out = Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"])
            .arg(image.disk())
            .arg(&overlay)
            .output()
            .expect("qemu-img");
        assert!(
            out.status.success(),
            "qemu-img create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tap = network.add_tap(spec.name);
        let console = spec.dir.join(format!("{}.console.log", spec.name));
        let append = format!(
            "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet panic=-1 skiff.ip={ip}/24 skiff.name={}",
            spec.name
        );
        let mut qemu = Command::new("qemu-system-x86_64");
        qemu.args(accel.qemu_args())
            .args(["-m", &MEMORY_MIB.to_string()])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-serial")
            .arg(format!("file:{}", console.display()))
            .arg("-kernel")
            .arg(image.kernel())
            .arg("-initrd")
            .arg(image.initrd())
            .args(["-append", &append])
            .arg("-drive")
            // cache=unsafe: a test machine's disk need not survive the host.
            .arg(format!(
                "file={},if=virtio,format=qcow2,cache=unsafe,discard=unmap",
                overlay.display()
            ))
            .arg("-netdev")
            .arg(format!("tap,id=lab,ifname={tap},script=no,downscript=no"))
            .arg("-device")
            .arg(format!(
                "virtio-net-pci,netdev=lab,mac=52:54:00:38:00:{:02x}",
                spec.host
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=skiff,security_model=none,readonly=on",
                spec.share.display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0);
        // SAFETY: prctl is async-signal-safe; a test process killed before
        // its destructors run takes its machines with it.
        unsafe {
            qemu.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let qemu = qemu.spawn().expect("qemu-system-x86_64");
        Self {
            name: spec.name.to_string(),
            ip,
            key: image.ssh_key(),
            console,
            overlay,
            qemu: Some(qemu),
        }
    }

    /// The machine's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its lab address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// Waits until sshd answers; panics with the console's tail if the
    /// machine does not come up within `limit`.
    pub fn wait_for_ssh(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if self.ssh_command("true").status().is_ok_and(|s| s.success()) {
                return;
            }
            if let Some(qemu) = self.qemu.as_mut()
                && let Ok(Some(status)) = qemu.try_wait()
            {
                panic!("{}: qemu exited ({status}):\n{}", self.name, self.console());
            }
            assert!(
                Instant::now() < deadline,
                "{}: no ssh after {limit:?}; console:\n{}",
                self.name,
                self.console()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    fn ssh_command(&self, script: &str) -> Command {
        let mut command = Command::new("ssh");
        command
            .arg("-i")
            .arg(&self.key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=2",
            ])
            .arg(format!("root@{}", self.ip))
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs a shell command in the machine.
    pub fn ssh(&self, script: &str) -> Output {
        self.ssh_command(script).output().expect("ssh")
    }

    /// Runs a shell command in the machine; its stdout, or a panic with
    /// its stderr.
    pub fn ssh_ok(&self, script: &str) -> String {
        let out = self.ssh(script);
        assert!(
            out.status.success(),
            "{}: `{script}` failed ({}): {}{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The tail of the serial console.
    pub fn console(&self) -> String {
        let text = std::fs::read_to_string(&self.console).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Pulls the plug: SIGKILL to qemu, no shutdown inside.
    pub fn power_off(&mut self) {
        if let Some(mut qemu) = self.qemu.take() {
            let _ = qemu.kill();
            let _ = qemu.wait();
        }
    }

    /// Whether qemu still runs.
    pub fn is_running(&mut self) -> bool {
        self.qemu
            .as_mut()
            .is_some_and(|q| q.try_wait().ok().flatten().is_none())
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        self.power_off();
        let _ = std::fs::remove_file(&self.overlay);
    }
}
