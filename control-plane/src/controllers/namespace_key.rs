//! A Namespace as a reconciler's key, for controllers that keep something
//! in every namespace (its `default` ServiceAccount, its root CA
//! ConfigMap), and the decoding they share: a namespace event is the
//! namespace's own, an event of the kept object queues its namespace.

use serde_json::Value;

use super::metadata_of;
use super::runtime::{Key, Trigger};
use crate::meta;
use crate::store::Event;

/// A Namespace, by name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamespaceName(pub String);

impl Key for NamespaceName {
    fn kind(&self) -> &str {
        "Namespace"
    }

    fn object_ref(&self) -> String {
        self.0.clone()
    }

    /// Filed under itself, so that a change of the kept object in the
    /// namespace ([`Trigger::Namespace`]) queues it.
    fn namespace(&self) -> Option<&str> {
        Some(&self.0)
    }
}

/// Decodes watch 0 (namespaces) and watch 1 (the kept kind, of which only
/// objects named `kept` matter).
pub fn decode<C>(
    watch: usize,
    event: Option<&Event>,
    kept: &str,
) -> Option<Trigger<NamespaceName, C>> {
    let Some(event) = event else {
        return Some(Trigger::Resync);
    };
    let metadata = metadata_of(event)?;
    match watch {
        0 => Some(Trigger::Object(
            event.kind,
            NamespaceName(meta::name(&metadata).to_string()),
        )),
        _ if meta::name(&metadata) == kept => {
            Some(Trigger::Namespace(meta::namespace(&metadata).to_string()))
        }
        _ => None,
    }
}

/// Whether a namespace takes new objects (not being deleted).
pub fn is_active(namespace: &Value) -> bool {
    namespace.pointer("/metadata/deletionTimestamp").is_none()
        && namespace.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating")
}
