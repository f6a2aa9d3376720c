//! Per-model settings: MLServer's `ModelSettings` and `ModelParameters`.

use std::path::{Path, PathBuf};

use mlserver_types::MetadataTensor;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use tracing::warn;

use crate::env::EnvSource;
use crate::error::InvalidModelUri;
use crate::error::SettingsError;
use crate::layer::{self, field, Explicit, Field, Kind, Section};
use crate::uri::{self, local_path, normalize, ModelUri};

/// The file that makes a folder a model.
pub const MODEL_SETTINGS_FILENAME: &str = "model-settings.json";

/// One model (one version of it), MLServer's `ModelSettings`.
///
/// `implementation` is required by MLServer; it is optional here so that a
/// file without it still loads and the server can report a clear per-model
/// error instead of failing the whole scan.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelSettings {
    /// Defaults to the folder name during the repository scan.
    pub name: String,
    /// The runtime to use (MLServer: a Python import path; here the name a
    /// runtime is registered under).
    pub implementation: Option<String>,
    /// Metadata only.
    pub platform: String,
    /// Metadata only (dependency versions).
    pub versions: Vec<String>,
    /// MLServer's `inputs` (`MLSERVER_MODEL_INPUTS`, JSON): the declared input tensors;
    /// none by default.
    pub inputs: Vec<MetadataTensor>,
    /// MLServer's `outputs` (`MLSERVER_MODEL_OUTPUTS`, JSON): the declared output
    /// tensors; none by default.
    pub outputs: Vec<MetadataTensor>,
    /// Deprecated in MLServer: `<= 0` opts this model out of the worker pool.
    pub parallel_workers: Option<i64>,
    /// Deprecated no-op, kept so old files load.
    pub warm_workers: bool,
    /// Adaptive batching: largest batch; 0 or 1 disables batching.
    pub max_batch_size: usize,
    /// Adaptive batching: longest wait for a batch to fill, in seconds.
    pub max_batch_time: f64,
    /// MLServer's `parameters` (`MLSERVER_MODEL_PARAMETERS`, JSON, or `MLSERVER_MODEL_*`
    /// per key).
    pub parameters: Option<ModelParameters>,
    /// Per-model opt-in to the response cache (the server must enable it too).
    pub cache_enabled: bool,
    /// Not MLServer's (MLServer ignores it): seconds an inference on this
    /// model may take before it is answered with a 504 / DEADLINE_EXCEEDED
    /// and cancelled; overrides the server's `inference_timeout`, 0 turns
    /// it off for this model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_timeout: Option<f64>,
    /// The `model-settings.json` this came from (MLServer's `_source`);
    /// relative URIs are resolved against its folder. `None` for models built
    /// from the environment or given over the API. Never serialised.
    #[serde(skip)]
    pub source: Option<PathBuf>,
}

/// Runtime-facing model parameters, MLServer's `ModelParameters`.
///
/// Unknown keys are kept in [`ModelParameters::other`] (MLServer's
/// `extra="allow"`), since runtimes read their own options from here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelParameters {
    /// Where the artefacts are; see [`crate::get_model_uri`].
    pub uri: Option<String>,
    /// The model version; versions come from here only, never folder names.
    pub version: Option<String>,
    /// An existing Python environment folder (unused by Rust runtimes).
    pub environment_path: Option<String>,
    /// A conda-pack tarball (unused by Rust runtimes).
    pub environment_tarball: Option<String>,
    /// Dedicated inference pool id.
    pub inference_pool_gid: Option<String>,
    /// Generate a unique `inference_pool_gid` when none is set.
    pub autogenerate_inference_pool_gid: bool,
    /// Runtime-specific format hint.
    pub format: Option<String>,
    /// Default request-level content type.
    pub content_type: Option<String>,
    /// Free-form options for the runtime; always a JSON object (`null` in a
    /// file becomes `{}`).
    #[serde(deserialize_with = "object_or_null")]
    pub extra: Value,
    /// Any other keys, kept as given.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl Default for ModelParameters {
    fn default() -> Self {
        ModelParameters {
            uri: None,
            version: None,
            environment_path: None,
            environment_tarball: None,
            inference_pool_gid: None,
            autogenerate_inference_pool_gid: false,
            format: None,
            content_type: None,
            extra: Value::Object(Map::new()),
            other: Map::new(),
        }
    }
}

fn object_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Ok(Value::Object(
        Option::<Map<String, Value>>::deserialize(d)?.unwrap_or_default(),
    ))
}

