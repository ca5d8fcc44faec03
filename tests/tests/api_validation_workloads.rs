//! StatefulSets, Jobs and CronJobs sent to a real `skiff-control-plane`:
//! invalid ones are refused with 422 and upstream's wording and nothing is
//! stored; valid ones using claim templates and pod failure policies are
//! accepted; updates change only what upstream lets them change.

use serde_json::{Value, json};
use skiff_tests::control_plane::{TestControlPlane, http_json};

const STS: &str = "/apis/apps/v1/namespaces/default/statefulsets";
const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const CRONJOBS: &str = "/apis/batch/v1/namespaces/default/cronjobs";

fn send(cp: &TestControlPlane, method: &str, path: &str, body: &Value) -> (u16, Value) {
    let (code, text) = http_json(method, &cp.address, path, &body.to_string()).expect("request");
    (code, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// POSTs `body` to `collection` and asserts a 422 `Status` with `message`,
/// its causes, and that nothing named like the object was stored.
fn refused(cp: &TestControlPlane, collection: &str, body: Value, message: &str) {
    let name = body["metadata"]["name"].as_str().expect("name").to_string();
    let (code, status) = send(cp, "POST", collection, &body);
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["reason"], "Invalid", "{status}");
    assert_eq!(status["code"], 422, "{status}");
    assert_eq!(status["message"], message, "{status}");
    assert!(
        status["details"]["causes"]
            .as_array()
            .is_some_and(|c| !c.is_empty()),
        "{status}"
    );
    let (code, _) = send(cp, "GET", &format!("{collection}/{name}"), &Value::Null);
    assert_eq!(code, 404, "{name} was stored");
}

fn statefulset(name: &str, spec: Value) -> Value {
    let mut sts = json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
        "spec": {
            "serviceName": "web",
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "c", "image": "busybox", "volumeMounts": [{"name": "data", "mountPath": "/data"}]}
            ]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
        }
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        sts["spec"][k] = v.clone();
    }
    sts
}

fn job(name: &str, spec: Value) -> Value {
    let mut job = json!({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox"}]}}}
    });
    for (k, v) in spec.as_object().into_iter().flatten() {
        job["spec"][k] = v.clone();
    }
    job
}

fn cronjob(name: &str, schedule: &str, job_spec: Value) -> Value {
    let mut template = json!({"template": {"spec": {"restartPolicy": "Never",
        "containers": [{"name": "main", "image": "busybox"}]}}});
    for (k, v) in job_spec.as_object().into_iter().flatten() {
        template[k] = v.clone();
    }
    json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name},
        "spec": {"schedule": schedule, "jobTemplate": {"spec": template}}})
}

