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
    mlserver_native_runtimes::register(&mut r);
    r.register::<PanickyModel>("test.Panicky");
    r.register::<BrokenModel>("test.Broken");
    r.register::<PanicOnLoadModel>("test.PanicOnLoad");
    r.register::<SlowModel>("test.Slow");
    r.register::<LyingModel>("test.Lying");
    r.register::<HeadersModel>("test.Headers");
    r.register::<BatchProbeModel>("test.BatchProbe");
    r.register::<CountingModel>("test.Counting");
    r.register::<CustomEndpointsModel>("test.CustomEndpoints");
    r.register::<SpinModel>("test.Spin");
    r.register::<RendezvousModel>("test.Rendezvous");
    r
}

/// Echoes its inputs under their own names and adds `batch_rows` (INT64,
/// one row per input row) holding the number of rows the runtime was called
/// with, so a client sees whether its request was batched and with how
/// much. Fails the call when any FP32 value is negative; with
/// `parameters.extra.drop_row` it returns one row too few. Counts its calls
/// in the custom metric `probe_predictions_total`.
pub struct BatchProbeModel {
    drop_row: bool,
    calls: std::sync::Arc<mlserver_runtime::metrics::Counter>,
}

#[async_trait]
impl MLModel for BatchProbeModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        Ok(BatchProbeModel {
            drop_row: ctx
                .extra()
                .and_then(|e| e.get("drop_row"))
                .and_then(|v| v.as_bool())
                .unwrap_or(false),
            calls: ctx
                .metrics()
                .counter("probe_predictions", "BatchProbe predict calls")?,
        })
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        self.calls.inc();
        let rows = request.inputs.first().map_or(0, |i| i.shape[0]);
        for input in &request.inputs {
            if let Some(values) = input.data.as_slice::<f32>() {
                if values.iter().any(|v| *v < 0.0) {
                    return Err(MLServerError::inference(format!(
                        "negative value in input '{}'",
                        input.name
                    )));
                }
            }
        }
        let mut outputs = request.inputs;
        let out_rows = if self.drop_row { rows - 1 } else { rows };
        outputs.push(Tensor::new(
            "batch_rows",
            vec![out_rows, 1],
            vec![rows as i64; out_rows],
        )?);
        Ok(InferenceResponse::new(outputs))
    }
}

/// Blocks its thread for `parameters.extra.predict_ms` inside `predict` (a
/// CPU-bound runtime that does not use `blocking()`), and records how many
/// calls ran at once (output `concurrent`, the highest seen so far).
pub struct SpinModel {
    predict: Duration,
    running: std::sync::atomic::AtomicUsize,
    max_seen: std::sync::atomic::AtomicUsize,
}

#[async_trait]
impl MLModel for SpinModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        let ms = ctx
            .extra()
            .and_then(|e| e.get("predict_ms"))
            .and_then(|v| v.as_u64())
            .unwrap_or(0);
        Ok(SpinModel {
            predict: Duration::from_millis(ms),
            running: Default::default(),
            max_seen: Default::default(),
        })
    }

    async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.max_seen.fetch_max(now, SeqCst);
        std::thread::sleep(self.predict);
        self.running.fetch_sub(1, SeqCst);
        Ok(InferenceResponse::new(vec![Tensor::new(
            "concurrent",
            vec![1],
            vec![self.max_seen.load(SeqCst) as i64],
        )?]))
    }
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

/// Each `predict` waits until `parameters.extra.parties` predictions are
/// waiting together: it only answers if that many run concurrently.
pub struct RendezvousModel {
    barrier: tokio::sync::Barrier,
}

#[async_trait]
impl MLModel for RendezvousModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        let parties = ctx
            .extra()
            .and_then(|e| e.get("parties"))
            .and_then(|v| v.as_u64())
            .unwrap_or(1) as usize;
        Ok(RendezvousModel {
            barrier: tokio::sync::Barrier::new(parties),
        })
    }

    async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        self.barrier.wait().await;
        Ok(InferenceResponse::new(vec![Tensor::new(
            "met",
            vec![1],
            vec![true],
        )?]))
    }
}

