//! The reviews, answered and never stored: the ones `kubectl auth`
//! creates — access reviews (may this user do this?), the rules review
//! (what may I do here?), `SelfSubjectReview` (who am I?) — and
//! `TokenReview` (whose is this token?), which webhooks and proxies in
//! front of the API ask.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::authn::Authenticator;
use super::authz::{Authorization, Decision};
use super::request_info::RequestInfo;
use super::user::UserInfo;
use crate::registry::error::ApiError;
use crate::registry::kinds::review::Kind;
use crate::registry::resource_type::ResourceType;

fn text(obj: &Value, pointer: &str) -> String {
    obj.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The request an access review's spec describes, if it names one.
fn attributes(spec: &Value) -> Option<RequestInfo> {
    if let Some(a) = spec.get("resourceAttributes").filter(|a| a.is_object()) {
        return Some(RequestInfo {
            is_resource_request: true,
            verb: text(a, "/verb"),
            api_group: text(a, "/group"),
            api_version: text(a, "/version"),
            namespace: text(a, "/namespace"),
            resource: text(a, "/resource"),
            subresource: text(a, "/subresource"),
            name: text(a, "/name"),
            ..RequestInfo::default()
        });
    }
    let a = spec
        .get("nonResourceAttributes")
        .filter(|a| a.is_object())?;
    Some(RequestInfo {
        path: text(a, "/path"),
        verb: text(a, "/verb"),
        ..RequestInfo::default()
    })
}

/// The strings of a JSON array (nothing for anything else).
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// A user as the reviews' `UserInfo` (`uid` and `extra` only when set).
fn user_json(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    if !user.extra.is_empty() {
        info["extra"] = json!(user.extra);
    }
    info
}

/// The user a SubjectAccessReview asks about.
fn subject(spec: &Value) -> UserInfo {
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
        .unwrap_or_default();
    UserInfo {
        name: text(spec, "/user"),
        uid: text(spec, "/uid"),
        groups: strings(&spec["groups"]),
        extra,
    }
}

fn status_of(decision: Decision) -> Value {
    match decision {
        Decision::Allow => json!({"allowed": true}),
        Decision::Deny(reason) => json!({"allowed": false, "denied": true, "reason": reason}),
        Decision::NoOpinion(reason) if reason.is_empty() => json!({"allowed": false}),
        Decision::NoOpinion(reason) => json!({"allowed": false, "reason": reason}),
    }
}

/// Who answers reviews: the authorizer for access reviews, the
/// authenticator for token reviews.
#[derive(Clone, Copy)]
pub struct Reviewers<'a> {
    pub authz: &'a Authorization,
    pub authn: &'a Authenticator,
}

/// Answers the review `review` (of type `rt`, created in `namespace` for
/// LocalSubjectAccessReviews) by `user`: the object with its status.
pub async fn answer(
    reviewers: Reviewers<'_>,
    user: &UserInfo,
    rt: &ResourceType,
    kind: Kind,
    namespace: Option<&str>,
    mut review: Value,
) -> Result<Value, ApiError> {
    // Any JSON parses as a body; only an object of this kind is a review
    // (and only an object can take the fields set below).
    crate::registry::identity::check(rt, &review)?;
    review["apiVersion"] = json!(rt.api_version());
    review["kind"] = json!(rt.kind);
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    let spec = review.get("spec").cloned().unwrap_or_else(|| json!({}));
    let invalid = |field: &str, message: &str| {
        ApiError::invalid(
            rt,
            "",
            &[format!("{field}: Invalid value: \"\": {message}")],
        )
    };
    let authz = reviewers.authz;
    let status = match kind {
        Kind::SelfSubject => json!({"userInfo": user_json(user)}),
        Kind::Token => {
            let token = text(&spec, "/token");
            if token.is_empty() {
                return Err(ApiError::bad_request(
                    "token is required for TokenReview in authentication",
                ));
            }
            let audiences = strings(&spec["audiences"]);
            // As upstream: a token that is not valid is no error of the
            // request, only `authenticated` left false (with the reason
            // when there is one).
            match reviewers.authn.review(&token, &audiences).await {
                Ok((who, valid_for)) => json!({
                    "authenticated": true,
                    "user": user_json(&who),
                    "audiences": valid_for,
                }),
                Err(reason) if reason.is_empty() => json!({"user": {}}),
                Err(reason) => json!({"user": {}, "error": reason}),
            }
        }
        Kind::SelfRules => {
            let namespace = text(&spec, "/namespace");
            if namespace.is_empty() {
                return Err(ApiError::bad_request("no namespace on request"));
            }
            rules_status(authz, user, &namespace)
        }
        Kind::SelfAccess | Kind::Access | Kind::LocalAccess => {
            let request = attributes(&spec).ok_or_else(|| {
                invalid(
                    "spec.resourceAttributes",
                    "exactly one of nonResourceAttributes or resourceAttributes must be specified",
                )
            })?;
            let who = if kind == Kind::SelfAccess {
                user.clone()
            } else {
                let who = subject(&spec);
                if who.name.is_empty() && who.groups.is_empty() {
                    return Err(invalid(
                        "spec.user",
                        "at least one of user or group must be specified",
                    ));
                }
                who
            };
            if kind == Kind::LocalAccess {
                let namespace = namespace.unwrap_or_default();
                if !request.is_resource_request {
                    return Err(invalid(
                        "spec.nonResourceAttributes",
                        "disallowed on this kind of request",
                    ));
                }
                if request.namespace != namespace {
                    return Err(ApiError::bad_request(format!(
                        "spec.resourceAttributes.namespace must match namespace: {namespace}"
                    )));
                }
            }
            status_of(authz.chain_decision(&who, &request))
        }
    };
    review["status"] = status;
    Ok(review)
}

