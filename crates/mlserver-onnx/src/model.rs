//! [`OnnxModel`]: the `MLModel` serving one `.onnx` file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlserver_runtime::{
    async_trait, blocking, MLModel, MLServerError, ModelContext, ModelSettings, ModelUri,
};
use mlserver_types::{
    InferenceRequest, InferenceResponse, MetadataModelResponse, MetadataTensor, Tensor,
};
use tract_onnx::pb;
use tract_onnx::prelude::Framework;

use crate::engine::{self, Engine, EngineChoice};
use crate::signature::Signature;
use crate::{OnnxError, WELLKNOWN};

/// Serves an ONNX graph. Register it with [`crate::register`]; point
/// model-settings at it with `"implementation": "onnx"` (every output) or
/// `"mlserver_onnx.OnnxModel"` (outputs as the ODH fork's runtime answers)
/// and `parameters.uri` at the `.onnx` file or its folder.
///
/// Options in `parameters.extra`: `engine` = `"auto"` (default), `"tract"`
/// or `"onnxruntime"`.
pub struct OnnxModel {
    name: String,
    signature: Arc<Signature>,
    engine: Arc<dyn Engine>,
    metadata: MetadataModelResponse,
    /// Named `mlserver_onnx.OnnxModel`, the ODH fork's runtime: outputs as
    /// the fork answers them (see [`OnnxModel::requested_outputs`]).
    /// Under `onnx`, every graph output under its own name.
    answers_as_fork: bool,
}

/// The output name MLServer's runtimes answer by default: here the graph's
/// first output.
const PREDICT_OUTPUT: &str = "predict";

/// `parameters.extra` keys of the ODH fork's onnxruntime settings, which
/// this runtime does not act on.
const FORK_EXTRA_KEYS: &[&str] = &[
    "providers",
    "provider_options",
    "session_options",
    "session_config_entries",
    "run_options",
];

impl std::fmt::Debug for OnnxModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxModel")
            .field("name", &self.name)
            .field("engine", &self.engine.name())
            .field("signature", &self.signature)
            .finish()
    }
}

