//! `mlserver_xgboost.XGBoostModel`, natively.
//!
//! MLServer 1.7.1 loads the file through XGBoost's scikit-learn interface
//! (`XGBRegressor`, or `XGBClassifier` when the file says it was saved by
//! one) and answers the outputs `predict` and `predict_proba` with what
//! those methods return, through `inplace_predict` on the decoded numpy
//! array. This runtime reproduces each step on [`mlserver_trees::Model`].

use std::path::Path;

use async_trait::async_trait;
use mlserver_runtime::{MLModel, MLServerError, ModelContext, Native, NativeModel};
use mlserver_trees::{LoadError, Model, PredictOptions};
use mlserver_types::{InferenceRequest, InferenceResponse, RequestOutput, Tensor, TensorData};

use crate::request::{self, numpy_output, INFERENCE_ERROR};

/// The file names MLServer's runtime looks for in a model folder.
const WELLKNOWN_MODEL_FILENAMES: [&str; 3] = ["model.bst", "model.json", "model.ubj"];
const PREDICT: &str = "predict";
const PREDICT_PROBA: &str = "predict_proba";

/// Which scikit-learn class MLServer ends up holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Estimator {
    Regressor,
    /// `n_classes_` as `XGBClassifier` sets it (2 for binary models).
    Classifier {
        n_classes: usize,
    },
}

/// An XGBoost model served as `mlserver_xgboost.XGBoostModel` serves it.
pub struct XGBoostModel {
    ctx: ModelContext,
    model: Model,
    estimator: Estimator,
    /// The trees `predict` uses: up to `best_iteration`, as the
    /// scikit-learn interface applies it.
    options: PredictOptions,
}

impl XGBoostModel {
    fn read(ctx: ModelContext, path: &Path) -> Result<Native<Self>, MLServerError> {
        let bytes = std::fs::read(path).map_err(|e| {
            MLServerError::bad_request(format!("cannot read {}: {e}", path.display()))
        })?;
        let model = match Model::from_bytes(&bytes) {
            Ok(model) => model,
            Err(LoadError::Unsupported(what)) => return Ok(Native::Declines(what)),
            Err(e) => {
                return Err(MLServerError::bad_request(format!(
                    "invalid XGBoost model {}: {e}",
                    path.display()
                )))
            }
        };
        let estimator = match estimator_type(&model) {
            None | Some("regressor") => Estimator::Regressor,
            Some("classifier") => Estimator::Classifier {
                n_classes: model.num_class().max(2),
            },
            Some(other) => {
                return Ok(Native::Declines(format!(
                    "the file was saved by a scikit-learn estimator of type '{other}'"
                )))
            }
        };
        if let Estimator::Classifier { n_classes } = estimator {
            if model.objective() == "multi:softmax" {
                // predict_proba is scipy's float32 softmax over the margins,
                // whose exp is numpy's own (not the C library's).
                return Ok(Native::Declines(
                    "predict_proba of a multi:softmax XGBClassifier is computed by numpy".into(),
                ));
            }
            let cols = model.output_columns(false);
            if cols > 1 && cols != n_classes && n_classes != 2 {
                return Ok(Native::Declines(format!(
                    "a classifier with {cols} outputs per row and {n_classes} classes"
                )));
            }
        }
        let options = PredictOptions {
            output_margin: false,
            rounds: model.best_iteration().map(|best| 0..best + 1),
            inplace: true,
            // MLSERVER_RS_FAST_PATHS=0 turns the fast paths off, this one
            // (eight trees walked in lockstep) too.
            one_tree_at_a_time: std::env::var("MLSERVER_RS_FAST_PATHS").as_deref() == Ok("0"),
        };
        Ok(Native::Serves(XGBoostModel {
            ctx,
            model,
            estimator,
            options,
        }))
    }

    /// XGBoost's `predict` values (what `XGBRegressor.predict` returns) for
    /// the decoded input, and the shape numpy gives them.
    fn values(&self, input: &Tensor) -> Result<(Vec<f32>, usize, Option<usize>), MLServerError> {
        let features = self.model.num_features();
        // numpy reshapes the data to the input's shape; XGBoost takes a 1-D
        // array as one column and refuses other ranks.
        let (rows, cols) = match input.shape.as_slice() {
            [n, f] => {
                if *f != features {
                    return Err(MLServerError::bad_request(format!(
                        "Feature shape mismatch, expected: {features}, got {f}"
                    )));
                }
                (*n, *f)
            }
            [n] => (*n, 1),
            _ => {
                return Err(MLServerError::bad_request(
                    "XGBoost: Only 2 dimensional array is valid.",
                ))
            }
        };
        if cols != features {
            return Err(MLServerError::bad_request(format!(
                "XGBoost: Number of columns in data must equal to the trained model ({cols} vs. {features})"
            )));
        }
        let data = request::to_f32(&input.data).ok_or_else(|| {
            MLServerError::bad_request(format!("input is {}, not a number", input.datatype))
        })?;
        let values = self
            .model
            .predict_with(&data, rows, &self.options)
            .map_err(|e| MLServerError::bad_request(e.to_string()))?;
        // XGBoost's result is [n, k] only when it has rows.
        let out_cols = self.model.output_columns(false);
        Ok((values, rows, (out_cols > 1 && rows > 0).then_some(out_cols)))
    }

