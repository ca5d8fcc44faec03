//! `pods/{name}/proxy[/path]` and `services/{name}/proxy[/path]`: HTTP
//! requests passed to a pod's port through its node ([`super::tunnel`]).
//!
//! The name may carry a port and a scheme as upstream allows
//! (`web`, `web:8080`, `http:web:8080`, `web:http`). A Service is answered
//! by one ready pod its selector matches, with the service port mapped to
//! the pod's `targetPort` (named ports included), until EndpointSlices
//! exist to be read instead.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, Method, Request};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

use super::ApiState;
use super::core_request::CoreRequest;
use super::error::{ApiError, ApiResult};
use super::selectors::LabelSelector;
use super::tunnel;

/// Headers that belong to one hop, never forwarded (RFC 9110 7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// A proxy request, parsed from the path after `/api/v1/`.
#[derive(Debug, PartialEq, Eq)]
pub struct ProxyPath {
    /// `pods` or `services`.
    pub plural: String,
    /// Namespace.
    pub namespace: String,
    /// Object name.
    pub name: String,
    /// `http` or `https` (empty: http).
    pub scheme: String,
    /// Port number or name (empty: the default).
    pub port: String,
    /// Path on the pod, starting with `/`.
    pub path: String,
}

/// Recognises `namespaces/{ns}/{pods|services}/{id}/proxy[/{path}]`.
pub fn parse(rest: &str) -> Option<ApiResult<ProxyPath>> {
    let mut parts = rest.splitn(6, '/');
    let (
        Some("namespaces"),
        Some(ns),
        Some(plural @ ("pods" | "services")),
        Some(id),
        Some("proxy"),
    ) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    )
    else {
        return None;
    };
    let path = format!("/{}", parts.next().unwrap_or_default());
    let singular = plural.trim_end_matches('s');
    let invalid = || {
        Some(Err(ApiError::bad_request(format!(
            "invalid {singular} request {id:?}"
        ))))
    };
    let (scheme, name, port) = match id.split(':').collect::<Vec<_>>().as_slice() {
        [name] => ("", *name, ""),
        [name, port] => ("", *name, *port),
        [scheme @ ("" | "http" | "https"), name, port] => (*scheme, *name, *port),
        _ => return invalid(),
    };
    if name.is_empty() || ns.is_empty() {
        return invalid();
    }
    Some(Ok(ProxyPath {
        plural: plural.to_string(),
        namespace: ns.to_string(),
        name: name.to_string(),
        scheme: scheme.to_string(),
        port: port.to_string(),
        path,
    }))
}

fn unavailable(message: impl Into<String>) -> ApiError {
    ApiError {
        code: 503,
        reason: "ServiceUnavailable",
        message: message.into(),
        details: json!({}),
    }
}

/// The ports a pod's containers declare: (name, number).
fn container_ports(pod: &Value) -> Vec<(String, u16)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| {
            let number = p["containerPort"]
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())?;
            Some((p["name"].as_str().unwrap_or_default().to_string(), number))
        })
        .collect()
}

/// A pod's port from the request: a number, a container port's name, or
/// (empty) its first declared port, else 80 as upstream.
fn pod_port(pod: &Value, port: &str) -> ApiResult<u16> {
    let ports = container_ports(pod);
    if port.is_empty() {
        return Ok(ports.first().map_or(80, |(_, n)| *n));
    }
    if let Ok(n) = port.parse::<u16>() {
        return Ok(n);
    }
    ports
        .iter()
        .find(|(name, _)| name == port)
        .map(|(_, n)| *n)
        .ok_or_else(|| unavailable(format!("no port named {port:?} in pod")))
}

