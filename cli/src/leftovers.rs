//! What a `skiff up` cluster left on the machine, found from its record
//! (`DIR/cluster.json`) and its data dir, never guessed from names alone
//! that another cluster could share: recorded processes (pid *and* start
//! time), Skiff's own binaries whose command line names the data dir
//! (shims, loggers, a daemon started before it was recorded), the node
//! cgroups (`/<node namespace>`, holding every container process), mounts
//! under the data dir (container root filesystems), the node and pod
//! network namespaces, the bridge and its ports, the nftables tables, and
//! the nodes' CNI state (IP reservations).
//!
//! Routes and addresses live inside the node namespaces (peer routes,
//! LoadBalancer addresses, the pod bridge `cni0`, the nodes' own nftables
//! tables) and go with them; on the host a cluster adds no route or rule
//! beyond the bridge's own connected route, which goes with the bridge.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use skiff_kubelet::network::config::{NETWORK_NAME, POD_IFNAME};
use skiff_kubelet::pod::sandbox::pod_netns_name;

use crate::process::{self, ProcessId};
use crate::record::ClusterRecord;

/// The binaries a cluster runs (the shim and logger are started by
/// containerd, so they are found by command line, not by record).
const CLUSTER_BINARIES: &[&str] = &[
    "containerd",
    "containerd-shim-runc-v2",
    "skiff-control-plane",
    "skiff-kubelet",
    "skiff-cri-logger",
];

/// One thing a cluster left behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leftover {
    /// A process `skiff up` recorded, still running.
    Process {
        /// What it is (`control-plane`, `node1`, `containerd`).
        role: String,
        /// Its recorded identity.
        id: ProcessId,
    },
    /// One of the cluster's binaries, not recorded, naming the data dir.
    Stray {
        /// Its pid.
        pid: u32,
        /// Its program name.
        program: String,
    },
    /// A node's cgroup (in one hierarchy), with whatever runs in it.
    Cgroup(PathBuf),
    /// A mount under the data dir.
    Mount(PathBuf),
    /// A network namespace in `/run/netns`.
    Netns(String),
    /// A network interface on the host.
    Link(String),
    /// An nftables table (`family name`).
    Table(String),
    /// A node's CNI state: its IP reservations and cached results.
    CniState(PathBuf),
}

impl Leftover {
    /// kubectl-style `kind/name`.
    pub fn name(&self) -> String {
        match self {
            Leftover::Process { role, id } => format!("process/{role} (pid {})", id.pid),
            Leftover::Stray { pid, program } => format!("process/{program} (pid {pid})"),
            Leftover::Cgroup(p) => format!(
                "cgroup/{}",
                p.strip_prefix("/sys/fs/cgroup").unwrap_or(p).display()
            ),
            Leftover::Mount(p) => format!("mount{}", p.display()),
            Leftover::Netns(n) => format!("netns/{n}"),
            Leftover::Link(n) => format!("link/{n}"),
            Leftover::Table(t) => format!("nftables/{t}"),
            Leftover::CniState(p) => format!("cni-state{}", p.display()),
        }
    }

    /// Removes it; the past participle to print, or why it failed.
    pub async fn remove(&self) -> Result<&'static str, String> {
        match self {
            Leftover::Process { id, .. } => {
                id.stop(Duration::ZERO).await;
                Ok("killed")
            }
            Leftover::Stray { pid, .. } => {
                // Found by scanning just now, and only Skiff's own binaries
                // naming this data dir: no recycled pid can match both.
                if let Some(id) = ProcessId::of(*pid) {
                    id.stop(Duration::ZERO).await;
                }
                Ok("killed")
            }
            Leftover::Cgroup(path) => remove_cgroup(path).await.map(|()| "removed"),
            Leftover::Mount(path) => unmount(path).map(|()| "unmounted"),
            // Each may also go with something removed before it (a veth
            // with its namespace): gone is as good as deleted.
            Leftover::Netns(name) => run("ip", &["netns", "delete", name])
                .or_else(|e| if netns_exists(name) { Err(e) } else { Ok(()) })
                .map(|()| "deleted"),
            Leftover::Link(name) => run("ip", &["link", "delete", name])
                .or_else(|e| if link_exists(name) { Err(e) } else { Ok(()) })
                .map(|()| "deleted"),
            Leftover::Table(table) => run("nft", &[&format!("delete table {table}")])
                .or_else(|e| {
                    if list_tables().contains(table) {
                        Err(e)
                    } else {
                        Ok(())
                    }
                })
                .map(|()| "deleted"),
            Leftover::CniState(path) => std::fs::remove_dir_all(path)
                .map(|()| "removed")
                .map_err(|e| e.to_string()),
        }
    }
}

