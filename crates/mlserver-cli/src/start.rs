//! `mlserver start FOLDER`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use mlserver_runtime::RuntimeRegistry;
use mlserver_server::Server;
use mlserver_settings::{EnvSource, RuntimeSecurity};
use tracing::{info, warn};

pub(crate) fn start(folder: &Path, runtimes: RuntimeRegistry) -> anyhow::Result<()> {
    let (folder, expanded) = expand_folder(folder);
    if folder.exists() && !folder.is_dir() {
        bail!("models folder {} is not a directory", folder.display());
    }
    let env = Arc::new(EnvSource::from_process());
    let settings = mlserver_settings::load_settings(&folder, &env)
        .with_context(|| format!("invalid settings in {}", folder.display()))?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("mlserver");
    let python_threads = (std::env::var_os("TOKIO_WORKER_THREADS").is_none()
        && python_only(&folder, &env, &runtimes))
    .then(|| {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        async_threads(cpus, settings.parallel_workers)
    });
    if let Some(threads) = python_threads {
        builder.worker_threads(threads);
    }
    let runtime = builder
        .build()
        .context("could not start the async runtime")?;
    // Inside the runtime: the span exporter's gRPC channel lives there.
    let tracer = {
        let _enter = runtime.enter();
        crate::logging::init(&settings)?
    };
    for warning in settings.ignored() {
        warn!("{warning}");
    }
    if let Some(threads) = python_threads {
        info!(
            "every model is a Python class: {threads} async thread(s), the other CPUs left to the Python workers (TOKIO_WORKER_THREADS overrides)"
        );
    }
    if let Some(raw) = expanded {
        info!(
            "models folder {raw:?} reached us unexpanded (an exec-form CMD passes it as written): using {}",
            folder.display()
        );
    }
    if !folder.exists() {
        // As MLServer: start anyway, from the environment and defaults; the
        // folder is scanned again on every repository load, so models
        // written there later (the ModelMesh adapter's) can still load.
        warn!(
            "models folder {} does not exist: starting with settings from the environment and defaults only",
            folder.display()
        );
    }
    // The ODH fork's production mode: a malformed allowlist stops the start.
    let security = RuntimeSecurity::of_image()
        .context("Server startup aborted: invalid trusted runtimes allowlist configuration")?;
    info!("{}", security.describe());
    #[cfg(feature = "python")]
    let (runtimes, python) = with_python(runtimes, &settings, &env, &security)?;
    #[cfg(feature = "python")]
    let source = custom_repository(python.as_ref(), &settings, &env);
    #[cfg(not(feature = "python"))]
    if let Some(implementation) = &settings.model_repository_implementation {
        warn!("model_repository_implementation ({implementation}) is ignored: this build has no Python support; models come from the folder");
    }
    info!(
        "mlserver {} starting: models folder {}, runtimes: {}",
        env!("CARGO_PKG_VERSION"),
        folder.display(),
        runtimes.names().collect::<Vec<_>>().join(", ")
    );

    let result = runtime.block_on(async move {
        let server = Server::with_security(settings, runtimes, env, security)?;
        #[cfg(feature = "python")]
        if let Some(source) = source {
            server.repository().use_source(source)?;
        }
        let listeners = server.bind().await?;
        server.serve(listeners, shutdown_signal()).await?;
        info!("mlserver stopped");
        Ok(())
    });
    // Sends the spans still buffered (the runtime still drives the channel).
    if let Some(tracer) = tracer {
        if let Err(e) = tracer.shutdown() {
            warn!("could not send the last spans: {e}");
        }
    }
    result
}

/// Whether the folder holds models and every one is a Python class (an
/// implementation no Rust runtime claims, left to the Python workers).
fn python_only(folder: &Path, env: &EnvSource, runtimes: &RuntimeRegistry) -> bool {
    if !cfg!(feature = "python") || runtimes.has_fallback() {
        return false;
    }
    let models = mlserver_settings::scan_models(folder, env).models;
    !models.is_empty()
        && models.iter().all(|m| {
            m.implementation
                .as_deref()
                .is_some_and(|i| !runtimes.is_registered(i))
        })
}

/// The async runtime's threads when every model is a Python class served by
/// `python_workers` processes (`parallel_workers`, at least one): half as
/// many as there are workers, within the CPUs they leave, at least one.
/// The server's part of a Python call (HTTP or gRPC, decoding, the frame to
/// the worker and back) costs under half the worker's (BENCHMARKS.md), so
/// more threads only contend with the workers for the CPUs and hand each
/// request from thread to thread: on 2 CPUs, MLServer's `SumModel` at c=1
/// answers 3,900 req/s with two threads and 5,000 with one.
/// `TOKIO_WORKER_THREADS` overrides it, as it does tokio's default.
fn async_threads(cpus: usize, python_workers: usize) -> usize {
    let python_workers = python_workers.max(1);
    python_workers
        .div_ceil(2)
        .min(cpus.saturating_sub(python_workers))
        .max(1)
}

