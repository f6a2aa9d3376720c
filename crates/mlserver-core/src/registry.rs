//! The models being served: every version of every name, with its state.
//!
//! Lookups on the inference path take a read lock for a map lookup and an
//! `Arc` clone; loading and unloading never hold the lock across an await.

use crate::ServingError;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use mlserver_types::ModelState;

use crate::pipeline::LoadedModel;

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
                    .map(|m| m.index_reason().to_owned())
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
