//! What REST and gRPC both serve: health, metadata and inference, over one
//! model registry and one error type.

use crate::ServingError;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use mlserver_runtime::{MLServerError, RequestStream};
use mlserver_settings::RuntimeSecurity;
use mlserver_types::{
    InferenceRequest, InferenceResponse, MetadataModelResponse, MetadataServerResponse,
};

use crate::metrics::ServerMetrics;
use crate::pipeline::LoadedModel;
use crate::registry::{ModelRegistry, Readiness};

/// Extensions this server implements, reported in server metadata on top of
/// the ones configured in settings.
pub const BUILTIN_EXTENSIONS: [&str; 5] = [
    "binary_tensor_data",
    "model_repository",
    "model_configuration",
    "statistics",
    // The ODH fork's: `GET /v2/runtimes`, gRPC `RuntimeSecurity`.
    "runtime_security",
];

/// The data plane of the V2 protocol, below any transport: health,
/// metadata, and inference (unary and streaming) through each model's
/// pipeline.
pub struct DataPlane {
    registry: Arc<ModelRegistry>,
    metadata: MetadataServerResponse,
    startup_complete: AtomicBool,
    metrics: Option<Arc<ServerMetrics>>,
    /// Set when the server's shutdown grace is over: inferences still
    /// running are answered with a 503 and open streams end, so they
    /// release their models and the unload can go on.
    cutting: tokio::sync::watch::Sender<bool>,
    /// Which implementations may load (the ODH fork's production mode).
    security: Arc<RuntimeSecurity>,
    /// When the server is ready.
    readiness: Readiness,
}

impl DataPlane {
    /// A data plane over `registry`, reporting `name` and `version` in server
    /// metadata with `extensions` on top of [`BUILTIN_EXTENSIONS`].
    pub fn new(
        registry: Arc<ModelRegistry>,
        name: String,
        version: String,
        extensions: &[String],
        metrics: Option<Arc<ServerMetrics>>,
    ) -> Self {
        let mut all: Vec<String> = BUILTIN_EXTENSIONS.iter().map(|s| s.to_string()).collect();
        for e in extensions {
            if !all.contains(e) {
                all.push(e.clone());
            }
        }
        DataPlane {
            registry,
            metadata: MetadataServerResponse {
                name,
                version,
                extensions: all,
            },
            startup_complete: AtomicBool::new(false),
            metrics,
            cutting: tokio::sync::watch::channel(false).0,
            security: Arc::default(),
            readiness: Readiness::default(),
        }
    }

    /// The same data plane, ready by `readiness`'s terms.
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// The same data plane reporting `security` (the repository enforces it).
    pub fn with_security(mut self, security: Arc<RuntimeSecurity>) -> Self {
        self.security = security;
        self
    }

    /// The runtime security mode and its allowlist (the ODH fork's
    /// `GET /v2/runtimes`).
    pub fn runtime_security(&self) -> &RuntimeSecurity {
        &self.security
    }

    /// The server's metrics, unless `metrics_endpoint` is null.
    pub fn metrics(&self) -> Option<&Arc<ServerMetrics>> {
        self.metrics.as_ref()
    }

    /// Records an inference call's outcome in `model_infer_request_*`, with
    /// the name and version the caller gave (MLServer's labels). A call that
    /// names no model or version the registry knows is left out: MLServer
    /// labels those too, so any caller can create series without end (one
    /// per made-up name). They still count in the per-route request metrics.
    pub fn observe_infer(
        &self,
        name: &str,
        version: Option<&str>,
        started: Instant,
        outcome: Result<(), &ServingError>,
    ) {
        let Some(m) = &self.metrics else {
            return;
        };
        if counted(outcome) {
            m.observe_infer(name, version, started, outcome.is_ok());
        }
    }

