//! `mlserver dotenv`: the embedded settings of an image, as `.env` lines.

use std::path::Path;

use anyhow::{bail, Context};
use mlserver_runtime::RuntimeRegistry;

fn check_folder(folder: &Path) -> anyhow::Result<()> {
    if !folder.is_dir() {
        bail!("{} does not exist or is not a directory", folder.display());
    }
    Ok(())
}

/// `mlserver dotenv FOLDER`: the `.env` text of the embedded settings, once
/// the embedded model's `implementation` is known to exist here (a runtime
/// this binary registers, or a Python class the image's environment
/// imports), so an image whose model could never load fails its build at
/// this step, with Python's own message, instead of at start.
pub(crate) fn dotenv(folder: &Path, runtimes: &RuntimeRegistry) -> anyhow::Result<()> {
    check_folder(folder)?;
    let Some(text) = mlserver_settings::embedded_dotenv(folder)? else {
        eprintln!(
            "mlserver: {} has neither settings.json nor model-settings.json; nothing to print",
            folder.display()
        );
        return Ok(());
    };
    if folder
        .join(mlserver_settings::MODEL_SETTINGS_FILENAME)
        .is_file()
    {
        check_implementation(folder, &text, runtimes)?;
    }
    print!("{text}");
    Ok(())
}

/// See [`dotenv`]. The implementation is the embedded model's, else the
/// build environment's `MLSERVER_MODEL_IMPLEMENTATION`.
fn check_implementation(
    folder: &Path,
    dotenv: &str,
    runtimes: &RuntimeRegistry,
) -> anyhow::Result<()> {
    let from_file = mlserver_settings::parse_dotenv(dotenv, |_| None)
        .into_iter()
        .find(|(k, _)| k == "MLSERVER_MODEL_IMPLEMENTATION")
        .map(|(_, v)| v);
    let Some(implementation) =
        from_file.or_else(|| std::env::var("MLSERVER_MODEL_IMPLEMENTATION").ok())
    else {
        bail!(
            "{}/model-settings.json names no implementation (and MLSERVER_MODEL_IMPLEMENTATION is unset): set \"implementation\" to a runtime ({}) or a Python class (module.Class)",
            folder.display(),
            runtimes.names().collect::<Vec<_>>().join(", ")
        );
    };
    // A registered runtime needs nothing else, unless it takes its models
    // over from the Python runtime that loads them (scikit-learn's).
    if runtimes.is_registered(&implementation) && !runtimes.loads_through_fallback(&implementation)
    {
        return Ok(());
    }
    let Some((module, class)) = implementation.rsplit_once('.') else {
        bail!(
            "implementation {implementation:?} is neither a runtime of this server ({}) nor a Python class (module.Class)",
            runtimes.names().collect::<Vec<_>>().join(", ")
        );
    };
    let python = std::env::var("MLSERVER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = format!(
        "import importlib, sys\nsys.path.insert(0, {folder:?})\ngetattr(importlib.import_module({module:?}), {class:?})\n",
        folder = folder.display().to_string(),
    );
    let out = std::process::Command::new(&python)
        .args(["-c", &script])
        .output()
        .with_context(|| {
            format!(
                "implementation {implementation} is a Python class, but {python} cannot run here (set MLSERVER_PYTHON, or build on the py-slim or py image)"
            )
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.trim().lines().last().unwrap_or_default().to_owned();
        bail!("implementation {implementation} cannot be imported by {python}: {last}");
    }
    Ok(())
}
