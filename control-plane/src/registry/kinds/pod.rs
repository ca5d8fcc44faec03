//! Pods: the rules the registry applies to them whoever writes them.

use serde_json::{Value, json};

use crate::registry::resource_type::{ALL, ResourceType, rt};
use crate::registry::strategy::now;

/// `pods` in `v1`.
pub const PODS: &ResourceType = &rt!(
    "",
    "v1",
    "pods",
    "pod",
    "Pod",
    true,
    &["po"],
    ALL,
    &[
        "status",
        "log",
        "exec",
        "binding",
        "attach",
        "eviction",
        "portforward",
        "proxy"
    ]
);

/// Sets a pod condition; `false` if it was already so (nothing to write).
pub fn set_condition(
    pod: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
) -> bool {
    if !pod["status"].is_object() {
        pod["status"] = json!({});
    }
    if !pod["status"]["conditions"].is_array() {
        pod["status"]["conditions"] = json!([]);
    }
    let Some(list) = pod["status"]["conditions"].as_array_mut() else {
        return false;
    };
    let wanted = json!({"type": kind, "status": status, "reason": reason, "message": message, "lastProbeTime": null, "lastTransitionTime": now()});
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(c)
            if c["status"] == status
                && c["reason"] == wanted["reason"]
                && c["message"] == wanted["message"] =>
        {
            false
        }
        Some(c) => {
            *c = wanted;
            true
        }
        None => {
            list.push(wanted);
            true
        }
    }
}
