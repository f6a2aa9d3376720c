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

mod logging;
mod start;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mlserver_runtime::RuntimeRegistry;

/// The runtimes the default binary serves: the example runtimes (`sum`,
/// `echo`, `text`).
pub fn default_runtimes() -> RuntimeRegistry {
    let mut runtimes = RuntimeRegistry::new();
    mlserver_examples::register(&mut runtimes);
    runtimes
}

#[derive(Debug, Parser)]
#[command(
    name = "mlserver",
    version,
    about = "An MLServer-compatible inference server (Open Inference Protocol / KServe V2)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the models found under FOLDER (settings.json and every
    /// model-settings.json below it).
    Start {
        /// The models folder.
        folder: PathBuf,
    },
}

/// Parses the process arguments and runs the command.
pub fn run(runtimes: RuntimeRegistry) -> ExitCode {
    run_with(Cli::parse(), runtimes)
}

/// Runs an already parsed command line.
pub fn run_with(cli: Cli, runtimes: RuntimeRegistry) -> ExitCode {
    let result = match cli.command {
        Command::Start { folder } => start::start(&folder, runtimes),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mlserver: {e:#}");
            ExitCode::FAILURE
        }
    }
}
