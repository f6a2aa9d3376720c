//! `mlserver infer`: MLServer 1.7.1's batch inference client.
//!
//! It reads a file of V2 inference requests, one JSON object per line,
//! sends them to a V2 server (`--transport rest`, or `grpc`, which MLServer
//! 1.7.1 refuses), `--workers` at a time and `--batch-size` lines merged per
//! call, and writes one line per request to the output file, in the order
//! the calls finish, in MLServer's format:
//!
//! - a response: `{"model_name":…,"model_version":…,"id":…,"parameters":{"batch_index":N,"inference_id":…},"outputs":[…]}`
//!   (pydantic's compact JSON). `id` is the line's own or a new UUID,
//!   `batch_index` the line's number (from 0), `inference_id` the id of the
//!   call that carried it (the line's id when `--batch-size` is 1, else a
//!   UUID per merged call). Outputs are re-encoded as MLServer's
//!   `NumpyCodec` does: 1-D shapes get a trailing `1` (`[2]` is `[2,1]`),
//!   FP32 values are written as the doubles NumPy widens them to
//!   (`6.599999904632568`), NaN and infinities as `null`, and an output's
//!   `parameters` are the server's without `binary_data_size`, or
//!   `{"content_type":"np"}` when the server sent none;
//! - a failure: `{"parameters": {"batch_index": N}, "error": {"status": "preprocessing error", "msg": …}}`
//!   (Python's `json.dumps`): `msg` is pydantic's error list for a line that
//!   is JSON but not a valid request, or the server's error message (the
//!   REST body's `error`, the gRPC status message) once every retry failed.
//!
//! As in MLServer, a batch that cannot be read at all (a line that is not
//! JSON, data NumPy cannot read as the datatype, inputs that do not
//! concatenate) or whose response cannot be split back is logged and leaves
//! no line in the output. Every quirk of MLServer's output is kept so that
//! files from either tool compare equal; the few deliberate differences,
//! each where MLServer hangs, crashes or has no support, are in this crate's
//! README.
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     infer: mlserver_infer::InferArgs,
//! }
//!
//! let cli = Cli::parse_from(["infer", "-m", "sum-model", "-i", "in.jsonl", "-o", "out.jsonl"]);
//! mlserver_infer::init_logging(&cli.infer);
//! let summary = mlserver_infer::run(cli.infer).expect("batch ran");
//! println!("{} lines written", summary.written);
//! ```

mod batch;
mod client;
mod json;
mod ndarray;
mod pipeline;
mod validate;

use std::path::PathBuf;
use std::time::Duration;

use clap::ArgAction;

/// The transports `--transport` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// The V2 REST API (`POST /v2/models/{model}/infer`), with the binary
    /// tensor extension when `--binary-data` is given.
    Rest,
    /// The V2 gRPC API (`inference.GRPCInferenceService/ModelInfer`), with
    /// `raw_input_contents` when `--binary-data` is given. MLServer 1.7.1
    /// refuses this transport; here it works, with the same output format.
    Grpc,
}

/// Environment variable read for `--request-headers` when none is given on
/// the command line: headers separated by whitespace (`"A:1 B:2"`), as
/// MLServer splits its value.
pub const REQUEST_HEADERS_ENV: &str = "MLSERVER_INFER_REQUEST_HEADERS";

/// Environment variable read for `--verbose` when neither `-v` nor `-vv` is
/// given: a boolean (`1`, `true`, `yes`, `on` or `0`, `false`, `no`, `off`).
pub const VERBOSE_ENV: &str = "MLSERVER_INFER_VERBOSE";

