//! One micro-batch, from input lines to output lines, as MLServer 1.7.1's
//! `batch_processing` handles it:
//!
//! 1. every line is parsed and validated; a line that is JSON but not a
//!    request becomes an error line with pydantic's errors; a line with no
//!    `id` gets a fresh UUID (and lines sharing an id keep only the last);
//! 2. the valid requests are merged into one (`BatchedRequests`): inputs of
//!    the same name are concatenated along the first axis, the requested
//!    outputs are the union of the names, the id is the single request's or
//!    a new UUID;
//! 3. each merged input is read the way NumPy reads it ([`crate::ndarray`]);
//! 4. after the call, each output is split back by each request's first
//!    dimension, and each response gets `batch_index` (its line number) and
//!    `inference_id` (the merged request's id) in its parameters.
//!
//! A step MLServer does not survive (data NumPy cannot read, lists that do
//! not concatenate, an output it cannot split) loses the whole batch: no
//! line is written for any of its requests, and the reason is logged. That
//! is MLServer's behaviour and is kept, so an output file is the same either
//! way.

use indexmap::IndexMap;
use mlserver_types::{Datatype, TensorData};

use crate::json::Json;
use crate::ndarray::{np_array, reshape, ArrayData, Dtype};
use crate::validate::{self, Input, Request};

/// One line of the input file, numbered from 0.
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) index: usize,
    pub(crate) line: Vec<u8>,
}

/// What an output line reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineKind {
    /// An inference response.
    Response,
    /// An error entry (`{"parameters": ..., "error": ...}`).
    Error,
}

/// One line of the output file (without its newline).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutputLine {
    pub(crate) index: usize,
    pub(crate) kind: LineKind,
    pub(crate) text: String,
}

/// An input of the request sent for a batch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireInput {
    pub(crate) name: String,
    pub(crate) shape: Vec<usize>,
    pub(crate) datatype: Datatype,
    pub(crate) data: TensorData,
}

/// The request sent for a batch: what tritonclient's `infer` is given.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireRequest {
    /// Empty when the (single) request line had `"id": ""`: then no id is
    /// sent, as tritonclient omits an empty one.
    pub(crate) id: String,
    pub(crate) inputs: Vec<WireInput>,
    /// The outputs asked for; empty asks for all of them.
    pub(crate) outputs: Vec<String>,
}

/// A batch ready to send.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) request: WireRequest,
    /// Request id -> rows it put in the merged inputs, in MLServer's order.
    minibatch: IndexMap<String, i128>,
    /// Request id -> its line number.
    pub(crate) indices: IndexMap<String, usize>,
    /// Error lines for the lines that are not valid requests.
    pub(crate) invalid: Vec<OutputLine>,
    /// Every line of the batch was invalid: nothing is sent.
    pub(crate) nothing_to_send: bool,
}

/// Validates and merges a batch. `Err` is a failure that loses the whole
/// batch in MLServer (its message is what MLServer logs).
pub(crate) fn preprocess(
    items: &[Item],
    new_id: &mut dyn FnMut() -> String,
) -> Result<Prepared, String> {
    let mut requests: IndexMap<String, Request> = IndexMap::new();
    let mut indices: IndexMap<String, usize> = IndexMap::new();
    let mut invalid = Vec::new();
    for item in items {
        let value = Json::parse(&item.line).map_err(|e| e.to_string())?;
        match validate::validate(&value) {
            Ok(mut request) => {
                let id = request.id.clone().unwrap_or_else(&mut *new_id);
                request.id = Some(id.clone());
                requests.insert(id.clone(), request);
                indices.insert(id, item.index);
            }
            Err(errors) => {
                tracing::error!(
                    "preprocessing error: batch_index={}, error={}",
                    item.index,
                    validate::describe(&errors)
                );
                let msg = Json::Array(errors.iter().map(|e| e.to_json()).collect());
                invalid.push(error_line(item.index, msg));
            }
        }
    }
    let (inputs, outputs, minibatch) = merge(&requests)?;
    let id = if requests.len() == 1 {
        requests.keys().next().cloned().unwrap_or_default()
    } else {
        new_id()
    };
    let inputs = inputs
        .into_iter()
        .map(|(name, datatype, shape, data)| to_wire(name, datatype, shape, &data))
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Prepared {
        request: WireRequest {
            id,
            inputs,
            outputs,
        },
        minibatch,
        indices,
        nothing_to_send: invalid.len() == items.len(),
        invalid,
    })
}

