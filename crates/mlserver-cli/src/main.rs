fn main() -> std::process::ExitCode {
    mlserver_cli::run(mlserver_cli::default_runtimes())
}