/// The options of `mlserver infer`: MLServer 1.7.1's, with the same names,
/// short flags, defaults and `MLSERVER_INFER_*` environment variables.
///
/// Flags read from the environment take `1`/`0`, `true`/`false`,
/// `yes`/`no`, `on`/`off` (any case), as click reads them.
#[derive(Debug, Clone, clap::Args)]
pub struct InferArgs {
    /// The server's address: host:port, optionally followed by a path
    /// prefix; no http:// or https:// (see --use-ssl). For --transport grpc,
    /// the gRPC port.
    #[arg(short = 'u', long, default_value = "localhost:8080", env = "MLSERVER_INFER_URL",
          value_parser = parse::url)]
    pub url: String,

    /// The model every request is sent to.
    #[arg(short = 'm', long, env = "MLSERVER_INFER_MODEL_NAME", value_parser = parse::required)]
    pub model_name: String,

    /// The input file: one V2 inference request (JSON) per line.
    #[arg(short = 'i', long, env = "MLSERVER_INFER_INPUT_DATA_PATH", value_parser = parse::path)]
    pub input_data_path: PathBuf,

    /// The output file (created or truncated): one response or error per
    /// input line, in the order the requests complete.
    #[arg(short = 'o', long, env = "MLSERVER_INFER_OUTPUT_DATA_PATH", value_parser = parse::path)]
    pub output_data_path: PathBuf,

    /// How many requests are in flight at once (each worker sends one batch
    /// at a time). At least 1: MLServer waits forever with 0.
    #[arg(short = 'w', long, default_value_t = 10, env = "MLSERVER_INFER_WORKERS",
          value_parser = parse::workers, allow_negative_numbers = true)]
    pub workers: i64,

    /// How many times a batch is sent before its requests are reported as
    /// failed, one second apart. Every failure is retried, the server's
    /// refusals too. With 0 nothing is sent and, as in MLServer, the
    /// batch's lines are left out of the output.
    #[arg(short = 'r', long, default_value_t = 3, env = "MLSERVER_INFER_RETRIES",
          value_parser = parse::retries, allow_negative_numbers = true)]
    pub retries: i64,

    /// How many input lines are merged into one request (their inputs
    /// concatenated along the first dimension, the outputs split back). 0
    /// or less merges the whole file, as MLServer does.
    #[arg(short = 's', long, default_value_t = 1, env = "MLSERVER_INFER_BATCH_SIZE",
          value_parser = parse::batch_size, allow_negative_numbers = true)]
    pub batch_size: i64,

    /// Send the input tensors as binary data: the binary tensor extension
    /// over REST, raw_input_contents over gRPC.
    #[arg(short = 'b', long, env = "MLSERVER_INFER_BINARY_DATA",
          action = ArgAction::SetTrue, value_parser = parse::flag)]
    pub binary_data: bool,

    /// Verbose mode: debug logs (each request sent and received). `-vv` is
    /// --extra-verbose. Also MLSERVER_INFER_VERBOSE (a boolean).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,

    /// Extra verbose mode: verbose, plus every request and response body
    /// and the lines of batches that could not be processed.
    #[arg(long, env = "MLSERVER_INFER_EXTRA_VERBOSE",
          action = ArgAction::SetTrue, value_parser = parse::flag)]
    pub extra_verbose: bool,

    /// rest or grpc.
    #[arg(short = 't', long, default_value = "rest", env = "MLSERVER_INFER_TRANSPORT",
          value_parser = parse::transport)]
    pub transport: Transport,

    /// A header sent with every request, as 'Name: value' (exactly one ':';
    /// others are logged and ignored); repeat for more. When none is given,
    /// MLSERVER_INFER_REQUEST_HEADERS is read: 'Name1:value1 Name2:value2',
    /// separated by whitespace.
    #[arg(short = 'H', long = "request-headers", value_name = "HEADER")]
    pub request_headers: Vec<String>,

    /// Timeout of each request in seconds, from connecting to the last byte
    /// of the response; 0 or less for none.
    #[arg(long, default_value_t = 60, env = "MLSERVER_INFER_CONNECTION_TIMEOUT",
          value_parser = parse::timeout, allow_negative_numbers = true)]
    pub timeout: i64,

    /// Minimum time between the start of one request and the next made by
    /// the same worker, in seconds.
    #[arg(long, default_value_t = 0.0, env = "MLSERVER_INFER_BATCH_INTERVAL",
          value_parser = parse::seconds, allow_negative_numbers = true)]
    pub batch_interval: f64,

    /// Maximum random time (in seconds) added to --batch-interval.
    #[arg(long, default_value_t = 0.0, env = "MLSERVER_INFER_BATCH_JITTER",
          value_parser = parse::seconds, allow_negative_numbers = true)]
    pub batch_jitter: f64,

    /// Connect with TLS (https, or gRPC over TLS), checking the server's
    /// certificate against the system's trusted roots.
    #[arg(long, env = "MLSERVER_INFER_USE_SSL",
          action = ArgAction::SetTrue, value_parser = parse::flag)]
    pub use_ssl: bool,

    /// With --use-ssl: accept any certificate (no verification). Use with care.
    #[arg(long, env = "MLSERVER_INFER_INSECURE",
          action = ArgAction::SetTrue, value_parser = parse::flag)]
    pub insecure: bool,
}

