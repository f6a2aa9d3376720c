//! Adaptive batching: MLServer's `max_batch_size` / `max_batch_time`, made
//! shape-safe.
//!
//! Requests queue per model; a batch closes when it holds `max_batch_size`
//! requests or `max_batch_time` after its first request arrived, whichever
//! comes first. Inputs concatenate along axis 0 and outputs split back by
//! each request's own batch size.
//!
//! Unlike MLServer, only requests that can be merged exactly share a batch:
//! the same input names in the same order, datatypes, non-batch dimensions
//! and parameters, the same requested outputs and the same request
//! parameters (HTTP headers aside). Anything else waits in a batch of its
//! own kind, so a mixed stream is never mis-merged (MLServer 1.7.1 merges
//! `[1,2]` INT32 with `[1,3]` FP32 and returns silently wrong data). A runtime
//! whose outputs do not keep the batch dimension fails the batch with a
//! clear error instead of handing out wrong slices.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mlserver_metrics::Histogram;
use mlserver_runtime::{DynModel, MLServerError};
use mlserver_types::{InferenceRequest, InferenceResponse, Parameters, Tensor};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::executor::{Executor, PredictCost};
use crate::statistics::{PredictTiming, Statistics};

/// A request's share of its batch's response, and how long it waited (in
/// the batch and for a worker) and the batch ran.
type Reply = oneshot::Sender<Result<(InferenceResponse, PredictTiming), MLServerError>>;

struct Pending {
    request: InferenceRequest,
    rows: usize,
    reply: Reply,
    queued: Instant,
}

/// The per-model batching queue. Dropping it ends the batching task once
/// the batches already queued have been run.
pub(crate) struct Batcher {
    queue: mpsc::Sender<(String, Pending)>,
}

/// Whether model-settings ask for batching (MLServer: size > 1 and time > 0).
pub(crate) fn batching_enabled(max_batch_size: usize, max_batch_time: f64) -> bool {
    max_batch_size > 1 && max_batch_time > 0.0
}

/// The model a batcher runs, and what its runs record into.
pub(crate) struct BatchedModel {
    pub(crate) name: String,
    pub(crate) runtime: DynModel,
    pub(crate) executor: Arc<Executor>,
    pub(crate) cost: Arc<PredictCost>,
    pub(crate) statistics: Arc<Statistics>,
}

impl Batcher {
    /// Starts the batching task for one model on the current tokio runtime.
    pub(crate) fn spawn(
        model: BatchedModel,
        max_batch_size: usize,
        max_batch_time: Duration,
        queue_size: Option<Arc<Histogram>>,
    ) -> Self {
        let (queue, rx) = mpsc::channel(max_batch_size.max(64));
        let task = BatchLoop {
            model_name: model.name,
            runtime: model.runtime,
            executor: model.executor,
            cost: model.cost,
            statistics: model.statistics,
            max_batch_size,
            max_batch_time,
            queue_size,
            open: HashMap::new(),
            queued: 0,
        };
        tokio::spawn(task.run(rx));
        Batcher { queue }
    }

    /// Queues `request` and waits for its share of the batch's response.
    /// Requests that cannot be batched (an input without a batch dimension,
    /// inputs disagreeing on it) are returned as `Err(request)` for the
    /// caller to run on their own.
    pub(crate) async fn predict(
        &self,
        request: InferenceRequest,
    ) -> Result<Result<(InferenceResponse, PredictTiming), MLServerError>, InferenceRequest> {
        let Some(rows) = batch_rows(&request) else {
            return Err(request);
        };
        let Ok(key) = batch_key(&request) else {
            return Err(request);
        };
        let (reply, response) = oneshot::channel();
        let pending = Pending {
            request,
            rows,
            reply,
            queued: Instant::now(),
        };
        if let Err(mpsc::error::SendError((_, pending))) = self.queue.send((key, pending)).await {
            return Err(pending.request);
        }
        Ok(response.await.unwrap_or_else(|_| {
            Err(MLServerError::internal(
                "the batch holding this request was dropped before it ran",
            ))
        }))
    }
}

