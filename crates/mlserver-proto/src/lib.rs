//! The Open Inference Protocol (KServe V2) over gRPC: messages and service
//! stubs generated from `proto/` at build time (with protox, so no system
//! `protoc` is needed), and their conversion to and from the V2 types of
//! [`mlserver_types`], which both transports share.
//!
//! ```
//! use mlserver_proto::{convert, inference::ModelInferRequest};
//! use mlserver_types::{InferenceRequest, Tensor};
//!
//! let request = InferenceRequest::new(vec![Tensor::new("x", vec![2], vec![1.0f32, 2.0]).unwrap()]);
//! let wire: ModelInferRequest = convert::encode_infer_request("my-model", None, request.clone(), true);
//! assert_eq!(wire.raw_input_contents.len(), 1);
//! let back = convert::decode_infer_request(wire).unwrap();
//! assert!(back.raw);
//! assert_eq!(back.request.inputs, request.inputs);
//! ```

pub mod convert;

/// `package inference`: `GRPCInferenceService` and its messages.
#[allow(clippy::all, missing_docs)]
pub mod inference {
    include!(concat!(env!("OUT_DIR"), "/inference.rs"));

    /// `package inference.model_repository`: MLServer's deprecated
    /// `ModelRepositoryService`, still served for old clients.
    pub mod model_repository {
        include!(concat!(env!("OUT_DIR"), "/inference.model_repository.rs"));
    }
}

/// `package grpc.health.v1`: the standard health checking service.
#[allow(clippy::all, missing_docs)]
pub mod health {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

pub use convert::ConvertError;

/// Every served package's file descriptors (`FileDescriptorSet`, encoded),
/// for gRPC server reflection: what lets grpcurl and similar tools call
/// the server without `.proto` files.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
