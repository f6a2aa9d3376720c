//! The two exposition formats a scrape can ask for: Prometheus' text
//! format 0.0.4 (the default, what MLServer serves) and OpenMetrics 1.0.0
//! (`Accept: application/openmetrics-text`, as Prometheus itself asks when
//! it scrapes).

use std::fmt::Write;

/// An exposition format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Prometheus' text format, version 0.0.4.
    #[default]
    Prometheus,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The format an `Accept` header asks for: OpenMetrics when it names
    /// `application/openmetrics-text` (with any parameters), the text
    /// format otherwise, as Python's `prometheus_client` chooses.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let asks_openmetrics = accept.is_some_and(|accept| {
            accept.split(',').any(|item| {
                item.split(';').next().is_some_and(|t| {
                    t.trim()
                        .eq_ignore_ascii_case("application/openmetrics-text")
                })
            })
        });
        if asks_openmetrics {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }

    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Writes a family's `# HELP` and `# TYPE` lines. `name` is the family's
    /// base name (a counter's without `_total`); `kind` is Prometheus' word
    /// for it (`counter`, `gauge`, `histogram`, `summary`, `untyped`).
    ///
    /// A counter's family is named after its `_total` samples in the 0.0.4
    /// format, as Python's client writes it: parsers (prometheus_client's,
    /// promtool) otherwise see an empty counter and an untyped `_total`
    /// family. OpenMetrics names the family without the suffix, and calls
    /// untyped families `unknown`.
    pub(crate) fn header(self, out: &mut String, name: &str, kind: &str, help: &str) {
        let base = if kind == "counter" {
            name.strip_suffix("_total").unwrap_or(name)
        } else {
            name
        };
        let (suffix, kind) = match (self, kind) {
            (Format::Prometheus, "counter") => ("_total", kind),
            (Format::OpenMetrics, "untyped") => ("", "unknown"),
            _ => ("", kind),
        };
        let _ = write!(out, "# HELP {base}{suffix} ");
        escape_help(out, help, self == Format::OpenMetrics);
        let _ = writeln!(out, "\n# TYPE {base}{suffix} {kind}");
    }

    /// What ends an exposition: OpenMetrics' `# EOF`, nothing in 0.0.4.
    pub(crate) fn end(self, out: &mut String) {
        if self == Format::OpenMetrics {
            out.push_str("# EOF\n");
        }
    }
}

/// Escapes a label value: backslashes, double quotes and newlines.
pub(crate) fn escape_label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes `# HELP` text: backslashes and newlines, and in OpenMetrics
/// double quotes too.
fn escape_help(out: &mut String, help: &str, quotes: bool) {
    for c in help.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers_choose_the_format() {
        for (accept, format) in [
            (None, Format::Prometheus),
            (Some("*/*"), Format::Prometheus),
            (Some("text/plain;version=0.0.4"), Format::Prometheus),
            (
                Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                Format::OpenMetrics,
            ),
            (Some("text/plain, Application/OpenMetrics-Text"), Format::OpenMetrics),
        ] {
            assert_eq!(Format::negotiate(accept), format, "{accept:?}");
        }
    }

    #[test]
    fn headers_name_counters_per_format() {
        let mut text = String::new();
        Format::Prometheus.header(&mut text, "hits", "counter", "a \"b\"\nc");
        assert_eq!(
            text,
            "# HELP hits_total a \"b\"\\nc\n# TYPE hits_total counter\n"
        );
        let mut om = String::new();
        Format::OpenMetrics.header(&mut om, "hits_total", "counter", "a \"b\"");
        Format::OpenMetrics.header(&mut om, "x", "untyped", "");
        assert_eq!(
            om,
            "# HELP hits a \\\"b\\\"\n# TYPE hits counter\n# HELP x \n# TYPE x unknown\n"
        );
    }
}
