//! Server-side printing: `Table` responses with the columns and cell values
//! `kubectl get` shows for each kind (STATUS computed as kubectl users know
//! it: `CrashLoopBackOff`, `Completed`, `Terminating`). Each kind's columns
//! are its [`Behaviour::columns`](crate::registry::resource_type::Behaviour::columns).

use serde_json::{Value, json};

use crate::registry::resources::ResourceType;

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// The `columnDefinitions` of `rt`'s Tables.
pub fn column_definitions(rt: &ResourceType) -> Value {
    Value::Array(rt.behaviour.columns(rt, &json!({"metadata": {}})).0)
}

/// One Table row: the cells of `obj` and its metadata.
pub fn row(rt: &ResourceType, obj: &Value) -> Value {
    json!({"cells": rt.behaviour.columns(rt, obj).1, "object": partial_metadata(obj)})
}

/// A `Table` of `objects` at `resource_version`.
pub fn table(rt: &ResourceType, objects: &[Value], resource_version: u64) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(rt, o)).collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version.to_string()},
        "columnDefinitions": column_definitions(rt),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::kinds::pod::pod_cells;
    use crate::registry::kinds::printing::{elements, human_duration, n};

    /// The cells of `obj`'s row, wide ones included.
    fn cells_of(rt: &ResourceType, obj: &Value) -> Vec<String> {
        let t = table(rt, std::slice::from_ref(obj), 1);
        elements(&t["rows"][0]["cells"])
            .filter_map(|c| c.as_str().map(String::from))
            .collect()
    }

    /// The name and priority of each column of `definitions`.
    fn columns_of(definitions: &Value) -> Vec<(&str, i64)> {
        elements(definitions)
            .map(|c| (c["name"].as_str().unwrap_or_default(), n(c.get("priority"))))
            .collect()
    }

    #[test]
    fn pdbs_print_like_kubectl_get_pdb() {
        let rt = crate::registry::kinds::PODDISRUPTIONBUDGETS;
        let cols: Vec<String> = columns_of(&column_definitions(rt))
            .iter()
            .map(|(name, _)| name.to_uppercase())
            .collect();
        assert_eq!(
            cols,
            [
                "NAME",
                "MIN AVAILABLE",
                "MAX UNAVAILABLE",
                "ALLOWED DISRUPTIONS",
                "AGE"
            ]
        );
        let pdb = json!({"metadata": {"name": "web"}, "spec": {"maxUnavailable": "25%"},
                         "status": {"disruptionsAllowed": 2}});
        let cells = row(rt, &pdb)["cells"].clone();
        assert_eq!(cells[1], "N/A");
        assert_eq!(cells[2], "25%");
        assert_eq!(cells[3], "2");
    }

    #[test]
    fn ages_print_like_kubectl() {
        for (secs, text) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (40 * 86400, "40d"),
        ] {
            assert_eq!(human_duration(secs), text);
        }
    }

    #[test]
    fn jobs_and_cronjobs_print_like_kubectl() {
        let jobs = crate::registry::kinds::JOBS;
        let job = json!({"metadata": {"name": "pi", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"completions": 3, "parallelism": 3, "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                     "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            "status": {"succeeded": 3, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:07Z",
                       "conditions": [{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}]}});
        let (columns, cells) = jobs.behaviour.columns(jobs, &job);
        let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names,
            [
                "Name",
                "Status",
                "Completions",
                "Duration",
                "Age",
                "Containers",
                "Images",
                "Selector"
            ]
        );
        assert_eq!(cells[..4], ["pi", "Complete", "3/3", "7s"]);
        assert_eq!(cells[7], "batch.kubernetes.io/controller-uid=u");
        let queue = json!({"metadata": {"name": "q"}, "spec": {"parallelism": 3},
            "status": {"conditions": [{"type": "FailureTarget", "status": "True"}]}});
        let (_, cells) = jobs.behaviour.columns(jobs, &queue);
        assert_eq!(cells[1..3], ["FailureTarget", "0/1 of 3"]);

        let cronjobs = crate::registry::kinds::CRONJOBS;
        let cj = json!({"metadata": {"name": "hello"},
            "spec": {"schedule": "*/1 * * * *", "suspend": false,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "hello-1"}]}});
        let (columns, cells) = cronjobs.behaviour.columns(cronjobs, &cj);
        let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
        assert_eq!(
            names[..7],
            [
                "Name",
                "Schedule",
                "Timezone",
                "Suspend",
                "Active",
                "Last Schedule",
                "Age"
            ]
        );
        assert_eq!(
            cells[..6],
            ["hello", "*/1 * * * *", "<none>", "False", "1", "<none>"]
        );
    }

    #[test]
    fn event_rows_have_upstreams_wide_columns() {
        let rt = crate::registry::kinds::EVENTS;
        let now = chrono::Utc::now();
        let ago = |s: i64| {
            (now - chrono::TimeDelta::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let event = json!({"metadata": {"name": "web.1a2b"}, "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
            "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container c ",
            "source": {"component": "kubelet", "host": "n1"}, "count": 4, "firstTimestamp": ago(40), "lastTimestamp": ago(5)});
        let table = table(rt, std::slice::from_ref(&event), 1);
        let names = columns_of(&table["columnDefinitions"]);
        assert_eq!(
            names,
            [
                ("Last Seen", 0),
                ("Type", 0),
                ("Reason", 0),
                ("Object", 0),
                ("Subobject", 1),
                ("Source", 1),
                ("Message", 0),
                ("First Seen", 1),
                ("Count", 1),
                ("Name", 1)
            ]
        );
        // Ages are whole seconds: a second may tick between writing and printing.
        let cells = &table["rows"][0]["cells"];
        assert!(matches!(cells[0].as_str(), Some("5s" | "6s")), "{cells}");
        assert!(matches!(cells[7].as_str(), Some("40s" | "41s")), "{cells}");
        assert_eq!(
            cells.as_array().map(|c| [&c[1..7], &c[8..]].concat()),
            Some(vec![
                json!("Warning"),
                json!("BackOff"),
                json!("pod/web"),
                json!("spec.containers{c}"),
                json!("kubelet, n1"),
                json!("Back-off restarting failed container c"),
                json!("4"),
                json!("web.1a2b")
            ])
        );
    }

    #[test]
    fn workloads_count_their_replicas() {
        use crate::registry::kinds::{DAEMONSETS, DEPLOYMENTS, REPLICASETS, STATEFULSETS};
        let obj = json!({"metadata": {"name": "w"}, "spec": {"replicas": 3},
            "status": {"replicas": 2, "readyReplicas": 1, "updatedReplicas": 2, "availableReplicas": 1,
                "desiredNumberScheduled": 5, "currentNumberScheduled": 4, "numberReady": 3,
                "updatedNumberScheduled": 2, "numberAvailable": 1}});
        for (rt, want) in [
            (REPLICASETS, &["w", "3", "2", "1", "<unknown>"][..]),
            (DEPLOYMENTS, &["w", "1/3", "2", "1", "<unknown>"]),
            (STATEFULSETS, &["w", "1/3", "<unknown>"]),
            (
                DAEMONSETS,
                &["w", "5", "4", "3", "2", "1", "<none>", "<unknown>"],
            ),
        ] {
            assert_eq!(&cells_of(rt, &obj)[..want.len()], want, "{}", rt.kind);
        }
    }

    #[test]
    fn config_counts_its_data() {
        use crate::registry::kinds::{CONFIGMAPS, SECRETS};
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}});
        let secret = json!({"metadata": {"name": "s"}, "data": {"a": ""}});
        for (rt, obj, want) in [
            (CONFIGMAPS, &cm, &["c", "3", "<unknown>"][..]),
            (SECRETS, &secret, &["s", "Opaque", "1", "<unknown>"]),
        ] {
            assert_eq!(cells_of(rt, obj), want, "{}", rt.kind);
        }
    }

    #[test]
    fn controller_revisions_show_their_controller_and_number() {
        let rt = crate::registry::kinds::CONTROLLERREVISIONS;
        let r = json!({"metadata": {"name": "mon-5d4f", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "mon", "controller": true}]},
            "revision": 3});
        let t = table(rt, std::slice::from_ref(&r), 1);
        assert_eq!(
            columns_of(&t["columnDefinitions"]),
            [("Name", 0), ("Controller", 0), ("Revision", 0), ("Age", 0)]
        );
        let cells = &t["rows"][0]["cells"];
        assert_eq!(
            (cells[0].clone(), cells[1].clone(), cells[2].clone()),
            (json!("mon-5d4f"), json!("daemonset.apps/mon"), json!("3"))
        );
        let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
        assert_eq!(table(rt, &[orphan], 1)["rows"][0]["cells"][1], "<none>");
    }

    #[test]
    fn pod_status_column_matches_kubectl() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": {"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 5, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let (ready, status, restarts) = pod_cells(&pod);
        assert_eq!(
            (ready.as_str(), status.as_str(), restarts.as_str()),
            ("1/2", "CrashLoopBackOff", "5")
        );
        let done = json!({"spec": {"containers": [{"name": "a"}]}, "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "ready": false, "restartCount": 0, "state": {"terminated": {"reason": "Completed", "exitCode": 0}}}]}});
        assert_eq!(pod_cells(&done).1, "Completed");
        let mut deleting = done.clone();
        deleting["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        assert_eq!(pod_cells(&deleting).1, "Terminating");
    }
}
