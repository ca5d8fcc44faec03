//! Request handling: path parsing, then one function per verb. Objects are
//! handled as JSON (`serde_json::Value`) so unknown kinds and fields round
//! trip; kinds Skiff knows are decoded into their `k8s-openapi` types for
//! validation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tracing::debug;

use super::ApiState;
use super::core_request::CoreRequest;
use super::discovery;
use super::edge::Body;
use super::error::{ApiError, ApiResult};
use super::managed_fields::{self, Manager};
use super::patch;
use super::query::{FieldValidation, Options, Query};
use super::selectors::{FieldSelector, LabelSelector};
use super::stored::{to_bytes, with_rv};
use super::table;
use crate::auth::user::UserInfo;
use crate::registry::allocation;
use crate::registry::deletion;
use crate::registry::events_v1;
use crate::registry::kinds;
use crate::registry::resources::{self, RESOURCES, ResourceType};
use crate::registry::strategy::{self, apply_defaults, check_immutable, drop_nulls, validate};
use crate::store::StoreError;

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /version`.
pub async fn version() -> Response {
    json_response(StatusCode::OK, &discovery::version())
}

/// `GET /healthz`, `/readyz`.
pub async fn healthz(State(state): State<Arc<ApiState>>) -> Response {
    match state.store.revision().await {
        Ok(_) => "ok".into_response(),
        Err(e) => (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    let revision = state.store.revision().await.unwrap_or(0);
    let mut out = format!(
        "# HELP skiff_apiserver_requests_total API requests served.\n# TYPE skiff_apiserver_requests_total counter\nskiff_apiserver_requests_total {}\n# HELP skiff_store_revision Current store revision.\n# TYPE skiff_store_revision gauge\nskiff_store_revision {revision}\n",
        state.requests.load(Ordering::Relaxed)
    );
    out.push_str("# HELP skiff_apiserver_request_duration_seconds Request latency by verb and resource.\n# TYPE skiff_apiserver_request_duration_seconds summary\n");
    let by_verb = state
        .by_verb
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    for ((verb, resource), (count, total)) in by_verb {
        out.push_str(&format!(
            "skiff_apiserver_request_duration_seconds_count{{verb=\"{verb}\",resource=\"{resource}\"}} {count}\nskiff_apiserver_request_duration_seconds_sum{{verb=\"{verb}\",resource=\"{resource}\"}} {:.6}\n",
            total.as_secs_f64()
        ));
    }
    out.into_response()
}

/// The aggregated discovery format the request's `Accept` header asks for.
fn aggregated_discovery(headers: &HeaderMap) -> Option<discovery::Aggregated> {
    headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .and_then(discovery::negotiate)
}

fn aggregated_response(core: bool, format: discovery::Aggregated) -> Response {
    (
        StatusCode::OK,
        [("content-type", format.content_type())],
        discovery::aggregated(core, format).to_string(),
    )
        .into_response()
}

/// `GET /api`.
pub async fn api_versions(State(state): State<Arc<ApiState>>, headers: HeaderMap) -> Response {
    match aggregated_discovery(&headers) {
        Some(format) => aggregated_response(true, format),
        None => json_response(StatusCode::OK, &discovery::api_versions(&state.address)),
    }
}

/// `GET /apis`.
pub async fn api_groups(headers: HeaderMap) -> Response {
    match aggregated_discovery(&headers) {
        Some(format) => aggregated_response(false, format),
        None => json_response(StatusCode::OK, &discovery::api_groups()),
    }
}

/// `GET /api/{version}`.
pub async fn core_resources(Path(version): Path<String>) -> Response {
    match discovery::resource_list("", &version) {
        Some(list) => json_response(StatusCode::OK, &list),
        None => ApiError::no_route(&format!("/api/{version}")).into_response(),
    }
}

/// `GET /apis/{group}/{version}`.
pub async fn group_resources(Path((group, version)): Path<(String, String)>) -> Response {
    match discovery::resource_list(&group, &version) {
        Some(list) => json_response(StatusCode::OK, &list),
        None => ApiError::no_route(&format!("/apis/{group}/{version}")).into_response(),
    }
}

/// `GET /openapi/v2`.
pub async fn openapi_v2() -> Response {
    let (content_type, body) = discovery::openapi_v2();
    (StatusCode::OK, [("content-type", content_type)], body).into_response()
}

/// `GET /openapi/v3`.
pub async fn openapi_root() -> Response {
    json_response(StatusCode::OK, &discovery::openapi_root())
}

/// `GET /openapi/v3/{path}`.
pub async fn openapi_group(Path(path): Path<String>) -> Response {
    match discovery::openapi_group(&path) {
        Some(doc) => json_response(StatusCode::OK, &doc),
        None => ApiError::no_route(&format!("/openapi/v3/{path}")).into_response(),
    }
}

/// Anything else.
pub async fn fallback(uri: axum::http::Uri) -> Response {
    ApiError::no_route(uri.path()).into_response()
}

/// A parsed resource request.
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(group: &str, version: &str, rest: &str) -> ApiResult<Target> {
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let not_found = || ApiError::no_route(&format!("{group}/{version}/{rest}"));
    let (namespace, parts) = match parts.as_slice() {
        ["namespaces", ns, resource, tail @ ..]
            if resources::find(group, version, resource).is_some_and(|r| r.namespaced) =>
        {
            (Some(ns.to_string()), [&[*resource][..], tail].concat())
        }
        _ => (None, parts.clone()),
    };
    let rt = parts
        .first()
        .and_then(|p| resources::find(group, version, p))
        .ok_or_else(not_found)?;
    if parts.len() > 3 {
        return Err(not_found());
    }
    Ok(Target {
        rt,
        namespace,
        name: parts.get(1).map(|s| s.to_string()),
        sub: parts.get(2).map(|s| s.to_string()),
    })
}

/// `/api/{version}/...`.
#[allow(clippy::too_many_arguments)] // axum extractors of one request
pub async fn core_request(
    State(state): State<Arc<ApiState>>,
    Path((version, rest)): Path<(String, String)>,
    method: Method,
    RawQuery(query): RawQuery,
    upgrade: Result<
        axum::extract::ws::WebSocketUpgrade,
        axum::extract::ws::rejection::WebSocketUpgradeRejection,
    >,
    connection: Option<axum::Extension<hyper::upgrade::OnUpgrade>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let request = CoreRequest {
        version: &version,
        rest: &rest,
        method: &method,
        query: query.as_deref(),
        headers: &headers,
    };
    if let Some(response) = super::pod_proxy::route(&state, &request, &body).await {
        return response;
    }
    let upgrade = super::port_forward::Upgrade {
        websocket: upgrade.ok(),
        connection: connection.map(|c| c.0),
    };
    if let Some(response) = pod_stream(&state, &request, upgrade).await {
        return response;
    }
    serve(
        state, "", &version, &rest, method, query, headers, body, None,
    )
    .await
}

/// `pods/{name}/log`, `exec` and `portforward`: proxied to the pod's node.
async fn pod_stream(
    state: &Arc<ApiState>,
    request: &CoreRequest<'_>,
    upgrade: super::port_forward::Upgrade,
) -> Option<Response> {
    let CoreRequest {
        version,
        rest,
        method,
        query,
        headers,
    } = *request;
    let target = parse_target("", version, rest).ok()?;
    let (Some(ns), Some(name), Some(sub)) = (
        target.namespace.as_deref(),
        target.name.as_deref(),
        target.sub.as_deref(),
    ) else {
        return None;
    };
    if target.rt.plural != "pods" {
        return None;
    }
    state.requests.fetch_add(1, Ordering::Relaxed);
    let result = match (method, sub) {
        (&Method::GET, "log") => match Query::parse(query) {
            Ok(q) => super::proxy::logs(state.clone(), ns, name, &q.raw).await,
            Err(e) => Err(e),
        },
        (&Method::GET | &Method::POST, "exec") => {
            let request = super::proxy::ExecRequest::parse(
                query.unwrap_or_default(),
                crate::percent_encoding::decode,
            );
            super::proxy::exec(state.clone(), ns, name, request, upgrade.websocket).await
        }
        (&Method::GET | &Method::POST, "portforward") => {
            super::port_forward::serve(state.clone(), ns, name, query, headers, upgrade).await
        }
        (_, "attach") => Err(ApiError::not_implemented("attach is not supported yet")),
        _ => return None,
    };
    Some(result.unwrap_or_else(IntoResponse::into_response))
}

/// `/apis/{group}/{version}/...`.
#[allow(clippy::too_many_arguments)] // axum extractors of one request
pub async fn group_request(
    State(state): State<Arc<ApiState>>,
    Path((group, version, rest)): Path<(String, String, String)>,
    method: Method,
    RawQuery(query): RawQuery,
    user: Option<axum::Extension<UserInfo>>,
    headers: HeaderMap,
    Body(body): Body,
) -> Response {
    let user = user.map(|u| u.0);
    serve(
        state, &group, &version, &rest, method, query, headers, body, user,
    )
    .await
}

#[allow(clippy::too_many_arguments)] // the pieces of one HTTP request
async fn serve(
    state: Arc<ApiState>,
    group: &str,
    version: &str,
    rest: &str,
    method: Method,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    user: Option<UserInfo>,
) -> Response {
    state.requests.fetch_add(1, Ordering::Relaxed);
    let target = match parse_target(group, version, rest) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    let query = match Query::parse(query.as_deref()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    debug!(%method, resource = target.rt.plural, ns = ?target.namespace, name = ?target.name, "request");
    let started = std::time::Instant::now();
    let verb = match (&method, target.name.is_some()) {
        (&Method::GET, false) if query.watch => "WATCH",
        (&Method::GET, false) => "LIST",
        (m, _) => m.as_str(),
    }
    .to_string();
    let api = Api {
        state: state.clone(),
        headers,
        query,
        user,
    };
    let result = api.dispatch(&method, &target, rest, &body).await;
    state.observe(&verb, target.rt.plural, started.elapsed());
    result.unwrap_or_else(IntoResponse::into_response)
}

struct Api {
    state: Arc<ApiState>,
    headers: HeaderMap,
    query: Query,
    /// Who asks (authentication put it in the request): escalation checks
    /// and reviews read it. `None` on core requests, which need neither.
    user: Option<UserInfo>,
}

/// How a write records field ownership.
#[derive(Clone, Copy)]
enum Ownership<'a> {
    /// A create, update or patch by this manager.
    Update(&'a Manager),
    /// A server-side apply: the object carries its managed fields already.
    Applied,
}

impl Api {
    /// One verb on one target. Subresources a kind does not have are 404
    /// (never the object itself), and the options of each verb are checked
    /// before anything is read or written.
    async fn dispatch(
        &self,
        method: &Method,
        t: &Target,
        rest: &str,
        body: &Bytes,
    ) -> ApiResult<Response> {
        if let Some(sub) = t.sub.as_deref()
            && !t.rt.subresources.contains(&sub)
        {
            return Err(ApiError::no_route(rest));
        }
        if let Some(kind) = crate::registry::kinds::review::kind_of(t.rt) {
            return self.review(method, t, kind, rest, body).await;
        }
        let content_type = super::edge::content_type(&self.headers);
        let is_apply = content_type == super::edge::APPLY_PATCH;
        let options = match *method {
            Method::GET | Method::DELETE if t.name.is_none() => Some(Options::List),
            Method::POST => Some(Options::Create),
            Method::PUT => Some(Options::Update),
            Method::PATCH => Some(Options::Patch { apply: is_apply }),
            Method::DELETE => Some(Options::Delete),
            _ => None,
        };
        let body_kind = match *method {
            Method::POST | Method::PUT => Some(super::edge::BodyKind::Object),
            Method::PATCH => Some(super::edge::BodyKind::Patch),
            _ => None,
        };
        let allowed = match (method, t.name.as_deref(), t.sub.as_deref()) {
            (&Method::GET, None, None) => true,
            (&Method::GET, Some(_), None | Some("status" | "scale" | "approval")) => true,
            (&Method::POST, None, None) => true,
            (&Method::POST, Some(_), Some("binding" | "eviction")) => t.rt.kind == "Pod",
            (&Method::POST, Some(_), Some("token")) => t.rt.kind == "ServiceAccount",
            (
                &Method::PUT | &Method::PATCH,
                Some(_),
                None | Some("status" | "scale" | "approval"),
            ) => true,
            (&Method::DELETE, _, None) => true,
            _ => false,
        };
        if !allowed {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {rest})"
            )));
        }
        if let Some(kind) = body_kind {
            super::edge::check_content_type(&content_type, kind)?;
        }
        if let Some(options) = options {
            self.query.validate(options)?;
        }
        match (method, t.name.as_deref(), t.sub.as_deref()) {
            (&Method::GET, None, _) if self.query.watch => self.watch(t).await,
            (&Method::GET, None, _) => self.list(t).await,
            (&Method::GET, Some(_), Some("scale")) => self.get_scale(t).await,
            (&Method::GET, Some(_), _) => self.get(t).await,
            (&Method::POST, None, _) => self.create(t, body).await,
            (&Method::POST, Some(_), Some("eviction")) => self.evict(t, body).await,
            (&Method::POST, Some(_), Some("token")) => {
                let request = self.parse_body(body)?;
                let ns = t.namespace.as_deref().unwrap_or("default");
                let name = t.name.as_deref().unwrap_or_default();
                super::token_request::create(&self.state, ns, name, &request).await
            }
            (&Method::POST, Some(_), _) => self.bind(t, body).await,
            (&Method::PUT, Some(_), Some("scale")) => self.update_scale(t, body).await,
            (&Method::PUT, Some(_), _) => self.update(t, body).await,
            (&Method::PATCH, Some(_), Some("scale")) => self.patch_scale(t, body).await,
            (&Method::PATCH, Some(_), _) => self.patch(t, body).await,
            (&Method::DELETE, Some(_), _) => self.delete(t, body).await,
            _ => self.delete_collection(t, body).await,
        }
    }

    /// Upstream's CSR approval admission: an approver of a request also
    /// needs `approve` on its signer (`signers`, named by the signer or
    /// `<domain>/*`), so `update` on `/approval` alone cannot approve.
    fn may_approve(&self, old: &Value, new: &Value) -> ApiResult<()> {
        let Some(user) = &self.user else {
            return Ok(());
        };
        let signer = new
            .pointer("/spec/signerName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let wildcard = signer
            .split_once('/')
            .map(|(domain, _)| format!("{domain}/*"))
            .unwrap_or_default();
        let allowed = [signer, wildcard.as_str()].iter().any(|name| {
            let request = crate::auth::request_info::RequestInfo {
                is_resource_request: true,
                verb: "approve".into(),
                api_group: kinds::CERTIFICATESIGNINGREQUESTS.group.into(),
                api_version: "*".into(),
                resource: "signers".into(),
                name: name.to_string(),
                ..Default::default()
            };
            self.state.authorization.allows(user, &request)
        });
        if allowed {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "{} {:?} is forbidden: user not permitted to approve requests with signerName {signer:?}",
            kinds::CERTIFICATESIGNINGREQUESTS.qualified(),
            crate::meta::name(old)
        )))
    }

    /// Upstream's RBAC escalation prevention on a write of a role or
    /// binding (other kinds pass).
    fn no_escalation(&self, t: &Target, old: Option<&Value>, new: &Value) -> ApiResult<()> {
        match &self.user {
            Some(user) => crate::auth::authz::rbac::escalation::check(
                &self.state.authorization,
                user,
                t.rt,
                old,
                new,
            ),
            None => Ok(()),
        }
    }

    /// A review (`kubectl auth can-i`, `whoami`, a TokenReview): created,
    /// answered, not stored.
    async fn review(
        &self,
        method: &Method,
        t: &Target,
        kind: crate::registry::kinds::review::Kind,
        rest: &str,
        body: &Bytes,
    ) -> ApiResult<Response> {
        if *method != Method::POST || t.name.is_some() {
            return Err(ApiError::method_not_allowed(format!(
                "the server does not allow this method on the requested resource ({method} {rest})"
            )));
        }
        let Some(user) = &self.user else {
            return Err(ApiError::unauthorized());
        };
        // As any create: a body of a media type upstream does not decode
        // is 415, not read as JSON.
        super::edge::check_content_type(
            &super::edge::content_type(&self.headers),
            super::edge::BodyKind::Object,
        )?;
        let review = self.parse_body(body)?;
        let reviewers = crate::auth::review::Reviewers {
            authz: &self.state.authorization,
            authn: &self.state.authenticator,
        };
        let answered = crate::auth::review::answer(
            reviewers,
            user,
            t.rt,
            kind,
            t.namespace.as_deref(),
            review,
        )
        .await?;
        Ok(json_response(StatusCode::CREATED, &answered))
    }

    /// The manager of this request's writes (through `subresource`).
    fn manager(&self, subresource: Option<&str>) -> Manager {
        Manager::from_request(
            self.query.field_manager.as_deref(),
            self.headers.get("user-agent").and_then(|v| v.to_str().ok()),
            subresource,
        )
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    /// With `fieldValidation=Strict` (kubectl's default), unknown fields are
    /// an error, worded as the API server's strict decoder words it.
    fn strict(&self, t: &Target, obj: &Value) -> ApiResult<()> {
        if self.query.field_validation != FieldValidation::Strict {
            return Ok(());
        }
        let unknown = strategy::unknown_fields(t.rt, obj);
        if unknown.is_empty() {
            return Ok(());
        }
        let fields: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            t.rt.kind,
            t.rt.version,
            t.rt.kind,
            fields.join(", ")
        )))
    }

    fn key(&self, t: &Target) -> String {
        t.rt.key(
            t.namespace.as_deref(),
            t.name.as_deref().unwrap_or_default(),
        )
    }

    fn selectors(&self) -> ApiResult<(LabelSelector, FieldSelector)> {
        Ok((
            self.query.label_selector.clone(),
            self.query.field_selector.clone(),
        ))
    }

    fn prefix(&self, t: &Target) -> String {
        match &t.namespace {
            Some(ns) if t.rt.namespaced => format!("{}{ns}/", t.rt.prefix()),
            _ => t.rt.prefix(),
        }
    }

    async fn list(&self, t: &Target) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let limit = self.query.limit;
        let request = super::list::ListRequest {
            rt: t.rt,
            prefix: self.prefix(t),
            labels,
            fields,
            limit: usize::try_from(limit).ok().filter(|l| *l > 0),
            continue_token: self.query.continue_token.clone(),
            table: self.wants_table(),
        };
        super::list::respond(&self.state, request).await
    }

    async fn read(&self, t: &Target) -> ApiResult<(Value, u64)> {
        let name = t.name.as_deref().unwrap_or_default();
        let kv = self
            .state
            .store
            .get(&self.key(t))
            .await
            .map_err(|e| ApiError::from_store(e, t.rt, name))?;
        Ok((events_v1::view(t.rt, with_rv(&kv)?), kv.revision))
    }

    fn respond(&self, t: &Target, code: StatusCode, obj: &Value) -> Response {
        let obj = events_v1::shown(t.rt, obj);
        let obj = obj.as_ref();
        if self.wants_table() {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .and_then(|r| r.parse().ok())
                .unwrap_or(0);
            return json_response(code, &table::table(t.rt, std::slice::from_ref(obj), rv));
        }
        json_response(code, obj)
    }

    async fn get(&self, t: &Target) -> ApiResult<Response> {
        let (obj, _) = self.read(t).await?;
        Ok(self.respond(t, StatusCode::OK, &obj))
    }

    /// The `Content-Type` header as sent (parameters and case kept), if
    /// readable; [`super::edge::content_type`] is the normalised media type.
    fn raw_content_type(&self) -> Option<&str> {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
    }

    fn parse_body(&self, body: &Bytes) -> ApiResult<Value> {
        let content_type = self.raw_content_type().unwrap_or("application/json");
        if content_type.contains("protobuf") {
            return super::protobuf::decode(body).map_err(ApiError::bad_request);
        }
        let value: Value = if content_type.contains("yaml") {
            super::yaml::decode(body).map_err(ApiError::from)?
        } else {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding JSON: {e}")))?
        };
        Ok(value)
    }

    /// Checks kind/apiVersion and namespace of a body against the URL
    /// (missing ones are taken from the URL; see [`super::identity`]).
    fn check_identity(&self, t: &Target, obj: &mut Value) -> ApiResult<()> {
        crate::registry::identity::check(t.rt, obj)?;
        obj["kind"] = json!(t.rt.kind);
        obj["apiVersion"] = json!(t.rt.api_version());
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        if t.rt.namespaced {
            let ns = t.namespace.clone().unwrap_or_else(|| "default".into());
            match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
                Some(body_ns) if body_ns != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => obj["metadata"]["namespace"] = json!(ns),
            }
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        Ok(())
    }

    async fn namespace_exists(&self, t: &Target) -> ApiResult<()> {
        let Some(ns) = t.namespace.as_deref().filter(|_| t.rt.namespaced) else {
            return Ok(());
        };
        let ns_rt = crate::registry::kinds::NAMESPACES;
        match self.state.store.get(&ns_rt.key(None, ns)).await {
            Ok(kv) => {
                let obj = with_rv(&kv)?;
                if obj.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") {
                    return Err(ApiError {
                        code: 403,
                        reason: "Forbidden",
                        message: format!(
                            "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                            t.rt.plural
                        ),
                        details: json!({}),
                    });
                }
                Ok(())
            }
            Err(StoreError::NotFound(_)) => Err(ApiError::not_found(ns_rt, ns)),
            Err(e) => Err(ApiError::from_store(e, ns_rt, ns)),
        }
    }

    async fn create(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let mut obj = self.parse_body(body)?;
        let manager = self.manager(None);
        let created = self
            .create_object(t, &mut obj, Ownership::Update(&manager))
            .await?;
        Ok(self.respond(t, StatusCode::CREATED, &created))
    }

    async fn create_object(
        &self,
        t: &Target,
        obj: &mut Value,
        ownership: Ownership<'_>,
    ) -> ApiResult<Value> {
        self.check_identity(t, obj)?;
        self.namespace_exists(t).await?;
        drop_nulls(obj);
        let meta = &mut obj["metadata"];
        crate::registry::meta::generate_name(meta);
        if let Some(m) = meta.as_object_mut() {
            m.remove("resourceVersion");
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
        }
        meta["uid"] = json!(crate::registry::meta::uuid());
        meta["creationTimestamp"] = json!(crate::registry::meta::now());
        self.strict(t, obj)?;
        if obj.get("spec").is_some() {
            obj["metadata"]["generation"] = json!(1);
        }
        strategy::prepare_for_create(t.rt, obj);
        if t.rt == kinds::CERTIFICATESIGNINGREQUESTS {
            let anonymous = UserInfo::anonymous();
            kinds::certificates::set_requestor(obj, self.user.as_ref().unwrap_or(&anonymous));
        }
        apply_defaults(t.rt, obj);
        crate::registry::admission::admit_create(self.state.store.as_ref(), t.rt.kind, obj)
            .await
            .map_err(|e| ApiError::from_store(e, t.rt, crate::meta::name(obj)))?;
        if t.rt.kind == "Pod" {
            use crate::registry::service_account::{AdmissionError, admit};
            admit(self.state.store.as_ref(), obj)
                .await
                .map_err(|e| match e {
                    AdmissionError::Store(e) => {
                        ApiError::from_store(e, t.rt, crate::meta::name(obj))
                    }
                    e => ApiError::forbidden(e.to_string()),
                })?;
        }
        strategy::prepare_write(t.rt, None, obj);
        validate(t.rt, obj)?;
        events_v1::validate_create(t.rt, obj)?;
        self.no_escalation(t, None, obj)?;
        crate::registry::pod_security::admit(self.state.store.as_ref(), t.rt, None, obj).await?;
        if let Ownership::Update(manager) = ownership {
            managed_fields::update(t.rt, None, obj, manager);
        }
        if allocation::applies_to(t.rt) {
            self.store_service(t, None, obj).await?;
            return Ok(obj.clone());
        }
        if self.query.dry_run {
            return Ok(obj.clone());
        }
        let name = crate::meta::name(obj).to_string();
        let key = t.rt.key(
            obj.pointer("/metadata/namespace").and_then(Value::as_str),
            &name,
        );
        let encoded = to_bytes(&events_v1::stored(t.rt, obj));
        super::edge::check_object_size(&encoded)?;
        let rev = self
            .state
            .store
            .create(&key, encoded)
            .await
            .map_err(|e| ApiError::from_store(e, t.rt, &name))?;
        obj["metadata"]["resourceVersion"] = json!(rev.to_string());
        Ok(obj.clone())
    }

    /// Writes `new` over `old` (read at `rev`), keeping server-owned fields.
    async fn write_update(
        &self,
        t: &Target,
        old: &Value,
        rev: u64,
        mut new: Value,
        status_only: bool,
        ownership: Ownership<'_>,
    ) -> ApiResult<Value> {
        self.check_identity(t, &mut new)?;
        drop_nulls(&mut new);
        events_v1::forget_shown_time(t.rt, old, &mut new);
        let name = crate::meta::name(old).to_string();
        if crate::meta::name(&new) != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                crate::meta::name(&new)
            )));
        }
        if let Some(client_rv) = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && client_rv != rev.to_string()
        {
            return Err(ApiError::conflict(t.rt, &name));
        }
        let mut result = if status_only {
            let mut r = old.clone();
            r["status"] = new.get("status").cloned().unwrap_or(Value::Null);
            r
        } else {
            // The main resource never changes status (kubectl sends it back as read).
            let mut r = new.clone();
            match old.get("status") {
                Some(s) => r["status"] = s.clone(),
                None => {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("status");
                    }
                }
            }
            r
        };
        for field in [
            "uid",
            "creationTimestamp",
            "namespace",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            match old.pointer(&format!("/metadata/{field}")) {
                Some(v) => result["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = result["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        if !status_only {
            self.strict(t, &result)?;
        }
        if status_only && t.rt == kinds::CERTIFICATESIGNINGREQUESTS {
            let sub = t.sub.as_deref().unwrap_or_default();
            kinds::certificates::prepare_subresource(sub, old, &mut result);
            let refused = kinds::certificates::update_errors(sub, old, &result);
            strategy::validate_with(t.rt, &result, refused)?;
            if sub == "approval" {
                self.may_approve(old, &result)?;
            }
        }
        apply_defaults(t.rt, &mut result);
        if !status_only {
            validate(t.rt, &result)?;
            check_immutable(t.rt, old, &result)?;
            events_v1::validate_update(t.rt, old, &result)?;
            self.no_escalation(t, Some(old), &result)?;
            // Upstream's Pod Security skips subresources (scale).
            if t.sub.is_none() {
                crate::registry::pod_security::admit(
                    self.state.store.as_ref(),
                    t.rt,
                    Some(old),
                    &result,
                )
                .await?;
            }
            let added = deletion::added_while_deleting(old, &result);
            if !added.is_empty() {
                let quoted: Vec<String> = added.iter().map(|f| format!("{f:?}")).collect();
                return Err(ApiError::invalid(
                    t.rt,
                    &name,
                    &[format!(
                        "metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                        quoted.join(", ")
                    )],
                ));
            }
            if old.get("spec") != result.get("spec") {
                let generation = old
                    .pointer("/metadata/generation")
                    .and_then(Value::as_i64)
                    .unwrap_or(0);
                result["metadata"]["generation"] = json!(generation + 1);
            }
            strategy::prepare_write(t.rt, Some(old), &mut result);
        }
        drop_nulls(&mut result);
        if let Ownership::Update(manager) = ownership {
            managed_fields::update(t.rt, Some(old), &mut result, manager);
        }
        let mut unchanged_old = old.clone();
        if let Some(m) = unchanged_old["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let mut unchanged_new = result.clone();
        if let Some(m) = unchanged_new["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        if managed_fields::same_but_times(&unchanged_old, &unchanged_new) {
            // No-op writes do not bump the resourceVersion (upstream too).
            return Ok(old.clone());
        }
        if allocation::applies_to(t.rt) && !deletion::finished(&result) {
            self.store_service(t, Some((old, rev)), &mut result).await?;
            return Ok(result);
        }
        if self.query.dry_run {
            return Ok(result);
        }
        if deletion::finished(&result) {
            // The last finalizer is gone: the update completes the deletion.
            self.state
                .store
                .delete(&self.key(t), Some(rev))
                .await
                .map_err(|e| ApiError::from_store(e, t.rt, &name))?;
            if allocation::applies_to(t.rt) {
                allocation::reservations::release(self.state.store.as_ref(), old).await;
            }
            result["metadata"]["resourceVersion"] = json!(rev.to_string());
            return Ok(result);
        }
        let encoded = to_bytes(&events_v1::stored(t.rt, &result));
        super::edge::check_object_size(&encoded)?;
        let new_rev = self
            .state
            .store
            .update(&self.key(t), rev, encoded)
            .await
            .map_err(|e| ApiError::from_store(e, t.rt, &name))?;
        result["metadata"]["resourceVersion"] = json!(new_rev.to_string());
        Ok(result)
    }

    /// Stores a Service with its cluster IP and nodePorts reserved in the
    /// same write (see [`allocation`]); a dry run only picks them.
    async fn store_service(
        &self,
        t: &Target,
        old: Option<(&Value, u64)>,
        obj: &mut Value,
    ) -> ApiResult<()> {
        let ranges = allocation::ranges();
        let store = self.state.store.as_ref();
        let name = crate::meta::name(obj).to_string();
        let refused = |e: allocation::AllocError| e.into_api(t.rt, &name);
        if self.query.dry_run {
            let seed = allocation::bands::random_seed();
            allocation::reservations::plan(store, &ranges, old.map(|(o, _)| o), obj, seed)
                .await
                .map_err(refused)?;
            return Ok(());
        }
        super::edge::check_object_size(&to_bytes(obj))?;
        let rev = allocation::reservations::store_service(store, &ranges, old, obj, to_bytes)
            .await
            .map_err(refused)?;
        obj["metadata"]["resourceVersion"] = json!(rev.to_string());
        Ok(())
    }

    async fn update(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let new = self.parse_body(body)?;
        let (old, rev) = self.read(t).await?;
        let status_only = matches!(t.sub.as_deref(), Some("status" | "approval"));
        let manager = self.manager(status_only.then_some("status"));
        let updated = self
            .write_update(t, &old, rev, new, status_only, Ownership::Update(&manager))
            .await?;
        Ok(self.respond(t, StatusCode::OK, &updated))
    }

    async fn patch(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let content_type = self.raw_content_type().unwrap_or_default();
        if content_type.starts_with("application/apply-patch") {
            let config = super::yaml::decode(body).map_err(ApiError::from)?;
            return self.apply(t, config).await;
        }
        let patch_body: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
        let is_json_patch = content_type.starts_with("application/json-patch+json");
        super::edge::check_patch_shape(content_type, &patch_body)?;
        // A patch carries the live resourceVersion only when it wants the check.
        let checks_rv = if is_json_patch {
            patch_body.as_array().is_some_and(|ops| {
                ops.iter()
                    .any(|op| op["path"] == json!("/metadata/resourceVersion"))
            })
        } else {
            patch_body.pointer("/metadata/resourceVersion").is_some()
        };
        let status_only = matches!(t.sub.as_deref(), Some("status" | "approval"));
        let manager = self.manager(status_only.then_some("status"));
        for attempt in 0..5 {
            let (old, rev) = self.read(t).await?;
            let mut new = old.clone();
            if content_type.starts_with("application/merge-patch+json") {
                patch::merge_patch(&mut new, &patch_body);
            } else if is_json_patch {
                patch::json_patch(&mut new, &patch_body).map_err(super::edge::json_patch_failed)?;
            } else if content_type.starts_with("application/strategic-merge-patch+json") {
                patch::strategic_merge(&mut new, patch_body.clone());
            } else {
                return Err(ApiError::unsupported_media_type(content_type));
            }
            if !new.is_object() {
                return Err(ApiError::bad_request(format!(
                    "Object 'Kind' is missing in '{}'",
                    super::edge::excerpt(&new)
                )));
            }
            if !checks_rv && let Some(m) = new["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            match self
                .write_update(t, &old, rev, new, status_only, Ownership::Update(&manager))
                .await
            {
                Ok(updated) => return Ok(self.respond(t, StatusCode::OK, &updated)),
                // Someone wrote in between: patches are re-applied to the new state.
                Err(e) if e.reason == "Conflict" && attempt < 4 && !checks_rv => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(
            t.rt,
            t.name.as_deref().unwrap_or_default(),
        ))
    }

    /// Server-side apply (`application/apply-patch+yaml`; kubectl sends
    /// JSON, which YAML includes): merged into the live object with field
    /// ownership, or created when absent.
    async fn apply(&self, t: &Target, mut config: Value) -> ApiResult<Response> {
        let Some(field_manager) = self
            .query
            .field_manager
            .as_deref()
            .filter(|m| !m.is_empty())
        else {
            return Err(ApiError {
                code: 422,
                reason: "Invalid",
                message: "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                details: json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                    {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}
                ]}),
            });
        };
        let status_only = matches!(t.sub.as_deref(), Some("status" | "approval"));
        let manager =
            Manager::from_request(Some(field_manager), None, status_only.then_some("status"));
        let force = self.query.force == Some(true);
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "the applied configuration is not an object",
            ));
        }
        let url_name = t.name.clone().unwrap_or_default();
        match config.pointer("/metadata/name").and_then(Value::as_str) {
            Some(name) if name != url_name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({name}) does not match the name on the URL ({url_name})"
                )));
            }
            Some(_) => {}
            None => {
                if !config.get("metadata").is_some_and(Value::is_object) {
                    config["metadata"] = json!({});
                }
                config["metadata"]["name"] = json!(url_name);
            }
        }
        let checks_rv = config.pointer("/metadata/resourceVersion").is_some();
        for attempt in 0..5 {
            let (old, rev) = match self.read(t).await {
                Ok(found) => found,
                Err(e) if e.code == 404 => {
                    let mut obj = managed_fields::apply(t.rt, None, &config, &manager, force)?;
                    match self.create_object(t, &mut obj, Ownership::Applied).await {
                        Ok(created) => return Ok(self.respond(t, StatusCode::CREATED, &created)),
                        // Created in between: apply to it instead.
                        Err(e) if e.reason == "AlreadyExists" && attempt < 4 => continue,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            let merged = managed_fields::apply(t.rt, Some(&old), &config, &manager, force)?;
            match self
                .write_update(t, &old, rev, merged, status_only, Ownership::Applied)
                .await
            {
                Ok(updated) => return Ok(self.respond(t, StatusCode::OK, &updated)),
                Err(e) if e.reason == "Conflict" && attempt < 4 && !checks_rv => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::conflict(t.rt, &url_name))
    }

    /// `POST pods/{name}/binding`: what a scheduler calls to place a pod.
    async fn bind(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let binding = self.parse_body(body)?;
        let node = binding
            .pointer("/target/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| ApiError::bad_request("binding has no target.name"))?;
        let name = t.name.as_deref().unwrap_or_default();
        let ns = t.namespace.as_deref().unwrap_or("default");
        let objects = crate::registry::objects::Objects::new(self.state.store.clone());
        match objects.bind(ns, name, node).await {
            Ok(Ok(_)) => Ok(json_response(
                StatusCode::CREATED,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
            )),
            Ok(Err(message)) => Err(ApiError {
                code: 409,
                reason: "Conflict",
                message,
                details: json!({"name": name, "kind": "pods"}),
            }),
            Err(e) => Err(ApiError::from_store(e, t.rt, name)),
        }
    }

    /// `POST pods/{name}/eviction`: see [`super::eviction`].
    async fn evict(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let eviction = self.parse_body(body)?;
        let ns = t.namespace.as_deref().unwrap_or("default");
        let name = t.name.as_deref().unwrap_or_default();
        super::eviction::evict(&self.state, ns, name, &self.query, &eviction).await
    }

    fn scale_of(&self, t: &Target, obj: &Value) -> ApiResult<Value> {
        if !t.rt.subresources.contains(&"scale") {
            return Err(ApiError::no_route(&format!("{}/scale", t.rt.plural)));
        }
        let selector = match obj.pointer("/spec/selector") {
            Some(sel)
                if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() =>
            {
                table_selector(sel)
            }
            Some(sel) => table_selector(&json!({"matchLabels": sel})),
            None => String::new(),
        };
        Ok(json!({
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": obj.pointer("/metadata/name"),
                "namespace": obj.pointer("/metadata/namespace"),
                "uid": obj.pointer("/metadata/uid"),
                "resourceVersion": obj.pointer("/metadata/resourceVersion"),
                "creationTimestamp": obj.pointer("/metadata/creationTimestamp"),
            },
            "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0))},
            "status": {"replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)), "selector": selector},
        }))
    }

    async fn get_scale(&self, t: &Target) -> ApiResult<Response> {
        let (obj, _) = self.read(t).await?;
        Ok(json_response(StatusCode::OK, &self.scale_of(t, &obj)?))
    }

    async fn set_replicas(
        &self,
        t: &Target,
        replicas: Value,
        expected_rv: Option<String>,
    ) -> ApiResult<Response> {
        let (old, rev) = self.read(t).await?;
        if expected_rv.as_ref().is_some_and(|r| *r != rev.to_string()) {
            return Err(ApiError::conflict(
                t.rt,
                t.name.as_deref().unwrap_or_default(),
            ));
        }
        let mut new = old.clone();
        new["spec"]["replicas"] = replicas;
        if let Some(m) = new["metadata"].as_object_mut() {
            m.remove("resourceVersion");
        }
        let manager = self.manager(Some("scale"));
        let updated = self
            .write_update(t, &old, rev, new, false, Ownership::Update(&manager))
            .await?;
        Ok(json_response(StatusCode::OK, &self.scale_of(t, &updated)?))
    }

    async fn update_scale(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let scale = self.parse_body(body)?;
        let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
        let rv = scale
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from);
        self.set_replicas(t, replicas, rv).await
    }

    async fn patch_scale(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let (obj, _) = self.read(t).await?;
        let mut scale = self.scale_of(t, &obj)?;
        let patch_body: Value =
            serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let content_type = self.raw_content_type().unwrap_or_default();
        if content_type.starts_with("application/json-patch+json") {
            patch::json_patch(&mut scale, &patch_body).map_err(super::edge::json_patch_failed)?;
        } else {
            patch::merge_patch(&mut scale, &patch_body);
        }
        let replicas = scale.pointer("/spec/replicas").cloned().unwrap_or(json!(0));
        self.set_replicas(t, replicas, None).await
    }

    /// `DELETE`: what happens is [`deletion::plan`]'s decision; dependents
    /// are the garbage collector's business (see
    /// `controllers::garbage_collector`), which follows the finalizers the
    /// propagation policy leaves.
    async fn delete(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        let (options, dry_run) = super::edge::delete_options(body, &self.query)?;
        let (mut obj, mut rev) = self.read(t).await?;
        let name = crate::meta::name(&obj).to_string();
        let check = |obj: &Value, rev: u64| -> ApiResult<()> {
            let uid_differs = options.uid.as_deref().is_some_and(|uid| {
                obj.pointer("/metadata/uid").and_then(Value::as_str) != Some(uid)
            });
            if uid_differs || options.resource_version.is_some_and(|rv| rv != rev) {
                return Err(ApiError::conflict(t.rt, &name));
            }
            Ok(())
        };
        check(&obj, rev)?;
        if dry_run {
            return Ok(json_response(StatusCode::OK, &events_v1::shown(t.rt, &obj)));
        }
        if t.rt.kind == "Namespace" {
            self.delete_namespace_contents(&name).await?;
            // Marked Terminating meanwhile: a new revision of our own.
            (obj, rev) = self.read(t).await?;
        }
        for _ in 0..5 {
            // The object as written and the revision it is shown at.
            let written = match deletion::plan(t.rt.kind, &obj, &options, chrono::Utc::now()) {
                deletion::Plan::Pending => {
                    return Ok(json_response(StatusCode::OK, &events_v1::shown(t.rt, &obj)));
                }
                deletion::Plan::Keep(kept) => self
                    .state
                    .store
                    .update(&self.key(t), rev, to_bytes(&events_v1::stored(t.rt, &kept)))
                    .await
                    .map(|new_rev| (kept, new_rev)),
                deletion::Plan::Remove => {
                    match self.state.store.delete(&self.key(t), Some(rev)).await {
                        Ok((_, last)) => {
                            if allocation::applies_to(t.rt) {
                                allocation::reservations::release(self.state.store.as_ref(), &obj)
                                    .await;
                            }
                            match serde_json::from_slice(&last) {
                                Ok(stored) => Ok((events_v1::view(t.rt, stored), rev)),
                                Err(_) => Ok((obj, rev)),
                            }
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            match written {
                Ok((mut shown, at)) => {
                    shown["metadata"]["resourceVersion"] = json!(at.to_string());
                    return Ok(json_response(
                        StatusCode::OK,
                        &events_v1::shown(t.rt, &shown),
                    ));
                }
                Err(StoreError::Conflict { .. }) => {}
                Err(e) => return Err(ApiError::from_store(e, t.rt, &name)),
            }
            // Written in between: decide again on the new state, which
            // must still meet the preconditions.
            (obj, rev) = self.read(t).await?;
            if options.resource_version.is_some() {
                return Err(ApiError::conflict(t.rt, &name));
            }
            check(&obj, rev)?;
        }
        Err(ApiError::conflict(t.rt, &name))
    }

    fn key_of(&self, namespace: &str) -> ApiResult<String> {
        let ns_rt = crate::registry::kinds::NAMESPACES;
        Ok(ns_rt.key(None, namespace))
    }

    async fn delete_namespace_contents(&self, namespace: &str) -> ApiResult<()> {
        if matches!(
            namespace,
            "default" | "kube-system" | "kube-public" | "kube-node-lease"
        ) {
            return Err(ApiError {
                code: 403,
                reason: "Forbidden",
                message: format!(
                    "namespaces \"{namespace}\" is forbidden: this namespace may not be deleted"
                ),
                details: json!({"name": namespace, "kind": "namespaces"}),
            });
        }
        // Terminating first, so no controller fills the namespace again
        // while its contents go.
        let ns_key = self.key_of(namespace)?;
        if let Ok(kv) = self.state.store.get(&ns_key).await
            && let Ok(mut ns) = serde_json::from_slice::<Value>(&kv.value)
        {
            ns["status"]["phase"] = json!("Terminating");
            let _ = self
                .state
                .store
                .update(&ns_key, kv.revision, to_bytes(&ns))
                .await;
        }
        for rt in RESOURCES.iter().filter(|r| r.namespaced) {
            let Ok(listing) = self
                .state
                .store
                .list(&format!("{}{namespace}/", rt.prefix()))
                .await
            else {
                continue;
            };
            for kv in listing.items {
                if let Ok((_, last)) = self.state.store.delete(&kv.key, None).await
                    && allocation::applies_to(rt)
                    && let Ok(service) = serde_json::from_slice::<Value>(&last)
                {
                    allocation::reservations::release(self.state.store.as_ref(), &service).await;
                }
            }
        }
        Ok(())
    }

    async fn delete_collection(&self, t: &Target, body: &Bytes) -> ApiResult<Response> {
        // Bad options refuse the whole collection before anything goes.
        super::edge::delete_options(body, &self.query)?;
        let (labels, fields) = self.selectors()?;
        let listing = self
            .state
            .store
            .list(&self.prefix(t))
            .await
            .map_err(|e| ApiError::from_store(e, t.rt, ""))?;
        let mut deleted = Vec::new();
        for kv in &listing.items {
            let obj = events_v1::view(t.rt, with_rv(kv)?);
            if !(labels.matches(obj.pointer("/metadata/labels")) && fields.matches(&obj)) {
                continue;
            }
            let target = Target {
                rt: t.rt,
                namespace: obj
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .map(String::from),
                name: Some(crate::meta::name(&obj).to_string()),
                sub: None,
            };
            if self.delete(&target, body).await.is_ok() {
                deleted.push(events_v1::shown(t.rt, &obj).into_owned());
            }
        }
        let list = json!({"kind": format!("{}List", t.rt.kind), "apiVersion": t.rt.api_version(), "metadata": {"resourceVersion": listing.revision.to_string()}, "items": deleted});
        Ok(json_response(StatusCode::OK, &list))
    }

    /// `?watch=true`: see [`super::watch`].
    async fn watch(&self, t: &Target) -> ApiResult<Response> {
        let (labels, fields) = self.selectors()?;
        let request = super::watch::WatchRequest {
            rt: t.rt,
            prefix: self.prefix(t),
            labels,
            fields,
            resource_version: self.query.resource_version.clone().unwrap_or_default(),
            initial: self.query.send_initial_events == Some(true),
            timeout: self
                .query
                .timeout_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(Duration::from_secs),
            table: self.wants_table(),
        };
        super::watch::respond(&self.state, request).await
    }
}

fn table_selector(sel: &Value) -> String {
    let labels = sel.get("matchLabels").and_then(Value::as_object);
    labels
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

/// Creates the namespaces every cluster has (`default`, `kube-system`,
/// `kube-public`, `kube-node-lease`) if missing.
pub async fn bootstrap(state: &ApiState) -> Result<(), StoreError> {
    let rt = crate::registry::kinds::NAMESPACES;
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        let key = rt.key(None, ns);
        if state.store.get(&key).await.is_ok() {
            continue;
        }
        let mut obj = json!({"kind": "Namespace", "apiVersion": "v1", "metadata": {"name": ns, "uid": crate::registry::meta::uuid(), "creationTimestamp": crate::registry::meta::now(), "labels": {"kubernetes.io/metadata.name": ns}}});
        apply_defaults(rt, &mut obj);
        match state.store.create(&key, to_bytes(&obj)).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_resolve_to_namespaced_and_cluster_targets() {
        let t = parse_target("", "v1", "namespaces/default/pods/web/log").expect("pod log");
        assert_eq!(
            (
                t.rt.plural,
                t.namespace.as_deref(),
                t.name.as_deref(),
                t.sub.as_deref()
            ),
            ("pods", Some("default"), Some("web"), Some("log"))
        );
        let t = parse_target("", "v1", "namespaces/default").expect("namespace");
        assert_eq!(
            (t.rt.plural, t.name.as_deref()),
            ("namespaces", Some("default"))
        );
        let t = parse_target("apps", "v1", "deployments").expect("all namespaces");
        assert!(t.namespace.is_none() && t.name.is_none());
        assert!(parse_target("", "v1", "widgets").is_err());
    }
}