impl InferArgs {
    /// The options with MLServer's defaults for everything but the three
    /// that have none.
    pub fn new(
        model_name: impl Into<String>,
        input_data_path: impl Into<PathBuf>,
        output_data_path: impl Into<PathBuf>,
    ) -> Self {
        InferArgs {
            url: "localhost:8080".into(),
            model_name: model_name.into(),
            input_data_path: input_data_path.into(),
            output_data_path: output_data_path.into(),
            workers: 10,
            retries: 3,
            batch_size: 1,
            binary_data: false,
            verbose: 0,
            extra_verbose: false,
            transport: Transport::Rest,
            request_headers: Vec::new(),
            timeout: 60,
            batch_interval: 0.0,
            batch_jitter: 0.0,
            use_ssl: false,
            insecure: false,
        }
    }

    /// Whether debug logs are on (`-v`, `-vv`, --extra-verbose or
    /// MLSERVER_INFER_VERBOSE).
    pub fn is_verbose(&self) -> Result<bool, BatchError> {
        if self.verbose > 0 || self.is_extra_verbose() {
            return Ok(true);
        }
        env_bool(VERBOSE_ENV).map(|v| v.unwrap_or(false))
    }

    /// Whether extra verbose mode is on (`-vv` or --extra-verbose).
    pub fn is_extra_verbose(&self) -> bool {
        self.extra_verbose || self.verbose > 1
    }

    /// The request headers as given: the options, or else the whitespace
    /// separated entries of MLSERVER_INFER_REQUEST_HEADERS.
    pub fn header_entries(&self) -> Vec<String> {
        if !self.request_headers.is_empty() {
            return self.request_headers.clone();
        }
        std::env::var(REQUEST_HEADERS_ENV)
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// A boolean environment variable read as click reads flags; unset or
/// empty is `None`.
fn env_bool(name: &str) -> Result<Option<bool>, BatchError> {
    let Ok(value) = std::env::var(name) else {
        return Ok(None);
    };
    if value.is_empty() {
        return Ok(None);
    }
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" | "on" => Ok(Some(true)),
        "0" | "false" | "f" | "no" | "n" | "off" => Ok(Some(false)),
        _ => Err(BatchError::InvalidEnv {
            name: name.into(),
            value,
        }),
    }
}

/// Value parsers that read an empty environment variable as unset (the
/// option's default), as click does; clap would take the empty string as
/// the value.
mod parse {
    use std::path::PathBuf;

    use super::Transport;

    fn int(s: &str, default: i64) -> Result<i64, String> {
        if s.is_empty() {
            return Ok(default);
        }
        s.trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a valid integer"))
    }

