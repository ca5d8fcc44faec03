//! What the Job controller reads from and writes into its pods: the
//! tracking finalizer, phases as the controller counts them, restart
//! counts, finish times, completion indexes, and new pods from the
//! template (`<job>-<5 chars>`, or `<job>-<index>-<5 chars>` when Indexed).

use crate::controllers::fields::retain_in_metadata;
use crate::controllers::pod::template_metadata;
pub use crate::meta::{deleting, name, uid};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The finalizer that keeps a finished pod until the Job has counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";
/// Annotation (and label) carrying an Indexed Job pod's index.
pub const COMPLETION_INDEX: &str = "batch.kubernetes.io/job-completion-index";
/// Env var that exposes the index to the containers.
pub const COMPLETION_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

fn phase(pod: &Value) -> Option<&str> {
    pod.pointer("/status/phase").and_then(Value::as_str)
}

/// Phase `Succeeded`.
pub fn succeeded(pod: &Value) -> bool {
    phase(pod) == Some("Succeeded")
}

/// Finished, one way or the other.
pub fn terminal(pod: &Value) -> bool {
    matches!(phase(pod), Some("Succeeded" | "Failed"))
}

/// Still running or about to: what `status.active` counts.
pub fn active(pod: &Value) -> bool {
    !terminal(pod) && !deleting(pod)
}

/// Being deleted but not finished yet (`status.terminating`).
pub fn terminating(pod: &Value) -> bool {
    deleting(pod) && !terminal(pod)
}

/// Counted as a failure: phase `Failed`, or deleted before it succeeded
/// (upstream counts those so that pods removed under the Job, or orphaned,
/// still count).
pub fn failed(pod: &Value) -> bool {
    phase(pod) == Some("Failed") || (deleting(pod) && !succeeded(pod))
}

