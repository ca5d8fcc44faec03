//! Joining a control plane: register the node, then send a heartbeat every
//! interval, re-registering after any failure (a control plane restart, a
//! partition), forever.

use std::collections::HashMap;
use std::time::Duration;

use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_registry_client::NodeRegistryClient;
use tracing::{info, warn};

use super::NodeHandle;
use crate::server::grpc::node_status;

/// Registers with `control_plane` and keeps heartbeats flowing.
pub fn spawn(
    control_plane: String,
    node: NodeHandle,
    agent_endpoint: String,
    labels: HashMap<String, String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let url = if control_plane.starts_with("http") {
            control_plane.clone()
        } else {
            format!("http://{control_plane}")
        };
        loop {
            if let Err(e) = session(&url, &node, &agent_endpoint, &labels).await {
                warn!(control_plane = %url, error = %e, "lost the control plane; retrying");
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    })
}

async fn session(
    url: &str,
    node: &NodeHandle,
    agent_endpoint: &str,
    labels: &HashMap<String, String>,
) -> Result<(), tonic::Status> {
    let channel = skiff_proto::link::connect(url.to_string())
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
    tokio::select! {
        beat = heartbeats.heartbeats(beats) => { beat?; }
        followed = follow_services(&mut client, node) => followed?,
    }
    Ok(())
}

/// Keeps the node's copy of the cluster's Services and EndpointSlices.
async fn follow_services(
    client: &mut NodeRegistryClient<tonic::transport::Channel>,
    node: &NodeHandle,
) -> Result<(), tonic::Status> {
    let request = pb::WatchServicesRequest {
        node_name: node.ctx.node_name.clone(),
    };
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
