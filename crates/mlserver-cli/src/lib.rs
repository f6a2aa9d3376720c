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

/// Every binary built on this crate (the default `mlserver` and custom
/// runtime binaries alike) allocates through mimalloc: a small request
/// makes a few dozen short-lived allocations, and mimalloc serves them in
/// a fraction of glibc's instructions. Built without transparent huge
/// pages (`no_thp`): with them, the idle server's RSS grew from 12 to 19 MiB.
/// Turn the `mimalloc` feature off to keep the system allocator (for
/// example to use a heap profiler).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Gives memory freed by large requests back to the system, every few
/// seconds. mimalloc returns freed memory lazily, when the thread that
/// owns it allocates or frees again: after a burst of large requests,
/// handled on threads that then sit idle, it would stay resident for
/// good. A thread forces a collect every 5 s (purging every arena's freed
/// memory), and each async worker collects its own heap the next time it
/// parks after that ([`collect_on_park`]). Both cost microseconds when
/// there is nothing to give back.
#[cfg(feature = "mimalloc")]
pub(crate) fn spawn_allocator_purge() {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let spawned = std::thread::Builder::new()
        .name("mlserver-purge".into())
        .spawn(|| loop {
            std::thread::sleep(EVERY);
            PURGE_EPOCH.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            // SAFETY: mi_collect has no preconditions; it only walks
            // mimalloc's own structures.
            unsafe { libmimalloc_sys::mi_collect(true) };
        });
    if let Err(e) = spawned {
        tracing::warn!("could not start the allocator purge thread: {e}");
    }
}

/// Bumped by the purge thread each round; a worker that has not collected
/// in this round does when it parks.
#[cfg(feature = "mimalloc")]
static PURGE_EPOCH: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The async runtime's `on_thread_park` hook: a worker going idle collects
/// its own heap once per purge round (one atomic load otherwise).
#[cfg(feature = "mimalloc")]
pub(crate) fn collect_on_park() {
    thread_local! {
        static COLLECTED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }
    let epoch = PURGE_EPOCH.load(std::sync::atomic::Ordering::Relaxed);
    COLLECTED.with(|collected| {
        if collected.get() != epoch {
            collected.set(epoch);
            // SAFETY: as above; collects the calling thread's heap.
            unsafe { libmimalloc_sys::mi_collect(true) };
        }
    });
}

/// The runtimes the default binary serves: ONNX (`mlserver_onnx.OnnxModel`,
/// alias `onnx`; feature `onnx`) and the example runtimes (`sum`, `echo`,
/// `text`). A custom runtime binary that needs none of the optional parts
/// (ONNX, Python workers, image builds) depends on this crate with
/// `default-features = false` and compiles none of them.
pub fn default_runtimes() -> RuntimeRegistry {
    let mut runtimes = RuntimeRegistry::new();
    #[cfg(feature = "onnx")]
    mlserver_onnx::register(&mut runtimes);
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
    Infer(mlserver_batch::InferArgs),
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
            mlserver_batch::init_logging(&args);
            mlserver_batch::run(args).map(drop).map_err(Into::into)
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
