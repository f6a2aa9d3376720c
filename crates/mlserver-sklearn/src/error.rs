//! The two ways things go wrong: a payload that cannot be trusted, and an
//! input the model cannot compute as scikit-learn would.

use crate::Method;

/// Why a payload was refused. The payload comes from a Python process that
/// may run user code, so every refusal names where in the payload it is.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// Not UTF-8 JSON of the expected structure.
    #[error("the payload is not a handover document: {0}")]
    Json(#[from] serde_json::Error),
    /// The `format` field names another format.
    #[error("the payload's format is {0:?}, not \"mlserver-rs/sklearn-handover\"")]
    Format(String),
    /// A `version` this reader does not know.
    #[error("handover version {0} is not supported (this reader knows version 1)")]
    Version(u64),
    /// A field that parsed but does not describe a valid fitted estimator.
    #[error("{at}: {reason}")]
    Invalid {
        /// Where in the payload, e.g. `model.steps[1].trees[3].feature`.
        at: String,
        /// What is wrong there.
        reason: String,
    },
}

impl HandoverError {
    pub(crate) fn invalid(at: &str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            at: at.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Why [`crate::Model::run`] computed nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PredictError {
    /// The estimator has no such method (e.g. `predict_proba` of a regressor).
    #[error("the model has no {} method", .0.name())]
    NoMethod(Method),
    /// The matrix's data does not hold `rows * cols` values.
    #[error("a {rows}x{cols} matrix needs {} values, the data holds {len}", rows.saturating_mul(*cols))]
    Shape {
        /// Rows declared.
        rows: usize,
        /// Columns declared.
        cols: usize,
        /// Values present.
        len: usize,
    },
    /// scikit-learn would raise on this input (see [`crate::Model::declines`]).
    #[error("{0}")]
    Declined(String),
}

pub(crate) type Result<T, E = HandoverError> = std::result::Result<T, E>;

/// An index read from the payload as `u32`, or the error naming `what` it
/// indexes and where (`at`).
pub(crate) fn index(v: i64, below: usize, at: &str, what: &str) -> Result<u32> {
    match usize::try_from(v) {
        Ok(i) if i < below && i <= u32::MAX as usize => Ok(i as u32),
        _ => Err(HandoverError::invalid(
            at,
            format!("{what} {v} is not below {below}"),
        )),
    }
}
