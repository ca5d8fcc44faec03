//! Who is asking, and may they: authentication turns a request's
//! credentials (a client certificate, a bearer token) into a
//! [`user::UserInfo`]; authorization decides on that user and what the
//! request does. Both run as layers of the API router, in front of every
//! handler, in upstream's order: authenticate (401), then authorize (403).
//!
//! - [`user`]: the authenticated user (name, uid, groups) and the
//!   well-known users and groups.
//! - [`authn`]: authenticators and the layer that runs them.
//! - [`certificates`]: the CA, serving and admin certificates made at start.
//! - [`request_info`]: what a request does (verb, resource, namespace).
//! - [`impersonation`]: acting as another user (`kubectl --as`).
//! - [`authz`]: authorizers (RBAC, `system:masters`), the layer that runs
//!   them, default roles and escalation prevention.
//! - [`review`]: access reviews and `whoami` (`kubectl auth`).
//! - [`token_request`]: issuing a ServiceAccount token (TokenRequest's rules).
//! - [`tokens`]: ServiceAccount tokens (ES256 JWTs) signed and verified.

pub mod authn;
pub mod authz;
pub mod certificates;
pub mod impersonation;
pub mod request_info;
pub mod review;
pub mod token_request;
pub mod tokens;
pub mod user;

#[cfg(test)]
pub(crate) mod fuzz_tests;
