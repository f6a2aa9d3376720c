//! Server-wide settings: MLServer's `Settings` and `CORSSettings`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::env::EnvSource;
use crate::error::SettingsError;
use crate::layer::{self, field, Explicit, Field, Kind, Section};

/// The file `mlserver start FOLDER` reads from `FOLDER`.
pub const SETTINGS_FILENAME: &str = "settings.json";

/// Server settings (`settings.json`, `MLSERVER_*`), MLServer's `Settings`.
///
/// Field names, JSON names and defaults are MLServer's, so an existing
/// `settings.json` works unchanged. Build it with [`load_settings`] to get
/// MLServer's precedence (file > environment > `.env` > defaults); the
/// `Default` impl gives the defaults alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Tracebacks in 500s, access logs, DEBUG log level.
    pub debug: bool,
    /// The ODH fork's `log_level` (`MLSERVER_LOG_LEVEL`): DEBUG, INFO,
    /// WARNING, ERROR or CRITICAL (any case), INFO by default and for
    /// anything else (with a warning at start); `debug` forces DEBUG, and
    /// `logging_settings` applies over it.
    pub log_level: String,
    /// The ODH fork's `access_log` (`MLSERVER_ACCESS_LOG`): one line per
    /// request whatever `debug` says. Unset, the access log follows `debug`,
    /// as in MLServer 1.7.1 (the fork turns it on by default).
    pub access_log: Option<bool>,
    /// The ODH fork's `strict_readiness` (`MLSERVER_STRICT_READINESS`): the
    /// server is ready when every model is (true, the default, MLServer's
    /// rule), or when any one is (false).
    pub strict_readiness: bool,
    /// The ODH fork's `empty_registry_readiness`
    /// (`MLSERVER_EMPTY_REGISTRY_READINESS`): whether a server with no model
    /// registered is ready (true by default, as MLServer).
    pub empty_registry_readiness: bool,
    /// Inference worker processes; 0 means inference in the main process.
    pub parallel_workers: usize,
    /// Set by the loader when neither `settings.json` nor
    /// `MLSERVER_PARALLEL_WORKERS` gave `parallel_workers`, which is then
    /// MLServer's default, 1 (see [`Settings::inference_threads`]); false
    /// in settings made in code, whose `parallel_workers` is taken as given.
    #[serde(skip)]
    pub parallel_workers_defaulted: bool,
    /// Seconds to wait for a worker to stop at shutdown before killing it.
    pub parallel_workers_timeout: u64,
    /// Where environment tarballs are extracted; `$CWD/.envs` by default.
    pub environments_dir: PathBuf,
    /// Import string of a custom model repository class; `None` = the
    /// default schemaless repository.
    pub model_repository_implementation: Option<String>,
    /// The models folder; [`load_settings`] sets it to the folder it loads.
    pub model_repository_root: PathBuf,
    /// Extra arguments for a custom repository.
    pub model_repository_implementation_args: Map<String, Value>,
    /// When false, models load only through the repository API (KServe and
    /// ModelMesh rely on this).
    pub load_models_at_startup: bool,
    /// MLServer's `server_name` (`MLSERVER_SERVER_NAME`), `mlserver` by default; reported
    /// in server metadata.
    pub server_name: String,
    /// Reported in server metadata; this crate's version by default.
    pub server_version: String,
    /// Echoed in server metadata.
    pub extensions: Vec<String>,
    /// Shared by the REST, gRPC and metrics listeners.
    pub host: String,
    /// MLServer's `http_port` (`MLSERVER_HTTP_PORT`), 8080 by default: the REST listener.
    pub http_port: u16,
    /// ASGI-style root path when served behind a path-rewriting proxy.
    pub root_path: String,
    /// MLServer's `grpc_port` (`MLSERVER_GRPC_PORT`), 8081 by default: the gRPC listener.
    pub grpc_port: u16,
    /// MLServer's `grpc_max_message_length` (`MLSERVER_GRPC_MAX_MESSAGE_LENGTH`), unset
    /// by default: the gRPC message limit in bytes (unset: the REST body limit; negative:
    /// unlimited).
    pub grpc_max_message_length: Option<i64>,
    /// CORS is off unless this is set.
    pub cors_settings: Option<CorsSettings>,
    /// `None` (JSON `null`) disables the metrics server and the metrics
    /// middleware; a missing key keeps `/metrics`.
    pub metrics_endpoint: Option<String>,
    /// MLServer's `metrics_port` (`MLSERVER_METRICS_PORT`), 8082 by default: the metrics
    /// listener.
    pub metrics_port: u16,
    /// MLServer's `metrics_rest_server_prefix` (`MLSERVER_METRICS_REST_SERVER_PREFIX`),
    /// `rest_server` by default: the prefix of the REST metrics.
    pub metrics_rest_server_prefix: String,
    /// Multiprocess metrics folder; `$CWD/.metrics` by default.
    pub metrics_dir: PathBuf,
    /// JSON log lines.
    pub use_structured_logging: bool,
    /// A logging config file path, or an inline dict.
    pub logging_settings: Option<Value>,
    /// MLServer's `kafka_enabled` (`MLSERVER_KAFKA_ENABLED`), false by default; the Kafka
    /// server is not implemented, so `true` only logs a warning.
    pub kafka_enabled: bool,
    /// MLServer's `kafka_servers` (`MLSERVER_KAFKA_SERVERS`), `localhost:9092` by
    /// default; unused (no Kafka server).
    pub kafka_servers: String,
    /// MLServer's `kafka_topic_input` (`MLSERVER_KAFKA_TOPIC_INPUT`), `mlserver-input` by
    /// default; unused (no Kafka server).
    pub kafka_topic_input: String,
    /// MLServer's `kafka_topic_output` (`MLSERVER_KAFKA_TOPIC_OUTPUT`), `mlserver-output`
    /// by default; unused (no Kafka server).
    pub kafka_topic_output: String,
    /// OTLP/gRPC collector endpoint; tracing is off when `None`.
    pub tracing_server: Option<String>,
    /// Server-wide switch of the response cache (models opt in too).
    pub cache_enabled: bool,
    /// MLServer's `cache_size` (`MLSERVER_CACHE_SIZE`), 100 by default: how many
    /// responses the cache keeps.
    pub cache_size: usize,
    /// MLServer's `gzip_enabled` (`MLSERVER_GZIP_ENABLED`), true by default:
    /// gzip-compress responses for clients that accept it.
    pub gzip_enabled: bool,
    /// Not MLServer's: check every request against the inputs declared in
    /// model-settings (datatypes, shapes) and refuse mismatches with a 400.
    /// Off by default, as MLServer checks nothing and loose declarations
    /// are common; runtimes whose metadata comes from the model itself (ONNX)
    /// always check.
    pub strict_inputs: bool,
    /// Not MLServer's: connections each listener (REST, gRPC, metrics)
    /// holds open at most, 4096 by default; more wait in the kernel's
    /// backlog until one closes.
    pub max_connections: usize,
    /// Not MLServer's: seconds an HTTP/1 connection may sit idle between
    /// requests before it is closed, 5 by default (uvicorn's
    /// `timeout_keep_alive`, which MLServer serves with); 0: never.
    pub http_keep_alive_timeout: f64,
    /// Not MLServer's: seconds a client has to send a request's headers,
    /// 10 by default; 0: no limit. An HTTP/1 connection sending a head has
    /// no request open yet, so it is idle: when twice
    /// `http_keep_alive_timeout` is no longer, it is dropped one keep-alive
    /// timeout after it went idle.
    pub http_header_timeout: f64,
    /// Not MLServer's: seconds a client of the gRPC port has to send the
    /// HTTP/2 connection preface, 10 by default; 0: no limit. Until it
    /// has, no HTTP/2 timer runs, so a silent connection would hold its
    /// descriptor and its `max_connections` slot for ever.
    pub connection_handshake_timeout: f64,
    /// Not MLServer's: microseconds a Python worker goes on reading its
    /// socket after answering, when requests have been arriving closer
    /// together than that, rather than sleeping until the next one (a
    /// wake-up costs 40-80 µs on a VM); 0 (never) by default: it buys
    /// latency at concurrency 1 with about a fifth more CPU per request,
    /// and nothing under load.
    pub worker_busy_poll_us: u64,
    /// Not MLServer's: seconds a REST request body may send nothing before
    /// the request fails, 60 by default; 0: no limit.
    pub http_body_timeout: f64,
    /// Not MLServer's: once `http_body_timeout` has passed, a request body
    /// (REST, or a unary gRPC call's message) must have arrived at this
    /// many bytes a second on average, 65536 by default; 0: no minimum. A
    /// body of n bytes may take `http_body_timeout` plus n at this rate (a
    /// 512 MiB body: 2.3 hours), one dripped at a byte a second is cut.
    pub http_body_min_rate: u64,
    /// Not MLServer's: bytes the requests in flight may hold together (their
    /// bodies, counted twice for what they decode to); a request that would
    /// pass it is refused at once (503 / RESOURCE_EXHAUSTED). 0 (the
    /// default): 3/5 of the container's memory limit (cgroup), else of the
    /// machine's memory.
    pub memory_budget: u64,
    /// Not MLServer's: seconds an HTTP/2 or gRPC connection with no request
    /// open stays up, 60 by default (then a GOAWAY: clients reconnect when
    /// they need to); 0: never closed.
    pub http2_idle_timeout: f64,
    /// Not MLServer's: seconds between HTTP/2 keepalive pings to the client,
    /// 30 by default (a peer that does not answer within
    /// `http2_keepalive_timeout` is dropped); 0: no pings.
    pub http2_keepalive_interval: f64,
    /// Not MLServer's: seconds a keepalive ping may go unanswered, 10 by
    /// default.
    pub http2_keepalive_timeout: f64,
    /// Not MLServer's: concurrent streams one HTTP/2 (gRPC) connection may
    /// open, 1024 by default.
    pub grpc_max_concurrent_streams: u32,
    /// Not MLServer's: how many times its compressed size a gzip or deflate
    /// request (REST body, gRPC message) may inflate to, 32 by default,
    /// beyond 16 MiB (which any request may reach, within the size limit):
    /// a 1 MB bomb of 1 GiB stops at 32 MiB. 0: only the size limit.
    pub max_decompression_ratio: f64,
    /// Not MLServer's: seconds a shutdown (SIGTERM) takes at most, 25 by
    /// default so it fits Kubernetes' 30 s grace: requests in flight get
    /// until then (those still running are cut with a 503 / UNAVAILABLE),
    /// and model unloads what is left of it.
    pub shutdown_timeout: f64,
    /// Not MLServer's (its #999): seconds an inference may take before it is
    /// answered with a 504 / DEADLINE_EXCEEDED and cancelled; `None` (the
    /// default) waits as long as the model takes. A model's own
    /// `inference_timeout` in its model-settings overrides it.
    pub inference_timeout: Option<f64>,
}

