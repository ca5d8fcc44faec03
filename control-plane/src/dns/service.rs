//! The `kube-dns` Service in `kube-system` and its EndpointSlice: how
//! pods reach the DNS server, as upstream publishes CoreDNS (kubeadm's
//! labels and ports, the Service CIDR's tenth address), but without a
//! selector: its one endpoint is the control plane's DNS listen address,
//! written here, so the kubelets' service proxy carries pods'
//! `10.96.0.10:53` there (to the listen port, which may differ from 53).
//!
//! The slice carries a managed-by value other than the EndpointSlice
//! controller's, which therefore leaves it alone (as it does every
//! hand-written slice of a selectorless Service). [`ensure`] creates both
//! or brings them back to what the flags say; the control plane calls it
//! at start and then now and again, so a deleted one comes back.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tracing::info;

use crate::registry::allocation::ServiceRanges;
#[cfg(test)]
use crate::registry::kinds::ENDPOINTSLICES;
use crate::registry::kinds::SERVICES;
use crate::registry::objects::Objects;
use crate::store::StoreError;

/// The Service's namespace.
pub const NAMESPACE: &str = "kube-system";
/// The Service's name.
pub const NAME: &str = "kube-dns";
/// The slice's name.
pub const SLICE_NAME: &str = "kube-dns-control-plane";
/// The slice's `endpointslice.kubernetes.io/managed-by`.
pub const MANAGED_BY: &str = "control-plane.skiff.dev";
/// CoreDNS's metrics port, the Service's `metrics` port.
pub const METRICS_PORT: u16 = 9153;

/// Why `kube-dns` could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KubeDnsError {
    /// The Service CIDR has fewer than ten addresses.
    #[error("the Service CIDR {0} has no tenth address for kube-dns")]
    NoAddress(String),
    /// The listen address is not one a pod can be sent to.
    #[error("cannot publish DNS listen address {0} as an endpoint (use a specific address)")]
    Unspecified(SocketAddr),
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the DNS server answers, as the slice publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The DNS listen address (UDP and TCP).
    pub dns: SocketAddr,
    /// The metrics port on the same address, if served.
    pub metrics_port: Option<u16>,
}

/// The Service's ports: 53 over UDP and TCP and the metrics port, to the
/// ports the server listens on.
fn service_ports(published: &Published) -> Value {
    let dns = published.dns.port();
    let metrics = published.metrics_port.unwrap_or(METRICS_PORT);
    json!([
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": dns},
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": dns},
        {"name": "metrics", "port": METRICS_PORT, "protocol": "TCP", "targetPort": metrics},
    ])
}

/// The Service as kubeadm labels CoreDNS's, without a selector.
fn service(ip: &str, published: &Published) -> Value {
    json!({
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {
                "k8s-app": "kube-dns",
                "kubernetes.io/cluster-service": "true",
                "kubernetes.io/name": "CoreDNS",
            },
            "annotations": {
                "prometheus.io/port": METRICS_PORT.to_string(),
                "prometheus.io/scrape": "true",
            },
        },
        "spec": {
            "type": "ClusterIP",
            "clusterIP": ip,
            "clusterIPs": [ip],
            "ports": service_ports(published),
            "sessionAffinity": "None",
        },
    })
}

/// The slice and Endpoints: the DNS listen address, its ports.
fn endpoint(published: &Published) -> crate::registry::published::Published {
    use crate::registry::published::Port;
    let port = published.dns.port();
    let mut ports = vec![
        Port {
            name: "dns",
            port,
            protocol: "UDP",
        },
        Port {
            name: "dns-tcp",
            port,
            protocol: "TCP",
        },
    ];
    if let Some(metrics) = published.metrics_port {
        ports.push(Port {
            name: "metrics",
            port: metrics,
            protocol: "TCP",
        });
    }
    crate::registry::published::Published {
        namespace: NAMESPACE,
        service: NAME,
        slice_name: SLICE_NAME,
        managed_by: Some(MANAGED_BY),
        labels: json!({"k8s-app": "kube-dns"}),
        address: published.dns.ip(),
        ports,
    }
}

