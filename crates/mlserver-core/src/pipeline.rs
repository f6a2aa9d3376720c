//! One model's pipeline: what every inference of a loaded model goes
//! through, in order.
//!
//! 1. [`ModelRules::prepare`]: the request is checked against the metadata
//!    (models that check their inputs), given an id, and the transport's
//!    and CloudEvents headers (runtimes that read them).
//! 2. The response cache, when the server and the model enable it.
//! 3. [`LoadedModel::predict`]: through the adaptive batcher when the model
//!    has one, on the executor otherwise.
//! 4. [`ModelRules::complete`]: the model's name, version, the request's id
//!    and the requested outputs; every output checked; Triton's statistics
//!    counted; the answer cached; CloudEvents response headers.
//!
//! A stream goes the same way request by request, or through the runtime's
//! own `predict_stream`. The registry holds these models and the data plane
//! finds one per request, bounding and measuring the call around them.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use mlserver_runtime::{DynModel, RequestStream};
use mlserver_settings::ModelSettings;
use mlserver_types::{InferenceRequest, InferenceResponse, MetadataModelResponse};

use crate::batching::Batcher;
use crate::cache::ResponseCache;
use crate::cloudevents::CloudEvents;
use crate::executor::{Executor, PredictCost};
use crate::statistics::{PredictTiming, Statistics};
use crate::{ServingError, ServingStream};

/// A loaded, ready model instance, with how it is served.
pub struct LoadedModel {
    /// The model-settings it was loaded with.
    pub settings: Arc<ModelSettings>,
    /// The loaded runtime.
    pub runtime: DynModel,
    /// Fetched once after load: the runtime's own, or built from settings.
    pub metadata: MetadataModelResponse,
    executor: Arc<Executor>,
    cost: Arc<PredictCost>,
    batcher: Option<Batcher>,
    cache: Option<Arc<ResponseCache>>,
    /// What the pipeline applies to its requests and responses.
    rules: Arc<ModelRules>,
    /// Distinguishes this instance from earlier loads of the same version
    /// (the response cache must not answer with a replaced model).
    instance: u64,
    /// How long one inference may take (`inference_timeout`).
    timeout: Option<std::time::Duration>,
    /// Triton's statistics, since this instance was loaded.
    statistics: Arc<Statistics>,
    /// Its inference metric series, found on first use, by the version as
    /// the request named it: none (`None`, REST), empty (`""`, gRPC's
    /// unset field), or its own (no other reaches this instance).
    infer_series: [std::sync::OnceLock<crate::metrics::InferSeries>; 3],
    /// The index's `reason` while ready (how the runtime serves it).
    index_reason: String,
}

