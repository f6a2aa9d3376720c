//! Inference requests and responses (the `$inference_request` /
//! `$inference_response` JSON objects).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::tensor::{float_data_from_json, DataSeed, Element};
use crate::{Datatype, Parameters, TensorData, TensorError};

/// A named, shaped, typed tensor: a request input or a response output
/// (MLServer's `RequestInput` and `ResponseOutput` have the same fields).
///
/// Deserializing one checks that `data` matches `datatype` element by element
/// and that the element count matches `shape`. A tensor whose data travels in
/// the binary extension (`parameters.binary_data_size`) arrives with empty
/// `data` that [`crate::binary`] fills in.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The tensor's name (an input name in a request, an output name in a response).
    pub name: String,
    /// Dimensions, outermost first; their product is the element count.
    pub shape: Vec<usize>,
    /// The element type.
    pub datatype: Datatype,
    /// Tensor-level parameters (`content_type`, `binary_data_size`, ...).
    pub parameters: Option<Parameters>,
    /// The elements, flat and row-major; empty until filled in when they
    /// travel in the binary extension.
    pub data: TensorData,
}

/// A request input (`$request_input`), the same type as a response output.
pub type RequestInput = Tensor;
/// A response output (`$response_output`), the same type as a request input.
pub type ResponseOutput = Tensor;

impl Tensor {
    /// A tensor from typed data; fails if `shape` does not hold `data.len()` elements.
    pub fn new(
        name: impl Into<String>,
        shape: Vec<usize>,
        data: impl Into<TensorData>,
    ) -> Result<Self, TensorError> {
        let data = data.into();
        let tensor = Tensor {
            name: name.into(),
            shape,
            datatype: data.datatype(),
            parameters: None,
            data,
        };
        tensor.validate()?;
        Ok(tensor)
    }

    /// Builder-style parameters.
    pub fn with_parameters(mut self, parameters: Parameters) -> Self {
        self.parameters = Some(parameters);
        self
    }

    /// Number of elements the shape describes.
    pub fn element_count(&self) -> Result<usize, TensorError> {
        element_count(&self.name, &self.shape)
    }

    /// Checks that data, datatype and shape agree.
    pub fn validate(&self) -> Result<(), TensorError> {
        if self.data.datatype() != self.datatype {
            return Err(TensorError::DatatypeMismatch {
                name: self.name.clone(),
                datatype: self.datatype,
                data: self.data.datatype(),
            });
        }
        let expected = self.element_count()?;
        if self.data.len() != expected {
            return Err(TensorError::ElementCount {
                name: self.name.clone(),
                shape: self.shape.clone(),
                expected,
                actual: self.data.len(),
            });
        }
        Ok(())
    }

    /// The elements as a slice of their native type (`&[f32]` for FP32, ...).
    pub fn as_slice<T: Element>(&self) -> Result<&[T], TensorError> {
        self.data
            .as_slice::<T>()
            .ok_or_else(|| TensorError::WrongType {
                name: self.name.clone(),
                datatype: self.datatype,
                requested: T::DATATYPE,
            })
    }

    /// The `content_type` parameter, if any.
    pub fn content_type(&self) -> Option<&str> {
        crate::parameters::content_type_of(&self.parameters)
    }
}

/// Product of `shape`, checked for overflow.
pub fn element_count(name: &str, shape: &[usize]) -> Result<usize, TensorError> {
    shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| TensorError::ShapeOverflow {
            name: name.to_owned(),
            shape: shape.to_vec(),
        })
}

impl Serialize for Tensor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        TensorHeader {
            tensor: self,
            parameters: self.parameters.as_ref(),
            with_data: true,
        }
        .serialize(serializer)
    }
}

/// A tensor's JSON form, with or without its `data` (without when the data
/// travels in the binary extension).
pub(crate) struct TensorHeader<'a> {
    pub tensor: &'a Tensor,
    /// Stands in for the tensor's own parameters (the binary extension adds
    /// `binary_data_size` without touching the tensor).
    pub parameters: Option<&'a Parameters>,
    pub with_data: bool,
}