/// What `user` may do in `namespace`, as a SelfSubjectRulesReview's
/// status.
fn rules_status(authz: &Authorization, user: &UserInfo, namespace: &str) -> Value {
    let (rules, errors) = authz.rbac.rules_for(user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for rule in &rules {
        if rule.non_resource_urls.is_empty() {
            let mut r = json!({"verbs": rule.verbs, "apiGroups": rule.api_groups, "resources": rule.resources});
            if !rule.resource_names.is_empty() {
                r["resourceNames"] = json!(rule.resource_names);
            }
            resource_rules.push(r);
        } else {
            non_resource_rules
                .push(json!({"verbs": rule.verbs, "nonResourceURLs": rule.non_resource_urls}));
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::authz::Mode;
    use crate::auth::user::MASTERS;
    use crate::registry::kinds;

    #[tokio::test]
    async fn reviews_answer_for_the_asker_or_the_named_subject() {
        let authz = Authorization::new(&[Mode::Rbac], Arc::default());
        let authn = Authenticator::default();
        let reviewers = Reviewers {
            authz: &authz,
            authn: &authn,
        };
        let jane = UserInfo::authenticated("jane", &[]);
        let ask = json!({"spec": {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}});
        let answer_for = async |user: &UserInfo, rt, kind, body: Value| {
            answer(reviewers, user, rt, kind, Some("default"), body)
                .await
                .expect("answers")
        };
        let r = answer_for(
            &jane,
            kinds::SELFSUBJECTACCESSREVIEWS,
            Kind::SelfAccess,
            ask.clone(),
        )
        .await;
        assert_eq!(r["status"], json!({"allowed": false}));
        assert_eq!(r["kind"], "SelfSubjectAccessReview");
        let mut about_root = ask.clone();
        about_root["spec"]["groups"] = json!([MASTERS]);
        let r = answer_for(&jane, kinds::SUBJECTACCESSREVIEWS, Kind::Access, about_root).await;
        assert_eq!(r["status"]["allowed"], true);
        let who = answer_for(
            &jane,
            kinds::SELFSUBJECTREVIEWS,
            Kind::SelfSubject,
            json!({}),
        )
        .await;
        assert_eq!(
            who["status"]["userInfo"],
            json!({"username": "jane", "groups": ["system:authenticated"]})
        );
        let e = answer(
            reviewers,
            &jane,
            kinds::SUBJECTACCESSREVIEWS,
            Kind::Access,
            None,
            ask,
        )
        .await
        .expect_err("no subject");
        assert_eq!(e.code, 422);
    }

    #[tokio::test]
    async fn a_body_that_is_not_an_object_is_400_not_a_panic() {
        let authz = Authorization::new(&[Mode::Rbac], Arc::default());
        let authn = Authenticator::default();
        let reviewers = Reviewers {
            authz: &authz,
            authn: &authn,
        };
        let jane = UserInfo::authenticated("jane", &[]);
        for body in [json!(42), json!([1]), json!("s"), json!(true)] {
            let e = answer(
                reviewers,
                &jane,
                kinds::SELFSUBJECTACCESSREVIEWS,
                Kind::SelfAccess,
                None,
                body.clone(),
            )
            .await
            .expect_err("not a review");
            assert_eq!(e.code, 400, "{body}: {e:?}");
            assert!(e.message.contains("cannot unmarshal"), "{}", e.message);
        }
        let other = answer(
            reviewers,
            &jane,
            kinds::SELFSUBJECTREVIEWS,
            Kind::SelfSubject,
            None,
            json!({"kind": "Pod", "apiVersion": "v1"}),
        )
        .await
        .expect_err("another kind");
        assert_eq!(other.code, 400, "{other:?}");
    }
}
