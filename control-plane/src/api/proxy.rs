//! `pods/log` and `pods/exec`, proxied to the node that runs the pod over
//! the `skiff.node.v1.NodeAgent` gRPC service. The node is found from the
//! pod's `spec.nodeName`: its Node object's InternalIP (or Hostname) address
//! and `status.daemonEndpoints.kubeletEndpoint.Port`.
//!
//! Exec speaks the WebSocket protocol kubectl 1.30+ uses
//! (`v5.channel.k8s.io`, also `v4`): binary frames whose first byte is the
//! channel (0 stdin, 1 stdout, 2 stderr, 3 status, 4 terminal size; v5 adds
//! 255 "close channel", which is how stdin reaches EOF).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_agent_client::NodeAgentClient;
use tokio_stream::StreamExt;
use tonic::transport::Channel;

use super::ApiState;
use super::error::{ApiError, ApiResult};

/// A pod as stored, with what the proxies need.
pub struct PodOnNode {
    /// The pod object.
    pub pod: Value,
    /// Pod UID (the node knows pods by UID).
    pub uid: String,
    /// The container asked for (or the only one).
    pub container: String,
}

/// Reads the pod and resolves the container, as the API server does.
pub async fn pod(
    state: &ApiState,
    namespace: &str,
    name: &str,
    container: Option<&str>,
) -> ApiResult<PodOnNode> {
    let rt = crate::registry::kinds::PODS;
    let kv = state
        .store
        .get(&rt.key(Some(namespace), name))
        .await
        .map_err(|e| ApiError::from_store(e, rt, name))?;
    let pod: Value =
        serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
    let names: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["name"].as_str().map(String::from))
        .collect();
    let container = match container.filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                names.join(" ")
            )));
        }
    };
    let uid = pod
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(PodOnNode {
        pod,
        uid,
        container,
    })
}

/// A gRPC client of the node running `pod`.
pub async fn node_client(state: &ApiState, pod: &Value) -> ApiResult<NodeAgentClient<Channel>> {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let rt = crate::registry::kinds::NODES;
    let kv = state
        .store
        .get(&rt.key(None, node_name))
        .await
        .map_err(|e| ApiError::from_store(e, rt, node_name))?;
    let node: Value =
        serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
    let addresses = node["status"]["addresses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let address = ["InternalIP", "Hostname"]
        .iter()
        .find_map(|t| {
            addresses
                .iter()
                .find(|a| a["type"] == *t)
                .and_then(|a| a["address"].as_str())
        })
        .ok_or_else(|| ApiError::internal(format!("node {node_name} has no address")))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_i64)
        .ok_or_else(|| ApiError::internal(format!("node {node_name} has no kubelet endpoint")))?;
    crate::nodes::kubelet_client::connect(node_name, &format!("{address}:{port}"))
        .await
        .map(NodeAgentClient::new)
        .map_err(|e| ApiError::internal(format!("cannot reach node {node_name}: {e}")))
}

fn from_status(s: tonic::Status) -> ApiError {
    match s.code() {
        tonic::Code::NotFound => ApiError::bad_request(s.message().to_string()),
        tonic::Code::InvalidArgument | tonic::Code::FailedPrecondition => {
            ApiError::bad_request(s.message().to_string())
        }
        _ => ApiError::internal(s.message().to_string()),
    }
}

/// `GET pods/{name}/log`.
pub async fn logs(
    state: Arc<ApiState>,
    namespace: &str,
    name: &str,
    query: &std::collections::HashMap<String, String>,
) -> ApiResult<Response> {
    let target = pod(
        &state,
        namespace,
        name,
        query.get("container").map(String::as_str),
    )
    .await?;
    let mut client = node_client(&state, &target.pod).await?;
    let flag = |k: &str| query.get(k).is_some_and(|v| v == "true");
    let number = |k: &str| {
        query
            .get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0)
    };
    let request = pb::LogsRequest {
        pod_uid: target.uid,
        container: target.container,
        follow: flag("follow"),
        previous: flag("previous"),
        timestamps: flag("timestamps"),
        tail_lines: number("tailLines"),
        since_seconds: number("sinceSeconds"),
    };
    let stream = client
        .container_logs(request)
        .await
        .map_err(from_status)?
        .into_inner();
    let body = Body::from_stream(stream.map(|chunk| {
        chunk
            .map(|c| axum::body::Bytes::from(c.data))
            .map_err(|e| std::io::Error::other(e.message().to_string()))
    }));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "text/plain")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response()))
}

