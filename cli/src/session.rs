//! What `skiff up`, `skiff server` and `skiff agent` share as long-running
//! processes: a data dir claimed for this process (refused while another
//! one's process runs, cleared of a dead one's leftovers), a record of
//! every part saved the moment it exists so `skiff down` finds them after
//! a crash, and the teardown of all of it when a signal or an error ends
//! the run.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use skiff_images::Sources;
use skiff_kubelet::runtime::containerd::ManagedContainerd;

use crate::process::{self, ProcessId, sibling, spawn};
use crate::progress::{self, detail, step};
use crate::record::{self, ClusterRecord, NodeRecord};
use crate::signals::Shutdown;
use crate::{api, down};

/// How long the control plane may take to answer `/healthz`.
const CONTROL_PLANE_START: Duration = Duration::from_secs(30);

/// A claimed data dir and the signals that end its run.
pub(crate) struct Session {
    shutdown: Shutdown,
    parts: Parts,
}

/// What this process started, recorded in `DIR/cluster.json`.
pub(crate) struct Parts {
    pub dir: PathBuf,
    pub record: ClusterRecord,
    containerd: Option<ManagedContainerd>,
}

impl Session {
    /// Claims `dir` for this process, whose API is at `api`. With
    /// `api_port`, its ports must be free before anything starts: a taken
    /// port would otherwise fail the control plane after the rest is up,
    /// or another cluster's API would answer the readiness checks.
    pub async fn claim(dir: &Path, api: String, api_port: Option<u16>) -> anyhow::Result<Self> {
        // Before anything starts: from here on a signal stops the run
        // cleanly at whatever point it arrives, never the process.
        let shutdown = Shutdown::install()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        refuse_running_or_clear(&dir).await?;
        if let Some(port) = api_port {
            ports_free(port)?;
        }
        let me = ProcessId::current().context("reading this process's start time")?;
        let record = ClusterRecord {
            pid: me.pid,
            start_time: me.start_time,
            boot_id: process::boot_id(),
            control_plane_pid: 0,
            control_plane_start_time: 0,
            containerd: None,
            api,
            containerd_socket: dir.join("containerd").join("containerd.sock"),
            nodes: Vec::new(),
            network: None,
        };
        let parts = Parts {
            dir,
            record,
            containerd: None,
        };
        parts.save()?;
        Ok(Self { shutdown, parts })
    }

    /// Runs `body` until it ends or a signal arrives, then removes every
    /// recorded part (`stopping` names that step) whichever came first.
    pub async fn run(
        mut self,
        stopping: &str,
        body: impl AsyncFnOnce(&mut Parts) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let result = tokio::select! {
            result = body(&mut self.parts) => result,
            signal = self.shutdown.recv() => {
                progress::line("");
                step(&format!("{signal} received"));
                Ok(())
            }
        };
        step(stopping);
        let parts = self.parts;
        let stopped =
            down::tear_down(&parts.dir, Some(&parts.record), parts.containerd, detail).await;
        detail("done");
        result.and(stopped.map(drop))
    }
}

/// Refuses a data dir whose cluster (or server, or agent) still runs;
/// removes what one that did not stop cleanly left.
async fn refuse_running_or_clear(dir: &Path) -> anyhow::Result<()> {
    if let Ok(old) = record::load(dir) {
        if let Some(running) = old.skiff_up().filter(ProcessId::is_running) {
            bail!(
                "a cluster is already running from {} (skiff, pid {}); stop it with `skiff down --data-dir {}`",
                dir.display(),
                running.pid,
                dir.display()
            );
        }
        step("removing what a cluster that did not stop cleanly left");
        down::tear_down(dir, Some(&old), None, detail).await?;
    }
    Ok(())
}

