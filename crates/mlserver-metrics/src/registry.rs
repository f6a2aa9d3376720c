//! The set of metric families a server exposes, and their text rendering.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::external::{self, ExternalSource};
use crate::family::{Family, FamilyInner};
use crate::format::{escape_label, Format};
use crate::metric::{fmt_value, Counter, Gauge, Histogram, Summary};

/// Why a metric family could not be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetricsError {
    /// The metric name is not a valid Prometheus name.
    #[error(
        "invalid metric name {0:?}: use letters, digits, '_' and ':' and do not start with a digit"
    )]
    InvalidName(String),
    /// A label name is invalid or reserved (`__*`, `le`, `quantile`).
    #[error("invalid label name {0:?}")]
    InvalidLabel(String),
    /// The name is taken by a family of another kind or with other labels.
    #[error("metric {name} is already registered as a {existing} with labels {labels:?}")]
    Conflict {
        /// The metric name.
        name: String,
        /// The kind it is registered as (`counter`, `gauge`, ...).
        existing: &'static str,
        /// The label names it is registered with.
        labels: Vec<String>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        }
    }
}

struct Entry {
    help: String,
    kind: Kind,
    label_names: Vec<String>,
    /// A `Family<M>` for the `M` matching `kind`.
    family: Box<dyn Any + Send + Sync>,
}

