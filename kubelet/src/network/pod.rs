//! [`CniNetwork`]: pods attached to the node's bridge through CNI, each with
//! an address from the node's podCIDR.
//!
//! A pod's namespace is named as [`NetnsNetwork`](crate::pod::sandbox::NetnsNetwork)
//! names it (`<prefix>-<uid16>`), so `locate` and the rest of the kubelet see
//! no difference. Its ADD result is cached under the kubelet's data dir, so a
//! restarted kubelet finds the pod's address again (a CHECK, no second ADD)
//! and a DEL releases exactly what the ADD reserved.
//!
//! Calls for one pod never overlap: the pod actor sets a sandbox up in one
//! task and tears it down only after that task reported back.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tracing::{Instrument, info, info_span, warn};

use super::cni::{Attachment, Cni, CniError, CniExecutor, DEFAULT_PLUGIN_DIR, ResultCache};
use super::config::{self, NETWORK_NAME, POD_IFNAME};
use super::{NetworkError, NodeNetwork, NodeNetworkRx, run_in_node};
use crate::pod::sandbox::{NetworkAttachment, PodNetwork, SandboxError};
use crate::pod::spec::PodKey;

/// How a [`CniNetwork`] runs.
#[derive(Debug, Clone)]
pub struct CniOptions {
    /// Where plugin binaries are (default `/usr/lib/cni`).
    pub plugin_dirs: Vec<PathBuf>,
    /// How long one plugin may run.
    pub plugin_timeout: Duration,
    /// How long a setup waits for the control plane to assign the node a
    /// podCIDR before failing (the pod then stays pending).
    pub wait_for_pod_cidr: Duration,
    /// The node's namespace, when the kubelet-side code runs outside it
    /// (tests, standalone use). `None`: the current one, as in `skiff up`
    /// where each kubelet already runs inside its node's namespace.
    pub node_netns: Option<PathBuf>,
}

impl Default for CniOptions {
    fn default() -> Self {
        Self {
            plugin_dirs: vec![PathBuf::from(DEFAULT_PLUGIN_DIR)],
            plugin_timeout: super::cni::DEFAULT_TIMEOUT,
            wait_for_pod_cidr: Duration::from_secs(30),
            node_netns: None,
        }
    }
}

/// A [`PodNetwork`] that gives each pod an address on the node's bridge.
pub struct CniNetwork {
    prefix: String,
    data_dir: PathBuf,
    cni: Cni,
    node: NodeNetworkRx,
    wait: Duration,
    node_netns: Option<PathBuf>,
}

impl CniNetwork {
    /// Pod namespaces named `<prefix>-<uid16>`, CNI state under
    /// `<data_dir>/cni/`, the node's podCIDR from `node`; default options.
    pub fn new(
        prefix: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        node: NodeNetworkRx,
    ) -> Self {
        Self::with_options(prefix, data_dir, node, CniOptions::default())
    }

    /// As [`CniNetwork::new`], with `options`.
    pub fn with_options(
        prefix: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        node: NodeNetworkRx,
        options: CniOptions,
    ) -> Self {
        let data_dir = data_dir.into();
        let executor = CniExecutor::new(options.plugin_dirs)
            .with_timeout(options.plugin_timeout)
            .in_node_netns(options.node_netns.clone());
        Self {
            prefix: prefix.into(),
            cni: Cni {
                executor,
                cache: ResultCache::new(config::results_dir(&data_dir)),
            },
            data_dir,
            node,
            wait: options.wait_for_pod_cidr,
            node_netns: options.node_netns,
        }
    }

    /// The pod's namespace name (the same as `NetnsNetwork`'s).
    pub fn netns_name(&self, pod: &PodKey) -> String {
        crate::pod::sandbox::pod_netns_name(&self.prefix, &pod.uid)
    }

    fn netns_path(&self, pod: &PodKey) -> PathBuf {
        PathBuf::from("/run/netns").join(self.netns_name(pod))
    }

    /// The pod's attachment. The container ID is the pod UID: unique on the
    /// node and stable across kubelet restarts (host-local records it with
    /// each reservation). `netns` is left empty when the namespace is gone.
    fn attachment(&self, pod: &PodKey) -> Attachment {
        let netns = self.netns_path(pod);
        let container_id: String = pod
            .uid
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        Attachment {
            container_id,
            netns: if netns.exists() {
                netns
            } else {
                PathBuf::new()
            },
            ifname: POD_IFNAME.into(),
            pod_namespace: pod.namespace.clone(),
            pod_name: pod.name.clone(),
            pod_uid: pod.uid.clone(),
        }
    }