/// The exec options of a request (`command` repeats).
pub struct ExecRequest {
    /// argv.
    pub command: Vec<String>,
    /// Container.
    pub container: Option<String>,
    /// `stdin=true`.
    pub stdin: bool,
    /// `tty=true`.
    pub tty: bool,
}

impl ExecRequest {
    /// Reads the raw query string.
    pub fn parse(raw: &str, decode: impl Fn(&str) -> Option<String>) -> Self {
        let mut r = Self {
            command: Vec::new(),
            container: None,
            stdin: false,
            tty: false,
        };
        for pair in raw.split('&') {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let v = decode(v).unwrap_or_default();
            match k {
                "command" => r.command.push(v),
                "container" => r.container = Some(v),
                "stdin" => r.stdin = v == "true",
                "tty" => r.tty = v == "true",
                _ => {}
            }
        }
        r
    }
}

fn status_frame(exit_code: i32, error: Option<String>) -> Vec<u8> {
    let status = match (exit_code, error) {
        (_, Some(message)) => {
            json!({"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError"})
        }
        (0, None) => json!({"metadata": {}, "status": "Success"}),
        (code, None) => json!({
            "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
    };
    [vec![3u8], status.to_string().into_bytes()].concat()
}

/// What a client frame asks for, by its channel byte.
fn client_input(frame: &[u8]) -> Option<pb::exec_input::Input> {
    use pb::exec_input::Input;
    let (channel, data) = frame.split_first()?;
    match channel {
        0 => Some(Input::Stdin(data.to_vec())),
        // `{"Width":80,"Height":24}`, kubectl's TerminalSize.
        4 => {
            let size: Value = serde_json::from_slice(data).ok()?;
            let dim = |k: &str| size[k].as_u64().and_then(|v| u32::try_from(v).ok());
            Some(Input::Resize(pb::TerminalSize {
                width: dim("Width")?,
                height: dim("Height")?,
            }))
        }
        // v5 only: "close channel N"; channel 0 is stdin.
        255 if data.first() == Some(&0) => Some(Input::CloseStdin(true)),
        _ => None,
    }
}

/// Passes one client frame on to the node; `false` once the client is gone.
async fn forward_frame(
    frame: Option<Result<Message, axum::Error>>,
    inputs: &tokio::sync::mpsc::Sender<pb::ExecInput>,
) -> bool {
    // Upstream reads a frame's bytes whatever its opcode: the official
    // Python client sends stdin as text frames whose first character is
    // the channel.
    let bytes: &[u8] = match &frame {
        Some(Ok(Message::Binary(frame))) => frame,
        Some(Ok(Message::Text(frame))) => frame.as_bytes(),
        _ => &[],
    };
    match frame {
        Some(Ok(Message::Binary(_) | Message::Text(_))) => {
            if let Some(input) = client_input(bytes) {
                let _ = inputs.send(pb::ExecInput { input: Some(input) }).await;
            }
            true
        }
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => false,
        Some(Ok(_)) => true,
    }
}

async fn run_exec(
    mut socket: WebSocket,
    mut client: NodeAgentClient<Channel>,
    uid: String,
    container: String,
    request: ExecRequest,
) {
    let send = |channel: u8, data: Vec<u8>| Message::Binary([vec![channel], data].concat().into());
    let start = pb::ExecInput {
        input: Some(pb::exec_input::Input::Start(pb::ExecStart {
            pod_uid: uid,
            container,
            command: request.command,
            stdin: request.stdin,
            tty: request.tty,
        })),
    };
    let (inputs, inputs_rx) = tokio::sync::mpsc::channel(64);
    // Cannot fail: the receiver is alive and the channel empty.
    let _ = inputs.try_send(start);
    let mut exit_code = 0;
    let mut error = None;
    let call = client.exec(tokio_stream::wrappers::ReceiverStream::new(inputs_rx));
    tokio::pin!(call);
    // The node answers once the command runs, and with a terminal it waits
    // for kubectl's first resize frame to start it: keep frames flowing.
    let response = loop {
        tokio::select! {
            response = &mut call => break response,
            frame = socket.recv() => if !forward_frame(frame, &inputs).await {
                return;
            },
        }
    };
    match response {
        Ok(response) => {
            let mut stream = response.into_inner();
            loop {
                tokio::select! {
                    frame = socket.recv() => if !forward_frame(frame, &inputs).await {
                        // The client went away: dropping the stream kills the command.
                        return;
                    },
                    item = stream.next() => match item.map(|r| r.map(|o| o.output)) {
                        Some(Ok(Some(pb::exec_output::Output::Stdout(b)))) => {
                            let _ = socket.send(send(1, b)).await;
                        }
                        Some(Ok(Some(pb::exec_output::Output::Stderr(b)))) => {
                            let _ = socket.send(send(2, b)).await;
                        }
                        Some(Ok(Some(pb::exec_output::Output::ExitCode(c)))) => exit_code = c,
                        Some(Ok(Some(pb::exec_output::Output::Error(e)))) => error = Some(e),
                        Some(Ok(None)) => {}
                        Some(Err(e)) => {
                            error = Some(e.message().to_string());
                            break;
                        }
                        None => break,
                    },
                }
            }
        }
        Err(e) => error = Some(e.message().to_string()),
    }
    let _ = socket
        .send(Message::Binary(status_frame(exit_code, error).into()))
        .await;
    let _ = socket.send(normal_close()).await;
    // Let the client read everything and answer the close.
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}

/// Close with 1000: kubectl treats a close without a status as a broken stream.
fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

/// `GET pods/{name}/exec` with a WebSocket upgrade.
pub async fn exec(
    state: Arc<ApiState>,
    namespace: &str,
    name: &str,
    request: ExecRequest,
    upgrade: Option<WebSocketUpgrade>,
) -> ApiResult<Response> {
    let Some(upgrade) = upgrade else {
        return Err(ApiError::bad_request(
            "exec needs a WebSocket upgrade (v5.channel.k8s.io); SPDY is not supported",
        ));
    };
    if request.command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let target = pod(&state, namespace, name, request.container.as_deref()).await?;
    let client = node_client(&state, &target.pod).await?;
    let (uid, container) = (target.uid, target.container);
    Ok(upgrade
        .protocols(["v5.channel.k8s.io", "v4.channel.k8s.io"])
        .on_upgrade(move |socket| run_exec(socket, client, uid, container, request)))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn forwarded(message: Message) -> Option<pb::exec_input::Input> {
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        assert!(forward_frame(Some(Ok(message)), &tx).await);
        drop(tx);
        rx.recv().await.and_then(|i| i.input)
    }

    #[tokio::test]
    async fn stdin_arrives_in_binary_and_text_frames() {
        use pb::exec_input::Input;
        let binary = forwarded(Message::Binary(b"\x00ls\n".to_vec().into())).await;
        assert_eq!(binary, Some(Input::Stdin(b"ls\n".to_vec())));
        // The official Python client's framing: `chr(0) + data` as text.
        let text = forwarded(Message::Text("\u{0}echo hi\n".into())).await;
        assert_eq!(text, Some(Input::Stdin(b"echo hi\n".to_vec())));
        let resize = forwarded(Message::Text("\u{4}{\"Width\":80,\"Height\":24}".into())).await;
        assert_eq!(
            resize,
            Some(Input::Resize(pb::TerminalSize {
                width: 80,
                height: 24
            }))
        );
    }
}