impl Serialize for TensorHeader<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let t = self.tensor;
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("name", &t.name)?;
        map.serialize_entry("shape", &t.shape)?;
        map.serialize_entry("datatype", &t.datatype)?;
        if let Some(p) = self.parameters {
            map.serialize_entry("parameters", p)?;
        }
        if self.with_data {
            map.serialize_entry("data", &t.data)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Tensor {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TensorVisitor)
    }
}

struct TensorVisitor;

impl<'de> Visitor<'de> for TensorVisitor {
    type Value = Tensor;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a tensor object with name, shape, datatype and data")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Tensor, A::Error> {
        let mut name: Option<String> = None;
        let mut shape: Option<Vec<usize>> = None;
        let mut datatype: Option<Datatype> = None;
        let mut parameters: Option<Option<Parameters>> = None;
        let mut data: Option<TensorData> = None;
        // `data` seen before `datatype`: kept as JSON until the type is known.
        let mut early_data: Option<serde_json::Value> = None;

        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "name" => name = Some(map.next_value()?),
                "shape" => {
                    shape = Some(map.next_value().map_err(|e| {
                        de::Error::custom(format!(
                            "invalid shape: {e} (dimensions must be non-negative integers)"
                        ))
                    })?)
                }
                "datatype" => datatype = Some(map.next_value()?),
                "parameters" => parameters = Some(map.next_value()?),
                "data" => match datatype {
                    Some(dt) => {
                        let capacity = shape
                            .as_deref()
                            .and_then(|s| element_count("", s).ok())
                            .unwrap_or(0);
                        let invalid = |e: &dyn fmt::Display| {
                            de::Error::custom(format!(
                                "invalid data for tensor '{}' ({dt}): {e}",
                                name.as_deref().unwrap_or("?")
                            ))
                        };
                        let parsed = if matches!(dt, Datatype::Fp32 | Datatype::Fp64) {
                            // The JSON text, for the float scanner.
                            let raw: Box<serde_json::value::RawValue> =
                                map.next_value().map_err(|e| invalid(&e))?;
                            float_data_from_json(raw.get(), dt, capacity)
                                .map_err(|e| invalid(&e))?
                        } else {
                            let seed = DataSeed {
                                datatype: dt,
                                capacity,
                            };
                            map.next_value_seed(seed).map_err(|e| invalid(&e))?
                        };
                        data = Some(parsed);
                    }
                    None => early_data = Some(map.next_value()?),
                },
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }

        let name = name.ok_or_else(|| de::Error::missing_field("name"))?;
        let shape = shape.ok_or_else(|| {
            de::Error::custom(format!("tensor '{name}' is missing field `shape`"))
        })?;
        let datatype = datatype.ok_or_else(|| {
            de::Error::custom(format!("tensor '{name}' is missing field `datatype`"))
        })?;
        let parameters = parameters.flatten();
        if let Some(value) = early_data {
            let parsed = TensorData::from_json_value(datatype, value).map_err(|e| {
                de::Error::custom(format!(
                    "invalid data for tensor '{name}' ({datatype}): {e}"
                ))
            })?;
            data = Some(parsed);
        }
        Tensor::assemble(name, shape, datatype, parameters, data).map_err(de::Error::custom)
    }
}

impl Tensor {
    /// A tensor from the fields of its JSON object, checked: `data` must
    /// match `shape`; without `data`, `binary_data_size` must say that it
    /// travels in the binary extension. Shared by the serde path and the
    /// one-pass reader, so both check alike.
    pub(crate) fn assemble(
        name: String,
        shape: Vec<usize>,
        datatype: Datatype,
        parameters: Option<Parameters>,
        data: Option<TensorData>,
    ) -> Result<Tensor, String> {
        let binary = parameters
            .as_ref()
            .is_some_and(|p| p.get(Parameters::BINARY_DATA_SIZE).is_some());
        match data {
            Some(data) => {
                let t = Tensor {
                    name,
                    shape,
                    datatype,
                    parameters,
                    data,
                };
                t.validate().map_err(|e| e.to_string())?;
                Ok(t)
            }
            None if binary => Ok(Tensor {
                data: TensorData::empty(datatype),
                name,
                shape,
                datatype,
                parameters,
            }),
            None => Err(format!(
                "tensor '{name}' has no `data` (and no `binary_data_size` parameter)"
            )),
        }
    }
}

