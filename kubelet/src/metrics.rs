//! Counters the node exposes on `/metrics` (Prometheus text format).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use k8s_openapi::api::core::v1::Pod;

use crate::probe::ProbeKind;

/// Process-wide counters; cheap to bump from any task.
#[derive(Default)]
pub struct Metrics {
    probe_success: [AtomicU64; 3],
    probe_failure: [AtomicU64; 3],
    syncs: AtomicU64,
    sync_micros: AtomicU64,
    container_starts: AtomicU64,
}

fn index(kind: ProbeKind) -> usize {
    match kind {
        ProbeKind::Liveness => 0,
        ProbeKind::Readiness => 1,
        ProbeKind::Startup => 2,
    }
}

impl Metrics {
    /// Records one probe attempt.
    pub fn probe(&self, kind: ProbeKind, success: bool) {
        let counters = if success {
            &self.probe_success
        } else {
            &self.probe_failure
        };
        counters[index(kind)].fetch_add(1, Ordering::Relaxed);
    }

    /// Records one pod sync (reconcile) and how long it took.
    pub fn sync(&self, took: std::time::Duration) {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.sync_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    /// Records one container start.
    pub fn container_started(&self) {
        self.container_starts.fetch_add(1, Ordering::Relaxed);
    }

    /// The exposition text, with per-pod figures taken from `pods`.
    pub fn render(&self, pods: &[Pod]) -> String {
        let mut out = String::new();
        let running = pods
            .iter()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
            .count();
        let _ = writeln!(
            out,
            "# HELP skiff_kubelet_running_pods Pods whose phase is Running."
        );
        let _ = writeln!(out, "# TYPE skiff_kubelet_running_pods gauge");
        let _ = writeln!(out, "skiff_kubelet_running_pods {running}");
        let _ = writeln!(out, "# HELP skiff_kubelet_pods Pods the node knows.");
        let _ = writeln!(out, "# TYPE skiff_kubelet_pods gauge");
        let _ = writeln!(out, "skiff_kubelet_pods {}", pods.len());
        let _ = writeln!(
            out,
            "# HELP skiff_kubelet_running_containers Containers running now."
        );
        let _ = writeln!(out, "# TYPE skiff_kubelet_running_containers gauge");
        let containers = pods
            .iter()
            .flat_map(|p| {
                p.status
                    .iter()
                    .flat_map(|s| s.container_statuses.iter().flatten())
            })
            .filter(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
            .count();
        let _ = writeln!(out, "skiff_kubelet_running_containers {containers}");
        let _ = writeln!(
            out,
            "# HELP skiff_kubelet_container_restarts Restarts of each container."
        );
        let _ = writeln!(out, "# TYPE skiff_kubelet_container_restarts gauge");
        for pod in pods {
            let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            for c in pod
                .status
                .iter()
                .flat_map(|s| s.container_statuses.iter().flatten())
            {
                let _ = writeln!(
                    out,
                    "skiff_kubelet_container_restarts{{namespace=\"{ns}\",pod=\"{name}\",container=\"{}\"}} {}",
                    c.name, c.restart_count
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP skiff_kubelet_container_starts_total Container instances started."
        );
        let _ = writeln!(out, "# TYPE skiff_kubelet_container_starts_total counter");
        let _ = writeln!(
            out,
            "skiff_kubelet_container_starts_total {}",
            self.container_starts.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP skiff_kubelet_probe_results_total Probe attempts by kind and result."
        );
        let _ = writeln!(out, "# TYPE skiff_kubelet_probe_results_total counter");
        for kind in [
            ProbeKind::Liveness,
            ProbeKind::Readiness,
            ProbeKind::Startup,
        ] {
            let label = kind.label().to_lowercase();
            let i = index(kind);
            let _ = writeln!(
                out,
                "skiff_kubelet_probe_results_total{{probe_type=\"{label}\",result=\"successful\"}} {}",
                self.probe_success[i].load(Ordering::Relaxed)
            );
            let _ = writeln!(
                out,
                "skiff_kubelet_probe_results_total{{probe_type=\"{label}\",result=\"failed\"}} {}",
                self.probe_failure[i].load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP skiff_kubelet_pod_sync_duration_seconds Time spent reconciling pods."
        );
        let _ = writeln!(
            out,
            "# TYPE skiff_kubelet_pod_sync_duration_seconds summary"
        );
        let _ = writeln!(
            out,
            "skiff_kubelet_pod_sync_duration_seconds_sum {:.6}",
            self.sync_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(
            out,
            "skiff_kubelet_pod_sync_duration_seconds_count {}",
            self.syncs.load(Ordering::Relaxed)
        );
        out
    }
}