fn ready(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none()
        && pod.pointer("/status/phase").and_then(Value::as_str) == Some("Running")
        && pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The service port the request names, as upstream resolves it.
fn service_port<'a>(service: &'a Value, requested: &str, name: &str) -> ApiResult<&'a Value> {
    let ports: Vec<&Value> = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if let Ok(number) = requested.parse::<i64>() {
        return ports
            .into_iter()
            .find(|p| p["port"].as_i64() == Some(number))
            .ok_or_else(|| {
                unavailable(format!(
                    "no service port {number} found for service {name:?}"
                ))
            });
    }
    let by_name = ports
        .iter()
        .find(|p| p["name"].as_str().unwrap_or_default() == requested)
        .copied();
    match by_name {
        Some(p) => Ok(p),
        // One port needs no name to be chosen.
        None if requested.is_empty() && ports.len() == 1 => Ok(ports[0]),
        None => Err(unavailable(format!(
            "no endpoints available for service {name:?}"
        ))),
    }
}

/// A ready pod behind the service and the pod port to use.
async fn service_backend(state: &ApiState, target: &ProxyPath) -> ApiResult<(Value, u16)> {
    let service = tunnel::read_object(
        state,
        crate::registry::kinds::SERVICES,
        &target.namespace,
        &target.name,
    )
    .await?;
    let port = service_port(&service, &target.port, &target.name)?;
    let target_port = match &port["targetPort"] {
        Value::Null => port["port"].clone(),
        other => other.clone(),
    };
    let selector = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            unavailable(format!(
                "no endpoints available for service {:?}",
                target.name
            ))
        })?;
    let text = selector
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",");
    let selector = LabelSelector::parse(&text).map_err(ApiError::internal)?;
    let rt = crate::registry::kinds::PODS;
    let listing = state
        .store
        .list(&format!("{}{}/", rt.prefix(), target.namespace))
        .await
        .map_err(|e| ApiError::from_store(e, rt, ""))?;
    let candidates: Vec<(Value, u16)> = listing
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter(|pod| selector.matches(pod.pointer("/metadata/labels")) && ready(pod))
        .filter_map(|pod| {
            let number = match &target_port {
                Value::String(name) => container_ports(&pod)
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, number)| number)?,
                other => other.as_u64().and_then(|n| u16::try_from(n).ok())?,
            };
            Some((pod, number))
        })
        .collect();
    if candidates.is_empty() {
        return Err(unavailable(format!(
            "no endpoints available for service {:?}",
            target.name
        )));
    }
    // Spread requests over the ready pods, as a Service's endpoints would.
    let pick = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as usize)
        % candidates.len();
    candidates
        .into_iter()
        .nth(pick)
        .ok_or_else(|| ApiError::internal("no candidate"))
}

