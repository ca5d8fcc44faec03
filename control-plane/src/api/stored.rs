//! Objects as the store keeps them and as the API shows them: the store
//! holds an object without `resourceVersion` and knows its revision; the
//! API hands it out with the revision as `resourceVersion`.

use serde_json::{Value, json};

use super::error::{ApiError, ApiResult};
use crate::store::KeyValue;

/// The stored object with its revision as `resourceVersion`.
pub fn with_rv(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value =
        serde_json::from_slice(&kv.value).map_err(|e| ApiError::internal(e.to_string()))?;
    obj["metadata"]["resourceVersion"] = json!(kv.revision.to_string());
    Ok(obj)
}

/// The bytes stored for `obj`: its `resourceVersion` is the store's.
pub fn to_bytes(obj: &Value) -> Vec<u8> {
    let mut obj = obj.clone();
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    serde_json::to_vec(&obj).unwrap_or_default()
}
