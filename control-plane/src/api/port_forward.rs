//! `pods/{name}/portforward`, in the three forms clients use:
//!
//! - kubectl 1.31+ : a WebSocket whose subprotocol is
//!   `SPDY/3.1+portforward.k8s.io`, carrying SPDY/3.1 in binary frames;
//! - older kubectl (or `KUBECTL_PORT_FORWARD_WEBSOCKETS=false`): a plain
//!   `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io`;
//! - other clients (the Python `kubernetes` client): a WebSocket with
//!   `v4.channel.k8s.io`, `?ports=` in the query, two channels per port
//!   (data `2i`, error `2i+1`) each opened with the port in 2 bytes, little
//!   endian.
//!
//! In SPDY, the client opens an error and a data stream per connection
//! (headers `streamType`, `port`, `requestID`); once both are there the pod's
//! node opens the connection ([`super::tunnel`]), bytes flow on the data
//! stream and a failure is written, as text, on the error stream.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::debug;

use super::ApiState;
use super::error::{ApiError, ApiResult};
use super::spdy::headers::get;
use super::spdy::session::{self, Stream};
use super::tunnel::{self, PodEndpoint};

/// The SPDY sub-protocol of port forwarding.
const PORT_FORWARD_PROTOCOL: &str = "portforward.k8s.io";
/// How kubectl names SPDY tunnelled through a WebSocket.
const TUNNEL_PREFIX: &str = "SPDY/3.1+";
/// Channel protocols spoken over a plain WebSocket, in order of preference.
const CHANNEL_PROTOCOLS: [&str; 3] = ["v4.channel.k8s.io", "channel.k8s.io", PORT_FORWARD_PROTOCOL];
/// Bytes read from a pod connection per frame.
const CHUNK: usize = 32 * 1024;

/// The two ways a request can ask to be upgraded.
pub struct Upgrade {
    /// A WebSocket handshake.
    pub websocket: Option<WebSocketUpgrade>,
    /// hyper's handle to the connection, for a SPDY upgrade.
    pub connection: Option<OnUpgrade>,
}

/// `GET|POST pods/{name}/portforward`.
pub async fn serve(
    state: Arc<ApiState>,
    namespace: &str,
    name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    upgrade: Upgrade,
) -> ApiResult<Response> {
    let pod = tunnel::read_object(&state, crate::registry::kinds::PODS, namespace, name).await?;
    if let Some(ws) = upgrade.websocket {
        let tunnelled = ws.requested_protocols().any(|p| {
            p.to_str()
                .is_ok_and(|p| p.starts_with(TUNNEL_PREFIX) && p.ends_with(PORT_FORWARD_PROTOCOL))
        });
        if tunnelled {
            let endpoint = Arc::new(tunnel::endpoint(&state, pod).await?);
            let protocol = format!("{TUNNEL_PREFIX}{PORT_FORWARD_PROTOCOL}");
            return Ok(ws
                .protocols([protocol])
                .on_upgrade(move |socket| forward_spdy(websocket_bytes(socket), endpoint)));
        }
        let ports = ports(query)?;
        let endpoint = Arc::new(tunnel::endpoint(&state, pod).await?);
        return Ok(ws
            .protocols(CHANNEL_PROTOCOLS)
            .on_upgrade(move |socket| forward_channels(socket, endpoint, ports)));
    }
    let wants_spdy = headers
        .get("upgrade")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
    let Some(connection) = upgrade.connection.filter(|_| wants_spdy) else {
        return Err(ApiError::bad_request("Upgrade request required"));
    };
    let offered: Vec<&str> = headers
        .get_all("x-stream-protocol-version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    if !offered.is_empty() && !offered.contains(&PORT_FORWARD_PROTOCOL) {
        return Err(ApiError {
            code: 403,
            reason: "Forbidden",
            message: format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server supports [\"{PORT_FORWARD_PROTOCOL}\"]"
            ),
            details: serde_json::json!({}),
        });
    }
    let endpoint = Arc::new(tunnel::endpoint(&state, pod).await?);
    tokio::spawn(async move {
        match connection.await {
            Ok(upgraded) => {
                forward_spdy(hyper_util::rt::TokioIo::new(upgraded), endpoint).await;
            }
            Err(e) => debug!(error = %e, "SPDY upgrade failed"),
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "SPDY/3.1")
        .header("x-stream-protocol-version", PORT_FORWARD_PROTOCOL)
        .body(Body::empty())
        .map_err(|e| ApiError::internal(e.to_string()))
}

/// The ports of `?ports=8080&ports=9090` (or `ports=8080,9090`).
fn ports(query: Option<&str>) -> ApiResult<Vec<u16>> {
    let mut ports = Vec::new();
    for pair in query.unwrap_or_default().split('&') {
        let Some(("ports" | "port", values)) = pair.split_once('=') else {
            continue;
        };
        for value in values.split("%2C").flat_map(|v| v.split(',')) {
            let port = value
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "unable to parse \"{value}\" as a port: must be between 1 and 65535"
                    ))
                })?;
            ports.push(port);
        }
    }
    if ports.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter \"port\" is required",
        ));
    }
    Ok(ports)
}

