//! The engines that run a graph: tract (pure Rust, always built) and
//! onnxruntime (the `ort` feature).

use std::path::Path;

use mlserver_types::{Tensor, TensorData};
use tract_onnx::pb;

use crate::signature::Signature;
use crate::OnnxError;

mod ml;
pub mod tract;

#[cfg(feature = "ort")]
pub mod onnxruntime;

/// One output of a run: its shape and flat row-major data.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// The output's shape.
    pub shape: Vec<usize>,
    /// Its elements, flat and row-major.
    pub data: TensorData,
}

/// A loaded, optimised graph, ready to run requests concurrently.
///
/// `run` is called from blocking threads, several at once: implementations
/// keep per-run state local to the call.
pub trait Engine: Send + Sync + 'static {
    /// `"tract"` or `"onnxruntime"`.
    fn name(&self) -> &'static str;

    /// Runs the graph on `inputs`, one per graph input in signature order,
    /// already checked against the signature. Returns one output per graph
    /// output, in signature order.
    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Output>, OnnxError>;
}

/// Which engine `parameters.extra.engine` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// tract; when tract cannot load the graph and onnxruntime is built
    /// in, onnxruntime.
    Auto,
    /// tract only.
    Tract,
    /// onnxruntime only (an error when it is not built in).
    OnnxRuntime,
}

impl EngineChoice {
    /// Parses `"auto"`, `"tract"` or `"onnxruntime"` (also `"ort"`).
    pub fn parse(s: &str) -> Result<Self, OnnxError> {
        match s {
            "auto" => Ok(EngineChoice::Auto),
            "tract" => Ok(EngineChoice::Tract),
            "onnxruntime" | "ort" => Ok(EngineChoice::OnnxRuntime),
            other => Err(OnnxError::Settings(format!(
                "unknown engine '{other}' in parameters.extra.engine; expected \"auto\", \
                 \"tract\" or \"onnxruntime\""
            ))),
        }
    }
}

/// Whether this build has the onnxruntime engine.
pub const HAS_ONNXRUNTIME: bool = cfg!(feature = "ort");

/// Loads `path` (already parsed as `proto`) with the chosen engine.
pub fn load(
    choice: EngineChoice,
    path: &Path,
    proto: &pb::ModelProto,
    signature: &Signature,
) -> Result<Box<dyn Engine>, OnnxError> {
    match choice {
        EngineChoice::Tract => Ok(Box::new(tract::TractEngine::load(path, proto, signature)?)),
        EngineChoice::OnnxRuntime => load_onnxruntime(path, signature),
        EngineChoice::Auto => match tract::TractEngine::load(path, proto, signature) {
            Ok(engine) => Ok(Box::new(engine)),
            Err(tract_error) if HAS_ONNXRUNTIME => {
                tracing::warn!(
                    "{tract_error}; trying onnxruntime (set parameters.extra.engine to choose)"
                );
                load_onnxruntime(path, signature).map_err(|ort_error| OnnxError::EngineLoad {
                    engine: "tract and onnxruntime",
                    message: format!("{tract_error}; {ort_error}"),
                })
            }
            Err(tract_error) => Err(tract_error),
        },
    }
}

#[cfg(feature = "ort")]
fn load_onnxruntime(path: &Path, signature: &Signature) -> Result<Box<dyn Engine>, OnnxError> {
    Ok(Box::new(onnxruntime::OrtEngine::load(path, signature)?))
}

#[cfg(not(feature = "ort"))]
fn load_onnxruntime(_path: &Path, _signature: &Signature) -> Result<Box<dyn Engine>, OnnxError> {
    Err(OnnxError::Settings(
        "this mlserver was built without onnxruntime: build it with `--features ort` \
         (feature `ort` of mlserver-cli, or `mlserver-onnx/ort` in a custom runtime's \
         Cargo.toml) and point ORT_DYLIB_PATH at libonnxruntime.so, or use engine \"tract\""
            .into(),
    ))
}

/// BYTES input elements as the strings ONNX expects: each must be UTF-8.
pub fn utf8_strings(input: &str, elements: Vec<Vec<u8>>) -> Result<Vec<String>, OnnxError> {
    elements
        .into_iter()
        .enumerate()
        .map(|(i, b)| {
            String::from_utf8(b).map_err(|_| {
                OnnxError::BadInput(format!(
                    "element {i} of input '{input}' is not UTF-8; ONNX strings are text"
                ))
            })
        })
        .collect()
}