static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl LoadedModel {
    pub(crate) fn new(
        settings: Arc<ModelSettings>,
        runtime: DynModel,
        metadata: MetadataModelResponse,
        executor: Arc<Executor>,
        cost: Arc<PredictCost>,
        batcher: Option<Batcher>,
        cache: Option<Arc<ResponseCache>>,
    ) -> Self {
        let rules = Arc::new(ModelRules::new(
            &settings.name,
            settings.version(),
            &metadata,
            false,
            None,
        ));
        LoadedModel {
            rules,
            settings,
            runtime,
            metadata,
            executor,
            cost,
            batcher,
            cache,
            instance: INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            timeout: None,
            statistics: Arc::default(),
            infer_series: Default::default(),
            index_reason: String::new(),
        }
    }

    /// The inference series of requests that named the version as
    /// `named` (see `infer_series`), made by `make` the first time.
    pub(crate) fn infer_series(
        &self,
        named: Option<&str>,
        make: impl FnOnce() -> crate::metrics::InferSeries,
    ) -> &crate::metrics::InferSeries {
        let slot = match named {
            None => 0,
            Some("") => 1,
            Some(_) => 2,
        };
        self.infer_series[slot].get_or_init(make)
    }

    /// Records Triton's statistics into `statistics` (shared with the
    /// model's batcher, which counts its runs).
    pub(crate) fn with_statistics(mut self, statistics: Arc<Statistics>) -> Self {
        self.statistics = statistics;
        self
    }

    /// Sets what the repository index says of the model while it is ready.
    pub(crate) fn with_index_reason(mut self, reason: &str) -> Self {
        self.index_reason = reason.to_owned();
        self
    }

    /// The repository index's `reason` while the model is ready.
    pub(crate) fn index_reason(&self) -> &str {
        &self.index_reason
    }

    /// Bounds each inference by `timeout`.
    pub(crate) fn with_timeout(mut self, timeout: Option<std::time::Duration>) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long one inference may take, if bounded.
    pub fn timeout(&self) -> Option<std::time::Duration> {
        self.timeout
    }

    /// A number no other loaded instance has had in this process.
    pub fn instance(&self) -> u64 {
        self.instance
    }

    /// The model's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The model's version, if it has one.
    pub fn version(&self) -> Option<&str> {
        self.settings.version()
    }

    /// The response cache, when both the server and this model enable it.
    pub(crate) fn cache(&self) -> Option<&ResponseCache> {
        self.cache.as_deref()
    }

    /// MLServer's CloudEvents headers on its requests and responses, and
    /// whether requests must match the metadata's inputs (see
    /// `MLModel::checks_inputs` and the `strict_inputs` setting).
    pub(crate) fn with_rules(
        mut self,
        checks_inputs: bool,
        cloudevents: Option<Arc<CloudEvents>>,
    ) -> Self {
        self.rules = Arc::new(
            ModelRules::new(
                self.name(),
                self.version(),
                &self.metadata,
                checks_inputs,
                cloudevents,
            )
            .with_headers(self.runtime.reads_headers()),
        );
        self
    }

    fn rules(&self) -> &Arc<ModelRules> {
        &self.rules
    }

    /// Where its predictions run.
    fn executor(&self) -> &Executor {
        &self.executor
    }

    /// Calls the runtime: through the adaptive batcher when the model has
    /// one (and the request can be batched), on the executor otherwise;
    /// with how long the request waited and its run took.
    pub(crate) async fn predict(
        &self,
        request: InferenceRequest,
    ) -> Result<(InferenceResponse, PredictTiming), ServingError> {
        let rows = self.rows(&request);
        let request = match &self.batcher {
            // The batcher counts its runs itself.
            // Boxed: the batcher's future (928 bytes) would otherwise be
            // part of every inference's future, batched or not, and that is
            // copied into each layer above it.
            Some(batcher) => match Box::pin(batcher.predict(request)).await {
                Ok(result) => return Ok(result?),
                Err(unbatchable) => unbatchable,
            },
            None => request,
        };
        let (response, timing) = self
            .executor
            .predict_timed(self.name(), &self.runtime, &self.cost, request)
            .await?;
        self.statistics.executed(rows, timing.infer);
        Ok((response, timing))
    }

    /// Whether requests are batched (adaptive batching is on).
    pub fn batches(&self) -> bool {
        self.batcher.is_some()
    }

    /// The inferences a request counts as in the statistics: its rows for
    /// a batching model (Triton's rule), else one.
    pub(crate) fn rows(&self, request: &InferenceRequest) -> u64 {
        if !self.batches() {
            return 1;
        }
        request
            .inputs
            .first()
            .and_then(|i| i.shape.first())
            .map_or(1, |&rows| rows as u64)
    }

    pub(crate) fn statistics(&self) -> &Statistics {
        &self.statistics
    }

    /// One inference through the pipeline (see the module's doc); the
    /// data plane around it bounds and measures it.
    pub(crate) async fn infer(
        &self,
        mut request: InferenceRequest,
    ) -> Result<InferenceResponse, ServingError> {
        let rules = &self.rules;
        let statistics = &self.statistics;
        let preparing = Instant::now();
        rules.prepare(&mut request)?;
        let prepared = preparing.elapsed();
        let rows = self.rows(&request);
        let id = request.id.clone().unwrap_or_default();
        let requested: Option<Vec<String>> = request
            .outputs
            .as_ref()
            .filter(|o| !o.is_empty() && !self.runtime.selects_outputs())
            .map(|o| o.iter().map(|o| o.name.clone()).collect());

        let cache_key = self
            .cache()
            .map(|_| ResponseCache::key(self.name(), self.version(), self.instance(), &request));
        if let (Some(cache), Some(key)) = (self.cache(), &cache_key) {
            let looking = Instant::now();
            let hit = cache.get(key);
            statistics.cache_lookup(looking.elapsed(), hit.is_some());
            if let Some(mut hit) = hit {
                hit.id = Some(id);
                rules.with_cloudevents(&mut hit);
                return Ok(hit);
            }
        }

        let (mut response, timing) = self.predict(request).await?;
        let completing = Instant::now();
        rules.complete(&mut response, id, requested.as_deref())?;
        // Only requests that went the whole way count in the compute stages,
        // so their counts agree (perf_analyzer checks they do).
        statistics.computed(prepared, timing, completing.elapsed());
        if !self.batches() {
            statistics.executed_alone(rows, prepared, completing.elapsed());
        }
        if let (Some(cache), Some(key)) = (self.cache(), cache_key) {
            cache.insert(key, response.clone());
        }
        rules.with_cloudevents(&mut response);
        Ok(response)
    }

    /// A stream of inferences whose first request is already prepared
    /// ([`LoadedModel::prepare`]): through the runtime's own
    /// `predict_stream` when it streams, else each request through
    /// [`LoadedModel::infer`] in turn, with the first one's id by default.
    pub(crate) fn stream(
        self: Arc<Self>,
        first: InferenceRequest,
        rest: RequestStream,
        id: String,
    ) -> ServingStream {
        if self.runtime.streaming().is_some() {
            return through_runtime(self, first, rest, id);
        }
        let requests = futures::stream::once(async move { first }).chain(rest);
        Box::pin(requests.then(move |mut request| {
            let model = self.clone();
            let id = id.clone();
            async move {
                request.id.get_or_insert_with(|| id.clone());
                model.infer(request).await
            }
        }))
    }

    /// The pipeline's first step alone, for a stream's first request
    /// (whose error fails the call rather than ending a stream).
    pub(crate) fn prepare(&self, request: &mut InferenceRequest) -> Result<(), ServingError> {
        self.rules.prepare(request)
    }
}

