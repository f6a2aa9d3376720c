//! The model repository scan: MLServer's `SchemalessModelRepository`.

use std::path::{Path, PathBuf};

use tracing::{debug, error, warn};
use walkdir::WalkDir;

use crate::env::EnvSource;
use crate::model::{load_model_settings, ModelSettings, MODEL_SETTINGS_FILENAME};

/// What a scan found: the models that parsed, and the files that did not.
#[derive(Debug, Clone, Default)]
pub struct ScanResult {
    /// In path order, so results are the same on every run and platform.
    pub models: Vec<ModelSettings>,
    /// `(file, reason)` for every `model-settings.json` that could not be
    /// loaded. Not fatal: the other models still load, as in MLServer.
    pub errors: Vec<(PathBuf, String)>,
}

/// Finds every `model-settings.json` under `root` (recursively, following
/// symlinks, in sorted path order) and loads each with
/// [`load_model_settings`], `MLSERVER_MODEL_*` variables acting as defaults.
///
/// Folders whose name starts with `.` are skipped below `root`, as Python's
/// recursive glob does (so `.git`, `.envs` and friends are never scanned).
///
/// As in MLServer, when no model loaded (no file at all, or only broken
/// ones), a single model is built from `MLSERVER_MODEL_*` alone, provided
/// `MLSERVER_MODEL_IMPLEMENTATION` is set.
pub fn scan_models(root: &Path, env: &EnvSource) -> ScanResult {
    let mut result = ScanResult::default();
    let abs_root = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    // A root that does not exist (yet) holds no models: `mlserver start`
    // said so once; every scan need not.
    let walker = WalkDir::new(&abs_root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if e.depth() == 0 && !abs_root.exists() => {
                debug!("no models folder at {}", abs_root.display());
                continue;
            }
            Err(e) => {
                // Unreadable folders and symlink loops: not a model, but say so.
                warn!("skipping part of the model repository: {e}");
                continue;
            }
        };
        if entry.file_name() != MODEL_SETTINGS_FILENAME || !entry.file_type().is_file() {
            continue;
        }
        let path = entry.path();
        match load_model_settings(path, env) {
            Ok(settings) => {
                debug!("found model {} in {}", settings.name, path.display());
                result.models.push(settings);
            }
            Err(e) => {
                error!("Failed load model settings at {}: {e}", path.display());
                result.errors.push((path.to_path_buf(), e.to_string()));
            }
        }
    }
    if result.models.is_empty() {
        debug!("no models found in repository at {}", abs_root.display());
        if let Some(model) = default_model(&abs_root, env, &mut result.errors) {
            result.models.push(model);
        }
    }
    result
}

/// MLServer's repository `find(name)`: a fresh scan, filtered by name. Every
/// version of the model is returned; an empty list means "not found".
pub fn find_models(root: &Path, name: &str, env: &EnvSource) -> Vec<ModelSettings> {
    scan_models(root, env)
        .models
        .into_iter()
        .filter(|m| m.name == name)
        .collect()
}

