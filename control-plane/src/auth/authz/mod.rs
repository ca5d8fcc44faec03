//! Authorization: may this user do what this request does? Upstream's
//! chain of authorizers, each allowing, denying or having no opinion; the
//! first that decides wins and a request nobody allows is 403.
//!
//! - [`Authorizer`], [`Decision`] and [`Union`]: the contract and the chain.
//! - [`rbac`]: the RBAC authorizer over an in-memory index of roles and
//!   bindings that follows the store, and escalation prevention.
//! - [`bootstrap`]: upstream's default roles and bindings, made at start.
//! - [`layer`]: the router layer that answers 403 with upstream's words.
//!
//! The order (`--authorization-mode`, upstream's default `Node,RBAC`) is
//! always behind [`Masters`]: `system:masters` may do anything, as
//! upstream's privileged-group authorizer in front of the configured ones.

pub mod bootstrap;
pub mod layer;
pub mod rbac;

use std::sync::Arc;

use crate::auth::request_info::RequestInfo;
use crate::auth::user::{MASTERS, UserInfo};
use crate::registry::error::ApiError;

/// One authorizer's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: later authorizers are not asked.
    Allow,
    /// Denied outright, with why: later authorizers are not asked.
    Deny(String),
    /// Neither: the next authorizer decides. The reason (empty when there
    /// is none) is kept for the 403 if nobody allows (RBAC's missing roles).
    NoOpinion(String),
}

/// Decides on one request by one user.
pub trait Authorizer: Send + Sync {
    /// Must be cheap: it runs on every request.
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision;
}

/// Upstream's privileged-group authorizer: `system:masters` may do all.
#[derive(Debug, Clone, Copy, Default)]
pub struct Masters;

impl Authorizer for Masters {
    fn authorize(&self, user: &UserInfo, _request: &RequestInfo) -> Decision {
        if user.in_group(MASTERS) {
            Decision::Allow
        } else {
            Decision::NoOpinion(String::new())
        }
    }
}

/// `--authorization-mode=AlwaysAllow` (benchmarks, never a lab).
#[derive(Debug, Clone, Copy, Default)]
pub struct AlwaysAllow;

impl Authorizer for AlwaysAllow {
    fn authorize(&self, _user: &UserInfo, _request: &RequestInfo) -> Decision {
        Decision::Allow
    }
}

/// The configured authorizers, asked in order.
#[derive(Clone, Default)]
pub struct Union(pub Vec<Arc<dyn Authorizer>>);

impl Authorizer for Union {
    fn authorize(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        let mut reasons = String::new();
        for authorizer in &self.0 {
            match authorizer.authorize(user, request) {
                Decision::NoOpinion(reason) => {
                    if !reason.is_empty() {
                        if !reasons.is_empty() {
                            reasons.push('\n');
                        }
                        reasons.push_str(&reason);
                    }
                }
                decided => return decided,
            }
        }
        Decision::NoOpinion(reasons)
    }
}

/// One `--authorization-mode` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything is allowed.
    AlwaysAllow,
    /// Nodes reach only what their pods need (comes with node identity).
    Node,
    /// Roles and bindings.
    Rbac,
}

impl Mode {
    /// Parses one mode as upstream spells it.
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "AlwaysAllow" => Ok(Self::AlwaysAllow),
            "Node" => Ok(Self::Node),
            "RBAC" => Ok(Self::Rbac),
            other => Err(format!(
                "unknown authorization mode {other:?} (AlwaysAllow, Node, RBAC)"
            )),
        }
    }
}

/// The API server's authorization: the chain, and the RBAC index that
/// escalation checks and rules reviews read.
pub struct Authorization {
    /// [`Masters`] then the configured modes.
    pub chain: Union,
    /// `AlwaysAllow` is one of the modes: every request passes.
    always: bool,
    /// The RBAC index (kept even when RBAC is not a mode, for reviews).
    pub rbac: Arc<rbac::Rbac>,
}

impl Authorization {
    /// The chain for `modes` over `rbac`.
    pub fn new(modes: &[Mode], rbac: Arc<rbac::Rbac>) -> Self {
        let mut chain: Vec<Arc<dyn Authorizer>> = vec![Arc::new(Masters)];
        for mode in modes {
            match mode {
                Mode::AlwaysAllow => chain.push(Arc::new(AlwaysAllow)),
                // The slot of upstream's Node authorizer: until node
                // identity brings it, nodes get what RBAC gives them.
                Mode::Node => {}
                Mode::Rbac => chain.push(rbac.clone()),
            }
        }
        Self {
            chain: Union(chain),
            always: modes.contains(&Mode::AlwaysAllow),
            rbac,
        }
    }

    /// Whether `user` may do anything whatever the request (a superuser,
    /// or `AlwaysAllow`): the layer then skips reading the request.
    pub fn unconditional(&self, user: &UserInfo) -> bool {
        self.always || user.in_group(MASTERS)
    }

