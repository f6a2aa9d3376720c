//! Maps `implementation` names from model-settings to runtime constructors.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use crate::{MLModel, MLServerError, ModelContext};

/// A loaded runtime behind dynamic dispatch.
pub type DynModel = Arc<dyn MLModel>;

/// Builds and loads a runtime for one model.
pub type RuntimeFactory =
    Arc<dyn Fn(ModelContext) -> BoxFuture<'static, Result<DynModel, MLServerError>> + Send + Sync>;

/// Finds factories for names no runtime was registered under (e.g. Python
/// import paths served by worker processes).
pub type FallbackResolver = Arc<dyn Fn(&str) -> Option<RuntimeFactory> + Send + Sync>;

/// The runtimes a server can instantiate, by `implementation` name.
///
/// The default binary registers the bundled runtimes; a custom binary adds
/// its own and runs the same CLI:
///
/// ```
/// # use mlserver_runtime::{async_trait, MLModel, MLServerError, ModelContext, RuntimeRegistry};
/// # use mlserver_types::{InferenceRequest, InferenceResponse};
/// # struct MyModel;
/// # #[async_trait]
/// # impl MLModel for MyModel {
/// #     async fn load(_: ModelContext) -> Result<Self, MLServerError> { Ok(MyModel) }
/// #     async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
/// #         Ok(InferenceResponse::default())
/// #     }
/// # }
/// let mut runtimes = RuntimeRegistry::new();
/// runtimes.register::<MyModel>("my_models.MyModel");
/// assert!(runtimes.resolve("my_models.MyModel").is_some());
/// ```
#[derive(Clone, Default)]
pub struct RuntimeRegistry {
    factories: BTreeMap<String, RuntimeFactory>,
    fallback: Option<FallbackResolver>,
}

impl RuntimeRegistry {
    /// An empty registry (no runtimes).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `M` under `implementation`, replacing any earlier one.
    pub fn register<M: MLModel>(&mut self, implementation: impl Into<String>) -> &mut Self {
        let factory: RuntimeFactory = Arc::new(|ctx| {
            async move { M::load(ctx).await.map(|m| Arc::new(m) as DynModel) }.boxed()
        });
        self.factories.insert(implementation.into(), factory);
        self
    }

    /// Whether a fallback resolver is set.
    pub fn has_fallback(&self) -> bool {
        self.fallback.is_some()
    }

    /// Sets the resolver asked for names that were not registered.
    pub fn set_fallback(&mut self, resolver: FallbackResolver) -> &mut Self {
        self.fallback = Some(resolver);
        self
    }

    /// The factory for `implementation`: registered runtimes first, then the
    /// fallback resolver.
    pub fn resolve(&self, implementation: &str) -> Option<RuntimeFactory> {
        self.factories
            .get(implementation)
            .cloned()
            .or_else(|| self.fallback.as_ref().and_then(|f| f(implementation)))
    }

    /// Whether `implementation` is registered (not left to the fallback).
    pub fn is_registered(&self, implementation: &str) -> bool {
        self.factories.contains_key(implementation)
    }

    /// Registered names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.factories.keys().map(String::as_str)
    }
}

impl fmt::Debug for RuntimeRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeRegistry")
            .field("runtimes", &self.factories.keys().collect::<Vec<_>>())
            .field("fallback", &self.fallback.is_some())
            .finish()
    }
}