type MergedInput = (String, Datatype, Vec<i128>, Json);

/// The merged inputs, the output names asked for, and each request's rows.
type Merged = (Vec<MergedInput>, Vec<String>, IndexMap<String, i128>);

/// `BatchedRequests._merge_requests`: inputs grouped by name in order of
/// first appearance, each concatenated; outputs the union of the names.
fn merge(requests: &IndexMap<String, Request>) -> Result<Merged, String> {
    let mut heads: IndexMap<&str, IndexMap<&str, &Input>> = IndexMap::new();
    let mut outputs: IndexMap<&str, ()> = IndexMap::new();
    for (id, request) in requests {
        for input in &request.inputs {
            heads
                .entry(input.name.as_str())
                .or_default()
                .insert(id.as_str(), input);
        }
        for name in request.outputs.iter().flatten() {
            outputs.insert(name.as_str(), ());
        }
    }
    let mut minibatch: IndexMap<String, i128> = IndexMap::new();
    let mut merged = Vec::with_capacity(heads.len());
    for (name, by_request) in &heads {
        let mut rows = 0i128;
        let mut all_data = Vec::with_capacity(by_request.len());
        for (id, input) in by_request {
            let first = *input
                .shape
                .first()
                .ok_or_else(|| "list index out of range".to_string())?;
            minibatch.insert((*id).to_string(), first);
            rows += first;
            all_data.push(&input.data);
        }
        let sampled = by_request.values().next().expect("a head has an input");
        let mut shape = sampled.shape.clone();
        shape[0] = rows;
        merged.push((
            (*name).to_string(),
            sampled.datatype,
            shape,
            merge_data(&all_data)?,
        ));
    }
    Ok((
        merged,
        outputs.keys().map(|s| (*s).to_string()).collect(),
        minibatch,
    ))
}

/// `_merge_data`: strings are joined, lists concatenated, anything else
/// collected into a list.
fn merge_data(all: &[&Json]) -> Result<Json, String> {
    match all[0] {
        Json::Str(_) => {
            let mut joined = String::new();
            for (i, d) in all.iter().enumerate() {
                match d {
                    Json::Str(s) => joined.push_str(s),
                    other => {
                        return Err(format!(
                            "sequence item {i}: expected str instance, {} found",
                            other.py_type()
                        ))
                    }
                }
            }
            Ok(Json::Str(joined))
        }
        Json::Array(_) => {
            let mut items = Vec::new();
            for d in all {
                match d {
                    Json::Array(a) => items.extend(a.iter().cloned()),
                    other => {
                        return Err(format!(
                            "can only concatenate list (not \"{}\") to list",
                            other.py_type()
                        ))
                    }
                }
            }
            Ok(Json::Array(items))
        }
        _ => Ok(Json::Array(all.iter().map(|d| (*d).clone()).collect())),
    }
}

/// `NumpyCodec.decode_input` then tritonclient's `set_data_from_numpy`.
fn to_wire(
    name: String,
    datatype: Datatype,
    shape: Vec<i128>,
    data: &Json,
) -> Result<WireInput, String> {
    let dtype = match datatype {
        Datatype::Bytes => {
            let flat_strings = matches!(data, Json::Array(items) if items.iter().all(|i| matches!(i, Json::Str(_))));
            if flat_strings {
                Dtype::Unicode
            } else {
                let last = *shape.last().expect("merged shapes have a first axis");
                Dtype::FixedBytes(
                    usize::try_from(last)
                        .map_err(|_| format!("negative dimensions are not allowed ({last})"))?,
                )
            }
        }
        other => Dtype::Num(other),
    };
    let (_, array) = np_array(data, dtype)?;
    let ArrayData::Typed(data) = array else {
        unreachable!("inputs are never object arrays")
    };
    let shape = reshape(data.len(), &shape, false)?;
    Ok(WireInput {
        name,
        shape,
        datatype,
        data,
    })
}

/// pydantic's `Parameters` once dumped: `None` values gone, `content_type`
/// and `headers` first (declared fields), then the rest in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Params(IndexMap<String, Json>);

