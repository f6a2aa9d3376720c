//! The models being served: every version of every name, with its state.
//!
//! Lookups on the inference path take a read lock for a map lookup and an
//! `Arc` clone; loading and unloading never hold the lock across an await.

use crate::ServingError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use mlserver_runtime::DynModel;
use mlserver_types::{InferenceRequest, InferenceResponse};

use crate::batching::Batcher;
use crate::cache::ResponseCache;
use crate::cloudevents::CloudEvents;
use crate::dataplane::ModelRules;
use crate::executor::{Executor, PredictCost};
use crate::statistics::{PredictTiming, Statistics};
use mlserver_settings::ModelSettings;
use mlserver_types::{MetadataModelResponse, ModelState};

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

    /// Bounds each inference by `timeout`.
    pub(crate) fn with_index_reason(mut self, reason: &str) -> Self {
        self.index_reason = reason.to_owned();
        self
    }

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

    pub(crate) fn rules(&self) -> &Arc<ModelRules> {
        &self.rules
    }

    /// Where its predictions run.
    pub(crate) fn executor(&self) -> &Executor {
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
}

/// Where one version of a model is in its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Being loaded (a first load; a reload keeps the old instance serving).
    Loading,
    /// Loaded and serving.
    Ready,
    /// Being unloaded.
    Unloading,
    /// The last load failed; the reason is reported by the repository index.
    Failed(String),
}

/// One version of a model. During a reload `model` keeps the old instance,
/// which serves until the new one is ready.
#[derive(Clone)]
pub struct Slot {
    /// Where the version is in its life.
    pub state: SlotState,
    /// The instance serving it, if any.
    pub model: Option<Arc<LoadedModel>>,
}

impl Slot {
    /// Whether requests can be served now.
    pub(crate) fn is_ready(&self) -> bool {
        self.model.as_ref().is_some_and(|m| m.runtime.ready())
            && matches!(self.state, SlotState::Ready | SlotState::Loading)
    }

    pub(crate) fn index_state(&self) -> (ModelState, String) {
        match &self.state {
            SlotState::Ready | SlotState::Loading if self.model.is_some() => (
                ModelState::Ready,
                self.model
                    .as_ref()
                    .map(|m| m.index_reason.clone())
                    .unwrap_or_default(),
            ),
            // (A reload keeps serving the old instance: still ready.)
            SlotState::Ready => (ModelState::Ready, String::new()),
            SlotState::Loading => (ModelState::Loading, String::new()),
            SlotState::Unloading => (ModelState::Unloading, String::new()),
            SlotState::Failed(reason) => (ModelState::Unavailable, reason.clone()),
        }
    }
}

/// When the server as a whole is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// Every model version must serve (and every settings file parse);
    /// false: one serving model is enough (`strict_readiness`).
    pub strict: bool,
    /// Ready with no model registered (`empty_registry_readiness`).
    pub empty_registry_ready: bool,
}

impl Default for Readiness {
    /// MLServer's: every model, and ready when there are none.
    fn default() -> Self {
        Readiness {
            strict: true,
            empty_registry_ready: true,
        }
    }
}

/// `None` is the unversioned model.
pub type Version = Option<String>;

/// Looked up by every request; foldhash is several times cheaper than
/// SipHash and randomly seeded.
type ByName = HashMap<String, BTreeMap<Version, Slot>, foldhash::fast::RandomState>;

