//! Metrics that live in other processes (the Python workers' registries),
//! fetched when `/metrics` is scraped and merged into the exposition.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::format::Format;

/// One metric family as another process reports it (what Python's
/// `prometheus_client` collects).
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalFamily {
    /// The family name; a counter's usually lacks the `_total` of its samples.
    pub name: String,
    /// `counter`, `gauge`, `histogram`, `summary`, `untyped`, ...
    pub kind: String,
    /// The `# HELP` text.
    pub help: String,
    /// Its samples.
    pub samples: Vec<ExternalSample>,
}

/// One sample: its full name (`x_total`, `x_bucket`, ...), labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalSample {
    /// The sample's full name, suffix included.
    pub name: String,
    /// Label names and values.
    pub labels: Vec<(String, String)>,
    /// The sample value.
    pub value: f64,
}

/// Fetches the families of one or more processes at scrape time.
pub type ExternalSource =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Vec<ExternalFamily>> + Send>> + Send + Sync>;

/// Merges families reported by several processes, as prometheus_client's
/// multiprocess collector does: samples with the same name and labels are
/// summed (each process counts its own share), families of the same name
/// become one (the first kind and help win), and families whose name is in
/// `taken` (the server's own) are left out, so the exposition never has a
/// name twice. Label order is normalised.
pub fn merge(families: Vec<ExternalFamily>, taken: &BTreeSet<String>) -> Vec<ExternalFamily> {
    /// A sample's identity: its name and (sorted) labels.
    type SampleKey = (String, Vec<(String, String)>);
    let mut merged: Vec<ExternalFamily> = Vec::new();
    // Family name -> (its index in `merged`, sample key -> sample index).
    let mut by_name: HashMap<String, (usize, HashMap<SampleKey, usize>)> = HashMap::new();
    for family in families {
        if taken.contains(&family.name) {
            continue;
        }
        let (index, samples) = by_name.entry(family.name.clone()).or_insert_with(|| {
            merged.push(ExternalFamily {
                samples: Vec::new(),
                ..family.clone()
            });
            (merged.len() - 1, HashMap::new())
        });
        let target = &mut merged[*index];
        for mut sample in family.samples {
            sample.labels.sort();
            let key = (sample.name.clone(), sample.labels.clone());
            match samples.get(&key) {
                Some(&i) => target.samples[i].value += sample.value,
                None => {
                    samples.insert(key, target.samples.len());
                    target.samples.push(sample);
                }
            }
        }
    }
    merged
}

/// A histogram's samples as MLServer's multiprocess collector orders them:
/// per label set (in order of appearance), its `_sum`, its buckets, then
/// its `_count`; other families' as they are.
fn in_exposition_order(family: &ExternalFamily) -> Vec<&ExternalSample> {
    if family.kind != "histogram" {
        return family.samples.iter().collect();
    }
    // (labels without `le`, the samples of that label set)
    type Group<'a> = (Vec<&'a (String, String)>, Vec<&'a ExternalSample>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    for sample in &family.samples {
        let key: Vec<&(String, String)> = sample.labels.iter().filter(|(k, _)| k != "le").collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, group)) => group.push(sample),
            None => groups.push((key, vec![sample])),
        }
    }
    let rank = |s: &ExternalSample| match s.name.rsplit('_').next() {
        Some("sum") => 0,
        Some("bucket") => 1,
        Some("count") => 2,
        _ => 3,
    };
    groups
        .into_iter()
        .flat_map(|(_, mut group)| {
            group.sort_by_key(|s| rank(s));
            group
        })
        .collect()
}

/// The exposition of `families`, in `format`.
pub fn render(out: &mut String, families: &[ExternalFamily], format: Format) {
    for family in families {
        format.header(out, &family.name, &family.kind, &family.help);
        for sample in in_exposition_order(family) {
            out.push_str(&sample.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    crate::format::escape_label(out, v);
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            super::metric::fmt_value(out, sample.value);
            out.push('\n');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> ExternalSample {
        ExternalSample {
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
            value,
        }
    }

    #[test]
    fn histograms_are_sum_buckets_count_per_label_set() {
        let le = |b: &'static str| [("le", b), ("m", "x")];
        let family = ExternalFamily {
            name: "h".into(),
            kind: "histogram".into(),
            help: "H".into(),
            samples: vec![
                sample("h_bucket", &le("1.0"), 1.0),
                sample("h_bucket", &le("+Inf"), 2.0),
                sample("h_count", &[("m", "x")], 2.0),
                sample("h_sum", &[("m", "x")], 3.5),
            ],
        };
        let mut text = String::new();
        render(&mut text, &[family], Format::Prometheus);
        assert_eq!(
            text,
            "# HELP h H\n# TYPE h histogram\nh_sum{m=\"x\"} 3.5\nh_bucket{le=\"1.0\",m=\"x\"} 1.0\n\
             h_bucket{le=\"+Inf\",m=\"x\"} 2.0\nh_count{m=\"x\"} 2.0\n"
        );
    }

    #[test]
    fn processes_are_summed_and_the_servers_names_win() {
        let worker = |n: f64| ExternalFamily {
            name: "calls".into(),
            kind: "counter".into(),
            help: "Calls".into(),
            samples: vec![sample("calls_total", &[("b", "2"), ("a", "1")], n)],
        };
        let mine = ExternalFamily {
            name: "model_infer_request_success".into(),
            kind: "counter".into(),
            help: "".into(),
            samples: vec![sample("model_infer_request_success_total", &[], 1.0)],
        };
        let taken = BTreeSet::from(["model_infer_request_success".to_owned()]);
        let merged = merge(vec![worker(2.0), worker(3.0), mine], &taken);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].samples.len(), 1);
        assert_eq!(merged[0].samples[0].value, 5.0);
        let mut text = String::new();
        render(&mut text, &merged, Format::Prometheus);
        assert_eq!(
            text,
            "# HELP calls_total Calls\n# TYPE calls_total counter\ncalls_total{a=\"1\",b=\"2\"} 5.0\n"
        );
    }
}
