//! The `skiff.node.v1.NodeRegistry` service: kubelets register (the Node
//! object is created or refreshed) and send heartbeats (its Ready condition
//! and heartbeat time are updated).

use serde_json::{Value, json};
use skiff_proto::node::v1 as pb;
use skiff_proto::node::v1::node_registry_server::{NodeRegistry, NodeRegistryServer};
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};
use tracing::info;

use crate::api::internal::Objects;
use crate::api::objects::now;
use crate::api::resources;
use crate::store::StoreError;

/// Heartbeat interval nodes are asked to keep (Skiff's lab profile).
pub const HEARTBEAT_INTERVAL_MS: u64 = 1000;

/// The service implementation.
pub struct Registry {
    objects: Objects,
}

impl Registry {
    /// A tonic server writing Node objects through `objects`.
    pub fn server(objects: Objects) -> NodeRegistryServer<Self> {
        NodeRegistryServer::new(Self { objects })
    }
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
        "nodeInfo": {
            "kubeletVersion": format!("v1.{}.0-skiff", crate::api::discovery::MINOR),
            "containerRuntimeVersion": "containerd",
            "operatingSystem": "linux",
            "architecture": if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" },
            "osImage": "Skiff node",
            "kernelVersion": "",
        },
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

#[tonic::async_trait]
impl NodeRegistry for Registry {
    async fn register(
        &self,
        request: Request<pb::RegisterRequest>,
    ) -> Result<Response<pb::RegisterResponse>, Status> {
        let r = request.into_inner();
        if r.node_name.is_empty() {
            return Err(Status::invalid_argument("node_name is required"));
        }
        let rt =
            resources::find("", "v1", "nodes").ok_or_else(|| Status::internal("nodes type"))?;
        let status = node_status(&r.status.unwrap_or_default(), &r.agent_endpoint);
        let mut labels = json!({
            "kubernetes.io/hostname": r.node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": if cfg!(target_arch = "aarch64") { "arm64" } else { "amd64" },
        });
        for (k, v) in &r.labels {
            labels[k] = json!(v);
        }
        match self.objects.get(rt, None, &r.node_name).await {
            Ok(_) => {
                self.objects
                    .update(rt, None, &r.node_name, |node| {
                        for (k, v) in labels.as_object().into_iter().flatten() {
                            node["metadata"]["labels"][k] = v.clone();
                        }
                        let old = node["status"]["conditions"].clone();
                        node["status"] = status.clone();
                        merge_conditions(&old, &mut node["status"]["conditions"]);
                        if let Some(spec) = node["spec"].as_object_mut() {
                            // A returning node is no longer unreachable.
                            if let Some(taints) =
                                spec.get_mut("taints").and_then(Value::as_array_mut)
                            {
                                taints.retain(|t| {
                                    !t["key"]
                                        .as_str()
                                        .is_some_and(|k| k.starts_with("node.kubernetes.io/"))
                                });
                            }
                        }
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
            session_id: crate::api::objects::uuid(),
            heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS,
        }))
    }

    async fn heartbeats(
        &self,
        request: Request<Streaming<pb::Heartbeat>>,
    ) -> Result<Response<pb::HeartbeatAck>, Status> {
        let mut stream = request.into_inner();
        let rt =
            resources::find("", "v1", "nodes").ok_or_else(|| Status::internal("nodes type"))?;
        while let Some(beat) = stream.next().await {
            let beat = beat?;
            let Some(status) = beat.status else { continue };
            let node_name = status
                .addresses
                .iter()
                .find(|a| a.r#type == "Hostname")
                .map(|a| a.address.clone())
                .unwrap_or_default();
            let heartbeat = millis_to_time(status.heartbeat_time_ms);
            let _ = self
                .objects
                .update(rt, None, &node_name, |node| {
                    let Some(conditions) = node["status"]["conditions"].as_array_mut() else {
                        return false;
                    };
                    for c in conditions.iter_mut() {
                        if c["type"] == "Ready" {
                            if c["status"] != "True" {
                                c["lastTransitionTime"] = json!(now());
                            }
                            c["status"] = json!("True");
                            c["reason"] = json!("KubeletReady");
                            c["message"] = json!("kubelet is posting ready status");
                        }
                        c["lastHeartbeatTime"] = json!(heartbeat);
                    }
                    true
                })
                .await;
        }
        Ok(Response::new(pb::HeartbeatAck {}))
    }
}
