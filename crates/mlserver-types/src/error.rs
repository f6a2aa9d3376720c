//! Errors raised while validating or converting tensors.

use crate::Datatype;

/// A tensor that does not agree with itself or with what was asked of it.
/// Always the client's fault: the server maps these to 400.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    #[error("tensor '{name}': shape {shape:?} needs {expected} elements but data has {actual}")]
    ElementCount {
        name: String,
        shape: Vec<usize>,
        expected: usize,
        actual: usize,
    },
    #[error("tensor '{name}': shape {shape:?} overflows the element count")]
    ShapeOverflow { name: String, shape: Vec<usize> },
    #[error("tensor '{name}' is declared {datatype} but holds {data} data")]
    DatatypeMismatch {
        name: String,
        datatype: Datatype,
        data: Datatype,
    },
    #[error("tensor '{name}' is {datatype}, not {requested}")]
    WrongType {
        name: String,
        datatype: Datatype,
        requested: Datatype,
    },
    #[error("binary data: {0}")]
    Binary(String),
    #[error("{0}")]
    Invalid(String),
}

/// A codec that cannot decode or encode what it was given (MLServer's
/// `CodecError`, `InputsNotFound`, `OutputNotFound`; all 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Tensor(#[from] TensorError),
    #[error("codec '{codec}' cannot handle tensor '{name}': {reason}")]
    Unsupported {
        codec: &'static str,
        name: String,
        reason: String,
    },
    #[error("input '{0}' not found in the request")]
    InputNotFound(String),
    #[error("{0}")]
    Invalid(String),
}
