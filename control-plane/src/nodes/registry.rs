//! The `skiff.node.v1.NodeRegistry` service: kubelets register (the Node
//! object is created or refreshed) and send heartbeats.
//!
//! Every heartbeat is recorded in the in-memory [`Liveness`] table, which
//! is what the node-lifecycle actor judges silence by. The Node object is
//! written only when the reported status differs from the stored one in
//! anything but timestamps, or when the stored `lastHeartbeatTime` is older
//! than the status-report interval: upstream's kubelet does the same (Lease
//! renewals for liveness, NodeStatus on change or every
//! `nodeStatusReportFrequency`), so a thousand nodes beating every second
//! cost no store writes while nothing changes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use skiff_proto::link::PeerInfo;
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_registry_server::{NodeRegistry, NodeRegistryServer};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use super::identity;
use super::liveness::Liveness;
use super::view::NodeView;
use crate::registry::allocation::pod_cidr::cluster_cidr;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// Heartbeat interval nodes are asked to keep (Skiff's lab profile).
pub const HEARTBEAT_INTERVAL_MS: u64 = 1000;

/// Settings of the registry.
#[derive(Debug, Clone, Copy)]
pub struct RegistryConfig {
    /// Longest time an unchanged status goes without being written (its
    /// `lastHeartbeatTime` refreshed); upstream's
    /// `nodeStatusReportFrequency` is 5 min.
    pub status_report_interval: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            status_report_interval: Duration::from_secs(10),
        }
    }
}

/// The service implementation.
pub struct Registry {
    objects: Objects,
    liveness: Arc<Liveness>,
    view: Arc<NodeView>,
    config: RegistryConfig,
    /// Agent endpoint each node registered with, by node name: a heartbeat
    /// does not repeat it, but the status derived from it must compare
    /// equal to the one registration wrote.
    endpoints: Mutex<HashMap<String, String>>,
    /// Signs pods' projected ServiceAccount tokens ([`super::tokens`]).
    token_signer: Option<Arc<crate::auth::tokens::TokenSigner>>,
}

impl Registry {
    /// A registry writing Node objects through `objects`, recording
    /// heartbeats in `liveness` and comparing them with `view`.
    pub fn new(
        objects: Objects,
        liveness: Arc<Liveness>,
        view: Arc<NodeView>,
        config: RegistryConfig,
    ) -> Self {
        Self {
            objects,
            liveness,
            view,
            config,
            endpoints: Mutex::new(HashMap::new()),
            token_signer: None,
        }
    }

    /// Hands pods tokens signed by `signer`.
    pub fn with_token_signer(mut self, signer: Arc<crate::auth::tokens::TokenSigner>) -> Self {
        self.token_signer = Some(signer);
        self
    }

    /// [`Registry::new`] as a tonic server.
    pub fn server(
        objects: Objects,
        liveness: Arc<Liveness>,
        view: Arc<NodeView>,
        config: RegistryConfig,
    ) -> NodeRegistryServer<Self> {
        NodeRegistryServer::new(Self::new(objects, liveness, view, config))
    }

