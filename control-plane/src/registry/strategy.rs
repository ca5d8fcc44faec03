//! What the API server does to objects on the way in: decoding into the
//! `k8s-openapi` type (strict shape), upstream defaults, validation with the
//! API server's wording, and server-owned metadata (uid, creationTimestamp,
//! generation, resourceVersion).

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};
use skiff_api_rules::config::{
    validate_config_map, validate_config_map_update, validate_secret, validate_secret_update,
};
use skiff_api_rules::daemonset::validate_daemonset_spec;
use skiff_api_rules::metadata::{
    NameRule, validate_annotations, validate_labels, validate_object_meta,
};
use skiff_api_rules::service::validate_service_spec;
use skiff_api_rules::storage::validate_claim_spec;
use skiff_api_rules::workloads::{TemplateRestart, validate_controller};

use super::error::ApiError;
use super::resources::ResourceType;

/// Now, as Kubernetes writes timestamps.
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// 64 random bits. std's `RandomState` keys SipHash from the kernel's
/// random source once per thread and steps the keys for every new state,
/// so this costs a hash, not a system call per object created.
fn random_u64(salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(salt);
    hasher.finish()
}

/// A random v4 UUID.
pub fn uuid() -> String {
    let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u64;
    let (hi, lo) = (random_u64(nanos), random_u64(!nanos));
    format!(
        "{:08x}-{:04x}-4{:03x}-{:x}{:03x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xfff,
        0x8 | (lo >> 62),
        (lo >> 48) & 0xfff,
        lo & 0xffff_ffff_ffff
    )
}

/// Five random lowercase alphanumerics (generateName suffixes).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let id = uuid().replace('-', "");
    id.bytes()
        .take(5)
        .enumerate()
        .map(|(i, b)| ALPHABET[(b as usize + i * 7) % ALPHABET.len()] as char)
        .collect()
}

fn set_default(obj: &mut Value, path: &[&str], value: Value) {
    let mut cur = obj;
    for (i, key) in path.iter().enumerate() {
        if !cur.is_object() {
            return;
        }
        if i == path.len() - 1 {
            if cur.get(*key).is_none_or(Value::is_null) {
                cur[*key] = value;
            }
            return;
        }
        if cur.get(*key).is_none_or(Value::is_null) {
            cur[*key] = json!({});
        }
        cur = &mut cur[*key];
    }
}