/// CORS middleware options, MLServer's `CORSSettings`.
///
/// MLServer does not pass `expose_headers` to its middleware (a bug); it is
/// kept here so files round-trip, and a server may choose to honour it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CorsSettings {
    /// MLServer's `allow_origins` (`MLSERVER_ALLOW_ORIGINS`), empty by default: origins
    /// allowed to make cross-origin requests.
    pub allow_origins: Vec<String>,
    /// MLServer's `allow_origin_regex` (`MLSERVER_ALLOW_ORIGIN_REGEX`), unset by default:
    /// a regex of allowed origins.
    pub allow_origin_regex: Option<String>,
    /// MLServer's `allow_credentials` (`MLSERVER_ALLOW_CREDENTIALS`), false by default:
    /// whether cookies and auth headers are allowed.
    pub allow_credentials: bool,
    /// MLServer's `allow_methods` (`MLSERVER_ALLOW_METHODS`), `["GET"]` by default.
    pub allow_methods: Vec<String>,
    /// MLServer's `allow_headers` (`MLSERVER_ALLOW_HEADERS`), empty by default: request
    /// headers allowed beyond the simple ones.
    pub allow_headers: Vec<String>,
    /// MLServer's `expose_headers` (`MLSERVER_EXPOSE_HEADERS`), empty by default:
    /// response headers browsers may read.
    pub expose_headers: Vec<String>,
    /// Seconds browsers may cache a preflight answer.
    pub max_age: u64,
}