/// An output the client asks for (`$request_output`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestOutput {
    /// The name of the output wanted.
    pub name: String,
    /// Output-level parameters (`binary_data`, `content_type`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
}

impl RequestOutput {
    /// A requested output with this name and no parameters.
    pub fn new(name: impl Into<String>) -> Self {
        RequestOutput {
            name: name.into(),
            parameters: None,
        }
    }

    /// The `content_type` parameter, if any.
    pub fn content_type(&self) -> Option<&str> {
        crate::parameters::content_type_of(&self.parameters)
    }
}

/// `$inference_request`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceRequest {
    /// The request id; the response carries it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Request-level parameters (`content_type`, `headers`, `binary_data_output`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// The input tensors.
    pub inputs: Vec<RequestInput>,
    /// The outputs the client asks for; when absent, every output the model produces is returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Vec<RequestOutput>>,
    /// The JSON text the client sent, when the request came as V2 JSON
    /// (REST without the binary extension). Runtimes that decode requests
    /// the way MLServer's REST server does read it instead of `inputs`:
    /// Python models, which must see JSON strings as `str`, integers as
    /// `int`, `null` as `None` and nested lists as written, as they would
    /// under MLServer. It travels with the request through the server and
    /// is left out wherever the server builds a request of its own (a
    /// batch). `id` and `parameters.headers` are the server's to set: they
    /// override what the text says. Never serialised.
    #[serde(skip)]
    pub json: Option<bytes::Bytes>,
    /// The transport's headers (HTTP headers, gRPC metadata) as received,
    /// which MLServer copies into `parameters.headers`. The server puts
    /// them there for runtimes that read headers and leaves them out for
    /// the others, which then cost no copy (see
    /// `MLModel::reads_headers`). Never serialised.
    #[serde(skip)]
    pub headers: Option<RequestHeaders>,
}

/// A request's transport headers, shared and untouched (a gRPC stream's
/// requests share one), and the names the transport leaves out of
/// `parameters.headers` (gRPC's own `te`, `grpc-*`, ...).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestHeaders {
    map: std::sync::Arc<http::HeaderMap>,
    skip: &'static [&'static str],
}

impl RequestHeaders {
    /// `map`, every header kept.
    pub fn new(map: std::sync::Arc<http::HeaderMap>) -> Self {
        RequestHeaders { map, skip: &[] }
    }

    /// `map` without the headers named in `skip` (lower-case names).
    pub fn without(map: std::sync::Arc<http::HeaderMap>, skip: &'static [&'static str]) -> Self {
        RequestHeaders { map, skip }
    }

    /// The headers as `(name, value)`, in order, repeated names repeated;
    /// values that are not visible ASCII left out.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.map.iter().filter_map(|(k, v)| {
            let name = k.as_str();
            (!self.skip.contains(&name)).then_some((name, v.to_str().ok()?))
        })
    }
}

impl InferenceRequest {
    /// A request with these inputs and nothing else.
    pub fn new(inputs: Vec<RequestInput>) -> Self {
        InferenceRequest {
            inputs,
            ..Default::default()
        }
    }

    /// The input with this name.
    pub fn input(&self, name: &str) -> Option<&RequestInput> {
        self.inputs.iter().find(|i| i.name == name)
    }

    /// The request-level `content_type`, if any.
    pub fn content_type(&self) -> Option<&str> {
        crate::parameters::content_type_of(&self.parameters)
    }

    /// Request-level parameters, created if absent.
    pub fn parameters_mut(&mut self) -> &mut Parameters {
        self.parameters.get_or_insert_with(Parameters::default)
    }

    /// Checks every input (used after binary data was filled in).
    pub fn validate(&self) -> Result<(), TensorError> {
        self.inputs.iter().try_for_each(Tensor::validate)
    }
}

