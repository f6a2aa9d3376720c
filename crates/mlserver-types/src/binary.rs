//! The binary tensor data extension (Triton's `binary_tensor_data`).
//!
//! A body is a JSON header followed by raw tensor blobs, in the order the
//! tensors appear in the header; `Inference-Header-Content-Length` gives the
//! header's size. Elements are little-endian; BOOL is one byte; a BYTES
//! element is a 4-byte little-endian length followed by its bytes.
//! `tritonclient.http` uses this by default, for inputs and outputs alike.

use std::collections::HashMap;

use half::{bf16, f16};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::dataplane::TensorHeader;
use crate::{
    element_count, Datatype, InferenceRequest, InferenceResponse, MetadataTensor, Parameters,
    RequestOutput, Tensor, TensorData, TensorError,
};

/// The HTTP header that carries the JSON header's length.
pub const HEADER_CONTENT_LENGTH: &str = "inference-header-content-length";

/// Why a binary body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum BinaryError {
    /// The JSON header is not a valid inference request.
    #[error("invalid inference request JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A blob that does not match its tensor's header, or a tensor that fails validation.
    #[error("{0}")]
    Tensor(#[from] TensorError),
}

fn err(msg: impl Into<String>) -> BinaryError {
    BinaryError::Tensor(TensorError::Binary(msg.into()))
}

/// Reads a request whose first `header_len` bytes are JSON and whose rest
/// holds the blobs of the inputs that carry `binary_data_size`.
///
/// `binary_data_size` is removed from the inputs' parameters: it describes the
/// transport, and the model should see the same request either way.
pub fn decode_request(body: &[u8], header_len: usize) -> Result<InferenceRequest, BinaryError> {
    if header_len > body.len() {
        return Err(err(format!(
            "Inference-Header-Content-Length is {header_len} but the body has only {} bytes",
            body.len()
        )));
    }
    let (header, mut blobs) = body.split_at(header_len);
    let mut request = InferenceRequest::from_json(header)?;
    for input in &mut request.inputs {
        let Some(size) = take_binary_size(input)? else {
            continue;
        };
        if size > blobs.len() {
            return Err(err(format!(
                "input '{}' declares binary_data_size {size} but only {} bytes remain in the body",
                input.name,
                blobs.len()
            )));
        }
        let (blob, rest) = blobs.split_at(size);
        blobs = rest;
        let expected = element_count(&input.name, &input.shape)?;
        input.data = decode_blob(&input.name, input.datatype, blob, expected)?;
        input.validate()?;
    }
    if !blobs.is_empty() {
        return Err(err(format!(
            "{} bytes of binary data follow the last binary input",
            blobs.len()
        )));
    }
    Ok(request)
}

/// Reads a request sent with `Inference-Header-Content-Length: 0`: the whole
/// body is the one input of a single-input model, whose metadata supplies the
/// name, datatype and shape (with at most one variable dimension). All
/// outputs are then returned as binary, as Triton does.
pub fn decode_raw_input(
    body: &[u8],
    input: &MetadataTensor,
) -> Result<InferenceRequest, BinaryError> {
    let (data, shape) = if input.datatype == Datatype::Bytes {
        (TensorData::Bytes(vec![body.to_vec()]), vec![1])
    } else {
        let size = input.datatype.size().unwrap_or(1);
        if !body.len().is_multiple_of(size) {
            return Err(err(format!(
                "raw body of {} bytes is not a whole number of {} elements",
                body.len(),
                input.datatype
            )));
        }
        let n = body.len() / size;
        let shape = resolve_shape(&input.name, &input.shape, n)?;
        (decode_blob(&input.name, input.datatype, body, n)?, shape)
    };
    let tensor = Tensor {
        name: input.name.clone(),
        shape,
        datatype: input.datatype,
        parameters: None,
        data,
    };
    tensor.validate()?;
    let mut request = InferenceRequest::new(vec![tensor]);
    request
        .parameters_mut()
        .insert(Parameters::BINARY_DATA_OUTPUT, true);
    Ok(request)
}

