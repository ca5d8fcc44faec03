//! Services and EndpointSlices by `namespace/name`, kept from the control
//! plane's updates. Shared through a `tokio::sync::watch` channel so
//! readers (a starting container, the service proxy) see one consistent
//! version and can wait for the next.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_proto::node::v1 as pb;
use tracing::warn;

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct ServiceCache {
    services: BTreeMap<String, Arc<Service>>,
    slices: BTreeMap<String, Arc<EndpointSlice>>,
    /// A full set has been received.
    synced: bool,
}

fn key_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or("default"),
        meta.name.as_deref().unwrap_or_default()
    )
}

impl ServiceCache {
    /// Applies one update of the stream.
    pub fn apply(&mut self, update: &pb::ServiceUpdate) {
        if update.reset {
            self.services.clear();
            self.slices.clear();
        }
        for bytes in &update.services {
            match serde_json::from_slice::<Service>(bytes) {
                Ok(s) => {
                    self.services.insert(key_of(&s.metadata), Arc::new(s));
                }
                Err(e) => warn!(error = %e, "undecodable Service from the control plane"),
            }
        }
        for bytes in &update.endpoint_slices {
            match serde_json::from_slice::<EndpointSlice>(bytes) {
                Ok(s) => {
                    self.slices.insert(key_of(&s.metadata), Arc::new(s));
                }
                Err(e) => warn!(error = %e, "undecodable EndpointSlice from the control plane"),
            }
        }
        for key in &update.deleted_services {
            self.services.remove(key);
        }
        for key in &update.deleted_endpoint_slices {
            self.slices.remove(key);
        }
        self.synced |= update.reset;
    }

    /// Whether a full set has been received.
    pub fn synced(&self) -> bool {
        self.synced
    }

    /// Every Service, by `namespace/name`.
    pub fn services(&self) -> impl Iterator<Item = &Arc<Service>> {
        self.services.values()
    }

    /// The Service `namespace/name`.
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Arc<Service>> {
        self.services.get(&format!("{namespace}/{name}"))
    }

    /// The EndpointSlices of Service `namespace/name` (by the
    /// `kubernetes.io/service-name` label, as upstream's proxy finds them).
    pub fn slices_of<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Arc<EndpointSlice>> + 'a {
        self.slices.values().filter(move |s| {
            s.metadata.namespace.as_deref().unwrap_or("default") == namespace
                && s.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("kubernetes.io/service-name"))
                    .is_some_and(|n| n == name)
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn bytes(v: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&v).expect("json")
    }

    #[test]
    fn updates_add_change_and_delete_and_a_reset_forgets() {
        let mut cache = ServiceCache::default();
        assert!(!cache.synced());
        cache.apply(&pb::ServiceUpdate {
            reset: true,
            services: vec![bytes(json!({"metadata": {"name": "a", "namespace": "default"}}))],
            endpoint_slices: vec![bytes(json!({"metadata": {"name": "a-1", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "a"}}, "addressType": "IPv4", "endpoints": []}))],
            ..Default::default()
        });
        assert!(cache.synced());
        assert!(cache.service("default", "a").is_some());
        assert_eq!(cache.slices_of("default", "a").count(), 1);
        assert_eq!(cache.slices_of("other", "a").count(), 0);
        cache.apply(&pb::ServiceUpdate {
            deleted_services: vec!["default/a".into()],
            services: vec![bytes(
                json!({"metadata": {"name": "b", "namespace": "lab"}}),
            )],
            ..Default::default()
        });
        assert!(cache.service("default", "a").is_none());
        assert!(cache.service("lab", "b").is_some());
        cache.apply(&pb::ServiceUpdate {
            reset: true,
            ..Default::default()
        });
        assert_eq!(cache.services().count(), 0);
        assert_eq!(cache.slices_of("default", "a").count(), 0);
    }
}