/// A streaming runtime: for each request `n` (an INT64 input), yields `n`
/// responses counting `0..n`; `n = -1` fails after its first response and
/// `n = -2` panics after it, so a stream can end in either. Live streams
/// are counted in [`CountingModel::OPEN`].
pub struct CountingModel;

impl CountingModel {
    /// Streams started and not yet dropped.
    pub const OPEN: &'static std::sync::atomic::AtomicUsize = &COUNTING_OPEN;
}

static COUNTING_OPEN: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct OpenStream;

impl Drop for OpenStream {
    fn drop(&mut self) {
        COUNTING_OPEN.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn count_output(k: i64) -> Result<InferenceResponse, MLServerError> {
    Ok(InferenceResponse::new(vec![Tensor::new(
        "count",
        vec![1],
        vec![k],
    )?]))
}

#[async_trait]
impl MLModel for CountingModel {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Ok(CountingModel)
    }

    async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        count_output(0)
    }

    fn streaming(&self) -> Option<&dyn mlserver_runtime::StreamingModel> {
        Some(self)
    }
}

#[async_trait]
impl mlserver_runtime::StreamingModel for CountingModel {
    async fn predict_stream(
        &self,
        requests: mlserver_runtime::RequestStream,
    ) -> Result<mlserver_runtime::ResponseStream, MLServerError> {
        use futures::StreamExt;
        COUNTING_OPEN.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let open = std::sync::Arc::new(OpenStream);
        Ok(Box::pin(requests.flat_map(move |request| {
            let open = open.clone();
            let n = request.inputs[0]
                .as_slice::<i64>()
                .map(|v| v[0])
                .unwrap_or(0);
            let items: Vec<i64> = match n {
                -1 | -2 => vec![0, n],
                n => (0..n).collect(),
            };
            futures::stream::iter(items).then(move |k| {
                let _open = open.clone();
                async move {
                    match k {
                        -1 => Err(MLServerError::inference("counting failed on purpose")),
                        -2 => panic!("counting panicked on purpose"),
                        k => {
                            // Slow enough that a client can leave mid-stream.
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                            count_output(k)
                        }
                    }
                }
            })
        })))
    }
}

/// Serves custom REST endpoints: `GET /hello/{who}` (a greeting) and the
/// routes listed in `parameters.extra.routes` (`[["POST", "/path"], ...]`,
/// each echoing its body), to show them claimed, refused and released.
pub struct CustomEndpointsModel {
    routes: Vec<mlserver_runtime::CustomRoute>,
}

#[async_trait]
impl MLModel for CustomEndpointsModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        let mut routes = vec![mlserver_runtime::CustomRoute::new("GET", "/hello/{who}")];
        if let Some(extra) = ctx.extra().and_then(|e| e["routes"].as_array()) {
            for r in extra {
                routes.push(mlserver_runtime::CustomRoute::new(
                    r[0].as_str().unwrap_or("POST"),
                    r[1].as_str().unwrap_or("/"),
                ));
            }
        }
        Ok(CustomEndpointsModel { routes })
    }

    async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        Ok(InferenceResponse::new(vec![]))
    }

    fn custom_routes(&self) -> Vec<mlserver_runtime::CustomRoute> {
        self.routes.clone()
    }

    async fn handle_custom(
        &self,
        request: mlserver_runtime::CustomRequest,
    ) -> Result<mlserver_runtime::CustomResponse, MLServerError> {
        if request.route.path == "/hello/{who}" {
            let who = &request.path_params[0].1;
            return Ok(mlserver_runtime::CustomResponse::json(
                &serde_json::json!({ "hello": who, "query": request.query }),
            ));
        }
        Ok(mlserver_runtime::CustomResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: request.body,
        })
    }
}
