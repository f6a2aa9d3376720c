//! `mlserver-rs`: the `mlserver` binary under the name the Python wheel
//! installs it as (`pyproject.toml` beside this crate). In a venv it
//! serves that venv's Python models: the interpreter next to the command is
//! the one the workers run.
fn main() -> std::process::ExitCode {
    mlserver_cli::run(mlserver_cli::default_runtimes())
}