    /// One heartbeat: recorded in the liveness table, written to the Node
    /// only if [`status_needs_write`] says so. Failures are logged, not
    /// returned: the next heartbeat tries again.
    async fn heartbeat(&self, status: pb::NodeStatus) {
        let rt = crate::registry::kinds::NODES;
        let Some(node_name) = hostname(&status) else {
            return;
        };
        self.liveness.heard(&node_name);
        let Some(endpoint) = self.endpoint(&node_name) else {
            // Registered with an earlier control plane on a stream that
            // survived; its next registration tells the endpoint.
            return;
        };
        let reported = node_status(&status, &endpoint);
        let interval = self.config.status_report_interval;
        // Compared with the node as stored (as upstream's kubelet reads
        // its Node before each status update), not with what this registry
        // last wrote: the node lifecycle may have marked it Unknown since,
        // and a returning node must flip back at once. The watch-fed view
        // saves a store read per heartbeat; a node it lacks is read.
        let stored = match self.view.get(&node_name) {
            Some(node) => node,
            None => match self.objects.get(rt, None, &node_name).await {
                Ok(node) => Arc::new(node),
                Err(StoreError::NotFound(_)) => return,
                Err(e) => {
                    warn!(node = %node_name, error = %e, "cannot read the node for its heartbeat");
                    return;
                }
            },
        };
        if !status_needs_write(&stored["status"], &reported, Utc::now(), interval) {
            return;
        }
        let written = self
            .objects
            .update(rt, None, &node_name, |node| {
                // Decided again on the fresh read a conflict retry makes.
                if !status_needs_write(&node["status"], &reported, Utc::now(), interval) {
                    return false;
                }
                apply_status(node, &reported);
                if is_ready(&reported) {
                    shed_taints(node, unreachable_taint);
                }
                true
            })
            .await;
        match written {
            Ok(_) => debug!(node = %node_name, "node status written"),
            Err(e) => warn!(node = %node_name, error = %e, "cannot write the node status"),
        }
    }

    fn endpoint(&self, node: &str) -> Option<String> {
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(node)
            .cloned()
    }
}

/// The node a status is about: its Hostname address.
fn hostname(status: &pb::NodeStatus) -> Option<String> {
    status
        .addresses
        .iter()
        .find(|a| a.r#type == "Hostname")
        .map(|a| a.address.clone())
}

fn millis_to_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The `status` of a Node from what its kubelet reports.
fn node_status(status: &pb::NodeStatus, agent_endpoint: &str) -> Value {
    let quantity = |q: &Option<pb::Quantity>| {
        let q = q.clone().unwrap_or_default();
        json!({"cpu": q.cpu, "memory": q.memory, "pods": q.pods.to_string()})
    };
    let heartbeat = millis_to_time(status.heartbeat_time_ms);
    let conditions: Vec<Value> = status
        .conditions
        .iter()
        .map(|c| {
            json!({"type": c.r#type, "status": c.status, "reason": c.reason, "message": c.message,
                   "lastHeartbeatTime": heartbeat, "lastTransitionTime": heartbeat})
        })
        .collect();
    let mut addresses: Vec<Value> = status
        .addresses
        .iter()
        .map(|a| json!({"type": a.r#type, "address": a.address}))
        .collect();
    let (host, port) = agent_endpoint
        .rsplit_once(':')
        .unwrap_or((agent_endpoint, "0"));
    if !addresses.iter().any(|a| a["type"] == "InternalIP") {
        addresses.insert(0, json!({"type": "InternalIP", "address": host}));
    }
    json!({
        "capacity": quantity(&status.capacity),
        "allocatable": quantity(&status.allocatable),
        "conditions": conditions,
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port.parse::<i64>().unwrap_or(0)}},
        "nodeInfo": node_info(status.node_info.as_ref()),
    })
}

/// `status.nodeInfo` from what the kubelet reports. Every field of
/// NodeSystemInfo is written (typed clients reject a node without one);
/// what an older or hollow kubelet leaves out is filled as upstream's
/// kubelet would report it, or empty where only the host could tell.
fn node_info(reported: Option<&pb::NodeSystemInfo>) -> Value {
    let info = reported.cloned().unwrap_or_default();
    let or = |v: String, fallback: &str| {
        if v.is_empty() {
            fallback.to_string()
        } else {
            v
        }
    };
    let arch = if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "amd64"
    };
    json!({
        "machineID": info.machine_id,
        "systemUUID": info.system_uuid,
        "bootID": info.boot_id,
        "kernelVersion": info.kernel_version,
        "osImage": or(info.os_image, "Linux"),
        "containerRuntimeVersion": or(info.container_runtime_version, "containerd://"),
        "kubeletVersion": or(
            info.kubelet_version,
            &format!("v1.{}.0-skiff", crate::version::MINOR)
        ),
        "kubeProxyVersion": info.kube_proxy_version,
        "operatingSystem": or(info.operating_system, "linux"),
        "architecture": or(info.architecture, arch),
    })
}

fn internal(e: StoreError) -> Status {
    Status::internal(e.to_string())
}

/// Keeps `lastTransitionTime` of conditions whose status did not change.
fn merge_conditions(old: &Value, new: &mut Value) {
    let Some(new_list) = new.as_array_mut() else {
        return;
    };
    for c in new_list {
        if let Some(prev) = old
            .as_array()
            .and_then(|l| l.iter().find(|o| o["type"] == c["type"]))
            .filter(|o| o["status"] == c["status"])
        {
            c["lastTransitionTime"] = prev["lastTransitionTime"].clone();
        }
    }
}

/// A Node status without its timestamps, for comparing what a kubelet
/// reports with what is stored.
fn without_timestamps(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(conditions) = status["conditions"].as_array_mut() {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            c.remove("lastHeartbeatTime");
            c.remove("lastTransitionTime");
        }
    }
    status
}

