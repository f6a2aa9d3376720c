//! The error a runtime returns, and the status class every layer maps to
//! HTTP and gRPC.

use mlserver_types::{CodecError, TensorError};

/// What a runtime can say went wrong, as MLServer's `mlserver.errors` lets a
/// Python model say it: the request was bad, inference failed, the model
/// cannot serve right now, something broke, or a status the model chose.
/// The server adds its own errors (model not found, not ready, body too
/// large) on top, and maps every one to HTTP and gRPC status in each
/// transport, once.
///
/// Codec and tensor errors convert into [`MLServerError::BadRequest`], so
/// `?` works on `as_slice`, `Tensor::new` and the codecs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MLServerError {
    /// The request does not fit the model (HTTP 400, gRPC INVALID_ARGUMENT).
    #[error("{0}")]
    BadRequest(String),
    /// The runtime rejected the request (MLServer's `InferenceError`; HTTP
    /// 400, gRPC INVALID_ARGUMENT).
    #[error("{0}")]
    Inference(String),
    /// Temporarily unable to serve: a backend restarting, shutting down
    /// (HTTP 503, gRPC UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
    /// The runtime failed: a panic, a bug (HTTP 500, gRPC INTERNAL).
    #[error("{0}")]
    Internal(String),
    /// The process running the request died (a crash, an OOM kill) and is
    /// being replaced: HTTP 500, gRPC UNAVAILABLE (worth retrying).
    #[error("{0}")]
    WorkerLost(String),
    /// A status the model chose, as MLServer lets one with
    /// `MLServerError(msg, status_code=403)`: that HTTP code over REST; over
    /// gRPC, MLServer's mapping (400, 404, 422, 500 as the classes above,
    /// anything else UNKNOWN).
    #[error("{message}")]
    WithStatus {
        /// The HTTP status code (400 to 599).
        code: u16,
        /// What the client reads.
        message: String,
    },
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
    /// HTTP 504, gRPC DEADLINE_EXCEEDED: the inference took too long.
    DeadlineExceeded,
    /// Any other HTTP code a model chose; gRPC UNKNOWN.
    Other(u16),
}

impl ErrorStatus {
    /// The HTTP status code of the class.
    pub fn http_code(self) -> u16 {
        match self {
            ErrorStatus::BadRequest => 400,
            ErrorStatus::NotFound => 404,
            ErrorStatus::PayloadTooLarge => 413,
            ErrorStatus::Unprocessable => 422,
            ErrorStatus::Internal => 500,
            ErrorStatus::Unavailable => 503,
            ErrorStatus::WorkerLost => 500,
            ErrorStatus::DeadlineExceeded => 504,
            ErrorStatus::Other(code) => code,
        }
    }
}

impl MLServerError {
    /// The error's status class.
    pub fn status(&self) -> ErrorStatus {
        match self {
            MLServerError::BadRequest(_) | MLServerError::Inference(_) => ErrorStatus::BadRequest,
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
                504 => ErrorStatus::DeadlineExceeded,
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

    /// The runtime's own rejection of a request (MLServer's `InferenceError`).
    pub fn inference(msg: impl Into<String>) -> Self {
        MLServerError::Inference(msg.into())
    }

    /// A request that does not fit the model.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        MLServerError::BadRequest(msg.into())
    }

    /// A failure of the runtime itself.
    pub fn internal(msg: impl Into<String>) -> Self {
        MLServerError::Internal(msg.into())
    }

    /// The runtime cannot serve right now.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        MLServerError::Unavailable(msg.into())
    }
}

impl From<CodecError> for MLServerError {
    fn from(e: CodecError) -> Self {
        MLServerError::BadRequest(e.to_string())
    }
}

impl From<TensorError> for MLServerError {
    fn from(e: TensorError) -> Self {
        MLServerError::BadRequest(e.to_string())
    }
}

/// A runtime that registers a metric badly (a clash with a built-in name, an
/// invalid name) fails its load with the reason.
impl From<mlserver_metrics::MetricsError> for MLServerError {
    fn from(e: mlserver_metrics::MetricsError) -> Self {
        MLServerError::Internal(format!("metrics: {e}"))
    }
}

/// MLServer's `InvalidModelURI` (422), from [`crate::ModelContext::model_uri`].
impl From<mlserver_settings::InvalidModelUri> for MLServerError {
    fn from(e: mlserver_settings::InvalidModelUri) -> Self {
        MLServerError::with_status(
            422,
            format!("Invalid URI specified for model {} ({})", e.name, e.uri),
        )
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
    fn classes_and_chosen_statuses() {
        assert_eq!(MLServerError::inference("x").status().http_code(), 400);
        assert_eq!(MLServerError::unavailable("x").status().http_code(), 503);
        assert_eq!(
            MLServerError::WorkerLost("x".into()).status().http_code(),
            500
        );
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
        let e = MLServerError::from(mlserver_settings::InvalidModelUri {
            name: "m".into(),
            uri: "/x".into(),
        });
        assert_eq!(e.status().http_code(), 422);
        assert_eq!(e.to_string(), "Invalid URI specified for model m (/x)");
    }
}
