//! `DIR/cluster.json`: what a running `skiff up`, `skiff server` or
//! `skiff agent` started — each process by pid and start time, its
//! containerd, nodes and network — saved the moment each part exists, so
//! `skiff node`, `skiff status` and `skiff down` (also after a crash) find
//! all of it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::network::ClusterNetwork;
use crate::process::{self, ProcessId};

/// One node of the running cluster.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Node name.
    pub name: String,
    /// Kubelet pid (0 when killed).
    pub pid: u32,
    /// The kubelet's start time (see [`ProcessId`]).
    #[serde(default)]
    pub start_time: u64,
    /// Kubelet command line, to start it again.
    pub args: Vec<String>,
    /// containerd namespace of the node (also its cgroup parent).
    pub namespace: String,
    /// `stopped` when frozen with `skiff node stop`.
    pub stopped: bool,
    /// Its number in the cluster (`node<index>`).
    #[serde(default)]
    pub index: usize,
    /// Its network namespace, when it has one.
    #[serde(default)]
    pub netns: Option<PathBuf>,
    /// `true` while cut off with `skiff node partition`.
    #[serde(default)]
    pub partitioned: bool,
}

/// What `DIR/cluster.json` records.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClusterRecord {
    /// `skiff up`'s own pid.
    pub pid: u32,
    /// `skiff up`'s start time (see [`ProcessId`]).
    #[serde(default)]
    pub start_time: u64,
    /// The boot the processes ran in: start times count from it.
    #[serde(default)]
    pub boot_id: String,
    /// The control plane's pid.
    pub control_plane_pid: u32,
    /// The control plane's start time.
    #[serde(default)]
    pub control_plane_start_time: u64,
    /// The private containerd.
    #[serde(default)]
    pub containerd: Option<ProcessId>,
    /// Kubernetes API address.
    pub api: String,
    /// The containerd socket.
    pub containerd_socket: PathBuf,
    /// The nodes.
    pub nodes: Vec<NodeRecord>,
    /// The bridge, namespaces and nftables table the cluster made.
    #[serde(default)]
    pub network: Option<ClusterNetwork>,
}

impl ClusterRecord {
    /// A recorded process, if it was recorded in this boot with its start
    /// time (a record of an older skiff, or from before a reboot, names
    /// nothing that can still run).
    fn process(&self, pid: u32, start_time: u64) -> Option<ProcessId> {
        (pid > 0 && start_time > 0 && self.boot_id == process::boot_id())
            .then_some(ProcessId { pid, start_time })
    }

    /// `skiff up` itself.
    pub fn skiff_up(&self) -> Option<ProcessId> {
        self.process(self.pid, self.start_time)
    }

    /// The control plane.
    pub fn control_plane(&self) -> Option<ProcessId> {
        self.process(self.control_plane_pid, self.control_plane_start_time)
    }

    /// The private containerd.
    pub fn containerd_process(&self) -> Option<ProcessId> {
        self.containerd
            .and_then(|c| self.process(c.pid, c.start_time))
    }

    /// Every process `skiff up` started (and itself), by role.
    pub fn processes(&self) -> Vec<(String, ProcessId)> {
        let mut all = vec![
            ("skiff-up".to_string(), self.skiff_up()),
            ("control-plane".to_string(), self.control_plane()),
            ("containerd".to_string(), self.containerd_process()),
        ];
        for node in &self.nodes {
            all.push((node.name.clone(), node.kubelet(self)));
        }
        all.into_iter()
            .filter_map(|(role, id)| Some((role, id?)))
            .collect()
    }
}

impl NodeRecord {
    /// The node's kubelet, as recorded.
    pub fn kubelet(&self, record: &ClusterRecord) -> Option<ProcessId> {
        record.process(self.pid, self.start_time)
    }
}

pub(crate) fn record_path(dir: &Path) -> PathBuf {
    dir.join("cluster.json")
}

pub(crate) fn load(dir: &Path) -> anyhow::Result<ClusterRecord> {
    let text = std::fs::read_to_string(record_path(dir)).with_context(|| {
        format!(
            "no running cluster in {} (start one with `skiff up --data-dir {}`)",
            dir.display(),
            dir.display()
        )
    })?;
    Ok(serde_json::from_str(&text)?)
}

pub(crate) fn save(dir: &Path, record: &ClusterRecord) -> anyhow::Result<()> {
    let tmp = dir.join("cluster.json.partial");
    std::fs::write(&tmp, serde_json::to_vec_pretty(record)?)?;
    std::fs::rename(tmp, record_path(dir))?;
    Ok(())
}
