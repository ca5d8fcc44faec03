//! `POST pods/{name}/eviction` (a `policy/v1` or `v1beta1` Eviction), as
//! upstream's eviction REST: a pod that can no longer disrupt anything
//! (pending, terminal, already deleting) is deleted at once; otherwise its
//! one PodDisruptionBudget must allow a disruption, which is spent by
//! writing the budget's status (`disruptionsAllowed - 1` and the pod in
//! `disruptedPods`, at the read revision so concurrent evictions cannot
//! both spend the last one) before the pod is deleted gracefully.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ApiState;
use super::deletion::DeleteOptionsBody;
use super::error::{ApiError, ApiResult};
use super::query::Query;
use super::stored::{to_bytes as encode, with_rv as decode};
use crate::registry::budget;
use crate::registry::deletion::{self, DeleteOptions};
use crate::registry::kinds;
use crate::registry::resource_type::ResourceType;
use crate::store::StoreError;

/// How many times a write that conflicts is tried again (upstream's `EvictionsRetry`).
const RETRIES: usize = 5;

/// Upstream's `MaxDisruptedPodSize`.
const MAX_DISRUPTED_PODS: usize = 2000;

/// The message kubectl drain prints while a budget blocks it.
pub const BLOCKED: &str = "Cannot evict pod as it would violate the pod's disruption budget.";

/// The object stored at `key` (named `name`) and its revision.
async fn read(
    state: &ApiState,
    rt: &ResourceType,
    key: &str,
    name: &str,
) -> ApiResult<(Value, u64)> {
    let kv = state
        .store
        .get(key)
        .await
        .map_err(|e| ApiError::from_store(e, rt, name))?;
    Ok((decode(&kv)?, kv.revision))
}

/// 429 with the budget as its cause, as upstream words it.
fn too_many_requests(cause: String, retry_after: Option<u32>) -> ApiError {
    let mut details = json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]});
    if let Some(seconds) = retry_after {
        details["retryAfterSeconds"] = json!(seconds);
    }
    ApiError {
        details,
        ..ApiError::too_many_requests(BLOCKED)
    }
}

fn forbidden(name: &str, reason: &str) -> ApiError {
    ApiError {
        code: 403,
        reason: "Forbidden",
        message: format!("poddisruptionbudgets.policy \"{name}\" is forbidden: {reason}"),
        details: json!({"name": name, "group": "policy", "kind": "poddisruptionbudgets"}),
    }
}

fn success() -> Response {
    (
        StatusCode::CREATED,
        [("content-type", "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
            .to_string(),
    )
        .into_response()
}

/// What the Eviction body asks for.
struct Request {
    options: DeleteOptions,
    dry_run: bool,
}

/// Where an eviction's writes go, and whether they are only checked (dry
/// run): what spending the budget and deleting the pod share.
struct Scope<'a> {
    state: &'a ApiState,
    namespace: &'a str,
    dry_run: bool,
}

/// Checks the Eviction against the URL and reads its `deleteOptions`
/// (whose `dryRun` joins the query's, as upstream's `propagateDryRun`).
fn parse(eviction: &Value, namespace: &str, name: &str, query: &Query) -> ApiResult<Request> {
    let api_version = eviction.get("apiVersion").and_then(Value::as_str);
    let kind = eviction.get("kind").and_then(Value::as_str);
    // kr8s posts subresources with the parent's `v1`; the kind is what counts.
    let known = matches!(
        api_version,
        None | Some("policy/v1" | "policy/v1beta1" | "v1")
    ) && matches!(kind, None | Some("Eviction"));
    if !known {
        return Err(ApiError::bad_request(format!(
            "not a Eviction object: {}/{}",
            api_version.unwrap_or_default(),
            kind.unwrap_or_default()
        )));
    }
    if eviction.pointer("/metadata/name").and_then(Value::as_str) != Some(name) {
        return Err(ApiError::bad_request(
            "name in URL does not match name in Eviction object",
        ));
    }
    if eviction
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .is_some_and(|ns| !ns.is_empty() && ns != namespace)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let body: DeleteOptionsBody = match eviction.get("deleteOptions") {
        None | Some(Value::Null) => DeleteOptionsBody::default(),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "Eviction in version \"v1\" cannot be handled as a Eviction: {e}"
            ))
        })?,
    };
    let body_dry_run = Query::dry_run_body(body.dry_run.as_deref().unwrap_or_default())?;
    let options = DeleteOptions::from_request(&body, query)?;
    Ok(Request {
        options,
        dry_run: body_dry_run || query.dry_run,
    })
}

