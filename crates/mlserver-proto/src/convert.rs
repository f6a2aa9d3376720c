//! Protobuf <-> V2 types.
//!
//! Tensor data arrives either typed (`contents`, one repeated field per
//! datatype family) or raw (`raw_input_contents`, one little-endian blob per
//! input). Both decode straight into the typed vector of [`TensorData`]: raw
//! blobs are sliced from the received buffer (`Bytes`) and read once; nothing
//! goes through an intermediate representation.

use std::collections::HashMap;

use bytes::Bytes;
use mlserver_types::binary::{decode_blob, encode_data, BinaryError};
use mlserver_types::{
    Datatype, InferenceRequest, InferenceResponse, MetadataModelResponse, MetadataTensor,
    Parameters, RepositoryIndexItem, RequestOutput, Tensor, TensorData, TensorError,
};
use serde_json::{Number, Value};

use crate::inference::infer_parameter::ParameterChoice;
use crate::inference::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use crate::inference::model_infer_response::InferOutputTensor;
use crate::inference::model_metadata_response::TensorMetadata;
use crate::inference::repository_index_response::ModelIndex;
use crate::inference::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelInferResponse,
    ModelMetadataResponse,
};

/// A message that cannot become a valid V2 value. Always the sender's fault
/// (INVALID_ARGUMENT on the server).
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A malformed message: a bad datatype, shape, parameter or contents layout.
    #[error("{0}")]
    Invalid(String),
    /// A tensor whose shape, datatype and data do not agree.
    #[error("{0}")]
    Tensor(#[from] TensorError),
    /// A `raw_input_contents` blob that cannot be decoded.
    #[error("{0}")]
    Binary(#[from] BinaryError),
}

fn invalid(msg: impl Into<String>) -> ConvertError {
    ConvertError::Invalid(msg.into())
}

/// A decoded `ModelInferRequest`.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedRequest {
    /// The model the request is for.
    pub model_name: String,
    /// `None` when the request left `model_version` empty (default version).
    pub model_version: Option<String>,
    /// The request as a V2 value.
    pub request: InferenceRequest,
    /// Whether the inputs came as `raw_input_contents`; the reply then uses
    /// `raw_output_contents` (tritonclient reads only those).
    pub raw: bool,
}

/// Decodes a request, checking every tensor against its shape and datatype
/// and the raw-contents rules: one blob per input, in input order, and no
/// input that also carries typed `contents`.
pub fn decode_infer_request(request: ModelInferRequest) -> Result<DecodedRequest, ConvertError> {
    let ModelInferRequest {
        model_name,
        model_version,
        id,
        parameters,
        inputs,
        outputs,
        raw_input_contents,
    } = request;
    let raw = !raw_input_contents.is_empty();
    if raw && raw_input_contents.len() != inputs.len() {
        return Err(invalid(format!(
            "raw_input_contents has {} entries but the request has {} inputs; \
             raw contents need exactly one entry per input, in input order",
            raw_input_contents.len(),
            inputs.len()
        )));
    }
    let mut raw_blobs = raw_input_contents.into_iter();
    let inputs = inputs
        .into_iter()
        .map(|input| WireTensor::from(input).decode(raw_blobs.next(), "input"))
        .collect::<Result<Vec<_>, _>>()?;
    let outputs = if outputs.is_empty() {
        None
    } else {
        Some(
            outputs
                .into_iter()
                .map(|o| {
                    Ok(RequestOutput {
                        name: o.name,
                        parameters: parameters_from_proto(o.parameters)?,
                    })
                })
                .collect::<Result<Vec<_>, ConvertError>>()?,
        )
    };
    Ok(DecodedRequest {
        model_name,
        model_version: non_empty(model_version),
        request: InferenceRequest {
            id: non_empty(id),
            parameters: parameters_from_proto(parameters)?,
            inputs,
            outputs,
            json: None,
            headers: None,
        },
        raw,
    })
}

/// Encodes a response. With `raw`, every output goes to
/// `raw_output_contents`; FP16/BF16 outputs have no typed form, so their
/// presence makes the whole response raw as well.
pub fn encode_infer_response(response: InferenceResponse, raw: bool) -> ModelInferResponse {
    let InferenceResponse {
        model_name,
        model_version,
        id,
        parameters,
        outputs,
        transport_headers: _,
        json: _,
    } = response;
    let (outputs, raw_output_contents) = encode_tensors(outputs, raw);
    let outputs = outputs.into_iter().map(InferOutputTensor::from).collect();
    ModelInferResponse {
        model_name,
        model_version: model_version.unwrap_or_default(),
        id: id.unwrap_or_default(),
        parameters: parameters_to_proto(parameters),
        outputs,
        raw_output_contents,
    }
}