/// The model described by `MLSERVER_MODEL_*` alone, if the environment
/// names an implementation.
fn default_model(
    root: &Path,
    env: &EnvSource,
    errors: &mut Vec<(PathBuf, String)>,
) -> Option<ModelSettings> {
    env.get("MLSERVER_MODEL_IMPLEMENTATION")?;
    match ModelSettings::from_env(env) {
        Ok(model) => {
            if model.name.is_empty() {
                warn!("the model built from MLSERVER_MODEL_* has no name; set MLSERVER_MODEL_NAME");
            }
            Some(model)
        }
        Err(e) => {
            error!("could not build a model from MLSERVER_MODEL_* variables: {e}");
            errors.push((root.to_path_buf(), e.to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn names(r: &ScanResult) -> Vec<(String, Option<String>)> {
        r.models
            .iter()
            .map(|m| (m.name.clone(), m.version().map(str::to_owned)))
            .collect()
    }

    fn some(name: &str, version: Option<&str>) -> (String, Option<String>) {
        (name.to_owned(), version.map(str::to_owned))
    }

    #[test]
    fn recursive_scan_with_names_versions_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "settings.json", "{}");
        write(
            root,
            "b-model/model-settings.json",
            r#"{"implementation": "echo"}"#,
        );
        write(
            root,
            "nested/deeper/a-model/model-settings.json",
            r#"{"implementation": "sum", "parameters": {"uri": "./w.bin"}}"#,
        );
        write(
            root,
            "models/m/2/model-settings.json",
            r#"{"name": "m", "implementation": "x", "parameters": {"version": "2"}}"#,
        );
        write(
            root,
            "models/m/1/model-settings.json",
            r#"{"name": "m", "implementation": "x", "parameters": {"version": "1"}}"#,
        );
        write(
            root,
            "renamed/model-settings.json",
            r#"{"name": "other", "implementation": "x"}"#,
        );
        write(root, "broken/model-settings.json", "{ not json");
        write(
            root,
            ".hidden/h/model-settings.json",
            r#"{"implementation": "x"}"#,
        );
        write(root, "not-a-model/README.md", "hi");

        let r = scan_models(root, &EnvSource::empty());
        assert_eq!(
            names(&r),
            vec![
                some("b-model", None),
                some("m", Some("1")),
                some("m", Some("2")),
                some("a-model", None),
                some("other", None),
            ]
        );
        assert_eq!(r.errors.len(), 1);
        assert_eq!(r.errors[0].0, root.join("broken/model-settings.json"));
        assert!(
            r.errors[0].1.contains("model-settings.json"),
            "{}",
            r.errors[0].1
        );

        let a = &r.models[3];
        assert_eq!(
            a.uri(),
            Some(
                root.join("nested/deeper/a-model/w.bin")
                    .display()
                    .to_string()
                    .as_str()
            )
        );
        assert_eq!(
            a.source.as_deref(),
            Some(
                root.join("nested/deeper/a-model/model-settings.json")
                    .as_path()
            )
        );
        let b = &r.models[0];
        assert_eq!(
            b.uri(),
            Some(root.join("b-model").display().to_string().as_str())
        );

        let found = find_models(root, "m", &EnvSource::empty());
        assert_eq!(
            found.iter().filter_map(|m| m.version()).collect::<Vec<_>>(),
            vec!["1", "2"]
        );
        assert!(find_models(root, "nope", &EnvSource::empty()).is_empty());
    }

    #[test]
    fn env_defaults_apply_to_every_file() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "a/model-settings.json", "{}");
        write(
            dir.path(),
            "b/model-settings.json",
            r#"{"implementation": "mine"}"#,
        );
        let env = EnvSource::empty().with_var("MLSERVER_MODEL_IMPLEMENTATION", "shared");
        let r = scan_models(dir.path(), &env);
        let impls: Vec<_> = r
            .models
            .iter()
            .map(|m| m.implementation.as_deref().unwrap())
            .collect();
        assert_eq!(impls, vec!["shared", "mine"]);
    }

    #[test]
    fn env_only_default_model() {
        let dir = tempfile::tempdir().unwrap();
        // Without an implementation there is nothing to build.
        assert!(scan_models(dir.path(), &EnvSource::empty())
            .models
            .is_empty());
        let env = EnvSource::empty()
            .with_var("MLSERVER_MODEL_IMPLEMENTATION", "sum")
            .with_dotenv("MLSERVER_MODEL_NAME=envm\nMLSERVER_MODEL_VERSION=7\n");
        let r = scan_models(dir.path(), &env);
        assert_eq!(names(&r), vec![some("envm", Some("7"))]);
        assert!(r.models[0].source.is_none());
        // Also when every file is broken, as MLServer's `if not all_model_settings`.
        write(dir.path(), "x/model-settings.json", "[");
        let r = scan_models(dir.path(), &env);
        assert_eq!(names(&r), vec![some("envm", Some("7"))]);
        assert_eq!(r.errors.len(), 1);
        // A bad variable is reported, not a panic.
        let bad = env.with_var("MLSERVER_MODEL_MAX_BATCH_SIZE", "many");
        let r = scan_models(tempfile::tempdir().unwrap().path(), &bad);
        assert!(r.models.is_empty());
        assert!(r.errors[0].1.contains("MLSERVER_MODEL_MAX_BATCH_SIZE"));
    }

    #[cfg(unix)]
    #[test]
    fn follows_symlinked_folders() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(
            outside.path(),
            "model-settings.json",
            r#"{"implementation": "x"}"#,
        );
        std::os::unix::fs::symlink(outside.path(), dir.path().join("linked")).unwrap();
        let r = scan_models(dir.path(), &EnvSource::empty());
        assert_eq!(names(&r), vec![some("linked", None)]);
        assert_eq!(
            r.models[0].uri(),
            Some(dir.path().join("linked").display().to_string().as_str())
        );
    }
}
