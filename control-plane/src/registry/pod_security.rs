//! Pod Security Admission, as upstream's built-in plugin: a namespace's
//! `pod-security.kubernetes.io/*` labels ([`skiff_api_rules::pod_security`])
//! decide what happens to pods and workload templates written in it.
//!
//! - **Pods** (create, and updates that change an image or add a
//!   container): `enforce` refuses with 403 `violates PodSecurity ...`;
//!   `audit` logs the violation (Skiff has no audit log: a `tracing` line
//!   with upstream's audit annotation); `warn` returns a `Warning` header.
//! - **Workloads** (Deployment, ReplicaSet, ReplicationController,
//!   DaemonSet, StatefulSet, Job, CronJob; Skiff serves no PodTemplates): their pod
//!   template is audited and warned about, never refused (their pods are).
//! - **Namespaces**: invalid label values are refused with upstream's
//!   field errors; making `enforce` stricter warns about existing pods that
//!   would now be refused.
//!
//! Nothing is exempt (upstream's default configuration). [`admit`] is the
//! API's hook; [`enforce_pod`] is the control plane's own pod creates
//! (controllers), which upstream's admission sees the same way.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;
use skiff_api_rules::pod_security::{
    self, Level, LevelVersion, Policy, forbidden_detail, forbidden_reasons,
};
use tracing::info;

use super::error::ApiError;
use super::kinds;
use super::resource_type::ResourceType;
use super::warnings;
use crate::store::{Store, StoreError};

/// What a pod write turns into.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Why enforce refuses it (`violates PodSecurity "baseline:latest": ...`).
    pub refused: Option<String>,
    /// The audit annotation's value, when audit finds violations.
    pub audit: Option<String>,
    /// Warnings for the client.
    pub warnings: Vec<String>,
}

/// Evaluates a pod (or a template, `enforce` false) under `policy`, as
/// upstream's `EvaluatePod`: enforce first; audit; warn only when the
/// write is not refused anyway.
pub fn evaluate_pod(policy: &Policy, meta: &ObjectMeta, spec: &PodSpec, enforce: bool) -> Outcome {
    let mut out = Outcome::default();
    if enforce {
        let v = pod_security::evaluate(policy.enforce, meta, spec);
        if !v.is_empty() {
            out.refused = Some(format!(
                "violates PodSecurity \"{}\": {}",
                policy.enforce,
                forbidden_detail(&v)
            ));
        }
    }
    let audit = pod_security::evaluate(policy.audit, meta, spec);
    if !audit.is_empty() {
        out.audit = Some(format!(
            "would violate PodSecurity \"{}\": {}",
            policy.audit,
            forbidden_detail(&audit)
        ));
    }
    if out.refused.is_none() {
        let warn = pod_security::evaluate(policy.warn, meta, spec);
        if !warn.is_empty() {
            out.warnings.push(format!(
                "would violate PodSecurity \"{}\": {}",
                policy.warn,
                forbidden_detail(&warn)
            ));
        }
    }
    out
}

/// Whether a pod update can change what the policy sees: upstream only
/// re-checks when images change or containers are added (the rest of a
/// pod's spec is immutable).
pub fn significant_pod_update(old: &PodSpec, new: &PodSpec) -> bool {
    let images = |cs: &[k8s_openapi::api::core::v1::Container]| {
        cs.iter().map(|c| c.image.clone()).collect::<Vec<_>>()
    };
    let init = |s: &PodSpec| images(s.init_containers.as_deref().unwrap_or_default());
    if images(&old.containers) != images(&new.containers) || init(old) != init(new) {
        return true;
    }
    let old_ephemeral = old.ephemeral_containers.as_deref().unwrap_or_default();
    new.ephemeral_containers.iter().flatten().any(|e| {
        !old_ephemeral
            .iter()
            .any(|o| o.name == e.name && o.image == e.image)
    })
}

/// The warnings upstream gives when a namespace's enforce level gets
/// stricter: one line per distinct set of reasons, naming the
/// alphabetically first pod and how many others share it.
pub fn existing_pod_warnings(namespace: &str, enforce: LevelVersion, pods: &[Pod]) -> Vec<String> {
    // reasons -> (first pod name, count), in first-seen order.
    let mut by_reasons: Vec<(String, String, usize)> = Vec::new();
    for pod in pods {
        let Some(spec) = pod.spec.as_ref() else {
            continue;
        };
        let v = pod_security::evaluate(enforce, &pod.metadata, spec);
        if v.is_empty() {
            continue;
        }
        let reasons = forbidden_reasons(&v);
        let name = pod.metadata.name.clone().unwrap_or_default();
        match by_reasons.iter_mut().find(|(r, _, _)| *r == reasons) {
            Some((_, first, count)) => {
                if name < *first {
                    *first = name;
                }
                *count += 1;
            }
            None => by_reasons.push((reasons, name, 1)),
        }
    }
    if by_reasons.is_empty() {
        return Vec::new();
    }
    let mut pod_lines: Vec<String> = by_reasons
        .into_iter()
        .map(|(reasons, first, count)| match count {
            1 => format!("{first}: {reasons}"),
            2 => format!("{first} (and 1 other pod): {reasons}"),
            n => format!("{first} (and {} other pods): {reasons}", n - 1),
        })
        .collect();
    pod_lines.sort();
    let mut out = vec![format!(
        "existing pods in namespace \"{namespace}\" violate the new PodSecurity enforce level \"{enforce}\""
    )];
    out.extend(pod_lines);
    out
}