/// Upstream defaults of a pod spec (also inside templates). Job templates
/// keep `restartPolicy` unset: there it is required, not defaulted.
fn default_pod_spec(spec: &mut Value, restart_default: bool) {
    if restart_default {
        set_default(spec, &["restartPolicy"], json!("Always"));
    }
    set_default(spec, &["terminationGracePeriodSeconds"], json!(30));
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

fn default_template(obj: &mut Value, template: &[&str], restart_default: bool) {
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

/// Upstream defaults of a PersistentVolumeClaim (also of a StatefulSet's
/// claim templates).
fn default_claim(claim: &mut Value) {
    set_default(claim, &["spec", "volumeMode"], json!("Filesystem"));
    set_default(claim, &["status", "phase"], json!("Pending"));
}

/// Applies upstream defaults for `rt` to `obj` (in place).
pub fn apply_defaults(rt: &ResourceType, obj: &mut Value) {
    match rt.kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec") {
                default_pod_spec(spec, true);
            }
            set_default(obj, &["status", "phase"], json!("Pending"));
            let qos = super::qos::pod_qos_class(obj.get("spec").unwrap_or(&Value::Null));
            set_default(obj, &["status", "qosClass"], json!(qos));
        }
        "Service" => {
            set_default(obj, &["spec", "type"], json!("ClusterIP"));
            set_default(obj, &["spec", "sessionAffinity"], json!("None"));
            if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, &["protocol"], json!("TCP"));
                    let port = p.get("port").cloned().unwrap_or(Value::Null);
                    set_default(p, &["targetPort"], port);
                }
            }
        }
        "Deployment" => {
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(obj, &["spec", "progressDeadlineSeconds"], json!(600));
            set_default(obj, &["spec", "strategy", "type"], json!("RollingUpdate"));
            if obj.pointer("/spec/strategy/type").and_then(Value::as_str) == Some("RollingUpdate") {
                set_default(
                    obj,
                    &["spec", "strategy", "rollingUpdate", "maxSurge"],
                    json!("25%"),
                );
                set_default(
                    obj,
                    &["spec", "strategy", "rollingUpdate", "maxUnavailable"],
                    json!("25%"),
                );
            }
            default_template(obj, &["spec", "template"], true);
        }
        "ReplicaSet" | "ReplicationController" => {
            set_default(obj, &["spec", "replicas"], json!(1));
            if rt.kind == "ReplicationController"
                && obj.pointer("/spec/selector").is_none_or(Value::is_null)
                && let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned()
            {
                obj["spec"]["selector"] = labels;
            }
            default_template(obj, &["spec", "template"], true);
        }
        "DaemonSet" => {
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(
                obj,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            if obj
                .pointer("/spec/updateStrategy/type")
                .and_then(Value::as_str)
                == Some("RollingUpdate")
            {
                set_default(
                    obj,
                    &["spec", "updateStrategy", "rollingUpdate", "maxUnavailable"],
                    json!(1),
                );
                set_default(
                    obj,
                    &["spec", "updateStrategy", "rollingUpdate", "maxSurge"],
                    json!(0),
                );
            }
            default_template(obj, &["spec", "template"], true);
        }
        "StatefulSet" => {
            set_default(obj, &["spec", "replicas"], json!(1));
            set_default(obj, &["spec", "podManagementPolicy"], json!("OrderedReady"));
            set_default(obj, &["spec", "revisionHistoryLimit"], json!(10));
            set_default(
                obj,
                &["spec", "updateStrategy", "type"],
                json!("RollingUpdate"),
            );
            if obj
                .pointer("/spec/updateStrategy/type")
                .and_then(Value::as_str)
                == Some("RollingUpdate")
            {
                set_default(
                    obj,
                    &["spec", "updateStrategy", "rollingUpdate", "partition"],
                    json!(0),
                );
            }
            for when in ["whenDeleted", "whenScaled"] {
                set_default(
                    obj,
                    &["spec", "persistentVolumeClaimRetentionPolicy", when],
                    json!("Retain"),
                );
            }
            if let Some(claims) = obj
                .pointer_mut("/spec/volumeClaimTemplates")
                .and_then(Value::as_array_mut)
            {
                for claim in claims {
                    set_default(claim, &["apiVersion"], json!("v1"));
                    set_default(claim, &["kind"], json!("PersistentVolumeClaim"));
                    default_claim(claim);
                }
            }
            default_template(obj, &["spec", "template"], true);
        }
        "PersistentVolumeClaim" => default_claim(obj),
        "PersistentVolume" => {
            set_default(
                obj,
                &["spec", "persistentVolumeReclaimPolicy"],
                json!("Retain"),
            );
            set_default(obj, &["spec", "volumeMode"], json!("Filesystem"));
            set_default(obj, &["status", "phase"], json!("Pending"));
        }
        "StorageClass" => {
            set_default(obj, &["reclaimPolicy"], json!("Delete"));
            set_default(obj, &["volumeBindingMode"], json!("Immediate"));
        }
        "Job" => {
            let completions_unset = obj.pointer("/spec/completions").is_none_or(Value::is_null);
            let parallelism_unset = obj.pointer("/spec/parallelism").is_none_or(Value::is_null);
            if completions_unset && parallelism_unset {
                set_default(obj, &["spec", "completions"], json!(1));
            }
            set_default(obj, &["spec", "parallelism"], json!(1));
            set_default(obj, &["spec", "backoffLimit"], json!(6));
            set_default(obj, &["spec", "completionMode"], json!("NonIndexed"));
            set_default(obj, &["spec", "suspend"], json!(false));
            default_template(obj, &["spec", "template"], false);
            if obj.pointer("/spec/manualSelector") != Some(&json!(true)) {
                generate_job_selector(obj);
            }
        }
        "CronJob" => {
            set_default(obj, &["spec", "concurrencyPolicy"], json!("Allow"));
            set_default(obj, &["spec", "suspend"], json!(false));
            set_default(obj, &["spec", "successfulJobsHistoryLimit"], json!(3));
            set_default(obj, &["spec", "failedJobsHistoryLimit"], json!(1));
            default_template(obj, &["spec", "jobTemplate", "spec", "template"], false);
        }
        "Secret" => {
            super::typecheck::fold_string_data(obj);
            set_default(obj, &["type"], json!("Opaque"));
        }
        // Upstream's SetDefaults_EndpointPort: ports speak TCP unless told.
        "Endpoints" => {
            for subset in obj
                .get_mut("subsets")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                for port in subset
                    .get_mut("ports")
                    .and_then(Value::as_array_mut)
                    .into_iter()
                    .flatten()
                {
                    set_default(port, &["protocol"], json!("TCP"));
                }
            }
        }
        "EndpointSlice" => {
            for port in obj
                .get_mut("ports")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                set_default(port, &["protocol"], json!("TCP"));
                set_default(port, &["name"], json!(""));
            }
        }
        "Namespace" => {
            set_default(obj, &["spec", "finalizers"], json!(["kubernetes"]));
            set_default(obj, &["status", "phase"], json!("Active"));
        }
        _ => {}
    }
}