fn ready_heartbeat(status: &Value) -> Option<DateTime<Utc>> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")?["lastHeartbeatTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Whether a heartbeat reporting `reported` must be written over the
/// stored status `stored` at `now`: the status changed in anything but
/// timestamps, or the stored heartbeat time is `interval` old (or absent).
pub fn status_needs_write(
    stored: &Value,
    reported: &Value,
    now: DateTime<Utc>,
    interval: Duration,
) -> bool {
    if without_timestamps(stored) != without_timestamps(reported) {
        return true;
    }
    let interval = chrono::Duration::from_std(interval).unwrap_or(chrono::Duration::MAX);
    ready_heartbeat(stored).is_none_or(|t| now - t >= interval)
}

fn is_ready(status: &Value) -> bool {
    status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Writes `status` over a stored Node, keeping the transition times of
/// conditions that did not change.
fn apply_status(node: &mut Value, status: &Value) {
    let old = node["status"]["conditions"].clone();
    node["status"] = status.clone();
    merge_conditions(&old, &mut node["status"]["conditions"]);
}

/// Removes the node's taints whose key `shed` picks.
fn shed_taints(node: &mut Value, shed: fn(&str) -> bool) {
    if let Some(taints) = node
        .get_mut("spec")
        .and_then(|s| s.get_mut("taints"))
        .and_then(Value::as_array_mut)
    {
        taints.retain(|t| !t["key"].as_str().is_some_and(shed));
    }
}

/// Taints a re-registering node sheds (the previous behaviour of
/// registration: whatever the control plane set on it is re-derived).
fn node_taint(key: &str) -> bool {
    key.starts_with("node.kubernetes.io/")
}

/// Taints a node that posts Ready again over a live heartbeat stream sheds.
fn unreachable_taint(key: &str) -> bool {
    key == "node.kubernetes.io/unreachable"
}

#[tonic::async_trait]
impl NodeRegistry for Registry {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let actor = identity::node_of(&PeerInfo::of(&request))?;
        let r = request.into_inner();
        if r.node_name.is_empty() {
            return Err(Status::invalid_argument("node_name is required"));
        }
        identity::may_modify(&actor, &r.node_name)?;
        identity::may_set_labels(&actor, r.labels.keys())?;
        let rt = crate::registry::kinds::NODES;
        let status = node_status(&r.status.unwrap_or_default(), &r.agent_endpoint);
        let mut labels = json!({
            "kubernetes.io/hostname": r.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" },
        });
        for (k, v) in &r.labels {
            labels[k] = json!(v);
        }
        self.liveness.heard(&r.node_name);
        self.endpoints
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(r.node_name.clone(), r.agent_endpoint.clone());
        match self.objects.get(rt, None, &r.node_name).await {
            Ok(_) => {
                self.objects
                    .update(rt, None, &r.node_name, |node| {
                        for (k, v) in labels.as_object().into_iter().flatten() {
                            node["metadata"]["labels"][k] = v.clone();
                        }
                        apply_status(node, &status);
                        // A returning node is no longer unreachable.
                        shed_taints(node, node_taint);
                        true
                    })
                    .await
                    .map_err(internal)?;
            }
            Err(StoreError::NotFound(_)) => {
                let node = json!({"metadata": {"name": r.node_name, "labels": labels}, "spec": {}, "status": status});
                self.objects.create(rt, node).await.map_err(internal)?;
            }
            Err(e) => return Err(internal(e)),
        }
        info!(node = %r.node_name, endpoint = %r.agent_endpoint, "node registered");
        Ok(Response::new(pb::RegisterResponse {
            session_id: crate::registry::meta::uuid(),
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        }))
    }

    async fn heartbeats(
        &self,
        request: Request<Streaming<pb::Heartbeat>>,
    ) -> Result<Response<pb::HeartbeatAck>, Status> {
        let actor = identity::node_of(&PeerInfo::of(&request))?;
        let mut stream = request.into_inner();
        while let Some(beat) = stream.next().await {
            if let Some(status) = beat?.status {
                if let Some(named) = hostname(&status)
                    && named != actor
                {
                    warn!(node = %actor, other = %named, "heartbeat for another node refused");
                    return Err(identity::may_modify(&actor, &named)
                        .err()
                        .unwrap_or_else(|| Status::permission_denied("another node")));
                }
                self.heartbeat(status).await;
            }
        }
        Ok(Response::new(pb::HeartbeatAck {}))
    }

    type WatchNetworkStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::PodNetwork, Status>>;

    async fn watch_network(
        &self,
        request: Request<pb::WatchNetworkRequest>,
    ) -> Result<Response<Self::WatchNetworkStream>, Status> {
        let actor = identity::node_of(&PeerInfo::of(&request))?;
        let node = request.into_inner().node_name;
        if node.is_empty() {
            return Err(Status::invalid_argument("node_name is required"));
        }
        identity::may_watch(&actor, &node)?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(super::network::follow(
            self.view.clone(),
            node,
            cluster_cidr(),
            tx,
        ));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    type WatchServicesStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::ServiceUpdate, Status>>;

    async fn watch_services(
        &self,
        request: Request<pb::WatchServicesRequest>,
    ) -> Result<Response<Self::WatchServicesStream>, Status> {
        // Any node may read Services and EndpointSlices (upstream's Node
        // authorizer allows it too); only nodes may.
        identity::node_of(&PeerInfo::of(&request))?;
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        tokio::spawn(super::services::follow(self.objects.store().clone(), tx));
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
            rx,
        )))
    }

    async fn request_pod_token(
        &self,
        request: Request<pb::PodTokenRequest>,
    ) -> Result<Response<pb::PodTokenResponse>, Status> {
        // The node is the one its certificate names, whatever it asks for.
        let actor = identity::node_of(&PeerInfo::of(&request))?;
        let signer = self.token_signer.as_ref();
        super::tokens::request_pod_token(&self.objects, signer, &actor, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn get_pod_config_map(
        &self,
        request: Request<pb::PodConfigMapRequest>,
    ) -> Result<Response<pb::PodConfigMapResponse>, Status> {
        let actor = identity::node_of(&PeerInfo::of(&request))?;
        super::tokens::get_pod_config_map(&self.objects, &actor, request.into_inner())
            .await
            .map(Response::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(ready: &str, memory: &str) -> pb::NodeStatus {
        let quantity = pb::Quantity {
            cpu: "2".into(),
            memory: memory.into(),
            pods: 110,
        };
        pb::NodeStatus {
            capacity: Some(quantity.clone()),
            allocatable: Some(quantity),
            conditions: vec![pb::NodeCondition {
                r#type: "Ready".into(),
                status: ready.into(),
                reason: "KubeletReady".into(),
                message: "kubelet is posting ready status".into(),
            }],
            addresses: vec![pb::NodeAddress {
                r#type: "Hostname".into(),
                address: "n1".into(),
            }],
            heartbeat_time_ms: Utc::now().timestamp_millis(),
            node_info: None,
        }
    }

    /// What a ready node with 1Gi of memory at 10.0.0.1 reports.
    fn ready_status() -> Value {
        node_status(&reported("True", "1Gi"), "10.0.0.1:10250")
    }

    fn at(status: &Value, when: DateTime<Utc>) -> Value {
        let mut status = status.clone();
        let t = json!(when.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        for c in status["conditions"].as_array_mut().into_iter().flatten() {
            c["lastHeartbeatTime"] = t.clone();
            c["lastTransitionTime"] = t.clone();
        }
        status
    }

    const TEN: Duration = Duration::from_secs(10);

    #[test]
    fn node_info_has_every_field_of_node_system_info() {
        const FIELDS: [&str; 10] = [
            "machineID",
            "systemUUID",
            "bootID",
            "kernelVersion",
            "osImage",
            "containerRuntimeVersion",
            "kubeletVersion",
            "kubeProxyVersion",
            "operatingSystem",
            "architecture",
        ];
        // An older kubelet reports none; a new one reports its host's.
        let old = ready_status();
        let mut fresh = reported("True", "1Gi");
        fresh.node_info = Some(pb::NodeSystemInfo {
            boot_id: "b".into(),
            machine_id: "m".into(),
            system_uuid: "u".into(),
            container_runtime_version: "containerd://1.6.20".into(),
            ..Default::default()
        });
        let new = node_status(&fresh, "10.0.0.1:10250");
        for status in [&old, &new] {
            for field in FIELDS {
                assert!(
                    status["nodeInfo"][field].is_string(),
                    "{field} missing in {status}"
                );
            }
        }
        assert_eq!(new["nodeInfo"]["bootID"], "b");
        assert_eq!(new["nodeInfo"]["machineID"], "m");
        assert_eq!(new["nodeInfo"]["systemUUID"], "u");
        assert_eq!(
            new["nodeInfo"]["containerRuntimeVersion"],
            "containerd://1.6.20"
        );
        assert_eq!(old["nodeInfo"]["operatingSystem"], "linux");
    }

    #[test]
    fn timestamps_alone_are_not_a_change() {
        let now = Utc::now();
        let stored = at(&ready_status(), now);
        let later = now + chrono::Duration::seconds(3);
        assert!(!status_needs_write(
            &stored,
            &at(&stored, later),
            later,
            TEN
        ));
    }

    #[test]
    fn a_stale_stored_heartbeat_is_refreshed() {
        let now = Utc::now();
        let stored = at(&ready_status(), now);
        let after = |secs| now + chrono::Duration::seconds(secs);
        assert!(!status_needs_write(&stored, &stored, after(9), TEN));
        assert!(status_needs_write(&stored, &stored, after(10), TEN));
        let mut no_time = stored.clone();
        no_time["conditions"][0]
            .as_object_mut()
            .map(|c| c.remove("lastHeartbeatTime"));
        assert!(status_needs_write(&no_time, &stored, now, TEN));
    }

    #[test]
    fn any_other_difference_is_a_change() {
        let now = Utc::now();
        let base = ready_status();
        let stored = at(&base, now);
        let changes = [
            node_status(&reported("False", "1Gi"), "10.0.0.1:10250"),
            node_status(&reported("True", "2Gi"), "10.0.0.1:10250"),
            node_status(&reported("True", "1Gi"), "10.0.0.2:10250"),
            node_status(&reported("True", "1Gi"), "10.0.0.1:10251"),
        ];
        for change in changes {
            assert!(
                status_needs_write(&stored, &at(&change, now), now, TEN),
                "{change}"
            );
        }
        let mut reason = base.clone();
        reason["conditions"][0]["reason"] = json!("Other");
        assert!(status_needs_write(&stored, &at(&reason, now), now, TEN));
        let mut message = base;
        message["conditions"][0]["message"] = json!("other");
        assert!(status_needs_write(&stored, &at(&message, now), now, TEN));
    }

    async fn registered() -> (Registry, Objects, Arc<Liveness>) {
        let objects = Objects::in_memory();
        let liveness = Arc::new(Liveness::new());
        let registry = Registry::new(
            objects.clone(),
            liveness.clone(),
            Arc::new(NodeView::default()),
            RegistryConfig::default(),
        );
        registry
            .register(as_node("n1", register_request("n1")))
            .await
            .expect("registers");
        (registry, objects, liveness)
    }

    fn register_request(name: &str) -> pb::RegisterRequest {
        pb::RegisterRequest {
            node_name: name.into(),
            labels: HashMap::new(),
            status: Some(reported("True", "1Gi")),
            agent_endpoint: "127.0.0.1:10250".into(),
        }
    }

    /// `message` as a call from node `name`'s certificate.
    fn as_node<T>(name: &str, message: T) -> Request<T> {
        let mut request = Request::new(message);
        request.extensions_mut().insert(PeerInfo {
            remote: None,
            user: Some(skiff_pki::identity::Subject {
                name: format!("system:node:{name}"),
                groups: vec!["system:nodes".into()],
            }),
        });
        request
    }

    #[tokio::test]
    async fn a_node_registers_only_itself() {
        let (registry, objects, _) = registered().await;
        let refused = registry
            .register(as_node("n1", register_request("n2")))
            .await
            .expect_err("n1 as n2");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            refused.message(),
            "node \"n1\" is not allowed to modify node \"n2\""
        );
        let rt = crate::registry::kinds::NODES;
        assert!(objects.find(rt, None, "n2").await.expect("read").is_none());
        let anonymous = registry
            .register(Request::new(register_request("n1")))
            .await
            .expect_err("no certificate");
        assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
        let mut restricted = register_request("n1");
        restricted.labels.insert(
            "node-restriction.kubernetes.io/trusted".into(),
            "yes".into(),
        );
        assert!(registry.register(as_node("n1", restricted)).await.is_err());
        let watch = registry
            .watch_network(as_node(
                "n1",
                pb::WatchNetworkRequest {
                    node_name: "n2".into(),
                },
            ))
            .await
            .map(drop)
            .expect_err("n1 watching n2");
        assert_eq!(watch.code(), tonic::Code::PermissionDenied);
    }

    async fn stored(objects: &Objects) -> Value {
        let rt = crate::registry::kinds::NODES;
        objects.get(rt, None, "n1").await.expect("node")
    }

    #[tokio::test]
    async fn unchanged_heartbeats_only_touch_liveness() {
        let (registry, objects, liveness) = registered().await;
        let before = stored(&objects).await;
        let heard = liveness.last_heard("n1").expect("heard at registration");
        for _ in 0..3 {
            registry.heartbeat(reported("True", "1Gi")).await;
        }
        let after = stored(&objects).await;
        assert_eq!(
            before["metadata"]["resourceVersion"],
            after["metadata"]["resourceVersion"]
        );
        assert!(liveness.last_heard("n1").expect("heard") >= heard);

        registry.heartbeat(reported("True", "2Gi")).await;
        let changed = stored(&objects).await;
        assert_ne!(
            after["metadata"]["resourceVersion"],
            changed["metadata"]["resourceVersion"]
        );
        assert_eq!(changed["status"]["capacity"]["memory"], "2Gi");
    }

    #[tokio::test]
    async fn a_returning_node_is_ready_at_once() {
        let (registry, objects, _) = registered().await;
        let rt = crate::registry::kinds::NODES;
        objects
            .update(rt, None, "n1", |n| {
                n["status"]["conditions"][0]["status"] = json!("Unknown");
                n["status"]["conditions"][0]["reason"] = json!("NodeStatusUnknown");
                n["spec"]["taints"] = json!([
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"},
                    {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
                    {"key": "example.com/mine", "effect": "NoSchedule"},
                ]);
                true
            })
            .await
            .expect("marked unknown");
        registry.heartbeat(reported("True", "1Gi")).await;
        let node = stored(&objects).await;
        assert_eq!(node["status"]["conditions"][0]["status"], "True");
        assert_eq!(node["status"]["conditions"][0]["reason"], "KubeletReady");
        assert_eq!(
            node["spec"]["taints"],
            json!([{"key": "example.com/mine", "effect": "NoSchedule"}])
        );
    }
}
