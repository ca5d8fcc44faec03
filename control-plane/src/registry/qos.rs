//! A pod's quality-of-service class (upstream's `qos.GetPodQOS`), which the
//! API server writes into `status.qosClass` when the pod is created.

use serde_json::Value;

use super::quantity::Quantity;

const COMPUTE: [&str; 2] = ["cpu", "memory"];

fn milli(list: &Value, resource: &str) -> Option<i64> {
    list.get(resource)
        .and_then(|q| match q {
            Value::String(s) => Quantity::parse(s).ok(),
            Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
            _ => None,
        })
        .map(|q| q.milli_value())
}

/// `BestEffort` when no container requests or limits cpu or memory,
/// `Guaranteed` when every container limits both and requests (defaulted
/// to the limits) equal them, else `Burstable`.
pub fn pod_qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| spec.get(*l).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any_set = false;
    let mut guaranteed = true;
    for c in containers {
        let requests = &c["resources"]["requests"];
        let limits = &c["resources"]["limits"];
        for r in COMPUTE {
            let (req, lim) = (milli(requests, r), milli(limits, r));
            if req.is_some_and(|v| v != 0) || lim.is_some_and(|v| v != 0) {
                any_set = true;
            }
            match (req.or(lim), lim) {
                (Some(req), Some(lim)) if req == lim => {}
                _ => guaranteed = false,
            }
        }
    }
    match (any_set, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn classes_follow_requests_and_limits() {
        let pod = |resources: Value| json!({"containers": [{"name": "a", "resources": resources}]});
        assert_eq!(pod_qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            pod_qos_class(&pod(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            pod_qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "1000m", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            pod_qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"},
                "requests": {"cpu": "500m"}}))),
            "Burstable"
        );
    }
}
