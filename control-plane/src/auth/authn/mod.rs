//! Authentication: a request's credentials to a [`UserInfo`], or 401.
//!
//! Upstream's union of authenticators, in its order: a client
//! certificate the TLS layer verified against the cluster CA, then a
//! bearer token (the static token file's, then a ServiceAccount token); a
//! token that is presented but unknown is 401. Requests
//! without credentials are 401, except the health checks, which anyone may
//! ask as `system:anonymous` (upstream's anonymous access limited to
//! `/healthz`, `/livez` and `/readyz`).

pub mod bound_objects;
pub mod service_account;
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

/// The client certificate of a request's connection, put into every
/// request's extensions by the TLS server ([`crate::api::serve`]).
#[derive(Debug, Clone, Default)]
pub enum PeerCertificate {
    /// The client presented none.
    #[default]
    None,
    /// A certificate the CA issued, naming this user.
    User(Arc<UserInfo>),
    /// A CA-issued certificate without a usable subject (no common name).
    Unusable,
}

impl PeerCertificate {
    /// From the verified chain of a TLS connection (leaf first).
    pub fn of(chain: Option<&[rustls::pki_types::CertificateDer<'_>]>) -> Self {
        let Some(leaf) = chain.and_then(|c| c.first()) else {
            return Self::None;
        };
        match skiff_pki::identity::subject(leaf) {
            Ok(subject) => {
                let groups: Vec<&str> = subject.groups.iter().map(String::as_str).collect();
                Self::User(Arc::new(UserInfo::authenticated(subject.name, &groups)))
            }
            Err(e) => {
                tracing::debug!(error = %e, "client certificate without a user");
                Self::Unusable
            }
        }
    }
}

/// What a request without any credentials is.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Unauthenticated {
    /// 401, except the health checks (anonymous).
    #[default]
    Refused,
    /// The cluster's admin: only for an API served in-process to a
    /// benchmark on loopback, where there is no one else to ask.
    Admin,
}

/// The configured authenticators.
#[derive(Debug, Default, Clone)]
pub struct Authenticator {
    /// Static bearer tokens.
    pub tokens: token_file::TokenFile,
    /// ServiceAccount tokens, where the control plane signs them.
    pub service_accounts: Option<service_account::ServiceAccountTokens>,
    /// Requests without credentials.
    pub unauthenticated: Unauthenticated,
}

/// Paths anyone may ask without credentials (upstream's anonymous
/// health checks).
fn is_health_check(path: &str) -> bool {
    ["/healthz", "/livez", "/readyz"].iter().any(|p| {
        path.strip_prefix(p)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
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
    /// Authenticates a request by its connection's certificate and its
    /// headers.
    pub async fn authenticate(&self, peer: &PeerCertificate, headers: &HeaderMap) -> Outcome {
        match peer {
            PeerCertificate::User(user) => return Outcome::User(user.as_ref().clone()),
            PeerCertificate::Unusable => return Outcome::Rejected,
            PeerCertificate::None => {}
        }
        let Some(token) = bearer_token(headers) else {
            return Outcome::NoCredentials;
        };
        if let Some(user) = self.tokens.user(token) {
            return Outcome::User(user.clone());
        }
        let Some(accounts) = &self.service_accounts else {
            return Outcome::Rejected;
        };
        match accounts.user(token, chrono::Utc::now().timestamp()).await {
            Ok(user) => Outcome::User(user),
            Err(e) => {
                tracing::debug!(error = %e, "bearer token refused");
                Outcome::Rejected
            }
        }
    }
}

impl Authenticator {
    /// What a TokenReview learns of `token`: its user and those of
    /// `audiences` (the API's own when empty) it is valid for, or why it
    /// is not valid. Static tokens hold no audience: they are valid for
    /// the API's own audiences only, as upstream's audience-agnostic
    /// authenticators.
    pub async fn review(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(UserInfo, Vec<String>), String> {
        let implicit: &[String] = self
            .service_accounts
            .as_ref()
            .map_or(audiences, |a| a.api_audiences());
        let target = if audiences.is_empty() {
            implicit
        } else {
            audiences
        };
        if let Some(user) = self.tokens.user(token) {
            let valid_for: Vec<String> = target
                .iter()
                .filter(|a| implicit.contains(a))
                .cloned()
                .collect();
            return if valid_for.is_empty() {
                Err(String::new())
            } else {
                Ok((user.clone(), valid_for))
            };
        }
        let Some(accounts) = &self.service_accounts else {
            return Err(String::new());
        };
        accounts
            .user_for(token, chrono::Utc::now().timestamp(), target)
            .await
            .map_err(|e| format!("[invalid bearer token, {e}]"))
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme
/// case-insensitive, as upstream's bearer-token authenticator).
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
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
    let peer = request
        .extensions()
        .get::<PeerCertificate>()
        .cloned()
        .unwrap_or_default();
    let user = match authenticator.authenticate(&peer, request.headers()).await {
        Outcome::User(user) => user,
        Outcome::NoCredentials => match authenticator.unauthenticated {
            Unauthenticated::Admin => UserInfo::authenticated("system:admin", &[MASTERS]),
            Unauthenticated::Refused if is_health_check(request.uri().path()) => {
                UserInfo::anonymous()
            }
            Unauthenticated::Refused => {
                tracing::debug!(path = request.uri().path(), "no credentials");
                return ApiError::unauthorized().into_response();
            }
        },
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

    #[tokio::test]
    async fn a_known_token_is_its_user_and_an_unknown_one_is_rejected() {
        let a = Authenticator {
            tokens: token_file::TokenFile::parse("t1,jane,1").expect("parses"),
            ..Authenticator::default()
        };
        let none = PeerCertificate::None;
        match a.authenticate(&none, &headers("Bearer t1")).await {
            Outcome::User(u) => assert_eq!(u.name, "jane"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.authenticate(&none, &headers("bearer t1")).await,
            a.authenticate(&none, &headers("Bearer t1")).await
        );
        assert_eq!(
            a.authenticate(&none, &headers("Bearer t2")).await,
            Outcome::Rejected
        );
        assert_eq!(
            a.authenticate(&none, &HeaderMap::new()).await,
            Outcome::NoCredentials
        );
        // Another scheme is not a bearer token.
        assert_eq!(
            a.authenticate(&none, &headers("Basic dDE=")).await,
            Outcome::NoCredentials
        );
    }

    #[tokio::test]
    async fn a_client_certificate_comes_before_a_token() {
        let a = Authenticator::default();
        let admin = PeerCertificate::User(Arc::new(UserInfo::authenticated("admin", &[MASTERS])));
        match a.authenticate(&admin, &headers("Bearer unknown")).await {
            Outcome::User(u) => assert!(u.in_group(MASTERS)),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            a.authenticate(&PeerCertificate::Unusable, &HeaderMap::new())
                .await,
            Outcome::Rejected
        );
    }

    #[test]
    fn only_the_health_checks_are_open_to_anyone() {
        for open in ["/healthz", "/livez", "/readyz", "/readyz/ping"] {
            assert!(is_health_check(open), "{open}");
        }
        for closed in ["/healthzz", "/api/v1/pods", "/version", "/"] {
            assert!(!is_health_check(closed), "{closed}");
        }
    }
}
