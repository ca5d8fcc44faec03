//! The authorization layer of the API router, inside authentication:
//! impersonation first (the request then acts as the impersonated user),
//! then the request as [`RequestInfo`] against the authorizers; 403 with
//! upstream's message when none allows it.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::Authorization;
use crate::auth::impersonation;
use crate::auth::request_info::RequestInfo;
use crate::auth::user::UserInfo;
use crate::registry::error::ApiError;

/// Authorizes the request as the user authentication put in its
/// extensions (replaced by the impersonated one, if any).
pub async fn layer(
    State(authz): State<Arc<Authorization>>,
    mut request: Request,
    next: Next,
) -> Response {
    if impersonation::requested(request.headers()) {
        let Some(real) = request.extensions().get::<UserInfo>() else {
            return ApiError::unauthorized().into_response();
        };
        match impersonation::impersonate(&authz, real, request.headers()) {
            Ok(user) => {
                request.extensions_mut().insert(user);
            }
            Err(error) => return error.into_response(),
        }
    }
    let Some(user) = request.extensions().get::<UserInfo>() else {
        // Authentication runs first and always leaves a user (or 401s).
        return ApiError::unauthorized().into_response();
    };
    let info = RequestInfo::new(
        request.method(),
        request.uri().path(),
        request.uri().query(),
    );
    if let Err(error) = authz.check(user, &info) {
        return error.into_response();
    }
    next.run(request).await
}