impl ModelSettings {
    /// `parameters.version`, MLServer's `ModelSettings.version` property.
    pub fn version(&self) -> Option<&str> {
        self.parameters.as_ref()?.version.as_deref()
    }

    /// `parameters.uri` as written (after the scan: absolute for local paths).
    /// Use [`crate::get_model_uri`] to locate the artefacts.
    pub fn uri(&self) -> Option<&str> {
        self.parameters.as_ref()?.uri.as_deref()
    }

    /// A model from `MLSERVER_MODEL_*` variables (and `.env`) alone, with
    /// `parameters` always set. A relative `MLSERVER_MODEL_URI` is resolved
    /// against the working directory.
    pub fn from_env(env: &EnvSource) -> Result<Self, SettingsError> {
        let mut settings = Self::build(env, None)?;
        if let Some(p) = settings.parameters.as_mut() {
            if let Some(u) = p.uri.as_deref().filter(|u| !u.is_empty()) {
                let cwd = std::env::current_dir().unwrap_or_default();
                p.uri = Some(uri::resolve_against(&cwd, u));
            }
        }
        Ok(settings)
    }

    /// Settings a user's repository class gave (`model_repository_implementation`):
    /// its `ModelSettings` dumped as JSON, and the file it read them from,
    /// if any. Read as a `model-settings.json` is (`MLSERVER_MODEL_*` as
    /// defaults), without the folder defaults of [`load_model_settings`]:
    /// the class made them as it wished, as under MLServer.
    pub fn from_repository(
        values: Map<String, Value>,
        source: Option<&Path>,
        env: &EnvSource,
    ) -> Result<Self, SettingsError> {
        let text = Value::Object(values.clone()).to_string();
        let path = source.unwrap_or(Path::new("model_repository_implementation"));
        let mut settings = Self::build(env, Some((path, &text, values)))?;
        settings.source = source.map(Path::to_path_buf);
        Ok(settings)
    }

    fn build(
        env: &EnvSource,
        file: Option<(&Path, &str, Map<String, Value>)>,
    ) -> Result<Self, SettingsError> {
        let (path, text) = match &file {
            Some((p, t, _)) => (Some(*p), Some(*t)),
            None => (None, None),
        };
        let explicit = file.map(|(path, _, values)| {
            layer::warn_unknown_keys(&values, &MODEL, path);
            Explicit { values, path }
        });
        let (mut merged, _) = layer::layer::<ModelSettings>(env, &MODEL, explicit)?;
        // `parameters` is always built, and topped up from MLSERVER_MODEL_URI
        // etc., as MLServer's loader does with `ModelParameters()`.
        let here = path.unwrap_or(Path::new("MLSERVER_MODEL_PARAMETERS"));
        let explicit = match merged.remove("parameters") {
            Some(Value::Object(values)) => Some(Explicit { values, path: here }),
            Some(Value::Null) | None => None,
            Some(other) => {
                // Not an object: let serde report it.
                merged.insert("parameters".to_owned(), other);
                return layer::finish(merged, path.zip(text), MODEL.prefix);
            }
        };
        let (params, _) = layer::layer::<ModelParameters>(env, &PARAMETERS, explicit)?;
        merged.insert("parameters".to_owned(), Value::Object(params));
        let mut settings: ModelSettings = layer::finish(merged, path.zip(text), MODEL.prefix)?;
        settings.warn_deprecated(path);
        if let Some(p) = settings.parameters.as_mut() {
            if p.autogenerate_inference_pool_gid && p.inference_pool_gid.is_none() {
                p.inference_pool_gid = Some(random_gid());
            }
        }
        Ok(settings)
    }

    fn warn_deprecated(&self, path: Option<&Path>) {
        let whence = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the environment".into());
        if self.parallel_workers.is_some()
            && layer::first_time(format!("parallel_workers {whence}"))
        {
            warn!("`parallel_workers` in model settings ({whence}) is deprecated; use the server's `parallel_workers`");
        }
        if self.warm_workers && layer::first_time(format!("warm_workers {whence}")) {
            warn!("`warm_workers` in model settings ({whence}) is deprecated and has no effect");
        }
    }
}