/// The rows a request contributes: the common first dimension of its inputs.
fn batch_rows(request: &InferenceRequest) -> Option<usize> {
    let mut rows = None;
    for input in &request.inputs {
        let first = *input.shape.first()?;
        match rows {
            None => rows = Some(first),
            Some(r) if r == first => {}
            Some(_) => return None,
        }
    }
    rows
}

/// Everything that must be equal for two requests to share a batch.
fn batch_key(request: &InferenceRequest) -> serde_json::Result<String> {
    #[derive(Serialize)]
    struct InputKey<'a> {
        name: &'a str,
        datatype: &'a str,
        dims: &'a [usize],
        parameters: &'a Option<Parameters>,
    }
    #[derive(Serialize)]
    struct Key<'a> {
        inputs: Vec<InputKey<'a>>,
        outputs: &'a Option<Vec<mlserver_types::RequestOutput>>,
        parameters: Option<Parameters>,
    }
    let key = Key {
        inputs: request
            .inputs
            .iter()
            .map(|i| InputKey {
                name: &i.name,
                datatype: i.datatype.as_str(),
                dims: &i.shape[1..],
                parameters: &i.parameters,
            })
            .collect(),
        outputs: &request.outputs,
        parameters: without_headers(&request.parameters),
    };
    serde_json::to_string(&key)
}

/// Request parameters minus HTTP headers, which differ between any two
/// clients and would keep every request in a batch of its own.
/// Empty parameters count as none.
pub(crate) fn without_headers(parameters: &Option<Parameters>) -> Option<Parameters> {
    parameters
        .as_ref()
        .map(|p| {
            let mut p = p.clone();
            p.remove("headers");
            p
        })
        .filter(|p| !p.is_empty())
}

struct OpenBatch {
    items: Vec<Pending>,
    deadline: Instant,
}

struct BatchLoop {
    model_name: String,
    runtime: DynModel,
    executor: Arc<Executor>,
    cost: Arc<PredictCost>,
    statistics: Arc<Statistics>,
    max_batch_size: usize,
    max_batch_time: Duration,
    queue_size: Option<Arc<Histogram>>,
    open: HashMap<String, OpenBatch>,
    /// Requests waiting in open batches.
    queued: usize,
}

impl BatchLoop {
    async fn run(mut self, mut rx: mpsc::Receiver<(String, Pending)>) {
        loop {
            let next_deadline = self.open.values().map(|b| b.deadline).min();
            tokio::select! {
                received = rx.recv() => match received {
                    Some((key, pending)) => self.enqueue(key, pending),
                    None => break,
                },
                _ = sleep_until(next_deadline), if next_deadline.is_some() => {
                    let now = Instant::now();
                    let due: Vec<String> = self
                        .open
                        .iter()
                        .filter(|(_, b)| b.deadline <= now)
                        .map(|(k, _)| k.clone())
                        .collect();
                    for key in due {
                        self.fire(&key);
                    }
                }
            }
        }
        let keys: Vec<String> = self.open.keys().cloned().collect();
        for key in keys {
            self.fire(&key);
        }
    }

    fn enqueue(&mut self, key: String, pending: Pending) {
        let max_batch_time = self.max_batch_time;
        let batch = self.open.entry(key.clone()).or_insert_with(|| OpenBatch {
            items: Vec::new(),
            deadline: Instant::now() + max_batch_time,
        });
        batch.items.push(pending);
        self.queued += 1;
        if let Some(h) = &self.queue_size {
            h.observe(self.queued as f64);
        }
        if batch.items.len() >= self.max_batch_size {
            self.fire(&key);
        }
    }