/// Client side: encodes a request, its inputs raw or typed. FP16/BF16
/// inputs force raw, as for responses.
pub fn encode_infer_request(
    model_name: &str,
    model_version: Option<&str>,
    request: InferenceRequest,
    raw: bool,
) -> ModelInferRequest {
    let InferenceRequest {
        id,
        parameters,
        inputs,
        outputs,
        ..
    } = request;
    let (inputs, raw_input_contents) = encode_tensors(inputs, raw);
    let inputs = inputs.into_iter().map(InferInputTensor::from).collect();
    ModelInferRequest {
        model_name: model_name.to_owned(),
        model_version: model_version.unwrap_or_default().to_owned(),
        id: id.unwrap_or_default(),
        parameters: parameters_to_proto(parameters),
        inputs,
        outputs: outputs
            .unwrap_or_default()
            .into_iter()
            .map(|o| InferRequestedOutputTensor {
                name: o.name,
                parameters: parameters_to_proto(o.parameters),
            })
            .collect(),
        raw_input_contents,
    }
}

/// Client side: decodes a response (raw or typed outputs).
pub fn decode_infer_response(
    response: ModelInferResponse,
) -> Result<InferenceResponse, ConvertError> {
    let ModelInferResponse {
        model_name,
        model_version,
        id,
        parameters,
        outputs,
        raw_output_contents,
    } = response;
    if !raw_output_contents.is_empty() && raw_output_contents.len() != outputs.len() {
        return Err(invalid(format!(
            "raw_output_contents has {} entries for {} outputs",
            raw_output_contents.len(),
            outputs.len()
        )));
    }
    let mut raw_blobs = raw_output_contents.into_iter();
    let outputs = outputs
        .into_iter()
        .map(|o| WireTensor::from(o).decode(raw_blobs.next(), "output"))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(InferenceResponse {
        model_name,
        model_version: non_empty(model_version),
        id: non_empty(id),
        parameters: parameters_from_proto(parameters)?,
        outputs,
        transport_headers: Default::default(),
        json: None,
    })
}

/// Tensors to their wire form: typed `contents`, or (with `raw`) empty
/// contents and one blob each. FP16/BF16 have no typed form, so their
/// presence makes the whole message raw.
fn encode_tensors(tensors: Vec<Tensor>, raw: bool) -> (Vec<WireTensor>, Vec<Bytes>) {
    let raw = raw || tensors.iter().any(|t| raw_only(t.datatype));
    let mut blobs = Vec::with_capacity(if raw { tensors.len() } else { 0 });
    let wire = tensors
        .into_iter()
        .map(|t| {
            let contents = if raw {
                blobs.push(raw_bytes(t.data));
                None
            } else {
                Some(contents_from_data(t.data))
            };
            WireTensor {
                name: t.name,
                datatype: t.datatype.as_str().to_owned(),
                shape: shape_to_proto(&t.shape),
                parameters: parameters_to_proto(t.parameters),
                contents,
            }
        })
        .collect();
    (wire, blobs)
}

/// The fields input and output tensors share on the wire.
struct WireTensor {
    name: String,
    datatype: String,
    shape: Vec<i64>,
    parameters: HashMap<String, InferParameter>,
    contents: Option<InferTensorContents>,
}

/// Input and output tensors have the same fields on the wire; one
/// [`WireTensor`] serves both directions of both.
macro_rules! wire_tensor_conversions {
    ($($proto:ty),*) => {$(
        impl From<WireTensor> for $proto {
            fn from(t: WireTensor) -> Self {
                Self {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                    parameters: t.parameters,
                    contents: t.contents,
                }
            }
        }

        impl From<$proto> for WireTensor {
            fn from(t: $proto) -> Self {
                WireTensor {
                    name: t.name,
                    datatype: t.datatype,
                    shape: t.shape,
                    parameters: t.parameters,
                    contents: t.contents,
                }
            }
        }
    )*};
}

wire_tensor_conversions!(InferInputTensor, InferOutputTensor);

