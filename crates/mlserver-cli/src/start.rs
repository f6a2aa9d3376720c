//! `mlserver start FOLDER`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use mlserver_runtime::RuntimeRegistry;
use mlserver_server::Server;
use mlserver_settings::EnvSource;
use tracing::info;

pub fn start(folder: &Path, mut runtimes: RuntimeRegistry) -> anyhow::Result<()> {
    if !folder.is_dir() {
        bail!(
            "models folder {} does not exist or is not a directory",
            folder.display()
        );
    }
    let env = Arc::new(EnvSource::from_process());
    let settings = mlserver_settings::load_settings(folder, &env)
        .with_context(|| format!("invalid settings in {}", folder.display()))?;
    crate::logging::init(&settings)?;
    if !runtimes.has_fallback() {
        // Import paths no Rust runtime claims are Python MLModel classes.
        mlserver_python::install(
            &mut runtimes,
            mlserver_python::PythonConfig::from_settings(&settings, &env),
        );
    }
    info!(
        "mlserver {} starting: models folder {}, runtimes: {}",
        env!("CARGO_PKG_VERSION"),
        folder.display(),
        runtimes.names().collect::<Vec<_>>().join(", ")
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mlserver")
        .build()
        .context("could not start the async runtime")?;
    runtime.block_on(async move {
        let server = Server::new(settings, runtimes, env)?;
        let listeners = server.bind().await?;
        server.serve(listeners, shutdown_signal()).await?;
        info!("mlserver stopped");
        Ok(())
    })
}

/// Resolves on SIGINT, SIGTERM or SIGQUIT (MLServer stops on all three).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
        let mut quit = signal(SignalKind::quit()).expect("SIGQUIT handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => info!("SIGINT received, shutting down"),
            _ = term.recv() => info!("SIGTERM received, shutting down"),
            _ = quit.recv() => info!("SIGQUIT received, shutting down"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
