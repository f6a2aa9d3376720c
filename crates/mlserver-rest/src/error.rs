//! The one mapping from [`ServingError`] to an HTTP response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use mlserver_core::ServingError;
use mlserver_types::ErrorResponse;

/// An error on its way out over REST: `{"error": "..."}` with MLServer's status.
#[derive(Debug)]
pub struct ApiError(pub ServingError);

impl<E: Into<ServingError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.status().http_code();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!("{}", self.0);
        } else {
            tracing::debug!("request failed with {code}: {}", self.0);
        }
        (
            status,
            Json(ErrorResponse {
                error: self.0.to_string(),
            }),
        )
            .into_response()
    }
}

/// A JSON error body with an explicit status (routing errors).
pub(crate) fn error_response(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        Json(ErrorResponse {
            error: message.into(),
        }),
    )
        .into_response()
}