/// Fails, naming the port, unless the ports the cluster listens on are
/// free on every address: the API (`api_port`), the node registry
/// (`+1`) and cluster DNS (`+2`, TCP and UDP). Bound on the wildcard
/// address, which any listener of the same port on any address blocks.
pub(crate) fn ports_free(api_port: u16) -> anyhow::Result<()> {
    let what = [
        (api_port, "the Kubernetes API (--api-port)"),
        (
            api_port.wrapping_add(1),
            "the node registry (--api-port + 1)",
        ),
        (api_port.wrapping_add(2), "cluster DNS (--api-port + 2)"),
    ];
    for (port, role) in what {
        if port == 0 {
            bail!("--api-port {api_port} leaves no room for {role}");
        }
        let any = std::net::SocketAddr::from(([0, 0, 0, 0], port));
        let tcp = std::net::TcpListener::bind(any).err();
        let udp = (port == api_port.wrapping_add(2))
            .then(|| std::net::UdpSocket::bind(any).err())
            .flatten();
        if let Some(e) = tcp.or(udp) {
            bail!(
                "port {port} is in use ({e}); it is needed for {role}: stop what holds it or choose another --api-port"
            );
        }
    }
    Ok(())
}

impl Parts {
    /// Saves the record, as it is now.
    pub fn save(&self) -> anyhow::Result<()> {
        record::save(&self.dir, &self.record)
    }

    /// `DIR/logs/<name>.log`.
    pub fn log(&self, name: &str) -> anyhow::Result<PathBuf> {
        let logs = self.dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        Ok(logs.join(format!("{name}.log")))
    }

    /// Builds the catalog images into `DIR/images`, the folder kubelets
    /// import them from.
    pub fn build_images(&self) -> anyhow::Result<PathBuf> {
        step("building images");
        let images = self.dir.join("images");
        skiff_images::build_all(&Sources::default(), &images, |i| {
            detail(&i.name.to_string())
        })?;
        Ok(images)
    }

    /// Starts this run's own containerd under `DIR/containerd`.
    pub async fn start_containerd(&mut self) -> anyhow::Result<&ManagedContainerd> {
        step("starting containerd");
        let started = ManagedContainerd::start(&self.dir.join("containerd")).await?;
        self.record.containerd = started.pid().and_then(ProcessId::of);
        self.record.containerd_socket = started.socket();
        let containerd = self.containerd.insert(started);
        record::save(&self.dir, &self.record)?;
        Ok(containerd)
    }

    /// This run's containerd, once started.
    pub fn containerd(&self) -> Option<&ManagedContainerd> {
        self.containerd.as_ref()
    }

    /// Starts the control plane with `args` and waits until `api` answers
    /// its health check.
    pub async fn start_control_plane(
        &mut self,
        args: &[String],
        api: &api::Api,
    ) -> anyhow::Result<Child> {
        let log = self.log("control-plane")?;
        let mut control_plane = spawn(&sibling("skiff-control-plane")?, args, &log, None)?;
        self.record.control_plane_pid = control_plane.id();
        self.record.control_plane_start_time =
            ProcessId::of(control_plane.id()).map_or(0, |p| p.start_time);
        self.save()?;
        let deadline = Instant::now() + CONTROL_PLANE_START;
        while !api.ok("/healthz") {
            if Instant::now() > deadline || control_plane.try_wait()?.is_some() {
                bail!("the control plane did not start; see {}", log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(control_plane)
    }

    /// Starts a kubelet for `node` (in its network namespace, if it has
    /// one). The node is recorded before `prepare` makes its namespace
    /// and the rest of what it needs, the kubelet once it runs.
    pub fn start_kubelet(
        &mut self,
        node: NodeRecord,
        prepare: impl FnOnce() -> anyhow::Result<()>,
    ) -> anyhow::Result<Child> {
        let log = self.log(&node.name)?;
        let (args, netns) = (node.args.clone(), node.netns.clone());
        self.record.nodes.push(node);
        self.save()?;
        prepare()?;
        let kubelet = spawn(&sibling("skiff-kubelet")?, &args, &log, netns.as_deref())?;
        if let Some(node) = self.record.nodes.last_mut() {
            node.pid = kubelet.id();
            node.start_time = ProcessId::of(kubelet.id()).map_or(0, |p| p.start_time);
        }
        self.save()?;
        Ok(kubelet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_before_anything_starts() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = held.local_addr().expect("addr").port();
        let err = ports_free(port).expect_err("taken").to_string();
        assert!(err.contains(&format!("port {port} is in use")), "{err}");
        assert!(err.contains("the Kubernetes API"), "{err}");
    }
}
