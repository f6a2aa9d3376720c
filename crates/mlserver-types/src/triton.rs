//! Triton's model configuration and statistics extensions, as REST serves
//! them (the JSON of Triton's `model_config.proto` and `ModelStatistics`
//! messages, field names as in the protos). The gRPC transport converts
//! the same values to the protos' messages.

use serde::{Deserialize, Serialize};

use crate::Datatype;

/// A model's configuration (`GET /v2/models/{name}/config`): what Triton's
/// clients, perf_analyzer first, read to know how to call a model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The model's name.
    pub name: String,
    /// The model's platform (from its metadata).
    pub platform: String,
    /// What serves it: the runtime's implementation name.
    pub backend: String,
    /// The most rows a request may carry, the batch dimension left out of
    /// `dims`; 0 when the model does not batch (requests carry their whole
    /// shape).
    pub max_batch_size: i32,
    /// The inputs.
    pub input: Vec<ConfigTensor>,
    /// The outputs.
    pub output: Vec<ConfigTensor>,
    /// Present when the server batches requests for this model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_batching: Option<DynamicBatching>,
    /// Whether a request may get other than one response.
    pub model_transaction_policy: TransactionPolicy,
}

/// An input or output of a [`ModelConfig`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ConfigTensor {
    /// The tensor's name.
    pub name: String,
    /// Triton's name for its datatype (`TYPE_FP32`, `TYPE_STRING`, ...).
    pub data_type: String,
    /// Its shape, -1 for a variable dimension, without the batch dimension
    /// when the model batches.
    pub dims: Vec<i64>,
}

/// Adaptive batching, in Triton's terms.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DynamicBatching {
    /// The batch sizes the batcher aims for (`max_batch_size`).
    pub preferred_batch_size: Vec<i32>,
    /// How long a batch waits for more requests (`max_batch_time`).
    pub max_queue_delay_microseconds: u64,
}

/// How requests are answered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct TransactionPolicy {
    /// True for a model that streams its responses.
    pub decoupled: bool,
}

/// Triton's name for a V2 datatype (`FP32` is `TYPE_FP32`, `BYTES` is
/// `TYPE_STRING`).
pub fn triton_data_type(datatype: Datatype) -> &'static str {
    match datatype {
        Datatype::Bool => "TYPE_BOOL",
        Datatype::Uint8 => "TYPE_UINT8",
        Datatype::Uint16 => "TYPE_UINT16",
        Datatype::Uint32 => "TYPE_UINT32",
        Datatype::Uint64 => "TYPE_UINT64",
        Datatype::Int8 => "TYPE_INT8",
        Datatype::Int16 => "TYPE_INT16",
        Datatype::Int32 => "TYPE_INT32",
        Datatype::Int64 => "TYPE_INT64",
        Datatype::Fp16 => "TYPE_FP16",
        Datatype::Fp32 => "TYPE_FP32",
        Datatype::Fp64 => "TYPE_FP64",
        Datatype::Bytes => "TYPE_STRING",
        Datatype::Bf16 => "TYPE_BF16",
    }
}

/// `GET /v2/models[/{name}[/versions/{version}]]/stats`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelStatisticsResponse {
    /// One entry per model (version).
    pub model_stats: Vec<ModelStatistics>,
}

/// One loaded model's statistics since it was loaded.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ModelStatistics {
    /// The model's name.
    pub name: String,
    /// Its version ("1" when it has none: Triton's tools parse it as a number).
    pub version: String,
    /// When it last answered a request, in milliseconds since the epoch
    /// (0: never).
    pub last_inference: u64,
    /// Successful inferences, each row of a batching model's request
    /// counted.
    pub inference_count: u64,
    /// Runs of the model (an adaptive batch is one).
    pub execution_count: u64,
    /// Counts and cumulative durations of each stage.
    pub inference_stats: InferStatistics,
    /// Per executed batch size.
    pub batch_stats: Vec<BatchStatistics>,
}

/// A count and a cumulative duration, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StatisticDuration {
    /// How many.
    pub count: u64,
    /// Their total duration, in nanoseconds.
    pub ns: u64,
}

/// Where requests spent their time.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct InferStatistics {
    /// Requests answered successfully, from arrival to answer.
    pub success: StatisticDuration,
    /// Requests that failed.
    pub fail: StatisticDuration,
    /// Waiting for the model: in the adaptive batch, for a free inference
    /// worker.
    pub queue: StatisticDuration,
    /// Checking and preparing the inputs.
    pub compute_input: StatisticDuration,
    /// Running the model.
    pub compute_infer: StatisticDuration,
    /// Completing the outputs.
    pub compute_output: StatisticDuration,
    /// Answered from the response cache.
    pub cache_hit: StatisticDuration,
    /// Looked up in the response cache and not found.
    pub cache_miss: StatisticDuration,
}

/// The compute stages of the runs of one batch size.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BatchStatistics {
    /// The rows of the runs counted here.
    pub batch_size: u64,
    /// Preparing their inputs.
    pub compute_input: StatisticDuration,
    /// Running the model.
    pub compute_infer: StatisticDuration,
    /// Completing their outputs.
    pub compute_output: StatisticDuration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datatypes_have_tritons_names() {
        assert_eq!(triton_data_type(Datatype::Fp32), "TYPE_FP32");
        assert_eq!(triton_data_type(Datatype::Bytes), "TYPE_STRING");
        assert_eq!(triton_data_type(Datatype::Bf16), "TYPE_BF16");
    }
}