impl Default for CorsSettings {
    fn default() -> Self {
        CorsSettings {
            allow_origins: Vec::new(),
            allow_origin_regex: None,
            allow_credentials: false,
            allow_methods: vec!["GET".to_owned()],
            allow_headers: Vec::new(),
            expose_headers: Vec::new(),
            max_age: 600,
        }
    }
}

/// `$CWD/<name>`, as MLServer computes its folder defaults. Falls back to a
/// relative path if the working directory is gone.
fn cwd_join(name: &str) -> PathBuf {
    std::env::current_dir()
        .map(|d| d.join(name))
        .unwrap_or_else(|_| PathBuf::from(name))
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            debug: false,
            log_level: "INFO".to_owned(),
            access_log: None,
            strict_readiness: true,
            empty_registry_readiness: true,
            parallel_workers: 1,
            parallel_workers_defaulted: false,
            parallel_workers_timeout: 5,
            environments_dir: cwd_join(".envs"),
            model_repository_implementation: None,
            model_repository_root: PathBuf::from("."),
            model_repository_implementation_args: Map::new(),
            load_models_at_startup: true,
            server_name: "mlserver".to_owned(),
            server_version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: Vec::new(),
            host: "0.0.0.0".to_owned(),
            http_port: 8080,
            root_path: String::new(),
            grpc_port: 8081,
            grpc_max_message_length: None,
            cors_settings: None,
            metrics_endpoint: Some("/metrics".to_owned()),
            metrics_port: 8082,
            metrics_rest_server_prefix: "rest_server".to_owned(),
            metrics_dir: cwd_join(".metrics"),
            use_structured_logging: false,
            logging_settings: None,
            kafka_enabled: false,
            kafka_servers: "localhost:9092".to_owned(),
            kafka_topic_input: "mlserver-input".to_owned(),
            kafka_topic_output: "mlserver-output".to_owned(),
            tracing_server: None,
            cache_enabled: false,
            cache_size: 100,
            gzip_enabled: true,
            strict_inputs: false,
            max_connections: 4096,
            http_keep_alive_timeout: 5.0,
            http_header_timeout: 10.0,
            connection_handshake_timeout: 10.0,
            worker_busy_poll_us: 0,
            http_body_timeout: 60.0,
            http_body_min_rate: 65536,
            memory_budget: 0,
            http2_idle_timeout: 60.0,
            http2_keepalive_interval: 30.0,
            http2_keepalive_timeout: 10.0,
            grpc_max_concurrent_streams: 1024,
            max_decompression_ratio: 32.0,
            shutdown_timeout: 25.0,
            inference_timeout: None,
        }
    }
}

