//! Layering of values the way pydantic-settings does it: defaults, then
//! `.env`, then process variables, then the file, each layer deep-merged over
//! the previous one, before serde turns the result into a typed struct.
//!
//! Working on `serde_json` maps rather than on the structs keeps the
//! precedence rules in one place and lets absent keys fall through to serde
//! defaults (which is how `metrics_endpoint: null` stays distinct from a
//! missing `metrics_endpoint`).

use std::path::Path;

use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value};
use tracing::{info, warn};

use crate::env::{EnvOrigin, EnvSource};
use crate::error::SettingsError;

/// How a raw value (an environment string, or a loosely typed JSON value) is
/// converted before serde sees it. Mirrors pydantic's lax mode, so files that
/// MLServer accepts (`"http_port": "8080"`) are accepted here too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Taken verbatim from the environment; numbers in files become strings.
    Str,
    /// `true/false/1/0/yes/no/on/off/t/f/y/n`, any case.
    Bool,
    Int,
    Float,
    /// Lists, dicts and nested models: the environment value is JSON.
    Json,
    /// A dict as JSON, or else the raw string (`logging_settings`).
    StrOrJson,
}

/// One field of a settings struct, by its JSON name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub name: &'static str,
    pub kind: Kind,
}

pub(crate) const fn field(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

/// A group of fields sharing an environment prefix.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Section {
    /// `MLSERVER_` or `MLSERVER_MODEL_`.
    pub prefix: &'static str,
    /// Prepended to field names in log lines (`cors_settings.`).
    pub scope: &'static str,
    pub fields: &'static [Field],
    /// Keep keys no field knows (`extra="allow"`, `ModelParameters`) instead
    /// of dropping them.
    pub keep_unknown: bool,
}

/// Explicit values (from a file) with where they came from, for messages.
pub(crate) struct Explicit<'a> {
    pub values: Map<String, Value>,
    pub path: &'a Path,
}

/// An environment variable that was set but lost to a file value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shadowed {
    pub var: String,
    pub field: String,
}

/// Lenient boolean parsing, as pydantic accepts it.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// Converts `value` for a field of `kind`. `from_env` means `value` is the
/// raw string of an environment variable; otherwise it came from JSON and is
/// only loosened where pydantic would (strings holding numbers or booleans).
/// Anything else is passed through for serde to accept or reject.
pub(crate) fn coerce(kind: Kind, value: Value, from_env: bool) -> Result<Value, String> {
    let Value::String(s) = value else {
        return Ok(match (kind, value) {
            (Kind::Bool, Value::Number(n)) if n.as_i64() == Some(0) => Value::Bool(false),
            (Kind::Bool, Value::Number(n)) if n.as_i64() == Some(1) => Value::Bool(true),
            (Kind::Int, Value::Number(n)) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                    Value::Number(Number::from(f as i64))
                }
                _ => Value::Number(n),
            },
            (Kind::Str, Value::Number(n)) => Value::String(n.to_string()),
            (_, other) => other,
        });
    };
    match kind {
        Kind::Str => Ok(Value::String(s)),
        Kind::Bool => parse_bool(&s)
            .map(Value::Bool)
            .ok_or_else(|| format!("expected a boolean (true/false/1/0/yes/no/on/off), got {s:?}")),
        Kind::Int => s
            .trim()
            .parse::<i64>()
            .map(|i| Value::Number(i.into()))
            .map_err(|_| format!("expected an integer, got {s:?}")),
        Kind::Float => s
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("expected a number, got {s:?}")),
        Kind::Json if from_env => {
            serde_json::from_str(&s).map_err(|e| format!("expected a JSON value: {e}"))
        }
        Kind::Json => Ok(Value::String(s)),
        Kind::StrOrJson if from_env => match serde_json::from_str::<Value>(&s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Ok(Value::String(s)),
        },
        Kind::StrOrJson => Ok(Value::String(s)),
    }
}

/// Keys of a settings object that no field of `fields` knows. MLServer drops
/// these silently (`extra="ignore"`); we still drop them but say so, since a
/// typo like `max_batch_sise` otherwise costs an afternoon.
pub(crate) fn unknown_keys(values: &Map<String, Value>, fields: &[Field]) -> Vec<String> {
    values
        .keys()
        .filter(|k| !fields.iter().any(|f| f.name == k.as_str()))
        .cloned()
        .collect()
}

/// Whether `cause` is new: true the first time, false after. Settings
/// files are read again on every repository scan (index, load, unload), and
/// a warning about a file says nothing new the second time. Bounded: past
/// 4096 causes, everything counts as seen.
pub(crate) fn first_time(cause: String) -> bool {
    use std::collections::HashSet;
    use std::sync::{Mutex, OnceLock};
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let mut seen = SEEN
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    seen.len() < 4096 && seen.insert(cause)
}

