//! Impersonation (`kubectl --as=jane --as-group=g`): upstream's
//! `Impersonate-User`, `Impersonate-Group`, `Impersonate-Uid` and
//! `Impersonate-Extra-*` headers make the request act as another user,
//! when the real one may `impersonate` that user (or ServiceAccount),
//! each group, the uid and each extra.

use axum::http::HeaderMap;

use super::authz::Authorization;
use super::request_info::RequestInfo;
use super::user::{ANONYMOUS, AUTHENTICATED, SERVICE_ACCOUNTS, UNAUTHENTICATED, UserInfo};
use crate::registry::error::ApiError;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// The first value of `name`, unless it is empty: upstream reads an empty
/// `Impersonate-User` or `Impersonate-Uid` as not sent.
fn first<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get(name)
        .map(|v| v.as_bytes())
        .filter(|v| !v.is_empty())
}

/// Whether the request asks to impersonate anyone (cheap: most do not).
pub fn requested(headers: &HeaderMap) -> bool {
    first(headers, USER).is_some()
        || headers.contains_key(GROUP)
        || first(headers, UID).is_some()
        || headers.keys().any(|k| k.as_str().starts_with(EXTRA_PREFIX))
}

/// The attributes of one `impersonate` check.
fn acting_as(resource: &str, group: &str, namespace: &str, name: &str, sub: &str) -> RequestInfo {
    RequestInfo {
        is_resource_request: true,
        verb: "impersonate".to_string(),
        api_group: group.to_string(),
        namespace: namespace.to_string(),
        resource: resource.to_string(),
        subresource: sub.to_string(),
        name: name.to_string(),
        ..RequestInfo::default()
    }
}

/// A header value as text: UTF-8, as Go's server hands upstream the bytes;
/// anything else is refused rather than skipped, so that no group or
/// extra silently goes missing from the user a request acts as.
fn text<'a>(name: &str, value: &'a [u8]) -> Result<&'a str, ApiError> {
    std::str::from_utf8(value)
        .map_err(|_| ApiError::bad_request(format!("invalid {name} header: not UTF-8 text")))
}

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Result<Vec<&'a str>, ApiError> {
    headers
        .get_all(name)
        .iter()
        .map(|v| text(name, v.as_bytes()))
        .collect()
}

