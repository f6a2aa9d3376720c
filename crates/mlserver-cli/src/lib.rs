//! The `mlserver` command line, as a library so that a custom binary can
//! register its own runtimes and run the very same CLI:
//!
//! ```no_run
//! fn main() -> std::process::ExitCode {
//!     let mut runtimes = mlserver_cli::default_runtimes();
//!     // runtimes.register::<MyModel>("my_model");
//!     mlserver_cli::run(runtimes)
//! }
//! ```

#[cfg(feature = "jemalloc")]
mod allocator;
mod dotenv;
#[cfg(feature = "image")]
mod image;
mod init;
mod logging;
mod start;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mlserver_runtime::RuntimeRegistry;

/// The runtimes the default binary serves: ONNX (`mlserver_onnx.OnnxModel`,
/// alias `onnx`; feature `onnx`), MLServer's XGBoost and LightGBM runtimes
/// natively (`mlserver_xgboost.XGBoostModel`,
/// `mlserver_lightgbm.LightGBMModel`; feature `trees`; what they decline
/// goes to the Python runtimes of the same names) and the example runtimes
/// (`sum`, `echo`, `text`). A custom runtime binary that needs none of the optional parts
/// (ONNX, Python workers, image builds) depends on this crate with
/// `default-features = false` and compiles none of them.
pub fn default_runtimes() -> RuntimeRegistry {
    let mut runtimes = RuntimeRegistry::new();
    #[cfg(feature = "onnx")]
    mlserver_onnx::register(&mut runtimes);
    #[cfg(feature = "trees")]
    mlserver_native_runtimes::register(&mut runtimes);
    mlserver_examples::register(&mut runtimes);
    runtimes
}

#[derive(Debug, Parser)]
#[command(
    name = "mlserver",
    version,
    about = "An MLServer-compatible inference server (Open Inference Protocol / KServe V2)"
)]
/// The `mlserver` command line.
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// `mlserver`'s subcommands (MLServer's, plus `dotenv`).
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the models found under FOLDER (settings.json and every
    /// model-settings.json below it).
    Start {
        /// The models folder.
        folder: PathBuf,
    },
    /// Build an image serving FOLDER (a custom Rust runtime crate, or models
    /// for the built-in runtimes) through the Docker Engine API.
    #[cfg(feature = "image")]
    Build(image::BuildArgs),
    /// Write FOLDER/Dockerfile (and with -i the ignore file) for builders
    /// without a Docker daemon: Kaniko, Buildah, `docker build`.
    #[cfg(feature = "image")]
    Dockerfile(image::DockerfileArgs),
    /// Print FOLDER's settings.json and model-settings.json as `.env` lines
    /// (what an image uses as its defaults; used by generated Dockerfiles).
    Dotenv {
        /// The folder holding settings.json and/or model-settings.json.
        folder: PathBuf,
    },
    /// Create a new custom-runtime crate NAME: a runtime implementing
    /// MLModel, its model-settings.json, a README; it builds, serves and
    /// `mlserver build`s as it is.
    Init(init::InitArgs),
    /// Send a file of V2 inference requests (one JSON per line) to a server,
    /// `--workers` at a time, and write one response or error per line to
    /// the output file, as MLServer's `mlserver infer` does (REST or gRPC).
    Infer(mlserver_infer::InferArgs),
}

/// Parses the process arguments and runs the command.
pub fn run(runtimes: RuntimeRegistry) -> ExitCode {
    run_with(Cli::parse(), runtimes)
}

/// Runs an already parsed command line.
pub fn run_with(cli: Cli, runtimes: RuntimeRegistry) -> ExitCode {
    let result = match cli.command {
        Command::Start { folder } => start::start(&folder, runtimes),
        #[cfg(feature = "image")]
        Command::Build(args) => image::build(args),
        #[cfg(feature = "image")]
        Command::Dockerfile(args) => image::dockerfile(args),
        Command::Dotenv { folder } => dotenv::dotenv(&folder, &runtimes),
        Command::Init(args) => init::init(args),
        Command::Infer(args) => {
            mlserver_infer::init_logging(&args);
            mlserver_infer::run(args).map(drop).map_err(Into::into)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mlserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}
