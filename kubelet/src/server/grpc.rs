//! The `skiff.node.v1.NodeAgent` gRPC service: pod assignment and removal
//! from the control plane, the watch of what the node reports, logs and exec.

use std::pin::Pin;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_agent_server::{NodeAgent, NodeAgentServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use super::port_forward;
use crate::events::EventObject;
use crate::logs::cri;
use crate::node::{NodeError, NodeHandle, Report};
use crate::pod::PodKey;
use crate::runtime::{ExecEvent, ExecInput, ExecOptions};

/// How long an exec with a terminal waits for the caller's terminal size.
const INITIAL_SIZE_WAIT: Duration = Duration::from_millis(500);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// The service implementation.
pub struct AgentService {
    node: NodeHandle,
}

/// A call filter: the request, or why it is refused.
pub type Guard = fn(tonic::Request<()>) -> Result<tonic::Request<()>, Status>;

/// The node agent service behind [`control_plane_only`].
pub type GuardedAgent =
    tonic::service::interceptor::InterceptedService<NodeAgentServer<AgentService>, Guard>;

/// Refuses every call whose client certificate is not the control
/// plane's (upstream's kubelet authorizes its API against the API
/// server; Skiff's has one legitimate caller).
pub fn control_plane_only(request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
    let peer = skiff_proto::link::PeerInfo::of(&request);
    if crate::node::identity::is_control_plane(&peer) {
        return Ok(request);
    }
    Err(match peer.user {
        None => Status::unauthenticated("Unauthorized"),
        Some(user) => Status::permission_denied(format!(
            "Forbidden (user={}, verb=*, resource=nodes, subresource=proxy)",
            user.name
        )),
    })
}

impl AgentService {
    /// A tonic server for `node`, answering the control plane only.
    pub fn server(node: NodeHandle) -> GuardedAgent {
        NodeAgentServer::with_interceptor(Self { node }, control_plane_only as _)
    }
}

fn status_of(e: NodeError) -> Status {
    match e {
        NodeError::Invalid(m) => Status::invalid_argument(m),
        NodeError::Unavailable(m) => Status::unavailable(m),
    }
}

fn decode_pod(a: &pb::PodAssignment) -> Result<Pod, Status> {
    let mut pod: Pod = serde_json::from_slice(&a.pod_json)
        .map_err(|e| Status::invalid_argument(format!("pod_json is not a Pod: {e}")))?;
    if pod.metadata.uid.as_deref().unwrap_or_default().is_empty() && !a.pod_uid.is_empty() {
        pod.metadata.uid = Some(a.pod_uid.clone());
    }
    Ok(pod)
}

fn millis(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_millis()
}

/// A node report in wire form.
pub fn to_wire(report: &Report) -> pb::NodeReport {
    use pb::node_report::Report as R;
    let report = match report {
        Report::Status { pod, static_pod } => {
            let key = PodKey::of(pod);
            R::PodStatus(pb::PodStatusReport {
                pod_uid: key.uid,
                namespace: key.namespace,
                name: key.name,
                status_json: serde_json::to_vec(&pod.status).unwrap_or_default(),
                static_pod: *static_pod,
                pod_json: if *static_pod {
                    serde_json::to_vec(pod).unwrap_or_default()
                } else {
                    Vec::new()
                },
            })
        }
        Report::Event(e) => {
            let (uid, namespace, name) = match &e.object {
                EventObject::Pod(k) => (k.uid.clone(), k.namespace.clone(), k.name.clone()),
                EventObject::Node(_) => (String::new(), String::new(), String::new()),
            };
            R::Event(pb::Event {
                pod_uid: uid,
                namespace,
                pod_name: name,
                field_path: e.field_path.clone().unwrap_or_default(),
                r#type: e.type_().to_string(),
                reason: e.reason.clone(),
                message: e.message.clone(),
                timestamp_ms: millis(e.time),
            })
        }
        Report::Gone(key) => R::PodGone(pb::PodGone {
            pod_uid: key.uid.clone(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        }),
    };
    pb::NodeReport {
        report: Some(report),
    }
}

/// Total memory of the machine in KiB (`/proc/meminfo`).
/// The machine's memory, read once: it does not change while the kubelet
/// runs, and a heartbeat every second from each of a thousand hollow
/// kubelets reading procfs was a twentieth of a benchmark's CPU.
fn memory_kib() -> u64 {
    static MEMORY_KIB: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MEMORY_KIB.get_or_init(read_memory_kib)
}

fn read_memory_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// The node's status as reported to the control plane.
pub fn node_status(node: &NodeHandle) -> pb::NodeStatus {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cpus = *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let quantity = pb::Quantity {
        cpu: cpus.to_string(),
        memory: format!("{}Ki", memory_kib()),
        pods: 110,
    };
    let mut addresses = vec![pb::NodeAddress {
        r#type: "Hostname".into(),
        address: node.ctx.node_name.clone(),
    }];
    if let Some(ip) = &node.ctx.host_ip {
        addresses.insert(
            0,
            pb::NodeAddress {
                r#type: "InternalIP".into(),
                address: ip.clone(),
            },
        );
    }
    pb::NodeStatus {
        capacity: Some(quantity.clone()),
        allocatable: Some(quantity),
        conditions: vec![pb::NodeCondition {
            r#type: "Ready".into(),
            status: "True".into(),
            reason: "KubeletReady".into(),
            message: "kubelet is posting ready status".into(),
        }],
        addresses,
        heartbeat_time_ms: millis(chrono::Utc::now()),
        node_info: Some(crate::node::system_info::node_info()),
    }
}

#[tonic::async_trait]
impl NodeAgent for AgentService {
    async fn sync_pods(
        &self,
        request: Request<pb::PodSet>,
    ) -> Result<Response<pb::SyncPodsResponse>, Status> {
        let mut pods = Vec::new();
        let mut rejected = Vec::new();
        for a in request.into_inner().pods {
            match decode_pod(&a) {
                Ok(p) => pods.push(p),
                Err(e) => rejected.push(pb::PodRejection {
                    pod_uid: a.pod_uid.clone(),
                    reason: e.message().to_string(),
                }),
            }
        }
        let refused = self.node.sync(pods).await.map_err(status_of)?;
        rejected.extend(
            refused
                .into_iter()
                .map(|(pod_uid, reason)| pb::PodRejection { pod_uid, reason }),
        );
        Ok(Response::new(pb::SyncPodsResponse { rejected }))
    }

    async fn assign_pod(
        &self,
        request: Request<pb::PodAssignment>,
    ) -> Result<Response<pb::AssignPodResponse>, Status> {
        let pod = decode_pod(&request.into_inner())?;
        self.node.assign(pod).await.map_err(status_of)?;
        Ok(Response::new(pb::AssignPodResponse {}))
    }

    async fn remove_pod(
        &self,
        request: Request<pb::PodRemoval>,
    ) -> Result<Response<pb::RemovePodResponse>, Status> {
        let r = request.into_inner();
        let grace = r
            .grace_period_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64));
        let found = self
            .node
            .remove(&r.pod_uid, grace)
            .await
            .map_err(status_of)?;
        Ok(Response::new(pb::RemovePodResponse { found }))
    }

    async fn get_node(
        &self,
        _request: Request<pb::GetNodeRequest>,
    ) -> Result<Response<pb::NodeStatus>, Status> {
        Ok(Response::new(node_status(&self.node)))
    }

    type WatchPodsStream = BoxStream<pb::NodeReport>;

    async fn watch_pods(
        &self,
        _request: Request<pb::WatchPodsRequest>,
    ) -> Result<Response<Self::WatchPodsStream>, Status> {
        let (snapshot, mut live) = self.node.watch().await.map_err(status_of)?;
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(async move {
            for report in &snapshot {
                if tx.send(Ok(to_wire(report))).await.is_err() {
                    return;
                }
            }
            let synced = pb::NodeReport {
                report: Some(pb::node_report::Report::Synced(true)),
            };
            if tx.send(Ok(synced)).await.is_err() {
                return;
            }
            loop {
                match live.recv().await {
                    Ok(report) => {
                        if tx.send(Ok(to_wire(&report))).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        // The watcher fell behind; it must resynchronise.
                        let _ = tx
                            .send(Err(Status::data_loss(format!(
                                "watch fell {n} reports behind; watch again"
                            ))))
                            .await;
                        return;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ContainerLogsStream = BoxStream<pb::LogChunk>;

    async fn container_logs(
        &self,
        request: Request<pb::LogsRequest>,
    ) -> Result<Response<Self::ContainerLogsStream>, Status> {
        let r = request.into_inner();
        let pods = self.node.pods().await.map_err(status_of)?;
        let pod = pods
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(r.pod_uid.as_str()))
            .ok_or_else(|| Status::not_found(format!("pod {} is not on this node", r.pod_uid)))?;
        let key = PodKey::of(pod);
        let container = if r.container.is_empty() {
            pod.spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone())
                .unwrap_or_default()
        } else {
            r.container.clone()
        };
        let restarts = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.name == container))
            .map(|c| c.restart_count.max(0) as u32)
            .ok_or_else(|| {
                Status::not_found(format!(
                    "container {container:?} is not valid for pod {}",
                    key.name
                ))
            })?;
        let instance = if r.previous {
            restarts.checked_sub(1).ok_or_else(|| {
                Status::not_found(format!(
                    "previous terminated container \"{container}\" in pod \"{}\" not found",
                    key.name
                ))
            })?
        } else {
            restarts
        };
        let path = key.log_path(&self.node.ctx.state_dir, &container, instance);
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(stream_log(path, r, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type ExecStream = BoxStream<pb::ExecOutput>;

    async fn exec(
        &self,
        request: Request<Streaming<pb::ExecInput>>,
    ) -> Result<Response<Self::ExecStream>, Status> {
        let mut inputs = request.into_inner();
        let first = inputs
            .message()
            .await?
            .and_then(|m| m.input)
            .ok_or_else(|| Status::invalid_argument("exec stream must start with ExecStart"))?;
        let pb::exec_input::Input::Start(start) = first else {
            return Err(Status::invalid_argument(
                "exec stream must start with ExecStart",
            ));
        };
        let pods = self.node.pods().await.map_err(status_of)?;
        let pod = pods
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(start.pod_uid.as_str()))
            .ok_or_else(|| {
                Status::not_found(format!("pod {} is not on this node", start.pod_uid))
            })?;
        let container_id = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| start.container.is_empty() || c.name == start.container)
                    .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
                    .and_then(|c| c.container_id.clone())
            })
            .map(|id| id.trim_start_matches("containerd://").to_string())
            .ok_or_else(|| Status::failed_precondition("container is not running"))?;
        // kubectl sends the terminal size right after connecting; a process
        // started before it arrives would see a 0x0 terminal.
        let mut first = None;
        let mut size = None;
        if start.tty
            && let Ok(Ok(Some(message))) =
                tokio::time::timeout(INITIAL_SIZE_WAIT, inputs.message()).await
        {
            match exec_input(message) {
                Some(ExecInput::Resize(w, h)) => size = Some((w, h)),
                other => first = other,
            }
        }
        let options = ExecOptions {
            command: start.command,
            stdin: start.stdin,
            tty: start.tty,
            size,
        };
        let session = self
            .node
            .ctx
            .runtime
            .exec_session(&container_id, options)
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        tokio::spawn(forward_exec_input(first, inputs, session.input));
        use pb::exec_output::Output;
        // Dropping this stream (the caller went away) ends the session and kills the command.
        let stream = ReceiverStream::new(session.events).map(|event| {
            let output = match event {
                ExecEvent::Stdout(b) => Output::Stdout(b),
                ExecEvent::Stderr(b) => Output::Stderr(b),
                ExecEvent::Exited(code) => Output::ExitCode(code),
            };
            Ok(pb::ExecOutput {
                output: Some(output),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    type PortForwardStream = BoxStream<pb::PortForwardOutput>;

    async fn port_forward(
        &self,
        request: Request<Streaming<pb::PortForwardInput>>,
    ) -> Result<Response<Self::PortForwardStream>, Status> {
        let mut inputs = request.into_inner();
        let (uid, port) = port_forward::start(&mut inputs).await?;
        let pods = self.node.pods().await.map_err(status_of)?;
        let pod = pods
            .iter()
            .find(|p| p.metadata.uid.as_deref() == Some(uid.as_str()))
            .ok_or_else(|| Status::not_found(format!("pod {uid} is not on this node")))?;
        let key = PodKey::of(pod);
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        let netns = if host_network {
            None
        } else {
            Some(self.node.ctx.network.locate(&key).ok_or_else(|| {
                port_forward::forward_error(
                    u32::from(port),
                    &uid,
                    "the pod's network namespace does not exist (the pod is not running)",
                )
            })?)
        };
        let stream = port_forward::dial(netns.as_deref(), &uid, port)
            .await
            .map_err(|e| port_forward::forward_error(u32::from(port), &uid, e))?;
        Ok(Response::new(Box::pin(port_forward::pump(stream, inputs))))
    }
}

/// Passes the caller's stdin, EOF and terminal resizes on to the command.
async fn forward_exec_input(
    first: Option<ExecInput>,
    mut inputs: Streaming<pb::ExecInput>,
    session: tokio::sync::mpsc::Sender<ExecInput>,
) {
    if let Some(input) = first
        && session.send(input).await.is_err()
    {
        return;
    }
    while let Ok(Some(message)) = inputs.message().await {
        let Some(input) = exec_input(message) else {
            continue;
        };
        if session.send(input).await.is_err() {
            return;
        }
    }
}

fn exec_input(message: pb::ExecInput) -> Option<ExecInput> {
    use pb::exec_input::Input;
    match message.input? {
        Input::Stdin(bytes) => Some(ExecInput::Stdin(bytes)),
        Input::CloseStdin(true) => Some(ExecInput::CloseStdin),
        Input::Resize(size) => Some(ExecInput::Resize(
            u16::try_from(size.width).unwrap_or(u16::MAX),
            u16::try_from(size.height).unwrap_or(u16::MAX),
        )),
        Input::CloseStdin(false) | Input::Start(_) => None,
    }
}

/// Sends the plain text of a CRI log (optionally its tail, with timestamps),
/// then, when following, whatever is appended.
async fn stream_log(
    path: std::path::PathBuf,
    r: pb::LogsRequest,
    tx: mpsc::Sender<Result<pb::LogChunk, Status>>,
) {
    let render = |bytes: &[u8]| -> Vec<u8> {
        let mut out = Vec::new();
        for record in bytes.split(|b| *b == b'\n').filter_map(cri::parse_record) {
            if r.timestamps {
                out.extend_from_slice(
                    record
                        .time
                        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
                        .as_bytes(),
                );
                out.push(b' ');
            }
            out.extend_from_slice(&record.content);
            if !record.partial {
                out.push(b'\n');
            }
        }
        out
    };
    let Ok(content) = tokio::fs::read(&path).await else {
        let _ = tx
            .send(Err(Status::not_found(format!(
                "log {} not found",
                path.display()
            ))))
            .await;
        return;
    };
    // Only whole lines are rendered; a trailing partial line waits for more.
    let complete = content
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let mut text = render(&content[..complete]);
    if r.tail_lines > 0 {
        let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
        let keep = lines.len().saturating_sub(r.tail_lines as usize);
        text = lines[keep..].concat();
    }
    if !text.is_empty() && tx.send(Ok(pb::LogChunk { data: text })).await.is_err() {
        return;
    }
    if !r.follow {
        return;
    }
    let mut offset = complete;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if tx.is_closed() {
            return;
        }
        let Ok(content) = tokio::fs::read(&path).await else {
            return;
        };
        if content.len() <= offset {
            continue;
        }
        let complete = content[offset..]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(offset, |i| offset + i + 1);
        if complete > offset {
            let text = render(&content[offset..complete]);
            offset = complete;
            if tx.send(Ok(pb::LogChunk { data: text })).await.is_err() {
                return;
            }
        }
    }
}
