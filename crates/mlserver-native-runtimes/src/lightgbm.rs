//! `mlserver_lightgbm.LightGBMModel`, natively.
//!
//! MLServer 1.7.1 loads the file with `lightgbm.Booster(model_file=...)`
//! and answers every request with one output, `predict`: what
//! `Booster.predict` returns for the decoded numpy array, whatever outputs
//! were asked for. This runtime does the same on
//! [`mlserver_trees::lightgbm::Model`].

use std::path::Path;

use async_trait::async_trait;
use mlserver_runtime::{MLModel, MLServerError, ModelContext, Native, NativeModel};
use mlserver_trees::lightgbm::{LoadError, Model, PredictOptions};
use mlserver_types::{InferenceRequest, InferenceResponse, TensorData};

use crate::request::{self, numpy_output};

/// The file name MLServer's runtime looks for in a model folder.
const WELLKNOWN_MODEL_FILENAMES: [&str; 1] = ["model.bst"];
const PREDICT: &str = "predict";

/// A LightGBM model served as `mlserver_lightgbm.LightGBMModel` serves it.
pub struct LightGBMModel {
    ctx: ModelContext,
    model: Model,
    options: PredictOptions,
}

impl LightGBMModel {
    fn read(ctx: ModelContext, path: &Path) -> Result<Native<Self>, MLServerError> {
        let bytes = std::fs::read(path).map_err(|e| {
            MLServerError::bad_request(format!("cannot read {}: {e}", path.display()))
        })?;
        match Model::from_text(&bytes) {
            Ok(model) => Ok(Native::Serves(LightGBMModel {
                ctx,
                model,
                options: PredictOptions {
                    // MLSERVER_RS_FAST_PATHS=0 turns the fast paths off,
                    // this one (eight trees walked in lockstep) too.
                    one_tree_at_a_time: std::env::var("MLSERVER_RS_FAST_PATHS").as_deref()
                        == Ok("0"),
                    ..PredictOptions::default()
                },
            })),
            Err(LoadError::Unsupported(what)) => Ok(Native::Declines(what)),
            Err(e) => Err(MLServerError::bad_request(format!(
                "invalid LightGBM model {}: {e}",
                path.display()
            ))),
        }
    }
}

/// The elements as `Booster.predict` passes them to LightGBM: float64 and
/// float32 arrays as they are, anything else through `astype(np.float32)`.
fn to_f64(data: &TensorData) -> Option<Vec<f64>> {
    match data {
        TensorData::Fp64(v) => Some(v.clone()),
        TensorData::Fp32(v) => Some(v.iter().map(|&x| f64::from(x)).collect()),
        other => request::to_f32(other).map(|v| v.into_iter().map(f64::from).collect()),
    }
}

#[async_trait]
impl NativeModel for LightGBMModel {
    async fn load_native(ctx: ModelContext) -> Result<Native<Self>, MLServerError> {
        request::load_local(ctx, &WELLKNOWN_MODEL_FILENAMES, Self::read).await
    }

    fn declines(&self, request: &InferenceRequest) -> Option<String> {
        let settings = self.ctx.settings();
        request::declines(request, settings)
            .or_else(|| request::output_declines(None, PREDICT, settings))
    }
}

#[async_trait]
impl MLModel for LightGBMModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        match Self::load_native(ctx).await? {
            Native::Serves(m) => Ok(m),
            Native::Declines(why) => Err(MLServerError::bad_request(why)),
        }
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let input = request::single_input(&request)?;
        let [rows, cols] = input.shape[..] else {
            return Err(MLServerError::bad_request(
                "Input numpy.ndarray or list must be 2 dimensional",
            ));
        };
        let features = self.model.num_features();
        if cols != features {
            return Err(MLServerError::bad_request(format!(
                "The number of features in data ({cols}) is not the same as it was in training data ({features})."
            )));
        }
        let data = to_f64(&input.data).ok_or_else(|| {
            MLServerError::bad_request(format!("input is {}, not a number", input.datatype))
        })?;
        let p = self
            .model
            .predict_with(&data, rows, &self.options)
            .map_err(|e| MLServerError::bad_request(e.to_string()))?;
        // Booster.predict reshapes to [n, k] only when it has rows.
        let k = self.model.num_outputs();
        let cols = (k > 1 && rows > 0).then_some(k);
        let output = numpy_output(PREDICT, rows, cols, TensorData::Fp64(p))?;
        Ok(InferenceResponse::new(vec![output]))
    }

    fn reads_headers(&self) -> bool {
        false
    }

    /// MLServer's runtime answers `predict` whatever was asked for.
    fn selects_outputs(&self) -> bool {
        true
    }
}