    /// Output `name` from the `predict` values `p` (`rows` of `cols`).
    fn output(
        &self,
        name: &str,
        (p, rows, cols): (Vec<f32>, usize, Option<usize>),
    ) -> Result<Tensor, MLServerError> {
        let data = match (name, self.estimator) {
            (PREDICT, Estimator::Regressor) => TensorData::Fp32(p),
            (PREDICT, Estimator::Classifier { n_classes }) => {
                return Ok(match cols {
                    Some(k) if n_classes != 2 => numpy_output(name, rows, None, argmax(&p, k))?,
                    // Multi-label: float64 zeros and ones.
                    Some(k) => numpy_output(
                        name,
                        rows,
                        Some(k),
                        TensorData::Fp64(p.iter().map(|&v| f64::from(u8::from(v > 0.5))).collect()),
                    )?,
                    None => numpy_output(
                        name,
                        rows,
                        None,
                        TensorData::Int64(p.iter().map(|&v| i64::from(v > 0.5)).collect()),
                    )?,
                });
            }
            (_, Estimator::Classifier { .. }) => {
                if cols.is_some() {
                    TensorData::Fp32(p)
                } else {
                    // np.vstack((1 - p, p)).T
                    let both = p.iter().flat_map(|&v| [1.0 - v, v]).collect();
                    return numpy_output(name, rows, Some(2), TensorData::Fp32(both));
                }
            }
            (_, Estimator::Regressor) => unreachable!("checked in `check_outputs`"),
        };
        numpy_output(name, rows, cols, data)
    }

    /// `_check_request`: the outputs asked for (by default `predict`).
    fn check_outputs(&self, request: &InferenceRequest) -> Result<Vec<String>, MLServerError> {
        let names: Vec<String> = match request.outputs.as_deref() {
            None | Some([]) => vec![PREDICT.to_owned()],
            Some(outputs) => outputs.iter().map(|o| o.name.clone()).collect(),
        };
        if let Some(bad) = names.iter().find(|n| *n != PREDICT && *n != PREDICT_PROBA) {
            return Err(MLServerError::inference(format!(
                "{INFERENCE_ERROR}XGBoostModel only supports '{PREDICT}' and '{PREDICT_PROBA}' as outputs ({bad} was received)"
            )));
        }
        if self.estimator == Estimator::Regressor && names.iter().any(|n| n == PREDICT_PROBA) {
            return Err(MLServerError::inference(format!(
                "{INFERENCE_ERROR}XGBRegressor models do not support '{PREDICT_PROBA}"
            )));
        }
        Ok(names)
    }
}

/// `np.argmax(p, axis=1)`: the first largest, a NaN counting as largest.
fn argmax(p: &[f32], k: usize) -> TensorData {
    TensorData::Int64(
        p.chunks_exact(k)
            .map(|row| {
                let mut best = 0;
                for (i, &v) in row.iter().enumerate() {
                    if v.is_nan() {
                        best = i;
                        break;
                    }
                    if v > row[best] {
                        best = i;
                    }
                }
                best as i64
            })
            .collect(),
    )
}

/// `_estimator_type` of the `scikit_learn` attribute the scikit-learn
/// interface saves, which decides the class `load_model` accepts.
fn estimator_type(model: &Model) -> Option<&'static str> {
    let (_, meta) = model
        .attributes()
        .iter()
        .find(|(k, _)| k == "scikit_learn")?;
    let meta: serde_json::Value = serde_json::from_str(meta).ok()?;
    match meta.get("_estimator_type")?.as_str()? {
        "regressor" => Some("regressor"),
        "classifier" => Some("classifier"),
        _ => Some("other"),
    }
}

#[async_trait]
impl NativeModel for XGBoostModel {
    async fn load_native(ctx: ModelContext) -> Result<Native<Self>, MLServerError> {
        request::load_local(ctx, &WELLKNOWN_MODEL_FILENAMES, Self::read).await
    }

    fn declines(&self, request: &InferenceRequest) -> Option<String> {
        let settings = self.ctx.settings();
        if let Some(why) = request::declines(request, settings) {
            return Some(why);
        }
        let requested = request.outputs.as_deref().unwrap_or_default();
        if requested.is_empty() {
            return request::output_declines(None, PREDICT, settings);
        }
        requested
            .iter()
            .find_map(|o: &RequestOutput| request::output_declines(Some(o), &o.name, settings))
    }
}

#[async_trait]
impl MLModel for XGBoostModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        match Self::load_native(ctx).await? {
            Native::Serves(m) => Ok(m),
            Native::Declines(why) => Err(MLServerError::bad_request(why)),
        }
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let names = self.check_outputs(&request)?;
        let input = request::single_input(&request)?;
        // MLServer's runtime predicts once per output asked for; both
        // outputs come from the same values, computed once here.
        let values = self.values(input)?;
        let outputs = names
            .iter()
            .map(|name| self.output(name, values.clone()))
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
