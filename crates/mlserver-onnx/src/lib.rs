//! The built-in ONNX runtime.
//!
//! ONNX is what every framework exports to (scikit-learn through skl2onnx,
//! XGBoost and LightGBM through onnxmltools, PyTorch, TensorFlow), so one
//! runtime serves most of what MLServer's Python runtimes serve, with no
//! Python in the image.
//!
//! - **Engines**: [tract](https://github.com/sonos/tract), pure Rust and
//!   always built; onnxruntime through the `ort` crate behind the `ort`
//!   feature, loaded at run time from `ORT_DYLIB_PATH` (nothing is
//!   downloaded at build time). `parameters.extra.engine` picks one; the
//!   default (`auto`) is tract, falling back to onnxruntime when tract cannot
//!   load the graph and onnxruntime is built in.
//! - **Metadata** comes from the graph: input and output names, datatypes and
//!   shapes (`-1` for dynamic dimensions).
//! - **Requests** are checked against the graph before an engine sees them:
//!   a wrong name, datatype, rank or dimension is a 400 that says which.
//! - **Once at load**, the graph is optimised for its declared dynamic batch
//!   dimension; `predict` runs on the blocking pool and shares nothing
//!   mutable, so concurrent requests are safe.
//!
//! ```
//! let mut runtimes = mlserver_runtime::RuntimeRegistry::new();
//! mlserver_onnx::register(&mut runtimes);
//! assert!(runtimes.resolve("mlserver_onnx.OnnxModel").is_some());
//! assert!(runtimes.resolve("onnx").is_some());
//! ```

pub mod engine;
mod error;
mod model;
pub mod signature;

pub use error::OnnxError;
pub use model::OnnxModel;

use mlserver_runtime::RuntimeRegistry;

/// The `implementation` name, shaped like MLServer's (`mlserver_sklearn.SKLearnModel`).
pub const IMPLEMENTATION: &str = "mlserver_onnx.OnnxModel";
/// The ODH fork's long import path of [`IMPLEMENTATION`].
pub const LONG_IMPLEMENTATION: &str = "mlserver_onnx.onnx.OnnxModel";
/// The short alias.
pub const ALIAS: &str = "onnx";
/// File names looked for when `parameters.uri` is a folder.
pub const WELLKNOWN: &[&str] = &["model.onnx"];

/// Registers [`OnnxModel`] under [`IMPLEMENTATION`] (and the fork's
/// [`LONG_IMPLEMENTATION`]), which answer as the ODH fork's runtime, and
/// [`ALIAS`], which answers every graph output.
pub fn register(runtimes: &mut RuntimeRegistry) {
    runtimes.register::<OnnxModel>(IMPLEMENTATION);
    runtimes.register::<OnnxModel>(LONG_IMPLEMENTATION);
    runtimes.register::<OnnxModel>(ALIAS);
}

#[cfg(test)]
mod tests;
