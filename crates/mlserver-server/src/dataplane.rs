//! What REST and gRPC both serve: health, metadata and inference, over one
//! model registry and one error type.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use mlserver_runtime::MLServerError;
use mlserver_types::{
    InferenceRequest, InferenceResponse, MetadataModelResponse, MetadataServerResponse,
};

use crate::cache::ResponseCache;
use crate::metrics::ServerMetrics;
use crate::registry::{LoadedModel, ModelRegistry};

/// Extensions this server implements, reported in server metadata on top of
/// the ones configured in settings.
pub const BUILTIN_EXTENSIONS: [&str; 2] = ["binary_tensor_data", "model_repository"];

pub struct DataPlane {
    registry: Arc<ModelRegistry>,
    metadata: MetadataServerResponse,
    startup_complete: AtomicBool,
    metrics: Option<Arc<ServerMetrics>>,
}

impl DataPlane {
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
        }
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
        outcome: Result<(), &MLServerError>,
    ) {
        let Some(m) = &self.metrics else {
            return;
        };
        match outcome {
            Err(MLServerError::ModelNotFound(_) | MLServerError::ModelVersionNotFound { .. }) => {}
            _ => m.observe_infer(name, version, started, outcome.is_ok()),
        }
    }

    pub fn registry(&self) -> &Arc<ModelRegistry> {
        &self.registry
    }

    /// Called once the models to load at startup have loaded (or failed).
    pub fn mark_started(&self) {
        self.startup_complete.store(true, Ordering::Release);
    }

    /// Whether startup loading is over (successfully or not).
    pub fn started(&self) -> bool {
        self.startup_complete.load(Ordering::Acquire)
    }

    pub fn live(&self) -> bool {
        true
    }

    /// Ready once startup loading is over and every registered model serves.
    /// Unlike MLServer, a model that failed to load keeps the server not
    /// ready (MLServer reports ready with an empty registry, #2056).
    pub fn ready(&self) -> bool {
        self.startup_complete.load(Ordering::Acquire) && self.registry.all_ready()
    }

    pub fn model_ready(&self, name: &str, version: Option<&str>) -> Result<bool, MLServerError> {
        self.registry.is_ready(name, version)
    }

    pub fn server_metadata(&self) -> MetadataServerResponse {
        self.metadata.clone()
    }

    pub fn model_metadata(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<MetadataModelResponse, MLServerError> {
        Ok(self.registry.get(name, version)?.metadata.clone())
    }

    /// The model that will serve a request (for transports that need its
    /// metadata before the request is decoded).
    pub fn model(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Arc<LoadedModel>, MLServerError> {
        self.registry.get(name, version)
    }

    /// Runs one inference: validates the request against the model's
    /// metadata, calls the runtime (a panic fails this request only), and
    /// completes the response (name, version, id, requested outputs).
    pub async fn infer(
        &self,
        name: &str,
        version: Option<&str>,
        request: InferenceRequest,
    ) -> Result<InferenceResponse, MLServerError> {
        let started = Instant::now();
        let result = match self.registry.get(name, version) {
            Ok(model) => infer_on(&model, request).await,
            Err(e) => Err(e),
        };
        self.observe_infer(name, version, started, result.as_ref().map(drop));
        result
    }
}

/// [`DataPlane::infer`] on a model already looked up (without metrics).
pub async fn infer_on(
    model: &LoadedModel,
    mut request: InferenceRequest,
) -> Result<InferenceResponse, MLServerError> {
    if model.checks_inputs() {
        validate_inputs(model, &request)?;
    }
    let id = request
        .id
        .get_or_insert_with(crate::request_id::new_request_id)
        .clone();
    if let Some(ce) = model.cloudevents() {
        ce.on_request(&mut request, model.name());
    }
    let requested: Option<Vec<String>> = request
        .outputs
        .as_ref()
        .filter(|o| !o.is_empty() && !model.runtime.selects_outputs())
        .map(|o| o.iter().map(|o| o.name.clone()).collect());

    let cache_key = model
        .cache()
        .map(|_| ResponseCache::key(model.name(), model.version(), model.instance(), &request));
    if let (Some(cache), Some(key)) = (model.cache(), &cache_key) {
        if let Some(mut hit) = cache.get(key) {
            hit.id = Some(id);
            if let Some(ce) = model.cloudevents() {
                ce.on_response(&mut hit, model.name());
            }
            return Ok(hit);
        }
    }

    let mut response = model.predict(request).await?;

    response.model_name = model.name().to_owned();
    response.model_version = model.version().map(str::to_owned);
    response.id = Some(id);
    if let Some(names) = requested {
        select_outputs(&mut response.outputs, &names);
    }
    for output in &response.outputs {
        output.validate().map_err(|e| {
            MLServerError::internal(format!(
                "model {} returned an invalid output: {e}",
                model.name()
            ))
        })?;
    }
    if let (Some(cache), Some(key)) = (model.cache(), cache_key) {
        cache.insert(key, response.clone());
    }
    if let Some(ce) = model.cloudevents() {
        ce.on_response(&mut response, model.name());
    }
    Ok(response)
}

/// Datatypes must match the declared inputs; shapes must fit them where the
/// ranks agree (see `MetadataTensor::shape_accepts`). Only for models that
/// check their inputs: MLServer passes requests on as sent.
fn validate_inputs(model: &LoadedModel, request: &InferenceRequest) -> Result<(), MLServerError> {
    for input in &request.inputs {
        let Some(declared) = model.metadata.inputs.iter().find(|m| m.name == input.name) else {
            continue;
        };
        if declared.datatype != input.datatype {
            return Err(MLServerError::bad_request(format!(
                "input '{}' has datatype {} but model {} expects {}",
                input.name,
                input.datatype,
                model.name(),
                declared.datatype
            )));
        }
        if !declared.shape_accepts(&input.shape) {
            return Err(MLServerError::bad_request(format!(
                "input '{}' has shape {:?} but model {} expects {:?}",
                input.name,
                input.shape,
                model.name(),
                declared.shape
            )));
        }
    }
    Ok(())
}

/// Keeps the requested outputs, in the order asked, when the model produced
/// every one of them. Otherwise the answer is what the model produced, as
/// MLServer gives it (it never checks): a client asking for an output the
/// model does not have gets the others, not an error.
fn select_outputs(outputs: &mut Vec<mlserver_types::ResponseOutput>, names: &[String]) {
    if !names.iter().all(|n| outputs.iter().any(|o| &o.name == n)) {
        tracing::debug!("requested outputs {names:?} not all produced: answering with all of them");
        return;
    }
    let mut produced = std::mem::take(outputs);
    for name in names {
        if let Some(pos) = produced.iter().position(|o| &o.name == name) {
            outputs.push(produced.swap_remove(pos));
        }
    }
}