/// Serves one proxied request.
pub async fn serve(
    state: Arc<ApiState>,
    target: ProxyPath,
    method: Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    if target.scheme == "https" {
        return Err(unavailable(
            "error trying to reach service: https to pods is not supported",
        ));
    }
    let (pod, port) = if target.plural == "pods" {
        let pod = tunnel::read_object(
            &state,
            crate::registry::kinds::PODS,
            &target.namespace,
            &target.name,
        )
        .await?;
        let port = pod_port(&pod, &target.port)?;
        (pod, port)
    } else {
        service_backend(&state, &target).await?
    };
    let endpoint = tunnel::endpoint(&state, pod).await?;
    let connection = tunnel::open(&endpoint, port)
        .await
        .map_err(|s| unavailable(format!("error trying to reach service: {}", s.message())))?;
    let (mut sender, driver) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(connection))
            .await
            .map_err(|e| unavailable(format!("error trying to reach service: {e}")))?;
    tokio::spawn(driver);
    let uri = match query {
        Some(q) if !q.is_empty() => format!("{}?{q}", target.path),
        _ => target.path.clone(),
    };
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        if !is_hop_by_hop(name) && name != "host" && name != "authorization" {
            request = request.header(name, value);
        }
    }
    let request = request
        .header("host", format!("127.0.0.1:{port}"))
        .body(Body::from(body))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| unavailable(format!("error trying to reach service: {e}")))?;
    let (mut parts, body) = response.into_parts();
    for name in HOP_BY_HOP {
        parts.headers.remove(*name);
    }
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// The API's entry point: answers when `rest` (after `/api/{version}/`)
/// is a pods or services proxy path.
pub async fn route(
    state: &Arc<ApiState>,
    request: &CoreRequest<'_>,
    body: &Bytes,
) -> Option<Response> {
    if request.version != "v1" {
        return None;
    }
    let target = parse(request.rest)?;
    state
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let result = match target {
        Ok(target) => {
            serve(
                state.clone(),
                target,
                request.method.clone(),
                request.query,
                request.headers,
                body.clone(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    Some(result.unwrap_or_else(axum::response::IntoResponse::into_response))
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(&name.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(rest: &str) -> ProxyPath {
        parse(rest).expect("a proxy path").expect("valid")
    }

    #[test]
    fn names_carry_scheme_and_port_as_upstream() {
        // (scheme, plural, name, port, path) of each proxy path.
        for (rest, want) in [
            (
                "namespaces/default/pods/web/proxy/",
                ("", "pods", "web", "", "/"),
            ),
            (
                "namespaces/default/services/http:web:8080/proxy/a/b?c",
                ("http", "services", "web", "8080", "/a/b?c"),
            ),
            (
                "namespaces/ns/pods/web:http/proxy",
                ("", "pods", "web", "http", "/"),
            ),
        ] {
            let p = path(rest);
            let got = (
                p.scheme.as_str(),
                p.plural.as_str(),
                p.name.as_str(),
                p.port.as_str(),
                p.path.as_str(),
            );
            assert_eq!(got, want, "{rest}");
        }
        assert!(parse("namespaces/ns/pods/web/log").is_none());
        assert!(parse("namespaces/ns/configmaps/web/proxy").is_none());
        let bad = parse("namespaces/ns/pods/a:b:c:d/proxy").expect("proxy path");
        assert_eq!(
            bad.expect_err("invalid").message,
            "invalid pod request \"a:b:c:d\""
        );
    }

    #[test]
    fn pod_ports_default_to_the_first_declared_then_80() {
        let pod = json!({"spec": {"containers": [
            {"name": "a"},
            {"name": "b", "ports": [{"name": "http", "containerPort": 8080}, {"containerPort": 9090}]},
        ]}});
        assert_eq!(pod_port(&pod, "").expect("default"), 8080);
        assert_eq!(pod_port(&pod, "http").expect("named"), 8080);
        assert_eq!(pod_port(&pod, "9999").expect("number"), 9999);
        assert_eq!(pod_port(&pod, "metrics").expect_err("unknown").code, 503);
        assert_eq!(pod_port(&json!({"spec": {}}), "").expect("none"), 80);
    }

    #[test]
    fn service_ports_resolve_by_number_or_name_with_upstream_errors() {
        let svc = json!({"spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "web"},
            {"name": "admin", "port": 9000},
        ]}});
        assert_eq!(
            service_port(&svc, "80", "s").expect("number")["name"],
            "http"
        );
        assert_eq!(
            service_port(&svc, "admin", "s").expect("name")["port"],
            9000
        );
        assert_eq!(
            service_port(&svc, "81", "s").expect_err("no port").message,
            "no service port 81 found for service \"s\""
        );
        assert_eq!(
            service_port(&svc, "", "s").expect_err("ambiguous").message,
            "no endpoints available for service \"s\""
        );
        let single = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
        assert_eq!(
            service_port(&single, "", "s").expect("only")["targetPort"],
            8080
        );
    }

    #[test]
    fn only_running_ready_pods_serve() {
        let ready_pod = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}});
        assert!(ready(&ready_pod));
        let mut deleting = ready_pod.clone();
        deleting["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        assert!(!ready(&deleting));
        assert!(!ready(&json!({"status": {"phase": "Pending"}})));
    }
}
