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
mod common;
mod datetime;
mod dispatch;
mod numeric;
mod request;
mod string;

#[cfg(test)]
mod proptests;

pub use self::base64::{decode_base64, encode_base64};
pub use self::common::{ALL, BASE64, DATETIME, NUMPY, PANDAS, PANDAS_JSON, STRING};
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
