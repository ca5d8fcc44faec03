//! The `kubernetes` Service in `default`: the API server's address inside
//! the cluster, at the first address of the Service CIDR, made at start if
//! missing (upstream's apiserver does the same in its controller), and
//! its endpoint: the advertised API address.

use serde_json::{Value, json};

use super::reservations::store_service;
use super::{AllocError, ServiceRanges};
use crate::registry::kinds::SERVICES;
use crate::registry::strategy;
use crate::store::{Store, StoreError};

/// The stored form (the revision is the store's, not a field).
fn encode(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}

/// The Service as upstream makes it: port 443 named `https`, to the API
/// server's own port, no selector (its endpoints are the API servers).
fn service(ranges: &ServiceRanges, api_port: u16) -> Value {
    let mut obj = json!({
        "kind": SERVICES.kind,
        "apiVersion": SERVICES.api_version(),
        "metadata": {
            "name": "kubernetes",
            "namespace": "default",
            "uid": crate::registry::meta::uuid(),
            "creationTimestamp": crate::registry::meta::now(),
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ranges.ips.first().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port}],
            "sessionAffinity": "None",
        },
    });
    strategy::prepare_for_create(SERVICES, &mut obj);
    strategy::apply_defaults(SERVICES, &mut obj);
    obj
}

/// The `kubernetes` Service's endpoint: the API server at `advertise`
/// (written by [`crate::registry::published::ensure`]), as upstream's
/// apiserver keeps its own slice and Endpoints, both named `kubernetes`.
pub fn endpoint(advertise: std::net::SocketAddr) -> crate::registry::published::Published {
    crate::registry::published::Published {
        namespace: "default",
        service: "kubernetes",
        slice_name: "kubernetes",
        managed_by: None,
        labels: json!({}),
        address: advertise.ip(),
        ports: vec![crate::registry::published::Port {
            name: "https",
            port: advertise.port(),
            protocol: "TCP",
        }],
    }
}

/// Creates the `kubernetes` Service unless it exists.
pub async fn ensure(
    store: &dyn Store,
    ranges: &ServiceRanges,
    api_port: u16,
) -> Result<(), AllocError> {
    let key = SERVICES.key(Some("default"), "kubernetes");
    match store.get(&key).await {
        Ok(_) => return Ok(()),
        Err(StoreError::NotFound(_)) => {}
        Err(e) => return Err(e.into()),
    }
    let mut obj = service(ranges, api_port);
    match store_service(store, ranges, None, &mut obj, encode).await {
        Ok(_) => {
            tracing::info!(ip = %ranges.ips.first(), "created the kubernetes Service");
            Ok(())
        }
        // Another start made it meanwhile.
        Err(AllocError::Store(StoreError::AlreadyExists(k))) if k == key => Ok(()),
        Err(e) => Err(e),
    }
}