/// Everything the cluster recorded in `record` (with its data in `dir`)
/// left behind, in the order to remove it: processes first (so nothing
/// makes more), then cgroups, mounts, namespaces, links, tables, state.
/// `pod_uids` adds pods known otherwise (containerd's labels) to those
/// the nodes' state names.
pub fn find(
    dir: &Path,
    record: Option<&ClusterRecord>,
    pod_uids: &BTreeSet<(String, String)>,
) -> Vec<Leftover> {
    let mut found = Vec::new();
    if let Some(record) = record {
        found.extend(
            record
                .processes()
                .into_iter()
                .filter(|(_, id)| id.is_running() && Some(*id) != ProcessId::current())
                .map(|(role, id)| Leftover::Process { role, id }),
        );
    }
    let recorded: BTreeSet<u32> = found
        .iter()
        .filter_map(|l| match l {
            Leftover::Process { id, .. } => Some(id.pid),
            _ => None,
        })
        .collect();
    found.extend(
        strays(dir)
            .into_iter()
            .filter(|(pid, _)| !recorded.contains(pid))
            .map(|(pid, program)| Leftover::Stray { pid, program }),
    );
    let Some(record) = record else {
        found.extend(mounts_under(dir).into_iter().map(Leftover::Mount));
        return found;
    };
    for node in &record.nodes {
        found.extend(cgroups(&node.namespace).into_iter().map(Leftover::Cgroup));
    }
    found.extend(mounts_under(dir).into_iter().map(Leftover::Mount));
    // Pod namespaces: named after the node and the pod's uid.
    let mut uids = pod_uids.clone();
    for node in &record.nodes {
        for uid in node_pod_uids(&dir.join("nodes").join(&node.name)) {
            uids.insert((node.name.clone(), uid));
        }
    }
    for (node, uid) in &uids {
        let name = pod_netns_name(&format!("skiff-{node}"), uid);
        if netns_exists(&name) {
            found.push(Leftover::Netns(name));
        }
    }
    if let Some(net) = record.network.as_ref().filter(|n| n.owned()) {
        let mut indexes: BTreeSet<usize> = record.nodes.iter().map(|n| n.index).collect();
        indexes.extend(net.netns_indexes_present());
        for &i in &indexes {
            if netns_exists(&net.node_netns(i)) {
                found.push(Leftover::Netns(net.node_netns(i)));
            }
        }
        for &i in &indexes {
            let port = net.port(i);
            if link_exists(&port) {
                found.push(Leftover::Link(port));
            }
        }
        if link_exists(&net.bridge()) {
            found.push(Leftover::Link(net.bridge()));
        }
        let tables = list_tables();
        for table in net.tables() {
            if tables.contains(&table) {
                found.push(Leftover::Table(table));
            }
        }
    }
    for node in &record.nodes {
        let cni = dir.join("nodes").join(&node.name).join("cni");
        if cni.exists() {
            found.push(Leftover::CniState(cni));
        }
    }
    found
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("running {program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// Skiff's own binaries whose command line names `dir`.
fn strays(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.display().to_string();
    let me = std::process::id();
    process::all_pids()
        .into_iter()
        .filter(|&pid| pid != me)
        .filter_map(|pid| {
            let line = process::cmdline(pid)?;
            let program = line.split(' ').next()?.rsplit('/').next()?.to_string();
            (CLUSTER_BINARIES.contains(&program.as_str()) && mentions(&line, &needle))
                .then_some((pid, program))
        })
        .collect()
}

/// Whether `line` names `dir` itself or something inside it (not a sibling
/// such as `dir-2`).
fn mentions(line: &str, dir: &str) -> bool {
    line.match_indices(dir).any(|(at, _)| {
        matches!(
            line[at + dir.len()..].chars().next(),
            None | Some('/' | ' ' | '"' | '\'' | '?' | '&')
        )
    })
}

/// The node cgroup `/<namespace>` in every hierarchy where it exists
/// (cgroup v2's single tree, or each v1 controller's).
pub fn cgroups(namespace: &str) -> Vec<PathBuf> {
    let root = Path::new("/sys/fs/cgroup");
    let mut found = Vec::new();
    if root.join(namespace).join("cgroup.procs").exists() {
        found.push(root.join(namespace));
    }
    for hierarchy in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let path = hierarchy.path().join(namespace);
        if path.join("cgroup.procs").exists() {
            found.push(path);
        }
    }
    found
}

/// `path` and its descendants, deepest first.
fn cgroup_tree(path: &Path) -> Vec<PathBuf> {
    let mut all = vec![path.to_path_buf()];
    let mut i = 0;
    while i < all.len() {
        let children: Vec<PathBuf> = std::fs::read_dir(&all[i])
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        all.extend(children);
        i += 1;
    }
    all.reverse();
    all
}

/// Kills everything in the cgroup tree (thawed first: a frozen process
/// cannot die), then removes it.
async fn remove_cgroup(path: &Path) -> Result<(), String> {
    let freezer = path.join("freezer.state");
    if freezer.exists() {
        let _ = std::fs::write(&freezer, "THAWED");
    }
    let _ = std::fs::write(path.join("cgroup.freeze"), "0");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut alive = 0;
        for cgroup in cgroup_tree(path) {
            let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                alive += 1;
                // SAFETY: kill has no memory-safety preconditions; the pid
                // was just read from this cluster's node cgroup.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        if alive == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for cgroup in cgroup_tree(path) {
        if let Err(e) = std::fs::remove_dir(&cgroup)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(format!("{}: {e}", cgroup.display()));
        }
    }
    Ok(())
}

