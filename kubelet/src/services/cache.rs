//! Services and EndpointSlices by `namespace/name`, kept from the control
//! plane's updates. Shared through a `tokio::sync::watch` channel so
//! readers (a starting container, the service proxy) see one consistent
//! version and can wait for the next.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use skiff_proto::node::v1 as pb;
use tracing::warn;

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub struct ServiceCache {
    services: BTreeMap<String, Arc<Service>>,
    /// Slices by (their Service's key, their own key), so a Service's
    /// slices are one range, not a scan of all (the proxy asks for every
    /// Service's on each change).
    slices: BTreeMap<(String, String), Arc<EndpointSlice>>,
    /// Each slice's Service key, for deletions (they name only the slice).
    owner: HashMap<String, String>,
    /// A change number per Service key, bumped when the Service or any of
    /// its slices changes, so a reader redoes only the Services that
    /// changed since it last looked (one change must not cost every
    /// Service's work at 1,000 Services). Keys with neither a Service nor
    /// a slice are dropped.
    revisions: HashMap<String, u64>,
    last_revision: u64,
    /// A full set has been received.
    synced: bool,
    /// How many full sets have been received: each is a (re)connection to
    /// the control plane.
    resets: u64,
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
            self.owner.clear();
            self.revisions.clear();
        }
        let mut touched = Vec::new();
        for bytes in &update.services {
            match serde_json::from_slice::<Service>(bytes) {
                Ok(s) => {
                    let key = key_of(&s.metadata);
                    touched.push(key.clone());
                    self.services.insert(key, Arc::new(s));
                }
                Err(e) => warn!(error = %e, "undecodable Service from the control plane"),
            }
        }
        for bytes in &update.endpoint_slices {
            match serde_json::from_slice::<EndpointSlice>(bytes) {
                Ok(s) => {
                    let key = key_of(&s.metadata);
                    touched.extend(self.remove_slice(&key));
                    let service = format!(
                        "{}/{}",
                        s.metadata.namespace.as_deref().unwrap_or("default"),
                        s.metadata
                            .labels
                            .as_ref()
                            .and_then(|l| l.get("kubernetes.io/service-name"))
                            .map_or("", String::as_str)
                    );
                    self.owner.insert(key.clone(), service.clone());
                    touched.push(service.clone());
                    self.slices.insert((service, key), Arc::new(s));
                }
                Err(e) => warn!(error = %e, "undecodable EndpointSlice from the control plane"),
            }
        }
        for key in &update.deleted_services {
            self.services.remove(key);
            touched.push(key.clone());
        }
        for key in &update.deleted_endpoint_slices {
            touched.extend(self.remove_slice(key));
        }
        for key in touched {
            let gone = !self.services.contains_key(&key)
                && self.slices_of_key(key.clone()).next().is_none();
            if gone {
                self.revisions.remove(&key);
            } else {
                self.last_revision += 1;
                self.revisions.insert(key, self.last_revision);
            }
        }
        self.synced |= update.reset;
        self.resets += u64::from(update.reset);
    }

    /// How many full sets have been received (the first connection and
    /// each reconnection to the control plane).
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Each Service key (`namespace/name`) that has a Service or slices,
    /// with its change number (see the field's documentation).
    pub fn revisions(&self) -> impl Iterator<Item = (&str, u64)> {
        self.revisions.iter().map(|(k, r)| (k.as_str(), *r))
    }

    /// Service key `key`'s change number; `None` once it has neither a
    /// Service nor slices.
    pub fn revision(&self, key: &str) -> Option<u64> {
        self.revisions.get(key).copied()
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
        self.slices_of_key(format!("{namespace}/{name}"))
    }

    fn slices_of_key(&self, service: String) -> impl Iterator<Item = &Arc<EndpointSlice>> + '_ {
        self.slices
            .range((service.clone(), String::new())..)
            .take_while(move |((owner, _), _)| *owner == service)
            .map(|(_, slice)| slice)
    }

    /// Forgets slice `key`; the Service key it belonged to.
    fn remove_slice(&mut self, key: &str) -> Option<String> {
        let service = self.owner.remove(key)?;
        self.slices.remove(&(service.clone(), key.to_string()));
        Some(service)
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
        // A slice moved to another Service leaves the first one's set, and
        // a deleted slice leaves every set.
        cache.apply(&pb::ServiceUpdate {
            endpoint_slices: vec![bytes(json!({"metadata": {"name": "a-1", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "c"}}, "addressType": "IPv4", "endpoints": []}))],
            ..Default::default()
        });
        assert_eq!(cache.slices_of("default", "a").count(), 0);
        assert_eq!(cache.slices_of("default", "c").count(), 1);
        cache.apply(&pb::ServiceUpdate {
            deleted_endpoint_slices: vec!["default/a-1".into()],
            ..Default::default()
        });
        assert_eq!(cache.slices_of("default", "c").count(), 0);
        cache.apply(&pb::ServiceUpdate {
            reset: true,
            ..Default::default()
        });
        assert_eq!(cache.services().count(), 0);
        assert_eq!(cache.slices_of("default", "a").count(), 0);
        assert_eq!(cache.revisions().count(), 0);
    }

    #[test]
    fn a_change_bumps_only_its_services_revision() {
        let mut cache = ServiceCache::default();
        cache.apply(&pb::ServiceUpdate {
            reset: true,
            services: vec![
                bytes(json!({"metadata": {"name": "a", "namespace": "default"}})),
                bytes(json!({"metadata": {"name": "b", "namespace": "default"}})),
            ],
            ..Default::default()
        });
        let before: HashMap<String, u64> =
            cache.revisions().map(|(k, r)| (k.to_string(), r)).collect();
        assert_eq!(before.len(), 2);
        cache.apply(&pb::ServiceUpdate {
            endpoint_slices: vec![bytes(json!({"metadata": {"name": "b-1", "namespace": "default",
                "labels": {"kubernetes.io/service-name": "b"}}, "addressType": "IPv4", "endpoints": []}))],
            ..Default::default()
        });
        let after: HashMap<String, u64> =
            cache.revisions().map(|(k, r)| (k.to_string(), r)).collect();
        assert_eq!(after["default/a"], before["default/a"]);
        assert!(after["default/b"] > before["default/b"]);
        // Gone with its slices: the key is forgotten.
        cache.apply(&pb::ServiceUpdate {
            deleted_services: vec!["default/b".into()],
            deleted_endpoint_slices: vec!["default/b-1".into()],
            ..Default::default()
        });
        assert_eq!(cache.revision("default/b"), None);
        assert_eq!(cache.revision("default/a"), Some(before["default/a"]));
    }
}
