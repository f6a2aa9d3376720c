//! What every codec shares: MLServer's content-type names and the helpers
//! that build their tensors and errors.

use crate::{CodecError, Datatype, Parameters, Tensor};

/// `np`: a tensor as a numpy array (input level) or the single input of a
/// request as one (request level).
pub const NUMPY: &str = "np";
/// `str`: a BYTES tensor as a list of UTF-8 strings (input and request level).
pub const STRING: &str = "str";
/// `base64`: a BYTES tensor whose elements are base64 text of raw bytes.
pub const BASE64: &str = "base64";
/// `datetime`: a BYTES tensor of ISO-8601 timestamps.
pub const DATETIME: &str = "datetime";
/// `pd`: the whole request as a pandas DataFrame (request level). Recognised
/// so that it is not mistaken for a typo, but never decoded here.
pub const PANDAS: &str = "pd";
/// `pd_json`: marks a DataFrame column whose BYTES elements are JSON texts.
pub const PANDAS_JSON: &str = "pd_json";

/// Every content type MLServer's core registers (`pd_json` is a marker
/// inside the pandas codec rather than a codec of its own).
pub const ALL: [&str; 6] = [NUMPY, STRING, BASE64, DATETIME, PANDAS, PANDAS_JSON];

/// `parameters` carrying only a content type: what every encoder sets.
pub(super) fn content_type_parameters(content_type: &str) -> Parameters {
    let mut p = Parameters::new();
    p.set_content_type(content_type);
    p
}

/// The "this codec cannot handle this tensor" error.
pub(super) fn unsupported(
    codec: &'static str,
    name: &str,
    reason: impl Into<String>,
) -> CodecError {
    CodecError::Unsupported {
        codec,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// The elements of a BYTES tensor, or an error naming the codec that needed
/// them (the string-like codecs only make sense on BYTES).
pub(super) fn bytes_elements<'a>(
    codec: &'static str,
    tensor: &'a Tensor,
) -> Result<&'a [Vec<u8>], CodecError> {
    tensor.data.as_slice::<Vec<u8>>().ok_or_else(|| {
        unsupported(
            codec,
            &tensor.name,
            format!("expected a BYTES tensor, found {}", tensor.data.datatype()),
        )
    })
}

/// A `[N, 1]` BYTES tensor tagged with `content_type`: the shape every
/// list-like MLServer codec (`str`, `base64`, `datetime`) encodes to.
pub(super) fn bytes_column(name: String, elements: Vec<Vec<u8>>, content_type: &str) -> Tensor {
    Tensor {
        name,
        shape: vec![elements.len(), 1],
        datatype: Datatype::Bytes,
        parameters: Some(content_type_parameters(content_type)),
        data: crate::TensorData::Bytes(elements),
    }
}