/// Mount points under `dir`, deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let prefix = format!("{}/", dir.display());
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount)
        .filter(|p| p.starts_with(&prefix))
        .map(PathBuf::from)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && let Some(Ok(digits)) = bytes.get(i + 1..i + 4).map(std::str::from_utf8)
            && let Ok(v) = u8::from_str_radix(digits, 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unmount(path: &Path) -> Result<(), String> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).map_err(|e| e.to_string())?;
    // SAFETY: a valid NUL-terminated path; MNT_DETACH has no other inputs.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// The pods a node's state names: its checkpoints (`<uid>.json`) and its
/// cached CNI results (`<network>-<uid>-<ifname>.json`).
fn node_pod_uids(node_dir: &Path) -> BTreeSet<String> {
    let stems = |dir: PathBuf| -> Vec<String> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".json")
                    .map(String::from)
            })
            .collect()
    };
    let mut uids: BTreeSet<String> = stems(node_dir.join("checkpoints")).into_iter().collect();
    let results = skiff_kubelet::network::config::results_dir(node_dir);
    uids.extend(stems(results).into_iter().filter_map(|s| {
        s.strip_prefix(&format!("{NETWORK_NAME}-"))?
            .strip_suffix(&format!("-{POD_IFNAME}"))
            .map(String::from)
    }));
    uids
}

pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// `family name` of every nftables table on the host.
pub fn list_tables() -> BTreeSet<String> {
    Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("table "))
                .map(String::from)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_dir_is_named_only_as_itself_or_a_parent() {
        assert!(mentions(
            "containerd --config /tmp/c/containerd/config.toml",
            "/tmp/c"
        ));
        assert!(mentions(
            "skiff-control-plane --data-dir /tmp/c --listen x",
            "/tmp/c"
        ));
        assert!(mentions("skiff-control-plane --data-dir /tmp/c", "/tmp/c"));
        assert!(!mentions(
            "skiff-control-plane --data-dir /tmp/c2",
            "/tmp/c"
        ));
        assert!(!mentions(
            "skiff-control-plane --data-dir /tmp/c-2/x",
            "/tmp/c"
        ));
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_mount(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mount("/run/netns/x"), "/run/netns/x");
    }

    #[test]
    fn pod_uids_come_from_checkpoints_and_cni_results() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("checkpoints")).expect("mkdir");
        std::fs::write(dir.join("checkpoints/aaaa-1111.json"), "{}").expect("write");
        let results = skiff_kubelet::network::config::results_dir(&dir);
        std::fs::create_dir_all(&results).expect("mkdir");
        std::fs::write(results.join("skiff-bbbb-2222-eth0.json"), "{}").expect("write");
        std::fs::write(results.join("other.txt"), "").expect("write");
        let uids = node_pod_uids(&dir);
        assert_eq!(
            uids.into_iter().collect::<Vec<_>>(),
            vec!["aaaa-1111".to_string(), "bbbb-2222".to_string()]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("skiff-leftovers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