impl Params {
    /// `{"content_type": ct}`.
    pub(crate) fn content_type(ct: &str) -> Params {
        let mut m = IndexMap::new();
        m.insert("content_type".into(), Json::Str(ct.into()));
        Params(m)
    }

    /// `Parameters(**value)`, failing as pydantic does for a non-object, a
    /// non-string `content_type` or a non-object `headers`.
    pub(crate) fn from_json(value: &Json) -> Result<Params, String> {
        let Json::Object(m) = value else {
            return Err(format!(
                "argument after ** must be a mapping, not {}",
                value.py_type()
            ));
        };
        Self::from_map(m.iter().map(|(k, v)| (k.clone(), v.clone())))
    }

    pub(crate) fn from_map(
        entries: impl Iterator<Item = (String, Json)>,
    ) -> Result<Params, String> {
        let mut out = IndexMap::new();
        for (k, v) in entries {
            match (k.as_str(), &v) {
                (_, Json::Null) => {
                    out.shift_remove(&k);
                    continue;
                }
                ("content_type", Json::Str(_)) | ("headers", Json::Object(_)) => {}
                ("content_type", other) => {
                    return Err(format!(
                        "1 validation error for Parameters\ncontent_type\n  Input should be a valid string [type=string_type, input_value={}, input_type={}]",
                        other.py_repr(),
                        other.py_type()
                    ))
                }
                ("headers", other) => {
                    return Err(format!(
                        "1 validation error for Parameters\nheaders\n  Input should be a valid dictionary [type=dict_type, input_value={}, input_type={}]",
                        other.py_repr(),
                        other.py_type()
                    ))
                }
                _ => {}
            }
            out.insert(k, v);
        }
        Ok(Params(out))
    }

    fn remove(&mut self, key: &str) {
        self.0.shift_remove(key);
    }

    /// The entries in dump order: declared fields first.
    fn ordered(&self) -> impl Iterator<Item = (&String, &Json)> {
        let declared = ["content_type", "headers"];
        declared
            .into_iter()
            .filter_map(|k| self.0.get_key_value(k))
            .chain(
                self.0
                    .iter()
                    .filter(move |(k, _)| !declared.contains(&k.as_str())),
            )
    }

    fn write(&self, out: &mut String) {
        out.push('{');
        for (i, (k, v)) in self.ordered().enumerate() {
            if i > 0 {
                out.push(',');
            }
            crate::json::write_json_str(k, out);
            out.push(':');
            v.write_pydantic(out);
        }
        out.push('}');
    }
}

/// A response output as MLServer holds it after `NumpyCodec.encode_output`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OutTensor {
    pub(crate) name: String,
    /// With `inject_batch_dimension` applied (`[N]` is `[N, 1]`).
    pub(crate) shape: Vec<i128>,
    pub(crate) datatype: Datatype,
    pub(crate) params: Params,
    pub(crate) data: ArrayData,
}

/// The whole response to a batch, as `infer_result_to_infer_response` makes it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FullResponse {
    pub(crate) model_name: String,
    pub(crate) model_version: Option<String>,
    pub(crate) id: Option<String>,
    pub(crate) params: Option<Params>,
    pub(crate) outputs: Vec<OutTensor>,
}

/// Builds an output from its NumPy array: the datatype NumPy's dtype maps
/// back to, the shape with its batch dimension, and the server's
/// parameters without `binary_data_size` (or NumpyCodec's
/// `{"content_type": "np"}` when the server sent none).
pub(crate) fn out_tensor(
    name: String,
    datatype: Datatype,
    dims: Vec<usize>,
    params: Option<Params>,
    data: ArrayData,
) -> Result<OutTensor, String> {
    if datatype == Datatype::Bf16 {
        // NumPy's bfloat16 has no MLServer datatype: to_datatype fails.
        return Err("'V'".into());
    }
    let mut shape: Vec<i128> = dims.iter().map(|&d| d as i128).collect();
    if shape.len() <= 1 {
        shape.push(1);
    }
    let params = match params {
        Some(mut p) => {
            p.remove("binary_data_size");
            p
        }
        None => Params::content_type("np"),
    };
    Ok(OutTensor {
        name,
        shape,
        datatype,
        params,
        data,
    })
}

