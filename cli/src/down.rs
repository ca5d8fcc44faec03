//! `skiff down --data-dir DIR`: removes everything a `skiff up` cluster
//! made, whether `skiff up` still runs (it is asked to stop and cleans up
//! itself), stopped cleanly, or was killed and left it all running. The
//! same teardown stops a cluster at the end of `skiff up` and clears a
//! dead cluster's leftovers before `skiff up` starts a new one.
//!
//! Order matters: first what would make more (the control plane, the
//! kubelets), then the containers through containerd (task, record and
//! snapshot, as the kubelet would), then containerd, then a sweep of
//! whatever is still there ([`leftovers`]), repeated until nothing is.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::bail;
use skiff_kubelet::runtime::ContainerRuntime;
use skiff_kubelet::runtime::containerd::{ContainerdConfig, ContainerdRuntime, ManagedContainerd};
use skiff_kubelet::runtime::labels;

use crate::freeze::set_frozen;
use crate::leftovers::{self, Leftover};
use crate::process::ProcessId;
use crate::process::sibling;
use crate::progress;
use crate::record::{self, ClusterRecord};

/// How long `skiff up` gets to clean up after SIGTERM before it is killed
/// and its cluster swept here.
const UP_GRACE: Duration = Duration::from_secs(90);

/// How long containerd gets to exit after SIGTERM.
const CONTAINERD_GRACE: Duration = Duration::from_secs(10);

/// Where each removal is reported.
pub type Say = fn(&str);

/// `skiff down --data-dir DIR`.
pub async fn down(dir: &Path) -> anyhow::Result<()> {
    let Ok(dir) = dir.canonicalize() else {
        progress::out(&format!("No cluster in {}.", dir.display()));
        return Ok(());
    };
    let record = record::load(&dir).ok();
    let mut removed = 0;
    if let Some(up) = record
        .as_ref()
        .and_then(ClusterRecord::skiff_up)
        .filter(ProcessId::is_running)
    {
        progress::out(&format!("process/skiff-up (pid {}) stopping", up.pid));
        up.signal(libc::SIGTERM);
        if !up.wait_exit(UP_GRACE).await {
            up.signal(libc::SIGKILL);
            up.wait_exit(Duration::from_secs(5)).await;
        }
        progress::out(&format!("process/skiff-up (pid {}) stopped", up.pid));
        removed += 1;
    }
    removed += tear_down(&dir, record.as_ref(), None, progress::out).await?;
    if removed == 0 {
        progress::out(&format!("Nothing to remove in {}.", dir.display()));
    }
    Ok(())
}

/// Removes everything of the cluster in `record` (data in `dir`), printing
/// each removal with `say`; `containerd` is the daemon when the caller
/// still holds it. Returns how many things it removed; fails, keeping the
/// record for another try, when something stays. Without a record only
/// what names `dir` is found (Skiff's processes, mounts).
pub async fn tear_down(
    dir: &Path,
    record: Option<&ClusterRecord>,
    containerd: Option<ManagedContainerd>,
    say: Say,
) -> anyhow::Result<usize> {
    let mut removed = 0;
    let report = |leftover: &Leftover, result: Result<&str, String>| match result {
        Ok(verb) => say(&format!("{} {verb}", leftover.name())),
        Err(e) => say(&format!("{}: {e}", leftover.name())),
    };
    // What makes more: the control plane and kubelets (recorded or not).
    let none = BTreeSet::new();
    for leftover in leftovers::find(dir, record, &none) {
        let makes_more = match &leftover {
            Leftover::Process { role, .. } => role != "containerd",
            Leftover::Stray { program, .. } => {
                program == "skiff-control-plane" || program == "skiff-kubelet"
            }
            _ => false,
        };
        if makes_more {
            report(&leftover, leftover.remove().await);
            removed += 1;
        }
    }
    let mut pod_uids = BTreeSet::new();
    if let Some(record) = record {
        let (count, uids) = remove_containers(dir, record, containerd, say).await;
        removed += count;
        pod_uids = uids;
    }
    for _ in 0..3 {
        let left = leftovers::find(dir, record, &pod_uids);
        if left.is_empty() {
            break;
        }
        for leftover in left {
            report(&leftover, leftover.remove().await);
            removed += 1;
        }
    }
    let left = leftovers::find(dir, record, &pod_uids);
    if !left.is_empty() {
        let names: Vec<String> = left.iter().map(Leftover::name).collect();
        bail!(
            "could not remove {}; the record stays in {} for another `skiff down`",
            names.join(", "),
            dir.display()
        );
    }
    if record.is_some() {
        let _ = std::fs::remove_file(record::record_path(dir));
    }
    Ok(removed)
}

