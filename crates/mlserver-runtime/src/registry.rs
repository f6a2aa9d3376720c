//! Maps `implementation` names from model-settings to runtime constructors.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use futures::FutureExt;

use crate::model::{DynModel, RuntimeFactory};
use crate::native::{self, NativeFactory, NativeModel};
use crate::MLModel;

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
    factories: BTreeMap<String, Entry>,
    fallback: Option<FallbackResolver>,
}

/// How a registered name is served.
#[derive(Clone)]
enum Entry {
    /// By this runtime alone.
    Runtime(RuntimeFactory),
    /// Natively where the native runtime can, else by what the fallback
    /// resolver gives for the same name (see [`NativeModel`]).
    Native(NativeFactory),
    /// Loaded by what the fallback resolver gives for the name, then served
    /// natively from what that runtime hands over, where it can.
    Handover(NativeFactory),
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
        self.factories
            .insert(implementation.into(), Entry::Runtime(factory));
        self
    }

    /// Registers `M` under `implementation` as a native stand-in for the
    /// runtime the fallback resolver gives for that name (MLServer's Python
    /// runtimes): `M` serves the models and requests it does not decline,
    /// the fallback the rest (see [`NativeModel`]).
    pub fn register_native<M: NativeModel>(
        &mut self,
        implementation: impl Into<String>,
    ) -> &mut Self {
        self.factories.insert(
            implementation.into(),
            Entry::Native(native::native_factory::<M>()),
        );
        self
    }

    /// Registers `M` under `implementation` as a native stand-in for a
    /// runtime that alone can read the model's files (MLServer's
    /// scikit-learn runtime unpickles them): the fallback resolver's runtime
    /// loads each model first and hands its fitted parameters over
    /// ([`ModelContext::take_handover`](crate::ModelContext::take_handover)
    /// in `M::load_native`); where `M` serves the model, the other runtime
    /// unloads it again and is kept only for the requests `M` declines.
    pub fn register_handover<M: NativeModel>(
        &mut self,
        implementation: impl Into<String>,
    ) -> &mut Self {
        self.factories.insert(
            implementation.into(),
            Entry::Handover(native::native_factory::<M>()),
        );
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
        let fallback = || self.fallback.as_ref().and_then(|f| f(implementation));
        match self.factories.get(implementation) {
            Some(Entry::Runtime(factory)) => Some(factory.clone()),
            Some(Entry::Native(native)) => Some(native::with_fallback(
                implementation.to_owned(),
                native.clone(),
                fallback(),
            )),
            Some(Entry::Handover(native)) => Some(native::after_handover(
                implementation.to_owned(),
                native.clone(),
                fallback(),
            )),
            None => fallback(),
        }
    }

    /// Whether models of `implementation` are loaded by the fallback's
    /// runtime first ([`RuntimeRegistry::register_handover`]): it must be
    /// able to load them, although they are served natively.
    pub fn loads_through_fallback(&self, implementation: &str) -> bool {
        matches!(self.factories.get(implementation), Some(Entry::Handover(_)))
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