fn labels(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The policy of namespace `ns` (upstream's default when it is missing).
async fn namespace_policy(
    store: &dyn Store,
    ns: &str,
) -> Result<(Policy, Vec<String>), StoreError> {
    match store.get(&kinds::NAMESPACES.key(None, ns)).await {
        Ok(kv) => {
            let obj: Value = serde_json::from_slice(&kv.value)
                .map_err(|e| StoreError::Backend(format!("namespace {ns}: {e}")))?;
            Ok(Policy::from_labels(&labels(&obj)))
        }
        Err(StoreError::NotFound(_)) => Ok((Policy::default(), Vec::new())),
        Err(e) => Err(e),
    }
}

/// Where a workload keeps its pod template.
fn template_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "ReplicationController"
        | "ReplicaSet"
        | "Deployment"
        | "DaemonSet"
        | "StatefulSet"
        | "Job" => Some("/spec/template"),
        "CronJob" => Some("/spec/jobTemplate/spec/template"),
        _ => None,
    }
}

fn audit_log(rt: &ResourceType, obj: &Value, policy: &Policy, outcome: &Outcome) {
    if let Some(violations) = &outcome.audit {
        info!(
            target: "audit",
            kind = rt.kind,
            namespace = crate::meta::namespace(obj),
            name = crate::meta::name(obj),
            "pod-security.kubernetes.io/enforce-policy" = %policy.enforce,
            "pod-security.kubernetes.io/audit-violations" = %violations,
            "PodSecurity audit"
        );
    }
}

/// The API's admission hook, after validation: refuses what `enforce`
/// forbids and adds warnings to the request. `old` is the stored object
/// of an update.
pub async fn admit(
    store: &dyn Store,
    rt: &ResourceType,
    old: Option<&Value>,
    obj: &Value,
) -> Result<(), ApiError> {
    let name = crate::meta::name(obj);
    let store_error = |e: StoreError| ApiError::from_store(e, kinds::NAMESPACES, name);
    if rt.kind == "Namespace" {
        return admit_namespace(store, old, obj).await.map_err(|e| match e {
            NamespaceRefusal::Invalid(errors) => ApiError::invalid(rt, name, &errors),
            NamespaceRefusal::Store(e) => store_error(e),
        });
    }
    let is_pod = rt.kind == "Pod";
    let Some(template_at) = (if is_pod {
        Some("")
    } else {
        template_pointer(rt.kind)
    }) else {
        return Ok(());
    };
    let (policy, label_errors) = namespace_policy(store, crate::meta::namespace(obj))
        .await
        .map_err(store_error)?;
    if label_errors.is_empty() && policy.fully_privileged() {
        return Ok(());
    }
    let Some(Ok(template)) = obj
        .pointer(template_at)
        .map(|t| serde_json::from_value::<PodTemplateSpec>(t.clone()))
    else {
        return Ok(());
    };
    let (meta, Some(spec)) = (template.metadata.unwrap_or_default(), template.spec) else {
        return Ok(());
    };
    if is_pod {
        let old_spec = old
            .and_then(|o| o.get("spec"))
            .and_then(|s| serde_json::from_value::<PodSpec>(s.clone()).ok());
        if let Some(old_spec) = old_spec
            && !significant_pod_update(&old_spec, &spec)
        {
            return Ok(());
        }
    } else if policy.audit.level == Level::Privileged && policy.warn.level == Level::Privileged {
        return Ok(());
    }
    let outcome = evaluate_pod(&policy, &meta, &spec, is_pod);
    audit_log(rt, obj, &policy, &outcome);
    if let Some(why) = outcome.refused {
        return Err(ApiError::refused(rt, name, &why));
    }
    for w in outcome.warnings {
        warnings::add(w);
    }
    Ok(())
}

