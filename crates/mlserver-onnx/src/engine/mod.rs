//! The engines that run a graph: tract (pure Rust, always built) and
//! onnxruntime (the `ort` feature).

use std::path::Path;

use tract_onnx::pb;

use crate::signature::Signature;
use crate::OnnxError;

mod contract;
mod ml;
pub mod tract;

pub use contract::{utf8_strings, Engine, Output};

#[cfg(feature = "ort")]
pub mod onnxruntime;

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