/// Logs [`unknown_keys`] with the file they are in, once per file and keys.
pub(crate) fn warn_unknown_keys(values: &Map<String, Value>, section: &Section, path: &Path) {
    let unknown = unknown_keys(values, section.fields);
    if !unknown.is_empty()
        && first_time(format!(
            "unknown {} {}{unknown:?}",
            path.display(),
            section.scope
        ))
    {
        let names: Vec<String> = unknown
            .iter()
            .map(|k| format!("{}{k}", section.scope))
            .collect();
        warn!(
            "ignoring unknown field(s) {} in {} (not a setting MLServer knows; check the spelling)",
            names.join(", "),
            path.display()
        );
    }
}

/// Recursively merges `over` into `base`: objects merge key by key, anything
/// else replaces (pydantic-settings' `deep_update`).
pub(crate) fn deep_merge(base: &mut Map<String, Value>, over: Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => deep_merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Builds the merged value map of `section` for type `T`: `.env` values,
/// then process values, then `explicit` values on top. Each environment value
/// is checked on its own against `T` so a bad one is reported by variable
/// name. Returns the map and the variables the file shadowed (also logged).
pub(crate) fn layer<T: DeserializeOwned>(
    env: &EnvSource,
    section: &Section,
    explicit: Option<Explicit<'_>>,
) -> Result<(Map<String, Value>, Vec<Shadowed>), SettingsError> {
    let mut merged = Map::new();
    let mut from_env: Vec<(String, &'static str)> = Vec::new();
    for origin in [EnvOrigin::DotEnv, EnvOrigin::Process] {
        for f in section.fields {
            let var = format!("{}{}", section.prefix, f.name.to_uppercase());
            let Some(raw) = env.get_from(&var, origin) else {
                continue;
            };
            let value = coerce(f.kind, Value::String(raw.to_owned()), true).map_err(|message| {
                SettingsError::Env {
                    var: var.clone(),
                    message,
                }
            })?;
            let mut single = Map::new();
            single.insert(f.name.to_owned(), value);
            if let Err(e) = serde_json::from_value::<T>(Value::Object(single.clone())) {
                return Err(SettingsError::Env {
                    var,
                    message: e.to_string(),
                });
            }
            deep_merge(&mut merged, single);
            from_env.push((var, f.name));
        }
    }
    let mut shadowed = Vec::new();
    if let Some(Explicit { values, path }) = explicit {
        let mut file = Map::new();
        for (k, v) in values {
            let v = match section.fields.iter().find(|f| f.name == k) {
                Some(f) => coerce(f.kind, v, false).map_err(|message| SettingsError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("{}{k}: {message}", section.scope),
                })?,
                None if section.keep_unknown => v,
                None => continue,
            };
            file.insert(k, v);
        }
        for (var, name) in from_env {
            if file.contains_key(name) && !shadowed.iter().any(|s: &Shadowed| s.var == var) {
                let field = format!("{}{name}", section.scope);
                info!(
                    "environment variable {var} is overridden by `{field}` in {} (file values take precedence over the environment)",
                    path.display()
                );
                shadowed.push(Shadowed { var, field });
            }
        }
        deep_merge(&mut merged, file);
    }
    Ok((merged, shadowed))
}

/// Turns the merged map into `T`. When a file is involved and serde rejects
/// the result, the file alone is parsed again to get serde's line and column.
pub(crate) fn finish<T: DeserializeOwned>(
    merged: Map<String, Value>,
    file: Option<(&Path, &str)>,
    prefix: &str,
) -> Result<T, SettingsError> {
    serde_json::from_value::<T>(Value::Object(merged)).map_err(|e| match file {
        Some((path, text)) => {
            // Only trust the strict re-parse if it hit the same problem (it
            // may instead stop at a value the lax layering accepted).
            let message = match serde_json::from_str::<T>(text) {
                Err(positioned) if positioned.to_string().starts_with(&e.to_string()) => {
                    positioned.to_string()
                }
                _ => e.to_string(),
            };
            SettingsError::Invalid {
                path: path.to_path_buf(),
                message,
            }
        }
        None => SettingsError::Env {
            var: format!("{prefix}*"),
            message: e.to_string(),
        },
    })
}

/// Reads a JSON settings file that must hold an object.
pub(crate) fn read_object(path: &Path) -> Result<(String, Map<String, Value>), SettingsError> {
    let text = std::fs::read_to_string(path).map_err(|source| SettingsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let invalid = |message: String| SettingsError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok((text, map)),
        Ok(other) => Err(invalid(format!(
            "expected a JSON object, found {}",
            kind_name(&other)
        ))),
        Err(e) => Err(invalid(e.to_string())),
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cause_is_new_once() {
        assert!(first_time("layer test cause".into()));
        assert!(!first_time("layer test cause".into()));
        assert!(first_time("layer test other cause".into()));
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Probe {
        #[serde(default)]
        n: i64,
        #[serde(default)]
        list: Vec<String>,
        #[serde(default)]
        obj: Map<String, Value>,
    }

    const FIELDS: &[Field] = &[
        field("n", Kind::Int),
        field("list", Kind::Json),
        field("obj", Kind::Json),
    ];
    const SECTION: Section = Section {
        prefix: "P_",
        scope: "",
        fields: FIELDS,
        keep_unknown: false,
    };

    #[test]
    fn coerce_env_values() {
        assert_eq!(coerce(Kind::Bool, json!("YES"), true), Ok(json!(true)));
        assert_eq!(coerce(Kind::Bool, json!("off"), true), Ok(json!(false)));
        assert!(coerce(Kind::Bool, json!("maybe"), true).is_err());
        assert_eq!(coerce(Kind::Int, json!(" 42 "), true), Ok(json!(42)));
        assert!(coerce(Kind::Int, json!("4.5"), true).is_err());
        assert_eq!(coerce(Kind::Float, json!("0.25"), true), Ok(json!(0.25)));
        assert_eq!(coerce(Kind::Str, json!("[1]"), true), Ok(json!("[1]")));
        assert_eq!(coerce(Kind::Json, json!("[\"a\"]"), true), Ok(json!(["a"])));
        assert!(coerce(Kind::Json, json!("[oops"), true).is_err());
        assert_eq!(
            coerce(Kind::StrOrJson, json!("{\"v\":1}"), true),
            Ok(json!({"v": 1}))
        );
        assert_eq!(
            coerce(Kind::StrOrJson, json!("log.ini"), true),
            Ok(json!("log.ini"))
        );
    }

    #[test]
    fn coerce_file_values_like_pydantic_lax_mode() {
        assert_eq!(coerce(Kind::Int, json!("8080"), false), Ok(json!(8080)));
        assert_eq!(coerce(Kind::Int, json!(3.0), false), Ok(json!(3)));
        assert_eq!(coerce(Kind::Bool, json!(1), false), Ok(json!(true)));
        assert_eq!(coerce(Kind::Str, json!(2), false), Ok(json!("2")));
        // Non-strings pass through for serde to judge.
        assert_eq!(coerce(Kind::Json, json!("x"), false), Ok(json!("x")));
        assert_eq!(coerce(Kind::Int, json!(null), false), Ok(json!(null)));
    }

    #[test]
    fn unknown_keys_are_listed() {
        let v = json!({"n": 1, "nn": 2, "list": []});
        assert_eq!(
            unknown_keys(v.as_object().unwrap(), FIELDS),
            vec!["nn".to_owned()]
        );
    }

    #[test]
    fn deep_merge_merges_objects_only() {
        let mut base = json!({"a": {"x": 1, "y": 2}, "b": [1]})
            .as_object()
            .unwrap()
            .clone();
        deep_merge(
            &mut base,
            json!({"a": {"y": 3}, "b": [2]})
                .as_object()
                .unwrap()
                .clone(),
        );
        assert_eq!(
            Value::Object(base),
            json!({"a": {"x": 1, "y": 3}, "b": [2]})
        );
    }

    #[test]
    fn layering_order_and_shadowing() {
        let env = EnvSource::empty()
            .with_dotenv("P_N=1\nP_LIST=[\"dot\"]\nP_OBJ={\"a\":1}")
            .with_var("P_N", "2")
            .with_var("P_OBJ", "{\"b\":2}");
        let (m, shadowed) = layer::<Probe>(&env, &SECTION, None).unwrap();
        assert_eq!(
            Value::Object(m),
            json!({"n": 2, "list": ["dot"], "obj": {"a": 1, "b": 2}})
        );
        assert!(shadowed.is_empty());

        let file = json!({"n": "7", "other": true})
            .as_object()
            .unwrap()
            .clone();
        let path = Path::new("/f.json");
        let explicit = Explicit { values: file, path };
        let (m, shadowed) = layer::<Probe>(&env, &SECTION, Some(explicit)).unwrap();
        assert_eq!(m["n"], json!(7));
        assert!(!m.contains_key("other"));
        assert_eq!(
            shadowed,
            vec![Shadowed {
                var: "P_N".into(),
                field: "n".into()
            }]
        );
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let env = EnvSource::empty().with_var("P_LIST", "{\"not\":\"a list\"}");
        match layer::<Probe>(&env, &SECTION, None) {
            Err(SettingsError::Env { var, .. }) => assert_eq!(var, "P_LIST"),
            other => panic!("{other:?}"),
        }
        let env = EnvSource::empty().with_dotenv("P_N=abc");
        assert!(matches!(
            layer::<Probe>(&env, &SECTION, None),
            Err(SettingsError::Env { .. })
        ));
    }
}
