//! Log setup from settings: `debug` raises the level and turns on the
//! access log, `logging_settings` sets levels per logger, `RUST_LOG`
//! overrides both, `use_structured_logging` switches to JSON lines.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;

use anyhow::{bail, Context};
use mlserver_settings::Settings;
use opentelemetry_sdk::trace::SdkTracerProvider;
use serde_json::Value;
use tracing_subscriber::EnvFilter;

/// Our crates, which MLServer's `mlserver` logger stands for.
const OWN_TARGETS: [&str; 7] = [
    "mlserver",
    "mlserver_server",
    "mlserver_python",
    "mlserver_runtime",
    "mlserver_settings",
    "mlserver_cli",
    "mlserver_onnx",
];

/// The per-request access log's target (uvicorn's access log in MLServer).
const ACCESS_TARGET: &str = "mlserver_access";
/// Where the access log puts successful health probes.
const PROBE_TARGET: &str = "mlserver_access::probe";

/// Sets up logging, and with `tracing_server` the export of request spans
/// over OTLP/gRPC (MLServer's tracing setting): the returned provider must
/// be shut down at exit, which sends what is left. Call it inside a Tokio
/// runtime: the exporter's gRPC channel lives there.
pub(crate) fn init(settings: &Settings) -> anyhow::Result<Option<SdkTracerProvider>> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => EnvFilter::try_new(directives(settings)?)
            .context("invalid log levels in logging_settings")?,
    };
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let fmt: Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync> =
        if settings.use_structured_logging {
            fmt.json().flatten_event(true).with_filter(filter).boxed()
        } else {
            fmt.with_filter(filter).boxed()
        };
    let mut layers = vec![fmt];
    let provider = match &settings.tracing_server {
        Some(server) => {
            let (layer, provider) = otel_layer(server, &settings.server_name)?;
            layers.push(layer);
            Some(provider)
        }
        None => None,
    };
    if let Err(e) = tracing_subscriber::registry().with(layers).try_init() {
        eprintln!("mlserver: logging already initialised: {e}");
    }
    if let Some(server) = &settings.tracing_server {
        tracing::info!("exporting request spans over OTLP/gRPC to {server}");
    }
    Ok(provider)
}

/// MLServer's `tracing_server` is `host:port` of an OTLP/gRPC collector.
fn otel_layer(
    server: &str,
    service: &str,
) -> anyhow::Result<(
    Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>,
    SdkTracerProvider,
)> {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use tracing_subscriber::Layer;

    let endpoint = if server.contains("://") {
        server.to_owned()
    } else {
        format!("http://{server}")
    };
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("tracing_server {server}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    opentelemetry::global::set_tracer_provider(provider.clone());
    let layer = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("mlserver"))
        // Only the request spans: not every log line's span.
        .with_filter(
            tracing_subscriber::filter::Targets::new()
                .with_target(mlserver_server::TRACE_TARGET, tracing::Level::INFO),
        )
        .boxed();
    Ok((layer, provider))
}

/// The `EnvFilter` directives for `settings`.
fn directives(settings: &Settings) -> anyhow::Result<String> {
    let level = if settings.debug {
        "debug"
    } else {
        match settings.log_level_name() {
            Some("DEBUG") => "debug",
            Some("WARNING") => "warn",
            Some("ERROR") | Some("CRITICAL") => "error",
            _ => "info",
        }
    };
    // Dependencies stay at info even in debug mode: their debug output
    // (hyper's connection chatter) drowns the server's own.
    let mut levels: BTreeMap<String, String> = BTreeMap::new();
    levels.insert(String::new(), "info".into());
    for target in OWN_TARGETS {
        levels.insert(target.into(), level.into());
    }
    levels.insert(
        ACCESS_TARGET.into(),
        if settings.access_log_enabled() {
            "info"
        } else {
            "off"
        }
        .into(),
    );
    // Successful health probes: only with `debug` (the ODH fork's filter).
    levels.insert(
        PROBE_TARGET.into(),
        if settings.debug { "info" } else { "off" }.into(),
    );
    if let Some(config) = &settings.logging_settings {
        for (logger, level) in logger_levels(config)? {
            for target in targets_of(&logger) {
                levels.insert(target, level.clone());
            }
        }
    }
    Ok(levels
        .into_iter()
        .map(|(target, level)| {
            if target.is_empty() {
                level
            } else {
                format!("{target}={level}")
            }
        })
        .collect::<Vec<_>>()
        .join(","))
}

/// `(logger name, level)` pairs from MLServer's `logging_settings`: a
/// `dictConfig` object, or a path to one (`.json`) or to an ini file for
/// `fileConfig`. Only levels apply; Python handlers and formatters have no
/// equivalent here (output format comes from `use_structured_logging`).
fn logger_levels(config: &Value) -> anyhow::Result<Vec<(String, String)>> {
    match config {
        Value::Object(_) => dict_config_levels(config),
        Value::String(path) => {
            let path = Path::new(path);
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read logging_settings {}", path.display()))?;
            if path.extension().is_some_and(|e| e == "json") {
                let value: Value = serde_json::from_str(&text)
                    .with_context(|| format!("{} is not valid JSON", path.display()))?;
                dict_config_levels(&value)
            } else {
                Ok(ini_levels(&text))
            }
        }
        other => bail!("logging_settings must be an object or a file path, not {other}"),
    }
}

