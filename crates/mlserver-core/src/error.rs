//! The data plane's error: a runtime's, or the server's own.

use mlserver_runtime::{ErrorStatus, MLServerError};
use mlserver_types::{CodecError, TensorError};

/// Everything that can fail a request to the data plane: the server's own
/// errors (lookups, readiness, a body a transport could not read) and a
/// runtime's [`MLServerError`]. Each transport maps [`ServingError::status`]
/// to its status codes in one place.
///
/// Messages that clients match on keep MLServer's wording.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ServingError {
    /// No model of that name.
    #[error("Model {0} not found")]
    ModelNotFound(String),
    /// The model has no such version.
    #[error("Model {name} with version {version} not found")]
    ModelVersionNotFound {
        /// The model.
        name: String,
        /// The version asked for.
        version: String,
    },
    /// The model is loading or unloaded.
    #[error("Model {0} is not ready yet.")]
    ModelNotReady(String),
    /// The model's last load failed.
    #[error("Model {name} is not ready yet. Its last load failed: {reason}")]
    ModelLoadFailed {
        /// The model.
        name: String,
        /// Why the load failed.
        reason: String,
    },
    /// A request a transport could not decode, or that does not fit the
    /// model's declared inputs.
    #[error("{0}")]
    BadRequest(String),
    /// A request over the configured size limit.
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The inference did not finish within its time (the model's
    /// `inference_timeout`, or the client's deadline); it was cancelled.
    #[error("{0}")]
    DeadlineExceeded(String),
    /// The server is shutting down and cut the request short.
    #[error("{0}")]
    ShuttingDown(String),
    /// The runtime's own error.
    #[error(transparent)]
    Runtime(#[from] MLServerError),
}

impl ServingError {
    /// MLServer's status for each error (`mlserver/errors.py`).
    pub fn status(&self) -> ErrorStatus {
        match self {
            ServingError::ModelNotFound(_) | ServingError::ModelVersionNotFound { .. } => {
                ErrorStatus::NotFound
            }
            ServingError::ModelNotReady(_)
            | ServingError::ModelLoadFailed { .. }
            | ServingError::BadRequest(_) => ErrorStatus::BadRequest,
            ServingError::PayloadTooLarge(_) => ErrorStatus::PayloadTooLarge,
            ServingError::DeadlineExceeded(_) => ErrorStatus::DeadlineExceeded,
            ServingError::ShuttingDown(_) => ErrorStatus::Unavailable,
            ServingError::Runtime(e) => e.status(),
        }
    }

    /// The error for a version lookup, or a name lookup when `version` is `None`.
    pub fn not_found(name: &str, version: Option<&str>) -> Self {
        match version {
            Some(v) => ServingError::ModelVersionNotFound {
                name: name.into(),
                version: v.into(),
            },
            None => ServingError::ModelNotFound(name.into()),
        }
    }

    /// A request that cannot be served as sent.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ServingError::BadRequest(msg.into())
    }

    /// A failure of the server itself.
    pub fn internal(msg: impl Into<String>) -> Self {
        ServingError::Runtime(MLServerError::internal(msg))
    }

    /// Whether the error is a failed model or version lookup.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            ServingError::ModelNotFound(_) | ServingError::ModelVersionNotFound { .. }
        )
    }
}

impl From<CodecError> for ServingError {
    fn from(e: CodecError) -> Self {
        ServingError::BadRequest(e.to_string())
    }
}

impl From<TensorError> for ServingError {
    fn from(e: TensorError) -> Self {
        ServingError::BadRequest(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_mlserver_wording_and_status() {
        let e = ServingError::not_found("m", None);
        assert_eq!(e.to_string(), "Model m not found");
        assert_eq!(e.status().http_code(), 404);
        let e = ServingError::not_found("m", Some("2"));
        assert_eq!(e.to_string(), "Model m with version 2 not found");
        let e = ServingError::ModelNotReady("m".into());
        assert_eq!(e.to_string(), "Model m is not ready yet.");
        assert_eq!(e.status().http_code(), 400);
        let e = ServingError::from(MLServerError::with_status(403, "no"));
        assert_eq!(e.to_string(), "no");
        assert_eq!(e.status().http_code(), 403);
    }
}