/// Condition `Ready` is `True`.
pub fn ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Carries the tracking finalizer (not counted in the Job's status yet).
pub fn tracked(pod: &Value) -> bool {
    pod.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

/// Removes the tracking finalizer; `false` if there was none.
pub fn untrack(pod: &mut Value) -> bool {
    retain_in_metadata(pod, "finalizers", |f| f != TRACKING_FINALIZER)
}

/// Container restarts of a pending or running pod (init containers too):
/// what `backoffLimit` is measured against when the kubelet restarts
/// failed containers in place (`restartPolicy: OnFailure`).
pub fn restarts(pod: &Value) -> i64 {
    if !matches!(phase(pod), Some("Pending" | "Running")) {
        return 0;
    }
    ["initContainerStatuses", "containerStatuses"]
        .iter()
        .filter_map(|list| pod["status"][list].as_array())
        .flatten()
        .filter_map(|c| c["restartCount"].as_i64())
        .sum()
}

fn time_at(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// When the pod finished: its containers' last `finishedAt`, else when it
/// stopped being Ready, else its deletion or creation time.
pub fn finish_time(pod: &Value) -> Option<DateTime<Utc>> {
    let containers = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| time_at(&c["state"]["terminated"]["finishedAt"]))
        .max();
    containers
        .or_else(|| {
            pod["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Ready" && c["status"] == "False")
                .and_then(|c| time_at(&c["lastTransitionTime"]))
        })
        .or_else(|| time_at(&pod["metadata"]["deletionTimestamp"]))
        .or_else(|| time_at(&pod["metadata"]["creationTimestamp"]))
}

/// The completion index of an Indexed Job's pod.
pub fn completion_index(pod: &Value) -> Option<usize> {
    pod.pointer("/metadata/annotations")?
        .get(COMPLETION_INDEX)?
        .as_str()?
        .parse()
        .ok()
}

/// A new pod from the Job's template: the template's labels and
/// annotations, the tracking finalizer, the Job as controller, and for an
/// Indexed Job its index (annotation, label, hostname, env var).
pub fn from_template(job: &Value, reference: &Value, index: Option<usize>) -> Value {
    let template = job.pointer("/spec/template").cloned().unwrap_or_default();
    let mut metadata = template_metadata(&template);
    let job_name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    metadata["namespace"] = job["metadata"]["namespace"].clone();
    metadata["ownerReferences"] = json!([reference]);
    let finalizers = metadata["finalizers"].as_array_mut();
    match finalizers {
        Some(list) if !list.iter().any(|f| f == TRACKING_FINALIZER) => {
            list.push(json!(TRACKING_FINALIZER))
        }
        Some(_) => {}
        None => metadata["finalizers"] = json!([TRACKING_FINALIZER]),
    }
    let mut spec = template.get("spec").cloned().unwrap_or_else(|| json!({}));
    match index {
        None => metadata["generateName"] = json!(format!("{job_name}-")),
        Some(i) => {
            metadata["generateName"] = json!(format!("{job_name}-{i}-"));
            metadata["annotations"][COMPLETION_INDEX] = json!(i.to_string());
            metadata["labels"][COMPLETION_INDEX] = json!(i.to_string());
            if spec["hostname"].as_str().is_none_or(str::is_empty) {
                spec["hostname"] = json!(format!("{job_name}-{i}"));
            }
            let env = json!({"name": COMPLETION_INDEX_ENV, "valueFrom": {"fieldRef": {
                "apiVersion": "v1",
                "fieldPath": format!("metadata.annotations['{COMPLETION_INDEX}']"),
            }}});
            for list in ["initContainers", "containers"] {
                for c in spec[list].as_array_mut().into_iter().flatten() {
                    let vars = c["env"].as_array_mut();
                    match vars {
                        Some(vars) if vars.iter().any(|v| v["name"] == COMPLETION_INDEX_ENV) => {}
                        Some(vars) => vars.push(env.clone()),
                        None => c["env"] = json!([env.clone()]),
                    }
                }
            }
        }
    }
    json!({"metadata": metadata, "spec": spec})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Value {
        json!({
            "metadata": {"name": "pi", "namespace": "lab", "uid": "u1"},
            "spec": {"template": {
                "metadata": {"labels": {"job-name": "pi"}},
                "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]},
            }},
        })
    }

    #[test]
    fn pods_carry_the_finalizer_and_the_job_as_controller() {
        let reference = json!({"kind": "Job", "name": "pi", "uid": "u1", "controller": true});
        let pod = from_template(&job(), &reference, None);
        assert_eq!(pod["metadata"]["generateName"], "pi-");
        assert_eq!(pod["metadata"]["namespace"], "lab");
        assert_eq!(pod["metadata"]["labels"]["job-name"], "pi");
        assert!(tracked(&pod));
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert!(pod["spec"]["containers"][0].get("env").is_none());
    }

    #[test]
    fn indexed_pods_carry_their_index_everywhere() {
        let reference = json!({"kind": "Job", "name": "pi", "uid": "u1", "controller": true});
        let pod = from_template(&job(), &reference, Some(2));
        assert_eq!(pod["metadata"]["generateName"], "pi-2-");
        assert_eq!(pod["metadata"]["annotations"][COMPLETION_INDEX], "2");
        assert_eq!(pod["metadata"]["labels"][COMPLETION_INDEX], "2");
        assert_eq!(pod["spec"]["hostname"], "pi-2");
        assert_eq!(
            pod["spec"]["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        );
        assert_eq!(completion_index(&pod), Some(2));
    }

    #[test]
    fn phases_are_counted_as_upstream() {
        let mut pod = json!({"metadata": {"finalizers": [TRACKING_FINALIZER, "other"]},
                             "status": {"phase": "Running"}});
        assert!(active(&pod) && !failed(&pod) && !terminating(&pod));
        pod["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!active(&pod) && failed(&pod) && terminating(&pod));
        pod["status"]["phase"] = json!("Succeeded");
        assert!(!failed(&pod) && !terminating(&pod) && succeeded(&pod));
        assert!(untrack(&mut pod) && !tracked(&pod));
        assert_eq!(pod["metadata"]["finalizers"], json!(["other"]));
        assert!(!untrack(&mut pod));
    }

    #[test]
    fn restarts_count_only_while_the_pod_runs() {
        let mut pod = json!({"status": {"phase": "Running",
            "initContainerStatuses": [{"restartCount": 1}],
            "containerStatuses": [{"restartCount": 2}, {"restartCount": 3}]}});
        assert_eq!(restarts(&pod), 6);
        pod["status"]["phase"] = json!("Failed");
        assert_eq!(restarts(&pod), 0);
    }

    #[test]
    fn finish_time_prefers_the_containers() {
        let pod = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"containerStatuses": [
                {"state": {"terminated": {"finishedAt": "2026-01-01T00:00:05Z"}}},
                {"state": {"terminated": {"finishedAt": "2026-01-01T00:00:09Z"}}}]}});
        assert_eq!(
            finish_time(&pod),
            Some("2026-01-01T00:00:09Z".parse().expect("time"))
        );
        let bare = json!({"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            finish_time(&bare),
            Some("2026-01-01T00:00:00Z".parse().expect("time"))
        );
    }
}