/// Upstream's `canIgnorePDB`: the pod disrupts nothing any more.
fn can_ignore_budget(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed" | "Pending")
    ) || budget::deleting(pod)
}

/// Upstream's `shouldEnforceResourceVersion`: a live pod must not turn
/// healthy between the check and the delete.
fn enforce_revision(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) && !budget::deleting(pod)
}

/// `POST pods/{name}/eviction` with the decoded Eviction body.
pub async fn evict(
    state: &Arc<ApiState>,
    namespace: &str,
    name: &str,
    query: &Query,
    eviction: &Value,
) -> ApiResult<Response> {
    let request = parse(eviction, namespace, name, query)?;
    let scope = Scope {
        state,
        namespace,
        dry_run: request.dry_run,
    };
    let pods_rt = kinds::PODS;
    let key = pods_rt.key(Some(namespace), name);
    let original_rv = request.options.resource_version;
    let mut pod = None;
    for attempt in 0..RETRIES {
        let (current, revision) = read(state, pods_rt, &key, name).await?;
        // Checked before the budget is spent too: a request bound to fail
        // must not use up a disruption.
        let uid_differs = request.options.uid.as_deref().is_some_and(|uid| {
            current.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
        });
        if uid_differs || original_rv.is_some_and(|rv| rv != revision) {
            return Err(ApiError::conflict(pods_rt, name));
        }
        if !can_ignore_budget(&current) {
            pod = Some((current, revision));
            break;
        }
        let mut options = request.options.clone();
        if enforce_revision(&current) && original_rv.is_none() {
            options.resource_version = Some(revision);
        }
        match delete_pod(&scope, name, &options).await {
            Ok(()) => return Ok(success()),
            Err(e) if e.code == 409 && original_rv.is_none() && attempt + 1 < RETRIES => {}
            Err(e) => return Err(e),
        }
    }
    let Some((pod, pod_rev)) = pod else {
        return Err(ApiError::conflict(pods_rt, name));
    };

    let budgets = budgets_of(state, namespace, &pod).await?;
    if budgets.len() > 1 {
        return Err(ApiError {
            code: 500,
            reason: "InternalError",
            message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(),
            details: json!({}),
        });
    }
    let mut unhealthy_allowed = false;
    let mut budget_name = None;
    if let Some(pdb) = budgets.first() {
        let pdb_name = pdb
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let status_int = |field: &str| {
            pdb.pointer(&format!("/status/{field}"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        };
        if !budget::pod_ready(&pod) {
            let always =
                pdb.pointer("/spec/unhealthyPodEvictionPolicy") == Some(&json!("AlwaysAllow"));
            let healthy = status_int("currentHealthy");
            let desired = status_int("desiredHealthy");
            // An unready pod of an application that is not disrupted now
            // goes without spending the budget.
            unhealthy_allowed = always || (healthy >= desired && desired > 0);
        }
        if !unhealthy_allowed {
            spend(&scope, &pdb_name, name).await?;
        }
        budget_name = Some(pdb_name);
    }

    let mut options = request.options.clone();
    if unhealthy_allowed && original_rv.is_none() {
        options.resource_version = Some(pod_rev);
    }
    match delete_pod(&scope, name, &options).await {
        Ok(()) => Ok(success()),
        Err(e) if e.code == 409 && unhealthy_allowed && original_rv.is_none() => {
            let pdb = budget_name.unwrap_or_default();
            Err(too_many_requests(
                format!("The disruption budget {pdb} is still being processed by the server."),
                Some(10),
            ))
        }
        Err(e) => Err(e),
    }
}

/// The budgets of the pod's namespace whose selector matches it.
async fn budgets_of(state: &ApiState, namespace: &str, pod: &Value) -> ApiResult<Vec<Value>> {
    let rt = kinds::PODDISRUPTIONBUDGETS;
    let listing = state
        .store
        .list(&format!("{}{namespace}/", rt.prefix()))
        .await
        .map_err(|e| ApiError::from_store(e, rt, ""))?;
    Ok(listing
        .items
        .iter()
        .filter_map(|kv| decode(kv).ok())
        .filter(|pdb| budget::selects(pdb, pod))
        .collect())
}

/// Upstream's `checkAndDecrement`, retried on conflicting writes with a
/// fresh read of the budget.
async fn spend(scope: &Scope<'_>, pdb_name: &str, pod_name: &str) -> ApiResult<()> {
    let rt = kinds::PODDISRUPTIONBUDGETS;
    let key = rt.key(Some(scope.namespace), pdb_name);
    for _ in 0..RETRIES {
        let (mut pdb, revision) = read(scope.state, rt, &key, pdb_name).await?;
        let int = |p: &str| pdb.pointer(p).and_then(Value::as_i64).unwrap_or(0);
        let allowed = int("/status/disruptionsAllowed");
        if int("/status/observedGeneration") < int("/metadata/generation") {
            return Err(too_many_requests(
                format!("The disruption budget {pdb_name} is still being processed by the server."),
                Some(10),
            ));
        }
        if allowed < 0 {
            return Err(forbidden(pdb_name, "pdb disruptions allowed is negative"));
        }
        let disrupted = pdb
            .pointer("/status/disruptedPods")
            .and_then(Value::as_object)
            .map_or(0, |m| m.len());
        if disrupted > MAX_DISRUPTED_PODS {
            return Err(forbidden(
                pdb_name,
                "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
            ));
        }
        if allowed == 0 {
            return Err(too_many_requests(
                format!(
                    "The disruption budget {pdb_name} needs {} healthy pods and has {} currently",
                    int("/status/desiredHealthy"),
                    int("/status/currentHealthy")
                ),
                None,
            ));
        }
        if scope.dry_run {
            return Ok(());
        }
        let now = chrono::Utc::now();
        let status = &mut pdb["status"];
        status["disruptionsAllowed"] = json!(allowed - 1);
        if allowed - 1 == 0 {
            budget::update_allowed_condition(status, now);
        }
        if !status.get("disruptedPods").is_some_and(Value::is_object) {
            status["disruptedPods"] = json!({});
        }
        status["disruptedPods"][pod_name] =
            json!(now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        match scope.state.store.update(&key, revision, encode(&pdb)).await {
            Ok(_) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(ApiError::from_store(e, rt, pdb_name)),
        }
    }
    Err(ApiError {
        code: 504,
        reason: "Timeout",
        message: format!(
            "Timeout: couldn't update PodDisruptionBudget \"{pdb_name}\" due to conflicts"
        ),
        details: json!({"retryAfterSeconds": 10}),
    })
}

/// Upstream's `addConditionAndDeletePod`: the preconditions are checked,
/// the pod gets the `DisruptionTarget` condition, then it is deleted as
/// `DELETE` deletes it (gracefully when it runs on a node).
async fn delete_pod(scope: &Scope<'_>, name: &str, options: &DeleteOptions) -> ApiResult<()> {
    let rt = kinds::PODS;
    let key = rt.key(Some(scope.namespace), name);
    let store = &scope.state.store;
    for _ in 0..RETRIES {
        let (mut pod, stored) = read(scope.state, rt, &key, name).await?;
        let uid_differs = options
            .uid
            .as_deref()
            .is_some_and(|uid| pod.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid));
        if uid_differs || options.resource_version.is_some_and(|rv| rv != stored) {
            return Err(ApiError::conflict(rt, name));
        }
        if scope.dry_run {
            return Ok(());
        }
        let mut rev = stored;
        if add_disruption_condition(&mut pod) {
            match store.update(&key, rev, encode(&pod)).await {
                Ok(new_rev) => rev = new_rev,
                Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => continue,
                Err(e) => return Err(ApiError::from_store(e, rt, name)),
            }
        }
        let written = match deletion::plan(rt.kind, &pod, options, chrono::Utc::now()) {
            deletion::Plan::Pending => return Ok(()),
            deletion::Plan::Keep(kept) => store.update(&key, rev, encode(&kept)).await.map(drop),
            deletion::Plan::Remove => store.delete(&key, Some(rev)).await.map(drop),
        };
        match written {
            Ok(()) => return Ok(()),
            Err(StoreError::Conflict { .. }) if options.resource_version.is_none() => continue,
            Err(e) => return Err(ApiError::from_store(e, rt, name)),
        }
    }
    Err(ApiError::conflict(rt, name))
}

/// Adds `DisruptionTarget` (reason `EvictionByEvictionAPI`) to a pod that
/// is not terminal and has none; `false` when nothing changed.
fn add_disruption_condition(pod: &mut Value) -> bool {
    let terminal = matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    );
    let has = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| cs.iter().any(|c| c["type"] == "DisruptionTarget"));
    if terminal || has {
        return false;
    }
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    if !pod["status"].get("conditions").is_some_and(Value::is_array) {
        pod["status"]["conditions"] = json!([]);
    }
    if let Some(cs) = pod["status"]["conditions"].as_array_mut() {
        cs.push(json!({
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "EvictionByEvictionAPI",
            "message": "Eviction API: evicting",
            "lastTransitionTime": crate::registry::meta::now(),
        }));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(phase: &str) -> Value {
        json!({"metadata": {"name": "p"}, "status": {"phase": phase}})
    }

    #[test]
    fn pods_that_disrupt_nothing_skip_the_budget() {
        assert!(can_ignore_budget(&pod("Pending")));
        assert!(can_ignore_budget(&pod("Succeeded")));
        assert!(can_ignore_budget(&pod("Failed")));
        assert!(!can_ignore_budget(&pod("Running")));
        let mut deleting = pod("Running");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(can_ignore_budget(&deleting));
        assert!(!enforce_revision(&deleting));
        assert!(enforce_revision(&pod("Pending")));
        assert!(!enforce_revision(&pod("Failed")));
    }

    #[test]
    fn the_body_must_name_the_pod_of_the_url() {
        let q = Query::default();
        let ok = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p", "namespace": "default"},
                        "deleteOptions": {"dryRun": ["All"], "gracePeriodSeconds": 3}});
        let r = parse(&ok, "default", "p", &q).expect("valid");
        assert!(r.dry_run);
        assert_eq!(r.options.grace_period_seconds, Some(3));
        let beta =
            json!({"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": "p"}});
        assert!(parse(&beta, "default", "p", &q).is_ok());
        let kr8s = json!({"apiVersion": "v1", "kind": "Eviction", "metadata": {"name": "p"}});
        assert!(parse(&kr8s, "default", "p", &q).is_ok());
        let other = json!({"metadata": {"name": "q"}});
        let e = parse(&other, "default", "p", &q).err().expect("mismatch");
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "name in URL does not match name in Eviction object")
        );
        let bad =
            json!({"metadata": {"name": "p"}, "deleteOptions": {"gracePeriodSeconds": "soon"}});
        assert_eq!(
            parse(&bad, "default", "p", &q).err().map(|e| e.code),
            Some(400)
        );
        let wrong = json!({"kind": "Pod", "metadata": {"name": "p"}});
        assert_eq!(
            parse(&wrong, "default", "p", &q).err().map(|e| e.code),
            Some(400)
        );
    }

    #[test]
    fn the_disruption_condition_is_added_once_and_never_to_terminal_pods() {
        let mut p = pod("Running");
        assert!(add_disruption_condition(&mut p));
        assert_eq!(
            p["status"]["conditions"][0]["reason"],
            "EvictionByEvictionAPI"
        );
        assert!(!add_disruption_condition(&mut p));
        assert!(!add_disruption_condition(&mut pod("Succeeded")));
    }
}