impl WireTensor {
    fn decode(self, raw: Option<Bytes>, role: &str) -> Result<Tensor, ConvertError> {
        let name = self.name;
        let datatype: Datatype = self
            .datatype
            .parse()
            .map_err(|e| invalid(format!("{role} '{name}': {e}")))?;
        let shape = self
            .shape
            .iter()
            .map(|&d| {
                usize::try_from(d).map_err(|_| {
                    invalid(format!(
                        "{role} '{name}': shape {:?} has a negative dimension",
                        self.shape
                    ))
                })
            })
            .collect::<Result<Vec<usize>, _>>()?;
        let expected = mlserver_types::element_count(&name, &shape)?;
        let typed = self.contents.filter(|c| !contents_is_empty(c));
        let data = match (raw, typed) {
            (Some(_), Some(_)) => {
                return Err(invalid(format!(
                    "{role} '{name}' sets typed contents although the message uses raw contents; \
                     the two cannot be mixed"
                )))
            }
            (Some(blob), None) => decode_blob(&name, datatype, &blob, expected)?,
            (None, typed) => data_from_contents(&name, datatype, typed.unwrap_or_default())?,
        };
        let tensor = Tensor {
            name,
            shape,
            datatype,
            parameters: parameters_from_proto(self.parameters)?,
            data,
        };
        tensor.validate()?;
        Ok(tensor)
    }
}

fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

fn shape_to_proto(shape: &[usize]) -> Vec<i64> {
    shape
        .iter()
        .map(|&d| i64::try_from(d).unwrap_or(i64::MAX))
        .collect()
}

fn contents_is_empty(c: &InferTensorContents) -> bool {
    c.bool_contents.is_empty()
        && c.int_contents.is_empty()
        && c.int64_contents.is_empty()
        && c.uint_contents.is_empty()
        && c.uint64_contents.is_empty()
        && c.fp32_contents.is_empty()
        && c.fp64_contents.is_empty()
        && c.bytes_contents.is_empty()
}

/// Which `contents` field carries a datatype (`None`: raw only).
fn contents_field(datatype: Datatype) -> Option<&'static str> {
    Some(match datatype {
        Datatype::Bool => "bool_contents",
        Datatype::Int8 | Datatype::Int16 | Datatype::Int32 => "int_contents",
        Datatype::Int64 => "int64_contents",
        Datatype::Uint8 | Datatype::Uint16 | Datatype::Uint32 => "uint_contents",
        Datatype::Uint64 => "uint64_contents",
        Datatype::Fp32 => "fp32_contents",
        Datatype::Fp64 => "fp64_contents",
        Datatype::Bytes => "bytes_contents",
        Datatype::Fp16 | Datatype::Bf16 => return None,
    })
}

fn raw_only(datatype: Datatype) -> bool {
    contents_field(datatype).is_none()
}

/// Typed contents to data: only the datatype's own field may be set, and
/// narrow integers must fit their type.
fn data_from_contents(
    name: &str,
    datatype: Datatype,
    c: InferTensorContents,
) -> Result<TensorData, ConvertError> {
    let Some(field) = contents_field(datatype) else {
        if contents_is_empty(&c) {
            return Ok(TensorData::empty(datatype));
        }
        return Err(invalid(format!(
            "tensor '{name}' is {datatype}, which travels only as raw contents"
        )));
    };
    let used = [
        ("bool_contents", !c.bool_contents.is_empty()),
        ("int_contents", !c.int_contents.is_empty()),
        ("int64_contents", !c.int64_contents.is_empty()),
        ("uint_contents", !c.uint_contents.is_empty()),
        ("uint64_contents", !c.uint64_contents.is_empty()),
        ("fp32_contents", !c.fp32_contents.is_empty()),
        ("fp64_contents", !c.fp64_contents.is_empty()),
        ("bytes_contents", !c.bytes_contents.is_empty()),
    ];
    if let Some((other, _)) = used.iter().find(|(f, set)| *set && *f != field) {
        return Err(invalid(format!(
            "tensor '{name}' is {datatype}, whose data goes in {field}, but {other} is set"
        )));
    }
    fn narrow<S: Copy + std::fmt::Display, T: TryFrom<S>>(
        name: &str,
        datatype: Datatype,
        v: Vec<S>,
    ) -> Result<Vec<T>, ConvertError> {
        v.into_iter()
            .map(|x| {
                T::try_from(x).map_err(|_| {
                    invalid(format!(
                        "tensor '{name}': {x} is out of range for {datatype}"
                    ))
                })
            })
            .collect()
    }
    Ok(match datatype {
        Datatype::Bool => TensorData::Bool(c.bool_contents),
        Datatype::Int8 => TensorData::Int8(narrow(name, datatype, c.int_contents)?),
        Datatype::Int16 => TensorData::Int16(narrow(name, datatype, c.int_contents)?),
        Datatype::Int32 => TensorData::Int32(c.int_contents),
        Datatype::Int64 => TensorData::Int64(c.int64_contents),
        Datatype::Uint8 => TensorData::Uint8(narrow(name, datatype, c.uint_contents)?),
        Datatype::Uint16 => TensorData::Uint16(narrow(name, datatype, c.uint_contents)?),
        Datatype::Uint32 => TensorData::Uint32(c.uint_contents),
        Datatype::Uint64 => TensorData::Uint64(c.uint64_contents),
        Datatype::Fp32 => TensorData::Fp32(c.fp32_contents),
        Datatype::Fp64 => TensorData::Fp64(c.fp64_contents),
        Datatype::Bytes => TensorData::Bytes(c.bytes_contents.into_iter().map(Vec::from).collect()),
        Datatype::Fp16 | Datatype::Bf16 => unreachable!("raw-only datatypes returned above"),
    })
}

