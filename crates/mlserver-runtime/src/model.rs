//! The trait a runtime implements.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use mlserver_metrics::{Counter, Gauge, Histogram, Registry, DEFAULT_BUCKETS};
use mlserver_settings::{ModelSettings, ModelUri};
use mlserver_types::{InferenceRequest, InferenceResponse, MetadataModelResponse};

use crate::MLServerError;

/// What a runtime gets when it loads: its settings and helpers around them.
///
/// Cheap to clone; keep it if `predict` needs the settings.
#[derive(Debug, Clone)]
pub struct ModelContext {
    settings: Arc<ModelSettings>,
    metrics: Registry,
    /// What the repository index says of the model while it is ready.
    index_reason: Arc<std::sync::OnceLock<String>>,
    /// Set when a native runtime waits for this load's hand-over (see
    /// [`ModelContext::handover_requested`]).
    handover: Option<Arc<std::sync::Mutex<Option<Handover>>>>,
}

/// What a runtime that loaded a model hands to the native runtime that
/// asked for it: the model's fitted parameters (a format the two agree on),
/// or why it has none to give.
pub type Handover = Result<bytes::Bytes, String>;

impl ModelContext {
    /// A context whose custom metrics go to a registry of their own (not
    /// exposed anywhere): for tests and embedding.
    pub fn new(settings: Arc<ModelSettings>) -> Self {
        ModelContext {
            settings,
            metrics: Registry::new(),
            index_reason: Arc::default(),
            handover: None,
        }
    }

    /// A context for a load whose runtime is asked to hand the model's
    /// fitted parameters over ([`ModelContext::offer_handover`]): the
    /// native runtime that serves a model only another runtime can read (a
    /// pickle) takes them with [`ModelContext::take_handover`].
    pub fn requesting_handover(&self) -> Self {
        ModelContext {
            handover: Some(Arc::default()),
            ..self.clone()
        }
    }

    /// Whether the runtime loading with this context is asked for a
    /// hand-over.
    pub fn handover_requested(&self) -> bool {
        self.handover.is_some()
    }

    /// Hands the loaded model's parameters over (or why not); ignored when
    /// none was requested.
    pub fn offer_handover(&self, handover: Handover) {
        if let Some(slot) = &self.handover {
            *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(handover);
        }
    }

    /// What the loading runtime offered, once; `None` if nothing.
    pub fn take_handover(&self) -> Option<Handover> {
        let slot = self.handover.as_ref()?;
        slot.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Records the runtime's custom metrics in `registry` (the server's,
    /// served on the metrics port).
    pub fn with_metrics_registry(mut self, registry: Registry) -> Self {
        self.metrics = registry;
        self
    }

    /// The registry the server exposes, for runtimes whose metrics are kept
    /// elsewhere (another process: see `Registry::add_external`).
    pub fn metrics_registry(&self) -> &Registry {
        &self.metrics
    }

    /// Custom metrics for this model, MLServer's `mlserver.register()` /
    /// `mlserver.log()`: every series carries the `model_name` and
    /// `model_version` labels.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use mlserver_runtime::{ModelContext, ModelSettings};
    /// let ctx = ModelContext::new(Arc::new(ModelSettings::default()));
    /// let tokens = ctx.metrics().counter("generated_tokens", "Tokens generated").unwrap();
    /// tokens.inc_by(42.0);
    /// ```
    pub fn metrics(&self) -> ModelMetrics {
        ModelMetrics {
            registry: self.metrics.clone(),
            labels: [
                self.settings.name.clone(),
                self.settings.version().unwrap_or_default().to_owned(),
            ],
        }
    }

    /// Sets the `reason` the repository index shows for the model once it is
    /// ready (empty otherwise, as in MLServer): how it is served, when that
    /// is not the obvious way. The first one set stays.
    pub fn set_index_reason(&self, reason: impl Into<String>) {
        let _ = self.index_reason.set(reason.into());
    }

    /// The reason set by [`ModelContext::set_index_reason`], if any (shared
    /// by every clone of this context).
    pub fn index_reason(&self) -> Option<&str> {
        self.index_reason.get().map(String::as_str)
    }

    /// The model's `model-settings.json` (with env defaults applied).
    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The model's version, if it has one.
    pub fn version(&self) -> Option<&str> {
        self.settings.version()
    }

    /// `parameters.extra`, the free-form object runtimes read options from.
    pub fn extra(&self) -> Option<&serde_json::Value> {
        self.settings.parameters.as_ref().map(|p| &p.extra)
    }

    /// MLServer's `self.decode_request`: every input of `request` decoded by
    /// its content type, else by that of the same-named input declared in
    /// model-settings (`np`, `str`, `base64`, `datetime`; anything else
    /// stays raw, as in MLServer).
    pub fn decode_request(
        &self,
        request: &mlserver_types::InferenceRequest,
    ) -> Result<Vec<mlserver_types::codecs::Decoded>, MLServerError> {
        Ok(mlserver_types::codecs::decode_inputs(
            request,
            &self.settings.inputs,
        )?)
    }

    /// MLServer's `self.encode`: `value` as the output `name`, with the
    /// content type declared for that output in model-settings, else the
    /// one its kind implies (strings `str`, numbers `np`, ...).
    pub fn encode_output(
        &self,
        name: &str,
        value: mlserver_types::codecs::Decoded,
    ) -> Result<mlserver_types::Tensor, MLServerError> {
        let declared = mlserver_types::codecs::find_metadata(&self.settings.outputs, name);
        let content_type = mlserver_types::codecs::output_content_type(None, declared);
        Ok(mlserver_types::codecs::encode_output(
            name,
            value,
            content_type,
        )?)
    }

    /// MLServer's `get_model_uri`: `parameters.uri` resolved against the
    /// settings file's folder, then the first of `wellknown` file names found
    /// in it when it is a directory.
    pub fn model_uri(&self, wellknown: &[&str]) -> Result<ModelUri, MLServerError> {
        Ok(mlserver_settings::get_model_uri(&self.settings, wellknown)?)
    }
}

/// Registers a runtime's own metrics on the server's registry, labelled with
/// its model's name and version.
#[derive(Debug, Clone)]
pub struct ModelMetrics {
    registry: Registry,
    labels: [String; 2],
}

/// Label names of custom model metrics, as in MLServer.
const MODEL_LABELS: [&str; 2] = ["model_name", "model_version"];

impl ModelMetrics {
    fn labels(&self) -> [&str; 2] {
        [&self.labels[0], &self.labels[1]]
    }

