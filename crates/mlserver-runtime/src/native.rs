//! Native runtimes for implementations that are Python classes elsewhere.
//!
//! MLServer's users name MLServer's own runtimes
//! (`mlserver_xgboost.XGBoostModel`...) in their settings. A Rust runtime
//! can serve the same models with the same answers, but not always every
//! model (a file format it does not read) nor every request (a pandas
//! request it does not decode): what it declines goes to the
//! implementation's own runtime, the registry's fallback (Python workers),
//! so the answers stay MLServer's.
//!
//! A model's `parameters.extra.native` forces either path: `true` fails the
//! load where the native runtime declines, `false` never tries it. This is
//! also how the differential tests compare both paths with MLServer.

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::FutureExt;
use mlserver_types::{InferenceRequest, InferenceResponse, MetadataModelResponse};
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::registry::{DynModel, RuntimeFactory};
use crate::{MLModel, MLServerError, ModelContext};

/// What a native runtime says about one model.
pub enum Native<M> {
    /// It serves the model.
    Serves(M),
    /// It cannot serve this model exactly as the implementation it stands
    /// in for; the reason is logged and shown in the repository index.
    Declines(String),
}

/// A runtime serving natively what another runtime (a Python class) also
/// serves, registered with [`crate::RuntimeRegistry::register_native`].
#[async_trait]
pub trait NativeModel: MLModel {
    /// Loads the model, or says why it must be served by the implementation's
    /// own runtime. An `Err` fails the load (a corrupt file): the other
    /// runtime is not asked.
    async fn load_native(ctx: ModelContext) -> Result<Native<Self>, MLServerError>
    where
        Self: Sized;

    /// Why `request` must be answered by the implementation's own runtime
    /// (a codec this runtime does not reproduce), or `None` to answer it
    /// here.
    fn declines(&self, request: &InferenceRequest) -> Option<String> {
        let _ = request;
        None
    }
}

pub(crate) type NativeFactory = Arc<
    dyn Fn(ModelContext) -> BoxFuture<'static, Result<Native<Arc<dyn NativeModel>>, MLServerError>>
        + Send
        + Sync,
>;

pub(crate) fn native_factory<M: NativeModel>() -> NativeFactory {
    Arc::new(|ctx| {
        async move {
            Ok(match M::load_native(ctx).await? {
                Native::Serves(m) => Native::Serves(Arc::new(m) as Arc<dyn NativeModel>),
                Native::Declines(reason) => Native::Declines(reason),
            })
        }
        .boxed()
    })
}

/// The `native` switch of a model's `parameters.extra`.
fn forced(ctx: &ModelContext) -> Result<Option<bool>, MLServerError> {
    match ctx.extra().and_then(|e| e.get("native")) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(MLServerError::bad_request(format!(
            "model {}: parameters.extra.native must be true or false, not {other}",
            ctx.name()
        ))),
    }
}

/// The factory registered for `implementation`: the native runtime first,
/// `fallback` (the implementation's own runtime, if this server has one)
/// for what it declines.
pub(crate) fn with_fallback(
    implementation: String,
    native: NativeFactory,
    fallback: Option<RuntimeFactory>,
) -> RuntimeFactory {
    Arc::new(move |ctx: ModelContext| {
        let implementation = implementation.clone();
        let native = native.clone();
        let fallback = fallback.clone();
        async move {
            let forced = forced(&ctx)?;
            let reason = if forced == Some(false) {
                "parameters.extra.native is false".to_owned()
            } else {
                match native(ctx.clone()).await? {
                    Native::Serves(model) => {
                        info!(model = %ctx.name(), "serving {} natively", implementation);
                        let fallback = fallback.map(|factory| Fallback {
                            implementation,
                            factory,
                            ctx,
                            model: OnceCell::new(),
                        });
                        return Ok(Arc::new(WithFallback { model, fallback }) as DynModel);
                    }
                    Native::Declines(reason) if forced == Some(true) => {
                        return Err(MLServerError::bad_request(format!(
                            "model {} cannot be served natively (parameters.extra.native is true): {reason}",
                            ctx.name()
                        )))
                    }
                    Native::Declines(reason) => reason,
                }
            };
            let Some(factory) = fallback else {
                return Err(MLServerError::bad_request(format!(
                    "model {} is not served natively ({reason}) and this server has no runtime for {implementation} (no Python)",
                    ctx.name()
                )));
            };
            warn!(model = %ctx.name(), "serving {} with its Python runtime: {reason}", implementation);
            ctx.set_index_reason(format!("served by the Python runtime: {reason}"));
            factory(ctx).await
        }
        .boxed()
    })
}

/// The implementation's own runtime for the requests a native model
/// declines, loaded on the first one. A failed load is remembered: the
/// requests that would need it are refused with its reason instead of
/// starting a Python process each.
struct Fallback {
    implementation: String,
    factory: RuntimeFactory,
    ctx: ModelContext,
    model: OnceCell<Result<DynModel, MLServerError>>,
}

impl Fallback {
    async fn model(&self, reason: &str) -> Result<&DynModel, MLServerError> {
        let loaded = self
            .model
            .get_or_init(|| async {
                warn!(
                    model = %self.ctx.name(),
                    "loading {} with its Python runtime for requests served natively otherwise: {reason}",
                    self.implementation
                );
                (self.factory)(self.ctx.clone()).await
            })
            .await;
        loaded.as_ref().map_err(|e| {
            MLServerError::bad_request(format!(
                "{reason}: the native runtime does not answer this request, and {} could not be loaded to answer it: {e}",
                self.implementation
            ))
        })
    }
}

/// A native model, and the implementation's own runtime behind it.
struct WithFallback {
    model: Arc<dyn NativeModel>,
    fallback: Option<Fallback>,
}

#[async_trait]
impl MLModel for WithFallback {
    async fn load(_ctx: ModelContext) -> Result<Self, MLServerError> {
        Err(MLServerError::internal(
            "a native runtime is built by the registry",
        ))
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let Some(reason) = self.model.declines(&request) else {
            return self.model.predict(request).await;
        };
        match &self.fallback {
            Some(fallback) => fallback.model(&reason).await?.predict(request).await,
            None => Err(MLServerError::bad_request(format!(
                "{reason}: the native runtime does not answer this request and this server has no Python runtime to answer it"
            ))),
        }
    }

    async fn unload(&self) -> Result<(), MLServerError> {
        if let Some(Ok(m)) = self.fallback.as_ref().and_then(|f| f.model.get()) {
            m.unload().await?;
        }
        self.model.unload().await
    }

    fn ready(&self) -> bool {
        self.model.ready()
    }

    async fn metadata(&self) -> Option<MetadataModelResponse> {
        self.model.metadata().await
    }

    fn checks_inputs(&self) -> bool {
        self.model.checks_inputs()
    }

    fn reads_headers(&self) -> bool {
        self.model.reads_headers()
    }

    fn selects_outputs(&self) -> bool {
        self.model.selects_outputs()
    }
}
