//! What an engine is, for the engines and their caller alike: the trait,
//! its outputs, and the string rule every engine applies to BYTES inputs.

use mlserver_types::{Tensor, TensorData};

use crate::OnnxError;

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