fn dict_config_levels(config: &Value) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(level) = config.pointer("/root/level").and_then(Value::as_str) {
        out.push((String::new(), level.to_owned()));
    }
    if let Some(loggers) = config.get("loggers").and_then(Value::as_object) {
        for (name, logger) in loggers {
            if let Some(level) = logger.get("level").and_then(Value::as_str) {
                out.push((name.clone(), level.to_owned()));
            }
        }
    }
    out.into_iter()
        .filter_map(|(name, level)| match rust_level(&level) {
            Some(Ok(level)) => Some(Ok((name, level.to_owned()))),
            Some(Err(())) => Some(Err(anyhow::anyhow!(
                "logging_settings: unknown level {level:?} for logger {name:?}"
            ))),
            None => None,
        })
        .collect()
}

/// `[logger_x]` sections of a `fileConfig` ini: `qualname` and `level`.
fn ini_levels(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section: Option<(String, Option<String>, Option<String>)> = None;
    let mut flush = |s: Option<(String, Option<String>, Option<String>)>| {
        if let Some((name, qualname, Some(level))) = s {
            let logger = if name == "logger_root" {
                String::new()
            } else {
                qualname.unwrap_or_else(|| name.trim_start_matches("logger_").to_owned())
            };
            if let Some(Ok(level)) = rust_level(&level) {
                out.push((logger, level.to_owned()));
            }
        }
    };
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            flush(section.take());
            if name.starts_with("logger_") {
                section = Some((name.to_owned(), None, None));
            }
        } else if let (Some(s), Some((k, v))) = (section.as_mut(), line.split_once('=')) {
            match k.trim() {
                "qualname" => s.1 = Some(v.trim().to_owned()),
                "level" => s.2 = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    flush(section);
    out
}

/// Python level names to `tracing` levels; `NOTSET` (inherit) is `None`.
fn rust_level(python: &str) -> Option<Result<&'static str, ()>> {
    Some(Ok(match python.to_ascii_uppercase().as_str() {
        "NOTSET" => return None,
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" | "WARNING" => "warn",
        "ERROR" | "CRITICAL" | "FATAL" => "error",
        "TRACE" => "trace",
        "OFF" => "off",
        _ => return Some(Err(())),
    }))
}

/// The `tracing` targets a Python logger name stands for.
fn targets_of(logger: &str) -> Vec<String> {
    match logger {
        "" | "root" => vec![String::new()],
        "mlserver" => OWN_TARGETS.iter().map(|t| t.to_string()).collect(),
        "mlserver.rest" => vec!["mlserver_server::rest".into()],
        "mlserver.grpc" => vec!["mlserver_server::grpc".into()],
        "mlserver.metrics" => vec!["mlserver_server::metrics".into()],
        "uvicorn.access" | "mlserver.access" => vec![ACCESS_TARGET.into()],
        other => vec![other.replace('.', "::")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn log_level_and_access_log_as_the_odh_fork_reads_them() {
        let mut settings = Settings {
            log_level: " warning ".into(),
            access_log: Some(true),
            ..Settings::default()
        };
        let d = directives(&settings).unwrap();
        assert!(
            d.contains("mlserver_access=info")
                && d.contains("mlserver_access::probe=off")
                && d.contains("mlserver_server=warn"),
            "{d}"
        );
        settings.log_level = "loud".into();
        settings.access_log = Some(false);
        settings.debug = true;
        let d = directives(&settings).unwrap();
        assert!(
            d.contains("mlserver_access=off")
                && d.contains("mlserver_access::probe=info")
                && d.contains("mlserver_server=debug"),
            "{d}"
        );
        assert!(settings.ignored()[0].contains("Unrecognised log_level 'loud'"));
    }

    #[test]
    fn debug_turns_on_the_access_log() {
        let mut settings = Settings::default();
        assert!(directives(&settings)
            .unwrap()
            .contains("mlserver_access=off"));
        settings.debug = true;
        let d = directives(&settings).unwrap();
        assert!(
            d.contains("mlserver_access=info") && d.contains("mlserver_server=debug"),
            "{d}"
        );
    }

    #[test]
    fn dict_config_levels_apply_per_logger() {
        let settings = Settings {
            logging_settings: Some(json!({
                "version": 1,
                "root": {"level": "WARNING"},
                "loggers": {
                    "mlserver": {"level": "ERROR"},
                    "uvicorn.access": {"level": "INFO"},
                    "mlserver.rest": {"level": "NOTSET"}
                }
            })),
            ..Settings::default()
        };
        let d = directives(&settings).unwrap();
        assert!(d.starts_with("warn,"), "{d}");
        assert!(
            d.contains("mlserver_server=error") && d.contains("mlserver_access=info"),
            "{d}"
        );
        assert!(!d.contains("mlserver_server::rest"), "{d}");
    }

    #[test]
    fn ini_files_and_bad_levels() {
        let ini = "[loggers]\nkeys=root,ml\n[logger_root]\nlevel=ERROR\nhandlers=h\n[logger_ml]\nqualname=mlserver\nlevel=DEBUG\n[handler_h]\nlevel=INFO\n";
        assert_eq!(
            ini_levels(ini),
            vec![
                (String::new(), "error".to_owned()),
                ("mlserver".to_owned(), "debug".to_owned())
            ]
        );
        let settings = Settings {
            logging_settings: Some(json!({"root": {"level": "LOUD"}})),
            ..Settings::default()
        };
        assert!(directives(&settings)
            .unwrap_err()
            .to_string()
            .contains("LOUD"));
    }
}
