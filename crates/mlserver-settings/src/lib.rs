//! MLServer-compatible configuration: `settings.json`, every
//! `model-settings.json` under a models folder, `MLSERVER_*` /
//! `MLSERVER_MODEL_*` environment variables and the `.env` file.
//!
//! The goal is that an existing MLServer deployment keeps its files and
//! variables when it switches to mlserver-rs, so names, defaults and
//! precedence are MLServer's (pydantic-settings'):
//!
//! **file values > process environment > `.env` > defaults.**
//!
//! Complex values in the environment (lists, dicts, nested objects) are
//! JSON, e.g. `MLSERVER_CORS_SETTINGS='{"allow_origins":["*"]}'` or
//! `MLSERVER_MODEL_EXTRA='{"k":1}'`; booleans accept `true/false/1/0/yes/no/
//! on/off`. Where MLServer is silent, this crate logs instead: unknown keys in
//! a settings file, and environment variables shadowed by a file value, each
//! get a log line naming them.
//!
//! - [`load_settings`]: the server settings for `mlserver start FOLDER`.
//! - [`scan_models`] / [`find_models`]: the model repository scan.
//! - [`get_model_uri`]: where a model's artefacts are.
//! - [`EnvSource`]: the environment, injectable for tests.
//!
//! ```
//! use mlserver_settings::{get_model_uri, load_settings, scan_models, EnvSource, ModelUri};
//!
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("settings.json"), r#"{"http_port": 9000}"#).unwrap();
//! std::fs::create_dir(dir.path().join("my-model")).unwrap();
//! std::fs::write(dir.path().join("my-model/model-settings.json"), r#"{"implementation": "sum"}"#).unwrap();
//! std::fs::write(dir.path().join("my-model/model.bst"), b"...").unwrap();
//!
//! // In a binary: EnvSource::from_process() (process variables plus ./.env).
//! let env = EnvSource::empty().with_var("MLSERVER_HTTP_PORT", "1234").with_var("MLSERVER_GRPC_PORT", "9001");
//! let settings = load_settings(dir.path(), &env).unwrap();
//! assert_eq!(settings.http_port, 9000); // the file wins
//! assert_eq!(settings.grpc_port, 9001);
//!
//! let scan = scan_models(&settings.model_repository_root, &env);
//! assert!(scan.errors.is_empty());
//! let model = &scan.models[0];
//! assert_eq!(model.name, "my-model"); // defaults to the folder name
//! let uri = get_model_uri(model, &["model.bst", "model.json"]).unwrap();
//! assert_eq!(uri, ModelUri::Local(dir.path().join("my-model/model.bst")));
//! ```

mod embedded;
mod env;
mod error;
mod layer;
mod model;
mod scan;
mod settings;
mod trusted;
mod uri;

pub use embedded::embedded_dotenv;
pub use env::{expand_vars, parse_dotenv, EnvOrigin, EnvSource};
pub use error::{InvalidModelUri, SettingsError};
pub use model::{
    get_model_uri, load_model_settings, ModelParameters, ModelSettings, MODEL_SETTINGS_FILENAME,
};
pub use scan::{find_models, scan_models, ScanResult};
pub use settings::{load_settings, CorsSettings, Settings, SETTINGS_FILENAME};
pub use trusted::{
    canonical_implementation, RuntimeSecurity, TrustedRuntimesError, UntrustedModel,
    TRUSTED_RUNTIMES_PATH,
};
pub use uri::ModelUri;
