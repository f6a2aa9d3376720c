//! The one error type of the data plane, and its status class.

use mlserver_types::{binary::BinaryError, CodecError, TensorError};

/// Everything that can go wrong serving a model. Runtimes return it from
/// `load` and `predict`; the server maps [`MLServerError::status`] to HTTP
/// and gRPC status codes in exactly one place.
///
/// Messages that clients match on keep MLServer's wording.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MLServerError {
    #[error("Model {0} not found")]
    ModelNotFound(String),
    #[error("Model {name} with version {version} not found")]
    ModelVersionNotFound { name: String, version: String },
    #[error("Model {0} is not ready yet.")]
    ModelNotReady(String),
    #[error("Model {name} is not ready yet. Its last load failed: {reason}")]
    ModelLoadFailed { name: String, reason: String },
    #[error("Invalid URI specified for model {name} ({uri})")]
    InvalidModelUri { name: String, uri: String },
    /// The request is malformed or does not fit the model.
    #[error("{0}")]
    BadRequest(String),
    /// The runtime rejected the request (MLServer's `InferenceError`, 400).
    #[error("{0}")]
    Inference(String),
    #[error("{0}")]
    Codec(#[from] CodecError),
    #[error("{0}")]
    Tensor(#[from] TensorError),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The server or a runtime failed (a panic, a bug, a dead worker).
    #[error("{0}")]
    Internal(String),
    /// Temporarily unable to serve (shutting down, a worker restarting).
    #[error("{0}")]
    Unavailable(String),
    /// The worker process running the request died (a crash, an OOM kill);
    /// it is being replaced. HTTP 500, gRPC UNAVAILABLE (worth retrying).
    #[error("{0}")]
    WorkerLost(String),
    /// A status the model chose, as MLServer lets one with
    /// `MLServerError(msg, status_code=403)`: that HTTP code over REST; over
    /// gRPC, MLServer's mapping (400, 404, 422, 500 as the classes above,
    /// anything else UNKNOWN).
    #[error("{message}")]
    WithStatus { code: u16, message: String },
}

/// The class of an error, which decides its HTTP and gRPC status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStatus {
    /// HTTP 400, gRPC INVALID_ARGUMENT.
    BadRequest,
    /// HTTP 404, gRPC NOT_FOUND.
    NotFound,
    /// HTTP 413, gRPC RESOURCE_EXHAUSTED.
    PayloadTooLarge,
    /// HTTP 422, gRPC FAILED_PRECONDITION.
    Unprocessable,
    /// HTTP 500, gRPC INTERNAL.
    Internal,
    /// HTTP 503, gRPC UNAVAILABLE.
    Unavailable,
    /// HTTP 500, gRPC UNAVAILABLE: the request died with its worker.
    WorkerLost,
    /// Any other HTTP code a model chose; gRPC UNKNOWN.
    Other(u16),
}

impl ErrorStatus {
    pub fn http_code(self) -> u16 {
        match self {
            ErrorStatus::BadRequest => 400,
            ErrorStatus::NotFound => 404,
            ErrorStatus::PayloadTooLarge => 413,
            ErrorStatus::Unprocessable => 422,
            ErrorStatus::Internal => 500,
            ErrorStatus::Unavailable => 503,
            ErrorStatus::WorkerLost => 500,
            ErrorStatus::Other(code) => code,
        }
    }
}

impl MLServerError {
    /// MLServer's status for each error (`mlserver/errors.py`).
    pub fn status(&self) -> ErrorStatus {
        match self {
            MLServerError::ModelNotFound(_) | MLServerError::ModelVersionNotFound { .. } => {
                ErrorStatus::NotFound
            }
            MLServerError::ModelNotReady(_)
            | MLServerError::ModelLoadFailed { .. }
            | MLServerError::BadRequest(_)
            | MLServerError::Inference(_)
            | MLServerError::Codec(_)
            | MLServerError::Tensor(_) => ErrorStatus::BadRequest,
            MLServerError::InvalidModelUri { .. } => ErrorStatus::Unprocessable,
            MLServerError::PayloadTooLarge(_) => ErrorStatus::PayloadTooLarge,
            MLServerError::Internal(_) => ErrorStatus::Internal,
            MLServerError::Unavailable(_) => ErrorStatus::Unavailable,
            MLServerError::WorkerLost(_) => ErrorStatus::WorkerLost,
            MLServerError::WithStatus { code, .. } => match code {
                400 => ErrorStatus::BadRequest,
                404 => ErrorStatus::NotFound,
                413 => ErrorStatus::PayloadTooLarge,
                422 => ErrorStatus::Unprocessable,
                500 => ErrorStatus::Internal,
                503 => ErrorStatus::Unavailable,
                // Only real error codes: anything else is the model's bug.
                code @ 400..=599 => ErrorStatus::Other(*code),
                _ => ErrorStatus::Internal,
            },
        }
    }

    /// An error with a status the model chose (MLServer's `status_code`).
    pub fn with_status(code: u16, message: impl Into<String>) -> Self {
        MLServerError::WithStatus {
            code,
            message: message.into(),
        }
    }

    /// Shorthand for a runtime's own rejection of a request.
    pub fn inference(msg: impl Into<String>) -> Self {
        MLServerError::Inference(msg.into())
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        MLServerError::BadRequest(msg.into())
    }

    pub fn internal(msg: impl Into<String>) -> Self {
        MLServerError::Internal(msg.into())
    }

    /// The error for a version lookup, or a name lookup when `version` is `None`.
    pub fn not_found(name: &str, version: Option<&str>) -> Self {
        match version {
            Some(v) => MLServerError::ModelVersionNotFound {
                name: name.into(),
                version: v.into(),
            },
            None => MLServerError::ModelNotFound(name.into()),
        }
    }
}

/// A runtime that registers a metric badly (a clash with a built-in name, an
/// invalid name) fails its load with the reason.
impl From<mlserver_metrics::MetricsError> for MLServerError {
    fn from(e: mlserver_metrics::MetricsError) -> Self {
        MLServerError::Internal(format!("metrics: {e}"))
    }
}

impl From<BinaryError> for MLServerError {
    fn from(e: BinaryError) -> Self {
        MLServerError::BadRequest(e.to_string())
    }
}

impl From<mlserver_settings::InvalidModelUri> for MLServerError {
    fn from(e: mlserver_settings::InvalidModelUri) -> Self {
        MLServerError::InvalidModelUri {
            name: e.name,
            uri: e.uri,
        }
    }
}

/// The message of a caught panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_mlserver_wording_and_status() {
        let e = MLServerError::not_found("m", None);
        assert_eq!(e.to_string(), "Model m not found");
        assert_eq!(e.status().http_code(), 404);
        let e = MLServerError::not_found("m", Some("2"));
        assert_eq!(e.to_string(), "Model m with version 2 not found");
        let e = MLServerError::ModelNotReady("m".into());
        assert_eq!(e.to_string(), "Model m is not ready yet.");
        assert_eq!(e.status().http_code(), 400);
        let e = MLServerError::InvalidModelUri {
            name: "m".into(),
            uri: "/x".into(),
        };
        assert_eq!(e.status().http_code(), 422);
        assert_eq!(e.to_string(), "Invalid URI specified for model m (/x)");
        assert_eq!(
            MLServerError::with_status(403, "no").status().http_code(),
            403
        );
        assert_eq!(
            MLServerError::with_status(422, "no").status(),
            ErrorStatus::Unprocessable
        );
        assert_eq!(
            MLServerError::with_status(200, "no").status(),
            ErrorStatus::Internal
        );
    }
}