/// Import paths no Rust runtime claims are Python MLModel classes, served by
/// worker processes (with `MLSERVER_ENV_TARBALL` activated, as MLServer's
/// image does). The Python side, unless the caller installed its own.
#[cfg(feature = "python")]
fn with_python(
    mut runtimes: RuntimeRegistry,
    settings: &mlserver_settings::Settings,
    env: &EnvSource,
    security: &RuntimeSecurity,
) -> anyhow::Result<(RuntimeRegistry, Option<mlserver_python::Python>)> {
    if runtimes.has_fallback() {
        return Ok((runtimes, None));
    }
    let mut python = mlserver_python::PythonConfig::from_settings(settings, env);
    python.production = security.is_production();
    if python.production {
        if env
            .get("MLSERVER_ENV_TARBALL")
            .is_some_and(|t| Path::new(t).is_file())
        {
            warn!("MLSERVER_ENV_TARBALL is not used in PRODUCTION mode: all dependencies must be pre-installed in the container image");
        }
    } else if let Some(interpreter) = python.activate_env_tarball(env)? {
        info!(
            "MLSERVER_ENV_TARBALL activated: Python models run with {}",
            interpreter.display()
        );
    }
    let python = mlserver_python::install(&mut runtimes, python);
    Ok((runtimes, Some(python)))
}

/// `model_repository_implementation`: the user's repository class, in a
/// Python worker, as the source of the models.
#[cfg(feature = "python")]
fn custom_repository(
    python: Option<&mlserver_python::Python>,
    settings: &mlserver_settings::Settings,
    env: &Arc<EnvSource>,
) -> Option<Arc<dyn mlserver_runtime::ModelSource>> {
    let implementation = settings.model_repository_implementation.as_deref()?;
    let Some(python) = python else {
        warn!("model_repository_implementation ({implementation}) is ignored: the Python side is the embedder's; models come from the folder");
        return None;
    };
    info!("models come from the repository class {implementation}");
    Some(python.model_source(
        implementation,
        settings.model_repository_implementation_args.clone(),
        &settings.model_repository_root,
        env.clone(),
    ))
}

/// The folder argument with `$VAR` / `${VAR}` expanded, and what it was
/// when it needed expanding. Docker passes an exec-form `CMD ["mlserver",
/// "start", "${MLSERVER_MODELS_DIR}"]` (the ModelMesh guide's) literally;
/// MLServer then serves a folder named `${MLSERVER_MODELS_DIR}` and never
/// finds the models written under the real one. Unset variables stay as
/// written, as in a shell's `expandvars`.
fn expand_folder(folder: &Path) -> (PathBuf, Option<String>) {
    let Some(raw) = folder.to_str().filter(|s| s.contains('$')) else {
        return (folder.to_path_buf(), None);
    };
    let expanded = mlserver_settings::expand_vars(raw);
    if expanded == raw {
        return (folder.to_path_buf(), None);
    }
    (PathBuf::from(expanded), Some(raw.to_owned()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_only_servers_keep_cpus_for_their_workers() {
        assert_eq!(async_threads(2, 1), 1);
        assert_eq!(async_threads(2, 0), 1);
        assert_eq!(async_threads(1, 4), 1);
        assert_eq!(async_threads(8, 1), 1);
        assert_eq!(async_threads(8, 4), 2);
        assert_eq!(async_threads(16, 8), 4);
        assert_eq!(async_threads(8, 7), 1);
    }

    #[test]
    fn only_a_folder_of_python_classes_is_python_only() {
        let folder = tempfile::tempdir().unwrap();
        let dir = folder.path();
        let write = |name: &str, implementation: &str| {
            std::fs::create_dir_all(dir.join(name)).unwrap();
            std::fs::write(
                dir.join(name).join("model-settings.json"),
                format!(r#"{{"name": "{name}", "implementation": "{implementation}"}}"#),
            )
            .unwrap();
        };
        let mut runtimes = RuntimeRegistry::new();
        runtimes.register::<mlserver_examples::SumModel>("native.Sum");
        let env = EnvSource::empty();
        assert!(!python_only(dir, &env, &runtimes), "no models");
        write("a", "my_models.Python");
        assert_eq!(python_only(dir, &env, &runtimes), cfg!(feature = "python"));
        write("b", "native.Sum");
        assert!(!python_only(dir, &env, &runtimes), "a native model too");
    }

    #[test]
    fn an_unexpanded_folder_argument_is_expanded_from_the_environment() {
        std::env::set_var("MLSERVER_RS_TEST_MODELS_DIR", "/models/_mlserver_models");
        let (folder, raw) = expand_folder(Path::new("${MLSERVER_RS_TEST_MODELS_DIR}"));
        assert_eq!(folder, Path::new("/models/_mlserver_models"));
        assert_eq!(raw.as_deref(), Some("${MLSERVER_RS_TEST_MODELS_DIR}"));
        // Nothing to expand, or nothing set: as written.
        assert_eq!(
            expand_folder(Path::new("/mnt/models")),
            ("/mnt/models".into(), None)
        );
        assert_eq!(
            expand_folder(Path::new("$MLSERVER_RS_TEST_UNSET_X")),
            ("$MLSERVER_RS_TEST_UNSET_X".into(), None)
        );
    }
}