/// The `status` upstream's registry strategies give a new object of `rt`
/// (`PrepareForCreate`: a client's status is never stored on create), as
/// the v1 types serialize their zero values; `None` for kinds whose create
/// keeps what was sent or that have no status.
pub fn initial_status(rt: &ResourceType, obj: &Value) -> Option<Value> {
    let status = match (rt.group, rt.kind) {
        ("", "Pod") => json!({
            "phase": "Pending",
            "qosClass": super::qos::pod_qos_class(obj.get("spec").unwrap_or(&Value::Null)),
        }),
        ("", "Service") => json!({"loadBalancer": {}}),
        ("", "Namespace") => json!({"phase": "Active"}),
        ("", "PersistentVolumeClaim" | "PersistentVolume") => json!({"phase": "Pending"}),
        ("", "ReplicationController") | ("apps", "ReplicaSet") => json!({"replicas": 0}),
        ("apps", "StatefulSet") => json!({"replicas": 0, "availableReplicas": 0}),
        ("apps", "DaemonSet") => json!({
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }),
        ("apps", "Deployment") | ("batch", "Job" | "CronJob") => json!({}),
        ("policy", "PodDisruptionBudget") => json!({
            "disruptionsAllowed": 0,
            "currentHealthy": 0,
            "desiredHealthy": 0,
            "expectedPods": 0,
        }),
        _ => return None,
    };
    Some(status)
}

/// Upstream's `PrepareForCreate` for status: a created object carries the
/// status its kind starts with, whatever the client sent.
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    if let Some(status) = initial_status(rt, obj)
        && obj.is_object()
    {
        obj["status"] = status;
    }
}

/// Upstream's `generateSelector` for Jobs without `manualSelector`: the
/// template gets the Job's name and uid as labels (unless the user set
/// them; validation catches a conflict) and the selector the uid.
fn generate_job_selector(obj: &mut Value) {
    let Some(uid) = obj.pointer("/metadata/uid").and_then(Value::as_str) else {
        return;
    };
    let uid = uid.to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let labels = [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("controller-uid", &uid),
        ("job-name", &name),
    ];
    for (key, value) in labels {
        set_default(
            obj,
            &["spec", "template", "metadata", "labels", key],
            json!(value),
        );
    }
    set_default(
        obj,
        &[
            "spec",
            "selector",
            "matchLabels",
            "batch.kubernetes.io/controller-uid",
        ],
        json!(uid),
    );
}

/// The annotation apps/v1 serves a DaemonSet's `templateGeneration` in.
pub const TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// Upstream's DaemonSet strategy for `templateGeneration` (served in apps/v1
/// as the [`TEMPLATE_GENERATION`] annotation): 1 on create, one more each
/// time an update changes the pod template, never what the client sent.
/// The controller labels its pods with it (`pod-template-generation`).
/// `old` is the stored object on update, `None` on create.
pub fn track_template_generation(rt: &ResourceType, old: Option<&Value>, new: &mut Value) {
    if rt.kind != "DaemonSet" {
        return;
    }
    let stored = old.map(|o| {
        o.pointer("/metadata/annotations")
            .and_then(|a| a.get(TEMPLATE_GENERATION))
            .and_then(Value::as_str)
            .and_then(|g| g.parse::<i64>().ok())
            .unwrap_or(1)
    });
    let generation = match (stored, old) {
        (Some(g), Some(o)) if o.pointer("/spec/template") != new.pointer("/spec/template") => g + 1,
        (Some(g), _) => g,
        (None, _) => 1,
    };
    if !new["metadata"]["annotations"].is_object() {
        new["metadata"]["annotations"] = json!({});
    }
    new["metadata"]["annotations"][TEMPLATE_GENERATION] = json!(generation.to_string());
}