    /// The node's network, waiting (bounded) for the control plane to give
    /// the node a podCIDR.
    async fn node_network(&self) -> Result<NodeNetwork, NetworkError> {
        let mut rx = self.node.clone();
        let waited = tokio::time::timeout(self.wait, rx.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(net)) => net
                .clone()
                .ok_or(NetworkError::NoPodCidr { waited: self.wait }),
            // The sender is gone (the kubelet is stopping): no podCIDR will come.
            Ok(Err(_)) | Err(_) => Err(NetworkError::NoPodCidr { waited: self.wait }),
        }
    }

    /// The address of a cached attachment that still passes CHECK, if any.
    async fn reusable(&self, att: &Attachment) -> Option<Ipv4Addr> {
        if att.netns.as_os_str().is_empty() {
            return None;
        }
        match self.cni.check(NETWORK_NAME, att).await {
            Ok(result) => result.pod_ipv4(&att.ifname),
            // A new pod, or a namespace made while the podCIDR was pending.
            Err(CniError::NotCached { .. }) => None,
            Err(e) => {
                warn!(error = %e, "the pod's cached network failed CHECK; attaching it again");
                None
            }
        }
    }

    async fn attach(&self, pod: &PodKey) -> Result<NetworkAttachment, NetworkError> {
        let name = self.netns_name(pod);
        let netns = self.netns_path(pod);
        let att = self.attachment(pod);
        if let Some(ip) = self.reusable(&att).await {
            info!(%ip, "pod network found from an earlier attach");
            return Ok(NetworkAttachment {
                netns,
                pod_ip: Some(ip.to_string()),
            });
        }
        // Whatever an earlier ADD left (its namespace gone, or failing
        // CHECK) is released first, so the pod never holds two addresses.
        if self.cni.cache.load(NETWORK_NAME, &att).await?.is_some() {
            self.cni.del(NETWORK_NAME, None, &att).await?;
        }
        if !netns.exists() {
            run_in_node(self.node_netns.as_deref(), "ip", &["netns", "add", &name]).await?;
        }
        let node = self.node_network().await?;
        let list = config::node_conflist(&node, &self.data_dir)?;
        let att = self.attachment(pod);
        let result = self.cni.add(&list, &att).await?;
        let Some(ip) = result.pod_ipv4(&att.ifname) else {
            if let Err(e) = self.cni.del(NETWORK_NAME, Some(&list), &att).await {
                warn!(error = %e, "releasing an address-less attachment failed");
            }
            return Err(NetworkError::NoPodIp { ifname: att.ifname });
        };
        info!(%ip, "pod network attached");
        Ok(NetworkAttachment {
            netns,
            pod_ip: Some(ip.to_string()),
        })
    }

    async fn detach(&self, pod: &PodKey) -> Result<(), NetworkError> {
        let current = self.node.borrow().clone();
        // Used only when there is no cached ADD (then DEL just makes sure).
        let list = match current.map(|n| config::node_conflist(&n, &self.data_dir)) {
            Some(Ok(list)) => Some(list),
            Some(Err(e)) => {
                warn!(error = %e, "no usable conflist for an uncached DEL");
                None
            }
            None => None,
        };
        let att = self.attachment(pod);
        let del = self.cni.del(NETWORK_NAME, list.as_ref(), &att).await;
        // The namespace goes even when DEL failed: the cache keeps what the
        // ADD made, and a DEL tolerates a missing namespace.
        let name = self.netns_name(pod);
        if self.netns_path(pod).exists() {
            run_in_node(
                self.node_netns.as_deref(),
                "ip",
                &["netns", "delete", &name],
            )
            .await?;
        }
        del?;
        info!("pod network removed");
        Ok(())
    }

    /// Where host-local keeps this node's reservations (one file per
    /// reserved address under `<dir>/skiff/`).
    pub fn host_local_dir(&self) -> PathBuf {
        config::host_local_dir(&self.data_dir)
    }

    /// The data dir this network keeps its state under.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }
}

#[async_trait]
impl PodNetwork for CniNetwork {
    async fn setup(&self, pod: &PodKey) -> Result<NetworkAttachment, SandboxError> {
        let span = info_span!("pod_network_setup", pod = %pod.ns_name(), uid = %pod.uid);
        Ok(self.attach(pod).instrument(span).await?)
    }

    async fn teardown(&self, pod: &PodKey) -> Result<(), SandboxError> {
        let span = info_span!("pod_network_teardown", pod = %pod.ns_name(), uid = %pod.uid);
        Ok(self.detach(pod).instrument(span).await?)
    }

    fn locate(&self, pod: &PodKey) -> Option<PathBuf> {
        Some(self.netns_path(pod)).filter(|p| p.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PodKey {
        PodKey {
            namespace: "default".into(),
            name: "web".into(),
            uid: "6f1c2b9e-0d4a-4c4e-9f57-0123456789ab".into(),
        }
    }

    #[test]
    fn names_match_netns_network_and_the_container_id_is_the_uid() {
        let (_tx, rx) = tokio::sync::watch::channel(None);
        let net = CniNetwork::new("skiff-node1", "/var/lib/skiff/node1", rx);
        assert_eq!(net.netns_name(&key()), "skiff-node1-6f1c2b9e0d4a4c4e");
        let att = net.attachment(&key());
        assert_eq!(att.container_id, "6f1c2b9e-0d4a-4c4e-9f57-0123456789ab");
        assert_eq!(att.ifname, "eth0");
        // No such namespace here: DEL gets an empty CNI_NETNS.
        assert_eq!(att.netns, PathBuf::new());
        assert_eq!(
            att.cni_args(),
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_UID=6f1c2b9e-0d4a-4c4e-9f57-0123456789ab"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_pod_cidr_setup_waits_then_fails_clearly() {
        let (tx, rx) = tokio::sync::watch::channel(None);
        let options = CniOptions {
            wait_for_pod_cidr: Duration::from_secs(30),
            ..CniOptions::default()
        };
        let net = CniNetwork::with_options("t", "/nonexistent", rx, options);
        let err = net.node_network().await.expect_err("must fail");
        assert_eq!(
            err.to_string(),
            "the node has no podCIDR yet (waited 30s); the pod stays pending"
        );
        let assigned = NodeNetwork {
            pod_cidr: "10.244.3.0/24".into(),
            cluster_cidr: "10.244.0.0/16".into(),
            peers: vec![],
        };
        let waiting = net.node_network();
        tx.send_replace(Some(assigned.clone()));
        assert_eq!(waiting.await.expect("step"), assigned);
    }
}
