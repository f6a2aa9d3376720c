//! The `mlserver` binary with the bundled runtimes: `mlserver_cli::run`.
fn main() -> std::process::ExitCode {
    mlserver_cli::run(mlserver_cli::default_runtimes())
}
