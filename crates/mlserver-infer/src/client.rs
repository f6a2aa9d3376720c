//! The two transports. Each sends a [`WireRequest`] and brings back what
//! tritonclient's `infer` returns; what fails there (no connection, a
//! timeout, a non-200 answer, a body that does not parse) is a [`SendError`]
//! and is retried, while the reading of a parsed answer is the caller's
//! ([`Answer::into_full_response`]), whose failures lose the batch, as in
//! MLServer.
//!
//! REST is tritonclient's `http.aio` client as MLServer patches it: the
//! request body is tritonclient's (inputs as JSON or as binary blobs, the
//! outputs asked for with `binary_data`, or `binary_data_output` when none
//! are), and an error's message is the body's `error`, else its `detail`.
//! gRPC has no MLServer counterpart; it sends the same request as a
//! `ModelInferRequest` (typed contents, or `raw_input_contents` with
//! `--binary-data`), and an error's message is the status message.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use mlserver_proto::convert;
use mlserver_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use mlserver_types::{
    Datatype, InferenceRequest, InferenceResponse, RequestOutput, Tensor, TensorData,
};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::batch::{out_tensor, FullResponse, OutTensor, Params, WireRequest};
use crate::json::Json;
use crate::ndarray::{np_array, reshape, ArrayData, Dtype};
use crate::{BatchError, InferArgs, Transport};

/// A failed attempt: its message goes into the output (after the last
/// retry); `detail` only into the log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SendError {
    pub(crate) message: String,
    pub(crate) detail: Option<String>,
}

