//! Triton's model configuration extension: a configuration derived from
//! what a model's metadata and settings say, for the clients (perf_analyzer
//! first) that ask for one before they send a request.

use mlserver_types::triton::{
    triton_data_type, ConfigTensor, DynamicBatching, ModelConfig, TransactionPolicy,
};
use mlserver_types::MetadataTensor;

use crate::pipeline::LoadedModel;

/// The configuration of a loaded model. With adaptive batching on,
/// `max_batch_size` is the batch size and each tensor's first (batch)
/// dimension is left out of its `dims`, as Triton describes batching
/// models; otherwise `max_batch_size` is 0 and `dims` is the whole shape.
pub(crate) fn model_config(model: &LoadedModel) -> ModelConfig {
    let batching = model.batches();
    let tensors = |tensors: &[MetadataTensor]| -> Vec<ConfigTensor> {
        tensors
            .iter()
            .map(|t| ConfigTensor {
                name: t.name.clone(),
                data_type: triton_data_type(t.datatype).to_owned(),
                dims: if batching && !t.shape.is_empty() {
                    t.shape[1..].to_vec()
                } else {
                    t.shape.clone()
                },
            })
            .collect()
    };
    let settings = &model.settings;
    ModelConfig {
        name: model.name().to_owned(),
        platform: model.metadata.platform.clone(),
        backend: settings.implementation.clone().unwrap_or_default(),
        max_batch_size: if batching {
            i32::try_from(settings.max_batch_size).unwrap_or(i32::MAX)
        } else {
            0
        },
        input: tensors(&model.metadata.inputs),
        output: tensors(&model.metadata.outputs),
        dynamic_batching: batching.then(|| DynamicBatching {
            preferred_batch_size: vec![i32::try_from(settings.max_batch_size).unwrap_or(i32::MAX)],
            max_queue_delay_microseconds: (settings.max_batch_time * 1e6) as u64,
        }),
        model_transaction_policy: TransactionPolicy {
            decoupled: model.runtime.streaming().is_some(),
        },
    }
}
