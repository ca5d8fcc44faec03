//! Joining a control plane: register the node, then send a heartbeat every
//! interval, re-registering after any failure (a control plane restart, a
//! partition), forever.

use std::collections::HashMap;
use std::time::Duration;

use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_registry_client::NodeRegistryClient;
use tracing::{info, warn};

use super::NodeHandle;
use crate::network::{NodeNetwork, Peer};
use crate::server::grpc::node_status;

/// Registers with `control_plane` and keeps heartbeats flowing.
pub fn spawn(
    control_plane: String,
    tls: std::sync::Arc<rustls::ClientConfig>,
    node: NodeHandle,
    agent_endpoint: String,
    labels: HashMap<String, String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let url = control_plane;
        loop {
            if let Err(e) = session(&url, &tls, &node, &agent_endpoint, &labels).await {
                warn!(control_plane = %url, error = %e, "lost the control plane; retrying");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn session(
    url: &str,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    node: &NodeHandle,
    agent_endpoint: &str,
    labels: &HashMap<String, String>,
) -> Result<(), tonic::Status> {
    let channel = skiff_proto::link::connect_tls(url, tls.clone(), None)
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let mut client = NodeRegistryClient::new(channel);
    if !super::system_info::runtime_version_known() {
        match node.ctx.runtime.version().await {
            Ok(v) => super::system_info::set_runtime_version(v),
            Err(e) => warn!(error = %e, "cannot read the container runtime's version"),
        }
    }
    let registered = client
        .register(pb::RegisterRequest {
            node_name: node.ctx.node_name.clone(),
            labels: labels.clone(),
            status: Some(node_status(node)),
            agent_endpoint: agent_endpoint.to_string(),
        })
        .await?
        .into_inner();
    info!(control_plane = %url, "registered");
    let interval = Duration::from_millis(registered.heartbeat_interval_ms.clamp(100, 60_000));
    let session_id = registered.session_id;
    let beating = node.clone();
    let beats = async_stream(interval, move || pb::Heartbeat {
        session_id: session_id.clone(),
        status: Some(node_status(&beating)),
    });
    let mut heartbeats = client.clone();
    // The session lasts while both flow; whichever ends first ends it,
    // and the next session starts both afresh.
    let mut network = client.clone();
    tokio::select! {
        beat = heartbeats.heartbeats(beats) => { beat?; }
        followed = follow_services(&mut client, node) => followed?,
        followed = follow_network(&mut network, node) => followed?,
    }
    Ok(())
}

/// Publishes the pod network the control plane assigns this node.
async fn follow_network(
    client: &mut NodeRegistryClient<tonic::transport::Channel>,
    node: &NodeHandle,
) -> Result<(), tonic::Status> {
    let Some(publish) = node.ctx.node_network.clone() else {
        return std::future::pending().await;
    };
    let request = pb::WatchNetworkRequest {
        node_name: node.ctx.node_name.clone(),
    };
    let mut updates = match client.watch_network(request).await {
        Ok(stream) => stream.into_inner(),
        Err(e) if e.code() == tonic::Code::Unimplemented => {
            warn!("the control plane assigns no pod network; pods get none");
            return std::future::pending().await;
        }
        Err(e) => return Err(e),
    };
    while let Some(update) = updates.message().await? {
        let network = node_network(update);
        publish.send_if_modified(|current| {
            // A control plane that forgot the node (its podCIDR not yet
            // given again) does not take the network from running pods.
            if network.is_none() || *current == network {
                return false;
            }
            info!(pod_cidr = ?network.as_ref().map(|n| &n.pod_cidr), "pod network changed");
            *current = network;
            true
        });
    }
    Err(tonic::Status::unavailable("the network stream ended"))
}

/// The control plane's message as the network module's type (`None`
/// while the node has no pod CIDR).
fn node_network(update: pb::PodNetwork) -> Option<NodeNetwork> {
    let pod_cidr = update.pod_cidrs.into_iter().next()?;
    Some(NodeNetwork {
        pod_cidr,
        cluster_cidr: update.cluster_cidr,
        peers: update
            .peers
            .into_iter()
            .filter_map(|p| {
                Some(Peer {
                    pod_cidr: p.pod_cidrs.into_iter().next()?,
                    node: p.node_name,
                    address: p.address,
                    ready: p.ready,
                })
            })
            .collect(),
    })
}

/// Keeps the node's copy of the cluster's Services and EndpointSlices.
async fn follow_services(
    client: &mut NodeRegistryClient<tonic::transport::Channel>,
    node: &NodeHandle,
) -> Result<(), tonic::Status> {
    let request = pb::WatchServicesRequest {
        node_name: node.ctx.node_name.clone(),
    };
    if !node.ctx.watch_services {
        return std::future::pending().await;
    }
    let mut updates = match client.watch_services(request).await {
        Ok(stream) => stream.into_inner(),
        // A control plane without the call: pods get no service variables.
        Err(e) if e.code() == tonic::Code::Unimplemented => {
            return std::future::pending().await;
        }
        Err(e) => return Err(e),
    };
    while let Some(update) = updates.message().await? {
        node.ctx.services.send_modify(|cache| cache.apply(&update));
    }
    Err(tonic::Status::unavailable("the services stream ended"))
}

/// A stream yielding `make()` every `interval`.
fn async_stream<T: Send + 'static>(
    interval: Duration,
    make: impl Fn() -> T + Send + 'static,
) -> tokio_stream::wrappers::ReceiverStream<T> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        loop {
            tick.tick().await;
            if tx.send(make()).await.is_err() {
                return;
            }
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