    /// Triton's configuration of a ready model (version), derived from its
    /// metadata and settings.
    pub fn model_config(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<mlserver_types::triton::ModelConfig, ServingError> {
        let model = self.registry.get(name, version)?;
        Ok(crate::triton::model_config(&model))
    }

    /// Triton's statistics: of one model version, of every loaded version
    /// of `name` (no version given), or of every loaded model (no name, or
    /// an empty one, as Triton's clients ask for all).
    pub fn model_statistics(
        &self,
        name: Option<&str>,
        version: Option<&str>,
    ) -> Result<mlserver_types::triton::ModelStatisticsResponse, ServingError> {
        let name = name.filter(|n| !n.is_empty());
        let version = version.filter(|v| !v.is_empty());
        let model_stats = match (name, version) {
            (Some(name), Some(_)) => {
                let model = self.registry.get(name, version)?;
                vec![model.statistics().snapshot(model.name(), model.version())]
            }
            _ => {
                let loaded: Vec<_> = self
                    .registry
                    .snapshot()
                    .into_iter()
                    .filter(|(n, _, _)| name.is_none_or(|name| name == n))
                    .filter_map(|(_, _, slot)| slot.model)
                    .map(|m| m.statistics().snapshot(m.name(), m.version()))
                    .collect();
                if let (Some(name), true) = (name, loaded.is_empty()) {
                    // Not loaded: the lookup's own error (404, unavailable).
                    self.registry.get(name, None)?;
                }
                loaded
            }
        };
        Ok(mlserver_types::triton::ModelStatisticsResponse { model_stats })
    }

    /// The models it serves.
    pub fn registry(&self) -> &Arc<ModelRegistry> {
        &self.registry
    }

    /// Cuts every request still running (the shutdown grace is over):
    /// each inference is answered with a 503 / UNAVAILABLE and its work
    /// cancelled, each open stream ends with that error, releasing its
    /// model. Requests that arrive later are cut at once.
    pub fn cut_requests(&self) {
        self.cutting.send_replace(true);
    }

    /// Ends `responses` with the shutdown's error (503 / UNAVAILABLE, made
    /// by `error`) once [`DataPlane::cut_requests`] is called: for streams
    /// a transport runs itself, request by request through
    /// [`DataPlane::infer`], whose end is the client's to decide.
    pub fn until_cut<S, T, E>(
        &self,
        responses: S,
        error: fn(ServingError) -> E,
    ) -> impl Stream<Item = Result<T, E>> + Send
    where
        S: Stream<Item = Result<T, E>> + Send + Unpin,
    {
        cut_by(responses, self.cut(), error)
    }

    /// Resolves once [`DataPlane::cut_requests`] has been called.
    fn cut(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut cutting = self.cutting.subscribe();
        async move {
            let _ = cutting.wait_for(|cut| *cut).await;
        }
    }

    /// Called once the models to load at startup have loaded (or failed).
    pub fn mark_started(&self) {
        self.startup_complete.store(true, Ordering::Release);
    }

    /// Whether startup loading is over (successfully or not).
    pub fn started(&self) -> bool {
        self.startup_complete.load(Ordering::Acquire)
    }

    /// Whether the server is live: always, once it answers (`/v2/health/live`).
    pub fn live(&self) -> bool {
        true
    }

    /// Ready once startup loading is over and every registered model serves.
    /// Unlike MLServer, a model that failed to load keeps the server not
    /// ready (MLServer reports ready with an empty registry, #2056).
    pub fn ready(&self) -> bool {
        self.startup_complete.load(Ordering::Acquire) && self.registry.ready_by(self.readiness)
    }

    /// Whether `name` (at `version`, else its default version) serves now.
    pub fn model_ready(&self, name: &str, version: Option<&str>) -> Result<bool, ServingError> {
        self.registry.is_ready(name, version)
    }

    /// The server's name, version and extensions (`GET /v2`).
    pub fn server_metadata(&self) -> MetadataServerResponse {
        self.metadata.clone()
    }

    /// The model's metadata: its runtime's own, or built from model-settings.
    pub fn model_metadata(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<MetadataModelResponse, ServingError> {
        Ok(self.registry.get(name, version)?.metadata.clone())
    }

    /// Runs one inference: the one call every transport makes for a request
    /// with one answer. Looks the model up, checks the request (against the
    /// metadata for models that check their inputs), assigns the id, adds
    /// the CloudEvents headers, answers from the cache when it can, calls
    /// the runtime through the batcher or the executor (which bounds how
    /// many predictions compute at once, and turns a panic into this
    /// request's error), completes the response and records the metrics.
    /// It takes at most the model's `inference_timeout` or the caller's
    /// `deadline` (gRPC's `grpc-timeout`), whichever is shorter: then it
    /// is cancelled and answered with a 504 / DEADLINE_EXCEEDED.
    ///
    /// `version` as the request named it: `Some("")` is gRPC's unset field,
    /// the default version as `None` is, labelled `""` as MLServer labels it.
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferenceRequest,
        deadline: Option<Duration>,
    ) -> Result<InferenceResponse, ServingError> {
        let model = self.model_for_infer(name, version)?;
        self.infer_with(&model, name, version, request, deadline)
            .await
    }

    /// The model an inference request for `name` / `version` goes to, for a
    /// transport that needs it before the request is decoded (REST's raw
    /// binary body needs its declared input) and then calls
    /// [`DataPlane::infer_with`]: one lookup per request. A lookup that
    /// fails is counted as a failed inference here, as `infer` counts it.
    pub fn model_for_infer(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedModel>, ServingError> {
        let started = Instant::now();
        self.registry
            .get(name, version.filter(|v| !v.is_empty()))
            .inspect_err(|e| self.observe_infer(name, version, started, Err(e)))
    }

    /// [`DataPlane::infer`] on the model [`DataPlane::model_for_infer`]
    /// found. The tracing context of the caller's span goes into the
    /// request's headers here, for the runtime, whichever transport calls.
    pub async fn infer_with(
        &self,
        model: &Arc<LoadedModel>,
        name: &str,
        version: Option<&str>,
        mut request: InferenceRequest,
        deadline: Option<Duration>,
    ) -> Result<InferenceResponse, ServingError> {
        let started = Instant::now();
        crate::trace::inject(&mut request);
        let limit = shortest(model.timeout(), deadline);
        let rows = model.rows(&request);
        // Not through an async fn taking the work by value: its future
        // would hold the work twice (the argument, then the pinned local),
        // and this one is moved whole into every layer's box above it.
        let work = model.infer(request);
        let result = tokio::select! {
            biased;
            result = work => result,
            () = expiry(limit) => Err(deadline_exceeded(limit)),
            () = self.cut() => Err(shutting_down()),
        };
        model
            .statistics()
            .finished(started.elapsed(), rows, result.is_ok());
        // As `observe_infer`, into the series the model keeps.
        if let Some(m) = &self.metrics {
            if counted(result.as_ref().map(drop)) {
                model
                    .infer_series(version, || m.infer_series(name, version))
                    .observe(started, result.is_ok());
            }
        }
        result
    }

    /// A call to a loaded model's custom endpoint (`MLModel::custom_routes`),
    /// at `target`, which the transport found for the request's method and
    /// `path` (`CustomRoutes::find`, through [`DataPlane::registry`]).
    pub async fn custom(
        &self,
        target: crate::custom::CustomTarget,
        path: &str,
        query: &str,
        headers: Vec<(String, String)>,
        body: bytes::Bytes,
    ) -> Result<mlserver_runtime::CustomResponse, ServingError> {
        let crate::custom::CustomTarget {
            route,
            model: name,
            version,
            path_params,
        } = target;
        let model = self.registry.get(&name, version.as_deref())?;
        let request = mlserver_runtime::CustomRequest {
            route,
            path: path.to_owned(),
            path_params,
            query: query.to_owned(),
            headers,
            body,
        };
        let runtime = model.runtime.clone();
        // A panic in the handler fails this call only.
        let result = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(
            runtime.handle_custom(request),
        ))
        .await
        .unwrap_or_else(|p| {
            Err(MLServerError::internal(format!(
                "model {name} panicked in a custom endpoint: {}",
                mlserver_runtime::panic_message(&*p)
            )))
        });
        result.map_err(ServingError::from)
    }

    /// Whether the model serving `name`/`version` answers a stream of
    /// requests with a stream of its own ([`MLModel::streaming`]). Other
    /// models answer a stream one [`DataPlane::infer`] per request.
    ///
    /// [`MLModel::streaming`]: mlserver_runtime::MLModel::streaming
    pub fn streams(&self, name: &str, version: Option<&str>) -> Result<bool, ServingError> {
        Ok(self
            .registry
            .get(name, version)?
            .runtime
            .streaming()
            .is_some())
    }

    /// Runs one streaming inference: the call every transport makes for a
    /// stream of requests (gRPC `ModelStreamInfer`, REST `infer_stream`).
    /// `first` is checked before anything streams, so a request that fails
    /// validation is refused as a unary one is; later requests that fail end
    /// the stream with their error. Every request gets the stream's id (the
    /// first request's, else a new one: MLServer's rule) and the CloudEvents
    /// headers; every response the model's name, version and id. A runtime
    /// that [`streams`](DataPlane::streams) gets the whole stream, run on the
    /// executor; any other answers each request through the unary pipeline,
    /// in order. A panic ends only this stream, with an error. The stream
    /// counts as one inference in the metrics, recorded when it ends
    /// (`version` as in [`DataPlane::infer`]).
    pub async fn infer_stream(
        self: &Arc<Self>,
        name: &str,
        version: Option<&str>,
        first: InferenceRequest,
        rest: RequestStream,
    ) -> Result<ServingStream, ServingError> {
        let model = self.model_for_infer(name, version)?;
        self.infer_stream_with(model, name, version, first, rest)
            .await
    }

    /// [`DataPlane::infer_stream`] on the model
    /// [`DataPlane::model_for_infer`] found.
    pub async fn infer_stream_with(
        self: &Arc<Self>,
        model: Arc<LoadedModel>,
        name: &str,
        version: Option<&str>,
        first: InferenceRequest,
        rest: RequestStream,
    ) -> Result<ServingStream, ServingError> {
        let started = Instant::now();
        let mut first = first;
        crate::trace::inject(&mut first);
        if let Err(e) = model.prepare(&mut first) {
            self.observe_infer(name, version, started, Err(&e));
            return Err(e);
        }
        let id = first.id.clone().unwrap_or_default();
        let outcome = StreamOutcome {
            dataplane: self.clone(),
            name: name.to_owned(),
            version: version.map(str::to_owned),
            started,
            failed: false,
        };
        let responses = model.stream(first, rest, id);
        let responses: ServingStream = Box::pin(cut_by(responses, self.cut(), |e| e));
        Ok(Box::pin(
            until_first_error(responses).map(outcome.watching()),
        ))
    }
}

/// The responses of a streaming inference, as the data plane hands them
/// to a transport: an error item is the stream's last.
pub type ServingStream =
    futures::stream::BoxStream<'static, Result<InferenceResponse, ServingError>>;

/// Records a stream's outcome once, when it ends (or is dropped).
struct StreamOutcome {
    dataplane: Arc<DataPlane>,
    name: String,
    version: Option<String>,
    started: Instant,
    failed: bool,
}

impl StreamOutcome {
    /// A mapping that passes items on and notes a failure.
    fn watching(
        mut self,
    ) -> impl FnMut(Result<InferenceResponse, ServingError>) -> Result<InferenceResponse, ServingError>
    {
        // A method call, so the closure owns the whole outcome (and drops
        // it, recording, when the stream is dropped), not just its flag.
        move |item| self.note(item)
    }