/// A WebSocket as a byte stream: binary frames in, binary frames out.
fn websocket_bytes(mut socket: WebSocket) -> tokio::io::DuplexStream {
    let (ours, theirs) = tokio::io::duplex(CHUNK * 2);
    let (mut reader, mut writer) = tokio::io::split(theirs);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; CHUNK];
        loop {
            tokio::select! {
                message = socket.recv() => match message {
                    Some(Ok(Message::Binary(b))) => {
                        if writer.write_all(&b).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => {}
                },
                n = reader.read(&mut buffer) => match n {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let frame = Message::Binary(Bytes::copy_from_slice(&buffer[..n]));
                        if socket.send(frame).await.is_err() {
                            break;
                        }
                    }
                },
            }
        }
        let _ = socket.send(normal_close()).await;
    });
    ours
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: 1000,
        reason: "".into(),
    }))
}

/// Serves port forwarding over one SPDY connection.
async fn forward_spdy<IO>(io: IO, endpoint: Arc<PodEndpoint>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (tx, mut streams) = mpsc::channel(16);
    let connection = tokio::spawn(session::serve(io, tx));
    // Streams wait here for their partner of the same request.
    let mut pending: HashMap<String, (Option<Stream>, Option<Stream>)> = HashMap::new();
    while let Some(stream) = streams.recv().await {
        let kind = get(&stream.headers, "streamtype").map(str::to_string);
        let port = get(&stream.headers, "port").and_then(|p| p.parse::<u16>().ok());
        let (Some(kind), Some(port)) = (kind, port.filter(|p| *p > 0)) else {
            debug!(headers = ?stream.headers, "port forward stream without a valid type or port");
            stream
                .writer
                .reset(super::spdy::frame::REFUSED_STREAM)
                .await;
            continue;
        };
        // Clients before requestID paired streams by port.
        let request = get(&stream.headers, "requestid")
            .map(str::to_string)
            .unwrap_or_else(|| format!("port-{port}"));
        let entry = pending.entry(request.clone()).or_default();
        match kind.as_str() {
            "error" => entry.0 = Some(stream),
            "data" => entry.1 = Some(stream),
            _ => {
                stream
                    .writer
                    .reset(super::spdy::frame::REFUSED_STREAM)
                    .await;
                continue;
            }
        }
        if entry.0.is_some()
            && entry.1.is_some()
            && let Some((Some(error), Some(data))) = pending.remove(&request)
        {
            tokio::spawn(forward_pair(endpoint.clone(), port, error, data));
        }
    }
    if let Ok(Err(e)) = connection.await {
        debug!(error = %e, "port forward connection ended");
    }
}