/// Data to typed contents (FP16/BF16 are never asked for: callers go raw).
fn contents_from_data(data: TensorData) -> InferTensorContents {
    let mut c = InferTensorContents::default();
    match data {
        TensorData::Bool(v) => c.bool_contents = v,
        TensorData::Int8(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int16(v) => c.int_contents = v.into_iter().map(i32::from).collect(),
        TensorData::Int32(v) => c.int_contents = v,
        TensorData::Int64(v) => c.int64_contents = v,
        TensorData::Uint8(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint16(v) => c.uint_contents = v.into_iter().map(u32::from).collect(),
        TensorData::Uint32(v) => c.uint_contents = v,
        TensorData::Uint64(v) => c.uint64_contents = v,
        TensorData::Fp32(v) => c.fp32_contents = v,
        TensorData::Fp64(v) => c.fp64_contents = v,
        TensorData::Bytes(v) => c.bytes_contents = v.into_iter().map(Bytes::from).collect(),
        TensorData::Fp16(v) => c.fp32_contents = v.into_iter().map(f32::from).collect(),
        TensorData::Bf16(v) => c.fp32_contents = v.into_iter().map(f32::from).collect(),
    }
    c
}

/// Data to its raw form; UINT8 data is moved, not copied.
fn raw_bytes(data: TensorData) -> Bytes {
    match data {
        TensorData::Uint8(v) => Bytes::from(v),
        other => {
            let mut out = Vec::new();
            encode_data(&other, &mut out);
            Bytes::from(out)
        }
    }
}

/// Protobuf parameters to JSON ones. Unset oneofs are skipped; non-finite
/// doubles have no JSON form and are rejected.
pub fn parameters_from_proto(
    parameters: HashMap<String, InferParameter>,
) -> Result<Option<Parameters>, ConvertError> {
    if parameters.is_empty() {
        return Ok(None);
    }
    let mut out = Parameters::new();
    for (key, p) in parameters {
        let value = match p.parameter_choice {
            None => continue,
            Some(ParameterChoice::BoolParam(b)) => Value::Bool(b),
            Some(ParameterChoice::Int64Param(i)) => Value::from(i),
            Some(ParameterChoice::Uint64Param(u)) => Value::from(u),
            Some(ParameterChoice::StringParam(s)) => Value::String(s),
            Some(ParameterChoice::DoubleParam(d)) => Value::Number(
                Number::from_f64(d)
                    .ok_or_else(|| invalid(format!("parameter '{key}': {d} has no JSON form")))?,
            ),
        };
        out.insert(key, value);
    }
    Ok(Some(out))
}

/// JSON parameters to protobuf ones. Integers keep their integer type;
/// nested objects and arrays travel as their JSON text; nulls are dropped.
pub fn parameters_to_proto(parameters: Option<Parameters>) -> HashMap<String, InferParameter> {
    let Some(parameters) = parameters else {
        return HashMap::new();
    };
    parameters
        .0
        .into_iter()
        .filter_map(|(key, value)| {
            let choice = match value {
                Value::Null => return None,
                Value::Bool(b) => ParameterChoice::BoolParam(b),
                Value::Number(n) => {
                    if let Some(i) = n.as_i64() {
                        ParameterChoice::Int64Param(i)
                    } else if let Some(u) = n.as_u64() {
                        ParameterChoice::Uint64Param(u)
                    } else {
                        ParameterChoice::DoubleParam(n.as_f64().unwrap_or(f64::NAN))
                    }
                }
                Value::String(s) => ParameterChoice::StringParam(s),
                nested => ParameterChoice::StringParam(nested.to_string()),
            };
            Some((
                key,
                InferParameter {
                    parameter_choice: Some(choice),
                },
            ))
        })
        .collect()
}

/// Model metadata to its protobuf form.
pub fn metadata_to_proto(metadata: MetadataModelResponse) -> ModelMetadataResponse {
    fn tensors(v: Vec<MetadataTensor>) -> Vec<TensorMetadata> {
        v.into_iter()
            .map(|t| TensorMetadata {
                name: t.name,
                datatype: t.datatype.as_str().to_owned(),
                shape: t.shape,
                parameters: parameters_to_proto(t.parameters),
            })
            .collect()
    }
    ModelMetadataResponse {
        name: metadata.name,
        versions: metadata.versions,
        platform: metadata.platform,
        inputs: tensors(metadata.inputs),
        outputs: tensors(metadata.outputs),
        parameters: parameters_to_proto(metadata.parameters),
    }
}

/// A repository index entry to its protobuf form.
pub fn index_item_to_proto(item: RepositoryIndexItem) -> ModelIndex {
    ModelIndex {
        name: item.name,
        version: item.version.unwrap_or_default(),
        state: item.state.as_str().to_owned(),
        reason: item.reason,
    }
}

#[cfg(test)]
mod tests;

/// Triton's model configuration as its protobuf message.
pub fn config_to_proto(
    config: mlserver_types::triton::ModelConfig,
) -> crate::inference::ModelConfig {
    use crate::inference as pb;
    let data_type = |name: &str| {
        pb::DataType::from_str_name(name).map_or(pb::DataType::TypeInvalid as i32, |t| t as i32)
    };
    let input = config
        .input
        .into_iter()
        .map(|t| pb::ModelInput {
            data_type: data_type(&t.data_type),
            name: t.name,
            dims: t.dims,
        })
        .collect();
    let output = config
        .output
        .into_iter()
        .map(|t| pb::ModelOutput {
            data_type: data_type(&t.data_type),
            name: t.name,
            dims: t.dims,
        })
        .collect();
    pb::ModelConfig {
        name: config.name,
        platform: config.platform,
        max_batch_size: config.max_batch_size,
        input,
        output,
        dynamic_batching: config.dynamic_batching.map(|b| pb::ModelDynamicBatching {
            preferred_batch_size: b.preferred_batch_size,
            max_queue_delay_microseconds: b.max_queue_delay_microseconds,
        }),
        backend: config.backend,
        model_transaction_policy: Some(pb::ModelTransactionPolicy {
            decoupled: config.model_transaction_policy.decoupled,
        }),
        runtime: String::new(),
    }
}

/// Triton's statistics as their protobuf message.
pub fn statistics_to_proto(
    statistics: mlserver_types::triton::ModelStatisticsResponse,
) -> crate::inference::ModelStatisticsResponse {
    use crate::inference as pb;
    let d = |d: mlserver_types::triton::StatisticDuration| {
        Some(pb::StatisticDuration {
            count: d.count,
            ns: d.ns,
        })
    };
    let model_stats = statistics
        .model_stats
        .into_iter()
        .map(|m| {
            let s = m.inference_stats;
            pb::ModelStatistics {
                name: m.name,
                version: m.version,
                last_inference: m.last_inference,
                inference_count: m.inference_count,
                execution_count: m.execution_count,
                inference_stats: Some(pb::InferStatistics {
                    success: d(s.success),
                    fail: d(s.fail),
                    queue: d(s.queue),
                    compute_input: d(s.compute_input),
                    compute_infer: d(s.compute_infer),
                    compute_output: d(s.compute_output),
                    cache_hit: d(s.cache_hit),
                    cache_miss: d(s.cache_miss),
                }),
                batch_stats: m
                    .batch_stats
                    .into_iter()
                    .map(|b| pb::InferBatchStatistics {
                        batch_size: b.batch_size,
                        compute_input: d(b.compute_input),
                        compute_infer: d(b.compute_infer),
                        compute_output: d(b.compute_output),
                    })
                    .collect(),
            }
        })
        .collect();
    pb::ModelStatisticsResponse { model_stats }
}
