//! The one mapping from [`ServingError`] to a gRPC status (MLServer's:
//! 400 INVALID_ARGUMENT, 404 NOT_FOUND, 422 FAILED_PRECONDITION, 500
//! INTERNAL; plus 413 RESOURCE_EXHAUSTED and 503 UNAVAILABLE).

use mlserver_core::ServingError;
use mlserver_runtime::ErrorStatus;
use tonic::{Code, Status};

/// The gRPC status of an error: its code by the error's class, its
/// message the error's.
pub fn to_status(e: ServingError) -> Status {
    let code = match e.status() {
        ErrorStatus::BadRequest => Code::InvalidArgument,
        ErrorStatus::NotFound => Code::NotFound,
        ErrorStatus::Unprocessable => Code::FailedPrecondition,
        ErrorStatus::PayloadTooLarge => Code::ResourceExhausted,
        ErrorStatus::Internal => Code::Internal,
        ErrorStatus::Unavailable | ErrorStatus::WorkerLost => Code::Unavailable,
        ErrorStatus::DeadlineExceeded => Code::DeadlineExceeded,
        // MLServer's STATUS_CODE_MAPPING has no entry for it.
        ErrorStatus::Other(_) => Code::Unknown,
    };
    if code == Code::Internal {
        tracing::error!("{e}");
    } else {
        tracing::debug!("gRPC request failed with {code:?}: {e}");
    }
    Status::new(code, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlserver_runtime::MLServerError;

    #[test]
    fn codes_follow_the_error_class() {
        let code = |e: ServingError| to_status(e).code();
        assert_eq!(code(ServingError::not_found("m", None)), Code::NotFound);
        assert_eq!(
            code(ServingError::ModelNotReady("m".into())),
            Code::InvalidArgument
        );
        assert_eq!(
            code(MLServerError::with_status(422, "bad uri").into()),
            Code::FailedPrecondition
        );
        assert_eq!(code(ServingError::internal("x")), Code::Internal);
        assert_eq!(
            code(MLServerError::with_status(403, "no").into()),
            Code::Unknown
        );
        assert_eq!(
            code(MLServerError::WorkerLost("gone".into()).into()),
            Code::Unavailable
        );
        assert_eq!(
            code(MLServerError::unavailable("x").into()),
            Code::Unavailable
        );
        assert_eq!(
            to_status(ServingError::not_found("m", Some("2"))).message(),
            "Model m with version 2 not found"
        );
    }
}