/// Fills the (at most one) variable dimension of a metadata shape so that it
/// holds `n` elements.
fn resolve_shape(name: &str, declared: &[i64], n: usize) -> Result<Vec<usize>, BinaryError> {
    let variable = declared.iter().filter(|&&d| d < 0).count();
    if variable > 1 {
        return Err(err(format!(
            "input '{name}' has more than one variable dimension; a raw binary body needs the JSON header"
        )));
    }
    let fixed: usize = declared
        .iter()
        .filter(|&&d| d >= 0)
        .map(|&d| d as usize)
        .product();
    if declared.is_empty() {
        return Ok(vec![n]);
    }
    let fill = if variable == 1 {
        if fixed == 0 || !n.is_multiple_of(fixed) {
            return Err(err(format!(
                "{n} elements do not fit input '{name}' of shape {declared:?}"
            )));
        }
        n / fixed
    } else {
        0
    };
    let shape: Vec<usize> = declared
        .iter()
        .map(|&d| if d < 0 { fill } else { d as usize })
        .collect();
    if variable == 0 && fixed != n {
        return Err(err(format!(
            "{n} elements do not fit input '{name}' of shape {declared:?}"
        )));
    }
    Ok(shape)
}

fn take_binary_size(input: &mut Tensor) -> Result<Option<usize>, BinaryError> {
    let Some(params) = input.parameters.as_mut() else {
        return Ok(None);
    };
    let Some(value) = params.remove(Parameters::BINARY_DATA_SIZE) else {
        return Ok(None);
    };
    if params.is_empty() {
        input.parameters = None;
    }
    value
        .as_u64()
        .and_then(|v| usize::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| {
            err(format!(
                "input '{}': binary_data_size must be a non-negative integer, got {value}",
                input.name
            ))
        })
}

/// Decodes one tensor's blob holding `expected` elements of `datatype`.
pub fn decode_blob(
    name: &str,
    datatype: Datatype,
    blob: &[u8],
    expected: usize,
) -> Result<TensorData, BinaryError> {
    if datatype == Datatype::Bytes {
        return decode_bytes_elements(name, blob, expected).map(TensorData::Bytes);
    }
    let size = datatype.size().unwrap_or(1);
    if Some(blob.len()) != expected.checked_mul(size) {
        return Err(err(format!(
            "input '{name}': {} bytes of binary data, but {expected} {datatype} elements need {}",
            blob.len(),
            expected.saturating_mul(size)
        )));
    }
    macro_rules! each_le {
        ($t:ty, $n:literal) => {
            blob.chunks_exact($n)
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk size")))
                .collect()
        };
    }
    // Little-endian machines keep numbers in wire order: one bulk copy.
    #[cfg(target_endian = "little")]
    macro_rules! le {
        ($t:ty, $n:literal) => {
            from_le_blob::<$t>(blob)
        };
    }
    #[cfg(not(target_endian = "little"))]
    macro_rules! le {
        ($t:ty, $n:literal) => {
            each_le!($t, $n)
        };
    }
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(blob.iter().map(|&b| b != 0).collect()),
        Datatype::Uint8 => TensorData::Uint8(blob.to_vec()),
        Datatype::Int8 => TensorData::Int8(blob.iter().map(|&b| b as i8).collect()),
        Datatype::Uint16 => TensorData::Uint16(le!(u16, 2)),
        Datatype::Int16 => TensorData::Int16(le!(i16, 2)),
        Datatype::Fp16 => TensorData::Fp16(each_le!(f16, 2)),
        Datatype::Bf16 => TensorData::Bf16(each_le!(bf16, 2)),
        Datatype::Uint32 => TensorData::Uint32(le!(u32, 4)),
        Datatype::Int32 => TensorData::Int32(le!(i32, 4)),
        Datatype::Fp32 => TensorData::Fp32(le!(f32, 4)),
        Datatype::Uint64 => TensorData::Uint64(le!(u64, 8)),
        Datatype::Int64 => TensorData::Int64(le!(i64, 8)),
        Datatype::Fp64 => TensorData::Fp64(le!(f64, 8)),
        Datatype::Bytes => unreachable!("handled above"),
    })
}

/// Splits length-prefixed BYTES elements.
pub fn decode_bytes_elements(
    name: &str,
    mut blob: &[u8],
    expected: usize,
) -> Result<Vec<Vec<u8>>, BinaryError> {
    let mut out = Vec::with_capacity(expected.min(blob.len() / 4 + 1));
    while !blob.is_empty() {
        if blob.len() < 4 {
            return Err(err(format!(
                "input '{name}': truncated BYTES length prefix"
            )));
        }
        let (len, rest) = blob.split_at(4);
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        if len > rest.len() {
            return Err(err(format!(
                "input '{name}': BYTES element of {len} bytes but only {} bytes remain",
                rest.len()
            )));
        }
        let (element, rest) = rest.split_at(len);
        out.push(element.to_vec());
        blob = rest;
    }
    if out.len() != expected {
        return Err(err(format!(
            "input '{name}': binary data holds {} BYTES elements but the shape needs {expected}",
            out.len()
        )));
    }
    Ok(out)
}