/// `$inference_response`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InferenceResponse {
    /// The model that answered.
    pub model_name: String,
    /// The version of that model, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The id of the request this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Response-level parameters (`content_type`, `headers` to send back, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Parameters>,
    /// The output tensors.
    pub outputs: Vec<ResponseOutput>,
    /// Headers the server adds on the way out (MLServer's CloudEvents
    /// `ce-*`), lower-case names: the transports send them after the
    /// model's own `parameters.headers`, which they override. Kept out of
    /// `parameters`, so they cost no JSON map per response; a map, so a
    /// model's prepared headers are cloned per response rather than hashed
    /// in one by one. Never serialised.
    #[serde(skip)]
    pub transport_headers: http::HeaderMap,
    /// The whole answer as MLServer's REST server writes it, when a runtime
    /// wrote it so because the V2 types cannot hold it: a Python model that
    /// answers a JSON request with the request's nested `data` as it came,
    /// or an output whose element count does not match its shape, which
    /// MLServer sends as it is. REST sends this text instead of encoding
    /// the response; `outputs` then holds what could be read of it (maybe
    /// nothing). Never serialised.
    #[serde(skip)]
    pub json: Option<bytes::Bytes>,
}

impl InferenceResponse {
    /// A response with these outputs; the server fills in the model name,
    /// version and request id.
    pub fn new(outputs: Vec<ResponseOutput>) -> Self {
        InferenceResponse {
            outputs,
            ..Default::default()
        }
    }

    /// The output with this name.
    pub fn output(&self, name: &str) -> Option<&ResponseOutput> {
        self.outputs.iter().find(|o| o.name == name)
    }

    /// Response-level parameters, created if absent.
    pub fn parameters_mut(&mut self) -> &mut Parameters {
        self.parameters.get_or_insert_with(Parameters::default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_with_data_before_datatype() {
        let r: InferenceRequest = serde_json::from_str(
            r#"{"id":"r1","inputs":[{"data":[[1,2],[3,4]],"name":"x","shape":[2,2],"datatype":"INT32"}]}"#,
        )
        .unwrap();
        assert_eq!(r.inputs[0].as_slice::<i32>().unwrap(), &[1, 2, 3, 4]);
        assert_eq!(r.id.as_deref(), Some("r1"));
    }

    #[test]
    fn element_count_must_match_shape() {
        let e = serde_json::from_str::<InferenceRequest>(
            r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3]}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("needs 4 elements"), "{e}");
    }

    #[test]
    fn negative_dims_and_unknown_datatypes_are_rejected() {
        assert!(serde_json::from_str::<InferenceRequest>(
            r#"{"inputs":[{"name":"x","shape":[-1],"datatype":"FP32","data":[1]}]}"#
        )
        .is_err());
        let e = serde_json::from_str::<InferenceRequest>(
            r#"{"inputs":[{"name":"x","shape":[1],"datatype":"FLOAT","data":[1]}]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown datatype 'FLOAT'"), "{e}");
    }

    #[test]
    fn missing_data_needs_binary_size() {
        assert!(
            serde_json::from_str::<Tensor>(r#"{"name":"x","shape":[1],"datatype":"FP32"}"#)
                .is_err()
        );
        let t: Tensor = serde_json::from_str(
            r#"{"name":"x","shape":[1],"datatype":"FP32","parameters":{"binary_data_size":4}}"#,
        )
        .unwrap();
        assert!(t.data.is_empty());
    }

    #[test]
    fn response_serializes_without_empty_fields() {
        let mut r =
            InferenceResponse::new(vec![Tensor::new("y", vec![2], vec![1.5f32, 2.0]).unwrap()]);
        r.model_name = "m".into();
        assert_eq!(
            serde_json::to_string(&r).unwrap(),
            r#"{"model_name":"m","outputs":[{"name":"y","shape":[2],"datatype":"FP32","data":[1.5,2.0]}]}"#
        );
    }

    #[test]
    fn shape_overflow_is_an_error_not_a_panic() {
        let e = serde_json::from_str::<Tensor>(
            r#"{"name":"x","shape":[18446744073709551615,2],"datatype":"FP32","data":[1]}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("overflow"), "{e}");
    }
}
