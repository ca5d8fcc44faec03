//! `skiff status --data-dir DIR`: the parts of a `skiff up` cluster and
//! their health, in kubectl-like columns, from its record and what answers:
//! `skiff up` and every recorded process by pid and start time, the API's
//! `/healthz`, and each node's Ready condition as the API reports it.

use std::path::Path;

use crate::process::ProcessId;
use crate::progress;
use crate::record::{self, ClusterRecord};

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    component: String,
    pid: String,
    status: String,
    detail: String,
}

/// Prints the table; `true` when the cluster runs (`skiff up` is alive and
/// the API answers `/healthz`).
pub fn status(dir: &Path) -> anyhow::Result<bool> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Ok(record) = record::load(&dir) else {
        progress::out(&format!(
            "No cluster is running from {} (start one with `skiff up --data-dir {}`).",
            dir.display(),
            dir.display()
        ));
        return Ok(false);
    };
    let up = alive(record.skiff_up());
    let cp = alive(record.control_plane());
    let api = crate::api::Api::new(&record.api, &dir);
    let healthy = cp && api.ok("/healthz");
    let readiness = if healthy {
        api.node_readiness()
    } else {
        Vec::new()
    };
    let rows = rows(&record, up, cp, healthy, &readiness);
    progress::out(&table(&rows));
    progress::out("");
    progress::out(&format!("API:        {}", api_url(&dir, &record)));
    progress::out(&format!("KUBECONFIG: {}", dir.join("kubeconfig").display()));
    let running = up && healthy;
    if !running {
        progress::out(&format!(
            "The cluster is not running; `skiff down --data-dir {}` removes what is left.",
            dir.display()
        ));
    }
    Ok(running)
}

fn alive(id: Option<ProcessId>) -> bool {
    id.is_some_and(|p| p.is_running())
}

fn pid(id: Option<ProcessId>) -> String {
    id.map_or_else(|| "-".into(), |p| p.pid.to_string())
}

fn rows(
    record: &ClusterRecord,
    up: bool,
    cp: bool,
    healthy: bool,
    readiness: &[(String, bool)],
) -> Vec<Row> {
    let running = |yes: bool| if yes { "Running" } else { "Exited" }.to_string();
    let mut rows = vec![
        Row {
            component: "skiff-up".into(),
            pid: pid(record.skiff_up()),
            status: running(up),
            detail: String::new(),
        },
        Row {
            component: "control-plane".into(),
            pid: pid(record.control_plane()),
            status: match (cp, healthy) {
                (_, true) => "Healthy",
                (true, false) => "Unhealthy",
                (false, _) => "Exited",
            }
            .into(),
            detail: format!("{} /healthz", record.api),
        },
        Row {
            component: "containerd".into(),
            pid: pid(record.containerd_process()),
            status: running(alive(record.containerd_process())),
            detail: record.containerd_socket.display().to_string(),
        },
    ];
    for node in &record.nodes {
        let kubelet = node.kubelet(record);
        let ready = readiness
            .iter()
            .find(|(name, _)| *name == node.name)
            .map(|(_, ready)| *ready);
        let status = if !alive(kubelet) {
            "KubeletExited"
        } else if node.stopped {
            "Stopped"
        } else if node.partitioned {
            "Partitioned"
        } else {
            match ready {
                Some(true) => "Ready",
                Some(false) => "NotReady",
                None => "Unknown",
            }
        };
        let address = record
            .network
            .as_ref()
            .filter(|_| node.index > 0)
            .map(|n| n.node_ip(node.index).to_string())
            .unwrap_or_default();
        rows.push(Row {
            component: node.name.clone(),
            pid: pid(kubelet),
            status: status.into(),
            detail: format!("kubelet {address}").trim_end().to_string(),
        });
    }
    rows
}

/// The table with columns as wide as their widest cell, as kubectl prints.
fn table(rows: &[Row]) -> String {
    let header = Row {
        component: "COMPONENT".into(),
        pid: "PID".into(),
        status: "STATUS".into(),
        detail: "DETAIL".into(),
    };
    let all: Vec<&Row> = std::iter::once(&header).chain(rows).collect();
    let width = |f: fn(&Row) -> &str| all.iter().map(|r| f(r).len()).max().unwrap_or(0);
    let (c, p, s) = (
        width(|r| &r.component),
        width(|r| &r.pid),
        width(|r| &r.status),
    );
    all.iter()
        .map(|r| {
            format!(
                "{:c$}   {:p$}   {:s$}   {}",
                r.component, r.pid, r.status, r.detail
            )
            .trim_end()
            .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The API's address as the kubeconfig gives it (so the scheme is the one
/// clients use), else as recorded.
fn api_url(dir: &Path, record: &ClusterRecord) -> String {
    std::fs::read_to_string(dir.join("kubeconfig"))
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("server:")
                    .map(|s| s.trim().to_string())
            })
        })
        .unwrap_or_else(|| record.api.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_aligns_columns_like_kubectl() {
        let rows = vec![
            Row {
                component: "control-plane".into(),
                pid: "12".into(),
                status: "Healthy".into(),
                detail: "127.0.0.1:6443 /healthz".into(),
            },
            Row {
                component: "node1".into(),
                pid: "12345".into(),
                status: "Ready".into(),
                detail: String::new(),
            },
        ];
        assert_eq!(
            table(&rows),
            "COMPONENT       PID     STATUS    DETAIL\n\
             control-plane   12      Healthy   127.0.0.1:6443 /healthz\n\
             node1           12345   Ready"
        );
    }
}
