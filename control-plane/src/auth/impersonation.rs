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

/// Whether the request asks to impersonate anyone (cheap: most do not).
pub fn requested(headers: &HeaderMap) -> bool {
    headers.contains_key(USER)
        || headers.contains_key(GROUP)
        || headers.contains_key(UID)
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

fn values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers.get_all(name).iter().filter_map(|v| v.to_str().ok())
}

/// The user `real` acts as, checking each impersonation with `authz`;
/// 400 for groups without a user, 403 for what `real` may not
/// impersonate (upstream's wording).
pub fn impersonate(
    authz: &Authorization,
    real: &UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let Some(name) = values(headers, USER).next().map(str::to_string) else {
        return Err(ApiError::bad_request(
            "requested impersonation without impersonating a user",
        ));
    };
    let check = |request: RequestInfo| -> Result<(), ApiError> { authz.check(real, &request) };
    let requested_groups: Vec<String> = values(headers, GROUP).map(str::to_string).collect();
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
        check(acting_as("groups", "", "", &group, ""))?;
        user.groups.push(group);
    }
    if let Some(uid) = values(headers, UID).next() {
        check(acting_as("uids", "authentication.k8s.io", "", uid, ""))?;
        user.uid = uid.to_string();
    }
    for (key, value) in headers.iter() {
        let Some(extra) = key.as_str().strip_prefix(EXTRA_PREFIX) else {
            continue;
        };
        let Ok(value) = value.to_str() else {
            continue;
        };
        let extra = crate::api::query::decode(extra).unwrap_or_else(|| extra.to_string());
        check(acting_as(
            "userextras",
            "authentication.k8s.io",
            "",
            value,
            &extra,
        ))?;
        user.extra.entry(extra).or_default().push(value.to_string());
    }
    let everyone = if user.name == ANONYMOUS {
        UNAUTHENTICATED
    } else {
        AUTHENTICATED
    };
    if !user.in_group(everyone) {
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
}
