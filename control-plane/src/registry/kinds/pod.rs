//! Pods: the rules the registry applies to them whoever writes them.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::printing::{Columns, elements, header, human_duration, n, row, s};
use super::support::{set_default, typed_schema, validate_as};
use crate::registry::meta::now;
use crate::registry::resource_type::{ALL, Behaviour, Errors, ResourceType, rt};

/// `pods` in `v1`.
pub const PODS: &ResourceType = &rt! {
    "", "v1", "pods", "pod", "Pod", true, &["po"], ALL,
    &["status", "log", "exec", "binding", "attach", "eviction", "portforward", "proxy"], &Rules
};

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

/// What the registry does with this kind's objects.
pub struct Rules;

impl Behaviour for Rules {
    fn defaults(&self, obj: &mut Value) {
        if let Some(spec) = obj.get_mut("spec") {
            default_pod_spec(spec, true);
        }
        set_default(obj, &["status", "phase"], json!("Pending"));
        let qos = crate::registry::qos::pod_qos_class(obj.get("spec").unwrap_or(&Value::Null));
        set_default(obj, &["status", "qosClass"], json!(qos));
    }

    fn initial_status(&self, obj: &Value) -> Option<Value> {
        Some(json!({
            "phase": "Pending",
            "qosClass": crate::registry::qos::pod_qos_class(obj.get("spec").unwrap_or(&Value::Null)),
        }))
    }

    fn validate(&self, rt: &ResourceType, obj: &Value) -> Errors {
        validate_as(rt, obj, |pod: Pod| {
            skiff_api_rules::pod::validate_pod(&pod)
                .into_iter()
                .filter(|e| !e.starts_with("metadata."))
                .collect()
        })
    }

    typed_schema!(Pod);

    fn columns(&self, _rt: &ResourceType, obj: &Value) -> Columns {
        let (name, age, spec, status) = row(obj);
        let (ready, st, restarts) = pod_cells(obj);
        (
            header("Name|Ready|Status|Restarts|Age|*IP|*Node|*Nominated Node|*Readiness Gates"),
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
        let pod_ready =
            elements(&status["conditions"]).any(|c| c["type"] == "Ready" && c["status"] == "True");
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

/// Upstream defaults of a pod spec (also inside templates). Job templates
/// keep `restartPolicy` unset: there it is required, not defaulted.
fn default_pod_spec(spec: &mut Value, restart_default: bool) {
    if restart_default {
        set_default(spec, &["restartPolicy"], json!("Always"));
    }
    set_default(spec, &["terminationGracePeriodSeconds"], json!(30));
    // Upstream defaults the empty string too (Go's zero value).
    if spec.get("dnsPolicy").and_then(Value::as_str) == Some("") {
        spec["dnsPolicy"] = json!("ClusterFirst");
    }
    set_default(spec, &["dnsPolicy"], json!("ClusterFirst"));
    set_default(spec, &["schedulerName"], json!("default-scheduler"));
    set_default(spec, &["securityContext"], json!({}));
    for list in ["containers", "initContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in containers {
                let image = c
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let latest = skiff_api_rules_latest(&image);
                set_default(
                    c,
                    &["imagePullPolicy"],
                    json!(if latest { "Always" } else { "IfNotPresent" }),
                );
                set_default(
                    c,
                    &["terminationMessagePath"],
                    json!("/dev/termination-log"),
                );
                set_default(c, &["terminationMessagePolicy"], json!("File"));
                set_default(c, &["resources"], json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        set_default(p, &["protocol"], json!("TCP"));
                    }
                }
                for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                    if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
                        set_default(p, &["timeoutSeconds"], json!(1));
                        set_default(p, &["periodSeconds"], json!(10));
                        set_default(p, &["successThreshold"], json!(1));
                        set_default(p, &["failureThreshold"], json!(3));
                        if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                            set_default(h, &["path"], json!("/"));
                            set_default(h, &["scheme"], json!("HTTP"));
                        }
                    }
                }
            }
        }
    }
}

fn skiff_api_rules_latest(image: &str) -> bool {
    // No tag or `:latest` (and no digest) means `Always`, as upstream.
    let last = image.rsplit('/').next().unwrap_or(image);
    !image.contains('@') && (!last.contains(':') || last.ends_with(":latest"))
}

/// Upstream defaults of the pod template at `template` (its `spec`).
pub(super) fn default_template(obj: &mut Value, template: &[&str], restart_default: bool) {
    let mut path: Vec<&str> = template.to_vec();
    path.push("spec");
    let mut cur = &mut *obj;
    for key in &path {
        match cur.get_mut(*key) {
            Some(next) => cur = next,
            None => return,
        }
    }
    default_pod_spec(cur, restart_default);
}
