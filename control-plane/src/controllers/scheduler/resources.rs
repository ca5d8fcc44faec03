//! What a pod asks for and what a node offers, in upstream's units
//! (millicores, bytes, pods), and the NodeResourcesFit check.

use serde_json::Value;

use crate::registry::quantity::Quantity;

/// Pods a node takes when it does not say (upstream's default `maxPods`).
pub const DEFAULT_MAX_PODS: i64 = 110;

/// CPU and memory amounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// Millicores.
    pub milli_cpu: i64,
    /// Bytes.
    pub memory: i64,
}

impl Resources {
    fn add(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
    }

    fn max(&mut self, other: Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
    }

    /// `self + other`, saturating.
    pub fn plus(mut self, other: Resources) -> Self {
        self.add(other);
        self
    }

    /// `self - other`, saturating.
    pub fn minus(self, other: Resources) -> Self {
        Self {
            milli_cpu: self.milli_cpu.saturating_sub(other.milli_cpu),
            memory: self.memory.saturating_sub(other.memory),
        }
    }

    /// Reads `{cpu, memory}` from a resource list. Unparseable quantities
    /// count as 0: the API validates them on write, so none reach here.
    fn of_list(list: &Value) -> Self {
        let read = |name: &str, milli: bool| {
            list.get(name)
                .and_then(quantity_of)
                .map_or(0, |q| if milli { q.milli_value() } else { q.value() })
        };
        Self {
            milli_cpu: read("cpu", true),
            memory: read("memory", false),
        }
    }
}

/// A quantity in JSON: a string (`"100m"`) or a bare number (`2`).
fn quantity_of(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// A container's requests. Upstream defaulting copies limits into missing
/// requests; Skiff's API does not, so the scheduler reads them the same way.
fn container_requests(container: &Value) -> Resources {
    let requests = Resources::of_list(&container["resources"]["requests"]);
    let limits = Resources::of_list(&container["resources"]["limits"]);
    let has = |list: &Value, name: &str| list.get(name).is_some_and(|v| !v.is_null());
    Resources {
        milli_cpu: if has(&container["resources"]["requests"], "cpu") {
            requests.milli_cpu
        } else {
            limits.milli_cpu
        },
        memory: if has(&container["resources"]["requests"], "memory") {
            requests.memory
        } else {
            limits.memory
        },
    }
}

/// The pod's effective request, as upstream's `PodRequests`: the app
/// containers plus sidecars (init containers with `restartPolicy: Always`,
/// which keep running), or the largest init step if that is more, plus
/// `spec.overhead`.
pub fn pod_requests(spec: &Value) -> Resources {
    let mut total = Resources::default();
    for c in spec["containers"].as_array().into_iter().flatten() {
        total.add(container_requests(c));
    }
    let mut sidecars = Resources::default();
    let mut init_peak = Resources::default();
    for c in spec["initContainers"].as_array().into_iter().flatten() {
        let own = container_requests(c);
        let step = if c["restartPolicy"] == "Always" {
            total.add(own);
            sidecars.add(own);
            sidecars
        } else {
            // A regular init container runs beside the sidecars started before it.
            own.plus(sidecars)
        };
        init_peak.max(step);
    }
    total.max(init_peak);
    total.add(Resources::of_list(&spec["overhead"]));
    total
}

/// What a node offers pods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocatable {
    /// CPU and memory.
    pub resources: Resources,
    /// Pods at most.
    pub pods: i64,
}

impl Allocatable {
    /// `status.allocatable`, each resource falling back to
    /// `status.capacity`. A node reporting no cpu or memory offers none
    /// (upstream: requests for it do not fit).
    pub fn of_node(node: &Value) -> Self {
        let status = &node["status"];
        let pick = |name: &str| {
            let a = &status["allocatable"][name];
            if a.is_null() {
                &status["capacity"][name]
            } else {
                a
            }
        };
        let pods = quantity_of(pick("pods")).map_or(DEFAULT_MAX_PODS, |q| q.value());
        Self {
            resources: Resources {
                milli_cpu: quantity_of(pick("cpu")).map_or(0, |q| q.milli_value()),
                memory: quantity_of(pick("memory")).map_or(0, |q| q.value()),
            },
            pods,
        }
    }
}