/// A streaming runtime's `predict_stream`, on the executor: later requests
/// are prepared as they arrive (a bad one ends the stream with its error),
/// responses completed as they come, a panic turned into the last item.
fn through_runtime(
    model: Arc<LoadedModel>,
    first: InferenceRequest,
    rest: RequestStream,
    id: String,
) -> ServingStream {
    let (error_tx, error_rx) = tokio::sync::oneshot::channel::<ServingError>();
    // The model's rules, not the model: a stream a client keeps open must
    // not hold an unload up (it fails when its runtime goes away).
    let preparing = model.rules().clone();
    let stream_id = id.clone();
    let later = rest.scan(Some(error_tx), move |error_tx, mut request| {
        request.id.get_or_insert_with(|| stream_id.clone());
        let next = match preparing.prepare(&mut request) {
            Ok(()) => Some(request),
            Err(e) => {
                if let Some(tx) = error_tx.take() {
                    let _ = tx.send(e);
                }
                None
            }
        };
        futures::future::ready(next)
    });
    let requests: RequestStream =
        Box::pin(futures::stream::once(async move { first }).chain(later));
    let finishing = model.rules().clone();
    let responses = model
        .executor()
        .stream(model.name(), model.runtime.clone(), requests)
        .map(move |item| {
            item.map_err(ServingError::from).and_then(|mut response| {
                finishing.complete(&mut response, id.clone(), None)?;
                finishing.with_cloudevents(&mut response);
                Ok(response)
            })
        });
    Box::pin(
        responses
            .chain(futures::stream::once(error_rx).filter_map(|e| async move { e.ok().map(Err) })),
    )
}

/// What the pipeline applies to a model's requests and responses, kept
/// apart from the model itself (shared, cheap to hold).
#[derive(Debug, Clone)]
pub(crate) struct ModelRules {
    name: String,
    version: Option<String>,
    /// The metadata's inputs, checked when `checks_inputs`.
    inputs: Vec<mlserver_types::MetadataTensor>,
    checks_inputs: bool,
    cloudevents: Option<Arc<crate::cloudevents::CloudEvents>>,
    /// The runtime reads `parameters.headers` (`MLModel::reads_headers`):
    /// the transport's headers and the CloudEvents entries go there.
    reads_headers: bool,
    /// The CloudEvents response headers, built once for the model.
    cloudevents_response: Option<crate::cloudevents::ResponseHeaders>,
}

impl ModelRules {
    /// Whether requests get `parameters.headers` (the runtime's
    /// `MLModel::reads_headers`).
    pub(crate) fn with_headers(mut self, reads_headers: bool) -> Self {
        self.reads_headers = reads_headers;
        self
    }

    pub(crate) fn new(
        name: &str,
        version: Option<&str>,
        metadata: &MetadataModelResponse,
        checks_inputs: bool,
        cloudevents: Option<Arc<crate::cloudevents::CloudEvents>>,
    ) -> Self {
        ModelRules {
            name: name.to_owned(),
            version: version.map(str::to_owned),
            inputs: metadata.inputs.clone(),
            reads_headers: true,
            cloudevents_response: cloudevents.as_ref().map(|ce| ce.response_headers(name)),
            checks_inputs,
            cloudevents,
        }
    }

