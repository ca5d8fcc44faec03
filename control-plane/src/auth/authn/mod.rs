//! Authentication: a request's credentials to a [`UserInfo`], or 401.
//!
//! Upstream's union of authenticators: the first that recognises a
//! credential decides; a credential that is presented but wrong is 401
//! even if another kind would have passed.

pub mod token_file;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::user::{MASTERS, UserInfo};
use crate::registry::error::ApiError;

/// Why authentication could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// `--token-auth-file` could not be read or parsed.
    #[error("token file {path}: {why}")]
    TokenFile {
        /// The file.
        path: String,
        /// What is wrong.
        why: String,
    },
}

/// The configured authenticators.
#[derive(Debug, Default, Clone)]
pub struct Authenticator {
    /// Static bearer tokens.
    pub tokens: token_file::TokenFile,
}

/// The outcome for one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Who it is.
    User(UserInfo),
    /// No credentials were presented.
    NoCredentials,
    /// Credentials were presented and are not valid: 401.
    Rejected,
}

impl Authenticator {
    /// Authenticates a request by its headers.
    pub fn authenticate(&self, headers: &HeaderMap) -> Outcome {
        match bearer_token(headers) {
            Some(token) => match self.tokens.user(token) {
                Some(user) => Outcome::User(user.clone()),
                None => Outcome::Rejected,
            },
            None => Outcome::NoCredentials,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive, as upstream's bearer-token authenticator).
fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The layer: puts the [`UserInfo`] into the request's extensions for
/// authorization and admission, or answers 401.
pub async fn layer(
    State(authenticator): State<Arc<Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let user = match authenticator.authenticate(request.headers()) {
        Outcome::User(user) => user,
        // Plain HTTP has no client certificates yet: until the API serves
        // HTTPS, a request without credentials is the cluster's admin, as
        // every request was before authentication existed.
        Outcome::NoCredentials => UserInfo::authenticated("system:admin", &[MASTERS]),
        Outcome::Rejected => return ApiError::unauthorized().into_response(),
    };
    request.extensions_mut().insert(user);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            auth.parse().expect("header"),
        );
        h
    }

    #[test]
    fn a_known_token_is_its_user_and_an_unknown_one_is_rejected() {
        let a = Authenticator {
            tokens: token_file::TokenFile::parse("t1,jane,1").expect("parses"),
        };
        match a.authenticate(&headers("Bearer t1")) {
            Outcome::User(u) => assert_eq!(u.name, "jane"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.authenticate(&headers("bearer t1")),
            a.authenticate(&headers("Bearer t1"))
        );
        assert_eq!(a.authenticate(&headers("Bearer t2")), Outcome::Rejected);
        assert_eq!(a.authenticate(&HeaderMap::new()), Outcome::NoCredentials);
        // Another scheme is not a bearer token.
        assert_eq!(
            a.authenticate(&headers("Basic dDE=")),
            Outcome::NoCredentials
        );
    }
}