/// Size in bytes of a tensor's binary form.
pub fn encoded_len(data: &TensorData) -> usize {
    match data {
        TensorData::Bytes(v) => v.iter().map(|e| 4 + e.len()).sum(),
        other => other.len() * other.datatype().size().unwrap_or(1),
    }
}

/// Appends a tensor's binary form (little-endian, BYTES length-prefixed).
pub fn encode_data(data: &TensorData, out: &mut Vec<u8>) {
    out.reserve(encoded_len(data));
    // Little-endian machines keep numbers in wire order: one bulk copy.
    #[cfg(target_endian = "little")]
    macro_rules! le {
        ($v:expr, $t:ty) => {
            out.extend_from_slice(bytemuck::cast_slice::<$t, u8>($v))
        };
    }
    #[cfg(not(target_endian = "little"))]
    macro_rules! le {
        ($v:expr, $t:ty) => {
            put_le(out, $v, <$t>::to_le_bytes)
        };
    }
    match data {
        TensorData::Bool(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::Uint8(v) => out.extend_from_slice(v),
        TensorData::Int8(v) => out.extend(v.iter().map(|&b| b as u8)),
        TensorData::Uint16(v) => le!(v, u16),
        TensorData::Uint32(v) => le!(v, u32),
        TensorData::Uint64(v) => le!(v, u64),
        TensorData::Int16(v) => le!(v, i16),
        TensorData::Int32(v) => le!(v, i32),
        TensorData::Int64(v) => le!(v, i64),
        TensorData::Fp16(v) => put_le(out, v, f16::to_le_bytes),
        TensorData::Bf16(v) => put_le(out, v, bf16::to_le_bytes),
        TensorData::Fp32(v) => le!(v, f32),
        TensorData::Fp64(v) => le!(v, f64),
        TensorData::Bytes(v) => {
            for e in v {
                out.extend_from_slice(&(e.len() as u32).to_le_bytes());
                out.extend_from_slice(e);
            }
        }
    }
}

/// Numbers from little-endian bytes in one copy: straight from `blob` when
/// it happens to be aligned for `T`, else through a zeroed vector.
#[cfg(target_endian = "little")]
fn from_le_blob<T: bytemuck::Pod>(blob: &[u8]) -> Vec<T> {
    match bytemuck::try_cast_slice::<u8, T>(blob) {
        Ok(aligned) => aligned.to_vec(),
        Err(_) => bytemuck::pod_collect_to_vec(blob),
    }
}

/// Appends `values` in their `N`-byte little-endian form: one resize, then
/// fixed-size copies the compiler turns into a plain (vectorized) copy,
/// instead of a capacity check per element.
fn put_le<T: Copy, const N: usize>(out: &mut Vec<u8>, values: &[T], to_le: fn(T) -> [u8; N]) {
    let start = out.len();
    out.resize(start + values.len() * N, 0);
    for (dst, &x) in out[start..].chunks_exact_mut(N).zip(values) {
        dst.copy_from_slice(&to_le(x));
    }
}

/// Which outputs a request wants in binary form: a requested output's own
/// `binary_data` wins over the request's `binary_data_output`.
///
/// Captured before the request is handed to the model, which consumes it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OutputFormat {
    default_binary: bool,
    per_output: HashMap<String, bool>,
}

impl OutputFormat {
    /// Reads the binary flags from the request's parameters and its requested outputs.
    pub fn from_request(request: &InferenceRequest) -> Self {
        let default_binary = request
            .parameters
            .as_ref()
            .and_then(|p| p.get_bool(Parameters::BINARY_DATA_OUTPUT))
            .unwrap_or(false);
        let per_output = request
            .outputs
            .iter()
            .flatten()
            .filter_map(|o: &RequestOutput| {
                let flag = o.parameters.as_ref()?.get_bool(Parameters::BINARY_DATA)?;
                Some((o.name.clone(), flag))
            })
            .collect();
        OutputFormat {
            default_binary,
            per_output,
        }
    }

    /// Every output as binary (raw binary requests).
    pub fn all_binary() -> Self {
        OutputFormat {
            default_binary: true,
            per_output: HashMap::new(),
        }
    }

    /// Whether the output with this name is to be sent as binary data.
    pub fn is_binary(&self, output: &str) -> bool {
        self.per_output
            .get(output)
            .copied()
            .unwrap_or(self.default_binary)
    }