    pub(super) fn workers(s: &str) -> Result<i64, String> {
        match int(s, 10)? {
            // MLServer starts no consumer and never finishes.
            n if n < 1 => Err(format!("{n} is not allowed: at least one worker is needed")),
            n => Ok(n),
        }
    }

    pub(super) fn retries(s: &str) -> Result<i64, String> {
        int(s, 3)
    }

    pub(super) fn batch_size(s: &str) -> Result<i64, String> {
        int(s, 1)
    }

    pub(super) fn timeout(s: &str) -> Result<i64, String> {
        int(s, 60)
    }

    pub(super) fn seconds(s: &str) -> Result<f64, String> {
        if s.is_empty() {
            return Ok(0.0);
        }
        s.trim()
            .parse()
            .map_err(|_| format!("'{s}' is not a valid float"))
    }

    /// click's boolean literals, any case.
    pub(super) fn flag(s: &str) -> Result<bool, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "0" | "false" | "f" | "no" | "n" | "off" => Ok(false),
            "1" | "true" | "t" | "yes" | "y" | "on" => Ok(true),
            _ => Err(format!("'{s}' is not a valid boolean")),
        }
    }

    pub(super) fn url(s: &str) -> Result<String, String> {
        Ok(if s.is_empty() { "localhost:8080" } else { s }.to_string())
    }

    pub(super) fn required(s: &str) -> Result<String, String> {
        if s.is_empty() {
            return Err("a non-empty value is required".into());
        }
        Ok(s.to_string())
    }

    pub(super) fn path(s: &str) -> Result<PathBuf, String> {
        required(s).map(PathBuf::from)
    }

    pub(super) fn transport(s: &str) -> Result<Transport, String> {
        match s {
            "" | "rest" => Ok(Transport::Rest),
            "grpc" => Ok(Transport::Grpc),
            other => Err(format!("'{other}' is not one of 'rest', 'grpc'")),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Lines written to the output file (MLServer's "processed instances").
    pub written: usize,
    /// Of those, inference responses.
    pub responses: usize,
    /// Of those, error entries (invalid lines and failed requests).
    pub errors: usize,
    /// Input lines that left no line in the output: their batch could not
    /// be processed (see the log), or they had no inputs, or a later line
    /// of the same batch had the same id.
    pub dropped: usize,
    /// Input lines read.
    pub lines: usize,
    /// Wall-clock time of the run.
    pub elapsed: Duration,
}

/// Why a run could not start or finish. A request that fails is not an
/// error of the run: it becomes an error line in the output file. The
/// messages leave out their `source()`, which error reporters (anyhow's
/// `{:#}`, as the CLI prints) add.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// `--url` starts with a scheme; tritonclient refuses it too.
    #[error("url should not include the scheme: {0} (use host:port, and --use-ssl for https)")]
    UrlWithScheme(String),
    /// The output file cannot be created or truncated.
    #[error("Provided output file path '{path}' is not writable")]
    OutputNotWritable {
        /// The path given.
        path: PathBuf,
        /// Why it could not be opened.
        source: std::io::Error,
    },
    /// Writing the output file failed.
    #[error("writing {path}")]
    Output {
        /// The output file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The input file cannot be opened or read.
    #[error("reading {path}")]
    Input {
        /// The input file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// An option's value cannot be used.
    #[error("invalid value for {option}: {reason}")]
    InvalidOption {
        /// The option, e.g. `--workers`.
        option: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A boolean environment variable holds something else.
    #[error("{name}={value:?} is not a valid boolean")]
    InvalidEnv {
        /// The variable.
        name: String,
        /// Its value.
        value: String,
    },
    /// The HTTP or gRPC client could not be built (e.g. no TLS roots).
    #[error("could not set up the {transport} client: {reason}")]
    Client {
        /// `rest` or `grpc`.
        transport: &'static str,
        /// Why.
        reason: String,
    },
    /// The async runtime could not start.
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs the batch on a runtime of its own and waits for it: the entry point
/// of `mlserver infer`. Inside an async context, use [`run_async`].
pub fn run(args: InferArgs) -> Result<Summary, BatchError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BatchError::Runtime)?
        .block_on(run_async(args))
}

/// Runs the batch on the current Tokio runtime (which needs its I/O and
/// time drivers).
pub async fn run_async(args: InferArgs) -> Result<Summary, BatchError> {
    pipeline::run(args).await
}

/// Sets up logging for a run (the `mlserver infer` command line's): logs go
/// to stdout, as MLServer's do, at INFO (DEBUG with `-v`); `RUST_LOG`
/// overrides. Log lines never break the progress bar (on stderr). Does
/// nothing if a global subscriber is already set.
pub fn init_logging(args: &InferArgs) {
    pipeline::init_logging(args.is_verbose().unwrap_or(false));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::sync::Mutex;

    /// `mlserver infer`'s arguments, as the CLI flattens them.
    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: InferArgs,
    }

    /// The tests that set `MLSERVER_INFER_*` run one at a time.
    static ENV: Mutex<()> = Mutex::new(());

    fn parse(argv: &[&str]) -> Result<InferArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("infer").chain(argv.iter().copied())).map(|c| c.args)
    }

    const ALL_ENV: [&str; 17] = [
        "MLSERVER_INFER_URL",
        "MLSERVER_INFER_MODEL_NAME",
        "MLSERVER_INFER_INPUT_DATA_PATH",
        "MLSERVER_INFER_OUTPUT_DATA_PATH",
        "MLSERVER_INFER_WORKERS",
        "MLSERVER_INFER_RETRIES",
        "MLSERVER_INFER_BATCH_SIZE",
        "MLSERVER_INFER_BINARY_DATA",
        "MLSERVER_INFER_VERBOSE",
        "MLSERVER_INFER_EXTRA_VERBOSE",
        "MLSERVER_INFER_TRANSPORT",
        "MLSERVER_INFER_REQUEST_HEADERS",
        "MLSERVER_INFER_CONNECTION_TIMEOUT",
        "MLSERVER_INFER_BATCH_INTERVAL",
        "MLSERVER_INFER_BATCH_JITTER",
        "MLSERVER_INFER_USE_SSL",
        "MLSERVER_INFER_INSECURE",
    ];

    fn with_env<T>(vars: &[(&str, &str)], f: impl FnOnce() -> T) -> T {
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        for k in ALL_ENV {
            std::env::remove_var(k);
        }
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let out = f();
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        out
    }

    #[test]
    fn defaults_are_mlservers() {
        let a = with_env(&[], || {
            parse(&["-m", "m", "-i", "in", "-o", "out"]).unwrap()
        });
        assert_eq!(a.url, "localhost:8080");
        assert_eq!(
            (a.workers, a.retries, a.batch_size, a.timeout),
            (10, 3, 1, 60)
        );
        assert_eq!((a.batch_interval, a.batch_jitter), (0.0, 0.0));
        assert_eq!(a.transport, Transport::Rest);
        assert!(!a.binary_data && !a.use_ssl && !a.insecure && !a.extra_verbose);
        assert_eq!(a.verbose, 0);
        assert!(a.request_headers.is_empty());
        // InferArgs::new gives the same.
        let n = InferArgs::new("m", "in", "out");
        assert_eq!(format!("{n:?}"), format!("{a:?}"));
    }

    #[test]
    fn model_input_and_output_are_required() {
        with_env(&[], || {
            for argv in [
                &["-i", "in", "-o", "out"][..],
                &["-m", "m", "-o", "out"],
                &["-m", "m", "-i", "in"],
            ] {
                assert!(parse(argv).is_err(), "{argv:?}");
            }
        });
    }

    #[test]
    fn short_and_long_flags() {
        let a = with_env(&[], || {
            parse(&[
                "-u",
                "h:1",
                "-m",
                "m",
                "-i",
                "in",
                "-o",
                "out",
                "-w",
                "4",
                "-r",
                "0",
                "-s",
                "-1",
                "-b",
                "-t",
                "grpc",
                "-H",
                "A: 1",
                "-H",
                "B:2",
                "--timeout",
                "5",
                "--batch-interval",
                "0.5",
                "--batch-jitter",
                "-1",
                "--use-ssl",
                "--insecure",
                "-v",
            ])
            .unwrap()
        });
        assert_eq!(a.url, "h:1");
        assert_eq!(
            (a.workers, a.retries, a.batch_size, a.timeout),
            (4, 0, -1, 5)
        );
        assert!(a.binary_data && a.use_ssl && a.insecure);
        assert_eq!(a.transport, Transport::Grpc);
        assert_eq!(a.request_headers, vec!["A: 1", "B:2"]);
        assert_eq!((a.batch_interval, a.batch_jitter), (0.5, -1.0));
        assert!(a.is_verbose().unwrap() && !a.is_extra_verbose());
        let long = with_env(&[], || {
            parse(&[
                "--url",
                "h:2",
                "--model-name",
                "m",
                "--input-data-path",
                "in",
                "--output-data-path",
                "out",
                "--workers",
                "2",
                "--retries",
                "1",
                "--batch-size",
                "3",
                "--binary-data",
                "--transport",
                "rest",
                "--request-headers",
                "X: y",
                "--verbose",
            ])
            .unwrap()
        });
        assert_eq!((long.workers, long.retries, long.batch_size), (2, 1, 3));
        assert!(long.binary_data && long.verbose == 1);
    }

    #[test]
    fn double_v_is_extra_verbose() {
        with_env(&[], || {
            let a = parse(&["-m", "m", "-i", "in", "-o", "out", "-vv"]).unwrap();
            assert!(a.is_extra_verbose() && a.is_verbose().unwrap());
            let a = parse(&["-m", "m", "-i", "in", "-o", "out", "--extra-verbose"]).unwrap();
            assert!(a.is_extra_verbose() && a.is_verbose().unwrap());
        });
    }

    #[test]
    fn values_are_checked_as_click_checks_them() {
        with_env(&[], || {
            let base = ["-m", "m", "-i", "in", "-o", "out"];
            for extra in [
                &["--timeout", "1.5"][..],
                &["-w", "x"],
                &["-t", "http"],
                &["-t", "REST"],
                &["--batch-interval", "soon"],
                // MLServer never finishes with no worker.
                &["-w", "0"],
                &["-w", "-2"],
            ] {
                let argv: Vec<&str> = base.iter().chain(extra).copied().collect();
                assert!(parse(&argv).is_err(), "{extra:?}");
            }
        });
    }

    #[test]
    fn every_option_reads_its_environment_variable() {
        let a = with_env(
            &[
                ("MLSERVER_INFER_URL", "e:9"),
                ("MLSERVER_INFER_MODEL_NAME", "em"),
                ("MLSERVER_INFER_INPUT_DATA_PATH", "ein"),
                ("MLSERVER_INFER_OUTPUT_DATA_PATH", "eout"),
                ("MLSERVER_INFER_WORKERS", "3"),
                ("MLSERVER_INFER_RETRIES", "7"),
                ("MLSERVER_INFER_BATCH_SIZE", "5"),
                ("MLSERVER_INFER_BINARY_DATA", "yes"),
                ("MLSERVER_INFER_VERBOSE", "1"),
                ("MLSERVER_INFER_TRANSPORT", "grpc"),
                ("MLSERVER_INFER_REQUEST_HEADERS", "A:1 B:2"),
                ("MLSERVER_INFER_CONNECTION_TIMEOUT", "9"),
                ("MLSERVER_INFER_BATCH_INTERVAL", "0.25"),
                ("MLSERVER_INFER_BATCH_JITTER", "2"),
                ("MLSERVER_INFER_USE_SSL", "True"),
                ("MLSERVER_INFER_INSECURE", "on"),
            ],
            || {
                let a = parse(&[]).unwrap();
                // Read while the variables are set.
                (a.clone(), a.header_entries(), a.is_verbose().unwrap())
            },
        );
        let (a, headers, verbose) = a;
        assert_eq!(a.url, "e:9");
        assert_eq!(a.model_name, "em");
        assert_eq!(a.input_data_path, PathBuf::from("ein"));
        assert_eq!(a.output_data_path, PathBuf::from("eout"));
        assert_eq!(
            (a.workers, a.retries, a.batch_size, a.timeout),
            (3, 7, 5, 9)
        );
        assert!(a.binary_data && a.use_ssl && a.insecure);
        assert!(verbose && !a.is_extra_verbose());
        assert_eq!(a.transport, Transport::Grpc);
        // Split on whitespace, as MLServer splits the variable.
        assert_eq!(headers, vec!["A:1", "B:2"]);
        assert_eq!((a.batch_interval, a.batch_jitter), (0.25, 2.0));

        let (x, headers) = with_env(
            &[
                ("MLSERVER_INFER_EXTRA_VERBOSE", "true"),
                ("MLSERVER_INFER_BINARY_DATA", "0"),
                ("MLSERVER_INFER_REQUEST_HEADERS", "A:1"),
            ],
            || {
                let a = parse(&["-m", "m", "-i", "i", "-o", "o", "-H", "C: 3"]).unwrap();
                let h = a.header_entries();
                (a, h)
            },
        );
        assert!(x.is_extra_verbose() && !x.binary_data);
        // The command line wins over the variable.
        assert_eq!(headers, vec!["C: 3"]);
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let a = with_env(
            &[
                ("MLSERVER_INFER_URL", ""),
                ("MLSERVER_INFER_WORKERS", ""),
                ("MLSERVER_INFER_RETRIES", ""),
                ("MLSERVER_INFER_BATCH_SIZE", ""),
                ("MLSERVER_INFER_BINARY_DATA", ""),
                ("MLSERVER_INFER_VERBOSE", ""),
                ("MLSERVER_INFER_TRANSPORT", ""),
                ("MLSERVER_INFER_REQUEST_HEADERS", ""),
                ("MLSERVER_INFER_CONNECTION_TIMEOUT", ""),
                ("MLSERVER_INFER_BATCH_JITTER", ""),
                ("MLSERVER_INFER_INSECURE", ""),
            ],
            || {
                let a = parse(&["-m", "m", "-i", "i", "-o", "o"]).unwrap();
                assert!(a.header_entries().is_empty());
                assert!(!a.is_verbose().unwrap());
                a
            },
        );
        assert_eq!(
            format!("{a:?}"),
            format!("{:?}", InferArgs::new("m", "i", "o"))
        );
        with_env(&[("MLSERVER_INFER_MODEL_NAME", "")], || {
            assert!(parse(&["-i", "i", "-o", "o"]).is_err());
        });
    }

    #[test]
    fn command_line_beats_environment_and_bad_booleans_fail() {
        with_env(
            &[
                ("MLSERVER_INFER_WORKERS", "3"),
                ("MLSERVER_INFER_USE_SSL", "maybe"),
            ],
            || {
                assert!(parse(&["-m", "m", "-i", "i", "-o", "o"]).is_err());
            },
        );
        with_env(&[("MLSERVER_INFER_WORKERS", "3")], || {
            let a = parse(&["-m", "m", "-i", "i", "-o", "o", "-w", "8"]).unwrap();
            assert_eq!(a.workers, 8);
        });
        with_env(&[("MLSERVER_INFER_VERBOSE", "perhaps")], || {
            let a = parse(&["-m", "m", "-i", "i", "-o", "o"]).unwrap();
            assert!(matches!(a.is_verbose(), Err(BatchError::InvalidEnv { .. })));
        });
    }
}
