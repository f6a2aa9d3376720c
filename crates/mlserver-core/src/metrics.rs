//! MLServer's Prometheus metrics of the data plane: inference, batching,
//! the worker queue, loads. The transports register their own families
//! (`rest_server_*`, `grpc_server_*`) on the same registry.
//!
//! Unlike MLServer (#1151), every family, including `batch_request_queue`,
//! `parallel_request_queue` and runtimes' custom metrics, is exposed whatever
//! `parallel_workers` is: there is one process and one registry.

use std::sync::Arc;
use std::time::Instant;

use mlserver_metrics::{Counter, Family, Gauge, Histogram, Registry, Summary, DEFAULT_BUCKETS};

/// One model version label's inference series.
pub(crate) struct InferSeries {
    success: Arc<Counter>,
    failure: Arc<Counter>,
    duration: Arc<Summary>,
}

impl InferSeries {
    pub(crate) fn observe(&self, started: Instant, ok: bool) {
        if ok {
            self.success.inc();
        } else {
            self.failure.inc();
        }
        self.duration.observe(started.elapsed().as_secs_f64());
    }
}

/// Every series the server itself records.
pub struct ServerMetrics {
    registry: Registry,
    infer_success: Family<Counter>,
    infer_failure: Family<Counter>,
    infer_duration: Family<Summary>,
    batch_queue: Family<Histogram>,
    parallel_queue: Arc<Histogram>,
    load_success: Family<Counter>,
    load_failure: Family<Counter>,
    unloads: Family<Counter>,
    loaded: Arc<Gauge>,
}

impl ServerMetrics {
    /// Registers MLServer's data-plane families on a new registry.
    pub fn new() -> Result<Self, mlserver_metrics::MetricsError> {
        let r = Registry::new().with_process_families();
        let model = ["model", "version"];
        Ok(ServerMetrics {
            infer_success: r.counter(
                "model_infer_request_success",
                "Model infer request success count",
                &model,
            )?,
            infer_failure: r.counter(
                "model_infer_request_failure",
                "Model infer request failure count",
                &model,
            )?,
            infer_duration: r.summary(
                "model_infer_request_duration",
                "Model infer request duration",
                &model,
            )?,
            batch_queue: r.histogram(
                "batch_request_queue",
                "counter of request queue batch size",
                &["model_name", "model_version"],
                DEFAULT_BUCKETS,
            )?,
            parallel_queue: r
                .histogram(
                    "parallel_request_queue",
                    "counter of request queue size for workers",
                    &[],
                    DEFAULT_BUCKETS,
                )?
                .with(&[]),
            load_success: r.counter(
                "model_load_success",
                "Model loads (and reloads) that succeeded",
                &model,
            )?,
            load_failure: r.counter("model_load_failure", "Model loads that failed", &model)?,
            unloads: r.counter("model_unload", "Model versions unloaded", &model)?,
            loaded: r
                .gauge("loaded_models", "Model versions loaded and serving", &[])?
                .with(&[]),
            registry: r,
        })
    }

    /// The registry, also given to runtimes for their custom metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Records one inference call. `version` is the version the caller
    /// named, `None` rendering as `"None"`, as MLServer labels it.
    pub fn observe_infer(&self, model: &str, version: Option<&str>, started: Instant, ok: bool) {
        self.infer_series(model, version).observe(started, ok);
    }

    /// The series [`ServerMetrics::observe_infer`] records into for these
    /// labels, to keep where they are used again (a loaded model keeps
    /// its own: three lookups fewer per request).
    pub(crate) fn infer_series(&self, model: &str, version: Option<&str>) -> InferSeries {
        let labels = [model, version.unwrap_or("None")];
        InferSeries {
            success: self.infer_success.with(&labels),
            failure: self.infer_failure.with(&labels),
            duration: self.infer_duration.with(&labels),
        }
    }

    /// `batch_request_queue` for one model version (`""` when unversioned).
    pub(crate) fn batch_queue(&self, model: &str, version: Option<&str>) -> Arc<Histogram> {
        self.batch_queue.with(&[model, version.unwrap_or("")])
    }

    /// `parallel_request_queue`: predictions waiting for an inference thread.
    pub fn parallel_queue(&self) -> Arc<Histogram> {
        self.parallel_queue.clone()
    }

    pub(crate) fn observe_load(&self, model: &str, version: Option<&str>, ok: bool) {
        let labels = [model, version.unwrap_or("")];
        if ok {
            self.load_success.with(&labels).inc();
        } else {
            self.load_failure.with(&labels).inc();
        }
    }

    pub(crate) fn observe_unload(&self, model: &str, version: Option<&str>) {
        self.unloads.with(&[model, version.unwrap_or("")]).inc();
    }

    pub(crate) fn set_loaded(&self, count: usize) {
        self.loaded.set(count as i64);
    }

    /// The Prometheus text exposition of the server's own families.
    pub fn render(&self) -> String {
        self.registry.render()
    }

    /// The server's families and those of other processes (the Python
    /// workers' `mlserver.register`/`log` and `prometheus_client` metrics).
    pub async fn render_all(&self) -> String {
        self.registry.render_all().await
    }

    /// [`ServerMetrics::render_all`], in the format a scrape asked for.
    pub async fn render_all_as(&self, format: mlserver_metrics::Format) -> String {
        self.registry.render_all_as(format).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_use_mlserver_names() {
        let m = ServerMetrics::new().unwrap();
        m.observe_infer("iris", None, Instant::now(), true);
        m.observe_infer("iris", Some("2"), Instant::now(), false);
        let text = m.render();
        for line in [
            "model_infer_request_success_total{model=\"iris\",version=\"None\"} 1",
            "model_infer_request_failure_total{model=\"iris\",version=\"2\"} 1",
            "model_infer_request_duration_count{model=\"iris\",version=\"None\"} 1",
            "# TYPE parallel_request_queue histogram",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