/// The user `real` acts as, checking each impersonation with `authz`;
/// 400 for groups without a user, 403 for what `real` may not
/// impersonate (upstream's wording).
pub fn impersonate(
    authz: &Authorization,
    real: &UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let Some(name) = first(headers, USER) else {
        return Err(ApiError::bad_request(
            "requested impersonation without impersonating a user",
        ));
    };
    let name = text(USER, name)?.to_string();
    let check = |request: RequestInfo| -> Result<(), ApiError> { authz.check(real, &request) };
    let requested_groups = values(headers, GROUP)?;
    let mut user = UserInfo {
        name: name.clone(),
        ..UserInfo::default()
    };
    let account = user
        .service_account()
        .map(|(ns, name)| (ns.to_string(), name.to_string()));
    match account {
        Some((namespace, account)) => {
            check(acting_as("serviceaccounts", "", &namespace, &account, ""))?;
            if requested_groups.is_empty() {
                user.groups = vec![
                    SERVICE_ACCOUNTS.to_string(),
                    format!("{SERVICE_ACCOUNTS}:{namespace}"),
                ];
            }
        }
        None => check(acting_as("users", "", "", &name, ""))?,
    }
    for group in requested_groups {
        check(acting_as("groups", "", "", group, ""))?;
        user.groups.push(group.to_string());
    }
    if let Some(uid) = first(headers, UID) {
        let uid = text(UID, uid)?;
        check(acting_as("uids", "authentication.k8s.io", "", uid, ""))?;
        user.uid = uid.to_string();
    }
    for (key, value) in headers.iter() {
        let Some(extra) = key.as_str().strip_prefix(EXTRA_PREFIX) else {
            continue;
        };
        let value = text(key.as_str(), value.as_bytes())?;
        let extra = crate::percent_encoding::decode(extra).unwrap_or_else(|| extra.to_string());
        check(acting_as(
            "userextras",
            "authentication.k8s.io",
            "",
            value,
            &extra,
        ))?;
        user.extra.entry(extra).or_default().push(value.to_string());
    }
    // Upstream's rule: an impersonated user is in system:authenticated
    // unless it was put in system:unauthenticated (or is anonymous, which
    // is always unauthenticated).
    let (everyone, unless) = if user.name == ANONYMOUS {
        (UNAUTHENTICATED, UNAUTHENTICATED)
    } else {
        (AUTHENTICATED, UNAUTHENTICATED)
    };
    if !user.in_group(everyone) && !user.in_group(unless) {
        user.groups.push(everyone.to_string());
    }
    Ok(user)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::auth::authz::Mode;
    use crate::auth::user::MASTERS;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().expect("value"));
        }
        h
    }

    #[test]
    fn masters_act_as_anyone_and_others_are_refused_as_upstream() {
        let authz = Authorization::new(&[Mode::Rbac], Arc::default());
        let root = UserInfo::authenticated("root", &[MASTERS]);
        let h = headers(&[("impersonate-user", "jane"), ("impersonate-group", "devs")]);
        assert!(requested(&h));
        let jane = impersonate(&authz, &root, &h).expect("allowed");
        assert_eq!(
            (jane.name.as_str(), jane.groups.clone()),
            ("jane", vec!["devs".to_string(), AUTHENTICATED.to_string()])
        );
        let sa = impersonate(
            &authz,
            &root,
            &headers(&[("impersonate-user", "system:serviceaccount:lab:robot")]),
        )
        .expect("allowed");
        assert_eq!(
            sa.groups,
            [
                "system:serviceaccounts",
                "system:serviceaccounts:lab",
                AUTHENTICATED
            ]
        );
        let error =
            impersonate(&authz, &UserInfo::authenticated("joe", &[]), &h).expect_err("refused");
        assert_eq!(
            error.message,
            "users \"jane\" is forbidden: User \"joe\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope"
        );
        assert_eq!(
            impersonate(&authz, &root, &headers(&[("impersonate-group", "g")]))
                .expect_err("no user")
                .code,
            400
        );
        assert!(!requested(&HeaderMap::new()));
    }

    #[test]
    fn an_empty_user_is_no_impersonation_and_bad_text_is_400() {
        let authz = Authorization::new(&[Mode::Rbac], Arc::default());
        let root = UserInfo::authenticated("root", &[MASTERS]);
        // As upstream: an empty Impersonate-User (or -Uid) is not sent.
        assert!(!requested(&headers(&[("impersonate-user", "")])));
        assert!(!requested(&headers(&[("impersonate-uid", "")])));
        // With anything else it is impersonation without a user: 400, not
        // a user with no name.
        for extra in [("impersonate-uid", "u1"), ("impersonate-extra-scopes", "x")] {
            let h = headers(&[("impersonate-user", ""), extra]);
            assert!(requested(&h));
            assert_eq!(
                impersonate(&authz, &root, &h).expect_err("no user").code,
                400
            );
        }
        // A group that is not text is refused, not dropped.
        let mut h = headers(&[("impersonate-user", "jane")]);
        h.append(
            GROUP,
            axum::http::HeaderValue::from_bytes(b"\xff").expect("obs-text"),
        );
        assert_eq!(
            impersonate(&authz, &root, &h).expect_err("bad group").code,
            400
        );
        // UTF-8 names are names, as upstream reads the header's bytes.
        let mut h = HeaderMap::new();
        h.append(
            USER,
            axum::http::HeaderValue::from_bytes("jané".as_bytes()).expect("obs-text"),
        );
        assert_eq!(
            impersonate(&authz, &root, &h).expect("allowed").name,
            "jané"
        );
        // system:unauthenticated asked for keeps system:authenticated out.
        let h = headers(&[
            ("impersonate-user", "jane"),
            ("impersonate-group", "system:unauthenticated"),
        ]);
        assert_eq!(
            impersonate(&authz, &root, &h).expect("allowed").groups,
            ["system:unauthenticated"]
        );
    }
}