/// MLServer's `load_model_settings(path)`: parses one `model-settings.json`
/// with `MLSERVER_MODEL_*` variables as defaults, then
/// - sets `source` to the (absolute) file path;
/// - defaults `name` to the folder name, warning if an explicit name differs
///   from it unless the folder is named after `parameters.version`
///   (`models/<name>/<version>/`);
/// - defaults `parameters.uri` to the folder, and resolves a relative local
///   URI against the folder (remote URIs are kept).
pub fn load_model_settings(path: &Path, env: &EnvSource) -> Result<ModelSettings, SettingsError> {
    let path = std::path::absolute(path)
        .map(|p| uri::normalize(&p))
        .unwrap_or_else(|_| path.to_path_buf());
    let (text, values) = layer::read_object(&path)?;
    let mut settings = ModelSettings::build(env, Some((&path, &text, values)))?;
    let folder = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    let folder_name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if settings.name.is_empty() {
        settings.name = folder_name;
    } else if settings.name != folder_name
        && settings.version() != Some(folder_name.as_str())
        && layer::first_time(format!("name {} {}", path.display(), settings.name))
    {
        warn!(
            "Model name '{}' is different than model's folder name '{}' ({})",
            settings.name,
            folder_name,
            path.display()
        );
    }
    let params = settings
        .parameters
        .get_or_insert_with(ModelParameters::default);
    params.uri = Some(match params.uri.as_deref() {
        Some(u) if !u.is_empty() => uri::resolve_against(&folder, u),
        _ => folder.display().to_string(),
    });
    settings.source = Some(path);
    Ok(settings)
}

pub(crate) const MODEL_FIELDS: &[Field] = &[
    field("name", Kind::Str),
    field("implementation", Kind::Str),
    field("platform", Kind::Str),
    field("versions", Kind::Json),
    field("inputs", Kind::Json),
    field("outputs", Kind::Json),
    field("parallel_workers", Kind::Int),
    field("warm_workers", Kind::Bool),
    field("max_batch_size", Kind::Int),
    field("max_batch_time", Kind::Float),
    field("parameters", Kind::Json),
    field("cache_enabled", Kind::Bool),
    field("inference_timeout", Kind::Float),
];

const PARAMETER_FIELDS: &[Field] = &[
    field("uri", Kind::Str),
    field("version", Kind::Str),
    field("environment_path", Kind::Str),
    field("environment_tarball", Kind::Str),
    field("inference_pool_gid", Kind::Str),
    field("autogenerate_inference_pool_gid", Kind::Bool),
    field("format", Kind::Str),
    field("content_type", Kind::Str),
    field("extra", Kind::Json),
];

const MODEL: Section = Section {
    prefix: "MLSERVER_MODEL_",
    scope: "",
    fields: MODEL_FIELDS,
    keep_unknown: false,
};
const PARAMETERS: Section = Section {
    prefix: "MLSERVER_MODEL_",
    scope: "parameters.",
    fields: PARAMETER_FIELDS,
    keep_unknown: true,
};

