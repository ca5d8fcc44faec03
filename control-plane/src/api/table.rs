//! Server-side printing: `Table` responses with the columns and cell values
//! `kubectl get` shows for each kind (STATUS computed as kubectl users know
//! it: `CrashLoopBackOff`, `Completed`, `Terminating`).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::registry::resources::ResourceType;

/// kubectl's human-readable age (`45s`, `3m20s`, `5h`, `2d3h`, ...).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let secs = secs.max(0);
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        let s = secs % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = secs / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    format!("{}y", hours / 24 / 365)
}

fn age_of(v: Option<&Value>) -> String {
    v.and_then(Value::as_str)
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| human_duration((Utc::now() - t.with_timezone(&Utc)).num_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

fn s(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(x)) if !x.is_empty() => x.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(b)) => if *b { "True" } else { "False" }.into(),
        _ => "<none>".into(),
    }
}

fn text(v: Option<&Value>) -> &str {
    v.and_then(Value::as_str).unwrap_or_default()
}

fn n(v: Option<&Value>) -> i64 {
    v.and_then(Value::as_i64).unwrap_or(0)
}

fn col(name: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": "string", "format": format, "description": "", "priority": priority})
}

fn selector_text(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return "<none>".into();
    };
    let labels = sel.get("matchLabels").unwrap_or(sel);
    let mut parts: Vec<String> = labels
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                .collect()
        })
        .unwrap_or_default();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e["key"].as_str().unwrap_or_default();
        let values: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match e["operator"].as_str().unwrap_or_default() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            _ => format!("!{key}"),
        });
    }
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn containers_images(template_spec: Option<&Value>) -> (String, String) {
    let cs: Vec<&Value> = template_spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let names: Vec<String> = cs.iter().map(|c| s(c.get("name"))).collect();
    let images: Vec<String> = cs.iter().map(|c| s(c.get("image"))).collect();
    (names.join(","), images.join(","))
}

/// Pod READY, STATUS, RESTARTS as kubectl prints them.
pub fn pod_cells(pod: &Value) -> (String, String, String) {
    let status = &pod["status"];
    let mut reason = status["reason"]
        .as_str()
        .or(status["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    let statuses: Vec<&Value> = status["containerStatuses"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let total = pod["spec"]["containers"]
        .as_array()
        .map_or(statuses.len(), Vec::len);
    let (mut ready, mut restarts, mut has_running) = (0, 0, false);
    let mut last_restart: Option<DateTime<Utc>> = None;
    for c in statuses.iter().rev() {
        restarts += n(c.get("restartCount"));
        if let Some(t) = c
            .pointer("/lastState/terminated/finishedAt")
            .and_then(Value::as_str)
            && let Ok(t) = DateTime::parse_from_rfc3339(t)
        {
            let t = t.with_timezone(&Utc);
            last_restart = Some(last_restart.map_or(t, |l| l.max(t)));
        }
        let state = &c["state"];
        if let Some(r) = state
            .pointer("/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = r.to_string();
        } else if let Some(t) = state.get("terminated") {
            match t["reason"].as_str().filter(|r| !r.is_empty()) {
                Some(r) => reason = r.to_string(),
                None if n(t.get("signal")) != 0 => {
                    reason = format!("Signal:{}", n(t.get("signal")))
                }
                None => reason = format!("ExitCode:{}", n(t.get("exitCode"))),
            }
        } else if c["ready"].as_bool() == Some(true) && state.get("running").is_some() {
            has_running = true;
            ready += 1;
        }
    }
    if reason == "Completed" && has_running {
        let pod_ready = status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        reason = if pod_ready { "Running" } else { "NotReady" }.into();
    }
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        reason = if status["reason"] == "NodeLost" {
            "Unknown"
        } else {
            "Terminating"
        }
        .into();
    }
    let restarts_text = match (restarts, last_restart) {
        (r, Some(t)) if r > 0 => format!(
            "{r} ({} ago)",
            human_duration((Utc::now() - t).num_seconds())
        ),
        (r, _) => r.to_string(),
    };
    (format!("{ready}/{total}"), reason, restarts_text)
}

fn service_ports(spec: &Value) -> String {
    let ports: Vec<String> = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(np) => format!("{}:{np}/{proto}", n(p.get("port"))),
                None => format!("{}/{proto}", n(p.get("port"))),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    }
}