/// Python's `seq[i]` for a possibly negative `i`.
fn py_index<T>(seq: &[T], i: i128) -> Option<&T> {
    let len = seq.len() as i128;
    let i = if i < 0 { i + len } else { i };
    if (0..len).contains(&i) {
        Some(&seq[i as usize])
    } else {
        None
    }
}

/// Python's `seq[start:end]` bounds for possibly negative ends.
fn py_slice_bounds(len: usize, start: i128, end: i128) -> (usize, usize) {
    let len_i = len as i128;
    let norm = |x: i128| {
        let x = if x < 0 { x + len_i } else { x };
        x.clamp(0, len_i) as usize
    };
    let (s, e) = (norm(start), norm(end));
    (s, e.max(s))
}

/// `_get_parameters` then `_split_parameters` for one output: every
/// parameter but `content_type` and `headers` is iterated (a string by
/// character) and each request gets the element at its row offset, as a
/// string; `content_type` and `headers` are copied to every request.
fn split_params(
    params: &Params,
    minibatch: &IndexMap<String, i128>,
) -> Result<Vec<Params>, String> {
    let mut spread: Vec<(&String, Vec<Json>)> = Vec::new();
    for (k, v) in params.ordered() {
        if k == "content_type" || k == "headers" {
            continue;
        }
        let values: Vec<Json> = match v {
            Json::Str(s) => s.chars().map(|c| Json::Str(c.to_string())).collect(),
            Json::Array(items) => items.clone(),
            Json::Object(m) => m.keys().map(|k| Json::Str(k.clone())).collect(),
            other => return Err(format!("'{}' object is not iterable", other.py_type())),
        };
        if !values.is_empty() {
            spread.push((k, values));
        }
    }
    let mut out = Vec::with_capacity(minibatch.len());
    let mut idx = 0i128;
    for rows in minibatch.values() {
        let mut p = IndexMap::new();
        for (k, values) in &spread {
            if let Some(v) = py_index(values, idx) {
                if *v != Json::Array(Vec::new()) {
                    p.insert((*k).clone(), Json::Str(v.py_str()));
                }
            }
        }
        for k in ["content_type", "headers"] {
            if let Some(v) = params.0.get(k) {
                p.insert(k.to_string(), v.clone());
            }
        }
        out.push(Params(p));
        idx += rows;
    }
    Ok(out)
}

struct SplitResponse {
    outputs: Vec<(String, Vec<i128>, Datatype, Params, ArrayData)>,
}

/// Splits the response back into one line per request (`split_response`
/// and `postprocess_items`). `Err` loses the batch, as in MLServer.
pub(crate) fn postprocess(
    full: &FullResponse,
    prepared: &Prepared,
) -> Result<Vec<OutputLine>, String> {
    let mut responses: IndexMap<&str, SplitResponse> = IndexMap::new();
    for output in &full.outputs {
        let elem: i128 = output.shape[1..].iter().product();
        let params = split_params(&output.params, &prepared.minibatch)?;
        let mut start = 0i128;
        for ((id, rows), params) in prepared.minibatch.iter().zip(params) {
            let end = start + rows * elem;
            let (s, e) = py_slice_bounds(output.data.len(), start, end);
            start = end;
            let mut shape = output.shape.clone();
            shape[0] = *rows;
            responses
                .entry(id.as_str())
                .or_insert_with(|| SplitResponse {
                    outputs: Vec::new(),
                })
                .outputs
                .push((
                    output.name.clone(),
                    shape,
                    output.datatype,
                    params,
                    output.data.slice(s, e),
                ));
        }
    }
    let mut lines = Vec::with_capacity(responses.len());
    for (id, split) in responses {
        let index = prepared.indices[id];
        let mut params: IndexMap<String, Json> = IndexMap::new();
        params.insert("batch_index".into(), Json::Int(index as i128));
        params.insert(
            "inference_id".into(),
            full.id.clone().map(Json::Str).unwrap_or(Json::Null),
        );
        if let Some(p) = &full.params {
            for (k, v) in p.ordered() {
                params.insert(k.clone(), v.clone());
            }
        }
        let params = Params::from_map(params.into_iter())?;
        let mut text = String::with_capacity(256);
        text.push_str("{\"model_name\":");
        crate::json::write_json_str(&full.model_name, &mut text);
        if let Some(v) = &full.model_version {
            text.push_str(",\"model_version\":");
            crate::json::write_json_str(v, &mut text);
        }
        text.push_str(",\"id\":");
        crate::json::write_json_str(id, &mut text);
        text.push_str(",\"parameters\":");
        params.write(&mut text);
        text.push_str(",\"outputs\":[");
        for (i, (name, shape, datatype, params, data)) in split.outputs.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str("{\"name\":");
            crate::json::write_json_str(name, &mut text);
            text.push_str(",\"shape\":[");
            for (j, d) in shape.iter().enumerate() {
                if j > 0 {
                    text.push(',');
                }
                text.push_str(&d.to_string());
            }
            text.push_str("],\"datatype\":\"");
            text.push_str(datatype.as_str());
            text.push_str("\",\"parameters\":");
            params.write(&mut text);
            text.push_str(",\"data\":");
            write_data(data, &mut text)?;
            text.push('}');
        }
        text.push_str("]}");
        lines.push(OutputLine {
            index,
            kind: LineKind::Response,
            text,
        });
    }
    Ok(lines)
}

