//! Request-level codecs: MLServer's `NumpyRequestCodec` and
//! `StringRequestCodec`, for models whose whole payload is one tensor.

use super::common::{content_type_parameters, NUMPY, STRING};
use super::dispatch::{decode_with, input_codec};
use super::dispatch::{
    encode_output, find_metadata, input_content_type, request_content_type, Decoded,
};
use super::numeric::{decode_numeric, encode_numeric, inject_batch_dimension, Numeric};
use super::string::{decode_strings, encode_strings};
use crate::{CodecError, InferenceRequest, InferenceResponse, MetadataTensor, Tensor};

/// The output name MLServer's request codecs give their single output.
pub const DEFAULT_OUTPUT_NAME: &str = "output-1";
/// The input name MLServer's request codecs give their single input.
pub const DEFAULT_INPUT_NAME: &str = "input-1";

/// `codec` names the codec in the error, as MLServer's message does.
fn single<'a>(codec: &str, request: &'a InferenceRequest) -> Result<&'a Tensor, CodecError> {
    match request.inputs.as_slice() {
        [input] => Ok(input),
        inputs => Err(CodecError::Invalid(format!(
            "The {codec} codec only supports a single input tensor ({} were received)",
            inputs.len()
        ))),
    }
}

/// The one input of a request, as request-level codecs require (MLServer
/// raises `CodecError` for zero or several inputs; so does this).
pub fn decode_request_single(request: &InferenceRequest) -> Result<&Tensor, CodecError> {
    single("request-level", request)
}

/// `NumpyRequestCodec.decode_request`: the single input's elements in their
/// native type (see [`to_vec_as`](crate::codecs::to_vec_as) to convert).
pub fn decode_request_numeric<T: Numeric>(request: &InferenceRequest) -> Result<&[T], CodecError> {
    decode_numeric(single("'np'", request)?)
}

/// `StringRequestCodec.decode_request`: the single input as strings.
pub fn decode_request_strings(request: &InferenceRequest) -> Result<Vec<String>, CodecError> {
    decode_strings(single("'str'", request)?)
}

/// MLServer's `MLModel.decode_request`: the request-level codec named by
/// [`request_content_type`] (`model_content_type` is the model settings'
/// `parameters.content_type`) applied to the single input.
///
/// `Ok(None)` means no request codec applies (no content type, `pd`, or an
/// unknown one): use the request as it is, as MLServer does. If the input
/// has an input-level content type of its own (or from `inputs_metadata`),
/// that decoding wins, because MLServer decodes inputs first and the request
/// codec reuses the cached result.
pub fn decode_request(
    request: &InferenceRequest,
    model_content_type: Option<&str>,
    inputs_metadata: &[MetadataTensor],
) -> Result<Option<Decoded>, CodecError> {
    let codec = match request_content_type(request, model_content_type) {
        Some(NUMPY) => NUMPY,
        Some(STRING) => STRING,
        _ => return Ok(None),
    };
    let input = single(&format!("'{codec}'"), request)?;
    let metadata = find_metadata(inputs_metadata, &input.name);
    let own = input_content_type(input, metadata).and_then(input_codec);
    decode_with(own.or(Some(codec)), input).map(Some)
}

/// A response holding one output, tagged with the request-level codec.
fn response(output: Tensor, content_type: &str) -> InferenceResponse {
    let mut response = InferenceResponse::new(vec![output]);
    response.parameters = Some(content_type_parameters(content_type));
    response
}

/// `NumpyRequestCodec.encode_response`: one output `output-1` (shape through
/// [`inject_batch_dimension`], as `NumpyCodec` does) and
/// `parameters.content_type = "np"` on the response. The server fills in
/// model name, version and id.
pub fn encode_response_numeric<T: Numeric>(
    shape: Vec<usize>,
    values: Vec<T>,
) -> Result<InferenceResponse, CodecError> {
    let output = encode_numeric(DEFAULT_OUTPUT_NAME, inject_batch_dimension(&shape), values)?;
    Ok(response(output, NUMPY))
}

/// `StringRequestCodec.encode_response`: one `[N, 1]` output `output-1`,
/// `content_type: "str"` on it and on the response.
pub fn encode_response_strings<S: Into<String>>(
    values: impl IntoIterator<Item = S>,
) -> InferenceResponse {
    response(encode_strings(DEFAULT_OUTPUT_NAME, values), STRING)
}