fn decode<T: serde::de::DeserializeOwned>(rt: &ResourceType, obj: &Value) -> Result<T, ApiError> {
    serde_json::from_value(obj.clone()).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })
}

/// Reports fields the kind's schema lacks, as `spec.foo` paths (the API
/// server's strict decoding, asked for by kubectl with
/// `fieldValidation=Strict`). The object is decoded into its k8s-openapi
/// type and encoded again; whatever did not survive is unknown.
pub fn unknown_fields(rt: &ResourceType, obj: &Value) -> Vec<String> {
    use k8s_openapi::api::{
        apps as a, batch as b, coordination as co, core as c, discovery as d, storage as s,
    };
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(obj: &Value) -> Option<Value> {
        serde_json::from_value::<T>(obj.clone())
            .ok()
            .and_then(|t| serde_json::to_value(t).ok())
    }
    let back = match (rt.group, rt.kind) {
        ("", "Pod") => round::<c::v1::Pod>(obj),
        ("", "Service") => round::<c::v1::Service>(obj),
        ("", "Endpoints") => round::<c::v1::Endpoints>(obj),
        ("", "Node") => round::<c::v1::Node>(obj),
        ("", "Namespace") => round::<c::v1::Namespace>(obj),
        ("", "Event") => round::<c::v1::Event>(obj),
        ("events.k8s.io", "Event") => round::<k8s_openapi::api::events::v1::Event>(obj),
        ("", "ReplicationController") => round::<c::v1::ReplicationController>(obj),
        ("", "PersistentVolume") => round::<c::v1::PersistentVolume>(obj),
        ("", "PersistentVolumeClaim") => round::<c::v1::PersistentVolumeClaim>(obj),
        ("", "ConfigMap") => round::<c::v1::ConfigMap>(obj),
        ("", "Secret") => round::<c::v1::Secret>(obj),
        ("", "ServiceAccount") => round::<c::v1::ServiceAccount>(obj),
        ("apps", "Deployment") => round::<a::v1::Deployment>(obj),
        ("apps", "ReplicaSet") => round::<a::v1::ReplicaSet>(obj),
        ("apps", "DaemonSet") => round::<a::v1::DaemonSet>(obj),
        ("apps", "StatefulSet") => round::<a::v1::StatefulSet>(obj),
        ("apps", "ControllerRevision") => round::<a::v1::ControllerRevision>(obj),
        ("batch", "Job") => round::<b::v1::Job>(obj),
        ("batch", "CronJob") => round::<b::v1::CronJob>(obj),
        ("discovery.k8s.io", "EndpointSlice") => round::<d::v1::EndpointSlice>(obj),
        ("coordination.k8s.io", "Lease") => round::<co::v1::Lease>(obj),
        ("policy", "PodDisruptionBudget") => {
            round::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(obj)
        }
        ("storage.k8s.io", "StorageClass") => round::<s::v1::StorageClass>(obj),
        _ => None,
    };
    let mut out = Vec::new();
    if let Some(back) = back {
        missing_in(String::new(), obj, &back, &mut out);
    }
    out
}

fn missing_in(path: String, input: &Value, back: &Value, out: &mut Vec<String>) {
    match (input, back) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                if v.is_null() {
                    continue;
                }
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    None => out.push(p),
                    Some(bv) => missing_in(p, v, bv, out),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (av, bv)) in a.iter().zip(b).enumerate() {
                missing_in(format!("{path}[{i}]"), av, bv, out);
            }
        }
        _ => {}
    }
}

/// How upstream checks names of `kind`.
fn name_rule(kind: &str) -> NameRule {
    match kind {
        "Namespace" => NameRule::Label,
        "Service" => NameRule::Dns1035,
        _ => NameRule::Subdomain,
    }
}