/// The enforce check of a pod the control plane creates for itself (a
/// controller's): refused as through the API, so a workload cannot run
/// what its namespace forbids.
pub async fn enforce_pod(store: &dyn Store, pod: &Value) -> Result<(), StoreError> {
    let (policy, _) = namespace_policy(store, crate::meta::namespace(pod)).await?;
    if policy.enforce.level == Level::Privileged {
        return Ok(());
    }
    let Ok(parsed) = serde_json::from_value::<Pod>(pod.clone()) else {
        return Ok(());
    };
    let Some(spec) = parsed.spec.as_ref() else {
        return Ok(());
    };
    let outcome = evaluate_pod(&policy, &parsed.metadata, spec, true);
    audit_log(kinds::PODS, pod, &policy, &outcome);
    match outcome.refused {
        Some(why) => Err(StoreError::Refused(
            ApiError::refused(kinds::PODS, crate::meta::name(pod), &why).message,
        )),
        None => Ok(()),
    }
}

enum NamespaceRefusal {
    Invalid(Vec<String>),
    Store(StoreError),
}

async fn admit_namespace(
    store: &dyn Store,
    old: Option<&Value>,
    obj: &Value,
) -> Result<(), NamespaceRefusal> {
    let (policy, errors) = Policy::from_labels(&labels(obj));
    let Some(old) = old else {
        return if errors.is_empty() {
            Ok(())
        } else {
            Err(NamespaceRefusal::Invalid(errors))
        };
    };
    let (old_policy, old_errors) = Policy::from_labels(&labels(old));
    // Labels that were already wrong do not block unrelated updates.
    if !errors.is_empty() && (old_errors.is_empty() || errors != old_errors) {
        return Err(NamespaceRefusal::Invalid(errors));
    }
    let (new, before) = (policy.enforce, old_policy.enforce);
    if new == before
        || new.level == Level::Privileged
        || (new.version == before.version && new.level <= before.level)
    {
        return Ok(());
    }
    let ns = crate::meta::name(obj);
    let prefix = format!("{}{ns}/", kinds::PODS.prefix());
    let listing = store.list(&prefix).await.map_err(NamespaceRefusal::Store)?;
    let pods: Vec<Pod> = listing
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();
    for w in existing_pod_warnings(ns, new, &pods) {
        warnings::add(w);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::store::memory::MemoryStore;

    fn pod_json(name: &str, host_path: bool) -> Value {
        let mut p = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "lab"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
        if host_path {
            p["spec"]["volumes"] = json!([{"name": "root", "hostPath": {"path": "/"}}]);
        }
        p
    }

    async fn store_with_namespace(labels: Value) -> Arc<MemoryStore> {
        let store = Arc::new(MemoryStore::new());
        let ns = json!({"metadata": {"name": "lab", "labels": labels}});
        store
            .create(
                &kinds::NAMESPACES.key(None, "lab"),
                serde_json::to_vec(&ns).expect("json"),
            )
            .await
            .expect("namespace");
        store
    }

    #[tokio::test]
    async fn enforce_refuses_with_upstream_s_message() {
        let store =
            store_with_namespace(json!({"pod-security.kubernetes.io/enforce": "baseline"})).await;
        let err = admit(store.as_ref(), kinds::PODS, None, &pod_json("x", true))
            .await
            .expect_err("refused");
        assert_eq!(err.code, 403);
        assert_eq!(err.reason, "Forbidden");
        assert_eq!(
            err.message,
            "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")"
        );
        admit(store.as_ref(), kinds::PODS, None, &pod_json("ok", false))
            .await
            .expect("a plain pod is allowed");
        let refused = enforce_pod(store.as_ref(), &pod_json("web-abc", true))
            .await
            .expect_err("controllers' pods too");
        assert_eq!(
            refused.to_string(),
            "pods \"web-abc\" is forbidden: violates PodSecurity \"baseline:latest\": hostPath volumes (volume \"root\")"
        );
    }

    #[tokio::test]
    async fn warn_covers_pods_and_workload_templates() {
        let store =
            store_with_namespace(json!({"pod-security.kubernetes.io/warn": "restricted"})).await;
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "lab"},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "image": "busybox"}]}}}});
        let (result, added) =
            warnings::collect(admit(store.as_ref(), kinds::DEPLOYMENTS, None, &deployment)).await;
        result.expect("allowed");
        assert_eq!(
            added,
            [
                "would violate PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false (container \"web\" must set securityContext.allowPrivilegeEscalation=false), unrestricted capabilities (container \"web\" must set securityContext.capabilities.drop=[\"ALL\"]), runAsNonRoot != true (pod or container \"web\" must set securityContext.runAsNonRoot=true), seccompProfile (pod or container \"web\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
            ]
        );
        let (result, added) = warnings::collect(admit(
            store.as_ref(),
            kinds::PODS,
            None,
            &pod_json("p", true),
        ))
        .await;
        result.expect("warn never refuses");
        assert!(
            added[0].contains(
                "restricted volume types (volume \"root\" uses restricted volume type \"hostPath\")"
            ),
            "{added:?}"
        );
    }

    #[tokio::test]
    async fn every_workload_kind_s_template_is_found() {
        let store =
            store_with_namespace(json!({"pod-security.kubernetes.io/warn": "baseline"})).await;
        let template = json!({"spec": {"hostNetwork": true,
            "containers": [{"name": "c", "image": "busybox"}]}});
        let spec_with = |t: &Value| json!({"template": t});
        for (rt, obj) in [
            (kinds::REPLICASETS, json!({"spec": spec_with(&template)})),
            (
                kinds::REPLICATIONCONTROLLERS,
                json!({"spec": spec_with(&template)}),
            ),
            (kinds::DAEMONSETS, json!({"spec": spec_with(&template)})),
            (kinds::STATEFULSETS, json!({"spec": spec_with(&template)})),
            (kinds::JOBS, json!({"spec": spec_with(&template)})),
            (
                kinds::CRONJOBS,
                json!({"spec": {"jobTemplate": {"spec": spec_with(&template)}}}),
            ),
        ] {
            let mut obj = obj;
            obj["metadata"] = json!({"name": "w", "namespace": "lab"});
            let (r, added) = warnings::collect(admit(store.as_ref(), rt, None, &obj)).await;
            r.expect("workloads are never refused");
            assert_eq!(
                added,
                [
                    "would violate PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true)"
                ],
                "{}",
                rt.kind
            );
        }
    }

    #[tokio::test]
    async fn unlabelled_namespaces_and_insignificant_updates_are_left_alone() {
        let store = store_with_namespace(json!({})).await;
        let (r, added) = warnings::collect(admit(
            store.as_ref(),
            kinds::PODS,
            None,
            &pod_json("x", true),
        ))
        .await;
        assert!(r.is_ok() && added.is_empty());

        let store =
            store_with_namespace(json!({"pod-security.kubernetes.io/enforce": "baseline"})).await;
        let old = pod_json("x", true);
        let mut relabelled = old.clone();
        relabelled["metadata"]["labels"] = json!({"a": "b"});
        admit(store.as_ref(), kinds::PODS, Some(&old), &relabelled)
            .await
            .expect("a label change is not re-checked");
        let mut new_image = old.clone();
        new_image["spec"]["containers"][0]["image"] = json!("busybox:2");
        admit(store.as_ref(), kinds::PODS, Some(&old), &new_image)
            .await
            .expect_err("an image change is");
    }

    #[tokio::test]
    async fn namespace_labels_are_validated_and_stricter_enforce_warns() {
        let store = store_with_namespace(json!({})).await;
        let ns = |labels: Value| json!({"metadata": {"name": "lab", "labels": labels}});
        let err = admit(
            store.as_ref(),
            kinds::NAMESPACES,
            None,
            &ns(json!({"pod-security.kubernetes.io/enforce": "strict"})),
        )
        .await
        .expect_err("invalid level");
        assert_eq!(
            err.message,
            "Namespace \"lab\" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: \"strict\": must be one of privileged, baseline, restricted"
        );
        for (name, host) in [("b", true), ("a", true), ("c", false)] {
            store
                .create(
                    &kinds::PODS.key(Some("lab"), name),
                    serde_json::to_vec(&pod_json(name, host)).expect("json"),
                )
                .await
                .expect("pod");
        }
        let (r, added) = warnings::collect(admit(
            store.as_ref(),
            kinds::NAMESPACES,
            Some(&ns(json!({}))),
            &ns(json!({"pod-security.kubernetes.io/enforce": "baseline"})),
        ))
        .await;
        r.expect("allowed");
        assert_eq!(
            added,
            [
                "existing pods in namespace \"lab\" violate the new PodSecurity enforce level \"baseline:latest\"",
                "a (and 1 other pod): hostPath volumes",
            ]
        );
    }

    #[test]
    fn existing_pod_warnings_count_others() {
        let pods: Vec<Pod> = ["z", "y", "x"]
            .iter()
            .map(|n| serde_json::from_value(pod_json(n, true)).expect("pod"))
            .collect();
        let lv = LevelVersion {
            level: Level::Baseline,
            version: pod_security::Version::Latest,
        };
        assert_eq!(
            existing_pod_warnings("lab", lv, &pods)[1],
            "x (and 2 other pods): hostPath volumes"
        );
        assert!(existing_pod_warnings("lab", lv, &pods[..0]).is_empty());
    }
}