fn job_status(job: &Value) -> String {
    let conditions = job["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conditions
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    let deleting = job
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null());
    if has("Complete") {
        "Complete".into()
    } else if has("Failed") {
        "Failed".into()
    } else if deleting {
        "Terminating".into()
    } else if has("Suspended") {
        "Suspended".into()
    } else if has("FailureTarget") {
        "FailureTarget".into()
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet".into()
    } else {
        "Running".into()
    }
}

/// kubectl's COMPLETIONS cell: `succeeded/completions`, or for a work
/// queue `succeeded/1` (`of N` when more than one pod runs at once).
fn job_completions(spec: &Value, status: &Value) -> String {
    let succeeded = n(status.get("succeeded"));
    match spec.get("completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match n(spec.get("parallelism")) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// Column names and cells (`-o wide` columns have priority 1) for `obj`.
fn columns_and_cells(rt: &ResourceType, obj: &Value) -> (Vec<Value>, Vec<String>) {
    let name = s(obj.pointer("/metadata/name"));
    let age = age_of(obj.pointer("/metadata/creationTimestamp"));
    let spec = &obj["spec"];
    let status = &obj["status"];
    let tmpl = obj.pointer("/spec/template/spec");
    match rt.kind {
        "Pod" => {
            let (ready, st, restarts) = pod_cells(obj);
            (
                vec![
                    col("Name", 0),
                    col("Ready", 0),
                    col("Status", 0),
                    col("Restarts", 0),
                    col("Age", 0),
                    col("IP", 1),
                    col("Node", 1),
                    col("Nominated Node", 1),
                    col("Readiness Gates", 1),
                ],
                vec![
                    name,
                    ready,
                    st,
                    restarts,
                    age,
                    s(status.get("podIP")),
                    s(spec.get("nodeName")),
                    "<none>".into(),
                    "<none>".into(),
                ],
            )
        }
        "Deployment" => {
            let (c, i) = containers_images(tmpl);
            (
                vec![
                    col("Name", 0),
                    col("Ready", 0),
                    col("Up-to-date", 0),
                    col("Available", 0),
                    col("Age", 0),
                    col("Containers", 1),
                    col("Images", 1),
                    col("Selector", 1),
                ],
                vec![
                    name,
                    format!(
                        "{}/{}",
                        n(status.get("readyReplicas")),
                        n(spec.get("replicas"))
                    ),
                    n(status.get("updatedReplicas")).to_string(),
                    n(status.get("availableReplicas")).to_string(),
                    age,
                    c,
                    i,
                    selector_text(spec.get("selector")),
                ],
            )
        }
        "ReplicaSet" | "ReplicationController" => {
            let (c, i) = containers_images(tmpl);
            (
                vec![
                    col("Name", 0),
                    col("Desired", 0),
                    col("Current", 0),
                    col("Ready", 0),
                    col("Age", 0),
                    col("Containers", 1),
                    col("Images", 1),
                    col("Selector", 1),
                ],
                vec![
                    name,
                    n(spec.get("replicas")).to_string(),
                    n(status.get("replicas")).to_string(),
                    n(status.get("readyReplicas")).to_string(),
                    age,
                    c,
                    i,
                    selector_text(spec.get("selector")),
                ],
            )
        }
        "DaemonSet" => {
            let (c, i) = containers_images(tmpl);
            let node_selector = obj
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "<none>".into());
            (
                vec![
                    col("Name", 0),
                    col("Desired", 0),
                    col("Current", 0),
                    col("Ready", 0),
                    col("Up-to-date", 0),
                    col("Available", 0),
                    col("Node Selector", 0),
                    col("Age", 0),
                    col("Containers", 1),
                    col("Images", 1),
                    col("Selector", 1),
                ],
                vec![
                    name,
                    n(status.get("desiredNumberScheduled")).to_string(),
                    n(status.get("currentNumberScheduled")).to_string(),
                    n(status.get("numberReady")).to_string(),
                    n(status.get("updatedNumberScheduled")).to_string(),
                    n(status.get("numberAvailable")).to_string(),
                    node_selector,
                    age,
                    c,
                    i,
                    selector_text(spec.get("selector")),
                ],
            )
        }
        "ControllerRevision" => {
            // `daemonset.apps/name`: the controller's kind and group, lowercased.
            let controller = obj
                .pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .and_then(|refs| refs.iter().find(|r| r["controller"] == json!(true)))
                .map_or_else(
                    || "<none>".to_string(),
                    |r| {
                        let group = text(r.get("apiVersion"))
                            .split_once('/')
                            .map(|(g, _)| format!(".{g}"))
                            .unwrap_or_default();
                        format!(
                            "{}{group}/{}",
                            text(r.get("kind")).to_lowercase(),
                            text(r.get("name"))
                        )
                    },
                );
            (
                vec![
                    col("Name", 0),
                    col("Controller", 0),
                    col("Revision", 0),
                    col("Age", 0),
                ],
                vec![name, controller, n(obj.get("revision")).to_string(), age],
            )
        }
        "StatefulSet" => {
            let (c, i) = containers_images(tmpl);
            (
                vec![
                    col("Name", 0),
                    col("Ready", 0),
                    col("Age", 0),
                    col("Containers", 1),
                    col("Images", 1),
                ],
                vec![
                    name,
                    format!(
                        "{}/{}",
                        n(status.get("readyReplicas")),
                        n(spec.get("replicas"))
                    ),
                    age,
                    c,
                    i,
                ],
            )
        }
        "Job" => {
            let (c, i) = containers_images(tmpl);
            let duration = match (
                status.get("startTime").and_then(Value::as_str),
                status.get("completionTime").and_then(Value::as_str),
            ) {
                (Some(a), Some(b)) => match (
                    DateTime::parse_from_rfc3339(a),
                    DateTime::parse_from_rfc3339(b),
                ) {
                    (Ok(a), Ok(b)) => human_duration((b - a).num_seconds()),
                    _ => String::new(),
                },
                (Some(a), None) => age_of(Some(&json!(a))),
                _ => String::new(),
            };
            (
                vec![
                    col("Name", 0),
                    col("Status", 0),
                    col("Completions", 0),
                    col("Duration", 0),
                    col("Age", 0),
                    col("Containers", 1),
                    col("Images", 1),
                    col("Selector", 1),
                ],
                vec![
                    name,
                    job_status(obj),
                    job_completions(spec, status),
                    duration,
                    age,
                    c,
                    i,
                    selector_text(spec.get("selector")),
                ],
            )
        }
        "CronJob" => {
            let (c, i) = containers_images(obj.pointer("/spec/jobTemplate/spec/template/spec"));
            let last = status
                .get("lastScheduleTime")
                .map_or_else(|| "<none>".into(), |t| age_of(Some(t)));
            (
                vec![
                    col("Name", 0),
                    col("Schedule", 0),
                    col("Timezone", 0),
                    col("Suspend", 0),
                    col("Active", 0),
                    col("Last Schedule", 0),
                    col("Age", 0),
                    col("Containers", 1),
                    col("Images", 1),
                    col("Selector", 1),
                ],
                vec![
                    name,
                    s(spec.get("schedule")),
                    s(spec.get("timeZone")),
                    s(spec.get("suspend")),
                    status["active"].as_array().map_or(0, Vec::len).to_string(),
                    last,
                    age,
                    c,
                    i,
                    selector_text(obj.pointer("/spec/jobTemplate/spec/selector")),
                ],
            )
        }
        "Service" => {
            let kind = spec["type"].as_str().unwrap_or("ClusterIP");
            let external = match kind {
                "ExternalName" => s(spec.get("externalName")),
                "LoadBalancer" => status
                    .pointer("/loadBalancer/ingress/0/ip")
                    .and_then(Value::as_str)
                    .map_or_else(|| "<pending>".into(), String::from),
                _ => spec["externalIPs"]
                    .as_array()
                    .filter(|a| !a.is_empty())
                    .map_or_else(
                        || "<none>".into(),
                        |a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .collect::<Vec<_>>()
                                .join(",")
                        },
                    ),
            };
            (
                vec![
                    col("Name", 0),
                    col("Type", 0),
                    col("Cluster-IP", 0),
                    col("External-IP", 0),
                    col("Port(s)", 0),
                    col("Age", 0),
                    col("Selector", 1),
                ],
                vec![
                    name,
                    kind.into(),
                    s(spec.get("clusterIP")),
                    external,
                    service_ports(spec),
                    age,
                    selector_text(spec.get("selector")),
                ],
            )
        }
        "Node" => {
            let ready = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready");
            let mut st = match ready.and_then(|c| c["status"].as_str()) {
                Some("True") => "Ready".to_string(),
                Some(_) => "NotReady".into(),
                None => "Unknown".into(),
            };
            if spec["unschedulable"].as_bool() == Some(true) {
                st.push_str(",SchedulingDisabled");
            }
            let address = |t: &str| {
                status["addresses"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["type"] == t)
                    .map_or_else(|| "<none>".into(), |a| s(a.get("address")))
            };
            let info = &status["nodeInfo"];
            (
                vec![
                    col("Name", 0),
                    col("Status", 0),
                    col("Roles", 0),
                    col("Age", 0),
                    col("Version", 0),
                    col("Internal-IP", 1),
                    col("External-IP", 1),
                    col("OS-Image", 1),
                    col("Kernel-Version", 1),
                    col("Container-Runtime", 1),
                ],
                vec![
                    name,
                    st,
                    "<none>".into(),
                    age,
                    s(info.get("kubeletVersion")),
                    address("InternalIP"),
                    address("ExternalIP"),
                    s(info.get("osImage")),
                    s(info.get("kernelVersion")),
                    s(info.get("containerRuntimeVersion")),
                ],
            )
        }
        "Namespace" => (
            vec![col("Name", 0), col("Status", 0), col("Age", 0)],
            vec![name, s(status.get("phase")), age],
        ),
        "Event" => {
            // Both group versions print the core form.
            let core = super::events_v1::core_form(rt, obj);
            let obj = core.as_ref();
            // Upstream's printEvent with Wide set (the server always prints
            // wide; kubectl hides priority-1 columns without `-o wide`).
            let first = obj
                .get("firstTimestamp")
                .filter(|t| !t.is_null())
                .or(obj.get("eventTime"));
            let first_seen = age_of(first);
            let (last_seen, count) = match obj.get("series").filter(|s| s.is_object()) {
                Some(series) => (
                    age_of(series.get("lastObservedTime")),
                    n(series.get("count")),
                ),
                None => (
                    match obj.get("lastTimestamp").filter(|t| !t.is_null()) {
                        Some(last) => age_of(Some(last)),
                        None => first_seen.clone(),
                    },
                    n(obj.get("count")).max(1),
                ),
            };
            let involved = &obj["involvedObject"];
            let kind = involved["kind"].as_str().unwrap_or_default().to_lowercase();
            let target = match involved["name"].as_str().filter(|n| !n.is_empty()) {
                Some(n) => format!("{kind}/{n}"),
                None => kind,
            };
            let component = [
                text(obj.pointer("/source/component")),
                text(obj.get("reportingComponent")),
            ]
            .into_iter()
            .find(|c| !c.is_empty())
            .unwrap_or_default();
            let instance = [
                text(obj.pointer("/source/host")),
                text(obj.get("reportingInstance")),
            ]
            .into_iter()
            .find(|c| !c.is_empty())
            .unwrap_or_default();
            let source = if instance.is_empty() {
                component.to_string()
            } else {
                format!("{component}, {instance}")
            };
            (
                vec![
                    col("Last Seen", 0),
                    col("Type", 0),
                    col("Reason", 0),
                    col("Object", 0),
                    col("Subobject", 1),
                    col("Source", 1),
                    col("Message", 0),
                    col("First Seen", 1),
                    col("Count", 1),
                    col("Name", 1),
                ],
                vec![
                    last_seen,
                    text(obj.get("type")).to_string(),
                    text(obj.get("reason")).to_string(),
                    target,
                    text(obj.pointer("/involvedObject/fieldPath")).to_string(),
                    source,
                    text(obj.get("message")).trim().to_string(),
                    first_seen,
                    count.to_string(),
                    name,
                ],
            )
        }
        "ConfigMap" => (
            vec![col("Name", 0), col("Data", 0), col("Age", 0)],
            vec![
                name,
                (obj["data"].as_object().map_or(0, |m| m.len())
                    + obj["binaryData"].as_object().map_or(0, |m| m.len()))
                .to_string(),
                age,
            ],
        ),
        "Secret" => (
            vec![
                col("Name", 0),
                col("Type", 0),
                col("Data", 0),
                col("Age", 0),
            ],
            vec![
                name,
                obj["type"].as_str().unwrap_or("Opaque").into(),
                obj["data"].as_object().map_or(0, |m| m.len()).to_string(),
                age,
            ],
        ),
        "Endpoints" => {
            let addrs: Vec<String> = obj["subsets"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|ss| {
                    let ports: Vec<i64> = ss["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|p| n(p.get("port")))
                        .collect();
                    ss["addresses"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .flat_map(move |a| {
                            let ip = a["ip"].as_str().unwrap_or_default().to_string();
                            ports.clone().into_iter().map(move |p| format!("{ip}:{p}"))
                        })
                })
                .collect();
            (
                vec![col("Name", 0), col("Endpoints", 0), col("Age", 0)],
                vec![
                    name,
                    if addrs.is_empty() {
                        "<none>".into()
                    } else {
                        addrs.join(",")
                    },
                    age,
                ],
            )
        }
        "PersistentVolumeClaim" => {
            let bound = !text(spec.get("volumeName")).is_empty();
            let (capacity, modes) = if bound {
                (
                    text(status.pointer("/capacity/storage")).to_string(),
                    access_modes(status.get("accessModes")),
                )
            } else {
                (String::new(), String::new())
            };
            (
                vec![
                    col("Name", 0),
                    col("Status", 0),
                    col("Volume", 0),
                    col("Capacity", 0),
                    col("Access Modes", 0),
                    col("StorageClass", 0),
                    col("VolumeAttributesClass", 0),
                    col("Age", 0),
                    col("VolumeMode", 1),
                ],
                vec![
                    name,
                    volume_phase(obj),
                    text(spec.get("volumeName")).to_string(),
                    capacity,
                    modes,
                    storage_class(obj, spec),
                    unset(spec.get("volumeAttributesClassName")),
                    age,
                    unset(spec.get("volumeMode")),
                ],
            )
        }
        "PersistentVolume" => {
            let claim = match spec.get("claimRef").filter(|c| c.is_object()) {
                Some(c) => format!("{}/{}", text(c.get("namespace")), text(c.get("name"))),
                None => String::new(),
            };
            (
                vec![
                    col("Name", 0),
                    col("Capacity", 0),
                    col("Access Modes", 0),
                    col("Reclaim Policy", 0),
                    col("Status", 0),
                    col("Claim", 0),
                    col("StorageClass", 0),
                    col("VolumeAttributesClass", 0),
                    col("Reason", 0),
                    col("Age", 0),
                    col("VolumeMode", 1),
                ],
                vec![
                    name,
                    text(spec.pointer("/capacity/storage")).to_string(),
                    access_modes(spec.get("accessModes")),
                    text(spec.get("persistentVolumeReclaimPolicy")).to_string(),
                    volume_phase(obj),
                    claim,
                    storage_class(obj, spec),
                    unset(spec.get("volumeAttributesClassName")),
                    text(status.get("reason")).to_string(),
                    age,
                    unset(spec.get("volumeMode")),
                ],
            )
        }
        "StorageClass" => {
            let default = obj
                .pointer("/metadata/annotations")
                .and_then(|a| {
                    a.get("storageclass.kubernetes.io/is-default-class")
                        .or_else(|| a.get("storageclass.beta.kubernetes.io/is-default-class"))
                })
                .and_then(Value::as_str)
                == Some("true");
            (
                vec![
                    col("Name", 0),
                    col("Provisioner", 0),
                    col("ReclaimPolicy", 0),
                    col("VolumeBindingMode", 0),
                    col("AllowVolumeExpansion", 0),
                    col("Age", 0),
                ],
                vec![
                    if default {
                        format!("{name} (default)")
                    } else {
                        name
                    },
                    text(obj.get("provisioner")).to_string(),
                    obj.get("reclaimPolicy")
                        .and_then(Value::as_str)
                        .unwrap_or("Delete")
                        .to_string(),
                    obj.get("volumeBindingMode")
                        .and_then(Value::as_str)
                        .unwrap_or("Immediate")
                        .to_string(),
                    obj.get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)
                        .to_string(),
                    age,
                ],
            )
        }
        "PodDisruptionBudget" => {
            // Upstream prints an unset budget as N/A.
            let budget = |v: Option<&Value>| match v {
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::String(p)) => p.clone(),
                _ => "N/A".into(),
            };
            (
                vec![
                    col("Name", 0),
                    col("Min Available", 0),
                    col("Max Unavailable", 0),
                    col("Allowed Disruptions", 0),
                    col("Age", 0),
                ],
                vec![
                    name,
                    budget(spec.get("minAvailable")),
                    budget(spec.get("maxUnavailable")),
                    n(status.get("disruptionsAllowed")).to_string(),
                    age,
                ],
            )
        }
        _ => (vec![col("Name", 0), col("Age", 0)], vec![name, age]),
    }
}