pub(crate) const SETTINGS_FIELDS: &[Field] = &[
    field("debug", Kind::Bool),
    field("log_level", Kind::Str),
    field("access_log", Kind::Bool),
    field("strict_readiness", Kind::Bool),
    field("empty_registry_readiness", Kind::Bool),
    field("parallel_workers", Kind::Int),
    field("parallel_workers_timeout", Kind::Int),
    field("environments_dir", Kind::Str),
    field("model_repository_implementation", Kind::Str),
    field("model_repository_root", Kind::Str),
    field("model_repository_implementation_args", Kind::Json),
    field("load_models_at_startup", Kind::Bool),
    field("server_name", Kind::Str),
    field("server_version", Kind::Str),
    field("extensions", Kind::Json),
    field("host", Kind::Str),
    field("http_port", Kind::Int),
    field("root_path", Kind::Str),
    field("grpc_port", Kind::Int),
    field("grpc_max_message_length", Kind::Int),
    field("cors_settings", Kind::Json),
    field("metrics_endpoint", Kind::Str),
    field("metrics_port", Kind::Int),
    field("metrics_rest_server_prefix", Kind::Str),
    field("metrics_dir", Kind::Str),
    field("use_structured_logging", Kind::Bool),
    field("logging_settings", Kind::StrOrJson),
    field("kafka_enabled", Kind::Bool),
    field("kafka_servers", Kind::Str),
    field("kafka_topic_input", Kind::Str),
    field("kafka_topic_output", Kind::Str),
    field("tracing_server", Kind::Str),
    field("cache_enabled", Kind::Bool),
    field("cache_size", Kind::Int),
    field("gzip_enabled", Kind::Bool),
    field("strict_inputs", Kind::Bool),
    field("max_connections", Kind::Int),
    field("http_keep_alive_timeout", Kind::Float),
    field("http_header_timeout", Kind::Float),
    field("connection_handshake_timeout", Kind::Float),
    field("worker_busy_poll_us", Kind::Int),
    field("http_body_timeout", Kind::Float),
    field("http_body_min_rate", Kind::Int),
    field("memory_budget", Kind::Int),
    field("http2_idle_timeout", Kind::Float),
    field("http2_keepalive_interval", Kind::Float),
    field("http2_keepalive_timeout", Kind::Float),
    field("grpc_max_concurrent_streams", Kind::Int),
    field("max_decompression_ratio", Kind::Float),
    field("shutdown_timeout", Kind::Float),
    field("inference_timeout", Kind::Float),
];