/// Every metric family, by name. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct Registry {
    families: Arc<RwLock<BTreeMap<String, Entry>>>,
    /// Families of other processes, fetched at scrape time.
    externals: Arc<RwLock<Vec<ExternalSource>>>,
    /// Whether scrapes include the `process_*` families.
    process: bool,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let families = self.families.read().expect("registry lock");
        f.debug_struct("Registry")
            .field("families", &families.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_name(name: &str, colon: bool) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || (colon && c == ':'))
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (colon && c == ':'))
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same registry, with this process's `process_*` families (CPU
    /// time, memory, descriptors, start time) in [`Registry::render_all_as`],
    /// as every Prometheus client library exports them.
    pub fn with_process_families(mut self) -> Self {
        self.process = true;
        self
    }

    /// A counter family. The exposition name gets `_total` appended (as
    /// Python's client does), so pass `model_infer_request_success` for
    /// `model_infer_request_success_total`.
    pub fn counter(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<Family<Counter>, MetricsError> {
        self.family(name, help, labels, Kind::Counter, Counter::default)
    }

    /// A gauge family.
    pub fn gauge(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<Family<Gauge>, MetricsError> {
        self.family(name, help, labels, Kind::Gauge, Gauge::default)
    }

    /// A histogram family with `buckets` as the upper bounds (sorted and
    /// deduplicated, non-finite ones dropped); a `+Inf` bucket is always added.
    pub fn histogram(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<Family<Histogram>, MetricsError> {
        let mut bounds: Vec<f64> = buckets.iter().copied().filter(|b| b.is_finite()).collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        self.family(name, help, labels, Kind::Histogram, move || {
            Histogram::new(&bounds)
        })
    }

    /// A summary family (count and sum, no quantiles).
    pub fn summary(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<Family<Summary>, MetricsError> {
        self.family(name, help, labels, Kind::Summary, Summary::default)
    }

    /// Registers a family, or returns the one already registered under
    /// `name` when its kind and labels match (so a model reloaded in the
    /// same server records into the same series).
    fn family<M: Send + Sync + 'static>(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        kind: Kind,
        make: impl Fn() -> M + Send + Sync + 'static,
    ) -> Result<Family<M>, MetricsError> {
        if !valid_name(name, true) {
            return Err(MetricsError::InvalidName(name.to_owned()));
        }
        if let Some(bad) = labels.iter().find(|l| {
            !valid_name(l, false) || l.starts_with("__") || **l == "le" || **l == "quantile"
        }) {
            return Err(MetricsError::InvalidLabel(bad.to_string()));
        }
        let label_names: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        let mut families = self.families.write().expect("registry lock");
        if let Some(entry) = families.get(name) {
            return match entry.family.downcast_ref::<Family<M>>() {
                Some(family) if entry.kind == kind && entry.label_names == label_names => {
                    Ok(family.clone())
                }
                _ => Err(MetricsError::Conflict {
                    name: name.to_owned(),
                    existing: entry.kind.as_str(),
                    labels: entry.label_names.clone(),
                }),
            };
        }
        let family = Family::new(label_names.clone(), make);
        families.insert(
            name.to_owned(),
            Entry {
                help: help.to_owned(),
                kind,
                label_names,
                family: Box::new(family.clone()),
            },
        );
        Ok(family)
    }

    /// Every family in the Prometheus text exposition format, version 0.0.4
    /// (`Content-Type: text/plain; version=0.0.4`).
    pub fn render(&self) -> String {
        let mut out = self.render_families(Format::Prometheus);
        Format::Prometheus.end(&mut out);
        out
    }

    /// Every family with at least one child, as MLServer's multiprocess
    /// collector exposes them: a labelled family nothing has recorded into
    /// yet is left out (no `# HELP` without samples), a child's labels are
    /// sorted by name (`le` among them), and a histogram's child is its
    /// `_sum`, its buckets, then its `_count`.
    fn render_families(&self, format: Format) -> String {
        let families = self.families.read().expect("registry lock");
        let mut out = String::with_capacity(4096);
        let mut samples = String::with_capacity(1024);
        for (name, entry) in families.iter() {
            samples.clear();
            let body = &mut samples;
            match entry.kind {
                Kind::Counter => render_each(body, entry, |out, labels, c: &Counter| {
                    sample(out, name, "_total", labels, None, c.get());
                }),
                Kind::Gauge => render_each(body, entry, |out, labels, g: &Gauge| {
                    sample(out, name, "", labels, None, g.get() as f64);
                }),
                Kind::Summary => render_each(body, entry, |out, labels, s: &Summary| {
                    sample(out, name, "_count", labels, None, s.count() as f64);
                    sample(out, name, "_sum", labels, None, s.sum());
                }),
                Kind::Histogram => render_each(body, entry, |out, labels, h: &Histogram| {
                    sample(out, name, "_sum", labels, None, h.sum());
                    for (le, count) in h.buckets() {
                        let mut bound = String::new();
                        fmt_bound(&mut bound, le);
                        sample(out, name, "_bucket", labels, Some(&bound), count as f64);
                    }
                    sample(out, name, "_count", labels, None, h.count() as f64);
                }),
            }
            if !samples.is_empty() {
                format.header(&mut out, name, entry.kind.as_str(), &entry.help);
                out.push_str(&samples);
            }
        }
        out
    }
}

impl Registry {
    /// Adds families kept by other processes (Python workers), fetched
    /// each time [`Registry::render_all`] runs.
    pub fn add_external(&self, source: ExternalSource) {
        self.externals.write().expect("externals lock").push(source);
    }

    /// [`Registry::render`] plus every external source's families, merged
    /// (see [`external::merge`]).
    pub async fn render_all(&self) -> String {
        self.render_all_as(Format::Prometheus).await
    }

    /// Every family, this process's (with the `process_*` ones when asked
    /// for) and every external source's, merged (see [`external::merge`]),
    /// in `format`.
    pub async fn render_all_as(&self, format: Format) -> String {
        let mut out = self.render_families(format);
        let sources: Vec<ExternalSource> = self.externals.read().expect("externals lock").clone();
        let mut families = if self.process {
            crate::process::families()
        } else {
            Vec::new()
        };
        for source in sources {
            families.extend(source().await);
        }
        let taken: std::collections::BTreeSet<String> = self
            .families
            .read()
            .expect("registry lock")
            .keys()
            .cloned()
            .collect();
        external::render(&mut out, &external::merge(families, &taken), format);
        format.end(&mut out);
        out
    }
}

fn render_each<M: 'static>(
    out: &mut String,
    entry: &Entry,
    mut each: impl FnMut(&mut String, &[(&str, &str)], &M),
) {
    let family = entry
        .family
        .downcast_ref::<Family<M>>()
        .expect("family type matches its kind");
    let inner: &Arc<FamilyInner<M>> = family.inner();
    for (values, child) in inner.children() {
        let mut labels: Vec<(&str, &str)> = inner
            .label_names
            .iter()
            .map(String::as_str)
            .zip(values.iter().map(String::as_str))
            .collect();
        labels.sort_unstable_by_key(|(name, _)| *name);
        each(out, &labels, &child);
    }
}

fn sample(
    out: &mut String,
    name: &str,
    suffix: &str,
    labels: &[(&str, &str)],
    le: Option<&str>,
    value: f64,
) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        // `le` in its place by name, as the other labels are sorted.
        let at = labels.partition_point(|(k, _)| *k < "le");
        let le = le.map(|le| ("le", le));
        let (before, after) = labels.split_at(at);
        for (k, v) in before
            .iter()
            .copied()
            .chain(le)
            .chain(after.iter().copied())
        {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    fmt_value(out, value);
    out.push('\n');
}

/// Bucket bounds print as floats ("1.0", "+Inf"), as Python's client does,
/// so `le` label values match MLServer's series exactly.
fn fmt_bound(out: &mut String, le: f64) {
    fmt_value(out, le);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_text_format() {
        let r = Registry::new();
        let c = r.counter("hits", "Hits.", &["model", "version"]).unwrap();
        c.with(&["a\"b", "1"]).inc();
        let s = r.summary("took", "Time taken", &[]).unwrap();
        s.with(&[]).observe(0.5);
        let h = r.histogram("size", "Sizes", &["m"], &[1.0, 2.5]).unwrap();
        h.with(&["x"]).observe(2.0);
        let g = r.gauge("up", "Up", &[]).unwrap();
        g.with(&[]).set(3);
        assert_eq!(
            r.render(),
            "# HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{model=\"a\\\"b\",version=\"1\"} 1.0\n\
             # HELP size Sizes\n# TYPE size histogram\nsize_sum{m=\"x\"} 2.0\n\
             size_bucket{le=\"1.0\",m=\"x\"} 0.0\nsize_bucket{le=\"2.5\",m=\"x\"} 1.0\nsize_bucket{le=\"+Inf\",m=\"x\"} 1.0\n\
             size_count{m=\"x\"} 1.0\n\
             # HELP took Time taken\n# TYPE took summary\ntook_count 1.0\ntook_sum 0.5\n\
             # HELP up Up\n# TYPE up gauge\nup 3.0\n"
        );
    }

    #[test]
    fn families_nothing_recorded_into_are_left_out() {
        let r = Registry::new();
        let requests = r.counter("requests", "Requests", &["path"]).unwrap();
        r.histogram("took", "Took", &["path"], &[1.0]).unwrap();
        assert_eq!(r.render(), "", "no # HELP without samples");
        requests.with(&["/x"]).inc();
        assert_eq!(
            r.render(),
            "# HELP requests_total Requests\n# TYPE requests_total counter\nrequests_total{path=\"/x\"} 1.0\n"
        );
    }

    #[test]
    fn renders_openmetrics_with_process_families() {
        let r = Registry::new().with_process_families();
        r.counter("hits", "Hits.", &["m"])
            .unwrap()
            .with(&["x"])
            .inc();
        r.add_external(Arc::new(|| {
            Box::pin(async {
                vec![external::ExternalFamily {
                    name: "calls".into(),
                    kind: "counter".into(),
                    help: "Calls".into(),
                    samples: vec![external::ExternalSample {
                        name: "calls_total".into(),
                        labels: vec![],
                        value: 2.0,
                    }],
                }]
            })
        }));
        let om = block_on(r.render_all_as(Format::OpenMetrics));
        assert!(
            om.starts_with("# HELP hits Hits.\n# TYPE hits counter\nhits_total{m=\"x\"} 1.0\n"),
            "{om}"
        );
        assert!(
            om.contains("# TYPE calls counter\ncalls_total 2.0\n"),
            "{om}"
        );
        assert!(
            om.contains("# TYPE process_cpu_seconds counter\nprocess_cpu_seconds_total "),
            "{om}"
        );
        assert!(om.ends_with("# EOF\n"), "{om}");
        assert_eq!(om.matches("# EOF").count(), 1);
        let text = block_on(r.render_all());
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_resident_memory_bytes gauge\n"),
            "{text}"
        );
        assert!(!text.contains("# EOF"));
    }

    /// Polls a future that never waits (the sources above are ready at once).
    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("the render waited"),
        }
    }

    #[test]
    fn reregistering_returns_the_same_family_and_conflicts_are_errors() {
        let r = Registry::new();
        let a = r.counter("c", "", &["l"]).unwrap();
        a.with(&["x"]).inc();
        let b = r.counter("c", "", &["l"]).unwrap();
        assert_eq!(b.with(&["x"]).get(), 1.0);
        assert!(matches!(
            r.gauge("c", "", &["l"]),
            Err(MetricsError::Conflict { .. })
        ));
        assert!(matches!(
            r.counter("c", "", &["other"]),
            Err(MetricsError::Conflict { .. })
        ));
        assert!(matches!(
            r.counter("1bad", "", &[]),
            Err(MetricsError::InvalidName(_))
        ));
        assert!(matches!(
            r.counter("ok", "", &["le"]),
            Err(MetricsError::InvalidLabel(_))
        ));
    }

    #[test]
    fn removed_children_disappear() {
        let r = Registry::new();
        let c = r.counter("c", "", &["m"]).unwrap();
        c.with(&["a"]).inc();
        c.remove(&["a"]);
        assert!(!r.render().contains("c_total{"));
    }
}