/// One forwarded connection: the pod's port on the data stream, a failure
/// on the error stream.
async fn forward_pair(endpoint: Arc<PodEndpoint>, port: u16, error: Stream, data: Stream) {
    let connection = match tunnel::open(&endpoint, port).await {
        Ok(c) => c,
        Err(status) => {
            error.writer.send(status.message().as_bytes()).await;
            error.writer.finish().await;
            data.writer.finish().await;
            return;
        }
    };
    let (mut from_pod, mut to_pod) = tokio::io::split(connection);
    let mut incoming = data.data;
    let upload = tokio::spawn(async move {
        while let Some(bytes) = incoming.recv().await {
            if to_pod.write_all(&bytes).await.is_err() {
                return;
            }
        }
        // The client half-closed: so does the pod's side.
        let _ = to_pod.shutdown().await;
    });
    let mut buffer = vec![0u8; CHUNK];
    loop {
        match from_pod.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !data.writer.send(&buffer[..n]).await {
                    break;
                }
            }
        }
    }
    upload.abort();
    data.writer.finish().await;
    error.writer.finish().await;
}

/// Port forwarding over `v4.channel.k8s.io`.
async fn forward_channels(mut socket: WebSocket, endpoint: Arc<PodEndpoint>, ports: Vec<u16>) {
    let frame = |channel: usize, data: &[u8]| {
        let mut f = Vec::with_capacity(data.len() + 1);
        f.push(u8::try_from(channel).unwrap_or(u8::MAX));
        f.extend_from_slice(data);
        Message::Binary(f.into())
    };
    // Each channel starts with its port, as upstream's server writes it.
    for (i, port) in ports.iter().enumerate() {
        for channel in [2 * i, 2 * i + 1] {
            if socket
                .send(frame(channel, &port.to_le_bytes()))
                .await
                .is_err()
            {
                return;
            }
        }
    }
    let (from_pods, mut received) = mpsc::channel::<(usize, Option<Vec<u8>>)>(16);
    let mut writers = Vec::new();
    let mut open = 0;
    for (i, port) in ports.iter().enumerate() {
        match tunnel::open(&endpoint, *port).await {
            Ok(connection) => {
                let (mut reader, writer) = tokio::io::split(connection);
                writers.push(Some(writer));
                open += 1;
                let tx = from_pods.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0u8; CHUNK];
                    loop {
                        match reader.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if tx.send((i, Some(buffer[..n].to_vec()))).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    let _ = tx.send((i, None)).await;
                });
            }
            Err(status) => {
                writers.push(None);
                let _ = socket
                    .send(frame(2 * i + 1, status.message().as_bytes()))
                    .await;
            }
        }
    }
    drop(from_pods);
    while open > 0 {
        tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Binary(b))) => {
                    let Some((channel, data)) = b.split_first() else { continue };
                    let index = usize::from(*channel);
                    if index % 2 == 0
                        && let Some(Some(writer)) = writers.get_mut(index / 2)
                        && writer.write_all(data).await.is_err()
                    {
                        writers[index / 2] = None;
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            item = received.recv() => match item {
                Some((i, Some(data))) => {
                    if socket.send(frame(2 * i, &data)).await.is_err() {
                        return;
                    }
                }
                Some((_, None)) => open -= 1,
                None => break,
            },
        }
    }
    let _ = socket.send(normal_close()).await;
    while let Some(Ok(message)) = socket.recv().await {
        if matches!(message, Message::Close(_)) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_come_from_repeated_or_comma_separated_parameters() {
        assert_eq!(ports(Some("ports=8080")).expect("one"), vec![8080]);
        assert_eq!(
            ports(Some("ports=80,8080&ports=9090")).expect("many"),
            vec![80, 8080, 9090]
        );
        assert_eq!(ports(Some("ports=80%2C81")).expect("encoded"), vec![80, 81]);
        let missing = ports(Some("other=1")).expect_err("required");
        assert_eq!(missing.message, "query parameter \"port\" is required");
        assert_eq!(ports(Some("ports=0")).expect_err("zero").code, 400);
        assert_eq!(ports(Some("ports=http")).expect_err("name").code, 400);
    }
}