impl OnnxModel {
    /// Loads the graph at `path` with `settings`; what [`MLModel::load`] does
    /// once the file is found. Blocking: parsing and optimising take CPU.
    pub fn load_file(path: &Path, settings: &ModelSettings) -> Result<Self, OnnxError> {
        let choice = engine_choice(settings)?;
        let bytes = std::fs::read(path).map_err(|e| OnnxError::Read {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        let proto: pb::ModelProto = tract_onnx::onnx()
            .proto_model_for_read(&mut bytes.as_slice())
            .map_err(|e| {
                OnnxError::Signature(format!("{} is not an ONNX model: {e:#}", path.display()))
            })?;
        let signature = Signature::from_proto(&proto)
            .map_err(|e| OnnxError::Signature(format!("{}: {e}", path.display())))?;
        let engine = engine::load(choice, path, &proto, &signature)?;
        let metadata = metadata(settings, &signature, engine.name())?;
        tracing::info!(
            model = %settings.name,
            engine = engine.name(),
            inputs = ?metadata.inputs.iter().map(|t| (&t.name, t.datatype, &t.shape)).collect::<Vec<_>>(),
            "loaded ONNX graph {}",
            path.display()
        );
        let extra = settings.parameters.as_ref().map(|p| &p.extra);
        for key in FORK_EXTRA_KEYS {
            if extra.is_some_and(|e| e.get(*key).is_some()) {
                tracing::warn!(
                    model = %settings.name,
                    "parameters.extra.{key} is ignored: it configures onnxruntime in the ODH fork's runtime; this one runs the graph with {}",
                    engine.name()
                );
            }
        }
        Ok(OnnxModel {
            name: settings.name.clone(),
            signature: Arc::new(signature),
            engine: Arc::from(engine),
            metadata,
            answers_as_fork: matches!(
                settings.implementation.as_deref(),
                Some(crate::IMPLEMENTATION | crate::LONG_IMPLEMENTATION)
            ),
        })
    }

    /// The outputs to answer, as (name in the response, index of the graph
    /// output): under the fork's name, the requested outputs, `predict` (the
    /// first graph output) when none is requested, and a 400 for a name that
    /// is neither `predict` nor a graph output; otherwise every output.
    fn requested_outputs(
        &self,
        request: &InferenceRequest,
    ) -> Result<Vec<(String, usize)>, MLServerError> {
        let graph = &self.signature.outputs;
        if !self.answers_as_fork {
            return Ok(graph
                .iter()
                .enumerate()
                .map(|(i, o)| (o.name.clone(), i))
                .collect());
        }
        let requested: Vec<&str> = match request.outputs.as_deref() {
            Some(outputs) if !outputs.is_empty() => {
                outputs.iter().map(|o| o.name.as_str()).collect()
            }
            _ => vec![PREDICT_OUTPUT],
        };
        requested
            .into_iter()
            .map(|name| {
                let index = if name == PREDICT_OUTPUT {
                    Some(0)
                } else {
                    graph.iter().position(|o| o.name == name)
                };
                index.map(|i| (name.to_owned(), i)).ok_or_else(|| {
                    MLServerError::bad_request(format!(
                        "OnnxModel only supports '{PREDICT_OUTPUT}' or model outputs ({name} was received)"
                    ))
                })
            })
            .collect()
    }

    /// The engine that runs this model (`"tract"` or `"onnxruntime"`).
    pub fn engine(&self) -> &'static str {
        self.engine.name()
    }

    /// The graph's inputs and outputs, as read from the file.
    pub fn signature(&self) -> &Signature {
        &self.signature
    }
}

fn engine_choice(settings: &ModelSettings) -> Result<EngineChoice, OnnxError> {
    let extra = settings.parameters.as_ref().map(|p| &p.extra);
    match extra.and_then(|e| e.get("engine")) {
        None | Some(serde_json::Value::Null) => Ok(EngineChoice::Auto),
        Some(serde_json::Value::String(s)) => EngineChoice::parse(s),
        Some(other) => Err(OnnxError::Settings(format!(
            "parameters.extra.engine must be a string, not {other}"
        ))),
    }
}

/// The file to load: `parameters.uri` (the file, or a folder holding
/// `model.onnx`) or, without a uri, `model.onnx` beside model-settings.json.
fn model_path(ctx: &ModelContext) -> Result<PathBuf, MLServerError> {
    let settings = ctx.settings();
    let uri = if settings.uri().is_some_and(|u| !u.is_empty()) {
        ctx.model_uri(WELLKNOWN)?
    } else if let Some(folder) = settings.source.as_deref().and_then(Path::parent) {
        ModelUri::Local(folder.join(WELLKNOWN[0]))
    } else {
        // No uri and no settings file (an env-only model): MLServer's error.
        ctx.model_uri(WELLKNOWN)?
    };
    match uri {
        ModelUri::Local(path) if path.is_file() => Ok(path),
        ModelUri::Local(path) => Err(OnnxError::Read {
            path: path.display().to_string(),
            message: format!("no ONNX file there (looked for {})", WELLKNOWN.join(", ")),
        }
        .into()),
        ModelUri::Remote(uri) => Err(OnnxError::Settings(format!(
            "the ONNX runtime loads local files only; download {uri} into the models folder \
             (or an init container) and point parameters.uri at it"
        ))
        .into()),
    }
}

/// Metadata from the graph. Inputs and outputs declared in model-settings
/// must name graph tensors with the graph's datatype; their `parameters`
/// (content types) are kept, the graph's shapes win.
fn metadata(
    settings: &ModelSettings,
    signature: &Signature,
    engine: &str,
) -> Result<MetadataModelResponse, OnnxError> {
    fn merge(
        role: &str,
        declared: &[MetadataTensor],
        graph: &[crate::signature::TensorSpec],
    ) -> Result<Vec<MetadataTensor>, OnnxError> {
        for d in declared {
            let Some(spec) = graph.iter().find(|s| s.name == d.name) else {
                return Err(OnnxError::Settings(format!(
                    "model-settings declares {role} '{}', which the graph does not have (it has {})",
                    d.name,
                    graph
                        .iter()
                        .map(|s| format!("'{}'", s.name))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            if spec.datatype != d.datatype {
                return Err(OnnxError::Settings(format!(
                    "model-settings declares {role} '{}' as {} but the graph has {}",
                    d.name, d.datatype, spec.datatype
                )));
            }
        }
        Ok(graph
            .iter()
            .map(|spec| {
                let mut m = spec.metadata();
                m.parameters = declared
                    .iter()
                    .find(|d| d.name == spec.name)
                    .and_then(|d| d.parameters.clone());
                m
            })
            .collect())
    }
    let mut metadata = mlserver_runtime::metadata_from_settings(settings);
    metadata.inputs = merge("input", &settings.inputs, &signature.inputs)?;
    metadata.outputs = merge("output", &settings.outputs, &signature.outputs)?;
    if metadata.platform.is_empty() {
        // KServe's `<framework>_<format>` convention (e.g. onnxruntime_onnx).
        metadata.platform = format!("{engine}_onnx");
    }
    Ok(metadata)
}

#[async_trait]
impl MLModel for OnnxModel {
    async fn load(ctx: ModelContext) -> Result<Self, MLServerError> {
        let path = model_path(&ctx)?;
        let settings = ctx.settings().clone();
        // Parsing and optimising a graph is CPU work: off the reactor.
        blocking(move || OnnxModel::load_file(&path, &settings).map_err(Into::into)).await
    }

    async fn predict(&self, request: InferenceRequest) -> Result<InferenceResponse, MLServerError> {
        let answer = self.requested_outputs(&request)?;
        let bound = self.signature.bind(&request.inputs)?;
        // Graph order; a single input may come under any name.
        let inputs: Vec<Tensor> = bound.into_iter().cloned().collect();
        let engine = Arc::clone(&self.engine);
        let outputs = blocking(move || engine.run(inputs).map_err(Into::into)).await?;
        if outputs.len() != self.signature.outputs.len() {
            return Err(MLServerError::internal(format!(
                "{} returned {} outputs for a graph with {}",
                self.engine.name(),
                outputs.len(),
                self.signature.outputs.len()
            )));
        }
        let mut outputs: Vec<Option<_>> = outputs.into_iter().map(Some).collect();
        let mut answered = Vec::with_capacity(answer.len());
        for (k, (name, index)) in answer.iter().enumerate() {
            // The last request for an output takes it; earlier ones copy.
            let again = answer[k + 1..].iter().any(|(_, i)| i == index);
            let out = if again {
                outputs[*index].clone()
            } else {
                outputs[*index].take()
            }
            .expect("each output is taken once");
            answered.push(Tensor::new(name.clone(), out.shape, out.data)?);
        }
        Ok(InferenceResponse::new(answered))
    }

    async fn metadata(&self) -> Option<MetadataModelResponse> {
        Some(self.metadata.clone())
    }

    /// The metadata is the graph's: anything else would fail in the engine.
    fn checks_inputs(&self) -> bool {
        true
    }

    /// A graph sees tensors only.
    fn reads_headers(&self) -> bool {
        false
    }
}