pub(crate) const CORS_FIELDS: &[Field] = &[
    field("allow_origins", Kind::Json),
    field("allow_origin_regex", Kind::Str),
    field("allow_credentials", Kind::Bool),
    field("allow_methods", Kind::Json),
    field("allow_headers", Kind::Json),
    field("expose_headers", Kind::Json),
    field("max_age", Kind::Int),
];

const SETTINGS: Section = Section {
    prefix: "MLSERVER_",
    scope: "",
    fields: SETTINGS_FIELDS,
    keep_unknown: false,
};
const CORS: Section = Section {
    prefix: "MLSERVER_",
    scope: "cors_settings.",
    fields: CORS_FIELDS,
    keep_unknown: false,
};

impl Settings {
    /// `log_level` as the fork reads it: trimmed, upper-cased, one of
    /// Python's level names; `None` when it is not one (INFO applies).
    pub fn log_level_name(&self) -> Option<&'static str> {
        let level = self.log_level.trim().to_ascii_uppercase();
        ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
            .into_iter()
            .find(|l| *l == level)
    }

    /// Whether requests are logged one line each.
    pub fn access_log_enabled(&self) -> bool {
        self.access_log.unwrap_or(self.debug)
    }

    /// One warning per MLServer setting given a value this server does not
    /// act on, naming it and saying what happens instead. `mlserver start`
    /// logs them once: a setting must either work or say that it does not.
    pub fn ignored(&self) -> Vec<String> {
        let mut out = Vec::new();
        // `model_repository_implementation` itself works where Python does
        // (the server says so when it does not).
        if self.model_repository_implementation.is_none()
            && !self.model_repository_implementation_args.is_empty()
        {
            out.push(
                "model_repository_implementation_args is ignored: there is no custom repository class"
                    .to_owned(),
            );
        }
        if self.log_level_name().is_none() {
            out.push(format!(
                "Unrecognised log_level '{}'; defaulting to 'INFO'",
                self.log_level
            ));
        }
        if self.kafka_enabled {
            out.push(format!(
                "kafka_enabled is ignored: the Kafka server is not implemented (topics {} / {} on {} are not consumed)",
                self.kafka_topic_input, self.kafka_topic_output, self.kafka_servers
            ));
        }
        out
    }
}

/// MLServer's `mlserver start FOLDER` settings step: `FOLDER/settings.json`
/// if it exists (topped up from the environment), else the environment
/// alone; then `model_repository_root` is forced to `folder`.
pub fn load_settings(folder: &Path, env: &EnvSource) -> Result<Settings, SettingsError> {
    let path = folder.join(SETTINGS_FILENAME);
    let mut settings = if path.is_file() {
        tracing::debug!("loading server settings from {}", path.display());
        Settings::from_file(&path, env)?
    } else {
        Settings::from_env(env)?
    };
    settings.model_repository_root = folder.to_path_buf();
    Ok(settings)
}

impl Settings {
    /// Settings from `MLSERVER_*` variables (and `.env`) over the defaults.
    pub fn from_env(env: &EnvSource) -> Result<Self, SettingsError> {
        Self::build(env, None)
    }

    /// Settings from one JSON file, topped up from the environment. Unlike
    /// [`load_settings`], `model_repository_root` is left as found.
    pub fn from_file(path: &Path, env: &EnvSource) -> Result<Self, SettingsError> {
        let (text, values) = layer::read_object(path)?;
        Self::build(env, Some((path, &text, values)))
    }