/// Upstream's NodeResourcesFit reasons for `request` on a node that already
/// has `pods` pods requesting `requested`, in upstream's order; empty if it
/// fits. A pod requesting nothing fits whatever is used (only the pod
/// count applies), as upstream.
pub fn insufficient(
    request: Resources,
    allocatable: &Allocatable,
    requested: Resources,
    pods: i64,
) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    if pods + 1 > allocatable.pods {
        reasons.push("Too many pods");
    }
    let free = allocatable.resources.minus(requested);
    if request.milli_cpu > 0 && request.milli_cpu > free.milli_cpu {
        reasons.push("Insufficient cpu");
    }
    if request.memory > 0 && request.memory > free.memory {
        reasons.push("Insufficient memory");
    }
    reasons
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn res(milli_cpu: i64, memory: i64) -> Resources {
        Resources { milli_cpu, memory }
    }

    #[test]
    fn containers_add_up() {
        let spec = json!({"containers": [
            {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}},
            {"resources": {"requests": {"cpu": "0.5"}}},
            {},
        ]});
        assert_eq!(pod_requests(&spec), res(600, 128 << 20));
    }

    #[test]
    fn limits_stand_in_for_missing_requests() {
        let spec = json!({"containers": [
            {"resources": {"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "200m"}}},
        ]});
        assert_eq!(pod_requests(&spec), res(200, 1 << 30));
    }

    #[test]
    fn init_containers_count_by_their_peak() {
        // max(sum of containers, max of init containers): the init step wins on cpu.
        let spec = json!({
            "initContainers": [
                {"resources": {"requests": {"cpu": "2", "memory": "10Mi"}}},
                {"resources": {"requests": {"cpu": "1", "memory": "50Mi"}}},
            ],
            "containers": [
                {"resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
                {"resources": {"requests": {"cpu": "500m", "memory": "100Mi"}}},
            ],
        });
        assert_eq!(pod_requests(&spec), res(2000, 200 << 20));
    }

    #[test]
    fn sidecars_run_beside_everything_after_them() {
        let spec = json!({
            "initContainers": [
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "100m"}}},
                {"resources": {"requests": {"cpu": "1"}}},
            ],
            "containers": [{"resources": {"requests": {"cpu": "300m"}}}],
        });
        // App phase: 300m + sidecar 100m = 400m; init phase: 1 + 100m = 1100m.
        assert_eq!(pod_requests(&spec).milli_cpu, 1100);
        let spec = json!({
            "initContainers": [
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "1"}}},
            ],
            "containers": [{"resources": {"requests": {"cpu": "300m"}}}],
        });
        assert_eq!(pod_requests(&spec).milli_cpu, 1300);
    }

    #[test]
    fn overhead_is_added() {
        let spec = json!({
            "containers": [{"resources": {"requests": {"cpu": "100m"}}}],
            "overhead": {"cpu": "250m", "memory": "120Mi"},
        });
        assert_eq!(pod_requests(&spec), res(350, 120 << 20));
    }

    #[test]
    fn allocatable_falls_back_to_capacity() {
        let node = json!({"status": {
            "capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "allocatable": {"cpu": "3500m", "pods": 20},
        }});
        let a = Allocatable::of_node(&node);
        assert_eq!(a.resources, res(3500, 8 << 30));
        assert_eq!(a.pods, 20);
        assert_eq!(Allocatable::of_node(&json!({})).pods, DEFAULT_MAX_PODS);
    }

    #[test]
    fn fit_reasons_follow_upstream() {
        let node = Allocatable {
            resources: res(2000, 1 << 30),
            pods: 3,
        };
        assert!(insufficient(res(1000, 0), &node, res(1000, 0), 2).is_empty());
        assert_eq!(
            insufficient(res(1001, 0), &node, res(1000, 0), 0),
            ["Insufficient cpu"]
        );
        assert_eq!(
            insufficient(res(1, 1), &node, res(2000, 1 << 30), 3),
            ["Too many pods", "Insufficient cpu", "Insufficient memory"]
        );
        // Requesting nothing fits an over-committed node.
        assert!(insufficient(res(0, 0), &node, res(9000, 9 << 30), 0).is_empty());
    }
}
