//! API errors on the wire: a registry [`ApiError`] answers with its
//! `Status` body and HTTP code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use crate::registry::error::ApiError;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            code,
            [("content-type", "application/json")],
            self.status().to_string(),
        )
            .into_response()
    }
}

/// Result of API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
