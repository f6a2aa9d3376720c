//! Errors raised while validating or converting tensors.

use crate::Datatype;

/// A tensor that does not agree with itself or with what was asked of it.
/// Always the client's fault: the server maps these to 400.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TensorError {
    /// The shape describes a different number of elements than the data holds.
    #[error("tensor '{name}': shape {shape:?} needs {expected} elements but data has {actual}")]
    ElementCount {
        /// The tensor's name.
        name: String,
        /// Its declared shape.
        shape: Vec<usize>,
        /// Elements the shape describes.
        expected: usize,
        /// Elements the data holds.
        actual: usize,
    },
    /// The product of the shape's dimensions does not fit in `usize`.
    #[error("tensor '{name}': shape {shape:?} overflows the element count")]
    ShapeOverflow {
        /// The tensor's name.
        name: String,
        /// Its declared shape.
        shape: Vec<usize>,
    },
    /// The declared datatype is not the type of the data held.
    #[error("tensor '{name}' is declared {datatype} but holds {data} data")]
    DatatypeMismatch {
        /// The tensor's name.
        name: String,
        /// The declared datatype.
        datatype: Datatype,
        /// The datatype of the data held.
        data: Datatype,
    },
    /// The elements were asked for as a type other than the tensor's own.
    #[error("tensor '{name}' is {datatype}, not {requested}")]
    WrongType {
        /// The tensor's name.
        name: String,
        /// The tensor's datatype.
        datatype: Datatype,
        /// The datatype asked for.
        requested: Datatype,
    },
    /// Binary extension data that does not agree with its JSON header.
    #[error("binary data: {0}")]
    Binary(String),
}

/// A codec that cannot decode or encode what it was given (MLServer's
/// `CodecError`, `InputsNotFound`, `OutputNotFound`; all 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodecError {
    /// The tensor itself is invalid.
    #[error("{0}")]
    Tensor(#[from] TensorError),
    /// The codec does not handle this tensor (wrong datatype, shape or content).
    #[error("codec '{codec}' cannot handle tensor '{name}': {reason}")]
    Unsupported {
        /// The codec's content type name (`np`, `str`, ...).
        codec: &'static str,
        /// The tensor's name.
        name: String,
        /// Why the codec refused it.
        reason: String,
    },
    /// The request has no input of the name asked for.
    #[error("input '{0}' not found in the request")]
    InputNotFound(String),
    /// Any other codec failure; the message says why.
    #[error("{0}")]
    Invalid(String),
}