/// Validates `obj` (already defaulted); `Err` is the API server's answer.
/// Each kind's rules live in `skiff_api_rules`; this only dispatches.
pub fn validate(rt: &ResourceType, obj: &Value) -> Result<(), ApiError> {
    super::typecheck::check(rt, obj)?;
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let meta: ObjectMeta = match obj.get("metadata") {
        Some(m) => serde_json::from_value(m.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                rt.kind, rt.version, rt.kind
            ))
        })?,
        None => ObjectMeta::default(),
    };
    let mut errors = validate_object_meta(&meta, name_rule(rt.kind));
    for template in [
        "/spec/template/metadata",
        "/spec/jobTemplate/spec/template/metadata",
    ] {
        let Some(template_meta) = obj.pointer(template) else {
            continue;
        };
        let path = template[1..].replace('/', ".");
        let strings = |field: &str| {
            template_meta
                .get(field)
                .and_then(|v| serde_json::from_value::<BTreeMap<String, String>>(v.clone()).ok())
        };
        if let Some(labels) = strings("labels") {
            errors.extend(validate_labels(&format!("{path}.labels"), &labels));
        }
        if let Some(annotations) = strings("annotations") {
            errors.extend(validate_annotations(
                &format!("{path}.annotations"),
                &annotations,
            ));
        }
    }
    match rt.kind {
        "Pod" => {
            let pod: Pod = decode(rt, obj)?;
            errors.extend(
                skiff_api_rules::pod::validate_pod(&pod)
                    .into_iter()
                    .filter(|e| !e.starts_with("metadata.")),
            );
        }
        "Deployment" => {
            let d: Deployment = decode(rt, obj)?;
            let spec = d.spec.unwrap_or_default();
            errors.extend(skiff_api_rules::workloads::deployment_strategy_errors(
                spec.strategy.as_ref(),
            ));
            errors.extend(validate_controller(
                Some(&spec.selector),
                Some(&spec.template),
                spec.replicas,
                TemplateRestart::AlwaysOnly,
                "spec.template",
            ));
        }
        "ReplicaSet" => {
            let r: ReplicaSet = decode(rt, obj)?;
            let spec = r.spec.unwrap_or_default();
            errors.extend(validate_controller(
                Some(&spec.selector),
                spec.template.as_ref(),
                spec.replicas,
                TemplateRestart::AlwaysOnly,
                "spec.template",
            ));
        }
        "DaemonSet" => {
            let d: DaemonSet = decode(rt, obj)?;
            errors.extend(validate_daemonset_spec(&d.spec.unwrap_or_default()));
        }
        "StatefulSet" => {
            let s: StatefulSet = decode(rt, obj)?;
            errors.extend(skiff_api_rules::statefulset::validate_statefulset(
                name,
                &s.spec.unwrap_or_default(),
            ));
        }
        "ReplicationController" => {
            let r: ReplicationController = decode(rt, obj)?;
            let spec = r.spec.unwrap_or_default();
            let selector = spec.selector.clone().map(|m| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some(m),
                    match_expressions: None,
                }
            });
            errors.extend(validate_controller(
                selector.as_ref(),
                spec.template.as_ref(),
                spec.replicas,
                TemplateRestart::AlwaysOnly,
                "spec.template",
            ));
        }
        "Job" => {
            let j: Job = decode(rt, obj)?;
            let spec = j.spec.unwrap_or_default();
            let selector = spec.selector.as_ref().filter(|s| {
                s.match_labels.as_ref().is_some_and(|m| !m.is_empty())
                    || s.match_expressions.as_ref().is_some_and(|e| !e.is_empty())
            });
            if selector.is_none() {
                errors.push("spec.selector: Required value".into());
            }
            errors.extend(validate_controller(
                selector,
                Some(&spec.template),
                None,
                TemplateRestart::OnFailureOrNever,
                "spec.template",
            ));
            let uid = j.metadata.uid.as_deref().unwrap_or_default();
            errors.extend(skiff_api_rules::batch::validate_job(name, uid, &spec));
        }
        "CronJob" => {
            let c: CronJob = decode(rt, obj)?;
            let spec = c.spec.unwrap_or_default();
            if spec.schedule.trim().is_empty() {
                errors.push("spec.schedule: Required value".into());
            } else {
                errors.extend(super::schedule::validate(
                    &spec.schedule,
                    spec.time_zone.as_deref(),
                ));
            }
            errors.extend(skiff_api_rules::batch::validate_cronjob(name, &spec));
            let template = spec.job_template.spec.map(|s| s.template);
            errors.extend(validate_controller(
                None,
                template.as_ref(),
                None,
                TemplateRestart::OnFailureOrNever,
                "spec.jobTemplate.spec.template",
            ));
        }
        // Every Event passes the legacy checks (old clients write through
        // core/v1); events.k8s.io adds its own (see `events_v1`).
        "Event" if rt.group.is_empty() => {
            let event: k8s_openapi::api::core::v1::Event = decode(rt, obj)?;
            errors.extend(skiff_api_rules::event::legacy_errors(&event));
        }
        "Service" => {
            let s: Service = decode(rt, obj)?;
            errors.extend(validate_service_spec(&s.spec.unwrap_or_default()));
        }
        "ConfigMap" => {
            let c: ConfigMap = decode(rt, obj)?;
            errors.extend(validate_config_map(&c));
        }
        "Secret" => {
            let s: Secret = decode(rt, obj)?;
            errors.extend(validate_secret(&s));
        }
        "PersistentVolumeClaim" => {
            let c: PersistentVolumeClaim = decode(rt, obj)?;
            errors.extend(validate_claim_spec("spec", &c.spec.unwrap_or_default()));
        }
        "PodDisruptionBudget" => {
            let p: k8s_openapi::api::policy::v1::PodDisruptionBudget = decode(rt, obj)?;
            errors.extend(skiff_api_rules::policy::validate_pdb_spec(
                &p.spec.unwrap_or_default(),
            ));
        }
        "Node" => errors.extend(skiff_api_rules::node::validate_node(obj)),
        "Namespace" => errors.extend(skiff_api_rules::namespace::validate_namespace(obj)),
        "PersistentVolume" => {
            errors.extend(skiff_api_rules::volume::validate_persistent_volume(obj))
        }
        "StorageClass" => errors.extend(skiff_api_rules::volume::validate_storage_class(obj)),
        "Lease" => errors.extend(skiff_api_rules::coordination::validate_lease(obj)),
        "ControllerRevision" => {
            errors.extend(skiff_api_rules::revision::validate_controller_revision(obj))
        }
        "Endpoints" => errors.extend(skiff_api_rules::endpoints::validate_endpoints(obj)),
        "EndpointSlice" => errors.extend(skiff_api_rules::endpoints::validate_endpoint_slice(obj)),
        _ => {}
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &errors))
    }
}