/// Removes every container of the cluster's nodes through containerd: the
/// running daemon (`held`, or the recorded one), or else, while shims of
/// the cluster run, one started again on the cluster's state (it finds
/// the shims of the one that died).
/// Stops the daemon afterwards. Returns how many things it removed and the
/// pods `(node, uid)` the containers belonged to.
async fn remove_containers(
    dir: &Path,
    record: &ClusterRecord,
    held: Option<ManagedContainerd>,
    say: Say,
) -> (usize, BTreeSet<(String, String)>) {
    let mut removed = 0;
    let mut pods = BTreeSet::new();
    let recorded = record.containerd_process().filter(ProcessId::is_running);
    let state = dir.join("containerd");
    let strays = leftovers::find(dir, None, &BTreeSet::new());
    let shims_alive = strays.iter().any(
        |l| matches!(l, Leftover::Stray { program, .. } if program.starts_with("containerd-shim")),
    );
    let started = if held.is_some() || recorded.is_some() {
        held
    } else if !shims_alive {
        // No container runs: the sweep removes what is left of them.
        None
    } else {
        // A daemon nobody recorded would hold the metadata lock.
        for leftover in strays {
            if matches!(&leftover, Leftover::Stray { program, .. } if program == "containerd") {
                match leftover.remove().await {
                    Ok(verb) => say(&format!("{} {verb}", leftover.name())),
                    Err(e) => say(&format!("{}: {e}", leftover.name())),
                }
                removed += 1;
            }
        }
        match ManagedContainerd::start(&state).await {
            Ok(daemon) => {
                say("process/containerd started again to remove the containers");
                Some(daemon)
            }
            Err(e) => {
                say(&format!("process/containerd could not start again: {e}"));
                None
            }
        }
    };
    let socket = started.as_ref().map_or_else(
        || record.containerd_socket.clone(),
        ManagedContainerd::socket,
    );
    if started.is_some() || recorded.is_some() {
        let logger =
            sibling("skiff-cri-logger").unwrap_or_else(|_| PathBuf::from("skiff-cri-logger"));
        for node in &record.nodes {
            set_frozen(&node.namespace, false);
            let mut config = ContainerdConfig::new(
                socket.clone(),
                &node.namespace,
                &logger,
                &dir.join("nodes").join(&node.name),
            );
            config.runc_root = Some(state.join("runc"));
            let Ok(runtime) = ContainerdRuntime::connect(config).await else {
                continue;
            };
            let Ok(all) = runtime.list_containers(&Default::default()).await else {
                continue;
            };
            for c in all {
                if let Some(uid) = c.labels.get(labels::POD_UID) {
                    pods.insert((node.name.clone(), uid.clone()));
                }
                let name = format!("container/{}/{}", node.namespace, c.id);
                match runtime.remove_container(&c.id).await {
                    Ok(()) => say(&format!("{name} removed")),
                    Err(e) => say(&format!("{name}: {e}")),
                }
                removed += 1;
            }
        }
    }
    if let Some(daemon) = started {
        let pid = daemon.pid();
        daemon.stop().await;
        if let Some(pid) = pid {
            say(&format!("process/containerd (pid {pid}) stopped"));
        }
        removed += 1;
    } else if let Some(id) = recorded {
        id.stop(CONTAINERD_GRACE).await;
        say(&format!("process/containerd (pid {}) stopped", id.pid));
        removed += 1;
    }
    (removed, pods)
}