    fn build(
        env: &EnvSource,
        file: Option<(&Path, &str, Map<String, Value>)>,
    ) -> Result<Self, SettingsError> {
        let (path, text) = match &file {
            Some((p, t, _)) => (Some(*p), Some(*t)),
            None => (None, None),
        };
        let explicit = file.map(|(path, _, values)| {
            layer::warn_unknown_keys(&values, &SETTINGS, path);
            if let Some(Value::Object(cors)) = values.get("cors_settings") {
                layer::warn_unknown_keys(cors, &CORS, path);
            }
            Explicit { values, path }
        });
        let (mut merged, _) = layer::layer::<Settings>(env, &SETTINGS, explicit)?;
        // A CORSSettings object (from the file or MLSERVER_CORS_SETTINGS) is
        // itself topped up from MLSERVER_ALLOW_ORIGINS etc.; those variables
        // alone do not turn CORS on, as in MLServer.
        match merged.remove("cors_settings") {
            Some(Value::Object(cors)) => {
                let here = path.unwrap_or(Path::new("MLSERVER_CORS_SETTINGS"));
                let explicit = Explicit {
                    values: cors,
                    path: here,
                };
                let (cors, _) = layer::layer::<CorsSettings>(env, &CORS, Some(explicit))?;
                merged.insert("cors_settings".to_owned(), Value::Object(cors));
            }
            // `null` (or a wrong type, which serde reports below).
            Some(other) => {
                merged.insert("cors_settings".to_owned(), other);
            }
            None => {}
        }
        let parallel_workers_defaulted = !merged.contains_key("parallel_workers");
        let mut settings: Settings = layer::finish(merged, path.zip(text), SETTINGS.prefix)?;
        settings.parallel_workers_defaulted = parallel_workers_defaulted;
        Ok(settings)
    }