#[tokio::test]
async fn statefulsets_are_validated_as_upstream() {
    let cp = TestControlPlane::start().await;
    refused(
        &cp,
        STS,
        statefulset(
            "claims",
            json!({"volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"resources": {"requests": {"storage": "1Gi"}}}}]}),
        ),
        "StatefulSet.apps \"claims\" is invalid: spec.volumeClaimTemplates[0].spec.accessModes: Required value: at least 1 access mode is required",
    );
    refused(
        &cp,
        STS,
        statefulset(
            "nameless",
            json!({"volumeClaimTemplates": [{"spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}),
        ),
        "StatefulSet.apps \"nameless\" is invalid: spec.volumeClaimTemplates[0].metadata.name: Required value",
    );
    refused(
        &cp,
        STS,
        statefulset("svc", json!({"serviceName": "Web_Svc"})),
        "StatefulSet.apps \"svc\" is invalid: spec.serviceName: Invalid value: \"Web_Svc\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
    );
    refused(
        &cp,
        STS,
        statefulset("dotted.name", json!({})),
        "StatefulSet.apps \"dotted.name\" is invalid: metadata.name: Invalid value: \"dotted.name\": must not contain dots",
    );
    refused(
        &cp,
        STS,
        statefulset(
            "retention",
            json!({"persistentVolumeClaimRetentionPolicy": {"whenScaled": "Keep"}}),
        ),
        "StatefulSet.apps \"retention\" is invalid: spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: \"Keep\": supported values: \"Retain\", \"Delete\"",
    );
    refused(
        &cp,
        STS,
        statefulset(
            "ondelete",
            json!({"updateStrategy": {"type": "OnDelete", "rollingUpdate": {"partition": 1}}}),
        ),
        "StatefulSet.apps \"ondelete\" is invalid: spec.updateStrategy.rollingUpdate: Invalid value: apps.RollingUpdateStatefulSetStrategy{Partition:1, MaxUnavailable:(*intstr.IntOrString)(nil)}: only allowed for updateStrategy 'RollingUpdate'",
    );
    refused(
        &cp,
        STS,
        statefulset(
            "budget",
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0}}}),
        ),
        "StatefulSet.apps \"budget\" is invalid: spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}: cannot be 0",
    );
    refused(
        &cp,
        STS,
        statefulset("policy", json!({"podManagementPolicy": "Sometimes"})),
        "StatefulSet.apps \"policy\" is invalid: spec.podManagementPolicy: Invalid value: \"Sometimes\": must be 'OrderedReady' or 'Parallel'",
    );
    refused(
        &cp,
        STS,
        statefulset(
            "counts",
            json!({"minReadySeconds": -1, "ordinals": {"start": -2}}),
        ),
        "StatefulSet.apps \"counts\" is invalid: [spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0, spec.ordinals.start: Invalid value: -2: must be greater than or equal to 0]",
    );

    // A valid one with a claim template (and a retention policy given in
    // part, the rest defaulted) is stored.
    let (code, created) = send(
        &cp,
        "POST",
        STS,
        &statefulset(
            "web",
            json!({"persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete"},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0, "maxUnavailable": "50%"}}}),
        ),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Delete", "whenScaled": "Retain"})
    );
    assert_eq!(
        created["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    // No resourceVersion: the controller's status write must not turn the
    // validation error into a conflict.
    let mut update = created.clone();
    update["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resourceVersion");
    update["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] =
        json!("2Gi");
    let (code, status) = send(&cp, "PUT", &format!("{STS}/web"), &update);
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"]
            .as_str()
            .is_some_and(|m| m.ends_with("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")),
        "{status}"
    );
}

#[tokio::test]
async fn jobs_and_cronjobs_are_validated_as_upstream() {
    let cp = TestControlPlane::start().await;
    let rule = json!({"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}});
    refused(
        &cp,
        JOBS,
        job(
            "pfp-action",
            json!({"podFailurePolicy": {"rules": [{"action": "Explode", "onExitCodes": {"operator": "In", "values": [1]}}]}}),
        ),
        "Job.batch \"pfp-action\" is invalid: spec.podFailurePolicy.rules[0].action: Unsupported value: \"Explode\": supported values: \"Count\", \"FailIndex\", \"FailJob\", \"Ignore\"",
    );
    refused(
        &cp,
        JOBS,
        job(
            "pfp-both",
            json!({"podFailurePolicy": {"rules": [{"action": "Ignore",
                "onExitCodes": {"operator": "NotIn", "values": [0]},
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}}),
        ),
        "Job.batch \"pfp-both\" is invalid: spec.podFailurePolicy.rules[0]: Invalid value: specifying both OnExitCodes and OnPodConditions is not supported",
    );
    let mut on_failure = job(
        "pfp-restart",
        json!({"podFailurePolicy": {"rules": [rule]}}),
    );
    on_failure["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
    refused(
        &cp,
        JOBS,
        on_failure,
        "Job.batch \"pfp-restart\" is invalid: spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified",
    );
    refused(
        &cp,
        JOBS,
        job("per-index", json!({"backoffLimitPerIndex": 1})),
        "Job.batch \"per-index\" is invalid: spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
    );
    refused(
        &cp,
        JOBS,
        job(
            "success",
            json!({"completionMode": "Indexed", "completions": 3,
                "successPolicy": {"rules": [{"succeededIndexes": "0-5"}]}}),
        ),
        "Job.batch \"success\" is invalid: spec.successPolicy.rules[0].succeededIndexes: Invalid value: \"0-5\": error parsing succeededIndexes: too large index: \"5\"",
    );
    refused(
        &cp,
        JOBS,
        job("replace", json!({"podReplacementPolicy": "Sometimes"})),
        "Job.batch \"replace\" is invalid: spec.podReplacementPolicy: Unsupported value: \"Sometimes\": supported values: \"Failed\", \"TerminatingOrFailed\"",
    );
    // A selector of the user's own needs manualSelector.
    let mut own = job(
        "own-selector",
        json!({"selector": {"matchLabels": {"app": "pi"}}}),
    );
    own["spec"]["template"]["metadata"] = json!({"labels": {"app": "pi"}});
    let (code, status) = send(&cp, "POST", JOBS, &own);
    assert_eq!(code, 422, "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with("Job.batch \"own-selector\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"pi\", \"batch.kubernetes.io/controller-uid\":")
            && message.ends_with("`selector` not auto-generated"),
        "{status}"
    );
    // With manualSelector it must still select the template.
    let mut manual = job(
        "manual",
        json!({"manualSelector": true, "selector": {"matchLabels": {"app": "pi"}}}),
    );
    manual["spec"]["template"]["metadata"] = json!({"labels": {"app": "other"}});
    refused(
        &cp,
        JOBS,
        manual,
        "Job.batch \"manual\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"other\"}: `selector` does not match template `labels`",
    );

    refused(
        &cp,
        CRONJOBS,
        cronjob("tz", "TZ=UTC 0 0 * * *", json!({})),
        "CronJob.batch \"tz\" is invalid: spec.schedule: Invalid value: \"TZ=UTC 0 0 * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
    );
    refused(
        &cp,
        CRONJOBS,
        cronjob(
            "cj-selector",
            "* * * * *",
            json!({"selector": {"matchLabels": {"app": "x"}}}),
        ),
        "CronJob.batch \"cj-selector\" is invalid: spec.jobTemplate.spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"x\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: `selector` will be auto-generated",
    );
    let mut negative = cronjob("cj-counts", "* * * * *", json!({}));
    negative["spec"]["startingDeadlineSeconds"] = json!(-5);
    refused(
        &cp,
        CRONJOBS,
        negative,
        "CronJob.batch \"cj-counts\" is invalid: spec.startingDeadlineSeconds: Invalid value: -5: must be greater than or equal to 0",
    );

    // A Job with a pod failure policy is stored, and the policy is then
    // immutable.
    let (code, created) = send(
        &cp,
        "POST",
        JOBS,
        &job(
            "pfp",
            json!({"podFailurePolicy": {"rules": [rule, {"action": "Ignore",
                "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]}]}}),
        ),
    );
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["spec"]["podFailurePolicy"]["rules"][0]["action"],
        "FailJob"
    );
    // The Job controller writes status right after the create, so the update
    // carries no resourceVersion (an unconditional update, as upstream allows
    // for Jobs): a conflict must not hide the validation error.
    let mut update = created.clone();
    update["spec"]["podFailurePolicy"]["rules"][0]["action"] = json!("Count");
    update["metadata"]
        .as_object_mut()
        .expect("metadata")
        .remove("resourceVersion");
    let (code, status) = send(&cp, "PUT", &format!("{JOBS}/pfp"), &update);
    assert_eq!(code, 422, "{status}");
    assert!(
        status["message"].as_str().is_some_and(|m| m
            .starts_with("Job.batch \"pfp\" is invalid: spec.podFailurePolicy: Invalid value: ")
            && m.ends_with(": field is immutable")),
        "{status}"
    );
    let (code, stored) = send(&cp, "GET", &format!("{JOBS}/pfp"), &Value::Null);
    assert_eq!(code, 200);
    assert_eq!(
        stored["spec"]["podFailurePolicy"]["rules"][0]["action"],
        "FailJob"
    );
}