    fn note(
        &mut self,
        item: Result<InferenceResponse, ServingError>,
    ) -> Result<InferenceResponse, ServingError> {
        if item.is_err() {
            self.failed = true;
        }
        item
    }
}

impl Drop for StreamOutcome {
    fn drop(&mut self) {
        let error = ServingError::internal("stream failed");
        let outcome = if self.failed { Err(&error) } else { Ok(()) };
        self.dataplane
            .observe_infer(&self.name, self.version.as_deref(), self.started, outcome);
    }
}

/// Ends `responses` with the shutdown's error once `cut` resolves.
fn cut_by<S, T, E>(
    mut responses: S,
    cut: impl std::future::Future<Output = ()> + Send + 'static,
    error: fn(ServingError) -> E,
) -> impl Stream<Item = Result<T, E>> + Send
where
    S: Stream<Item = Result<T, E>> + Send + Unpin,
{
    let mut cut = Box::pin(cut);
    let mut ended = false;
    futures::stream::poll_fn(move |cx| {
        if ended {
            return std::task::Poll::Ready(None);
        }
        if cut.as_mut().poll(cx).is_ready() {
            ended = true;
            return std::task::Poll::Ready(Some(Err(error(shutting_down()))));
        }
        responses.poll_next_unpin(cx)
    })
}

/// Ends a stream after its first error.
fn until_first_error(responses: ServingStream) -> ServingStream {
    Box::pin(responses.scan(false, |failed, item| {
        if *failed {
            return futures::future::ready(None);
        }
        *failed = item.is_err();
        futures::future::ready(Some(item))
    }))
}

/// The shorter of two optional limits.
fn shortest(a: Option<Duration>, b: Option<Duration>) -> Option<Duration> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether an inference's outcome counts in the `model_infer_request_*`
/// series: not when it names no model or version the registry knows (see
/// `DataPlane::observe_infer`).
fn counted(outcome: Result<(), &ServingError>) -> bool {
    !outcome.is_err_and(ServingError::is_not_found)
}

/// Resolves when an inference bounded by `limit` has run out of time;
/// never without a limit. The work is raced against it and the shutdown
/// (see `DataPlane::infer`): either way the work is dropped, which cancels
/// it (the executor aborts its task, a Python worker its call). The timer
/// is boxed: a limit is the exception, and every inference's future would
/// otherwise carry a timer's room.
async fn expiry(limit: Option<Duration>) {
    match limit {
        Some(limit) => Box::pin(tokio::time::sleep(limit)).await,
        None => std::future::pending().await,
    }
}

/// The 504 of an inference that outlived `limit`.
fn deadline_exceeded(limit: Option<Duration>) -> ServingError {
    ServingError::DeadlineExceeded(format!(
        "inference did not finish within {:.3} s and was cancelled",
        limit.map_or(0.0, |l| l.as_secs_f64())
    ))
}

/// The answer to a request the shutdown cut short.
fn shutting_down() -> ServingError {
    ServingError::ShuttingDown("the server is shutting down; the request was cancelled".into())
}