/// An output's elements as pydantic writes `tolist()`'s Python values:
/// FP16 and FP32 widened to the double NumPy gives, non-finite as `null`,
/// byte strings as UTF-8 text.
fn write_data(data: &ArrayData, out: &mut String) -> Result<(), String> {
    match data {
        ArrayData::Objects(v) => {
            out.push('[');
            for (i, x) in v.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                x.write_pydantic(out);
            }
            out.push(']');
            Ok(())
        }
        ArrayData::Typed(t) => crate::json::write_tensor_elements(
            t,
            out,
            crate::json::write_pydantic_float,
            &mut |x, out| {
                let s = std::str::from_utf8(x).map_err(|e| {
                    format!("Error serializing to JSON: invalid utf-8 sequence: {e}")
                })?;
                crate::json::write_json_str(s, out);
                Ok(())
            },
        ),
    }
}

/// `{"parameters": {"batch_index": i}, "error": {"status": "preprocessing
/// error", "msg": msg}}`, written by `json.dumps` (MLServer labels every
/// failure "preprocessing error", including the server's refusals).
pub(crate) fn error_line(index: usize, msg: Json) -> OutputLine {
    let mut params = IndexMap::new();
    params.insert("batch_index".to_string(), Json::Int(index as i128));
    let mut error = IndexMap::new();
    error.insert(
        "status".to_string(),
        Json::Str("preprocessing error".into()),
    );
    error.insert("msg".to_string(), msg);
    let mut top = IndexMap::new();
    top.insert("parameters".to_string(), Json::Object(params));
    top.insert("error".to_string(), Json::Object(error));
    OutputLine {
        index,
        kind: LineKind::Error,
        text: Json::Object(top).py_dumps(),
    }
}