/// A random UUIDv4-formatted id for `autogenerate_inference_pool_gid`.
/// Only uniqueness within the process matters, so std's randomly keyed
/// hasher (fresh keys per `RandomState`) plus the clock is enough.
fn random_gid() -> String {
    use std::hash::{BuildHasher, Hasher};
    let word = || {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        h.write_u128(now.map(|d| d.as_nanos()).unwrap_or_default());
        h.finish()
    };
    let (hi, lo) = (word(), word());
    let hi = (hi & 0xffff_ffff_ffff_0fff) | 0x0000_0000_0000_4000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// MLServer's `get_model_uri(settings, wellknown_filenames)`.
///
/// - no `parameters` or no `uri`: [`InvalidModelUri`] (422);
/// - a non-file scheme: returned unchanged as [`ModelUri::Remote`];
/// - `file://` / `file:` is stripped, and a relative path is resolved
///   against the folder of the model's `model-settings.json`
///   ([`ModelSettings::source`]) or, without one, the working directory;
/// - an existing file is returned as is; a directory gives its first
///   existing `dir/<wellknown>` file in list order, else the directory;
/// - anything else: [`InvalidModelUri`] naming the resolved path.
pub fn get_model_uri(
    settings: &ModelSettings,
    wellknown: &[&str],
) -> Result<ModelUri, InvalidModelUri> {
    let invalid = |uri: String| InvalidModelUri {
        name: settings.name.clone(),
        uri,
    };
    let uri = settings
        .uri()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| invalid(String::new()))?;
    let path = match local_path(uri) {
        Some(p) => p,
        None => return Ok(ModelUri::Remote(uri.to_owned())),
    };
    let base = match settings.source.as_deref().and_then(Path::parent) {
        Some(folder) => folder.to_path_buf(),
        None => std::env::current_dir().unwrap_or_default(),
    };
    let full = normalize(&base.join(path));
    if full.is_file() {
        return Ok(ModelUri::Local(full));
    }
    if full.is_dir() {
        let found = wellknown
            .iter()
            .map(|name| full.join(name))
            .find(|p| p.is_file());
        return Ok(ModelUri::Local(found.unwrap_or(full)));
    }
    Err(invalid(full.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn write(dir: &Path, rel: &str, text: &str) -> PathBuf {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults_match_mlserver() {
        let m = ModelSettings::default();
        assert_eq!(m.name, "");
        assert_eq!(m.implementation, None);
        assert_eq!((m.max_batch_size, m.max_batch_time), (0, 0.0));
        assert!(m.parameters.is_none() && !m.cache_enabled && !m.warm_workers);
        let p = ModelParameters::default();
        assert_eq!(p.extra, json!({}));
        assert!(p.uri.is_none() && p.version.is_none() && !p.autogenerate_inference_pool_gid);
        // The tables cover every field.
        let keys = |v: Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        // (inference_timeout is not MLServer's: written only when set.)
        assert_eq!(m.inference_timeout, None);
        let with_ours = ModelSettings {
            inference_timeout: Some(1.0),
            ..m
        };
        let names = keys(serde_json::to_value(&with_ours).unwrap());
        assert_eq!(names.len(), MODEL_FIELDS.len());
        assert!(names
            .iter()
            .all(|n| MODEL_FIELDS.iter().any(|f| f.name == n)));
        let names = keys(serde_json::to_value(&p).unwrap());
        assert_eq!(names.len(), PARAMETER_FIELDS.len());
    }

    #[test]
    fn parameters_keep_unknown_keys_and_null_extra() {
        let p: ModelParameters =
            serde_json::from_value(json!({"uri": "./m", "extra": null, "threads": 4})).unwrap();
        assert_eq!(p.extra, json!({}));
        assert_eq!(p.other["threads"], json!(4));
        let back = serde_json::to_value(&p).unwrap();
        assert_eq!(back["threads"], json!(4));
        assert!(serde_json::from_value::<ModelParameters>(json!({"extra": [1]})).is_err());
    }

    #[test]
    fn load_defaults_name_uri_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "my-model/model-settings.json",
            r#"{"implementation": "sum"}"#,
        );
        let m = load_model_settings(&p, &EnvSource::empty()).unwrap();
        assert_eq!(m.name, "my-model");
        assert_eq!(m.implementation.as_deref(), Some("sum"));
        assert_eq!(
            m.uri(),
            Some(dir.path().join("my-model").display().to_string().as_str())
        );
        assert_eq!(m.source.as_deref(), Some(p.as_path()));
        assert_eq!(m.version(), None);
    }

    #[test]
    fn env_is_a_default_for_every_model_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "m/model-settings.json",
            r#"{"implementation": "a", "max_batch_size": 4, "parameters": {"version": "v1", "custom": true}}"#,
        );
        let env = EnvSource::empty()
            .with_var("MLSERVER_MODEL_IMPLEMENTATION", "env-impl")
            .with_var("MLSERVER_MODEL_MAX_BATCH_SIZE", "32")
            .with_var("MLSERVER_MODEL_MAX_BATCH_TIME", "0.5")
            .with_var("MLSERVER_MODEL_VERSION", "env-v")
            .with_var("MLSERVER_MODEL_CONTENT_TYPE", "np")
            .with_var("MLSERVER_MODEL_EXTRA", r#"{"k":1}"#)
            .with_dotenv("MLSERVER_MODEL_PLATFORM=dot\nMLSERVER_MODEL_MAX_BATCH_TIME=9");
        let m = load_model_settings(&p, &env).unwrap();
        assert_eq!(m.implementation.as_deref(), Some("a"));
        assert_eq!(m.max_batch_size, 4);
        assert_eq!(m.max_batch_time, 0.5);
        assert_eq!(m.platform, "dot");
        let params = m.parameters.as_ref().unwrap();
        assert_eq!(params.version.as_deref(), Some("v1"));
        assert_eq!(params.content_type.as_deref(), Some("np"));
        assert_eq!(params.extra, json!({"k": 1}));
        assert_eq!(params.other["custom"], json!(true));
    }

    #[test]
    fn relative_and_remote_uris() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "a/b/model-settings.json",
            r#"{"parameters": {"uri": "../weights/./w.bin"}}"#,
        );
        let m = load_model_settings(&p, &EnvSource::empty()).unwrap();
        assert_eq!(
            m.uri(),
            Some(
                dir.path()
                    .join("a/weights/w.bin")
                    .display()
                    .to_string()
                    .as_str()
            )
        );
        let p = write(
            dir.path(),
            "c/model-settings.json",
            r#"{"parameters": {"uri": "s3://bucket/m"}}"#,
        );
        assert_eq!(
            load_model_settings(&p, &EnvSource::empty()).unwrap().uri(),
            Some("s3://bucket/m")
        );
        // An env URI is relative to each file's folder too.
        let env = EnvSource::empty().with_var("MLSERVER_MODEL_URI", "model.bst");
        assert_eq!(
            load_model_settings(&p, &env).unwrap().uri(),
            Some("s3://bucket/m")
        );
        let p = write(dir.path(), "d/model-settings.json", "{}");
        let m = load_model_settings(&p, &env).unwrap();
        assert_eq!(
            m.uri(),
            Some(
                dir.path()
                    .join("d/model.bst")
                    .display()
                    .to_string()
                    .as_str()
            )
        );
    }

    #[test]
    fn bad_files_are_errors_with_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "m/model-settings.json",
            r#"{"max_batch_size": -1}"#,
        );
        match load_model_settings(&p, &EnvSource::empty()) {
            Err(SettingsError::Invalid { path, .. }) => assert_eq!(path, p),
            other => panic!("{other:?}"),
        }
        let p = write(
            dir.path(),
            "n/model-settings.json",
            r#"{"parameters": "x"}"#,
        );
        assert!(matches!(
            load_model_settings(&p, &EnvSource::empty()),
            Err(SettingsError::Invalid { .. })
        ));
        let p = write(
            dir.path(),
            "o/model-settings.json",
            r#"{"inputs": [{"name": "x"}]}"#,
        );
        assert!(matches!(
            load_model_settings(&p, &EnvSource::empty()),
            Err(SettingsError::Invalid { .. })
        ));
    }

    #[test]
    fn unknown_model_keys_are_found_but_parameters_are_free_form() {
        let v = json!({"name": "m", "max_batch_sise": 3, "parameters": {"anything": 1}});
        assert_eq!(
            layer::unknown_keys(v.as_object().unwrap(), MODEL_FIELDS),
            vec!["max_batch_sise"]
        );
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "m/model-settings.json", &v.to_string());
        let m = load_model_settings(&p, &EnvSource::empty()).unwrap();
        assert_eq!(m.max_batch_size, 0);
        assert_eq!(m.parameters.unwrap().other["anything"], json!(1));
    }

    #[test]
    fn from_env_builds_a_model() {
        let env = EnvSource::empty()
            .with_var("MLSERVER_MODEL_IMPLEMENTATION", "sum")
            .with_var("MLSERVER_MODEL_NAME", "envm")
            .with_var("MLSERVER_MODEL_VERSION", "7")
            .with_var("MLSERVER_MODEL_URI", "./weights");
        let m = ModelSettings::from_env(&env).unwrap();
        assert_eq!((m.name.as_str(), m.version()), ("envm", Some("7")));
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            m.uri(),
            Some(cwd.join("weights").display().to_string().as_str())
        );
        assert!(m.source.is_none());
        let bad = EnvSource::empty().with_var("MLSERVER_MODEL_MAX_BATCH_SIZE", "lots");
        assert!(matches!(
            ModelSettings::from_env(&bad),
            Err(SettingsError::Env { .. })
        ));
    }

    #[test]
    fn inference_pool_gid_autogeneration() {
        let env =
            EnvSource::empty().with_var("MLSERVER_MODEL_AUTOGENERATE_INFERENCE_POOL_GID", "true");
        let a = ModelSettings::from_env(&env)
            .unwrap()
            .parameters
            .unwrap()
            .inference_pool_gid
            .unwrap();
        let b = ModelSettings::from_env(&env)
            .unwrap()
            .parameters
            .unwrap()
            .inference_pool_gid
            .unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        let env = env.with_var("MLSERVER_MODEL_INFERENCE_POOL_GID", "fixed");
        let p = ModelSettings::from_env(&env).unwrap().parameters.unwrap();
        assert_eq!(p.inference_pool_gid.as_deref(), Some("fixed"));
    }
}
