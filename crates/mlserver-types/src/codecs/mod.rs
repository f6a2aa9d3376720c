//! MLServer's content types (codecs) as typed Rust helpers.
//!
//! MLServer's Python runtimes receive numpy arrays, lists of `str`/`bytes`
//! or `datetime`s instead of raw tensors; which one is chosen by the
//! `content_type` parameter. Rust runtimes get the same choices as typed
//! values:
//!
//! | content type | typed helpers | Python type |
//! |---|---|---|
//! | [`NUMPY`] (`np`) | [`decode_numeric`], [`to_vec_as`], [`encode_numeric`] | `np.ndarray` |
//! | [`STRING`] (`str`) | [`decode_strings`], [`decode_strs`], [`encode_strings`] | `List[str]` |
//! | [`BASE64`] (`base64`) | [`decode_base64`], [`encode_base64`] | `List[bytes]` |
//! | [`DATETIME`] (`datetime`) | [`decode_datetimes`], [`encode_datetimes`] | `List[datetime]` |
//! | [`PANDAS`] (`pd`) | recognised, never decoded (no pandas in Rust) | `pd.DataFrame` |
//! | [`PANDAS_JSON`] (`pd_json`) | [`decode_json_elements`], [`encode_json_elements`] | JSON column |
//!
//! The dynamic layer ([`decode_input`], [`decode_request`], [`encode_output`])
//! mirrors MLServer's `decode`/`decode_request`/`encode`, including its
//! content-type lookup order; [`decode_request_single`] and friends are the
//! request-level (`NumpyRequestCodec`, `StringRequestCodec`) codecs.
//!
//! ```
//! use mlserver_types::codecs::{self, Decoded};
//! use mlserver_types::InferenceRequest;
//!
//! let request: InferenceRequest = serde_json::from_str(r#"{"inputs":[
//!   {"name":"x","shape":[2],"datatype":"INT32","data":[1,2]},
//!   {"name":"t","shape":[1],"datatype":"BYTES","data":["hi"],"parameters":{"content_type":"str"}}
//! ]}"#).unwrap();
//! // Numeric data converted to whatever the model computes in:
//! assert_eq!(codecs::to_f64_vec(&request.inputs[0]).unwrap(), vec![1.0, 2.0]);
//! // Content types pick the decoding:
//! let t = codecs::decode_input(&request.inputs[1], None).unwrap();
//! assert_eq!(t, Decoded::Strings(vec!["hi".to_owned()]));
//! ```

mod base64;
mod datetime;
mod dispatch;
mod numeric;
mod request;
mod string;

#[cfg(test)]
mod proptests;

pub use self::base64::{decode_base64, encode_base64};
pub use self::datetime::{decode_datetimes, encode_datetimes, InvalidDateTime, IsoDateTime};
pub use self::dispatch::{
    decode_input, decode_inputs, encode_output, find_metadata, input_content_type,
    output_content_type, request_content_type, Decoded,
};
pub use self::numeric::{
    decode_numeric, encode_numeric, inject_batch_dimension, into_numeric, to_f64_vec, to_vec_as,
    Numeric,
};
pub use self::request::{
    decode_request, decode_request_numeric, decode_request_single, decode_request_strings,
    encode_request_numeric, encode_request_strings, encode_response, encode_response_numeric,
    encode_response_strings, DEFAULT_INPUT_NAME, DEFAULT_OUTPUT_NAME,
};
pub use self::string::{
    decode_json_elements, decode_strings, decode_strs, encode_json_elements, encode_strings,
};

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

use crate::{CodecError, Datatype, Parameters, Tensor};

/// `parameters` carrying only a content type: what every encoder sets.
fn content_type_parameters(content_type: &str) -> Parameters {
    let mut p = Parameters::new();
    p.set_content_type(content_type);
    p
}

/// The "this codec cannot handle this tensor" error.
fn unsupported(codec: &'static str, name: &str, reason: impl Into<String>) -> CodecError {
    CodecError::Unsupported {
        codec,
        name: name.to_owned(),
        reason: reason.into(),
    }
}

/// The elements of a BYTES tensor, or an error naming the codec that needed
/// them (the string-like codecs only make sense on BYTES).
fn bytes_elements<'a>(
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
fn bytes_column(name: String, elements: Vec<Vec<u8>>, content_type: &str) -> Tensor {
    Tensor {
        name,
        shape: vec![elements.len(), 1],
        datatype: Datatype::Bytes,
        parameters: Some(content_type_parameters(content_type)),
        data: crate::TensorData::Bytes(elements),
    }
}