/// MLServer's `MLModel.encode_response` for a decoded payload: numbers go
/// through the `np` request codec, strings through `str`. Other payloads
/// have no request codec in MLServer (`CodecNotFound`): an error here too.
pub fn encode_response(value: Decoded) -> Result<InferenceResponse, CodecError> {
    let codec = match &value {
        Decoded::Numeric(_) => NUMPY,
        Decoded::Strings(_) => STRING,
        other => {
            return Err(CodecError::Invalid(format!(
                "no request codec can encode {} payloads; encode outputs with encode_output",
                other.content_type().unwrap_or("raw")
            )))
        }
    };
    Ok(response(
        encode_output(DEFAULT_OUTPUT_NAME, value, Some(codec))?,
        codec,
    ))
}

/// A client-side request with one input `input-1` and
/// `parameters.content_type = "np"` (MLServer's `encode_request`).
pub fn encode_request_numeric<T: Numeric>(
    shape: Vec<usize>,
    values: Vec<T>,
) -> Result<InferenceRequest, CodecError> {
    let input = encode_numeric(DEFAULT_INPUT_NAME, inject_batch_dimension(&shape), values)?;
    Ok(request(input, NUMPY))
}

/// A client-side request with one `[N, 1]` string input `input-1` and
/// `parameters.content_type = "str"`.
pub fn encode_request_strings<S: Into<String>>(
    values: impl IntoIterator<Item = S>,
) -> InferenceRequest {
    request(encode_strings(DEFAULT_INPUT_NAME, values), STRING)
}

fn request(input: Tensor, content_type: &str) -> InferenceRequest {
    let mut request = InferenceRequest::new(vec![input]);
    request.parameters = Some(content_type_parameters(content_type));
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Datatype, TensorData};

    fn two_inputs() -> InferenceRequest {
        InferenceRequest::new(vec![
            Tensor::new("a", vec![1], vec![1i32]).unwrap(),
            Tensor::new("b", vec![1], vec![2i32]).unwrap(),
        ])
    }

    #[test]
    fn exactly_one_input_is_required() {
        let e = decode_request_single(&two_inputs())
            .unwrap_err()
            .to_string();
        assert!(e.contains("single input tensor (2 were received)"), "{e}");
        let e = decode_request_strings(&InferenceRequest::new(vec![]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("'str' codec") && e.contains("(0 were received)"),
            "{e}"
        );
        let one = encode_request_numeric(vec![3], vec![1.0f64, 2.0, 3.0]).unwrap();
        assert_eq!(
            decode_request_numeric::<f64>(&one).unwrap(),
            &[1.0, 2.0, 3.0]
        );
        assert_eq!(decode_request_single(&one).unwrap().name, "input-1");
    }

    #[test]
    fn decode_request_follows_request_then_model_content_type() {
        let mut r = encode_request_strings(["a", "b"]);
        let strings = Decoded::Strings(vec!["a".into(), "b".into()]);
        assert_eq!(
            decode_request(&r, None, &[]).unwrap(),
            Some(strings.clone())
        );
        r.parameters = None;
        r.inputs[0].parameters = None;
        assert_eq!(decode_request(&r, None, &[]).unwrap(), None);
        assert_eq!(decode_request(&r, Some("str"), &[]).unwrap(), Some(strings));
        assert_eq!(decode_request(&r, Some("pd"), &[]).unwrap(), None);
        assert!(decode_request(&two_inputs(), Some("np"), &[]).is_err());
        assert_eq!(
            decode_request(&two_inputs(), Some("pd"), &[]).unwrap(),
            None
        );
    }

    #[test]
    fn input_level_content_type_wins_inside_a_request_codec() {
        let mut r = encode_request_strings(["aGk="]);
        r.inputs[0].parameters = Some(content_type_parameters("base64"));
        r.parameters = Some(content_type_parameters("np"));
        assert_eq!(
            decode_request(&r, None, &[]).unwrap(),
            Some(Decoded::Bytes(vec![b"hi".to_vec()]))
        );
    }

    #[test]
    fn responses_use_output_1_and_tag_the_request_codec() {
        let r = encode_response_numeric(vec![2], vec![1u8, 2]).unwrap();
        assert_eq!(r.outputs[0].name, "output-1");
        assert_eq!(r.outputs[0].shape, vec![2, 1]);
        assert_eq!(r.outputs[0].datatype, Datatype::Uint8);
        assert_eq!(
            r.parameters.as_ref().and_then(|p| p.content_type()),
            Some("np")
        );
        let s = encode_response_strings(vec!["x".to_owned()]);
        assert_eq!(s.outputs[0].content_type(), Some("str"));
        assert_eq!(
            s.parameters.as_ref().and_then(|p| p.content_type()),
            Some("str")
        );
        let d = encode_response(Decoded::Numeric(TensorData::Fp32(vec![0.5]))).unwrap();
        assert_eq!(d.outputs[0].shape, vec![1, 1]);
        assert!(encode_response(Decoded::Bytes(vec![])).is_err());
        assert!(encode_response_numeric(vec![3], vec![1u8]).is_err());
    }
}