    /// A histogram with Prometheus' default buckets: what MLServer's
    /// `mlserver.register(name, description)` creates.
    pub fn histogram(&self, name: &str, help: &str) -> Result<Arc<Histogram>, MLServerError> {
        self.histogram_with_buckets(name, help, DEFAULT_BUCKETS)
    }

    /// A histogram with its own bucket bounds.
    pub fn histogram_with_buckets(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Arc<Histogram>, MLServerError> {
        let family = self
            .registry
            .histogram(name, help, &MODEL_LABELS, buckets)?;
        Ok(family.with(&self.labels()))
    }

    /// A counter; exposed as `{name}_total`.
    pub fn counter(&self, name: &str, help: &str) -> Result<Arc<Counter>, MLServerError> {
        Ok(self
            .registry
            .counter(name, help, &MODEL_LABELS)?
            .with(&self.labels()))
    }

    /// A gauge.
    pub fn gauge(&self, name: &str, help: &str) -> Result<Arc<Gauge>, MLServerError> {
        Ok(self
            .registry
            .gauge(name, help, &MODEL_LABELS)?
            .with(&self.labels()))
    }
}

/// The requests of one stream, as they arrive.
pub type RequestStream = futures::stream::BoxStream<'static, InferenceRequest>;

/// The responses of one stream; an error ends it.
pub type ResponseStream =
    futures::stream::BoxStream<'static, Result<InferenceResponse, MLServerError>>;

/// A model runtime: MLServer's `MLModel`.
///
/// Implement `load` and `predict`; the rest have defaults. `predict` takes
/// `&self` and runs concurrently for concurrent requests, so keep mutable
/// state behind a lock. CPU-heavy work should go through [`crate::blocking`]
/// so it does not stall the server's async reactor (health checks, other
/// models).
///
/// ```
/// use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext};
/// use mlserver_types::{InferenceRequest, InferenceResponse, Tensor};
///
/// struct Doubler;
///
/// #[async_trait]
/// impl MLModel for Doubler {
///     async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
///         Ok(Doubler)
///     }
///
///     async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
///         let input = &request.inputs[0];
///         let doubled: Vec<f32> = input.as_slice::<f32>()?.iter().map(|x| x * 2.0).collect();
///         let output = Tensor::new("output", input.shape.clone(), doubled)?;
///         Ok(InferenceResponse::new(vec![output]))
///     }
/// }
/// ```
#[async_trait]
pub trait MLModel: Send + Sync + 'static {
    /// Loads the model's artefacts and returns the ready runtime. Returning an
    /// error marks the model as failed; the server and other models go on.
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError>
    where
        Self: Sized;

    /// Runs inference. The server fills in the response's model name,
    /// version and id, and keeps only the outputs the client asked for
    /// (unless [`MLModel::selects_outputs`]).
    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError>;

    /// The runtime's streaming side, if it has one: a model that answers a
    /// stream of requests with a stream of responses (a generative model)
    /// implements [`StreamingModel`] and returns `Some(self)`. Streams to
    /// other runtimes are served one `predict` per message.
    fn streaming(&self) -> Option<&dyn StreamingModel> {
        None
    }

    /// Releases resources before the model is dropped.
    async fn unload(&self) -> Result<(), MLServerError> {
        Ok(())
    }

    /// Whether the model can serve right now. The server's readiness
    /// (`/v2/health/ready`, model ready) reports it; a runtime whose backend
    /// can go away (a worker process restarting) says so here.
    fn ready(&self) -> bool {
        true
    }

