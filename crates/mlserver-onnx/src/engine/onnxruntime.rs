//! onnxruntime through `ort` (feature `ort`): for graphs tract cannot run
//! (ml opset 5 TreeEnsemble, SVMs, encoders, newer opsets).
//!
//! The library is loaded at run time (`load-dynamic`): from `ORT_DYLIB_PATH`,
//! else `libonnxruntime.so` on the loader's path. Nothing is downloaded when
//! building. `ort`'s `Session::run` takes `&mut self`, so a session serves
//! one request at a time; a small pool of sessions (one per core, at most 4)
//! lets concurrent requests run in parallel.

use std::path::Path;
use std::sync::{Mutex, OnceLock};

use mlserver_types::{f16, Tensor, TensorData};
use ort::session::Session;
use ort::value::{DynValue, TensorElementType, ValueType};

use super::contract::{utf8_strings, Engine, Output};
use crate::signature::Signature;
use crate::OnnxError;

const NAME: &str = "onnxruntime";

/// The process's one onnxruntime environment (ort allows only one).
fn environment() -> Result<&'static ort::environment::Environment, OnnxError> {
    static ENV: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var_os("ORT_DYLIB_PATH")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| "libonnxruntime.so".into());
        ort::init_from(&path)
            .map_err(|e| {
                format!(
                    "cannot load {} ({e}); set ORT_DYLIB_PATH to libonnxruntime's path",
                    path.display()
                )
            })?
            .with_name("mlserver")
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|message| OnnxError::EngineLoad {
        engine: NAME,
        message: message.clone(),
    })
}

/// A graph loaded by onnxruntime, as a pool of sessions.
pub struct OrtEngine {
    sessions: Vec<Mutex<Session>>,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

impl OrtEngine {
    /// Loads the graph at `path` into the pool of sessions, its inputs and
    /// outputs checked against `signature`.
    pub fn load(path: &Path, signature: &Signature) -> Result<Self, OnnxError> {
        let env = environment()?;
        let load_error = |e: ort::Error| OnnxError::EngineLoad {
            engine: NAME,
            message: e.to_string(),
        };
        let pool = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4);
        let sessions = (0..pool)
            .map(|_| {
                Session::builder(env)
                    .map_err(load_error)?
                    .with_intra_threads(1)
                    .map_err(|e| load_error(e.into()))?
                    .commit_from_file(path)
                    .map(Mutex::new)
                    .map_err(load_error)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OrtEngine {
            sessions,
            inputs: signature.inputs.iter().map(|s| s.name.clone()).collect(),
            outputs: signature.outputs.iter().map(|s| s.name.clone()).collect(),
        })
    }

    /// A free session if there is one, else waits for the first.
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        for s in &self.sessions {
            if let Ok(guard) = s.try_lock() {
                return guard;
            }
        }
        // A poisoned session only means a panic elsewhere mid-run; the
        // session itself holds no Rust state that could be half-updated.
        self.sessions[0]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn run_error(e: impl std::fmt::Display) -> OnnxError {
    OnnxError::Run {
        engine: NAME,
        message: e.to_string(),
    }
}

impl Engine for OrtEngine {
    fn name(&self) -> &'static str {
        NAME
    }

    fn run(&self, inputs: Vec<Tensor>) -> Result<Vec<Output>, OnnxError> {
        let values = inputs
            .into_iter()
            .zip(&self.inputs)
            .map(|(t, name)| Ok((name.as_str(), to_ort(t)?)))
            .collect::<Result<Vec<(&str, DynValue)>, OnnxError>>()?;
        let mut session = self.session();
        let outputs = session.run(values).map_err(run_error)?;
        self.outputs
            .iter()
            .map(|name| {
                let value = outputs
                    .get(name.as_str())
                    .ok_or_else(|| run_error(format!("no output '{name}'")))?;
                from_ort(value)
            })
            .collect()
    }
}

fn to_ort(t: Tensor) -> Result<DynValue, OnnxError> {
    fn plain<T: ort::value::PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
        shape: Vec<usize>,
        v: Vec<T>,
    ) -> Result<DynValue, OnnxError> {
        ort::value::Tensor::from_array((shape, v))
            .map(|t| t.into_dyn())
            .map_err(|e| OnnxError::BadInput(e.to_string()))
    }
    let shape = t.shape;
    match t.data {
        TensorData::Bool(v) => plain(shape, v),
        TensorData::Uint8(v) => plain(shape, v),
        TensorData::Uint16(v) => plain(shape, v),
        TensorData::Uint32(v) => plain(shape, v),
        TensorData::Uint64(v) => plain(shape, v),
        TensorData::Int8(v) => plain(shape, v),
        TensorData::Int16(v) => plain(shape, v),
        TensorData::Int32(v) => plain(shape, v),
        TensorData::Int64(v) => plain(shape, v),
        TensorData::Fp16(v) => plain::<f16>(shape, v),
        TensorData::Bf16(v) => plain(shape, v),
        TensorData::Fp32(v) => plain(shape, v),
        TensorData::Fp64(v) => plain(shape, v),
        TensorData::Bytes(v) => {
            let strings = utf8_strings(&t.name, v)?;
            ort::value::Tensor::from_string_array((shape, strings.as_slice()))
                .map(|t| t.into_dyn())
                .map_err(|e| OnnxError::BadInput(e.to_string()))
        }
    }
}

fn from_ort(value: &DynValue) -> Result<Output, OnnxError> {
    fn plain<T: ort::value::PrimitiveTensorElementType + Clone + std::fmt::Debug + 'static>(
        value: &DynValue,
    ) -> Result<(Vec<usize>, Vec<T>), OnnxError> {
        let (shape, data) = value.try_extract_tensor::<T>().map_err(run_error)?;
        Ok((dims(shape)?, data.to_vec()))
    }
    fn dims(shape: &[i64]) -> Result<Vec<usize>, OnnxError> {
        shape
            .iter()
            .map(|&d| usize::try_from(d).map_err(|_| run_error(format!("output dimension {d}"))))
            .collect()
    }
    let ValueType::Tensor { ty, .. } = value.dtype() else {
        return Err(run_error(format!(
            "an output is {:?}, not a tensor",
            value.dtype()
        )));
    };
    macro_rules! out {
        ($t:ty) => {{
            let (shape, data) = plain::<$t>(value)?;
            (shape, TensorData::from(data))
        }};
    }
    let (shape, data) = match ty {
        TensorElementType::Bool => out!(bool),
        TensorElementType::Uint8 => out!(u8),
        TensorElementType::Uint16 => out!(u16),
        TensorElementType::Uint32 => out!(u32),
        TensorElementType::Uint64 => out!(u64),
        TensorElementType::Int8 => out!(i8),
        TensorElementType::Int16 => out!(i16),
        TensorElementType::Int32 => out!(i32),
        TensorElementType::Int64 => out!(i64),
        TensorElementType::Float16 => out!(f16),
        TensorElementType::Bfloat16 => out!(mlserver_types::bf16),
        TensorElementType::Float32 => out!(f32),
        TensorElementType::Float64 => out!(f64),
        TensorElementType::String => {
            let (shape, strings) = value.try_extract_strings().map_err(run_error)?;
            (dims(shape)?, TensorData::from(strings))
        }
        other => return Err(run_error(format!("an output has type {other:?}"))),
    };
    Ok(Output { shape, data })
}
