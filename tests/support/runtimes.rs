//! Runtimes that misbehave on purpose, to prove the server contains them.

use std::time::Duration;

use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext, RuntimeRegistry};
use mlserver_types::{InferenceRequest, InferenceResponse, Tensor};

/// Panics in `predict` when the first input's first element is negative.
pub struct PanickyModel;

#[async_trait]
impl MLModel for PanickyModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Ok(PanickyModel)
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let x = request.inputs[0].as_slice::<f32>()?;
        if x[0] < 0.0 {
            panic!("negative input is fatal for this model");
        }
        Ok(InferenceResponse::new(vec![Tensor::new(
            "output",
            vec![1],
            vec![x[0]],
        )?]))
    }
}

/// Always fails to load.
pub struct BrokenModel;

#[async_trait]
impl MLModel for BrokenModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Err(MLServerError::internal("weights file is corrupt"))
    }

    async fn predict(
        &self,
        _request: InferenceRequest,
    ) -> Result<InferenceResponse, MLServerError> {
        unreachable!("never loaded")
    }
}

/// Panics while loading.
pub struct PanicOnLoadModel;

#[async_trait]
impl MLModel for PanicOnLoadModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        panic!("load exploded");
    }

    async fn predict(
        &self,
        _request: InferenceRequest,
    ) -> Result<InferenceResponse, MLServerError> {
        unreachable!("never loaded")
    }
}

/// Takes `parameters.extra.load_ms` to load and `predict_ms` to predict;
/// answers with its version.
pub struct SlowModel {
    version: String,
    predict: Duration,
}

#[async_trait]
impl MLModel for SlowModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        let ms = |key: &str| {
            ctx.extra()
                .and_then(|e| e.get(key))
                .and_then(|v| v.as_u64())
                .unwrap_or(0)
        };
        tokio::time::sleep(Duration::from_millis(ms("load_ms"))).await;
        Ok(SlowModel {
            version: ctx.version().unwrap_or("").to_owned(),
            predict: Duration::from_millis(ms("predict_ms")),
        })
    }

    async fn predict(
        &self,
        _request: InferenceRequest,
    ) -> Result<InferenceResponse, MLServerError> {
        tokio::time::sleep(self.predict).await;
        Ok(InferenceResponse::new(vec![Tensor::new(
            "version",
            vec![1],
            vec![self.version.as_str()],
        )?]))
    }
}

/// Returns an output whose shape does not match its data.
pub struct LyingModel;

#[async_trait]
impl MLModel for LyingModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Ok(LyingModel)
    }

    async fn predict(
        &self,
        _request: InferenceRequest,
    ) -> Result<InferenceResponse, MLServerError> {
        let mut t = Tensor::new("output", vec![2], vec![1.0f32, 2.0])?;
        t.shape = vec![3];
        Ok(InferenceResponse::new(vec![t]))
    }
}

/// The default binary's runtimes plus the misbehaving ones above.
pub fn test_runtimes() -> RuntimeRegistry {
    let mut r = RuntimeRegistry::new();
    mlserver_examples::register(&mut r);
    mlserver_onnx::register(&mut r);
    r.register::<PanickyModel>("test.Panicky");
    r.register::<BrokenModel>("test.Broken");
    r.register::<PanicOnLoadModel>("test.PanicOnLoad");
    r.register::<SlowModel>("test.Slow");
    r.register::<LyingModel>("test.Lying");
    r.register::<HeadersModel>("test.Headers");
    r
}

/// Returns the request's `parameters.headers` as a JSON string output and
/// asks for an `x-model-header` response header.
pub struct HeadersModel;

#[async_trait]
impl MLModel for HeadersModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Ok(HeadersModel)
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let headers = request
            .parameters
            .as_ref()
            .and_then(|p| p.headers())
            .map(|h| serde_json::Value::Object(h.clone()).to_string())
            .unwrap_or_default();
        let mut response = InferenceResponse::new(vec![Tensor::new(
            "headers",
            vec![1],
            vec![headers.as_str()],
        )?]);
        response
            .parameters_mut()
            .insert("headers", serde_json::json!({"x-model-header": "yes"}));
        Ok(response)
    }
}