/// Upstream's `GetAccessModesAsString`: `RWO,ROX,RWX,RWOP`, in that order.
fn access_modes(modes: Option<&Value>) -> String {
    let has = |m: &str| {
        modes
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|x| x == m))
    };
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// A claim's or volume's phase, `Terminating` while it is being deleted.
fn volume_phase(obj: &Value) -> String {
    if obj
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
    {
        return "Terminating".into();
    }
    text(obj.pointer("/status/phase")).to_string()
}

/// The storage class: the beta annotation first, as upstream.
fn storage_class(obj: &Value, spec: &Value) -> String {
    obj.pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
        .or_else(|| spec.get("storageClassName"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn unset(v: Option<&Value>) -> String {
    v.and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("<unset>")
        .to_string()
}

fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// The `columnDefinitions` of `rt`'s Tables.
pub fn column_definitions(rt: &ResourceType) -> Value {
    Value::Array(columns_and_cells(rt, &json!({"metadata": {}})).0)
}

/// One Table row: the cells of `obj` and its metadata.
pub fn row(rt: &ResourceType, obj: &Value) -> Value {
    json!({"cells": columns_and_cells(rt, obj).1, "object": partial_metadata(obj)})
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

    #[test]
    fn pdbs_print_like_kubectl_get_pdb() {
        let rt = crate::registry::kinds::PODDISRUPTIONBUDGETS;
        let cols: Vec<String> = column_definitions(rt)
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| c["name"].as_str().unwrap_or_default().to_uppercase())
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
        let (columns, cells) = columns_and_cells(jobs, &job);
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
        let (_, cells) = columns_and_cells(jobs, &queue);
        assert_eq!(cells[1..3], ["FailureTarget", "0/1 of 3"]);

        let cronjobs = crate::registry::kinds::CRONJOBS;
        let cj = json!({"metadata": {"name": "hello"},
            "spec": {"schedule": "*/1 * * * *", "suspend": false,
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
            "status": {"active": [{"name": "hello-1"}]}});
        let (columns, cells) = columns_and_cells(cronjobs, &cj);
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
        let now = Utc::now();
        let ago = |s: i64| {
            (now - chrono::TimeDelta::seconds(s)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        };
        let event = json!({"metadata": {"name": "web.1a2b"}, "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{c}"},
            "type": "Warning", "reason": "BackOff", "message": "Back-off restarting failed container c ",
            "source": {"component": "kubelet", "host": "n1"}, "count": 4, "firstTimestamp": ago(40), "lastTimestamp": ago(5)});
        let table = table(rt, std::slice::from_ref(&event), 1);
        let names: Vec<(&str, i64)> = table["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .map(|c| (c["name"].as_str().unwrap_or_default(), n(c.get("priority"))))
            .collect();
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
    fn controller_revisions_show_their_controller_and_number() {
        let rt = crate::registry::kinds::CONTROLLERREVISIONS;
        let r = json!({"metadata": {"name": "mon-5d4f", "creationTimestamp": "2026-01-01T00:00:00Z",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "mon", "controller": true}]},
            "revision": 3});
        let t = table(rt, std::slice::from_ref(&r), 1);
        let names: Vec<&str> = t["columnDefinitions"]
            .as_array()
            .expect("columns")
            .iter()
            .filter_map(|c| c["name"].as_str())
            .collect();
        assert_eq!(names, ["Name", "Controller", "Revision", "Age"]);
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
