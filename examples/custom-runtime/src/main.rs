//! A custom runtime, MLServer-style: implement `load` and `predict`, register
//! the runtime under the `implementation` name your model-settings.json uses,
//! and run the standard CLI.
//!
//! ```text
//! cargo run -p custom-runtime-example -- start examples/custom-runtime/models
//! curl -s localhost:8080/v2/models/scaler/infer -H 'content-type: application/json' \
//!   -d '{"inputs":[{"name":"x","shape":[3],"datatype":"FP32","data":[1,2,3]}]}'
//! ```

use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext};
use mlserver_types::{InferenceRequest, InferenceResponse, Tensor};

/// Multiplies its input by `parameters.extra.factor` from model-settings.json.
struct Scaler {
    factor: f32,
}

#[async_trait]
impl MLModel for Scaler {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        let factor = ctx
            .extra()
            .and_then(|e| e["factor"].as_f64())
            .unwrap_or(1.0) as f32;
        Ok(Scaler { factor })
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let x = request
            .inputs
            .first()
            .ok_or_else(|| MLServerError::inference("scaler needs one FP32 input"))?;
        let y: Vec<f32> = x
            .as_slice::<f32>()?
            .iter()
            .map(|v| v * self.factor)
            .collect();
        Ok(InferenceResponse::new(vec![Tensor::new(
            "y",
            x.shape.clone(),
            y,
        )?]))
    }
}

fn main() -> std::process::ExitCode {
    let mut runtimes = mlserver_cli::default_runtimes();
    runtimes.register::<Scaler>("scaler.Scaler");
    mlserver_cli::run(runtimes)
}