    /// Closes one batch and runs it on its own task, so several batches can
    /// be in flight while new requests queue.
    fn fire(&mut self, key: &str) {
        let Some(batch) = self.open.remove(key) else {
            return;
        };
        self.queued -= batch.items.len();
        let runtime = self.runtime.clone();
        let executor = self.executor.clone();
        let cost = self.cost.clone();
        let statistics = self.statistics.clone();
        let model_name = self.model_name.clone();
        tokio::spawn(async move {
            let ran = Ran {
                model_name: &model_name,
                runtime: &runtime,
                executor: &executor,
                cost: &cost,
                statistics: &statistics,
            };
            run_batch(ran, batch.items).await;
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Where a batch runs, and what it records into.
struct Ran<'a> {
    model_name: &'a str,
    runtime: &'a DynModel,
    executor: &'a Executor,
    cost: &'a Arc<PredictCost>,
    statistics: &'a Statistics,
}

async fn run_batch(ran: Ran<'_>, items: Vec<Pending>) {
    let started = Instant::now();
    // Each request's wait: from its arrival until its batch closed, plus
    // the batch's wait for a worker.
    let share = |queued: Instant, timing: PredictTiming| PredictTiming {
        queue: started.duration_since(queued) + timing.queue,
        infer: timing.infer,
    };
    if items.len() == 1 {
        let item = items.into_iter().next().expect("one item");
        let result = ran
            .executor
            .predict_timed(ran.model_name, ran.runtime, ran.cost, item.request)
            .await;
        if let Ok((_, timing)) = &result {
            ran.statistics.executed(item.rows as u64, timing.infer);
        }
        let _ = item
            .reply
            .send(result.map(|(response, timing)| (response, share(item.queued, timing))));
        return;
    }
    let rows: Vec<usize> = items.iter().map(|p| p.rows).collect();
    let mut requests = Vec::with_capacity(items.len());
    let mut replies = Vec::with_capacity(items.len());
    for item in items {
        requests.push(item.request);
        replies.push((item.reply, item.queued));
    }
    let result = match merge(requests) {
        Ok(merged) => ran
            .executor
            .predict_timed(ran.model_name, ran.runtime, ran.cost, merged)
            .await
            .and_then(|(response, timing)| {
                ran.statistics
                    .executed(rows.iter().sum::<usize>() as u64, timing.infer);
                Ok((split(ran.model_name, response, &rows)?, timing))
            }),
        Err(e) => Err(e),
    };
    match result {
        Ok((responses, timing)) => {
            for ((reply, queued), response) in replies.into_iter().zip(responses) {
                let _ = reply.send(Ok((response, share(queued, timing))));
            }
        }
        Err(e) => {
            for (reply, _) in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}

/// Concatenates requests that share a batch key along axis 0. The merged
/// request keeps the first request's parameters (equal in all, headers
/// aside) and has no id. A batch of one is that request, JSON text and
/// all; a larger one is the server's own (no client's JSON text).
fn merge(requests: Vec<InferenceRequest>) -> Result<InferenceRequest, MLServerError> {
    let many = requests.len() > 1;
    let mut requests = requests.into_iter();
    let mut merged = requests.next().expect("a batch is never empty");
    merged.id = None;
    if many {
        merged.json = None;
    }
    for request in requests {
        for (into, input) in merged.inputs.iter_mut().zip(request.inputs) {
            into.shape[0] += input.shape[0];
            into.data.extend(input.data).map_err(|_| {
                MLServerError::internal(format!(
                    "batching: input '{}' changed datatype within a batch",
                    into.name
                ))
            })?;
        }
    }
    Ok(merged)
}

/// Splits a batch's response back into one response per request, by rows.
fn split(
    model_name: &str,
    response: InferenceResponse,
    rows: &[usize],
) -> Result<Vec<InferenceResponse>, MLServerError> {
    let total: usize = rows.iter().sum();
    let mut per_request: Vec<Vec<Tensor>> = vec![Vec::new(); rows.len()];
    for mut output in response.outputs {
        let batch = output.shape.first().copied();
        if batch != Some(total) {
            return Err(MLServerError::internal(format!(
                "model {model_name} returned output '{}' with shape {:?} for a batch of {} requests with {total} rows in all; with adaptive batching a runtime must return one row per input row (batch dimension first)",
                output.name,
                output.shape,
                rows.len()
            )));
        }
        let row_len: usize = output.shape[1..].iter().product();
        if output.data.len() != total * row_len {
            return Err(MLServerError::internal(format!(
                "model {model_name} returned output '{}' with {} elements for shape {:?}",
                output.name,
                output.data.len(),
                output.shape
            )));
        }
        // From the back, so each split copies only the piece it returns.
        for (i, &n) in rows.iter().enumerate().rev() {
            let at = output.data.len() - n * row_len;
            let data = output.data.split_off(at);
            let mut shape = output.shape.clone();
            shape[0] = n;
            per_request[i].push(Tensor {
                name: output.name.clone(),
                shape,
                datatype: output.datatype,
                parameters: output.parameters.clone(),
                data,
            });
        }
    }
    Ok(per_request
        .into_iter()
        .map(|outputs| InferenceResponse {
            model_name: response.model_name.clone(),
            model_version: response.model_version.clone(),
            id: None,
            parameters: response.parameters.clone(),
            outputs,
            transport_headers: http::HeaderMap::new(),
            json: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlserver_types::RequestOutput;

    fn request(name: &str, shape: Vec<usize>, data: Vec<f32>) -> InferenceRequest {
        InferenceRequest::new(vec![Tensor::new(name, shape, data).unwrap()])
    }

    #[test]
    fn only_exactly_compatible_requests_share_a_key() {
        let a = request("x", vec![1, 3], vec![1.0; 3]);
        let b = request("x", vec![2, 3], vec![1.0; 6]);
        assert_eq!(batch_key(&a).unwrap(), batch_key(&b).unwrap());
        let other_dims = request("x", vec![1, 2], vec![1.0; 2]);
        let other_name = request("y", vec![1, 3], vec![1.0; 3]);
        let mut other_type = a.clone();
        other_type.inputs[0] = Tensor::new("x", vec![1, 3], vec![1i32; 3]).unwrap();
        let mut other_outputs = a.clone();
        other_outputs.outputs = Some(vec![RequestOutput::new("o")]);
        let mut other_ct = a.clone();
        other_ct.parameters_mut().set_content_type("np");
        for other in [other_dims, other_name, other_type, other_outputs, other_ct] {
            assert_ne!(batch_key(&a).unwrap(), batch_key(&other).unwrap());
        }
        let mut with_headers = a.clone();
        with_headers
            .parameters_mut()
            .insert("headers", serde_json::json!({"user-agent": "x"}));
        assert_eq!(batch_key(&a).unwrap(), batch_key(&with_headers).unwrap());
    }

    #[test]
    fn rows_need_a_common_batch_dimension() {
        assert_eq!(batch_rows(&request("x", vec![2, 3], vec![0.0; 6])), Some(2));
        assert_eq!(batch_rows(&request("x", vec![], vec![0.0])), None);
        let mut two = request("x", vec![2, 1], vec![0.0; 2]);
        two.inputs
            .push(Tensor::new("y", vec![3], vec![0.0f32; 3]).unwrap());
        assert_eq!(batch_rows(&two), None);
    }

    #[test]
    fn merge_then_split_round_trips_by_rows() {
        let merged = merge(vec![
            request("x", vec![1, 2], vec![1.0, 2.0]),
            request("x", vec![2, 2], vec![3.0, 4.0, 5.0, 6.0]),
        ])
        .unwrap();
        assert_eq!(merged.inputs[0].shape, vec![3, 2]);
        assert_eq!(
            merged.inputs[0].as_slice::<f32>().unwrap(),
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
        );
        let response = InferenceResponse::new(vec![merged.inputs[0].clone()]);
        let parts = split("m", response, &[1, 2]).unwrap();
        assert_eq!(parts[0].outputs[0].shape, vec![1, 2]);
        assert_eq!(parts[0].outputs[0].as_slice::<f32>().unwrap(), &[1.0, 2.0]);
        assert_eq!(parts[1].outputs[0].shape, vec![2, 2]);
        assert_eq!(
            parts[1].outputs[0].as_slice::<f32>().unwrap(),
            &[3.0, 4.0, 5.0, 6.0]
        );
    }

    #[test]
    fn a_wrong_batch_dimension_is_an_error_not_wrong_data() {
        let response =
            InferenceResponse::new(vec![Tensor::new("o", vec![1, 1], vec![1.0f32]).unwrap()]);
        let err = split("m", response, &[1, 2]).unwrap_err();
        assert_eq!(err.status(), mlserver_runtime::ErrorStatus::Internal);
        assert!(
            err.to_string().contains("batch of 2 requests with 3 rows"),
            "{err}"
        );
    }
}
