//! The pod sandbox: what all containers of a pod share. Today that is a
//! network namespace (loopback up; containers reach each other over
//! `localhost`) and the pod's `/etc/hosts`. Giving the namespace an address
//! and routes is the pod network's job: [`PodNetwork`] is the seam where a
//! CNI step plugs in.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;

use super::spec::PodKey;
use crate::runtime::NetworkMode;

/// Why a sandbox could not be set up or torn down.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A command (`ip netns ...`) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// Its stderr or the spawn error.
        detail: String,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The pod network (CNI, the node's podCIDR) failed.
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
}

/// A pod's network, once set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAttachment {
    /// Path of the network namespace containers join.
    pub netns: PathBuf,
    /// The pod IP, when the network assigns one.
    pub pod_ip: Option<String>,
}

/// Creates and removes pod networks.
#[async_trait]
pub trait PodNetwork: Send + Sync + 'static {
    /// Sets up (or finds, after a kubelet restart) the pod's network.
    async fn setup(&self, pod: &PodKey) -> Result<NetworkAttachment, SandboxError>;
    /// Removes the pod's network; removing one that does not exist succeeds.
    async fn teardown(&self, pod: &PodKey) -> Result<(), SandboxError>;
    /// The namespace path of a pod whose network is set up, without
    /// changing anything (port forwarding enters it).
    fn locate(&self, pod: &PodKey) -> Option<PathBuf>;
}

/// The name of the pod with `uid`'s network namespace under `/run/netns`:
/// `<prefix>-<first 16 alphanumerics of the uid>`. Every pod network names
/// them alike, so `skiff up` can find a node's pods' namespaces when it
/// cleans up after the kubelet.
pub fn pod_netns_name(prefix: &str, uid: &str) -> String {
    let uid: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(16)
        .collect();
    format!("{prefix}-{uid}")
}

/// One network namespace per pod, made with `ip netns` (named
/// `<prefix>-<uid>` so several nodes on one machine never collide).
pub struct NetnsNetwork {
    prefix: String,
}

impl NetnsNetwork {
    /// Namespaces named `<prefix>-<uid>`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    fn name(&self, pod: &PodKey) -> String {
        pod_netns_name(&self.prefix, &pod.uid)
    }

    async fn ip(args: &[&str]) -> Result<(), SandboxError> {
        let out = tokio::process::Command::new("ip")
            .args(args)
            .output()
            .await
            .map_err(|e| SandboxError::Command {
                command: format!("ip {}", args.join(" ")),
                detail: e.to_string(),
            })?;
        if out.status.success() {
            Ok(())
        } else {
            Err(SandboxError::Command {
                command: format!("ip {}", args.join(" ")),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }
}

#[async_trait]
impl PodNetwork for NetnsNetwork {
    async fn setup(&self, pod: &PodKey) -> Result<NetworkAttachment, SandboxError> {
        let name = self.name(pod);
        let netns = PathBuf::from("/run/netns").join(&name);
        if !netns.exists() {
            Self::ip(&["netns", "add", &name]).await?;
        }
        Self::ip(&["-n", &name, "link", "set", "lo", "up"]).await?;
        Ok(NetworkAttachment {
            netns,
            pod_ip: None,
        })
    }

    async fn teardown(&self, pod: &PodKey) -> Result<(), SandboxError> {
        let name = self.name(pod);
        if PathBuf::from("/run/netns").join(&name).exists() {
            Self::ip(&["netns", "delete", &name]).await?;
        }
        Ok(())
    }

    fn locate(&self, pod: &PodKey) -> Option<PathBuf> {
        Some(PathBuf::from("/run/netns").join(self.name(pod))).filter(|p| p.exists())
    }
}

/// An in-memory [`PodNetwork`] for tests: records what exists.
#[derive(Default)]
pub struct FakeNetwork {
    live: Mutex<Vec<String>>,
}

impl FakeNetwork {
    /// UIDs of pods whose network exists.
    pub fn live(&self) -> Vec<String> {
        self.live.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait]
impl PodNetwork for FakeNetwork {
    async fn setup(&self, pod: &PodKey) -> Result<NetworkAttachment, SandboxError> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if !live.contains(&pod.uid) {
            live.push(pod.uid.clone());
        }
        Ok(NetworkAttachment {
            netns: PathBuf::from(format!("/fake/netns/{}", pod.uid)),
            pod_ip: None,
        })
    }

    async fn teardown(&self, pod: &PodKey) -> Result<(), SandboxError> {
        self.live
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|u| u != &pod.uid);
        Ok(())
    }

    fn locate(&self, pod: &PodKey) -> Option<PathBuf> {
        self.live()
            .contains(&pod.uid)
            .then(|| PathBuf::from(format!("/fake/netns/{}", pod.uid)))
    }
}

/// The network a `hostNetwork: true` pod joins: the node's own. That is the
/// machine's namespace, unless the kubelet itself runs in a named namespace
/// (each node of a `skiff up` cluster does); then it is that one, found
/// under `/run/netns` so the path stays valid after a kubelet restart.
pub fn host_network() -> NetworkMode {
    static MODE: std::sync::OnceLock<NetworkMode> = std::sync::OnceLock::new();
    MODE.get_or_init(|| {
        use std::os::unix::fs::MetadataExt;
        let id = |p: &std::path::Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
        let own = id(std::path::Path::new("/proc/self/ns/net"));
        if own.is_none() || own == id(std::path::Path::new("/proc/1/ns/net")) {
            return NetworkMode::Host;
        }
        std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| id(p) == own)
            .map_or(NetworkMode::Host, NetworkMode::Join)
    })
    .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_namespaces_are_named_by_prefix_and_uid() {
        let name = pod_netns_name("skiff-node1", "3f89f5ba-7bfe-4c1d-9e2a-000000000000");
        assert_eq!(name, "skiff-node1-3f89f5ba7bfe4c1d");
        // Both pod networks name a pod's namespace alike.
        let key = PodKey {
            namespace: "default".into(),
            name: "web".into(),
            uid: "3f89f5ba-7bfe-4c1d-9e2a-000000000000".into(),
        };
        assert_eq!(NetnsNetwork::new("skiff-node1").name(&key), name);
    }
}
