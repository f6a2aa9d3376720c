//! `mlserver_sklearn.SKLearnModel`, natively after loading in Python.
//!
//! A `model.joblib` is a pickle: only Python reads it. MLServer's runtime
//! loads it in a worker as always; the worker then hands the fitted
//! estimator's parameters over (`sklearn_handover.py`, with scikit-learn's
//! own answers on probe rows), and this runtime serves the model from them
//! with [`mlserver_sklearn`]'s arithmetic once its answers on the probes are
//! scikit-learn's, bit for bit. A method whose probes disagree stays with
//! the Python runtime, loaded again for the requests that need it.
//!
//! What MLServer 1.7.1's `SKLearnModel.predict` does, step by step:
//! `_check_request` picks the outputs (those asked for, else the model's
//! `predict_fn` setting, else `predict`) and refuses names other than
//! `predict`, `predict_proba` and `transform`, and `predict_proba` when the
//! final estimator has none; the request is decoded as one numpy array;
//! each output is the method's result through numpy's codec.

use std::collections::BTreeMap;

use async_trait::async_trait;
use mlserver_runtime::{MLModel, MLServerError, ModelContext, Native, NativeModel};
use mlserver_sklearn::{Array, ArrayData, Matrix, MatrixData, Method, Model};
use mlserver_types::{InferenceRequest, InferenceResponse, Tensor, TensorData};
use tracing::warn;

use crate::request::{self, numpy_output, INFERENCE_ERROR};

/// The model-settings `parameters.extra` key naming the default output.
const PREDICT_FN_KEY: &str = "predict_fn";
const PREDICT: &str = "predict";
const PREDICT_PROBA: &str = "predict_proba";
const TRANSFORM: &str = "transform";

/// A scikit-learn model served as `mlserver_sklearn.SKLearnModel` serves it.
pub struct SKLearnModel {
    ctx: ModelContext,
    model: Model,
    /// `str(type(final_estimator))`, for MLServer's `predict_proba` error.
    final_type: String,
    /// Why each method the model has is not served here (its probes
    /// disagreed with scikit-learn's answers); absent when it is.
    python_only: BTreeMap<&'static str, String>,
}

impl SKLearnModel {
    /// Reads and checks what the worker handed over.
    fn take_over(ctx: ModelContext, payload: &[u8]) -> Native<Self> {
        let handover = match mlserver_sklearn::read(payload) {
            Ok(handover) => handover,
            Err(e) => return Native::Declines(format!("the hand-over cannot be read: {e}")),
        };
        let verdicts = handover.verify();
        let mut python_only = BTreeMap::new();
        for method in Method::ALL.into_iter().filter(|m| handover.model.has(*m)) {
            let why = match verdicts.iter().find(|(m, _)| *m == method) {
                Some((_, Ok(()))) => continue,
                Some((_, Err(why))) => format!("scikit-learn's {} differs: {why}", method.name()),
                None => format!("no probe checked {}", method.name()),
            };
            python_only.insert(method.name(), why);
        }
        if let Some(why) = python_only.get(PREDICT) {
            return Native::Declines(why.clone());
        }
        for why in python_only.values() {
            warn!(model = %ctx.name(), "left to the Python runtime: {why}");
        }
        Native::Serves(SKLearnModel {
            ctx,
            final_type: handover.final_type().to_owned(),
            model: handover.model,
            python_only,
        })
    }

    /// `_check_request`: the outputs to compute, or MLServer's error.
    fn outputs(&self, request: &InferenceRequest) -> Result<Vec<String>, MLServerError> {
        let names: Vec<String> = match request.outputs.as_deref() {
            None | Some([]) => vec![self.default_output().unwrap_or(PREDICT).to_owned()],
            Some(outputs) => {
                let names: Vec<String> = outputs.iter().map(|o| o.name.clone()).collect();
                if let Some(bad) = names.iter().find(|n| method(n).is_none()) {
                    return Err(MLServerError::inference(format!(
                        "{INFERENCE_ERROR}SKLearnModel only supports '{PREDICT}', '{PREDICT_PROBA}' and '{TRANSFORM}' as outputs ({bad} was received)"
                    )));
                }
                names
            }
        };
        if names.iter().any(|n| n == PREDICT_PROBA) && !self.model.has(Method::PredictProba) {
            return Err(MLServerError::inference(format!(
                "{INFERENCE_ERROR}{} models do not support '{PREDICT_PROBA}",
                self.final_type
            )));
        }
        Ok(names)
    }

    /// The `predict_fn` setting, which MLServer uses as the output's name
    /// (and the method to call) without checking it.
    fn default_output(&self) -> Option<&str> {
        self.ctx
            .extra()?
            .get(PREDICT_FN_KEY)
            .map(|v| v.as_str().unwrap_or("?"))
    }

    /// Why a method is not answered here.
    fn method_declines(&self, name: &str) -> Option<String> {
        let Some(m) = method(name) else {
            return Some(format!(
                "the output '{name}' is not one this runtime computes"
            ));
        };
        if !self.model.has(m) {
            return Some(format!("the model has no {name}"));
        }
        self.python_only.get(m.name()).cloned()
    }
}