    /// Everything allowed (tests and `ApiState::new`).
    pub fn always_allow() -> Self {
        Self::new(&[Mode::AlwaysAllow], Arc::default())
    }

    /// `Ok` if `user` may do `request`, else upstream's 403.
    pub fn check(&self, user: &UserInfo, request: &RequestInfo) -> Result<(), ApiError> {
        match self.chain.authorize(user, request) {
            Decision::Allow => Ok(()),
            Decision::Deny(reason) | Decision::NoOpinion(reason) => {
                Err(forbidden(user, request, &reason))
            }
        }
    }

    /// The chain's decision (for access reviews).
    pub fn chain_decision(&self, user: &UserInfo, request: &RequestInfo) -> Decision {
        self.chain.authorize(user, request)
    }

    /// Whether `user` may do `request`.
    pub fn allows(&self, user: &UserInfo, request: &RequestInfo) -> bool {
        self.chain.authorize(user, request) == Decision::Allow
    }
}

/// Upstream's 403 for a request nobody allowed (`pods is forbidden: User
/// "jane" cannot list resource "pods" in API group "" in the namespace
/// "default"`), with the authorizers' reasons after a colon.
pub fn forbidden(user: &UserInfo, request: &RequestInfo, reason: &str) -> ApiError {
    let mut why = if request.is_resource_request {
        let scope = if request.namespace.is_empty() {
            "at the cluster scope".to_string()
        } else {
            format!("in the namespace {:?}", request.namespace)
        };
        format!(
            "User {:?} cannot {} resource {:?} in API group {:?} {scope}",
            user.name,
            request.verb,
            request.resource_with_subresource(),
            request.api_group,
        )
    } else {
        format!(
            "User {:?} cannot {} path {:?}",
            user.name, request.verb, request.path
        )
    };
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let qualified = match (request.is_resource_request, request.api_group.as_str()) {
        (false, _) => String::new(),
        (true, "") => request.resource.clone(),
        (true, group) => format!("{}.{group}", request.resource),
    };
    let message = match (qualified.is_empty(), request.name.is_empty()) {
        (true, _) => format!("forbidden: {why}"),
        (false, true) => format!("{qualified} is forbidden: {why}"),
        (false, false) => format!("{qualified} {:?} is forbidden: {why}", request.name),
    };
    let mut error = ApiError::forbidden(message);
    if request.is_resource_request {
        let mut details = serde_json::json!({"kind": request.resource});
        if !request.name.is_empty() {
            details["name"] = request.name.clone().into();
        }
        if !request.api_group.is_empty() {
            details["group"] = request.api_group.clone().into();
        }
        error.details = details;
    }
    error
}

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::*;

    fn jane() -> UserInfo {
        UserInfo::authenticated("jane", &[])
    }

    #[test]
    fn forbidden_messages_read_as_upstreams() {
        let cases = [
            (
                Method::GET,
                "/api/v1/namespaces/default/pods",
                "pods is forbidden: User \"jane\" cannot list resource \"pods\" in API group \"\" in the namespace \"default\"",
            ),
            (
                Method::GET,
                "/apis/apps/v1/namespaces/default/deployments/web/scale",
                "deployments.apps \"web\" is forbidden: User \"jane\" cannot get resource \"deployments/scale\" in API group \"apps\" in the namespace \"default\"",
            ),
            (
                Method::GET,
                "/api/v1/nodes",
                "nodes is forbidden: User \"jane\" cannot list resource \"nodes\" in API group \"\" at the cluster scope",
            ),
            (
                Method::GET,
                "/foo",
                "forbidden: User \"jane\" cannot get path \"/foo\"",
            ),
            (
                Method::DELETE,
                "/api/v1/namespaces/default/pods",
                "pods is forbidden: User \"jane\" cannot deletecollection resource \"pods\" in API group \"\" in the namespace \"default\"",
            ),
        ];
        let authz = Authorization::new(&[Mode::Node, Mode::Rbac], Arc::default());
        for (method, path, message) in cases {
            let request = RequestInfo::new(&method, path, None);
            let error = authz.check(&jane(), &request).expect_err(path);
            assert_eq!((error.code, error.message.as_str()), (403, message));
        }
    }

    #[test]
    fn masters_pass_every_mode_and_always_allow_passes_everyone() {
        let request = RequestInfo::new(&Method::DELETE, "/api/v1/nodes/n1", None);
        let rbac_only = Authorization::new(&[Mode::Rbac], Arc::default());
        assert!(rbac_only.allows(&UserInfo::authenticated("root", &[MASTERS]), &request));
        assert!(!rbac_only.allows(&jane(), &request));
        assert!(Authorization::always_allow().allows(&jane(), &request));
        assert_eq!(Mode::parse("RBAC"), Ok(Mode::Rbac));
        assert!(Mode::parse("ABAC").is_err());
    }
}