/// Fields that must not change on update, with the API server's message.
pub fn check_immutable(rt: &ResourceType, old: &Value, new: &Value) -> Result<(), ApiError> {
    let name = new
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if rt.kind == "StatefulSet" {
        // Upstream's ValidateStatefulSetUpdate: only these may change.
        const MUTABLE: [&str; 6] = [
            "replicas",
            "ordinals",
            "template",
            "updateStrategy",
            "persistentVolumeClaimRetentionPolicy",
            "minReadySeconds",
        ];
        let rest = |obj: &Value| {
            let mut spec = obj.get("spec").cloned().unwrap_or_else(|| json!({}));
            if let Some(m) = spec.as_object_mut() {
                m.retain(|k, _| !MUTABLE.contains(&k.as_str()));
            }
            spec
        };
        if rest(old) != rest(new) {
            return Err(ApiError::invalid(
                rt,
                name,
                &["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden".to_string()],
            ));
        }
    }
    if rt.kind == "Job" {
        let errors = skiff_api_rules::batch::job_update_errors(old, new);
        if !errors.is_empty() {
            return Err(ApiError::invalid(rt, name, &errors));
        }
    }
    let update_errors = match rt.kind {
        "ConfigMap" => validate_config_map_update(&decode(rt, old)?, &decode(rt, new)?),
        "Secret" => validate_secret_update(&decode(rt, old)?, &decode(rt, new)?),
        "Node" => skiff_api_rules::node::validate_node_update(old, new),
        "PersistentVolume" => skiff_api_rules::volume::validate_persistent_volume_update(old, new),
        "StorageClass" => skiff_api_rules::volume::validate_storage_class_update(old, new),
        "ControllerRevision" => {
            skiff_api_rules::revision::validate_controller_revision_update(old, new)
        }
        "EndpointSlice" => skiff_api_rules::endpoints::validate_endpoint_slice_update(old, new),
        _ => Vec::new(),
    };
    if !update_errors.is_empty() {
        return Err(ApiError::invalid(rt, name, &update_errors));
    }
    if matches!(rt.kind, "Deployment" | "ReplicaSet" | "DaemonSet")
        && old.pointer("/spec/selector") != new.pointer("/spec/selector")
    {
        return Err(ApiError::invalid(
            rt,
            name,
            &[format!(
                "spec.selector: Invalid value: {}: field is immutable",
                new.pointer("/spec/selector")
                    .cloned()
                    .unwrap_or(Value::Null)
            )],
        ));
    }
    Ok(())
}

