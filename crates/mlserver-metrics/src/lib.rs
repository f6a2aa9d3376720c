//! Prometheus metrics for mlserver-rs, with MLServer's names.
//!
//! A small, dependency-free implementation: values are atomics, so recording
//! on the inference path never takes a lock once a labelled child is in
//! hand, and the registry renders the Prometheus text format (0.0.4) that
//! MLServer's `/metrics` endpoint serves.
//!
//! ```
//! use mlserver_metrics::{Registry, DEFAULT_BUCKETS};
//!
//! let registry = Registry::new();
//! let requests = registry.counter("requests", "Requests served", &["model"]).unwrap();
//! requests.with(&["iris"]).inc();
//! let latency = registry
//!     .histogram("latency_seconds", "Request latency", &["model"], DEFAULT_BUCKETS)
//!     .unwrap();
//! latency.with(&["iris"]).observe(0.004);
//! let text = registry.render();
//! assert!(text.contains("requests_total{model=\"iris\"} 1.0\n"));
//! assert!(text.contains("latency_seconds_bucket{le=\"0.005\",model=\"iris\"} 1.0\n"));
//! ```

pub mod external;
mod family;
mod format;
mod metric;
mod process;
mod registry;

pub use family::Family;
pub use format::Format;
pub use metric::{Counter, Gauge, Histogram, Summary};
pub use registry::{MetricsError, Registry};

/// Python `prometheus_client`'s default histogram buckets, which MLServer's
/// histograms use.
pub const DEFAULT_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
