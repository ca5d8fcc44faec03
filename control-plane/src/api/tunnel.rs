//! A TCP connection to a port of a pod, made by the pod's node inside the
//! pod's network namespace (`skiff.node.v1.NodeAgent/PortForward`) and
//! handed to the API as a byte stream. Port forwarding and the
//! `pods/proxy` / `services/proxy` subresources all ride on it.

use serde_json::Value;
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_agent_client::NodeAgentClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use crate::registry::resources::ResourceType;

/// Buffer between the API's side of a tunnel and the gRPC call.
const BUFFER: usize = 64 * 1024;

/// A pod the API forwards to: the object and its node's client.
pub struct PodEndpoint {
    /// The pod as stored.
    pub pod: Value,
    /// Its UID (nodes know pods by UID).
    pub uid: String,
    /// A client of the pod's node.
    pub node: NodeAgentClient<Channel>,
}

/// Reads an object of `rt`.
pub async fn read_object(
    state: &ApiState,
    rt: &ResourceType,
    namespace: &str,
    name: &str,
) -> ApiResult<Value> {
    let kv = state
        .store
        .get(&rt.key(Some(namespace), name))
        .await
        .map_err(|e| ApiError::from_store(e, rt, name))?;
    serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))
}

/// Finds the pod and a client of its node.
pub async fn endpoint(state: &ApiState, pod: Value) -> ApiResult<PodEndpoint> {
    let node = super::proxy::node_client(state, &pod).await?;
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(PodEndpoint { pod, uid, node })
}

/// Opens a connection to `port` of the pod; the error is the node's
/// message (upstream's "error forwarding port ..." wording).
pub async fn open(endpoint: &PodEndpoint, port: u16) -> Result<DuplexStream, tonic::Status> {
    let mut client = endpoint.node.clone();
    let (inputs, inputs_rx) = mpsc::channel(16);
    let start = pb::PortForwardInput {
        input: Some(pb::port_forward_input::Input::Start(pb::PortForwardStart {
            pod_uid: endpoint.uid.clone(),
            port: u32::from(port),
        })),
    };
    // Cannot fail: the receiver is alive and the channel empty.
    let _ = inputs.try_send(start);
    let mut outputs = client
        .port_forward(ReceiverStream::new(inputs_rx))
        .await?
        .into_inner();
    let (ours, theirs) = tokio::io::duplex(BUFFER);
    let (mut from_api, mut to_api) = tokio::io::split(theirs);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 32 * 1024];
        loop {
            match from_api.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let data = pb::PortForwardInput {
                        input: Some(pb::port_forward_input::Input::Data(buffer[..n].to_vec())),
                    };
                    if inputs.send(data).await.is_err() {
                        return;
                    }
                }
            }
        }
        let close = pb::PortForwardInput {
            input: Some(pb::port_forward_input::Input::CloseWrite(true)),
        };
        let _ = inputs.send(close).await;
    });
    tokio::spawn(async move {
        while let Some(Ok(output)) = outputs.next().await {
            if to_api.write_all(&output.data).await.is_err() {
                // The API side is gone: dropping the call ends the connection.
                return;
            }
        }
        let _ = to_api.shutdown().await;
    });
    Ok(ours)
}
