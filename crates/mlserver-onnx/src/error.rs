//! What can go wrong loading or running an ONNX model, and its status.

use mlserver_runtime::MLServerError;

/// Errors of the ONNX runtime. Request errors ([`OnnxError::BadInput`]) are
/// the client's (400); everything else is the model's or the server's.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OnnxError {
    /// The model file could not be read, or no ONNX file was found.
    #[error("could not read {path}: {message}")]
    Read {
        /// The file or folder looked at.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The file is not an ONNX model, or its graph's signature cannot be
    /// served over the V2 protocol.
    #[error("{0}")]
    Signature(String),
    /// `parameters.extra` or the declared inputs/outputs do not fit the graph.
    #[error("{0}")]
    Settings(String),
    /// An engine could not load or optimise the graph (often: an operator it
    /// does not implement).
    #[error("{engine} could not load the model: {message}")]
    EngineLoad {
        /// The engine (`"tract"` or `"onnxruntime"`).
        engine: &'static str,
        /// The engine's error.
        message: String,
    },
    /// The request does not fit the graph's signature, or holds data the
    /// engine cannot take.
    #[error("{0}")]
    BadInput(String),
    /// The engine failed on a request that passed validation.
    #[error("{engine} failed to run the model: {message}")]
    Run {
        /// The engine (`"tract"` or `"onnxruntime"`).
        engine: &'static str,
        /// The engine's error.
        message: String,
    },
}

impl From<OnnxError> for MLServerError {
    fn from(e: OnnxError) -> Self {
        match e {
            OnnxError::BadInput(m) => MLServerError::BadRequest(m),
            other => MLServerError::Internal(other.to_string()),
        }
    }
}
