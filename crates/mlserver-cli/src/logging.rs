//! Log setup from settings: `debug` raises the level, `RUST_LOG` overrides
//! it, `use_structured_logging` switches to JSON lines.

use std::io::IsTerminal;

use mlserver_settings::Settings;
use tracing_subscriber::EnvFilter;

pub fn init(settings: &Settings) {
    let default = if settings.debug { "debug" } else { "info" };
    // Dependencies stay at info even in debug mode: their debug output
    // (hyper's connection chatter) drowns the server's own.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("info,mlserver={default},mlserver_server={default},mlserver_runtime={default},mlserver_settings={default},mlserver_cli={default}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        .with_ansi(std::io::stdout().is_terminal());
    let result = if settings.use_structured_logging {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
    if let Err(e) = result {
        eprintln!("mlserver: logging already initialised: {e}");
    }
}
