//! The response cache: MLServer's `cache_enabled` / `cache_size`.
//!
//! One least-recently-used cache per server, used for models that opt in
//! with their own `cache_enabled`. The key is the model, its version and the
//! request content: inputs, requested outputs and parameters. Unlike
//! MLServer, the request id and the HTTP headers copied into
//! `parameters.headers` are left out, so two clients sending the same tensors
//! share an entry (MLServer keys on the whole request JSON, headers included,
//! so it rarely hits across clients).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use mlserver_types::{
    InferenceRequest, InferenceResponse, Parameters, RequestInput, RequestOutput,
};
use serde::Serialize;

use crate::batching::without_headers;

/// MLServer's response cache (`cache_enabled`, `cache_size`): whole
/// responses by request, least recently used out first, for the models
/// that opt in (`cache_enabled` in their model-settings).
pub struct ResponseCache {
    capacity: usize,
    inner: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    tick: u64,
    entries: HashMap<String, (u64, InferenceResponse)>,
    /// Use order: tick -> key; the first entry is the least recently used.
    order: BTreeMap<u64, String>,
}

impl ResponseCache {
    /// A cache of up to `capacity` responses (0 caches nothing).
    pub fn new(capacity: usize) -> Self {
        ResponseCache {
            capacity,
            inner: Mutex::new(Lru::default()),
        }
    }

    /// The key for one request to one loaded instance of a model version
    /// (a reload starts afresh).
    pub fn key(
        model: &str,
        version: Option<&str>,
        instance: u64,
        request: &InferenceRequest,
    ) -> String {
        #[derive(Serialize)]
        struct Key<'a> {
            model: &'a str,
            version: Option<&'a str>,
            instance: u64,
            inputs: &'a [RequestInput],
            outputs: &'a Option<Vec<RequestOutput>>,
            parameters: Option<Parameters>,
        }
        serde_json::to_string(&Key {
            model,
            version,
            instance,
            inputs: &request.inputs,
            outputs: &request.outputs,
            parameters: without_headers(&request.parameters),
        })
        .expect("requests always serialise")
    }

    /// The cached response for `key`, which becomes the most recently used.
    pub fn get(&self, key: &str) -> Option<InferenceResponse> {
        let mut lru = self.inner.lock().expect("cache lock");
        lru.tick += 1;
        let tick = lru.tick;
        let (used, response) = lru.entries.get_mut(key)?;
        let previous = std::mem::replace(used, tick);
        let response = response.clone();
        lru.order.remove(&previous);
        lru.order.insert(tick, key.to_owned());
        Some(response)
    }

    /// Caches `response` under `key`, dropping the least recently used
    /// response beyond the capacity.
    pub fn insert(&self, key: String, response: InferenceResponse) {
        if self.capacity == 0 {
            return;
        }
        let mut lru = self.inner.lock().expect("cache lock");
        lru.tick += 1;
        let tick = lru.tick;
        if let Some((previous, _)) = lru.entries.insert(key.clone(), (tick, response)) {
            lru.order.remove(&previous);
        }
        lru.order.insert(tick, key);
        while lru.entries.len() > self.capacity {
            let Some((_, oldest)) = lru.order.pop_first() else {
                break;
            };
            lru.entries.remove(&oldest);
        }
    }

    /// How many responses are cached.
    pub fn len(&self) -> usize {
        self.inner.lock().expect("cache lock").entries.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mlserver_types::Tensor;

    fn response(id: &str) -> InferenceResponse {
        InferenceResponse {
            id: Some(id.into()),
            ..Default::default()
        }
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = ResponseCache::new(2);
        cache.insert("a".into(), response("a"));
        cache.insert("b".into(), response("b"));
        assert!(cache.get("a").is_some()); // b is now the oldest
        cache.insert("c".into(), response("c"));
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b").is_none());
        assert!(cache.get("a").is_some() && cache.get("c").is_some());
    }

    #[test]
    fn keys_ignore_ids_and_headers_but_not_content() {
        let mut a = InferenceRequest::new(vec![Tensor::new("x", vec![1], vec![1.0f32]).unwrap()]);
        a.id = Some("1".into());
        let mut b = a.clone();
        b.id = Some("2".into());
        b.parameters_mut()
            .insert("headers", serde_json::json!({"x-request-id": "2"}));
        assert_eq!(
            ResponseCache::key("m", None, 1, &a),
            ResponseCache::key("m", None, 1, &b)
        );
        assert_ne!(
            ResponseCache::key("m", None, 1, &a),
            ResponseCache::key("n", None, 1, &a)
        );
        let c = InferenceRequest::new(vec![Tensor::new("x", vec![1], vec![2.0f32]).unwrap()]);
        assert_ne!(
            ResponseCache::key("m", None, 1, &a),
            ResponseCache::key("m", None, 1, &c)
        );
    }
}
