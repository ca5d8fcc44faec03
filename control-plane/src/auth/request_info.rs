//! What a request does, as authorization sees it: upstream's
//! `RequestInfo` (apiserver's `RequestInfoFactory`), read from the method,
//! the path and the query alone, before any handler runs.
//!
//! A path under `/api/{version}` or `/apis/{group}/{version}` is a
//! resource request (verb from the method, `get` without a name becoming
//! `list` or `watch`, `delete` without one `deletecollection`); anything
//! else is a non-resource request whose verb is the lowercase method.

use axum::http::Method;

/// Verbs a path can carry in place of its method (`/api/v1/watch/pods`).
const PATH_VERBS: [&str; 2] = ["proxy", "watch"];

/// Subresources of a namespace itself (`/api/v1/namespaces/ns/status`),
/// which are not a namespaced resource called `status`.
const NAMESPACE_SUBRESOURCES: [&str; 2] = ["status", "finalize"];

/// What one request asks to do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RequestInfo {
    /// Under `/api` or `/apis` (else [`RequestInfo::path`] is what is asked for).
    pub is_resource_request: bool,
    /// The URL path (for non-resource requests and messages).
    pub path: String,
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`,
    /// `deletecollection`, `proxy`; a non-resource request's lowercase
    /// method.
    pub verb: String,
    /// `api` or `apis`.
    pub api_prefix: String,
    /// `""` for the core group.
    pub api_group: String,
    /// `v1`.
    pub api_version: String,
    /// `""` for cluster-scoped requests.
    pub namespace: String,
    /// `pods`, `namespaces`.
    pub resource: String,
    /// `status`, `exec`, `scale`.
    pub subresource: String,
    /// The object's name, if the request names one.
    pub name: String,
}

impl RequestInfo {
    /// Reads a request as upstream's `RequestInfoFactory` does. `query` is
    /// the raw query string.
    pub fn new(method: &Method, path: &str, query: Option<&str>) -> Self {
        let mut info = Self {
            path: path.to_string(),
            verb: method.as_str().to_ascii_lowercase(),
            ..Self::default()
        };
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        if parts.len() < 3 {
            return info;
        }
        let (prefix, mut rest) = (parts[0], &parts[1..]);
        match prefix {
            "api" => {}
            "apis" if rest.len() >= 3 => {
                info.api_group = rest[0].to_string();
                rest = &rest[1..];
            }
            _ => return info,
        }
        info.api_prefix = prefix.to_string();
        info.is_resource_request = true;
        info.api_version = rest[0].to_string();
        rest = &rest[1..];
        if PATH_VERBS.contains(&rest[0]) {
            if rest.len() < 2 {
                // Upstream rejects `/api/v1/watch` as undeterminable; an empty
                // resource authorizes nothing useful either way.
                info.verb = rest[0].to_string();
                return info;
            }
            info.verb = rest[0].to_string();
            rest = &rest[1..];
        } else {
            info.verb = match *method {
                Method::POST => "create",
                Method::GET | Method::HEAD => "get",
                Method::PUT => "update",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "",
            }
            .to_string();
        }
        if rest[0] == "namespaces"
            && let Some(namespace) = rest.get(1)
        {
            info.namespace = namespace.to_string();
            if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
                rest = &rest[2..];
            }
        }
        // resource/name/subresource/anything-else; `proxy` paths keep
        // everything after the name as the proxied path.
        if rest.len() >= 3 && info.verb != "proxy" {
            info.subresource = rest[2].to_string();
        }
        if rest.len() >= 2 {
            info.name = rest[1].to_string();
        }
        info.resource = rest[0].to_string();
        if info.name.is_empty() && info.verb == "get" {
            let (watch, name) = list_options(query);
            info.verb = if watch { "watch" } else { "list" }.to_string();
            if let Some(name) = name {
                info.name = name;
            }
        }
        if info.name.is_empty() && info.verb == "delete" {
            info.verb = "deletecollection".to_string();
        }
        info
    }

    /// `deployments/scale`, or the resource alone.
    pub fn resource_with_subresource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// `watch` and the name a `metadata.name=` field selector pins, from a
/// list's query string (upstream decodes the list options for both).
fn list_options(query: Option<&str>) -> (bool, Option<String>) {
    let (mut watch, mut name) = (false, None);
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            // strconv.ParseBool's true spellings.
            "watch" => watch = matches!(value, "1" | "t" | "T" | "true" | "TRUE" | "True"),
            "fieldSelector" => {
                name = crate::percent_encoding::decode(value).and_then(|s| exact_name(&s));
            }
            _ => {}
        }
    }
    (watch, name)
}

/// The name a field selector requires exactly (`metadata.name=x` or
/// `metadata.name==x`, alone), if it is a valid path segment.
fn exact_name(selector: &str) -> Option<String> {
    if selector.contains(',') {
        return None;
    }
    let rest = selector.trim().strip_prefix("metadata.name")?;
    let value = rest
        .strip_prefix("==")
        .or_else(|| rest.strip_prefix('='))?
        .trim();
    let valid = !value.is_empty()
        && value != "."
        && value != ".."
        && !value.contains('/')
        && !value.contains('%');
    valid.then(|| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(method: Method, path: &str, query: Option<&str>) -> RequestInfo {
        RequestInfo::new(&method, path, query)
    }

    /// (verb, group, version, namespace, resource, subresource, name).
    type Parts<'a> = (
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
        &'a str,
    );

    /// A request (method, path, query) and what it reads as.
    type Case = (Method, &'static str, Option<&'static str>, Parts<'static>);

    fn parts(i: &RequestInfo) -> Parts<'_> {
        (
            &i.verb,
            &i.api_group,
            &i.api_version,
            &i.namespace,
            &i.resource,
            &i.subresource,
            &i.name,
        )
    }

    #[test]
    fn resource_requests_read_verb_scope_and_names_as_upstream() {
        let cases: &[Case] = &[
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                None,
                ("list", "", "v1", "default", "pods", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("watch=true&resourceVersion=5"),
                ("watch", "", "v1", "default", "pods", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                Some("watch=1"),
                ("watch", "", "v1", "default", "pods", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/watch/namespaces/default/pods/web",
                None,
                ("watch", "", "v1", "default", "pods", "", "web"),
            ),
            (
                Method::GET,
                "/api/v1/pods",
                None,
                ("list", "", "v1", "", "pods", "", ""),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/default/pods/web",
                None,
                ("get", "", "v1", "default", "pods", "", "web"),
            ),
            (
                Method::POST,
                "/apis/apps/v1/namespaces/default/deployments",
                None,
                ("create", "apps", "v1", "default", "deployments", "", ""),
            ),
            (
                Method::PUT,
                "/apis/apps/v1/namespaces/lab/deployments/web/scale",
                None,
                ("update", "apps", "v1", "lab", "deployments", "scale", "web"),
            ),
            (
                Method::PATCH,
                "/apis/apps/v1/namespaces/lab/deployments/web",
                None,
                ("patch", "apps", "v1", "lab", "deployments", "", "web"),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/lab/pods",
                None,
                ("deletecollection", "", "v1", "lab", "pods", "", ""),
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/lab/pods/web",
                None,
                ("delete", "", "v1", "lab", "pods", "", "web"),
            ),
            (
                Method::POST,
                "/api/v1/namespaces/lab/pods/web/exec",
                Some("command=ls"),
                ("create", "", "v1", "lab", "pods", "exec", "web"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/lab/pods/web/exec",
                Some("command=ls"),
                ("get", "", "v1", "lab", "pods", "exec", "web"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/lab/pods/web/log",
                None,
                ("get", "", "v1", "lab", "pods", "log", "web"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/lab/pods/web:8080/proxy/a/b",
                None,
                ("get", "", "v1", "lab", "pods", "proxy", "web:8080"),
            ),
            (
                Method::GET,
                "/api/v1/proxy/namespaces/lab/pods/web/a/b",
                None,
                ("proxy", "", "v1", "lab", "pods", "", "web"),
            ),
            // A namespace is cluster-scoped but carries its own name as the namespace.
            (
                Method::GET,
                "/api/v1/namespaces/lab",
                None,
                ("get", "", "v1", "lab", "namespaces", "", "lab"),
            ),
            (
                Method::PUT,
                "/api/v1/namespaces/lab/finalize",
                None,
                ("update", "", "v1", "lab", "namespaces", "finalize", "lab"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces",
                None,
                ("list", "", "v1", "", "namespaces", "", ""),
            ),
            (
                Method::GET,
                "/apis/rbac.authorization.k8s.io/v1/clusterroles/view",
                None,
                (
                    "get",
                    "rbac.authorization.k8s.io",
                    "v1",
                    "",
                    "clusterroles",
                    "",
                    "view",
                ),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/lab/pods",
                Some("fieldSelector=metadata.name%3Dweb"),
                ("list", "", "v1", "lab", "pods", "", "web"),
            ),
            (
                Method::GET,
                "/api/v1/namespaces/lab/pods",
                Some("fieldSelector=metadata.name%3Dweb%2Cspec.nodeName%3Dn"),
                ("list", "", "v1", "lab", "pods", "", ""),
            ),
        ];
        for (method, path, query, want) in cases {
            let got = info(method.clone(), path, *query);
            assert!(got.is_resource_request, "{path}");
            assert_eq!(parts(&got), *want, "{method} {path}?{query:?}");
        }
    }

    #[test]
    fn everything_else_is_a_non_resource_request() {
        for (method, path, verb) in [
            (Method::GET, "/healthz", "get"),
            (Method::GET, "/api", "get"),
            (Method::GET, "/api/v1", "get"),
            (Method::GET, "/apis/apps", "get"),
            (Method::GET, "/apis/apps/v1", "get"),
            (Method::POST, "/foo/bar/baz", "post"),
            (Method::GET, "/openapi/v3/apis/apps/v1", "get"),
        ] {
            let got = info(method, path, None);
            assert!(!got.is_resource_request, "{path}");
            assert_eq!((got.verb.as_str(), got.path.as_str()), (verb, path));
        }
    }

    #[test]
    fn a_subresource_joins_its_resource_for_messages() {
        let i = info(
            Method::GET,
            "/apis/apps/v1/namespaces/default/deployments/web/scale",
            None,
        );
        assert_eq!(i.resource_with_subresource(), "deployments/scale");
    }
}