impl SendError {
    fn new(message: impl Into<String>) -> Self {
        SendError {
            message: message.into(),
            detail: None,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(d) if self.message.is_empty() => f.write_str(d),
            Some(d) => write!(f, "{} ({d})", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What a successful call brought back.
#[derive(Debug)]
pub(crate) enum Answer {
    /// The JSON header, the bytes after it, and the offset of each binary
    /// output in them (when the body used the binary extension).
    Rest {
        header: Json,
        blobs: Bytes,
        offsets: Option<HashMap<String, usize>>,
    },
    /// The response, and which of its outputs count as binary: those a
    /// REST call would have had back in binary (`None`: all of them, as
    /// when no output is named; else the named ones with `--binary-data`).
    Grpc {
        response: InferenceResponse,
        binary_outputs: Option<Vec<String>>,
    },
}

/// A client for one transport.
pub(crate) enum Client {
    Rest(RestClient),
    Grpc(GrpcClient),
}

/// `(name, value)` pairs from `Name: value` entries; an entry without
/// exactly one `:` is logged and ignored, as MLServer does.
pub(crate) fn parse_headers(entries: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for entry in entries {
        let parts: Vec<&str> = entry.split(':').collect();
        if parts.len() != 2 {
            tracing::error!("Cannot process '{entry}' as valid header. Ignoring.");
            continue;
        }
        let (k, v) = (parts[0].trim().to_string(), parts[1].trim().to_string());
        // A later entry for the same name replaces the earlier, as in a dict.
        match out.iter_mut().find(|(name, _)| *name == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

/// `urllib.parse.quote(name)`: everything but letters, digits, `_.-~` and
/// `/` percent-encoded.
pub(crate) fn quote(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

impl Client {
    pub(crate) fn new(
        args: &InferArgs,
        headers: Vec<(String, String)>,
    ) -> Result<Client, BatchError> {
        let url = args.url.strip_suffix('/').unwrap_or(&args.url);
        let timeout = (args.timeout > 0).then(|| Duration::from_secs(args.timeout as u64));
        let extra_verbose = args.is_extra_verbose();
        match args.transport {
            Transport::Rest => {
                let mut builder = reqwest::Client::builder()
                    .pool_max_idle_per_host(args.workers as usize)
                    .tcp_nodelay(true);
                if let Some(t) = timeout {
                    builder = builder.timeout(t);
                }
                if args.insecure {
                    builder = builder.danger_accept_invalid_certs(true);
                }
                let http = builder.build().map_err(|e| BatchError::Client {
                    transport: "rest",
                    reason: error_chain(&e),
                })?;
                let scheme = if args.use_ssl { "https" } else { "http" };
                let mut fixed = Vec::new();
                for (k, v) in headers {
                    match (
                        HeaderName::try_from(k.as_str()),
                        HeaderValue::try_from(v.as_str()),
                    ) {
                        (Ok(name), Ok(value)) => fixed.push((name, value)),
                        _ => {
                            tracing::error!("Cannot process '{k}: {v}' as valid header. Ignoring.")
                        }
                    }
                }
                Ok(Client::Rest(RestClient {
                    http,
                    url: format!(
                        "{scheme}://{url}/v2/models/{}/infer",
                        quote(&args.model_name)
                    ),
                    headers: fixed,
                    binary: args.binary_data,
                    extra_verbose,
                }))
            }
            Transport::Grpc => {
                let scheme = if args.use_ssl { "https" } else { "http" };
                let endpoint = Endpoint::from_shared(format!("{scheme}://{url}"));
                let mut metadata = Vec::new();
                for (k, v) in headers {
                    match (
                        MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes()),
                        MetadataValue::try_from(v.as_str()),
                    ) {
                        (Ok(name), Ok(value)) => metadata.push((name, value)),
                        _ => {
                            tracing::error!("Cannot process '{k}: {v}' as valid header. Ignoring.")
                        }
                    }
                }
                let channel = match endpoint {
                    Ok(endpoint) => {
                        let mut endpoint = endpoint.tcp_nodelay(true);
                        if let Some(t) = timeout {
                            endpoint = endpoint.timeout(t).connect_timeout(t);
                        }
                        Some(crate::client::tls::channel(endpoint, args)?)
                    }
                    // tritonclient fails each request on a URL it cannot
                    // use; so does this client, with the reason.
                    Err(e) => {
                        tracing::error!("invalid gRPC address {scheme}://{url}: {e}");
                        None
                    }
                };
                Ok(Client::Grpc(GrpcClient {
                    client: channel.map(|c| {
                        GrpcInferenceServiceClient::new(c)
                            .max_decoding_message_size(usize::MAX)
                            .max_encoding_message_size(usize::MAX)
                    }),
                    model: args.model_name.clone(),
                    metadata,
                    binary: args.binary_data,
                    extra_verbose,
                }))
            }
        }
    }

    /// One attempt at sending `request`.
    pub(crate) async fn infer(&self, request: &WireRequest) -> Result<Answer, SendError> {
        match self {
            Client::Rest(c) => c.infer(request).await,
            Client::Grpc(c) => c.infer(request).await,
        }
    }
}

/// An error and its sources, `: `-separated.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = cause.source();
    }
    s
}

pub(crate) struct RestClient {
    http: reqwest::Client,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    binary: bool,
    extra_verbose: bool,
}

/// tritonclient's JSON for one element: FP16 and FP32 widened to the
/// double NumPy's `.item()` gives; NaN and infinities as python-rapidjson
/// writes them.
fn write_number(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f.is_infinite() {
        out.push_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    } else {
        // python-rapidjson writes floats as Python's repr does (`1e-07`).
        out.push_str(&crate::json::py_float_repr(f));
    }
}

fn write_elements(data: &TensorData, out: &mut String) {
    // Inputs are always valid UTF-8 here: NumPy made them from JSON text.
    let _ = crate::json::write_tensor_elements(data, out, write_number, &mut |x, out| {
        crate::json::write_rapidjson_str(&String::from_utf8_lossy(x), out);
        Ok(())
    });
}

/// tritonclient's `_get_inference_request`: the JSON header and the blobs
/// that follow it (binary inputs).
pub(crate) fn rest_body(request: &WireRequest, binary: bool) -> (String, Vec<u8>) {
    let mut json = String::with_capacity(256);
    json.push('{');
    if !request.id.is_empty() {
        json.push_str("\"id\":");
        crate::json::write_rapidjson_str(&request.id, &mut json);
        json.push(',');
    }
    json.push_str("\"inputs\":[");
    let mut blobs = Vec::new();
    for (i, input) in request.inputs.iter().enumerate() {
        if i > 0 {
            json.push(',');
        }
        json.push_str("{\"name\":");
        crate::json::write_rapidjson_str(&input.name, &mut json);
        json.push_str(",\"shape\":[");
        for (j, d) in input.shape.iter().enumerate() {
            if j > 0 {
                json.push(',');
            }
            let _ = write!(json, "{d}");
        }
        json.push_str("],\"datatype\":\"");
        json.push_str(input.datatype.as_str());
        json.push('"');
        if binary {
            let before = blobs.len();
            mlserver_types::binary::encode_data(&input.data, &mut blobs);
            let _ = write!(
                json,
                ",\"parameters\":{{\"binary_data_size\":{}}}",
                blobs.len() - before
            );
        } else {
            json.push_str(",\"data\":");
            write_elements(&input.data, &mut json);
        }
        json.push('}');
    }
    json.push(']');
    if request.outputs.is_empty() {
        // tritonclient asks for every output in binary when none is named.
        json.push_str(",\"parameters\":{\"binary_data_output\":true}");
    } else {
        json.push_str(",\"outputs\":[");
        for (i, name) in request.outputs.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str("{\"name\":");
            crate::json::write_rapidjson_str(name, &mut json);
            let _ = write!(json, ",\"parameters\":{{\"binary_data\":{binary}}}}}");
        }
        json.push(']');
    }
    json.push('}');
    (json, blobs)
}

/// The message MLServer's patched `_get_error` makes of a non-200 body:
/// its `error`, else `json.dumps` of its `detail` (FastAPI's), else what
/// Python raises on the way.
pub(crate) fn rest_error_message(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let value = match Json::parse(body) {
        Ok(v) => v,
        Err(e) => return python_json_error(body, &e),
    };
    match &value {
        Json::Object(m) => match (m.get("error"), m.get("detail")) {
            (Some(Json::Str(s)), _) => s.clone(),
            (Some(other), _) => other.py_str(),
            (None, Some(detail)) => detail.py_dumps(),
            (None, None) => "'detail'".into(),
        },
        Json::Array(_) => "list indices must be integers or slices, not str".into(),
        Json::Str(_) => "string indices must be integers, not 'str'".into(),
        other => format!("'{}' object is not subscriptable", other.py_type()),
    }
}

/// The message of Python's `json.JSONDecodeError` where it can be told
/// ("Expecting value" at the first character that cannot start a value),
/// else serde's.
fn python_json_error(body: &[u8], e: &serde_json::Error) -> String {
    let start = body
        .iter()
        .position(|b| !b" \t\r\n".contains(b))
        .unwrap_or(body.len());
    let rest = &body[start..];
    let can_start = match rest.first() {
        Some(b'{' | b'[' | b'"' | b'0'..=b'9') => true,
        Some(b'-') => {
            matches!(rest.get(1), Some(b'0'..=b'9')) || rest[1..].starts_with(b"Infinity")
        }
        Some(_) => [&b"true"[..], b"false", b"null", b"NaN", b"Infinity"]
            .iter()
            .any(|lit| rest.starts_with(lit)),
        None => false,
    };
    if !can_start {
        let before = &body[..start];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let col = start
            - before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |p| p + 1)
            + 1;
        return format!("Expecting value: line {line} column {col} (char {start})");
    }
    e.to_string()
}

impl RestClient {
    async fn infer(&self, request: &WireRequest) -> Result<Answer, SendError> {
        let (json, blobs) = rest_body(request, self.binary);
        let mut req = self
            .http
            .post(&self.url)
            .header(http::header::CONTENT_TYPE, "application/json");
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if !request.id.is_empty() {
            req = req
                .header("seldon-puid", request.id.as_str())
                .header("x-request-id", request.id.as_str());
        }
        // tritonclient sends the binary form as soon as one input carries
        // binary data, even an empty blob.
        let body = if !self.binary || request.inputs.is_empty() {
            json.clone().into_bytes()
        } else {
            req = req.header("Inference-Header-Content-Length", json.len());
            let mut b = json.clone().into_bytes();
            b.extend_from_slice(&blobs);
            b
        };
        if self.extra_verbose {
            tracing::debug!(
                "POST {}, headers {:?}\n{}{}",
                self.url,
                self.headers,
                json,
                if blobs.is_empty() {
                    String::new()
                } else {
                    format!(" + {} bytes of binary data", blobs.len())
                }
            );
        }
        let response = req.body(body).send().await.map_err(transport_error)?;
        let status = response.status();
        let header_length = response
            .headers()
            .get("inference-header-content-length")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let body = response.bytes().await.map_err(transport_error)?;
        if self.extra_verbose {
            tracing::debug!("{status} {}", String::from_utf8_lossy(&body));
        }
        if status != reqwest::StatusCode::OK {
            return Err(SendError {
                message: rest_error_message(&body),
                detail: Some(format!("HTTP {status}")),
            });
        }
        let Some(header_length) = header_length else {
            let header = Json::parse(&body).map_err(|e| rapidjson_error(&e))?;
            return Ok(Answer::Rest {
                header,
                blobs: Bytes::new(),
                offsets: None,
            });
        };
        let len: usize = header_length.trim().parse().map_err(|_| {
            SendError::new(format!(
                "invalid literal for int() with base 10: {}",
                crate::json::py_str_repr(&header_length)
            ))
        })?;
        let len = len.min(body.len());
        let header = Json::parse(&body[..len]).map_err(|e| rapidjson_error(&e))?;
        let offsets = binary_offsets(&header)?;
        Ok(Answer::Rest {
            header,
            blobs: body.slice(len..),
            offsets: Some(offsets),
        })
    }
}

/// python-rapidjson's message for a body that is not JSON (approximate:
/// serde's reason at the same place).
fn rapidjson_error(e: &serde_json::Error) -> SendError {
    SendError::new(format!(
        "Parse error at line {} column {}: {e}",
        e.line(),
        e.column()
    ))
}

/// A transport failure. A timeout's message is empty, as Python's
/// `asyncio.TimeoutError` is; the reason goes to the log.
fn transport_error(e: reqwest::Error) -> SendError {
    let chain = error_chain(&e);
    if e.is_timeout() {
        SendError {
            message: String::new(),
            detail: Some(chain),
        }
    } else {
        SendError::new(chain)
    }
}

/// Where each binary output starts in the bytes after the JSON header, as
/// `InferResult` records it (its failures are the call's).
fn binary_offsets(header: &Json) -> Result<HashMap<String, usize>, SendError> {
    let outputs = match header {
        Json::Object(m) => m
            .get("outputs")
            .ok_or_else(|| SendError::new("'outputs'"))?,
        other => {
            return Err(SendError::new(format!(
                "'{}' object is not subscriptable",
                other.py_type()
            )))
        }
    };
    let Json::Array(outputs) = outputs else {
        return Err(SendError::new(format!(
            "'{}' object is not iterable",
            outputs.py_type()
        )));
    };
    let mut offsets = HashMap::new();
    let mut at = 0usize;
    for output in outputs {
        let size = match output.get("parameters") {
            None | Some(Json::Null) => None,
            Some(Json::Object(p)) => match p.get("binary_data_size") {
                None | Some(Json::Null) => None,
                Some(Json::Int(n)) if *n >= 0 => Some(*n as usize),
                Some(other) => {
                    return Err(SendError::new(format!(
                        "unsupported operand type(s) for +: 'int' and '{}'",
                        other.py_type()
                    )))
                }
            },
            Some(other) => {
                return Err(SendError::new(format!(
                    "'{}' object has no attribute 'get'",
                    other.py_type()
                )))
            }
        };
        if let Some(size) = size {
            let name = match output.get("name") {
                Some(Json::Str(s)) => s.clone(),
                Some(other) => other.py_str(),
                None => return Err(SendError::new("'name'")),
            };
            offsets.insert(name, at);
            at += size;
        }
    }
    Ok(offsets)
}

fn numpy_dtype(datatype: &str) -> Result<(Datatype, Dtype), String> {
    let dt: Datatype = datatype
        .parse()
        .map_err(|_| format!("unsupported datatype {datatype:?} in the response"))?;
    match dt {
        // NumPy's bfloat16 has no MLServer datatype: encode_output fails.
        Datatype::Bf16 => Err("'V'".into()),
        Datatype::Bytes => Ok((dt, Dtype::Object)),
        other => Ok((dt, Dtype::Num(other))),
    }
}

fn key_error(key: &str) -> String {
    format!("'{key}'")
}

fn optional_str(value: Option<&Json>, field: &str) -> Result<Option<String>, String> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(Json::Str(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!(
            "1 validation error for InferenceResponse\n{field}\n  Input should be a valid string [type=string_type, input_value={}, input_type={}]",
            other.py_repr(),
            other.py_type()
        )),
    }
}

/// `BYTES` elements from a binary blob (`deserialize_bytes_tensor`).
fn bytes_elements(blob: &[u8]) -> Result<Vec<Json>, String> {
    let mut out = Vec::new();
    let mut rest = blob;
    while !rest.is_empty() {
        if rest.len() < 4 {
            return Err("unpack_from requires a buffer of at least 4 bytes".into());
        }
        let n = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        rest = &rest[4..];
        if rest.len() < n {
            return Err(format!(
                "unpack_from requires a buffer of at least {n} bytes"
            ));
        }
        out.push(bytes_to_json(&rest[..n])?);
        rest = &rest[n..];
    }
    Ok(out)
}

/// A `bytes` object, which pydantic writes as UTF-8 text (and fails on
/// anything else).
fn bytes_to_json(b: &[u8]) -> Result<Json, String> {
    std::str::from_utf8(b)
        .map(|s| Json::Str(s.to_string()))
        .map_err(|e| format!("Error serializing to JSON: invalid utf-8 sequence: {e}"))
}

impl Answer {
    /// `infer_result_to_infer_response`: every output as a NumPy array
    /// re-encoded by NumpyCodec. `Err` loses the batch, as in MLServer.
    pub(crate) fn into_full_response(self) -> Result<FullResponse, String> {
        match self {
            Answer::Rest {
                header,
                blobs,
                offsets,
            } => rest_full_response(&header, &blobs, offsets.as_ref()),
            Answer::Grpc {
                response,
                binary_outputs,
            } => grpc_full_response(response, binary_outputs),
        }
    }
}

fn rest_full_response(
    header: &Json,
    blobs: &[u8],
    offsets: Option<&HashMap<String, usize>>,
) -> Result<FullResponse, String> {
    let Json::Object(top) = header else {
        return Err(format!(
            "'{}' object is not subscriptable",
            header.py_type()
        ));
    };
    let outputs = top.get("outputs").ok_or_else(|| key_error("outputs"))?;
    let Json::Array(outputs) = outputs else {
        return Err(format!("'{}' object is not iterable", outputs.py_type()));
    };
    let mut tensors = Vec::with_capacity(outputs.len());
    for output in outputs {
        let name = match output.get("name") {
            Some(Json::Str(s)) => s.clone(),
            Some(other) => return Err(format!("output name {} is not a string", other.py_repr())),
            None => return Err(key_error("name")),
        };
        // as_numpy reads the first output of that name.
        let first = outputs
            .iter()
            .find(|o| matches!(o.get("name"), Some(Json::Str(s)) if *s == name))
            .expect("this output has this name");
        let (dims, datatype, data) = rest_as_numpy(first, &name, blobs, offsets)?;
        let params = match output.get("parameters") {
            None | Some(Json::Null) => None,
            Some(p) => Some(Params::from_json(&without_binary_size(p))?),
        };
        tensors.push(out_tensor(name, datatype, dims, params, data)?);
    }
    let model_name = match top.get("model_name") {
        Some(Json::Str(s)) => s.clone(),
        Some(other) => {
            return Err(format!(
                "1 validation error for InferenceResponse\nmodel_name\n  Input should be a valid string [type=string_type, input_value={}, input_type={}]",
                other.py_repr(),
                other.py_type()
            ))
        }
        None => return Err(key_error("model_name")),
    };
    let params = match top.get("parameters") {
        None | Some(Json::Null) => None,
        Some(p) => Some(Params::from_json(p)?),
    };
    Ok(FullResponse {
        model_name,
        model_version: optional_str(top.get("model_version"), "model_version")?,
        id: optional_str(top.get("id"), "id")?,
        params,
        outputs: tensors,
    })
}

fn without_binary_size(p: &Json) -> Json {
    match p {
        Json::Object(m) => {
            let mut m = m.clone();
            m.shift_remove("binary_data_size");
            Json::Object(m)
        }
        other => other.clone(),
    }
}

/// `InferResult.as_numpy(name)`.
fn rest_as_numpy(
    output: &Json,
    name: &str,
    blobs: &[u8],
    offsets: Option<&HashMap<String, usize>>,
) -> Result<(Vec<usize>, Datatype, ArrayData), String> {
    let datatype = match output.get("datatype") {
        Some(Json::Str(s)) => s.clone(),
        Some(other) => other.py_str(),
        None => return Err(key_error("datatype")),
    };
    let (dt, dtype) = numpy_dtype(&datatype)?;
    let binary_size = match output.get("parameters") {
        Some(Json::Object(p)) => match p.get("binary_data_size") {
            None | Some(Json::Null) => None,
            Some(Json::Int(n)) => Some(*n),
            Some(other) => {
                return Err(format!(
                    "slice indices must be integers, not {}",
                    other.py_type()
                ))
            }
        },
        _ => None,
    };
    let (count, data) = match binary_size {
        Some(size) => {
            let blob: &[u8] = if size == 0 {
                &[]
            } else {
                let offsets = offsets.ok_or_else(|| {
                    "'InferResult' object has no attribute '_output_name_to_buffer_map'".to_string()
                })?;
                let start = *offsets.get(name).ok_or_else(|| key_error(name))?;
                let end = start.saturating_add(size.max(0) as usize);
                &blobs[start.min(blobs.len())..end.min(blobs.len())]
            };
            let data = match dtype {
                Dtype::Object => ArrayData::Objects(bytes_elements(blob)?),
                _ => {
                    let elem = dt.size().expect("numeric datatypes have a size");
                    if !blob.len().is_multiple_of(elem) {
                        return Err("buffer size must be a multiple of element size".into());
                    }
                    let n = blob.len() / elem;
                    ArrayData::Typed(
                        mlserver_types::binary::decode_blob(name, dt, blob, n)
                            .map_err(|e| e.to_string())?,
                    )
                }
            };
            (data.len(), data)
        }
        None => {
            let value = output.get("data").ok_or_else(|| key_error("data"))?;
            // The nesting does not matter: the array is reshaped next.
            let (_, data) = np_array(value, dtype)?;
            (data.len(), data)
        }
    };
    let shape = match output.get("shape") {
        Some(Json::Array(dims)) => dims
            .iter()
            .map(|d| match d {
                Json::Int(i) => Ok(*i),
                other => Err(format!(
                    "'{}' object cannot be interpreted as an integer",
                    other.py_type()
                )),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(Json::Int(i)) => vec![*i],
        Some(other) => {
            return Err(format!(
                "'{}' object cannot be interpreted as an integer",
                other.py_type()
            ))
        }
        None => return Err(key_error("shape")),
    };
    let dims = reshape(count, &shape, true)?;
    Ok((dims, dt, data))
}

fn grpc_full_response(
    response: InferenceResponse,
    binary_outputs: Option<Vec<String>>,
) -> Result<FullResponse, String> {
    let params = |p: Option<mlserver_types::Parameters>| -> Result<Option<Params>, String> {
        p.map(|p| Params::from_map(p.0.into_iter().map(|(k, v)| (k, Json::from_serde(v)))))
            .transpose()
    };
    let mut outputs: Vec<OutTensor> = Vec::with_capacity(response.outputs.len());
    for t in response.outputs {
        let data = match t.data {
            TensorData::Bytes(v) => ArrayData::Objects(
                v.iter()
                    .map(|b| bytes_to_json(b))
                    .collect::<Result<_, _>>()?,
            ),
            other => ArrayData::Typed(other),
        };
        // Over REST, an output that comes back binary carries parameters
        // (at least `binary_data_size`, removed) and a JSON one may carry
        // none, which gets NumpyCodec's `content_type`. gRPC has no such
        // difference, so outputs are treated as the REST call would have
        // had them: the file is the same whichever transport wrote it.
        let binary = binary_outputs
            .as_ref()
            .is_none_or(|names| names.contains(&t.name));
        let p = match t.parameters.filter(|p| !p.is_empty()) {
            None if binary => Some(Params::default()),
            other => params(other)?,
        };
        outputs.push(out_tensor(t.name, t.datatype, t.shape, p, data)?);
    }
    Ok(FullResponse {
        model_name: response.model_name,
        model_version: response.model_version,
        id: response.id,
        params: params(response.parameters)?,
        outputs,
    })
}

impl Json {
    /// A serde_json value (gRPC parameters) as a [`Json`].
    pub(crate) fn from_serde(v: serde_json::Value) -> Json {
        match v {
            serde_json::Value::Null => Json::Null,
            serde_json::Value::Bool(b) => Json::Bool(b),
            serde_json::Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Json::Int(i.into()),
                (_, Some(u)) => Json::Int(u.into()),
                _ => Json::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            serde_json::Value::String(s) => Json::Str(s),
            serde_json::Value::Array(a) => {
                Json::Array(a.into_iter().map(Json::from_serde).collect())
            }
            serde_json::Value::Object(m) => Json::Object(
                m.into_iter()
                    .map(|(k, v)| (k, Json::from_serde(v)))
                    .collect(),
            ),
        }
    }
}

pub(crate) struct GrpcClient {
    /// `None` when the address could not be used: every call fails.
    client: Option<GrpcInferenceServiceClient<Channel>>,
    model: String,
    metadata: Vec<(
        MetadataKey<tonic::metadata::Ascii>,
        MetadataValue<tonic::metadata::Ascii>,
    )>,
    binary: bool,
    extra_verbose: bool,
}

impl GrpcClient {
    async fn infer(&self, request: &WireRequest) -> Result<Answer, SendError> {
        let Some(client) = &self.client else {
            return Err(SendError::new("invalid gRPC address"));
        };
        let inputs = request
            .inputs
            .iter()
            .map(|i| Tensor {
                name: i.name.clone(),
                shape: i.shape.clone(),
                datatype: i.datatype,
                parameters: None,
                data: i.data.clone(),
            })
            .collect();
        let v2 = InferenceRequest {
            id: (!request.id.is_empty()).then(|| request.id.clone()),
            parameters: None,
            inputs,
            outputs: (!request.outputs.is_empty())
                .then(|| request.outputs.iter().map(RequestOutput::new).collect()),
            json: None,
            headers: None,
        };
        let message = convert::encode_infer_request(&self.model, None, v2, self.binary);
        if self.extra_verbose {
            tracing::debug!("ModelInfer {:?}", message);
        }
        let mut call = tonic::Request::new(message);
        for (k, v) in &self.metadata {
            call.metadata_mut().insert(k.clone(), v.clone());
        }
        if !request.id.is_empty() {
            if let Ok(v) = MetadataValue::try_from(request.id.as_str()) {
                call.metadata_mut().insert("seldon-puid", v.clone());
                call.metadata_mut().insert("x-request-id", v);
            }
        }
        let response = client.clone().model_infer(call).await.map_err(|status| {
            let detail = format!("gRPC status {:?}", status.code());
            if status.code() == tonic::Code::DeadlineExceeded
                || status.code() == tonic::Code::Cancelled
            {
                SendError {
                    message: String::new(),
                    detail: Some(format!("{detail}: {}", status.message())),
                }
            } else if status.message().is_empty() {
                SendError::new(detail)
            } else {
                SendError {
                    message: status.message().to_string(),
                    detail: Some(detail),
                }
            }
        })?;
        let response = response.into_inner();
        if self.extra_verbose {
            tracing::debug!("{:?}", response);
        }
        let binary_outputs = match (request.outputs.is_empty(), self.binary) {
            (true, _) => None,
            (false, true) => Some(request.outputs.clone()),
            (false, false) => Some(Vec::new()),
        };
        convert::decode_infer_response(response)
            .map(|response| Answer::Grpc {
                response,
                binary_outputs,
            })
            .map_err(|e| SendError::new(e.to_string()))
    }
}

mod tls {
    //! The gRPC channel, plain or over TLS. tonic's own TLS is not used:
    //! it cannot skip certificate checks (`--insecure`), and its features
    //! would change the server crates' tonic too. With `--use-ssl` the
    //! channel connects through [`connect`]: TCP, then a rustls handshake
    //! offering `h2`, against the system's roots or, with `--insecure`,
    //! accepting any certificate.

    use std::sync::Arc;

    use hyper_util::rt::TokioIo;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};
    use tonic::transport::{Channel, Endpoint, Uri};

    use crate::{BatchError, InferArgs};

    pub(super) fn channel(endpoint: Endpoint, args: &InferArgs) -> Result<Channel, BatchError> {
        if !args.use_ssl {
            return Ok(endpoint.connect_lazy());
        }
        let config = Arc::new(client_config(args.insecure)?);
        let connector = tower::service_fn(move |uri: Uri| connect(uri, config.clone()));
        Ok(endpoint.connect_with_connector_lazy(connector))
    }

    /// The rustls client configuration: ring, the system's trusted roots
    /// (or none checked with `insecure`), ALPN `h2`.
    pub(crate) fn client_config(insecure: bool) -> Result<rustls::ClientConfig, BatchError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| BatchError::Client {
                transport: "grpc",
                reason: e.to_string(),
            })?;
        let mut config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(BatchError::Client {
                    transport: "grpc",
                    reason: format!("no trusted root certificates found: {:?}", found.errors),
                });
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    async fn connect(
        uri: Uri,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<
        TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
        Box<dyn std::error::Error + Send + Sync>,
    > {
        let host = uri.host().ok_or("the address has no host")?;
        // `[::1]` in a URI, `::1` to connect to and to check the certificate against.
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(443);
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        tcp.set_nodelay(true)?;
        let name = ServerName::try_from(host)?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        Ok(TokioIo::new(tls))
    }

    /// `--insecure`: every certificate is accepted; signatures are still
    /// checked, so the session is encrypted to whoever holds the key.
    #[derive(Debug)]
    struct AcceptAny(Arc<CryptoProvider>);

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::WireInput;

    #[test]
    fn headers_as_mlserver_reads_them() {
        let h = parse_headers(&[
            "A: 1".into(),
            "B:2".into(),
            "bad".into(),
            "C: http://x".into(),
            "A: 3".into(),
        ]);
        assert_eq!(h, vec![("A".into(), "3".into()), ("B".into(), "2".into())]);
    }

    #[test]
    fn model_names_are_quoted_as_urllib_does() {
        assert_eq!(quote("sum-model"), "sum-model");
        assert_eq!(quote("a b/c?é"), "a%20b/c%3F%C3%A9");
    }

    #[test]
    fn rest_bodies_are_tritonclients() {
        let request = WireRequest {
            id: "a".into(),
            inputs: vec![WireInput {
                name: "x".into(),
                shape: vec![1, 3],
                datatype: Datatype::Fp32,
                data: TensorData::Fp32(vec![0.1, f32::NAN, 1e-7]),
            }],
            outputs: vec![],
        };
        let (json, blobs) = rest_body(&request, false);
        assert_eq!(
            json,
            r#"{"id":"a","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[0.10000000149011612,NaN,1.0000000116860974e-07]}],"parameters":{"binary_data_output":true}}"#
        );
        assert!(blobs.is_empty());
        let request = WireRequest {
            id: String::new(),
            outputs: vec!["y".into()],
            inputs: vec![WireInput {
                name: "s".into(),
                shape: vec![1],
                datatype: Datatype::Bytes,
                data: TensorData::Bytes(vec![b"hi".to_vec()]),
            }],
        };
        let (json, blobs) = rest_body(&request, true);
        assert_eq!(
            json,
            r#"{"inputs":[{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}"#
        );
        assert_eq!(blobs, b"\x02\x00\x00\x00hi");
    }

    #[test]
    fn rest_error_messages_as_the_patched_client_makes_them() {
        assert_eq!(
            rest_error_message(br#"{"error": "Model nope not found"}"#),
            "Model nope not found"
        );
        assert_eq!(
            rest_error_message(br#"{"detail": [{"loc": ["body"], "msg": "\u00e9"}]}"#),
            r#"[{"loc": ["body"], "msg": "\u00e9"}]"#
        );
        assert_eq!(rest_error_message(b""), "");
        assert_eq!(rest_error_message(br#"{"x": 1}"#), "'detail'");
        assert_eq!(
            rest_error_message(b"Internal Server Error"),
            "Expecting value: line 1 column 1 (char 0)"
        );
    }

    #[test]
    fn binary_responses_decode_by_offset() {
        let header = Json::parse(
            br#"{"model_name":"m","id":"i","parameters":{},"outputs":[{"name":"a","shape":[2],"datatype":"FP32","parameters":{"binary_data_size":8}},{"name":"s","shape":[1],"datatype":"BYTES","parameters":{"content_type":"str","binary_data_size":7}}]}"#,
        )
        .unwrap();
        let offsets = binary_offsets(&header).unwrap();
        let mut blobs = Vec::new();
        blobs.extend(1.5f32.to_le_bytes());
        blobs.extend(2.5f32.to_le_bytes());
        blobs.extend(3u32.to_le_bytes());
        blobs.extend(b"abc");
        let full = Answer::Rest {
            header,
            blobs: Bytes::from(blobs),
            offsets: Some(offsets),
        }
        .into_full_response()
        .unwrap();
        assert_eq!(full.outputs[0].shape, vec![2, 1]);
        assert_eq!(full.outputs[0].params, Params::default());
        assert_eq!(
            full.outputs[0].data,
            ArrayData::Typed(TensorData::Fp32(vec![1.5, 2.5]))
        );
        assert_eq!(full.outputs[1].params, Params::content_type("str"));
        assert_eq!(
            full.outputs[1].data,
            ArrayData::Objects(vec![Json::Str("abc".into())])
        );
        assert!(binary_offsets(&Json::parse(b"{}").unwrap()).is_err());
    }

    #[test]
    fn json_responses_go_through_numpy() {
        let header = Json::parse(
            br#"{"model_name":"m","model_version":"2","outputs":[{"name":"a","shape":[-1],"datatype":"INT64","data":[1.7,"2"]},{"name":"b","shape":[1],"datatype":"FP32","data":[null]}]}"#,
        )
        .unwrap();
        let full = Answer::Rest {
            header,
            blobs: Bytes::new(),
            offsets: None,
        }
        .into_full_response()
        .unwrap();
        assert_eq!(full.model_version.as_deref(), Some("2"));
        assert_eq!(full.id, None);
        assert_eq!(full.outputs[0].shape, vec![2, 1]);
        assert_eq!(
            full.outputs[0].data,
            ArrayData::Typed(TensorData::Int64(vec![1, 2]))
        );
        assert_eq!(full.outputs[0].params, Params::content_type("np"));
        let bad = Json::parse(br#"{"model_name":"m","outputs":[{"name":"a","shape":[1],"datatype":"BF16","data":[1]}]}"#).unwrap();
        assert!(Answer::Rest {
            header: bad,
            blobs: Bytes::new(),
            offsets: None
        }
        .into_full_response()
        .is_err());
    }
}