    /// What every request goes through before the runtime: the check
    /// against the metadata (models that check their inputs), an id, the
    /// CloudEvents headers.
    fn prepare(&self, request: &mut InferenceRequest) -> Result<(), ServingError> {
        if self.checks_inputs {
            self.validate_inputs(request)?;
        }
        request
            .id
            .get_or_insert_with(crate::request_id::new_request_id);
        if !self.reads_headers {
            // Nothing reads them: neither copied nor extended.
            request.headers = None;
            return Ok(());
        }
        crate::headers::materialize(request);
        if let Some(ce) = &self.cloudevents {
            ce.on_request(request, &self.name);
        }
        Ok(())
    }

    /// What every response goes through after the runtime: the model's
    /// name, version and the request's id, the requested outputs (for
    /// runtimes that leave them to the server), a check of every output.
    /// (The CloudEvents headers come last, by
    /// [`ModelRules::with_cloudevents`]: a cached answer is kept without
    /// them.)
    ///
    /// In place: a response is large enough that each move is a `memcpy`.
    fn complete(
        &self,
        response: &mut InferenceResponse,
        id: String,
        requested: Option<&[String]>,
    ) -> Result<(), ServingError> {
        response.model_name = self.name.clone();
        response.model_version = self.version.clone();
        response.id = Some(id);
        if let Some(names) = requested {
            select_outputs(&mut response.outputs, names);
        }
        if response.json.is_some() {
            // Written as MLServer writes it, which checks nothing.
            return Ok(());
        }
        for output in &response.outputs {
            output.validate().map_err(|e| {
                ServingError::internal(format!(
                    "model {} returned an invalid output: {e}",
                    self.name
                ))
            })?;
        }
        Ok(())
    }

    /// The response's CloudEvents headers (MLServer's response middleware).
    fn with_cloudevents(&self, response: &mut InferenceResponse) {
        if let Some(headers) = &self.cloudevents_response {
            headers.apply(response);
        }
    }

    /// Datatypes must match the declared inputs; shapes must fit them where
    /// the ranks agree (see `MetadataTensor::shape_accepts`). Only for
    /// models that check their inputs: MLServer passes requests on as sent.
    fn validate_inputs(&self, request: &InferenceRequest) -> Result<(), ServingError> {
        for input in &request.inputs {
            let Some(declared) = self.inputs.iter().find(|m| m.name == input.name) else {
                continue;
            };
            if declared.datatype != input.datatype {
                return Err(ServingError::bad_request(format!(
                    "input '{}' has datatype {} but model {} expects {}",
                    input.name, input.datatype, self.name, declared.datatype
                )));
            }
            if !declared.shape_accepts(&input.shape) {
                return Err(ServingError::bad_request(format!(
                    "input '{}' has shape {:?} but model {} expects {:?}",
                    input.name, input.shape, self.name, declared.shape
                )));
            }
        }
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use mlserver_types::RequestHeaders;

    fn with_transport_headers() -> InferenceRequest {
        let mut map = http::HeaderMap::new();
        map.append("x-a", http::HeaderValue::from_static("1"));
        map.append("x-a", http::HeaderValue::from_static("2"));
        InferenceRequest {
            headers: Some(RequestHeaders::new(Arc::new(map))),
            ..Default::default()
        }
    }

    #[test]
    fn headers_reach_runtimes_that_read_them_only() {
        let metadata = MetadataModelResponse::default();
        let cloudevents = Some(Arc::new(crate::CloudEvents::new("mlserver")));
        let reading = ModelRules::new("m", None, &metadata, false, cloudevents.clone());
        let mut request = with_transport_headers();
        reading.prepare(&mut request).unwrap();
        let seen = request.parameters.as_ref().unwrap().headers().unwrap();
        assert_eq!(seen["x-a"], "1, 2");
        assert_eq!(seen["Ce-Modelid"], "m");
        assert!(request.headers.is_none());

        let not_reading =
            ModelRules::new("m", None, &metadata, false, cloudevents).with_headers(false);
        let mut request = with_transport_headers();
        not_reading.prepare(&mut request).unwrap();
        assert!(request.headers.is_none());
        assert!(request
            .parameters
            .as_ref()
            .and_then(|p| p.headers())
            .is_none());
    }
}