/// Removes `null` fields recursively (upstream drops them on decode).
pub fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn uuids_are_v4_and_distinct() {
        let ids: std::collections::HashSet<String> = (0..10_000).map(|_| super::uuid()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let parts: Vec<&str> = id.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{id}");
            assert!(parts[2].starts_with('4'), "{id}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{id}");
        }
    }

    use super::*;

    #[test]
    fn unknown_fields_are_found_with_their_paths() {
        let rt = crate::registry::kinds::DEPLOYMENTS;
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "labels": {"any": "thing"}},
            "spec": {"progressDeadlineSecods": 5, "selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x", "imagePolicy": "Always"}]}}}
        });
        assert_eq!(
            unknown_fields(rt, &obj),
            [
                "spec.progressDeadlineSecods",
                "spec.template.spec.containers[0].imagePolicy"
            ]
        );
        let mut clean = obj.clone();
        clean["spec"]
            .as_object_mut()
            .expect("spec")
            .remove("progressDeadlineSecods");
        clean["spec"]["template"]["spec"]["containers"][0]
            .as_object_mut()
            .expect("c")
            .remove("imagePolicy");
        assert!(unknown_fields(rt, &clean).is_empty());
    }

    #[test]
    fn statefulset_specs_change_only_where_upstream_allows() {
        let rt = crate::registry::kinds::STATEFULSETS;
        let old = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1, "serviceName": "a",
            "volumeClaimTemplates": [{"metadata": {"name": "data"}}]}});
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"] = json!({"spec": {}});
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        assert!(check_immutable(rt, &old, &new).is_ok());
        for (field, value) in [
            ("serviceName", json!("b")),
            ("volumeClaimTemplates", json!([])),
            ("selector", json!({"matchLabels": {"a": "b"}})),
        ] {
            let mut bad = old.clone();
            bad["spec"][field] = value;
            let err = check_immutable(rt, &old, &bad).expect_err(field);
            assert!(
                err.message.contains("spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn daemonset_template_generation_counts_template_changes_only() {
        let rt = crate::registry::kinds::DAEMONSETS;
        let generation = |v: &Value| v["metadata"]["annotations"][TEMPLATE_GENERATION].clone();
        let mut created = json!({"metadata": {"name": "ds", "annotations": {TEMPLATE_GENERATION: "9"}},
            "spec": {"minReadySeconds": 0, "template": {"spec": {"containers": [{"name": "c"}]}}}});
        track_template_generation(rt, None, &mut created);
        assert_eq!(generation(&created), "1", "the client's value is ignored");
        let mut same_template = created.clone();
        same_template["spec"]["minReadySeconds"] = json!(5);
        same_template["metadata"]["annotations"][TEMPLATE_GENERATION] = json!("7");
        track_template_generation(rt, Some(&created), &mut same_template);
        assert_eq!(generation(&same_template), "1");
        let mut changed = same_template.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("busybox");
        track_template_generation(rt, Some(&same_template), &mut changed);
        assert_eq!(generation(&changed), "2");
        let other = crate::registry::kinds::DEPLOYMENTS;
        let mut d = json!({"metadata": {"name": "d"}});
        track_template_generation(other, None, &mut d);
        assert!(d["metadata"].get("annotations").is_none());
    }

    #[test]
    fn template_labels_are_checked_like_object_labels() {
        let rt = crate::registry::kinds::DEPLOYMENTS;
        let obj = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b", "bad key": "x"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}});
        let err = validate(rt, &obj).expect_err("label");
        assert!(
            err.message.contains("spec.template.metadata.labels: Invalid value: \"bad key\": name part must consist of"),
            "{}",
            err.message
        );
    }

    #[test]
    fn job_templates_are_immutable() {
        let rt = crate::registry::kinds::JOBS;
        let old = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"restartPolicy": "OnFailure"}}}});
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        let err = check_immutable(rt, &old, &new).expect_err("immutable");
        assert!(
            err.message.contains("spec.template: Invalid value:")
                && err.message.ends_with("field is immutable"),
            "{}",
            err.message
        );
        assert!(check_immutable(rt, &old, &old).is_ok());
    }
}