/// The lines for a batch whose request failed after every retry: one error
/// per request (in MLServer's order), then the invalid lines.
pub(crate) fn failure_lines(prepared: &Prepared, message: &str) -> Vec<OutputLine> {
    prepared
        .indices
        .values()
        .map(|&i| error_line(i, Json::Str(message.to_string())))
        .chain(prepared.invalid.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(lines: &[&str]) -> Vec<Item> {
        lines
            .iter()
            .enumerate()
            .map(|(index, l)| Item {
                index,
                line: format!("{l}\n").into_bytes(),
            })
            .collect()
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("uuid-{n}")
        }
    }

    fn response(outputs: Vec<OutTensor>, id: &str) -> FullResponse {
        FullResponse {
            model_name: "m".into(),
            model_version: None,
            id: Some(id.into()),
            params: Some(Params::default()),
            outputs,
        }
    }

    #[test]
    fn a_single_request_keeps_its_id_and_data() {
        let mut new_id = ids();
        let p = preprocess(
            &items(&[r#"{"id":"a","inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[1.1,2,"3"]}]}"#]),
            &mut new_id,
        )
        .unwrap();
        assert_eq!(p.request.id, "a");
        assert!(p.request.outputs.is_empty());
        assert_eq!(
            p.request.inputs,
            vec![WireInput {
                name: "x".into(),
                shape: vec![1, 3],
                datatype: Datatype::Fp32,
                data: TensorData::Fp32(vec![1.1, 2.0, 3.0]),
            }]
        );
        assert!(!p.nothing_to_send);
    }

    #[test]
    fn requests_merge_along_the_first_axis_and_split_back() {
        let mut new_id = ids();
        let p = preprocess(
            &items(&[
                r#"{"id":"a","inputs":[{"name":"x","shape":[1,2],"datatype":"INT64","data":[1,2]}]}"#,
                r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT64","data":[3,4,5,6]}],"outputs":[{"name":"y"}]}"#,
                r#"{"inputs":"nope"}"#,
            ]),
            &mut new_id,
        )
        .unwrap();
        // The line without an id got the first UUID, the batch the second.
        assert_eq!(p.request.id, "uuid-2");
        assert_eq!(p.request.outputs, vec!["y".to_string()]);
        assert_eq!(p.request.inputs[0].shape, vec![3, 2]);
        assert_eq!(
            p.request.inputs[0].data,
            TensorData::Int64(vec![1, 2, 3, 4, 5, 6])
        );
        assert_eq!(p.invalid.len(), 1);
        assert_eq!(p.invalid[0].index, 2);

        let full = response(
            vec![out_tensor(
                "y".into(),
                Datatype::Int64,
                vec![3],
                None,
                ArrayData::Typed(TensorData::Int64(vec![10, 20, 30])),
            )
            .unwrap()],
            "uuid-2",
        );
        let lines = postprocess(&full, &p).unwrap();
        let texts: Vec<&str> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                r#"{"model_name":"m","id":"a","parameters":{"batch_index":0,"inference_id":"uuid-2"},"outputs":[{"name":"y","shape":[1,1],"datatype":"INT64","parameters":{"content_type":"np"},"data":[10]}]}"#,
                r#"{"model_name":"m","id":"uuid-1","parameters":{"batch_index":1,"inference_id":"uuid-2"},"outputs":[{"name":"y","shape":[2,1],"datatype":"INT64","parameters":{"content_type":"np"},"data":[20,30]}]}"#,
            ]
        );
    }

    #[test]
    fn lists_that_numpy_cannot_stack_lose_the_batch() {
        // MLServer: flat [1,3] data followed by nested [2,3] data concatenate
        // into a ragged list, and the whole batch is dropped.
        let mut new_id = ids();
        let err = preprocess(
            &items(&[
                r#"{"inputs":[{"name":"input","shape":[1,3],"datatype":"FP32","data":[1.1,2.2,3.3]}]}"#,
                r#"{"inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[[1,2,3],[4,5,6]]}]}"#,
            ]),
            &mut new_id,
        )
        .unwrap_err();
        assert!(err.contains("inhomogeneous"), "{err}");
        // A line that is not JSON loses its batch too.
        assert!(preprocess(&items(&["", r#"{"inputs":[]}"#]), &mut new_id).is_err());
        // And data that does not fill the shape.
        let err = preprocess(
            &items(&[r#"{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","data":[1,2]}]}"#]),
            &mut new_id,
        )
        .unwrap_err();
        assert_eq!(err, "cannot reshape array of size 2 into shape (2, 3)");
    }

    #[test]
    fn duplicate_ids_keep_the_last_line() {
        let mut new_id = ids();
        let p = preprocess(
            &items(&[
                r#"{"id":"a","inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1]}]}"#,
                r#"{"id":"a","inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[2]}]}"#,
            ]),
            &mut new_id,
        )
        .unwrap();
        assert_eq!(p.request.id, "a");
        assert_eq!(p.request.inputs[0].data, TensorData::Int32(vec![2]));
        assert_eq!(p.indices.get("a"), Some(&1));
    }

    #[test]
    fn error_lines_are_json_dumps() {
        let mut new_id = ids();
        let p = preprocess(
            &items(&[
                r#"{"id":"a","inputs":[{"name":"x","shape":[1],"datatype":"BYTES","data":["é"]}]}"#,
                r#"{"id":"b","inputs":"nope"}"#,
            ]),
            &mut new_id,
        )
        .unwrap();
        assert_eq!(
            p.request.inputs[0].data,
            TensorData::Bytes(vec!["é".as_bytes().to_vec()])
        );
        let lines = failure_lines(&p, "sum needs a numeric input; 'é' is BYTES");
        assert_eq!(
            lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>(),
            vec![
                r#"{"parameters": {"batch_index": 0}, "error": {"status": "preprocessing error", "msg": "sum needs a numeric input; '\u00e9' is BYTES"}}"#,
                r#"{"parameters": {"batch_index": 1}, "error": {"status": "preprocessing error", "msg": [{"type": "list_type", "loc": ["inputs"], "msg": "Input should be a valid list", "input": "nope", "url": "https://errors.pydantic.dev/2.14/v/list_type"}]}}"#,
            ]
        );
        let all_bad = preprocess(&items(&["[]", "{}"]), &mut new_id).unwrap();
        assert!(all_bad.nothing_to_send);
    }

    #[test]
    fn output_parameters_split_as_mlserver_splits_them() {
        let mut new_id = ids();
        let p = preprocess(
            &items(&[
                r#"{"id":"a","inputs":[{"name":"x","shape":[1],"datatype":"INT32","data":[1]}]}"#,
                r#"{"id":"b","inputs":[{"name":"x","shape":[2],"datatype":"INT32","data":[2,3]}]}"#,
            ]),
            &mut new_id,
        )
        .unwrap();
        let params = Params::from_json(
            &Json::parse(br#"{"tags":["t0",[],"t2"],"word":"xyz","content_type":"np","headers":{"h":1},"gone":null}"#)
                .unwrap(),
        )
        .unwrap();
        let full = FullResponse {
            params: Some(
                Params::from_json(&Json::parse(br#"{"content_type":"r","z":1}"#).unwrap()).unwrap(),
            ),
            ..response(
                vec![out_tensor(
                    "o".into(),
                    Datatype::Fp32,
                    vec![3, 1],
                    Some(params),
                    ArrayData::Typed(TensorData::Fp32(vec![0.5, 1.5, 2.5])),
                )
                .unwrap()],
                "batch",
            )
        };
        let lines = postprocess(&full, &p).unwrap();
        assert_eq!(
            lines[0].text,
            r#"{"model_name":"m","id":"a","parameters":{"content_type":"r","batch_index":0,"inference_id":"batch","z":1},"outputs":[{"name":"o","shape":[1,1],"datatype":"FP32","parameters":{"content_type":"np","headers":{"h":1},"tags":"t0","word":"x"},"data":[0.5]}]}"#
        );
        // Request b starts at row 1: tags[1] is [] (left out), word[1] is "y".
        assert_eq!(
            lines[1].text,
            r#"{"model_name":"m","id":"b","parameters":{"content_type":"r","batch_index":1,"inference_id":"batch","z":1},"outputs":[{"name":"o","shape":[2,1],"datatype":"FP32","parameters":{"content_type":"np","headers":{"h":1},"word":"y"},"data":[1.5,2.5]}]}"#
        );
        // A parameter that cannot be iterated loses the batch.
        let bad = Params::from_json(&Json::parse(br#"{"n":1}"#).unwrap()).unwrap();
        let mut full = full.clone();
        full.outputs[0].params = bad;
        assert_eq!(
            postprocess(&full, &p).unwrap_err(),
            "'int' object is not iterable"
        );
    }

    #[test]
    fn a_request_without_inputs_gets_no_line() {
        let mut new_id = ids();
        let p = preprocess(
            &items(&[
                r#"{"id":"a","inputs":[]}"#,
                r#"{"id":"b","inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[true]}]}"#,
            ]),
            &mut new_id,
        )
        .unwrap();
        let full = response(
            vec![out_tensor(
                "x".into(),
                Datatype::Bool,
                vec![1],
                Some(Params::default()),
                ArrayData::Typed(TensorData::Bool(vec![true])),
            )
            .unwrap()],
            "uuid-1",
        );
        let lines = postprocess(&full, &p).unwrap();
        assert_eq!(lines.len(), 1);
        assert_eq!(
            lines[0].text,
            r#"{"model_name":"m","id":"b","parameters":{"batch_index":1,"inference_id":"uuid-1"},"outputs":[{"name":"x","shape":[1,1],"datatype":"BOOL","parameters":{},"data":[true]}]}"#
        );
    }
}