    /// Threads that compute Rust models' predictions: `parallel_workers`
    /// when it was given, else one per CPU this process may use. MLServer's
    /// default, one worker process, exists to keep models x workers copies
    /// in memory down; these threads share the one copy of each model, and
    /// one of them would leave the other CPUs idle. (Python models keep
    /// `parallel_workers` worker processes, 1 by default, as MLServer.)
    pub fn inference_threads(&self) -> usize {
        if !self.parallel_workers_defaulted {
            return self.parallel_workers;
        }
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inference_threads_follow_parallel_workers_only_when_it_is_given() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let dir = tempfile::tempdir().unwrap();
        let env = EnvSource::empty();
        let unset = load_settings(dir.path(), &env).unwrap();
        assert_eq!(
            (unset.parallel_workers, unset.inference_threads()),
            (1, cpus)
        );
        for (file, expected) in [
            (r#"{"parallel_workers": 1}"#, 1),
            (r#"{"parallel_workers": 3}"#, 3),
        ] {
            std::fs::write(dir.path().join("settings.json"), file).unwrap();
            let given = load_settings(dir.path(), &env).unwrap();
            assert_eq!(given.inference_threads(), expected, "{file}");
        }
        std::fs::remove_file(dir.path().join("settings.json")).unwrap();
        let env = EnvSource::empty().with_var("MLSERVER_PARALLEL_WORKERS", "1");
        assert_eq!(
            load_settings(dir.path(), &env).unwrap().inference_threads(),
            1
        );
    }

    #[test]
    fn settings_we_do_not_act_on_are_named() {
        assert!(Settings::default().ignored().is_empty());
        let s = Settings {
            kafka_enabled: true,
            model_repository_implementation_args: Map::from_iter([("files".into(), Value::Null)]),
            ..Settings::default()
        };
        let warnings = s.ignored();
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        for name in ["kafka_enabled", "model_repository_implementation_args"] {
            assert!(
                warnings.iter().any(|w| w.starts_with(name)),
                "{name}: {warnings:?}"
            );
        }
    }
    use serde_json::json;

    fn write(dir: &Path, text: &str) {
        std::fs::write(dir.join(SETTINGS_FILENAME), text).unwrap();
    }

    #[test]
    fn defaults_match_mlserver() {
        let s = Settings::default();
        assert!(!s.debug);
        assert_eq!(s.parallel_workers, 1);
        assert_eq!(s.parallel_workers_timeout, 5);
        assert_eq!(
            s.environments_dir,
            std::env::current_dir().unwrap().join(".envs")
        );
        assert_eq!(
            s.metrics_dir,
            std::env::current_dir().unwrap().join(".metrics")
        );
        assert_eq!(s.model_repository_implementation, None);
        assert_eq!(s.model_repository_root, PathBuf::from("."));
        assert!(s.model_repository_implementation_args.is_empty());
        assert!(s.load_models_at_startup);
        assert_eq!(s.server_name, "mlserver");
        assert_eq!(s.server_version, env!("CARGO_PKG_VERSION"));
        assert!(s.extensions.is_empty());
        assert_eq!(
            (s.host.as_str(), s.http_port, s.grpc_port, s.metrics_port),
            ("0.0.0.0", 8080, 8081, 8082)
        );
        assert_eq!(s.root_path, "");
        assert_eq!(s.grpc_max_message_length, None);
        assert_eq!(s.cors_settings, None);
        assert_eq!(s.metrics_endpoint.as_deref(), Some("/metrics"));
        assert_eq!(s.metrics_rest_server_prefix, "rest_server");
        assert!(!s.use_structured_logging);
        assert_eq!(s.logging_settings, None);
        assert!(!s.kafka_enabled);
        assert_eq!(s.kafka_servers, "localhost:9092");
        assert_eq!(s.kafka_topic_input, "mlserver-input");
        assert_eq!(s.kafka_topic_output, "mlserver-output");
        assert_eq!(s.tracing_server, None);
        assert!(!s.cache_enabled);
        assert_eq!(s.cache_size, 100);
        assert!(s.gzip_enabled);

        let c = CorsSettings::default();
        assert_eq!(c.allow_methods, vec!["GET"]);
        assert_eq!(c.max_age, 600);
        assert!(
            c.allow_origins.is_empty() && !c.allow_credentials && c.allow_origin_regex.is_none()
        );

        // An empty file gives the same as Default.
        let parsed: Settings = serde_json::from_str("{}").unwrap();
        assert_eq!(parsed, s);
        // Every field is covered by the env/unknown-key table.
        let names: Vec<String> = serde_json::to_value(&s)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(names.len(), SETTINGS_FIELDS.len());
        assert!(names
            .iter()
            .all(|n| SETTINGS_FIELDS.iter().any(|f| f.name == n)));
    }

    #[test]
    fn metrics_endpoint_null_differs_from_absent() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), r#"{"metrics_endpoint": null}"#);
        let s = load_settings(dir.path(), &EnvSource::empty()).unwrap();
        assert_eq!(s.metrics_endpoint, None);
        write(dir.path(), r#"{}"#);
        let s = load_settings(dir.path(), &EnvSource::empty()).unwrap();
        assert_eq!(s.metrics_endpoint.as_deref(), Some("/metrics"));
        // null also wins over the environment.
        write(dir.path(), r#"{"metrics_endpoint": null}"#);
        let env = EnvSource::empty().with_var("MLSERVER_METRICS_ENDPOINT", "/m");
        assert_eq!(
            load_settings(dir.path(), &env).unwrap().metrics_endpoint,
            None
        );
        // Round trip keeps the null.
        let v = serde_json::to_value(Settings {
            metrics_endpoint: None,
            ..Settings::default()
        })
        .unwrap();
        assert_eq!(v["metrics_endpoint"], Value::Null);
        assert_eq!(
            serde_json::from_value::<Settings>(v)
                .unwrap()
                .metrics_endpoint,
            None
        );
    }

    #[test]
    fn env_values_are_parsed_by_type() {
        let env = EnvSource::empty()
            .with_var("MLSERVER_DEBUG", "Yes")
            .with_var("MLSERVER_HTTP_PORT", "9000")
            .with_var("MLSERVER_EXTENSIONS", r#"["a","b"]"#)
            .with_var(
                "MLSERVER_MODEL_REPOSITORY_IMPLEMENTATION_ARGS",
                r#"{"k":1}"#,
            )
            .with_var("MLSERVER_SERVER_NAME", "[not json]")
            .with_var("MLSERVER_GRPC_MAX_MESSAGE_LENGTH", "1048576")
            .with_var("MLSERVER_LOGGING_SETTINGS", "logging.ini")
            .with_var("MLSERVER_CORS_SETTINGS", r#"{"allow_origins":["*"]}"#)
            .with_var("MLSERVER_ALLOW_METHODS", r#"["*"]"#);
        let s = Settings::from_env(&env).unwrap();
        assert!(s.debug);
        assert_eq!(s.http_port, 9000);
        assert_eq!(s.extensions, vec!["a", "b"]);
        assert_eq!(s.model_repository_implementation_args["k"], json!(1));
        assert_eq!(s.server_name, "[not json]");
        assert_eq!(s.grpc_max_message_length, Some(1_048_576));
        assert_eq!(s.logging_settings, Some(json!("logging.ini")));
        let cors = s.cors_settings.unwrap();
        assert_eq!(cors.allow_origins, vec!["*"]);
        assert_eq!(cors.allow_methods, vec!["*"]);
        assert_eq!(cors.max_age, 600);

        let env = EnvSource::empty().with_var("MLSERVER_LOGGING_SETTINGS", r#"{"version":1}"#);
        assert_eq!(
            Settings::from_env(&env).unwrap().logging_settings,
            Some(json!({"version": 1}))
        );
    }

    #[test]
    fn cors_field_variables_alone_do_not_enable_cors() {
        let env = EnvSource::empty().with_var("MLSERVER_ALLOW_ORIGINS", r#"["*"]"#);
        assert_eq!(Settings::from_env(&env).unwrap().cors_settings, None);
    }

    #[test]
    fn bad_env_values_are_errors_naming_the_variable() {
        for (var, value) in [
            ("MLSERVER_HTTP_PORT", "abc"),
            ("MLSERVER_HTTP_PORT", "70000"),
            ("MLSERVER_EXTENSIONS", "a,b"),
            ("MLSERVER_DEBUG", "perhaps"),
        ] {
            let env = EnvSource::empty().with_var(var, value);
            match Settings::from_env(&env) {
                Err(SettingsError::Env { var: v, .. }) => assert_eq!(v, var),
                other => panic!("{var}={value}: {other:?}"),
            }
        }
    }

    #[test]
    fn file_beats_env_beats_dotenv() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            r#"{"http_port": 7000, "cors_settings": {"allow_origins": ["a"]}}"#,
        );
        let env = EnvSource::empty()
            .with_var("MLSERVER_HTTP_PORT", "9000")
            .with_var("MLSERVER_GRPC_PORT", "9001")
            .with_var("MLSERVER_ALLOW_ORIGINS", r#"["env"]"#)
            .with_var("MLSERVER_MAX_AGE", "5")
            .with_dotenv("MLSERVER_GRPC_PORT=1\nMLSERVER_METRICS_PORT=2\n");
        let s = load_settings(dir.path(), &env).unwrap();
        assert_eq!(s.http_port, 7000);
        assert_eq!(s.grpc_port, 9001);
        assert_eq!(s.metrics_port, 2);
        let cors = s.cors_settings.unwrap();
        assert_eq!(cors.allow_origins, vec!["a"]);
        assert_eq!(cors.max_age, 5);
    }

    #[test]
    fn load_settings_forces_root_and_works_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let env = EnvSource::empty().with_var("MLSERVER_MODEL_REPOSITORY_ROOT", "/elsewhere");
        let s = load_settings(dir.path(), &env).unwrap();
        assert_eq!(s.model_repository_root, dir.path());
        write(
            dir.path(),
            r#"{"model_repository_root": "/x", "debug": "true", "http_port": "8000"}"#,
        );
        let s = load_settings(dir.path(), &env).unwrap();
        assert_eq!(s.model_repository_root, dir.path());
        assert!(s.debug);
        assert_eq!(s.http_port, 8000);
    }

    #[test]
    fn file_errors_carry_path_and_serde_message() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "{ \"http_port\": ");
        match load_settings(dir.path(), &EnvSource::empty()) {
            Err(e @ SettingsError::Invalid { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("settings.json") && msg.contains("line"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
        write(dir.path(), "{\n  \"extensions\": \"x\"\n}");
        match load_settings(dir.path(), &EnvSource::empty()) {
            Err(e @ SettingsError::Invalid { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("invalid type") && msg.contains("line 2"),
                    "{msg}"
                );
            }
            other => panic!("{other:?}"),
        }
        write(dir.path(), "[]");
        assert!(matches!(
            load_settings(dir.path(), &EnvSource::empty()),
            Err(SettingsError::Invalid { .. })
        ));
        write(dir.path(), r#"{"http_port": "eighty"}"#);
        assert!(matches!(
            load_settings(dir.path(), &EnvSource::empty()),
            Err(SettingsError::Invalid { .. })
        ));
    }

    #[test]
    fn unknown_keys_are_found_at_both_levels() {
        let v = json!({"http_port": 1, "htp_port": 2, "cors_settings": {"allow_origin": []}});
        let obj = v.as_object().unwrap();
        assert_eq!(layer::unknown_keys(obj, SETTINGS_FIELDS), vec!["htp_port"]);
        let cors = obj["cors_settings"].as_object().unwrap();
        assert_eq!(layer::unknown_keys(cors, CORS_FIELDS), vec!["allow_origin"]);
    }

    #[test]
    fn explicit_null_cors_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), r#"{"cors_settings": null}"#);
        let env =
            EnvSource::empty().with_var("MLSERVER_CORS_SETTINGS", r#"{"allow_origins":["*"]}"#);
        assert_eq!(load_settings(dir.path(), &env).unwrap().cors_settings, None);
    }
}
