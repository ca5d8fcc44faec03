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
    let node = node.clone();
    let beats = async_stream(interval, move || pb::Heartbeat {
        session_id: session_id.clone(),
        status: Some(node_status(&node)),
    });
    client.heartbeats(beats).await?;
    Ok(())
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
