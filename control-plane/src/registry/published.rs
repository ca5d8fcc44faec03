//! Selectorless Services whose one endpoint is the control plane itself
//! (`default/kubernetes` → the API server, `kube-system/kube-dns` → the DNS
//! server): their EndpointSlice and legacy Endpoints are written here from
//! the control plane's flags, as upstream's apiserver writes its own. The
//! endpoint controllers leave selectorless Services' objects alone, so
//! nothing else competes; [`ensure`] makes them, brings them back to the
//! flags' address and ports when they drift or are deleted, and writes
//! nothing when they already say it.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::kinds::{ENDPOINTS, ENDPOINTSLICES};
use super::objects::Objects;
use crate::store::StoreError;

/// One port of the endpoint (the slice's and Endpoints' port entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Port {
    pub name: &'static str,
    pub port: u16,
    pub protocol: &'static str,
}

/// What a published Service's endpoint objects say.
#[derive(Debug, Clone)]
pub struct Published {
    pub namespace: &'static str,
    pub service: &'static str,
    /// The EndpointSlice's name (the Endpoints object has the Service's).
    pub slice_name: &'static str,
    /// `endpointslice.kubernetes.io/managed-by` of the slice (`None`: no
    /// such label, as upstream's `kubernetes` slice).
    pub managed_by: Option<&'static str>,
    /// More labels of both objects.
    pub labels: Value,
    pub address: IpAddr,
    pub ports: Vec<Port>,
}

impl Published {
    fn labels(&self, slice: bool) -> Value {
        let mut labels = self.labels.clone();
        if !labels.is_object() {
            labels = json!({});
        }
        if slice {
            labels["kubernetes.io/service-name"] = json!(self.service);
            if let Some(by) = self.managed_by {
                labels["endpointslice.kubernetes.io/managed-by"] = json!(by);
            }
        }
        labels
    }

    fn family(&self) -> &'static str {
        match self.address {
            IpAddr::V4(_) => "IPv4",
            IpAddr::V6(_) => "IPv6",
        }
    }

    fn ports_json(&self) -> Value {
        self.ports
            .iter()
            .map(|p| json!({"name": p.name, "port": p.port, "protocol": p.protocol}))
            .collect()
    }

    /// The slice's changing fields.
    fn slice_body(&self) -> Value {
        json!({
            "addressType": self.family(),
            "endpoints": [{
                "addresses": [self.address.to_string()],
                "conditions": {"ready": true, "serving": true, "terminating": false},
            }],
            "ports": self.ports_json(),
        })
    }

    /// The Endpoints object's changing fields.
    fn endpoints_body(&self) -> Value {
        json!({
            "subsets": [{
                "addresses": [{"ip": self.address.to_string()}],
                "ports": self.ports_json(),
            }],
        })
    }
}

/// Whether `have` holds everything `want` says (defaults the API added
/// are not a difference).
pub fn within(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => w
            .iter()
            .all(|(k, v)| h.get(k).is_some_and(|hv| within(v, hv))),
        (Value::Array(w), Value::Array(h)) => {
            w.len() == h.len() && w.iter().zip(h).all(|(a, b)| within(a, b))
        }
        _ => want == have,
    }
}

/// Makes one object say `body` (and carry `labels`); whether it wrote.
async fn ensure_one(
    objects: &Objects,
    rt: &'static crate::registry::resource_type::ResourceType,
    namespace: &str,
    name: &str,
    labels: Value,
    body: Value,
) -> Result<bool, StoreError> {
    let want_meta = json!({"labels": labels});
    match objects.find(rt, Some(namespace), name).await? {
        None => {
            let mut obj = body;
            obj["metadata"] = json!({"name": name, "namespace": namespace, "labels": labels});
            match objects.create(rt, obj).await {
                Ok(_) | Err(StoreError::AlreadyExists(_)) => Ok(true),
                Err(e) => Err(e),
            }
        }
        Some(have) if within(&body, &have) && within(&want_meta, &have["metadata"]) => Ok(false),
        Some(_) => {
            objects
                .update(rt, Some(namespace), name, |obj| {
                    if let (Some(obj), Some(body)) = (obj.as_object_mut(), body.as_object()) {
                        for (k, v) in body {
                            obj.insert(k.clone(), v.clone());
                        }
                    }
                    if let Some(l) = labels.as_object() {
                        for (k, v) in l {
                            obj["metadata"]["labels"][k] = v.clone();
                        }
                    }
                    true
                })
                .await?;
            Ok(true)
        }
    }
}

/// Creates or corrects the Service's EndpointSlice and Endpoints; whether
/// anything was written.
pub async fn ensure(objects: &Objects, published: &Published) -> Result<bool, StoreError> {
    let slice = ensure_one(
        objects,
        ENDPOINTSLICES,
        published.namespace,
        published.slice_name,
        published.labels(true),
        published.slice_body(),
    )
    .await?;
    let endpoints = ensure_one(
        objects,
        ENDPOINTS,
        published.namespace,
        published.service,
        published.labels(false),
        published.endpoints_body(),
    )
    .await?;
    Ok(slice || endpoints)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(address: [u8; 4], port: u16) -> Published {
        Published {
            namespace: "default",
            service: "kubernetes",
            slice_name: "kubernetes",
            managed_by: None,
            labels: json!({}),
            address: IpAddr::from(address),
            ports: vec![Port {
                name: "https",
                port,
                protocol: "TCP",
            }],
        }
    }

    #[tokio::test]
    async fn endpoints_are_made_left_alone_when_right_and_corrected() {
        let objects = Objects::in_memory();
        let p = api([192, 168, 56, 10], 6443);
        assert!(ensure(&objects, &p).await.expect("made"));
        let slice = objects
            .get(ENDPOINTSLICES, Some("default"), "kubernetes")
            .await
            .expect("slice");
        assert_eq!(slice["endpoints"][0]["addresses"][0], "192.168.56.10");
        assert_eq!(slice["ports"][0]["port"], 6443);
        assert_eq!(
            slice["metadata"]["labels"]["kubernetes.io/service-name"],
            "kubernetes"
        );
        let ep = objects
            .get(ENDPOINTS, Some("default"), "kubernetes")
            .await
            .expect("endpoints");
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "192.168.56.10");
        assert_eq!(ep["subsets"][0]["ports"][0]["name"], "https");
        assert!(
            !ensure(&objects, &p).await.expect("again"),
            "nothing to write"
        );
        // The flags changed: both follow.
        assert!(
            ensure(&objects, &api([192, 168, 56, 11], 6443))
                .await
                .expect("moved")
        );
        let ep = objects
            .get(ENDPOINTS, Some("default"), "kubernetes")
            .await
            .expect("endpoints");
        assert_eq!(ep["subsets"][0]["addresses"][0]["ip"], "192.168.56.11");
        // Deleted: made again.
        objects
            .delete(ENDPOINTSLICES, Some("default"), "kubernetes")
            .await
            .expect("delete");
        assert!(ensure(&objects, &p).await.expect("again"));
    }
}
