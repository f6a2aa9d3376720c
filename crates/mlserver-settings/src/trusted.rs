//! The ODH fork's production mode (opendatahub-io/MLServer,
//! docs/engineering/security.md): when `/etc/mlserver/trusted-runtimes.json`
//! exists, it lists the only model implementations that may load, and the
//! server refuses what would run code from outside the image (custom
//! environments, models' folders on `sys.path`) and CORS origins it cannot
//! name. The file is part of the image: no variable moves it, so an
//! environment that can set variables cannot turn the mode off.

use std::collections::BTreeSet;
use std::path::Path;

use thiserror::Error;

/// Where the allowlist is baked into the image.
pub const TRUSTED_RUNTIMES_PATH: &str = "/etc/mlserver/trusted-runtimes.json";

/// Which implementations may load.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RuntimeSecurity {
    /// No allowlist file: every implementation loads.
    #[default]
    Development,
    /// Only these canonical import paths load (possibly none).
    Production(BTreeSet<String>),
}

/// Why an allowlist file was not accepted: the server does not start.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum TrustedRuntimesError {
    /// A folder, or a symlink to nothing.
    #[error("Trusted runtimes artifact '{0}' must be a regular file.")]
    NotAFile(String),
    /// Not readable, or not JSON.
    #[error("Trusted runtimes artifact '{0}' could not be loaded.")]
    Unreadable(String),
    /// JSON, but not a list.
    #[error("Trusted runtimes artifact must be a JSON list of import paths.")]
    NotAList,
    /// An entry that is not a `module.Class` string.
    #[error("Trusted runtimes artifact contains an invalid runtime import path.")]
    InvalidEntry,
}

/// Why a model may not load in production mode.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum UntrustedModel {
    /// Not in the allowlist.
    #[error("Model implementation '{0}' is not included in the trusted runtimes allowlist configuration.")]
    Implementation(String),
    /// `environment_tarball` or `environment_path`.
    #[error("{0} is not allowed in PRODUCTION mode. All dependencies must be pre-installed in the container image. Remove the trusted runtimes allowlist file to use custom envs.")]
    CustomEnvironment(&'static str),
}

/// The long import paths of MLServer's runtimes, by their short names
/// (the fork's `canonicalize_runtime_import_path`).
const ALIASES: &[(&str, &str)] = &[
    (
        "mlserver_alibi_detect.runtime.AlibiDetectRuntime",
        "mlserver_alibi_detect.AlibiDetectRuntime",
    ),
    (
        "mlserver_alibi_explain.runtime.AlibiExplainRuntime",
        "mlserver_alibi_explain.AlibiExplainRuntime",
    ),
    (
        "mlserver_sklearn.sklearn.SKLearnModel",
        "mlserver_sklearn.SKLearnModel",
    ),
    (
        "mlserver_xgboost.xgboost.XGBoostModel",
        "mlserver_xgboost.XGBoostModel",
    ),
    (
        "mlserver_lightgbm.lightgbm.LightGBMModel",
        "mlserver_lightgbm.LightGBMModel",
    ),
    ("mlserver_onnx.onnx.OnnxModel", "mlserver_onnx.OnnxModel"),
];

/// The short form of an implementation's import path.
pub fn canonical_implementation(path: &str) -> &str {
    ALIASES
        .iter()
        .find(|(long, _)| *long == path)
        .map_or(path, |(_, short)| short)
}

/// An import path the fork accepts: dotted segments of letters, digits,
/// `_` (and `-` in module names), each starting with a letter, the last
/// (the class) starting with an upper-case letter.
fn is_valid_import_path(path: &str) -> bool {
    let segments: Vec<&str> = path.split('.').collect();
    let Some((class, modules)) = segments.split_last() else {
        return false;
    };
    let segment_ok = |s: &str, dash: bool| {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_alphabetic())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || (dash && c == '-'))
    };
    !modules.is_empty()
        && modules.iter().all(|m| segment_ok(m, true))
        && segment_ok(class, false)
        && class.starts_with(|c: char| c.is_ascii_uppercase())
}

