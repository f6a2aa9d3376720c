//! The workers' Python metrics on the server's `/metrics`: what models
//! record with MLServer's `mlserver.register()` / `mlserver.log()` and with
//! `prometheus_client` itself. They live in the worker processes, so each
//! scrape asks every worker for its families (one `METRICS` frame each, in
//! parallel) and the registry merges them, summing each worker's share as
//! prometheus_client's multiprocess collector does in MLServer; gauges get
//! the worker's `pid` label instead (that collector's default `all` mode).

use std::sync::{Arc, Weak};
use std::time::Duration;

use mlserver_metrics::external::{ExternalFamily, ExternalSample};
use mlserver_metrics::Registry;
use serde::Deserialize;

use crate::{frame, Pools};

/// How long a scrape waits for one worker; a busy or stuck worker's
/// metrics are left out of that scrape rather than holding it up.
const WORKER_TIMEOUT: Duration = Duration::from_secs(2);

/// Adds the workers of `pools` to `registry`'s scrapes.
pub(crate) fn expose(pools: &Arc<Pools>, registry: &Registry) {
    // Weak: the registry outlives nothing it does not own.
    let pools: Weak<Pools> = Arc::downgrade(pools);
    registry.add_external(Arc::new(move || {
        let pools = pools.clone();
        Box::pin(async move {
            match pools.upgrade() {
                Some(pools) => collect(&pools).await,
                None => Vec::new(),
            }
        })
    }));
}

async fn collect(pools: &Pools) -> Vec<ExternalFamily> {
    let workers: Vec<_> = pools
        .started()
        .iter()
        .flat_map(|pool| pool.workers())
        .filter(|w| w.alive())
        .collect();
    let replies = futures::future::join_all(workers.iter().map(|worker| async move {
        match tokio::time::timeout(WORKER_TIMEOUT, worker.call(frame::METRICS, b"")).await {
            Ok(Ok(body)) => parse(&body, worker.pid),
            Ok(Err(e)) => {
                tracing::debug!(pid = worker.pid, "no metrics from the Python worker: {e}");
                Vec::new()
            }
            Err(_) => {
                tracing::debug!(pid = worker.pid, "the Python worker's metrics timed out");
                Vec::new()
            }
        }
    }))
    .await;
    replies.into_iter().flatten().collect()
}

#[derive(Deserialize)]
struct WireFamily {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    help: String,
    samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)>,
}

/// A worker's `METRICS` reply; gauges get its `pid`.
fn parse(body: &[u8], pid: u32) -> Vec<ExternalFamily> {
    let families: Vec<WireFamily> = match serde_json::from_slice(body) {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(pid, "unreadable metrics from the Python worker: {e}");
            return Vec::new();
        }
    };
    families
        .into_iter()
        .map(|f| {
            let gauge = f.kind == "gauge";
            ExternalFamily {
                samples: f
                    .samples
                    .into_iter()
                    .map(|(name, labels, value)| {
                        let mut labels: Vec<(String, String)> = labels.into_iter().collect();
                        if gauge {
                            labels.push(("pid".into(), pid.to_string()));
                        }
                        ExternalSample {
                            name,
                            labels,
                            value,
                        }
                    })
                    .collect(),
                name: f.name,
                kind: f.kind,
                help: f.help,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_families_are_read_and_gauges_get_the_pid() {
        let body = br#"[
            {"name": "calls", "type": "counter", "help": "Calls", "samples": [["calls_total", {"model_name": "m"}, 2.0]]},
            {"name": "depth", "type": "gauge", "help": "", "samples": [["depth", {}, 3.0]]}
        ]"#;
        let families = parse(body, 42);
        assert_eq!(
            families[0].samples[0].labels,
            [("model_name".to_owned(), "m".to_owned())]
        );
        assert_eq!(
            families[1].samples[0].labels,
            [("pid".to_owned(), "42".to_owned())]
        );
        assert!(parse(b"junk", 1).is_empty());
    }
}