fn method(name: &str) -> Option<Method> {
    match name {
        PREDICT => Some(Method::Predict),
        PREDICT_PROBA => Some(Method::PredictProba),
        TRANSFORM => Some(Method::Transform),
        _ => None,
    }
}

/// The input as the array numpy's codec gives scikit-learn, when it is one
/// this runtime takes: two dimensions, the model's features, at least a
/// row (scikit-learn's own errors for anything else are left to it).
fn matrix<'a>(input: &'a Tensor, model: &Model) -> Result<Matrix<'a>, String> {
    let (rows, cols) = match input.shape.as_slice() {
        [rows, cols] if *rows > 0 && *cols == model.n_features() => (*rows, *cols),
        shape => {
            return Err(format!(
                "input '{}' has shape {shape:?}; the model takes [n, {}]",
                input.name,
                model.n_features()
            ))
        }
    };
    let data = match &input.data {
        TensorData::Fp64(v) => MatrixData::F64(v),
        TensorData::Fp32(v) => MatrixData::F32(v),
        TensorData::Int64(v) => MatrixData::I64(v),
        TensorData::Int32(v) => MatrixData::I32(v),
        _ => return Err(format!("input '{}' is {}", input.name, input.datatype)),
    };
    Ok(Matrix { rows, cols, data })
}

/// numpy's codec on the method's result: `[n]` as `[n, 1]`, content type
/// `np`, strings as BYTES.
fn output(name: &str, array: Array) -> Result<Tensor, MLServerError> {
    let (rows, cols) = match array.shape.as_slice() {
        [n] => (*n, None),
        [n, k] => (*n, Some(*k)),
        shape => {
            return Err(MLServerError::internal(format!(
                "{name} returned shape {shape:?}"
            )))
        }
    };
    let data = match array.data {
        ArrayData::F64(v) => TensorData::Fp64(v),
        ArrayData::F32(v) => TensorData::Fp32(v),
        ArrayData::I64(v) => TensorData::Int64(v),
        ArrayData::I32(v) => TensorData::Int32(v),
        ArrayData::Bool(v) => TensorData::Bool(v),
        ArrayData::Str(v) => TensorData::Bytes(v.into_iter().map(String::into_bytes).collect()),
    };
    numpy_output(name, rows, cols, data)
}

#[async_trait]
impl NativeModel for SKLearnModel {
    async fn load_native(ctx: ModelContext) -> Result<Native<Self>, MLServerError> {
        let payload = match ctx.take_handover() {
            None => return Ok(Native::Declines("no parameters were handed over".into())),
            Some(Err(why)) => return Ok(Native::Declines(why)),
            Some(Ok(payload)) => payload,
        };
        // Reading and probing a large forest takes milliseconds.
        mlserver_runtime::blocking(move || Ok(Self::take_over(ctx, &payload))).await
    }

    fn declines(&self, request: &InferenceRequest) -> Option<String> {
        let settings = self.ctx.settings();
        if let Some(why) = request::declines(request, settings) {
            return Some(why);
        }
        match request.outputs.as_deref() {
            None | Some([]) => {
                let name = self.default_output().unwrap_or(PREDICT);
                if let Some(why) = self.method_declines(name) {
                    return Some(why);
                }
                if let Some(why) = request::output_declines(None, name, settings) {
                    return Some(why);
                }
            }
            Some(outputs) => {
                for o in outputs {
                    // Names MLServer refuses, and `predict_proba` of a model
                    // without one, are refused in `predict` as it does.
                    let refused = method(&o.name).is_none()
                        || (o.name == PREDICT_PROBA && !self.model.has(Method::PredictProba));
                    if refused {
                        continue;
                    }
                    let why = self
                        .method_declines(&o.name)
                        .or_else(|| request::output_declines(Some(o), &o.name, settings));
                    if why.is_some() {
                        return why;
                    }
                }
            }
        }
        // More than one input is numpy's codec error, answered in `predict`.
        let [input] = request.inputs.as_slice() else {
            return None;
        };
        match matrix(input, &self.model) {
            Ok(x) => self.model.declines(&x),
            Err(why) => Some(why),
        }
    }
}

#[async_trait]
impl MLModel for SKLearnModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        match Self::load_native(ctx).await? {
            Native::Serves(m) => Ok(m),
            Native::Declines(why) => Err(MLServerError::bad_request(why)),
        }
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let names = self.outputs(&request)?;
        let input = request::single_input(&request)?;
        let x = matrix(input, &self.model).map_err(MLServerError::bad_request)?;
        let outputs = names
            .iter()
            .map(|name| {
                let m = method(name)
                    .ok_or_else(|| MLServerError::bad_request(format!("no method {name}")))?;
                let array = self
                    .model
                    .run(m, &x)
                    .map_err(|e| MLServerError::bad_request(e.to_string()))?;
                output(name, array)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(InferenceResponse::new(outputs))
    }

    fn reads_headers(&self) -> bool {
        false
    }

    /// MLServer's runtime answers `request.outputs` itself.
    fn selects_outputs(&self) -> bool {
        true
    }
}