/// All registered models, and the custom endpoints they serve.
#[derive(Default)]
pub struct ModelRegistry {
    models: RwLock<ByName>,
    custom: crate::custom::CustomRoutes,
    /// Settings files under the models folder that did not parse at the
    /// last scan: models that cannot even be registered, which keep the
    /// server not ready as a failed load does.
    invalid_settings: std::sync::atomic::AtomicUsize,
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty registry whose models' custom routes may not overlap
    /// `reserved` (the transports' own routes, such as
    /// `mlserver_rest::V2_PATHS`).
    pub fn with_reserved_routes(reserved: &'static [&'static str]) -> Self {
        ModelRegistry {
            custom: crate::custom::CustomRoutes::reserving(reserved),
            ..Self::default()
        }
    }

    /// The custom endpoints of the loaded models.
    pub fn custom_routes(&self) -> &crate::custom::CustomRoutes {
        &self.custom
    }

    /// The model that serves `name` (at `version`, or the default version).
    pub fn get(&self, name: &str, version: Option<&str>) -> Result<Arc<LoadedModel>, ServingError> {
        let models = self.models.read().expect("registry lock");
        let versions = models
            .get(name)
            .ok_or_else(|| ServingError::not_found(name, version))?;
        let slot = match version {
            Some(v) => versions
                .get(&Some(v.to_owned()))
                .ok_or_else(|| ServingError::not_found(name, version))?,
            None => default_slot(versions).ok_or_else(|| ServingError::not_found(name, None))?,
        };
        match (&slot.model, &slot.state) {
            (Some(model), SlotState::Ready | SlotState::Loading) => Ok(model.clone()),
            (_, SlotState::Failed(reason)) => Err(ServingError::ModelLoadFailed {
                name: name.to_owned(),
                reason: reason.clone(),
            }),
            _ => Err(ServingError::ModelNotReady(name.to_owned())),
        }
    }

    /// Whether `name` (at `version`, or its default) is ready; NotFound errors
    /// when it is not registered.
    pub(crate) fn is_ready(&self, name: &str, version: Option<&str>) -> Result<bool, ServingError> {
        let models = self.models.read().expect("registry lock");
        let versions = models
            .get(name)
            .ok_or_else(|| ServingError::not_found(name, version))?;
        let slot = match version {
            Some(v) => versions.get(&Some(v.to_owned())),
            None => default_slot(versions),
        };
        slot.map(Slot::is_ready)
            .ok_or_else(|| ServingError::not_found(name, version))
    }

    /// How many model versions can serve now.
    pub(crate) fn ready_count(&self) -> usize {
        let models = self.models.read().expect("registry lock");
        models
            .values()
            .flat_map(|v| v.values())
            .filter(|s| s.is_ready())
            .count()
    }

    /// Records how many settings files the last scan could not read.
    pub(crate) fn set_invalid_settings(&self, count: usize) {
        self.invalid_settings
            .store(count, std::sync::atomic::Ordering::Release);
    }

    /// Whether the server is ready by `rule`'s terms: by default, whether
    /// every registered model version can serve and every settings file of
    /// the last scan was valid (the ODH fork's
    /// `strict_readiness` and `empty_registry_readiness`).
    pub(crate) fn ready_by(&self, rule: Readiness) -> bool {
        let models = self.models.read().expect("registry lock");
        let mut slots = models.values().flat_map(|v| v.values()).peekable();
        if slots.peek().is_none() {
            return rule.empty_registry_ready
                && self
                    .invalid_settings
                    .load(std::sync::atomic::Ordering::Acquire)
                    == 0;
        }
        if rule.strict {
            self.invalid_settings
                .load(std::sync::atomic::Ordering::Acquire)
                == 0
                && slots.all(Slot::is_ready)
        } else {
            slots.any(Slot::is_ready)
        }
    }

    /// The slot for one version, if registered.
    pub fn slot(&self, name: &str, version: &Version) -> Option<Slot> {
        let models = self.models.read().expect("registry lock");
        models.get(name).and_then(|v| v.get(version)).cloned()
    }

    /// Every registered (name, version, slot), sorted by name then version.
    pub fn snapshot(&self) -> Vec<(String, Version, Slot)> {
        let models = self.models.read().expect("registry lock");
        let mut all: Vec<_> = models
            .iter()
            .flat_map(|(name, versions)| {
                versions
                    .iter()
                    .map(move |(v, slot)| (name.clone(), v.clone(), slot.clone()))
            })
            .collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    /// Versions registered under `name`.
    pub fn versions(&self, name: &str) -> Vec<Version> {
        let models = self.models.read().expect("registry lock");
        models
            .get(name)
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Runs `f` on the slot of `name`/`version`, creating it (as loading)
    /// when it is new.
    fn with_slot<R>(&self, name: &str, version: &Version, f: impl FnOnce(&mut Slot) -> R) -> R {
        let mut models = self.models.write().expect("registry lock");
        let slot = models
            .entry(name.to_owned())
            .or_default()
            .entry(version.clone())
            .or_insert(Slot {
                state: SlotState::Loading,
                model: None,
            });
        f(slot)
    }

    /// Marks a version as loading, keeping any instance that serves now.
    pub(crate) fn begin_load(&self, name: &str, version: &Version) {
        self.with_slot(name, version, |slot| {
            slot.state = SlotState::Loading;
        })
    }

    /// Installs a freshly loaded instance; returns the one it replaces.
    pub(crate) fn finish_load(
        &self,
        name: &str,
        version: &Version,
        model: Arc<LoadedModel>,
    ) -> Option<Arc<LoadedModel>> {
        self.with_slot(name, version, |slot| {
            slot.state = SlotState::Ready;
            slot.model.replace(model)
        })
    }

    /// Records a failed load. An instance that was serving keeps serving (a
    /// failed reload must not take a working model down).
    pub(crate) fn fail_load(&self, name: &str, version: &Version, reason: String) {
        self.with_slot(name, version, |slot| {
            slot.state = if slot.model.is_some() {
                SlotState::Ready
            } else {
                SlotState::Failed(reason)
            };
        })
    }

    /// Removes `version` of `name` if its last load failed (and no instance
    /// serves it); whether it did.
    pub(crate) fn forget_failed(&self, name: &str, version: &Version) -> bool {
        let failed = {
            let models = self.models.read().expect("registry lock");
            models
                .get(name)
                .and_then(|v| v.get(version))
                .is_some_and(|slot| {
                    matches!(slot.state, SlotState::Failed(_)) && slot.model.is_none()
                })
        };
        if failed {
            self.remove(name, version);
        }
        failed
    }

    /// Marks a version as unloading (it stops serving at once).
    pub(crate) fn begin_unload(&self, name: &str, version: &Version) -> Option<Arc<LoadedModel>> {
        let mut models = self.models.write().expect("registry lock");
        let slot = models.get_mut(name)?.get_mut(version)?;
        slot.state = SlotState::Unloading;
        slot.model.take()
    }

    /// Removes a version; the name goes too when no version is left.
    pub fn remove(&self, name: &str, version: &Version) {
        self.custom.release(name, version.as_deref());
        let mut models = self.models.write().expect("registry lock");
        if let Some(versions) = models.get_mut(name) {
            versions.remove(version);
            if versions.is_empty() {
                models.remove(name);
            }
        }
    }
}

/// MLServer's default version: the unversioned model if there is one, else
/// the newest version (integer order when both parse, else string order).
fn default_slot(versions: &BTreeMap<Version, Slot>) -> Option<&Slot> {
    if let Some(slot) = versions.get(&None) {
        return Some(slot);
    }
    versions
        .iter()
        .filter_map(|(v, slot)| v.as_deref().map(|v| (v, slot)))
        .max_by(|(a, _), (b, _)| compare_versions(a, b))
        .map(|(_, slot)| slot)
}

fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i64>(), b.parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => a.cmp(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn versions_compare_as_integers_when_they_can() {
        assert_eq!(compare_versions("10", "9"), Ordering::Greater);
        assert_eq!(compare_versions("v10", "v9"), Ordering::Less);
    }

    #[test]
    fn unknown_names_and_versions_are_not_found() {
        let r = ModelRegistry::new();
        assert_eq!(
            r.get("m", None).err().unwrap().to_string(),
            "Model m not found"
        );
        r.begin_load("m", &Some("1".into()));
        assert_eq!(
            r.get("m", Some("2")).err().unwrap().to_string(),
            "Model m with version 2 not found"
        );
        assert_eq!(
            r.get("m", Some("1")).err().unwrap().to_string(),
            "Model m is not ready yet."
        );
        let strict = Readiness::default();
        let lenient = Readiness {
            strict: false,
            empty_registry_ready: false,
        };
        assert!(!r.ready_by(strict) && !r.ready_by(lenient));
        r.fail_load("m", &Some("1".into()), "boom".into());
        assert!(r.get("m", None).err().unwrap().to_string().contains("boom"));
        assert!(!r.ready_by(strict) && !r.ready_by(lenient));
        r.remove("m", &Some("1".into()));
        assert!(r.ready_by(strict));
        assert!(!r.ready_by(lenient), "empty, and empty is not ready");
    }
}