    /// Whether any output of `response` is to be sent as binary data, so the
    /// body needs the binary extension.
    pub fn any_binary(&self, response: &InferenceResponse) -> bool {
        response.outputs.iter().any(|o| self.is_binary(&o.name))
    }
}

/// An encoded response body. `header_len` is set when the body carries binary
/// data and must be sent as `Inference-Header-Content-Length`.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedBody {
    /// The bytes to send: a JSON header followed by the blobs, or plain JSON.
    pub body: Vec<u8>,
    /// Length of the JSON header; `None` for a JSON-only body.
    pub header_len: Option<usize>,
}

/// Encodes a response: JSON only, or a JSON header plus the blobs of the
/// outputs `format` asks for in binary.
pub fn encode_response(
    response: &InferenceResponse,
    format: &OutputFormat,
) -> Result<EncodedBody, serde_json::Error> {
    if !format.any_binary(response) {
        // Sized up front from the element count: growing by doubling copies
        // a large tensor's text several times over.
        let elements: usize = response.outputs.iter().map(|o| o.data.len()).sum();
        let mut body = Vec::with_capacity(256 + 16 * elements);
        serde_json::to_writer(&mut body, response)?;
        return Ok(EncodedBody {
            body,
            header_len: None,
        });
    }
    let params: Vec<Option<Parameters>> = response
        .outputs
        .iter()
        .map(|o| {
            format.is_binary(&o.name).then(|| {
                let mut p = o.parameters.clone().unwrap_or_default();
                p.insert(
                    Parameters::BINARY_DATA_SIZE,
                    Value::from(encoded_len(&o.data) as u64),
                );
                p
            })
        })
        .collect();
    let header = ResponseHeader {
        response,
        binary_params: &params,
    };
    let mut body = serde_json::to_vec(&header)?;
    let header_len = body.len();
    let blobs: usize = response
        .outputs
        .iter()
        .zip(&params)
        .filter(|(_, p)| p.is_some())
        .map(|(o, _)| encoded_len(&o.data))
        .sum();
    body.reserve(blobs);
    for (output, p) in response.outputs.iter().zip(&params) {
        if p.is_some() {
            encode_data(&output.data, &mut body);
        }
    }
    Ok(EncodedBody {
        body,
        header_len: Some(header_len),
    })
}

/// Encodes a request the way `tritonclient.http` does (every input binary);
/// used by tests and clients.
pub fn encode_request(request: &InferenceRequest) -> Result<EncodedBody, serde_json::Error> {
    let mut header = request.clone();
    let mut blobs = Vec::new();
    for input in &mut header.inputs {
        let data = std::mem::replace(&mut input.data, TensorData::empty(input.datatype));
        input
            .parameters
            .get_or_insert_with(Parameters::default)
            .insert(Parameters::BINARY_DATA_SIZE, encoded_len(&data) as u64);
        encode_data(&data, &mut blobs);
    }
    let mut body = serde_json::to_vec(&RequestHeader(&header))?;
    let header_len = body.len();
    body.extend_from_slice(&blobs);
    Ok(EncodedBody {
        body,
        header_len: Some(header_len),
    })
}

struct RequestHeader<'a>(&'a InferenceRequest);

impl Serialize for RequestHeader<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.0;
        let mut map = serializer.serialize_map(None)?;
        if let Some(id) = &r.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(p) = &r.parameters {
            map.serialize_entry("parameters", p)?;
        }
        let inputs: Vec<TensorHeader<'_>> = r
            .inputs
            .iter()
            .map(|t| TensorHeader {
                tensor: t,
                parameters: t.parameters.as_ref(),
                with_data: false,
            })
            .collect();
        map.serialize_entry("inputs", &inputs)?;
        if let Some(o) = &r.outputs {
            map.serialize_entry("outputs", o)?;
        }
        map.end()
    }
}

struct ResponseHeader<'a> {
    response: &'a InferenceResponse,
    binary_params: &'a [Option<Parameters>],
}

impl Serialize for ResponseHeader<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let r = self.response;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("model_name", &r.model_name)?;
        if let Some(v) = &r.model_version {
            map.serialize_entry("model_version", v)?;
        }
        if let Some(id) = &r.id {
            map.serialize_entry("id", id)?;
        }
        if let Some(p) = &r.parameters {
            map.serialize_entry("parameters", p)?;
        }
        let outputs: Vec<TensorHeader<'_>> = r
            .outputs
            .iter()
            .zip(self.binary_params)
            .map(|(t, bp)| match bp {
                Some(p) => TensorHeader {
                    tensor: t,
                    parameters: Some(p),
                    with_data: false,
                },
                None => TensorHeader {
                    tensor: t,
                    parameters: t.parameters.as_ref(),
                    with_data: true,
                },
            })
            .collect();
        map.serialize_entry("outputs", &outputs)?;
        map.end()
    }
}

