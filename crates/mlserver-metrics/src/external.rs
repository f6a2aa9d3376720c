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

/// The exposition of `families`, in `format`.
pub fn render(out: &mut String, families: &[ExternalFamily], format: Format) {
    for family in families {
        format.header(out, &family.name, &family.kind, &family.help);
        for sample in &family.samples {
            out.push_str(&sample.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(k);
                    out.push_str("=\"");
                    super::registry::escape_label(out, v);
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
            "# HELP calls_total Calls\n# TYPE calls_total counter\ncalls_total{a=\"1\",b=\"2\"} 5\n"
        );
    }
}
