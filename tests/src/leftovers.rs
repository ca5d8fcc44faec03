//! What a `skiff up` cluster left on the machine, looked up independently
//! of `skiff down`'s own bookkeeping, so a test can assert that nothing
//! is: processes naming its data dir (control plane, kubelets, containerd,
//! shims, loggers), anything in its node cgroups, its namespaces, links,
//! host routes and rules, nftables tables and mounts.

use std::path::Path;
use std::process::Command;

/// Everything of the cluster with data in `dir` and network number `id`
/// still on the machine, one description per item; `pod_netns` names pod
/// namespaces the test knows of (`skiff-<node>-<uid16>`).
pub fn of_cluster(dir: &Path, id: u64, pod_netns: &[String]) -> Vec<String> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let needle = dir.display().to_string();
    let node_prefix = format!("skiff{id}-node");
    let mut left = Vec::new();
    let me = std::process::id().to_string();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if pid == me || !pid.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        // A zombie runs nothing and holds nothing; its reaper collects it.
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        if stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'))
        {
            continue;
        }
        let line = String::from_utf8_lossy(&raw).replace('\0', " ");
        if names(&line, &needle) {
            left.push(format!("process {pid}: {line}"));
            continue;
        }
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if cgroup.contains(&format!("/{node_prefix}")) {
            left.push(format!("process {pid} in a node cgroup: {line}"));
        }
    }
    for hierarchy in std::iter::once(Path::new("/sys/fs/cgroup").to_path_buf()).chain(
        std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path()),
    ) {
        for entry in std::fs::read_dir(&hierarchy)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry
                .file_name()
                .to_string_lossy()
                .starts_with(&node_prefix)
            {
                left.push(format!("cgroup {}", entry.path().display()));
            }
        }
    }
    for entry in std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&node_prefix) || pod_netns.contains(&name) {
            left.push(format!("netns {name}"));
        }
    }
    let bridge = format!("skiff{id}");
    let port_prefix = format!("sk{id}n");
    for entry in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == bridge || name.starts_with(&port_prefix) {
            left.push(format!("link {name}"));
        }
    }
    let subnet = format!("172.29.{id}.");
    for (what, args) in [
        ("route", &["route", "show"][..]),
        ("rule", &["rule", "show"]),
    ] {
        for line in output("ip", args).lines() {
            if line.contains(&subnet) || line.split_whitespace().any(|w| w == bridge) {
                left.push(format!("{what} {line}"));
            }
        }
    }
    for line in output("nft", &["list", "tables"]).lines() {
        if line.trim() == format!("table inet {bridge}")
            || line.trim() == format!("table bridge {bridge}")
        {
            left.push(line.trim().to_string());
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for point in mounts.lines().filter_map(|l| l.split(' ').nth(4)) {
        let netns = point.strip_prefix("/run/netns/").unwrap_or_default();
        if names(point, &needle)
            || netns.starts_with(&node_prefix)
            || pod_netns.iter().any(|p| p == netns)
        {
            left.push(format!("mount {point}"));
        }
    }
    left
}

/// Whether `text` names `dir` or a path inside it.
fn names(text: &str, dir: &str) -> bool {
    text.match_indices(dir).any(|(at, _)| {
        matches!(
            text[at + dir.len()..].chars().next(),
            None | Some('/' | ' ' | '"' | '\'' | '?' | '&')
        )
    })
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// A pod's network namespace as a `skiff up` node names it.
pub fn pod_netns(node: &str, uid: &str) -> String {
    let uid: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    format!("skiff-{node}-{uid}")
}