    /// Metadata to report instead of the one built from model-settings
    /// (e.g. input/output signatures read from the model file).
    async fn metadata(&self) -> Option<MetadataModelResponse> {
        None
    }

    /// Whether requests must match the metadata's inputs (datatype, shape)
    /// before `predict` sees them; a mismatch is a 400. MLServer checks
    /// nothing: a model whose metadata only repeats what model-settings
    /// declares gets requests as sent (the `strict_inputs` setting turns the
    /// check on for every model). A runtime whose metadata comes from the
    /// model itself (an ONNX graph), and which would fail on anything else,
    /// says `true`.
    fn checks_inputs(&self) -> bool {
        false
    }

    /// Whether the runtime reads the request's headers in
    /// `request.parameters.headers` (with MLServer's CloudEvents `Ce-*`
    /// entries). MLServer copies every HTTP header (gRPC metadata) there
    /// for every request; a runtime that never looks says `false` and its
    /// requests skip the copy. Python models and, by default, every other
    /// runtime read them.
    fn reads_headers(&self) -> bool {
        true
    }

    /// Whether the runtime answers `request.outputs` itself. MLServer leaves
    /// it to each runtime (its scikit-learn runtime computes only what was
    /// asked for; a custom one may ignore it) and returns what the runtime
    /// gave: Python models say `true`. Otherwise the server keeps the
    /// requested outputs, when the model produced them all.
    fn selects_outputs(&self) -> bool {
        false
    }

    /// Whether `predict` only hands the request to work done outside this
    /// process (a worker process, a remote service) and awaits the answer.
    /// Such a model runs on the request's own task whatever
    /// `parallel_workers` is: the worker pool keeps runtimes that compute
    /// inside `predict` off the threads that accept connections, and a
    /// prediction sent through it costs two more cross-thread wake-ups.
    /// Python models say `true`.
    fn predicts_elsewhere(&self) -> bool {
        false
    }

    /// REST endpoints the model serves beside the V2 API while it is loaded
    /// (MLServer's `@custom_handler`). A route that clashes with the V2 API
    /// or with another model's fails the load.
    fn custom_routes(&self) -> Vec<crate::CustomRoute> {
        Vec::new()
    }

    /// Answers a call to one of [`MLModel::custom_routes`].
    async fn handle_custom(
        &self,
        request: crate::CustomRequest,
    ) -> Result<crate::CustomResponse, MLServerError> {
        Err(MLServerError::bad_request(format!(
            "no handler for {} {}",
            request.route.method, request.route.path
        )))
    }
}

/// The streaming capability of a runtime ([`MLModel::streaming`]):
/// MLServer's `predict_stream`, which gRPC `ModelStreamInfer` and REST
/// `infer_stream` / `generate_stream` call with the whole stream.
///
/// ```
/// use futures::StreamExt;
/// use mlserver_runtime::{
///     async_trait, MLModel, MLServerError, ModelContext, RequestStream, ResponseStream,
///     StreamingModel,
/// };
/// use mlserver_types::{InferenceRequest, InferenceResponse};
///
/// struct Echo;
///
/// #[async_trait]
/// impl MLModel for Echo {
///     async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
///         Ok(Echo)
///     }
///     async fn predict(&self, r: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
///         Ok(InferenceResponse::new(r.inputs))
///     }
///     fn streaming(&self) -> Option<&dyn StreamingModel> {
///         Some(self)
///     }
/// }
///
/// #[async_trait]
/// impl StreamingModel for Echo {
///     async fn predict_stream(
///         &self,
///         requests: RequestStream,
///     ) -> Result<ResponseStream, MLServerError> {
///         // One response per request, as they come.
///         Ok(Box::pin(requests.map(|r| Ok(InferenceResponse::new(r.inputs)))))
///     }
/// }
/// ```
#[async_trait]
pub trait StreamingModel: Send + Sync {
    /// Answers a stream of requests with a stream of responses. The server
    /// has checked each request before the runtime sees it, and completes
    /// each response (name, version, id) as it comes; an error item ends
    /// the stream.
    async fn predict_stream(
        &self,
        requests: RequestStream,
    ) -> Result<ResponseStream, MLServerError>;
}

/// Metadata built from model-settings, as MLServer's default `metadata()`.
pub fn metadata_from_settings(settings: &ModelSettings) -> MetadataModelResponse {
    let mut parameters = mlserver_types::Parameters::new();
    if let Some(ct) = settings
        .parameters
        .as_ref()
        .and_then(|p| p.content_type.as_deref())
    {
        parameters.set_content_type(ct);
    }
    MetadataModelResponse {
        name: settings.name.clone(),
        versions: settings.versions.clone(),
        platform: settings.platform.clone(),
        inputs: settings.inputs.clone(),
        outputs: settings.outputs.clone(),
        parameters: Some(parameters),
    }
}

/// A loaded runtime behind dynamic dispatch.
pub type DynModel = Arc<dyn MLModel>;

/// Builds and loads a runtime for one model.
pub type RuntimeFactory =
    Arc<dyn Fn(ModelContext) -> BoxFuture<'static, Result<DynModel, MLServerError>> + Send + Sync>;
