//! Freezing a node: every container of a node sits under the cgroup named
//! after its containerd namespace, so one write stops or resumes them all
//! (`skiff node stop|start`), on cgroup v1 and v2.

use std::path::Path;

/// Freezes (or thaws) every container of a node: they all sit under the
/// cgroup named after the node's containerd namespace.
pub(crate) fn set_frozen(namespace: &str, frozen: bool) {
    let v1 = Path::new("/sys/fs/cgroup/freezer").join(namespace);
    if v1.is_dir() {
        let state = if frozen { "FROZEN" } else { "THAWED" };
        let _ = std::fs::write(v1.join("freezer.state"), state);
        return;
    }
    let v2 = Path::new("/sys/fs/cgroup")
        .join(namespace)
        .join("cgroup.freeze");
    if v2.is_file() {
        let _ = std::fs::write(v2, if frozen { "1" } else { "0" });
    }
}