/// Reads a response body (JSON header plus blobs), as a client would.
pub fn decode_response(
    body: &[u8],
    header_len: Option<usize>,
) -> Result<InferenceResponse, BinaryError> {
    let header_len = header_len.unwrap_or(body.len());
    if header_len > body.len() {
        return Err(err("header length exceeds the body"));
    }
    let (header, mut blobs) = body.split_at(header_len);
    let mut response: InferenceResponse = serde_json::from_slice(header)?;
    for output in &mut response.outputs {
        let Some(size) = take_binary_size(output)? else {
            continue;
        };
        if size > blobs.len() {
            return Err(err(format!("output '{}' is truncated", output.name)));
        }
        let (blob, rest) = blobs.split_at(size);
        blobs = rest;
        let expected = element_count(&output.name, &output.shape)?;
        output.data = decode_blob(&output.name, output.datatype, blob, expected)?;
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request_of(tensors: Vec<Tensor>) -> InferenceRequest {
        InferenceRequest::new(tensors)
    }

    #[test]
    fn numbers_decode_from_aligned_and_unaligned_blobs_and_encode_back() {
        let fp32 = [1.5f32, -2.25, 3.0e-7, f32::MAX];
        let i64s = [1i64, -2, i64::MIN, i64::MAX];
        let mut wire = vec![0u8]; // wire[1..] is misaligned for 4 and 8 bytes
        wire.extend(fp32.iter().flat_map(|v| v.to_le_bytes()));
        let mut wire64 = vec![0u8];
        wire64.extend(i64s.iter().flat_map(|v| v.to_le_bytes()));
        for blob in [&wire[1..], &wire[1..].to_vec()[..]] {
            let data = decode_blob("x", Datatype::Fp32, blob, 4).unwrap();
            assert_eq!(data, TensorData::Fp32(fp32.to_vec()));
            let mut out = Vec::new();
            encode_data(&data, &mut out);
            assert_eq!(out, blob);
        }
        for blob in [&wire64[1..], &wire64[1..].to_vec()[..]] {
            let data = decode_blob("x", Datatype::Int64, blob, 4).unwrap();
            assert_eq!(data, TensorData::Int64(i64s.to_vec()));
            let mut out = vec![9u8]; // appends after what is there
            encode_data(&data, &mut out);
            assert_eq!(&out[1..], blob);
        }
    }

    #[test]
    fn request_round_trip_all_types() {
        let tensors = vec![
            Tensor::new("b", vec![3], vec![true, false, true]).unwrap(),
            Tensor::new("u16", vec![2], vec![1u16, 65535]).unwrap(),
            Tensor::new("i64", vec![1, 2], vec![-5i64, 7]).unwrap(),
            Tensor::new("h", vec![2], vec![f16::from_f32(0.5), f16::from_f32(-2.0)]).unwrap(),
            Tensor::new("bh", vec![1], vec![bf16::from_f32(3.0)]).unwrap(),
            Tensor::new("f", vec![2, 2], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap(),
            Tensor::new("s", vec![2], vec!["héllo", ""]).unwrap(),
        ];
        let request = request_of(tensors);
        let encoded = encode_request(&request).unwrap();
        let decoded = decode_request(&encoded.body, encoded.header_len.unwrap()).unwrap();
        assert_eq!(decoded, request);
    }

    #[test]
    fn mixed_json_and_binary_inputs() {
        let header = br#"{"inputs":[{"name":"a","shape":[1],"datatype":"INT32","data":[9]},{"name":"b","shape":[2],"datatype":"UINT8","parameters":{"binary_data_size":2}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&[4, 5]);
        let r = decode_request(&body, header.len()).unwrap();
        assert_eq!(r.inputs[0].as_slice::<i32>().unwrap(), &[9]);
        assert_eq!(r.inputs[1].as_slice::<u8>().unwrap(), &[4, 5]);
        assert!(r.inputs[1].parameters.is_none());
    }

    #[test]
    fn size_mismatches_are_errors() {
        let header = br#"{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&[0; 4]);
        assert!(decode_request(&body, header.len())
            .unwrap_err()
            .to_string()
            .contains("only 4 bytes remain"));
        body.extend_from_slice(&[0; 8]);
        assert!(decode_request(&body, header.len())
            .unwrap_err()
            .to_string()
            .contains("follow"));
        assert!(decode_request(&body, body.len() + 1).is_err());

        let header = br#"{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","parameters":{"binary_data_size":8}}]}"#;
        let mut body = header.to_vec();
        body.extend_from_slice(&[0; 8]);
        assert!(decode_request(&body, header.len())
            .unwrap_err()
            .to_string()
            .contains("need 12"));
    }

    #[test]
    fn bytes_prefixes_are_checked() {
        assert!(decode_bytes_elements("x", &[5, 0, 0, 0, b'a'], 1).is_err());
        assert!(decode_bytes_elements("x", &[1, 0], 1).is_err());
        assert_eq!(
            decode_bytes_elements("x", &[1, 0, 0, 0, b'a'], 1).unwrap(),
            vec![b"a".to_vec()]
        );
        assert!(decode_bytes_elements("x", &[1, 0, 0, 0, b'a'], 2).is_err());
    }

    #[test]
    fn response_outputs_binary_by_request() {
        let mut response = InferenceResponse::new(vec![
            Tensor::new("a", vec![2], vec![1.0f32, 2.0]).unwrap(),
            Tensor::new("b", vec![1], vec!["x"]).unwrap(),
        ]);
        response.model_name = "m".into();
        let mut request = InferenceRequest::new(vec![]);
        request.outputs = Some(vec![RequestOutput {
            name: "a".into(),
            parameters: Some([("binary_data", true)].into_iter().collect()),
        }]);
        let format = OutputFormat::from_request(&request);
        assert!(format.is_binary("a") && !format.is_binary("b"));
        let enc = encode_response(&response, &format).unwrap();
        let header_len = enc.header_len.unwrap();
        let header: serde_json::Value = serde_json::from_slice(&enc.body[..header_len]).unwrap();
        assert_eq!(header["outputs"][0]["parameters"]["binary_data_size"], 8);
        assert!(header["outputs"][0].get("data").is_none());
        assert_eq!(header["outputs"][1]["data"][0], "x");
        assert_eq!(enc.body.len(), header_len + 8);
        let back = decode_response(&enc.body, Some(header_len)).unwrap();
        assert_eq!(back.outputs, response.outputs);

        let json_only = encode_response(&response, &OutputFormat::default()).unwrap();
        assert_eq!(json_only.header_len, None);
    }

    #[test]
    fn request_level_default_is_overridden_per_output() {
        let r: InferenceRequest = serde_json::from_str(
            r#"{"parameters":{"binary_data_output":true},"inputs":[],"outputs":[{"name":"a","parameters":{"binary_data":false}}]}"#,
        )
        .unwrap();
        let f = OutputFormat::from_request(&r);
        assert!(!f.is_binary("a"));
        assert!(f.is_binary("other"));
    }

    #[test]
    fn raw_single_input_body() {
        let meta = MetadataTensor::new("x", Datatype::Fp32, vec![-1, 2]);
        let body: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let r = decode_raw_input(&body, &meta).unwrap();
        assert_eq!(r.inputs[0].shape, vec![2, 2]);
        assert!(decode_raw_input(&body[..12], &meta).is_err());
        let two_var = MetadataTensor::new("x", Datatype::Fp32, vec![-1, -1]);
        assert!(decode_raw_input(&body, &two_var).is_err());
    }

    proptest! {
        #[test]
        fn f32_and_bytes_round_trip(xs in proptest::collection::vec(any::<f32>(), 0..64),
                                    ss in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..16), 0..16)) {
            let request = request_of(vec![
                Tensor::new("f", vec![xs.len()], xs.clone()).unwrap(),
                Tensor::new("s", vec![ss.len()], ss.clone()).unwrap(),
            ]);
            let enc = encode_request(&request).unwrap();
            let dec = decode_request(&enc.body, enc.header_len.unwrap()).unwrap();
            let got = dec.inputs[0].as_slice::<f32>().unwrap();
            prop_assert_eq!(got.len(), xs.len());
            for (a, b) in got.iter().zip(&xs) {
                prop_assert_eq!(a.to_bits(), b.to_bits());
            }
            prop_assert_eq!(dec.inputs[1].as_slice::<Vec<u8>>().unwrap(), &ss[..]);
        }

        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256), split in 0usize..300) {
            let _ = decode_request(&body, split);
        }
    }
}
