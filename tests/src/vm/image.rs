//! The VMs' base image: Debian from the machine's own apt mirror (the only
//! package source this machine reaches) with what a Skiff node runs —
//! systemd, containerd, runc, iproute2, nftables, conntrack, arping, the
//! CNI plugins, a static busybox (what `skiff agent` builds the catalog
//! images from) — plus sshd for the harness; the kernel and initramfs of
//! Debian's `linux-image-amd64`, booted with qemu's `-kernel`/`-initrd`.
//!
//! Built once into `target/vm-images/<key>/` (the key hashes the package
//! list, the suite, the mirror and the provisioning script) and reused:
//! machines boot from copy-on-write overlays of it, so a run writes only
//! what the machines change. Skiff's binaries are not in the image; each
//! run shares them into the machines (see [`super::machine`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian packages in the image, on top of debootstrap's `minbase`.
pub const PACKAGES: &[&str] = &[
    "systemd-sysv",
    "udev",
    "kmod",
    "linux-image-amd64",
    "initramfs-tools",
    "containerd",
    "runc",
    "busybox-static",
    "iproute2",
    "nftables",
    "conntrack",
    "iputils-arping",
    "containernetworking-plugins",
    "openssh-server",
    "util-linux",
];

/// Configures the debootstrapped tree (`$1`) for the lab; `$2` is the
/// harness's public ssh key. Part of the cache key: a change rebuilds.
const PROVISION: &str = r#"set -eu
root=$1 key=$2
echo skiff > "$root/etc/hostname"
printf '/dev/vda / ext4 rw,relatime,errors=remount-ro 0 1\n' > "$root/etc/fstab"
# No resolver: nothing in the lab reaches outside the machine.
printf '# the lab has no DNS outside the cluster\n' > "$root/etc/resolv.conf"
install -d -m 0700 "$root/root/.ssh"
install -m 0600 "$key" "$root/root/.ssh/authorized_keys"
cat > "$root/usr/local/sbin/skiff-vm-setup" <<'EOF'
#!/bin/sh
# The machine's address and name come from the kernel command line, so
# every machine boots the same image.
set -eu
for word in $(cat /proc/cmdline); do
  case $word in
    skiff.ip=*) ip=${word#skiff.ip=} ;;
    skiff.name=*) name=${word#skiff.name=} ;;
  esac
done
ip link set lo up
ip addr add "$ip" dev eth0
ip link set eth0 up
hostname "$name"
echo "$name" > /etc/hostname
echo "${ip%/*} $name" >> /etc/hosts
# Skiff's binaries, shared read-only by the host.
modprobe 9pnet_virtio
mkdir -p /opt/skiff
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288 skiff /opt/skiff
EOF
chmod 0755 "$root/usr/local/sbin/skiff-vm-setup"
cat > "$root/etc/systemd/system/skiff-vm-setup.service" <<'EOF'
[Unit]
Description=Lab address, name and the shared Skiff folder
DefaultDependencies=no
After=systemd-udevd.service systemd-modules-load.service local-fs.target
Before=network.target ssh.service containerd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/skiff-vm-setup
[Install]
WantedBy=multi-user.target
EOF
ln -sf /etc/systemd/system/skiff-vm-setup.service \
  "$root/etc/systemd/system/multi-user.target.wants/skiff-vm-setup.service"
# Nothing to wait for and nothing to sync with: boot faster. containerd
# too: `skiff agent` runs its own, as on any machine it joins.
for unit in containerd.service systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer \
    e2scrub_all.timer fstrim.timer man-db.timer getty@tty1.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
# Smaller: no docs, no package lists, no drivers a VM never loads.
rm -rf "$root/usr/share/doc" "$root/usr/share/man" "$root/usr/share/locale" \
  "$root/var/lib/apt/lists"/* "$root/var/cache/apt"/*.bin "$root/var/cache/apt/archives"/*.deb
for kernel in "$root"/lib/modules/*; do
  for dir in sound drivers/gpu drivers/media drivers/infiniband drivers/net/wireless \
      drivers/net/ethernet drivers/bluetooth drivers/staging drivers/usb drivers/hid \
      drivers/isdn drivers/iio drivers/input/touchscreen net/wireless net/bluetooth \
      net/mac80211 fs/ocfs2 fs/gfs2 fs/xfs fs/btrfs; do
    rm -rf "$kernel/kernel/$dir"
  done
  chroot "$root" depmod -a "$(basename "$kernel")"
done
"#;

/// Size of the image's (sparse) root file system.
const DISK_SIZE: &str = "3G";

/// A built base image.
#[derive(Debug, Clone)]
pub struct Image {
    /// Its cache folder.
    pub dir: PathBuf,
}

impl Image {
    /// The qcow2 root file system machines boot overlays of.
    pub fn disk(&self) -> PathBuf {
        self.dir.join("root.qcow2")
    }

    /// The kernel.
    pub fn kernel(&self) -> PathBuf {
        self.dir.join("vmlinuz")
    }

    /// The initramfs.
    pub fn initrd(&self) -> PathBuf {
        self.dir.join("initrd.img")
    }

    /// The private key whose public half is root's `authorized_keys`.
    pub fn ssh_key(&self) -> PathBuf {
        self.dir.join("id_ed25519")
    }

    /// The cached image for this machine's mirror, built first when there
    /// is none (`cache` is the folder of all cached images; older keys in it
    /// are removed, so it holds one image).
    pub fn cached_or_build(cache: &Path) -> Self {
        let suite = codename();
        let mirror = mirror(&suite);
        let key = cache_key(&suite, &mirror);
        let dir = cache.join(&key);
        let image = Self { dir: dir.clone() };
        if image.disk().is_file() && image.kernel().is_file() && image.initrd().is_file() {
            return image;
        }
        std::fs::create_dir_all(cache).expect("create the VM image cache");
        remove_all_but(cache, &[key.clone(), format!("{key}.partial")]);
        // A partial build resumes after its debootstrap step, the slow one.
        let partial = cache.join(format!("{key}.partial"));
        std::fs::create_dir_all(&partial).expect("create the partial image folder");
        build(&partial, &suite, &mirror);
        std::fs::rename(&partial, &dir).expect("publish the image");
        image
    }
}

/// Builds the image into `dir`: key, debootstrap, provisioning, kernel,
/// root file system.
fn build(dir: &Path, suite: &str, mirror: &str) {
    let key = dir.join("id_ed25519");
    if !key.is_file() {
        let _ = std::fs::remove_file(dir.join("id_ed25519.pub"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "skiff-vm-lab", "-f"])
            .arg(&key));
    }
    let root = dir.join("root");
    let debootstrapped = dir.join("debootstrapped");
    if !debootstrapped.is_file() {
        let _ = std::fs::remove_dir_all(&root);
        run(Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .args([suite, &root.display().to_string(), mirror]));
        std::fs::write(&debootstrapped, "").expect("mark the debootstrap done");
    }
    run(Command::new("bash")
        .args(["-c", PROVISION, "provision"])
        .arg(&root)
        .arg(dir.join("id_ed25519.pub")));
    let boot = root.join("boot");
    for (prefix, name) in [("vmlinuz-", "vmlinuz"), ("initrd.img-", "initrd.img")] {
        let found = std::fs::read_dir(&boot)
            .expect("the image's /boot")
            .flatten()
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(prefix))
            })
            .unwrap_or_else(|| panic!("no {prefix}* in the image's /boot"));
        std::fs::copy(&found, dir.join(name)).expect("copy the kernel out");
    }
    let raw = dir.join("root.raw");
    // mke2fs copies the tree in (owners, modes, links): no loop mount.
    run(Command::new("mke2fs")
        .args(["-q", "-t", "ext4", "-L", "skiff-root", "-d"])
        .arg(&root)
        .arg(&raw)
        .arg(DISK_SIZE));
    run(Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(dir.join("root.qcow2")));
    std::fs::remove_file(&raw).expect("remove the raw image");
    std::fs::remove_dir_all(&root).expect("remove the debootstrap tree");
    std::fs::remove_file(&debootstrapped).expect("remove the debootstrap mark");
}

/// Runs a build step, panicking with its output when it fails.
fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        tail(&String::from_utf8_lossy(&out.stdout)),
        tail(&String::from_utf8_lossy(&out.stderr))
    );
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Removes every cached image (and partial build) but those in `keep`.
fn remove_all_but(cache: &Path, keep: &[String]) {
    for entry in std::fs::read_dir(cache).into_iter().flatten().flatten() {
        if !keep.iter().any(|k| entry.file_name().to_str() == Some(k)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The host's Debian suite (`bookworm`): the mirror carries it.
fn codename() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "bookworm".into())
}

/// The Debian mirror apt uses for `suite` (from `/etc/apt/sources.list`
/// and `sources.list.d/`, one-line or deb822 form): the one place this
/// machine fetches packages from.
pub fn mirror(suite: &str) -> String {
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    let mut more: Vec<PathBuf> = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    more.sort();
    files.extend(more);
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .find_map(|text| mirror_in(&text, suite))
        .unwrap_or_else(|| {
            panic!("no Debian mirror for {suite} in /etc/apt/sources.list or sources.list.d")
        })
}

/// The first `deb` source of `suite` in one sources file.
fn mirror_in(text: &str, suite: &str) -> Option<String> {
    // One-line form: `deb [options] URI SUITE COMPONENTS...`.
    for line in text.lines() {
        let words: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if words.first() != Some(&"deb") {
            continue;
        }
        let mut rest = &words[1..];
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            let close = rest.iter().position(|w| w.ends_with(']'))?;
            rest = &rest[close + 1..];
        }
        if rest.get(1) == Some(&suite) {
            return rest.first().map(|u| u.to_string());
        }
    }
    // deb822 form: stanzas separated by blank lines.
    for stanza in text.split("\n\n") {
        let field = |name: &str| {
            stanza.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_string())
            })
        };
        let is_deb = field("Types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let has_suite = field("Suites").is_some_and(|s| s.split_whitespace().any(|s| s == suite));
        if is_deb && has_suite {
            return field("URIs").and_then(|u| u.split_whitespace().next().map(String::from));
        }
    }
    None
}

/// A stable hash (FNV-1a) of everything the image is made of.
fn cache_key(suite: &str, mirror: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let text = format!(
        "{suite}\n{mirror}\n{}\n{PROVISION}\n{DISK_SIZE}",
        PACKAGES.join(",")
    );
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("debian-{suite}-{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirrors_are_read_from_both_source_formats() {
        let deb822 = "Types: deb\n# comment\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://deb.example/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in(deb822, "bookworm").as_deref(),
            Some("http://deb.example/debian")
        );
        assert_eq!(mirror_in(deb822, "trixie"), None);
        let one_line = "deb-src http://src.example/debian bookworm main\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\n";
        assert_eq!(
            mirror_in(one_line, "bookworm").as_deref(),
            Some("http://one.example/debian")
        );
        assert_eq!(
            mirror_in("deb https://other.example/apt cloud-sdk main\n", "bookworm"),
            None
        );
    }

    #[test]
    fn the_cache_key_follows_the_package_list_and_mirror() {
        let a = cache_key("bookworm", "http://a/debian");
        assert_eq!(a, cache_key("bookworm", "http://a/debian"));
        assert_ne!(a, cache_key("bookworm", "http://b/debian"));
        assert_ne!(a, cache_key("trixie", "http://a/debian"));
    }
}
