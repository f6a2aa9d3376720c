//! Types of the Open Inference Protocol (KServe V2) as MLServer speaks it.
//!
//! - [`InferenceRequest`] / [`InferenceResponse`] and their [`Tensor`]s, parsed
//!   from JSON straight into typed storage ([`TensorData`]) with every element
//!   checked against the tensor's [`Datatype`] and shape;
//! - [`binary`]: the binary tensor data extension (what `tritonclient.http`
//!   sends by default);
//! - [`codecs`]: MLServer's content types (`np`, `str`, `base64`,
//!   `datetime`) as typed decode/encode helpers;
//! - metadata, repository index and error bodies.
//!
//! ```
//! use mlserver_types::{InferenceRequest, Tensor};
//!
//! let request: InferenceRequest = serde_json::from_str(
//!     r#"{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[[1,2],[3,4]]}]}"#,
//! ).unwrap();
//! let x: &[f32] = request.inputs[0].as_slice().unwrap();
//! assert_eq!(x, &[1.0, 2.0, 3.0, 4.0]);
//!
//! // Bad data never reaches a model:
//! assert!(serde_json::from_str::<InferenceRequest>(
//!     r#"{"inputs":[{"name":"x","shape":[3],"datatype":"INT8","data":[1,2,300]}]}"#,
//! ).is_err());
//! # let _ = Tensor::new("y", vec![1], vec![1.0f32]).unwrap();
//! ```

pub mod binary;
pub mod codecs;
mod dataplane;
mod datatype;
mod error;
mod metadata;
mod parameters;
mod reader;
mod repository;
mod tensor;
pub mod triton;

pub use dataplane::{
    element_count, InferenceRequest, InferenceResponse, RequestHeaders, RequestInput,
    RequestOutput, ResponseOutput, Tensor,
};
pub use datatype::{Datatype, UnknownDatatype};
pub use error::{CodecError, TensorError};
pub use metadata::{
    ErrorResponse, LiveResponse, MetadataModelResponse, MetadataServerResponse, MetadataTensor,
    ModelReadyResponse, ReadyResponse,
};
pub use parameters::{content_type_of, Parameters};
pub use repository::{ModelState, RepositoryIndexItem, RepositoryIndexRequest};
pub use tensor::{Element, TensorData};

/// `half`'s 16-bit float types, re-exported for FP16/BF16 tensors.
pub use half::{bf16, f16};