/// Creates `kube-dns` and its slice, or brings their ports and endpoint
/// back to `published`. The cluster IP of an existing Service is left as
/// it is.
pub async fn ensure(
    objects: &Objects,
    ranges: &ServiceRanges,
    published: Published,
) -> Result<(), KubeDnsError> {
    if published.dns.ip().is_unspecified() {
        return Err(KubeDnsError::Unspecified(published.dns));
    }
    let ip = ranges
        .ips
        .dns()
        .ok_or_else(|| KubeDnsError::NoAddress(ranges.ips.to_string()))?
        .to_string();
    match objects.find(SERVICES, Some(NAMESPACE), NAME).await? {
        None => match objects.create(SERVICES, service(&ip, &published)).await {
            Ok(_) => info!(%ip, "created the kube-dns Service"),
            Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        },
        Some(existing) => {
            let ports = service_ports(&published);
            if !existing
                .pointer("/spec/ports")
                .is_some_and(|have| crate::registry::published::within(&ports, have))
            {
                objects
                    .update(SERVICES, Some(NAMESPACE), NAME, |obj| {
                        obj["spec"]["ports"] = ports.clone();
                        true
                    })
                    .await?;
                info!("updated the kube-dns Service's ports");
            }
        }
    }
    if crate::registry::published::ensure(objects, &endpoint(&published)).await? {
        info!(dns = %published.dns, "wrote the kube-dns EndpointSlice and Endpoints");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published(port: u16) -> Published {
        Published {
            dns: SocketAddr::from(([172, 29, 1, 1], port)),
            metrics_port: Some(METRICS_PORT),
        }
    }

    async fn versions(objects: &Objects) -> (Value, Value) {
        let svc = objects
            .get(SERVICES, Some(NAMESPACE), NAME)
            .await
            .expect("service");
        let slice = objects
            .get(ENDPOINTSLICES, Some(NAMESPACE), SLICE_NAME)
            .await
            .expect("slice");
        (svc, slice)
    }

    #[tokio::test]
    async fn kube_dns_is_made_kept_and_made_again() {
        let objects = Objects::in_memory();
        let ranges = ServiceRanges::default();
        ensure(&objects, &ranges, published(10053))
            .await
            .expect("ensure");
        let (svc, slice) = versions(&objects).await;
        assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10");
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 10053);
        assert!(svc["spec"].get("selector").is_none_or(Value::is_null));
        assert_eq!(slice["endpoints"][0]["addresses"][0], "172.29.1.1");
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            NAME
        );
        // Again: nothing written.
        ensure(&objects, &ranges, published(10053))
            .await
            .expect("ensure");
        let (svc2, slice2) = versions(&objects).await;
        assert_eq!(
            svc["metadata"]["resourceVersion"],
            svc2["metadata"]["resourceVersion"]
        );
        assert_eq!(
            slice["metadata"]["resourceVersion"],
            slice2["metadata"]["resourceVersion"]
        );
        // Another listen port: both follow.
        ensure(&objects, &ranges, published(53))
            .await
            .expect("ensure");
        let (svc, slice) = versions(&objects).await;
        assert_eq!(svc["spec"]["ports"][1]["targetPort"], 53);
        assert_eq!(slice["ports"][0]["port"], 53);
        // Deleted: made again.
        objects
            .delete(ENDPOINTSLICES, Some(NAMESPACE), SLICE_NAME)
            .await
            .expect("delete");
        ensure(&objects, &ranges, published(53))
            .await
            .expect("ensure");
        versions(&objects).await;
        // An unspecified address cannot be an endpoint.
        let any = Published {
            dns: SocketAddr::from(([0, 0, 0, 0], 53)),
            metrics_port: None,
        };
        assert!(matches!(
            ensure(&objects, &ranges, any).await,
            Err(KubeDnsError::Unspecified(_))
        ));
    }
}
