//! Protobuf request bodies. Since client-go 1.32, kubectl's typed clients
//! (`kubectl create namespace|deployment|configmap|secret|service|job|
//! cronjob`) send `application/vnd.kubernetes.protobuf`: the magic `k8s\0`,
//! then a `runtime.Unknown` wrapping the typed message. This decodes those
//! kinds (messages from `k8s-pb`) into the JSON the rest of the server uses.
//!
//! NB: Go emits zero values for non-pointer fields, so `""` and `0` of such
//! fields mean "unset" and are dropped here; pointer fields (`replicas`)
//! keep their zero.

use std::collections::BTreeMap;

use k8s_pb::api::apps::v1 as apps;
use k8s_pb::api::batch::v1 as batch;
use k8s_pb::api::core::v1 as core;
use k8s_pb::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_pb::apimachinery::pkg::runtime::Unknown;
use k8s_pb::apimachinery::pkg::util::intstr::IntOrString;
use prost::Message;
use serde_json::{Map, Value, json};

/// The magic prefix of Kubernetes protobuf bodies.
const MAGIC: &[u8] = b"k8s\0";

struct Obj(Map<String, Value>);

impl Obj {
    fn new() -> Self {
        Self(Map::new())
    }
    fn s(mut self, k: &str, v: &Option<String>) -> Self {
        if let Some(v) = v.as_ref().filter(|v| !v.is_empty()) {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
    fn i(mut self, k: &str, v: Option<i64>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
    fn b(mut self, k: &str, v: Option<bool>) -> Self {
        if let Some(v) = v {
            self.0.insert(k.into(), json!(v));
        }
        self
    }
    fn v(mut self, k: &str, v: Option<Value>) -> Self {
        if let Some(v) = v.filter(|v| {
            !(v.is_null()
                || v.as_object().is_some_and(Map::is_empty)
                || v.as_array().is_some_and(Vec::is_empty))
        }) {
            self.0.insert(k.into(), v);
        }
        self
    }
    fn map(self, k: &str, m: &BTreeMap<String, String>) -> Self {
        let v = (!m.is_empty()).then(|| json!(m));
        self.v(k, v)
    }
    /// `items` as a list of what `f` makes of each, left out when empty.
    fn list<T>(self, k: &str, items: &[T], f: impl Fn(&T) -> Value) -> Self {
        self.v(k, list(items, f))
    }
    fn strings(self, k: &str, list: &[String]) -> Self {
        let v = (!list.is_empty()).then(|| json!(list));
        self.v(k, v)
    }
    fn done(self) -> Value {
        Value::Object(self.0)
    }
}

fn list<T>(items: &[T], f: impl Fn(&T) -> Value) -> Option<Value> {
    (!items.is_empty()).then(|| Value::Array(items.iter().map(f).collect()))
}

fn int_or_string(v: &Option<IntOrString>) -> Option<Value> {
    let v = v.as_ref()?;
    match v.r#type {
        Some(1) => v.str_val.clone().map(Value::String),
        _ => v.int_val.map(|i| json!(i)),
    }
}

fn object_meta(m: &Option<meta::ObjectMeta>) -> Value {
    let Some(m) = m else { return json!({}) };
    Obj::new()
        .s("name", &m.name)
        .s("generateName", &m.generate_name)
        .s("namespace", &m.namespace)
        .map("labels", &m.labels)
        .map("annotations", &m.annotations)
        .list("ownerReferences", &m.owner_references, |r| {
            Obj::new()
                .s("apiVersion", &r.api_version)
                .s("kind", &r.kind)
                .s("name", &r.name)
                .s("uid", &r.uid)
                .b("controller", r.controller)
                .b("blockOwnerDeletion", r.block_owner_deletion)
                .done()
        })
        .done()
}

fn label_selector(s: &Option<meta::LabelSelector>) -> Option<Value> {
    let s = s.as_ref()?;
    Some(
        Obj::new()
            .map("matchLabels", &s.match_labels)
            .list("matchExpressions", &s.match_expressions, |e| {
                Obj::new()
                    .s("key", &e.key)
                    .s("operator", &e.operator)
                    .strings("values", &e.values)
                    .done()
            })
            .done(),
    )
}

fn resources(r: &Option<core::ResourceRequirements>) -> Option<Value> {
    let r = r.as_ref()?;
    let quantities = |m: &BTreeMap<String, k8s_pb::apimachinery::pkg::api::resource::Quantity>| {
        let m: BTreeMap<&String, &String> = m
            .iter()
            .filter_map(|(k, q)| q.string.as_ref().map(|s| (k, s)))
            .collect();
        (!m.is_empty()).then(|| json!(m))
    };
    Some(
        Obj::new()
            .v("limits", quantities(&r.limits))
            .v("requests", quantities(&r.requests))
            .done(),
    )
}

fn container(c: &core::Container) -> Value {
    Obj::new()
        .s("name", &c.name)
        .s("image", &c.image)
        .strings("command", &c.command)
        .strings("args", &c.args)
        .s("workingDir", &c.working_dir)
        .list("ports", &c.ports, |p| {
            Obj::new()
                .s("name", &p.name)
                .i("containerPort", p.container_port.map(i64::from))
                .s("protocol", &p.protocol)
                .i("hostPort", p.host_port.filter(|h| *h != 0).map(i64::from))
                .done()
        })
        .list("env", &c.env, |e| {
            Obj::new().s("name", &e.name).s("value", &e.value).done()
        })
        .v(
            "resources",
            resources(&c.resources).filter(|r| r.as_object().is_some_and(|m| !m.is_empty())),
        )
        .s("imagePullPolicy", &c.image_pull_policy)
        .done()
}

fn pod_spec(s: &Option<core::PodSpec>) -> Value {
    let Some(s) = s else { return json!({}) };
    Obj::new()
        .list("containers", &s.containers, container)
        .list("initContainers", &s.init_containers, container)
        .s("restartPolicy", &s.restart_policy)
        .i(
            "terminationGracePeriodSeconds",
            s.termination_grace_period_seconds,
        )
        .s("dnsPolicy", &s.dns_policy)
        .map("nodeSelector", &s.node_selector)
        .s("serviceAccountName", &s.service_account_name)
        .s("nodeName", &s.node_name)
        .b("hostNetwork", s.host_network.filter(|h| *h))
        .done()
}

fn template(t: &Option<core::PodTemplateSpec>) -> Value {
    let Some(t) = t else { return json!({}) };
    json!({"metadata": object_meta(&t.metadata), "spec": pod_spec(&t.spec)})
}

fn job_spec(s: &Option<batch::JobSpec>) -> Value {
    let Some(s) = s else { return json!({}) };
    Obj::new()
        .i("parallelism", s.parallelism.map(i64::from))
        .i("completions", s.completions.map(i64::from))
        .i("backoffLimit", s.backoff_limit.map(i64::from))
        .i("activeDeadlineSeconds", s.active_deadline_seconds)
        .i(
            "ttlSecondsAfterFinished",
            s.ttl_seconds_after_finished.map(i64::from),
        )
        .s("completionMode", &s.completion_mode)
        .b("suspend", s.suspend)
        .b("manualSelector", s.manual_selector)
        .v("selector", label_selector(&s.selector))
        .v("template", Some(template(&s.template)))
        .done()
}

/// What a kind's decoder finds in its message: the object's metadata and
/// its other top-level fields, a null one standing for a field left out.
type Parts = (Value, Vec<(&'static str, Value)>);

fn typed(api_version: &str, kind: &str, (metadata, rest): Parts) -> Value {
    let mut obj = json!({"apiVersion": api_version, "kind": kind, "metadata": metadata});
    for (k, v) in rest {
        if !v.is_null() {
            obj[k] = v;
        }
    }
    obj
}

/// Whether a body is Kubernetes protobuf (its magic prefix; no JSON or YAML
/// document starts with a NUL-terminated `k8s`).
pub fn is_protobuf(body: &[u8]) -> bool {
    body.starts_with(MAGIC)
}

/// Decodes a protobuf body into JSON, or says why not.
pub fn decode(body: &[u8]) -> Result<Value, String> {
    let raw = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf body without the k8s magic prefix")?;
    let unknown = Unknown::decode(raw).map_err(|e| format!("not a runtime.Unknown: {e}"))?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let bytes = unknown.raw.unwrap_or_default();
    let bytes = bytes.as_slice();
    let bad = |e: prost::DecodeError| format!("{kind} is not valid protobuf: {e}");
    let parts = match (api_version.as_str(), kind.as_str()) {
        // client-go's typed clients (Helm's release cleanup) send the
        // options of a delete as protobuf too; they have no metadata.
        (_, "DeleteOptions") => {
            let mut obj = delete_options(meta::DeleteOptions::decode(bytes).map_err(bad)?);
            obj["kind"] = json!("DeleteOptions");
            obj["apiVersion"] = json!(api_version);
            return Ok(obj);
        }
        ("policy/v1" | "policy/v1beta1", "Eviction") => eviction(bytes),
        ("policy/v1", "PodDisruptionBudget") => pod_disruption_budget(bytes),
        ("authentication.k8s.io/v1", "TokenRequest") => token_request(bytes),
        ("v1", "Namespace") => {
            core::Namespace::decode(bytes).map(|ns| (object_meta(&ns.metadata), vec![]))
        }
        ("v1", "ConfigMap") => core::ConfigMap::decode(bytes)
            .map(|cm| (object_meta(&cm.metadata), vec![("data", json!(cm.data))])),
        ("v1", "Secret") => secret(bytes),
        ("v1", "ServiceAccount") => service_account(bytes),
        ("v1", "Service") => service(bytes),
        ("apps/v1", "Deployment") => deployment(bytes),
        ("batch/v1", "Job") => batch::Job::decode(bytes)
            .map(|j| (object_meta(&j.metadata), vec![("spec", job_spec(&j.spec))])),
        ("batch/v1", "CronJob") => cron_job(bytes),
        ("rbac.authorization.k8s.io/v1", _) => rbac(&kind, bytes),
        ("certificates.k8s.io/v1", "CertificateSigningRequest") => csr(bytes),
        ("authorization.k8s.io/v1", _) => access_review(&kind, bytes),
        ("authentication.k8s.io/v1", "SelfSubjectReview") => {
            k8s_pb::api::authentication::v1::SelfSubjectReview::decode(bytes)
                .map(|r| (object_meta(&r.metadata), vec![]))
        }
        ("authentication.k8s.io/v1", "TokenReview") => {
            k8s_pb::api::authentication::v1::TokenReview::decode(bytes).map(|r| {
                let spec = r.spec.unwrap_or_default();
                let spec = json!({"token": spec.token, "audiences": spec.audiences});
                (object_meta(&r.metadata), vec![("spec", spec)])
            })
        }
        _ => {
            return Err(format!(
                "protobuf bodies of {api_version}/{kind} are not supported; send JSON"
            ));
        }
    };
    Ok(typed(&api_version, &kind, parts.map_err(bad)?))
}

/// A TokenRequest (`kubectl create token`): audiences, expiry and the
/// bound object.
fn token_request(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    let r = k8s_pb::api::authentication::v1::TokenRequest::decode(bytes)?;
    let spec = r.spec.unwrap_or_default();
    let bound = spec.bound_object_ref.map(|b| {
        Obj::new()
            .s("kind", &b.kind)
            .s("apiVersion", &b.api_version)
            .s("name", &b.name)
            .s("uid", &b.u_id)
            .done()
    });
    let spec = Obj::new()
        .strings("audiences", &spec.audiences)
        .i("expirationSeconds", spec.expiration_seconds)
        .v("boundObjectRef", bound)
        .done();
    Ok((object_meta(&r.metadata), vec![("spec", spec)]))
}

/// A CertificateSigningRequest (`kubectl certificate approve|deny` send
/// it back through `/approval`). Condition times are left out: the
/// server fills missing ones.
fn csr(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    use base64_engine::encode;
    let r = k8s_pb::api::certificates::v1::CertificateSigningRequest::decode(bytes)?;
    let spec = r.spec.unwrap_or_default();
    let spec = Obj::new()
        .v("request", spec.request.as_deref().map(|b| json!(encode(b))))
        .s("signerName", &spec.signer_name)
        .i("expirationSeconds", spec.expiration_seconds.map(i64::from))
        .strings("usages", &spec.usages)
        .s("username", &spec.username)
        .s("uid", &spec.uid)
        .strings("groups", &spec.groups)
        .done();
    let status = r.status.unwrap_or_default();
    let conditions = list(&status.conditions, |c| {
        Obj::new()
            .s("type", &c.r#type)
            .s("status", &c.status)
            .s("reason", &c.reason)
            .s("message", &c.message)
            .done()
    });
    let status = Obj::new()
        .v("conditions", conditions)
        .v(
            "certificate",
            status
                .certificate
                .as_deref()
                .filter(|c| !c.is_empty())
                .map(|b| json!(encode(b))),
        )
        .done();
    Ok((
        object_meta(&r.metadata),
        vec![("spec", spec), ("status", status)],
    ))
}

fn policy_rule(r: &k8s_pb::api::rbac::v1::PolicyRule) -> Value {
    Obj::new()
        .strings("verbs", &r.verbs)
        .strings("apiGroups", &r.api_groups)
        .strings("resources", &r.resources)
        .strings("resourceNames", &r.resource_names)
        .strings("nonResourceURLs", &r.non_resource_ur_ls)
        .done()
}

fn role_ref(r: &Option<k8s_pb::api::rbac::v1::RoleRef>) -> Value {
    let r = r.clone().unwrap_or_default();
    // `apiGroup`, `kind` and `name` are required: kept even when empty,
    // so validation names them.
    json!({
        "apiGroup": r.api_group.unwrap_or_default(),
        "kind": r.kind.unwrap_or_default(),
        "name": r.name.unwrap_or_default(),
    })
}

fn subjects(subjects: &[k8s_pb::api::rbac::v1::Subject]) -> Value {
    list(subjects, |s| {
        Obj::new()
            .s("kind", &s.kind)
            .s("apiGroup", &s.api_group)
            .s("name", &s.name)
            .s("namespace", &s.namespace)
            .done()
    })
    .unwrap_or_default()
}

/// The RBAC kinds `kubectl create role|clusterrole|rolebinding|clusterrolebinding` send.
fn rbac(kind: &str, bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    use k8s_pb::api::rbac::v1 as rbac;
    let rules = |rules: &[rbac::PolicyRule]| list(rules, policy_rule).unwrap_or_default();
    Ok(match kind {
        "Role" => {
            let r = rbac::Role::decode(bytes)?;
            (object_meta(&r.metadata), vec![("rules", rules(&r.rules))])
        }
        "ClusterRole" => {
            let r = rbac::ClusterRole::decode(bytes)?;
            let aggregation = r.aggregation_rule.as_ref().map_or(Value::Null, |a| {
                json!({"clusterRoleSelectors": a.cluster_role_selectors.iter().map(|s| label_selector(&Some(s.clone())).unwrap_or_default()).collect::<Vec<_>>()})
            });
            (
                object_meta(&r.metadata),
                vec![("rules", rules(&r.rules)), ("aggregationRule", aggregation)],
            )
        }
        "RoleBinding" => {
            let b = rbac::RoleBinding::decode(bytes)?;
            (
                object_meta(&b.metadata),
                vec![
                    ("roleRef", role_ref(&b.role_ref)),
                    ("subjects", subjects(&b.subjects)),
                ],
            )
        }
        _ => {
            let b = rbac::ClusterRoleBinding::decode(bytes)?;
            (
                object_meta(&b.metadata),
                vec![
                    ("roleRef", role_ref(&b.role_ref)),
                    ("subjects", subjects(&b.subjects)),
                ],
            )
        }
    })
}

fn resource_attributes(
    a: &Option<k8s_pb::api::authorization::v1::ResourceAttributes>,
) -> Option<Value> {
    let a = a.as_ref()?;
    Some(
        Obj::new()
            .s("namespace", &a.namespace)
            .s("verb", &a.verb)
            .s("group", &a.group)
            .s("version", &a.version)
            .s("resource", &a.resource)
            .s("subresource", &a.subresource)
            .s("name", &a.name)
            .done(),
    )
}

fn non_resource_attributes(
    a: &Option<k8s_pb::api::authorization::v1::NonResourceAttributes>,
) -> Option<Value> {
    let a = a.as_ref()?;
    Some(Obj::new().s("path", &a.path).s("verb", &a.verb).done())
}

/// The access reviews `kubectl auth can-i` sends.
fn access_review(kind: &str, bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    use k8s_pb::api::authorization::v1 as authz;
    let subject_spec = |s: authz::SubjectAccessReviewSpec| {
        let extra: BTreeMap<&String, &Vec<String>> =
            s.extra.iter().map(|(k, v)| (k, &v.items)).collect();
        Obj::new()
            .v(
                "resourceAttributes",
                resource_attributes(&s.resource_attributes),
            )
            .v(
                "nonResourceAttributes",
                non_resource_attributes(&s.non_resource_attributes),
            )
            .s("user", &s.user)
            .strings("groups", &s.groups)
            .v("extra", Some(json!(extra)))
            .s("uid", &s.uid)
            .done()
    };
    Ok(match kind {
        "SelfSubjectAccessReview" => {
            let r = authz::SelfSubjectAccessReview::decode(bytes)?;
            let spec = r.spec.unwrap_or_default();
            let spec = Obj::new()
                .v(
                    "resourceAttributes",
                    resource_attributes(&spec.resource_attributes),
                )
                .v(
                    "nonResourceAttributes",
                    non_resource_attributes(&spec.non_resource_attributes),
                )
                .done();
            (object_meta(&r.metadata), vec![("spec", spec)])
        }
        "SelfSubjectRulesReview" => {
            let r = authz::SelfSubjectRulesReview::decode(bytes)?;
            let spec = Obj::new()
                .s("namespace", &r.spec.unwrap_or_default().namespace)
                .done();
            (object_meta(&r.metadata), vec![("spec", spec)])
        }
        "LocalSubjectAccessReview" => {
            let r = authz::LocalSubjectAccessReview::decode(bytes)?;
            (
                object_meta(&r.metadata),
                vec![("spec", subject_spec(r.spec.unwrap_or_default()))],
            )
        }
        _ => {
            let r = authz::SubjectAccessReview::decode(bytes)?;
            (
                object_meta(&r.metadata),
                vec![("spec", subject_spec(r.spec.unwrap_or_default()))],
            )
        }
    })
}

/// An Eviction: the pod's name and namespace, and the options of its delete.
fn eviction(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    let e = k8s_pb::api::policy::v1::Eviction::decode(bytes)?;
    let options = e.delete_options.map_or(Value::Null, delete_options);
    Ok((object_meta(&e.metadata), vec![("deleteOptions", options)]))
}

/// A Secret: its bytes as base64 `data`, as the JSON form carries them.
fn secret(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    use base64_engine::encode;
    let s = core::Secret::decode(bytes)?;
    let data: BTreeMap<&String, String> = s.data.iter().map(|(k, v)| (k, encode(v))).collect();
    let secret_type = s.r#type.filter(|t| !t.is_empty()).map(Value::String);
    let string_data = (!s.string_data.is_empty()).then(|| json!(s.string_data));
    Ok((
        object_meta(&s.metadata),
        vec![
            ("data", json!(data)),
            ("type", secret_type.unwrap_or_default()),
            ("stringData", string_data.unwrap_or_default()),
        ],
    ))
}

/// A ServiceAccount (`kubectl create serviceaccount`): its metadata, and
/// the references a client may set with it.
fn service_account(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    let sa = core::ServiceAccount::decode(bytes)?;
    let secrets = list(&sa.secrets, |r| {
        Obj::new()
            .s("kind", &r.kind)
            .s("namespace", &r.namespace)
            .s("name", &r.name)
            .s("uid", &r.uid)
            .s("apiVersion", &r.api_version)
            .done()
    });
    let pull = list(&sa.image_pull_secrets, |r| {
        Obj::new().s("name", &r.name).done()
    });
    let automount = sa.automount_service_account_token.map(Value::Bool);
    Ok((
        object_meta(&sa.metadata),
        vec![
            ("secrets", secrets.unwrap_or_default()),
            ("imagePullSecrets", pull.unwrap_or_default()),
            (
                "automountServiceAccountToken",
                automount.unwrap_or_default(),
            ),
        ],
    ))
}

/// The Service fields kubectl's `create service` sets.
fn service(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    let svc = core::Service::decode(bytes)?;
    let spec = svc.spec.unwrap_or_default();
    let spec = Obj::new()
        .list("ports", &spec.ports, |p| {
            Obj::new()
                .s("name", &p.name)
                .s("protocol", &p.protocol)
                .i("port", p.port.map(i64::from))
                .v(
                    "targetPort",
                    int_or_string(&p.target_port).filter(|t| *t != json!(0) && *t != json!("")),
                )
                .i("nodePort", p.node_port.filter(|n| *n != 0).map(i64::from))
                .done()
        })
        .map("selector", &spec.selector)
        .s("clusterIP", &spec.cluster_ip)
        .s("type", &spec.r#type)
        .s("externalName", &spec.external_name)
        .done();
    Ok((object_meta(&svc.metadata), vec![("spec", spec)]))
}

/// The Deployment fields kubectl's `create deployment` sets.
fn deployment(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    let d = apps::Deployment::decode(bytes)?;
    let spec = d.spec.unwrap_or_default();
    let strategy = spec.strategy.as_ref().map(|s| {
        Obj::new()
            .s("type", &s.r#type)
            .v(
                "rollingUpdate",
                s.rolling_update.as_ref().map(|r| {
                    Obj::new()
                        .v("maxSurge", int_or_string(&r.max_surge))
                        .v("maxUnavailable", int_or_string(&r.max_unavailable))
                        .done()
                }),
            )
            .done()
    });
    let spec = Obj::new()
        .i("replicas", spec.replicas.map(i64::from))
        .v("selector", label_selector(&spec.selector))
        .v("template", Some(template(&spec.template)))
        .v("strategy", strategy)
        .done();
    Ok((object_meta(&d.metadata), vec![("spec", spec)]))
}

/// The CronJob fields kubectl's `create cronjob` sets.
fn cron_job(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    let c = batch::CronJob::decode(bytes)?;
    let spec = c.spec.unwrap_or_default();
    let job_template = spec
        .job_template
        .as_ref()
        .map(|t| json!({"metadata": object_meta(&t.metadata), "spec": job_spec(&t.spec)}));
    let spec = Obj::new()
        .s("schedule", &spec.schedule)
        .v("jobTemplate", job_template)
        .done();
    Ok((object_meta(&c.metadata), vec![("spec", spec)]))
}

/// Standard base64 without a dependency.
mod base64_engine {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }
}

/// The options of a delete (client-go's typed deletes, Helm's release
/// cleanup, an Eviction's `deleteOptions`).
fn delete_options(o: meta::DeleteOptions) -> Value {
    let preconditions = o.preconditions.map(|p| {
        Obj::new()
            .s("uid", &p.uid)
            .s("resourceVersion", &p.resource_version)
            .done()
    });
    let mut obj = Obj::new()
        .i("gracePeriodSeconds", o.grace_period_seconds)
        .v("preconditions", preconditions)
        .v("orphanDependents", o.orphan_dependents.map(Value::from))
        .s("propagationPolicy", &o.propagation_policy)
        .done();
    if !o.dry_run.is_empty() {
        obj["dryRun"] = json!(o.dry_run);
    }
    obj
}

/// `kubectl create poddisruptionbudget`'s body. A selector that is sent
/// stays, even empty: in `policy/v1` `{}` selects every pod, none selects none.
fn pod_disruption_budget(bytes: &[u8]) -> Result<Parts, prost::DecodeError> {
    use k8s_pb::api::policy::v1::PodDisruptionBudget;
    let pdb = PodDisruptionBudget::decode(bytes)?;
    let spec = pdb.spec.unwrap_or_default();
    let mut out = Obj::new()
        .v("minAvailable", int_or_string(&spec.min_available))
        .v("maxUnavailable", int_or_string(&spec.max_unavailable))
        .s(
            "unhealthyPodEvictionPolicy",
            &spec.unhealthy_pod_eviction_policy,
        )
        .done();
    if spec.selector.is_some() {
        out["selector"] = label_selector(&spec.selector).unwrap_or_else(|| json!({}));
    }
    Ok((object_meta(&pdb.metadata), vec![("spec", out)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
        let unknown = Unknown {
            type_meta: Some(k8s_pb::apimachinery::pkg::runtime::TypeMeta {
                api_version: Some(api_version.into()),
                kind: Some(kind.into()),
            }),
            raw: Some(raw),
            content_encoding: Some(String::new()),
            content_type: Some(String::new()),
        };
        [MAGIC.to_vec(), unknown.encode_to_vec()].concat()
    }

    #[test]
    fn protobuf_evictions_decode_to_json() {
        let e = k8s_pb::api::policy::v1::Eviction {
            metadata: Some(meta::ObjectMeta {
                name: Some("p".into()),
                namespace: Some("default".into()),
                ..Default::default()
            }),
            delete_options: Some(meta::DeleteOptions {
                grace_period_seconds: Some(5),
                ..Default::default()
            }),
        };
        let v = decode(&wrap("policy/v1", "Eviction", e.encode_to_vec())).expect("decodes");
        assert_eq!(v["metadata"]["name"], "p");
        assert_eq!(v["deleteOptions"], json!({"gracePeriodSeconds": 5}));
    }

    #[test]
    fn service_accounts_decode_as_kubectl_create_sends_them() {
        let sa = core::ServiceAccount {
            metadata: Some(meta::ObjectMeta {
                name: Some("robot".into()),
                namespace: Some("lab".into()),
                ..Default::default()
            }),
            image_pull_secrets: vec![core::LocalObjectReference {
                name: Some("pull".into()),
            }],
            automount_service_account_token: Some(false),
            ..Default::default()
        };
        let v = decode(&wrap("v1", "ServiceAccount", sa.encode_to_vec())).expect("decodes");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "ServiceAccount",
                   "metadata": {"name": "robot", "namespace": "lab"},
                   "imagePullSecrets": [{"name": "pull"}],
                   "automountServiceAccountToken": false})
        );
    }

    #[test]
    fn delete_options_decode_like_their_json() {
        let o = meta::DeleteOptions {
            grace_period_seconds: Some(0),
            propagation_policy: Some("Background".into()),
            dry_run: vec!["All".into()],
            preconditions: Some(meta::Preconditions {
                uid: Some("u1".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let body = wrap("v1", "DeleteOptions", o.encode_to_vec());
        assert!(is_protobuf(&body));
        assert!(!is_protobuf(br#"{"kind":"DeleteOptions"}"#));
        assert_eq!(
            decode(&body).expect("decodes"),
            json!({"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0,
                   "propagationPolicy": "Background", "dryRun": ["All"],
                   "preconditions": {"uid": "u1"}})
        );
    }

    #[test]
    fn a_create_deployment_body_decodes_like_its_json() {
        let d = apps::Deployment {
            metadata: Some(meta::ObjectMeta {
                name: Some("web".into()),
                generate_name: Some(String::new()),
                labels: BTreeMap::from([("app".into(), "web".into())]),
                ..Default::default()
            }),
            spec: Some(apps::DeploymentSpec {
                replicas: Some(3),
                selector: Some(meta::LabelSelector {
                    match_labels: BTreeMap::from([("app".into(), "web".into())]),
                    ..Default::default()
                }),
                template: Some(core::PodTemplateSpec {
                    metadata: Some(meta::ObjectMeta {
                        labels: BTreeMap::from([("app".into(), "web".into())]),
                        ..Default::default()
                    }),
                    spec: Some(core::PodSpec {
                        containers: vec![core::Container {
                            name: Some("webapp".into()),
                            image: Some("skiff.dev/webapp:v1".into()),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = decode(&wrap("apps/v1", "Deployment", d.encode_to_vec())).expect("decodes");
        assert_eq!(v["kind"], "Deployment");
        assert_eq!(
            v["metadata"],
            json!({"name": "web", "labels": {"app": "web"}}),
            "empty generateName dropped"
        );
        assert_eq!(v["spec"]["replicas"], 3);
        assert_eq!(
            v["spec"]["template"]["spec"]["containers"][0]["image"],
            "skiff.dev/webapp:v1"
        );
    }

    #[test]
    fn a_job_from_a_cronjob_keeps_its_owner_and_job_fields() {
        // What `kubectl create job --from=cronjob/hello` sends.
        let j = batch::Job {
            metadata: Some(meta::ObjectMeta {
                name: Some("manual".into()),
                owner_references: vec![meta::OwnerReference {
                    api_version: Some("batch/v1".into()),
                    kind: Some("CronJob".into()),
                    name: Some("hello".into()),
                    uid: Some("u1".into()),
                    controller: Some(true),
                    block_owner_deletion: None,
                }],
                ..Default::default()
            }),
            spec: Some(batch::JobSpec {
                ttl_seconds_after_finished: Some(30),
                completion_mode: Some("Indexed".into()),
                completions: Some(2),
                suspend: Some(false),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = decode(&wrap("batch/v1", "Job", j.encode_to_vec())).expect("decodes");
        assert_eq!(
            v["metadata"]["ownerReferences"],
            json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "hello", "uid": "u1", "controller": true}])
        );
        assert_eq!(
            (
                &v["spec"]["ttlSecondsAfterFinished"],
                &v["spec"]["completionMode"],
                &v["spec"]["suspend"]
            ),
            (&json!(30), &json!("Indexed"), &json!(false))
        );
    }

    #[test]
    fn unknown_kinds_and_garbage_are_refused() {
        assert!(decode(b"{}").is_err());
        assert!(
            decode(&wrap("v1", "Pod", Vec::new()))
                .expect_err("pods are sent as JSON")
                .contains("not supported")
        );
        assert_eq!(base64_engine::encode(b"hi!?"), "aGkhPw==");
    }
}