impl RuntimeSecurity {
    /// The mode the image gives: production when the file at `path`
    /// exists (a dangling symlink counts, and is an error).
    pub fn from_file(path: &Path) -> Result<RuntimeSecurity, TrustedRuntimesError> {
        let shown = path.display().to_string();
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return Ok(RuntimeSecurity::Development);
        };
        if !(meta.is_file() || meta.is_symlink() && path.is_file()) {
            return Err(TrustedRuntimesError::NotAFile(shown));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|_| TrustedRuntimesError::Unreadable(shown.clone()))?;
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|_| TrustedRuntimesError::Unreadable(shown))?;
        let entries = value.as_array().ok_or(TrustedRuntimesError::NotAList)?;
        let mut allowed = BTreeSet::new();
        for entry in entries {
            let entry = entry.as_str().ok_or(TrustedRuntimesError::InvalidEntry)?;
            let canonical = canonical_implementation(entry);
            if entry.trim() != entry || !is_valid_import_path(canonical) {
                return Err(TrustedRuntimesError::InvalidEntry);
            }
            allowed.insert(canonical.to_owned());
        }
        Ok(RuntimeSecurity::Production(allowed))
    }

    /// The mode of this machine's image.
    pub fn of_image() -> Result<RuntimeSecurity, TrustedRuntimesError> {
        Self::from_file(Path::new(TRUSTED_RUNTIMES_PATH))
    }

    /// `"PRODUCTION"` or `"DEVELOPMENT"`, as the fork's `/v2/runtimes` says.
    pub fn mode_name(&self) -> &'static str {
        match self {
            RuntimeSecurity::Development => "DEVELOPMENT",
            RuntimeSecurity::Production(_) => "PRODUCTION",
        }
    }

    /// The allowed implementations, sorted; `None` in development mode.
    pub fn allowed(&self) -> Option<Vec<String>> {
        match self {
            RuntimeSecurity::Development => None,
            RuntimeSecurity::Production(allowed) => Some(allowed.iter().cloned().collect()),
        }
    }

    /// Whether an allowlist is in force.
    pub fn is_production(&self) -> bool {
        matches!(self, RuntimeSecurity::Production(_))
    }

    /// The line the fork logs at start.
    pub fn describe(&self) -> String {
        match self {
            RuntimeSecurity::Development => "Runtime security: DEVELOPMENT - all model implementations allowed (no trusted runtimes allowlist file found)".into(),
            RuntimeSecurity::Production(allowed) => format!(
                "Runtime security: PRODUCTION - {} model implementations allowed from trusted runtimes allowlist file: {:?}",
                allowed.len(),
                allowed
            ),
        }
    }

    /// Whether a model with these settings may load.
    pub fn check_model(
        &self,
        implementation: &str,
        environment_tarball: Option<&str>,
        environment_path: Option<&str>,
    ) -> Result<(), UntrustedModel> {
        let RuntimeSecurity::Production(allowed) = self else {
            return Ok(());
        };
        if environment_tarball.is_some() {
            return Err(UntrustedModel::CustomEnvironment("environment_tarball"));
        }
        if environment_path.is_some() {
            return Err(UntrustedModel::CustomEnvironment("environment_path"));
        }
        if !allowed.contains(canonical_implementation(implementation)) {
            return Err(UntrustedModel::Implementation(implementation.to_owned()));
        }
        Ok(())
    }

    /// CORS settings production mode refuses: a wildcard origin, or any
    /// origin regex.
    pub fn check_cors(&self, origins: &[String], regex: Option<&str>) -> Result<(), String> {
        if !self.is_production() {
            return Ok(());
        }
        if origins.iter().any(|o| o == "*") {
            return Err(format!("Wildcard CORS origins {origins:?} not allowed in PRODUCTION mode. Specify explicit allowed origins or disable CORS settings."));
        }
        if regex.is_some() {
            return Err("CORS origin regex patterns not allowed in PRODUCTION mode. Specify explicit allowed origins or disable CORS settings.".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_file(text: &str) -> Result<RuntimeSecurity, TrustedRuntimesError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted-runtimes.json");
        std::fs::write(&path, text).unwrap();
        RuntimeSecurity::from_file(&path)
    }

    #[test]
    fn no_file_is_development() {
        let dir = tempfile::tempdir().unwrap();
        let mode = RuntimeSecurity::from_file(&dir.path().join("absent.json")).unwrap();
        assert_eq!(mode, RuntimeSecurity::Development);
        assert!(mode.check_model("anything", Some("x.tar.gz"), None).is_ok());
        assert!(mode.check_cors(&["*".into()], Some(".*")).is_ok());
    }

    #[test]
    fn allowlists_are_read_as_the_fork_reads_them() {
        let mode =
            with_file(r#"["mlserver_sklearn.sklearn.SKLearnModel", "my-pkg.models.Custom"]"#)
                .unwrap();
        assert!(mode
            .check_model("mlserver_sklearn.SKLearnModel", None, None)
            .is_ok());
        assert!(mode
            .check_model("mlserver_sklearn.sklearn.SKLearnModel", None, None)
            .is_ok());
        assert!(mode.check_model("my-pkg.models.Custom", None, None).is_ok());
        assert_eq!(
            mode.check_model("mlserver_xgboost.XGBoostModel", None, None).unwrap_err().to_string(),
            "Model implementation 'mlserver_xgboost.XGBoostModel' is not included in the trusted runtimes allowlist configuration."
        );
        assert_eq!(
            mode.check_model("mlserver_sklearn.SKLearnModel", Some("env.tar.gz"), None),
            Err(UntrustedModel::CustomEnvironment("environment_tarball"))
        );
        assert!(mode.check_cors(&["https://a.example".into()], None).is_ok());
        assert!(mode.check_cors(&["*".into()], None).is_err());
        assert!(mode.check_cors(&[], Some("https://.*")).is_err());
        assert_eq!(
            with_file("[]").unwrap(),
            RuntimeSecurity::Production(BTreeSet::new())
        );
    }

    #[test]
    fn malformed_allowlists_are_errors() {
        for (text, error) in [
            ("{", "could not be loaded"),
            (r#"{"trusted": []}"#, "must be a JSON list"),
            ("[1]", "invalid runtime import path"),
            (
                r#"[" mlserver_sklearn.SKLearnModel"]"#,
                "invalid runtime import path",
            ),
            (r#"["sum"]"#, "invalid runtime import path"),
            (
                r#"["mlserver_sklearn.sklearnModel"]"#,
                "invalid runtime import path",
            ),
            (r#"["pkg.Mod-el"]"#, "invalid runtime import path"),
        ] {
            let e = with_file(text).unwrap_err().to_string();
            assert!(e.contains(error), "{text}: {e}");
        }
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            RuntimeSecurity::from_file(dir.path()),
            Err(TrustedRuntimesError::NotAFile(_))
        ));
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(matches!(
            RuntimeSecurity::from_file(&dangling),
            Err(TrustedRuntimesError::NotAFile(_))
        ));
    }
}
