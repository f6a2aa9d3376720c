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

use crate::model::{DynModel, RuntimeFactory};
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

/// The factory registered for `implementation` with
/// [`crate::RuntimeRegistry::register_handover`]: `fallback` (the only
/// runtime that reads the model's files) loads the model and offers its
/// parameters; `native` serves it from them where it can, and the loaded
/// model is unloaded again (kept only for what `native` declines, loaded
/// again on the first such request). Where `native` cannot, the model
/// loaded first is what serves it.
pub(crate) fn after_handover(
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
            let Some(factory) = fallback else {
                return Err(MLServerError::bad_request(format!(
                    "model {}: {implementation} models are read by its Python runtime, and this server has no Python",
                    ctx.name()
                )));
            };
            if forced == Some(false) {
                let reason = "parameters.extra.native is false";
                warn!(model = %ctx.name(), "serving {} with its Python runtime: {reason}", implementation);
                ctx.set_index_reason(format!("served by the Python runtime: {reason}"));
                return factory(ctx).await;
            }
            let asking = ctx.requesting_handover();
            let loaded = factory(asking.clone()).await?;
            let reason = match native(asking).await {
                Ok(Native::Serves(model)) => {
                    info!(model = %ctx.name(), "serving {} natively from the parameters its runtime handed over", implementation);
                    if let Err(e) = loaded.unload().await {
                        warn!(model = %ctx.name(), "unloading the model its runtime loaded for the hand-over: {e}");
                    }
                    let fallback = Some(Fallback {
                        implementation,
                        factory,
                        ctx,
                        model: OnceCell::new(),
                    });
                    return Ok(Arc::new(WithFallback { model, fallback }) as DynModel);
                }
                Ok(Native::Declines(reason)) => reason,
                Err(e) => format!("the parameters handed over were refused: {e}"),
            };
            if forced == Some(true) {
                let _ = loaded.unload().await;
                return Err(MLServerError::bad_request(format!(
                    "model {} cannot be served natively (parameters.extra.native is true): {reason}",
                    ctx.name()
                )));
            }
            warn!(model = %ctx.name(), "serving {} with its Python runtime: {reason}", implementation);
            ctx.set_index_reason(format!("served by the Python runtime: {reason}"));
            Ok(loaded)
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use mlserver_settings::ModelSettings;

    use super::*;
    use crate::RuntimeRegistry;

    /// Loads made and unloads done by the stand-in for the Python runtime.
    static LOADS: AtomicUsize = AtomicUsize::new(0);
    static UNLOADS: AtomicUsize = AtomicUsize::new(0);

    fn answered(by: &str) -> InferenceResponse {
        let mut response = InferenceResponse::new(vec![]);
        response.id = Some(by.to_owned());
        response
    }

    /// The runtime that reads the file: offers what its file says.
    struct Reader;

    #[async_trait]
    impl MLModel for Reader {
        async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
            LOADS.fetch_add(1, Ordering::SeqCst);
            if ctx.handover_requested() {
                let offer = ctx
                    .extra()
                    .and_then(|e| e.get("offer"))
                    .and_then(|o| o.as_str());
                ctx.offer_handover(match offer {
                    Some("none") => Err("nothing to offer".into()),
                    Some(params) => Ok(bytes::Bytes::copy_from_slice(params.as_bytes())),
                    None => Err("no offer".into()),
                });
            }
            Ok(Reader)
        }

        async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
            Ok(answered("read"))
        }

        async fn unload(&self) -> Result<(), MLServerError> {
            UNLOADS.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    /// The native runtime: serves what was offered unless it is "bad".
    struct Taker;

    #[async_trait]
    impl NativeModel for Taker {
        async fn load_native(ctx: ModelContext) -> Result<Native<Self>, MLServerError> {
            Ok(match ctx.take_handover() {
                Some(Ok(params)) if &params[..] == b"good" => Native::Serves(Taker),
                Some(Ok(_)) => Native::Declines("the parameters are bad".into()),
                Some(Err(why)) => Native::Declines(why),
                None => Native::Declines("nothing was offered".into()),
            })
        }
    }

    #[async_trait]
    impl MLModel for Taker {
        async fn load(_: ModelContext) -> Result<Self, MLServerError> {
            unreachable!("built by the registry")
        }

        async fn predict(&self, _: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
            Ok(answered("native"))
        }
    }

    fn registry() -> RuntimeRegistry {
        let mut r = RuntimeRegistry::new();
        r.register_handover::<Taker>("lib.Model");
        r.set_fallback(Arc::new(|name: &str| {
            (name == "lib.Model").then(|| {
                Arc::new(|ctx| {
                    async move { Reader::load(ctx).await.map(|m| Arc::new(m) as DynModel) }.boxed()
                }) as RuntimeFactory
            })
        }));
        r
    }

    async fn load(extra: serde_json::Value) -> (Result<DynModel, MLServerError>, ModelContext) {
        let settings: ModelSettings = serde_json::from_value(serde_json::json!({
            "name": "m", "implementation": "lib.Model", "parameters": {"extra": extra}
        }))
        .unwrap();
        let ctx = ModelContext::new(Arc::new(settings));
        let factory = registry().resolve("lib.Model").unwrap();
        (factory(ctx.clone()).await, ctx)
    }

    async fn answer(model: &DynModel) -> Option<String> {
        model
            .predict(InferenceRequest::new(vec![]))
            .await
            .unwrap()
            .id
    }

    // One test: the counters are shared.
    #[tokio::test]
    async fn a_handed_over_model_is_served_natively_where_the_native_runtime_takes_it() {
        // Taken over: the reader's model is unloaded again.
        let (model, ctx) = load(serde_json::json!({"offer": "good"})).await;
        assert_eq!(answer(&model.unwrap()).await.as_deref(), Some("native"));
        assert_eq!(
            (LOADS.load(Ordering::SeqCst), UNLOADS.load(Ordering::SeqCst)),
            (1, 1)
        );
        assert_eq!(ctx.index_reason(), None);

        // Declined, or nothing offered: the reader's model serves, saying why.
        for (offer, why) in [
            ("bad", "the parameters are bad"),
            ("none", "nothing to offer"),
        ] {
            let (model, ctx) = load(serde_json::json!({ "offer": offer })).await;
            assert_eq!(answer(&model.unwrap()).await.as_deref(), Some("read"));
            assert_eq!(
                ctx.index_reason(),
                Some(format!("served by the Python runtime: {why}").as_str())
            );
        }
        assert_eq!(
            (LOADS.load(Ordering::SeqCst), UNLOADS.load(Ordering::SeqCst)),
            (3, 1)
        );

        // Forced off: no hand-over is asked for.
        let (model, ctx) = load(serde_json::json!({"offer": "good", "native": false})).await;
        assert_eq!(answer(&model.unwrap()).await.as_deref(), Some("read"));
        assert!(ctx.index_reason().unwrap().contains("native is false"));

        // Forced on where it declines: the load fails, the reader's model goes.
        let (model, _) = load(serde_json::json!({"offer": "bad", "native": true})).await;
        let error = model.err().unwrap().to_string();
        assert!(error.contains("cannot be served natively"), "{error}");
        assert_eq!(
            (LOADS.load(Ordering::SeqCst), UNLOADS.load(Ordering::SeqCst)),
            (5, 2)
        );
    }
}
