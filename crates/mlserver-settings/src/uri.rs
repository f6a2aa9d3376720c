//! `parameters.uri` handling: MLServer's `get_model_uri` and the path
//! arithmetic behind it.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Where a model's artefacts are, as [`get_model_uri`](crate::get_model_uri) resolved it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelUri {
    /// An existing local file or directory (absolute).
    Local(PathBuf),
    /// A URI with a non-file scheme (`s3://`, `gs://`, `http://`, ...),
    /// returned untouched: fetching it is the runtime's job, as in MLServer.
    Remote(String),
}

impl ModelUri {
    /// The local path, if this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            ModelUri::Local(p) => Some(p),
            ModelUri::Remote(_) => None,
        }
    }
}

impl fmt::Display for ModelUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModelUri::Local(p) => write!(f, "{}", p.display()),
            ModelUri::Remote(u) => f.write_str(u),
        }
    }
}

/// The URI scheme, lower-cased, when `uri` has one (RFC 3986 syntax, as
/// Python's `urlparse` sees it). Single letters are not taken for schemes so
/// that `C:\models` stays a path.
pub(crate) fn scheme(uri: &str) -> Option<String> {
    let (scheme, _) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let valid = first.is_ascii_alphabetic()
        && scheme.len() > 1
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| scheme.to_ascii_lowercase())
}

/// The local path a URI names, or `None` for a remote scheme. Strips
/// `file://` (and a bare `file:`). Unlike Python's `urlparse`, which would
/// read `file://models/m` as host `models` plus path `/m`, the rest is kept
/// whole, which is what people writing that mean.
pub(crate) fn local_path(uri: &str) -> Option<&Path> {
    match scheme(uri).as_deref() {
        None => Some(Path::new(uri)),
        Some("file") => {
            let rest = &uri[5..];
            Some(Path::new(rest.strip_prefix("//").unwrap_or(rest)))
        }
        Some(_) => None,
    }
}

/// Resolves a `parameters.uri` found in a file in `folder`: local paths become
/// absolute and normalised, remote URIs are returned unchanged.
pub(crate) fn resolve_against(folder: &Path, uri: &str) -> String {
    match local_path(uri) {
        Some(p) => normalize(&folder.join(p)).display().to_string(),
        None => uri.to_owned(),
    }
}

/// Lexical normalisation like Python's `os.path.normpath`: drops `.`, folds
/// `name/..`, drops `..` right after the root, keeps leading `..` of a
/// relative path. Symlinks are not consulted, as in MLServer.
pub(crate) fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            other => out.push(other),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelParameters;
    use crate::model::{get_model_uri, ModelSettings};

    fn model(uri: Option<&str>, source: Option<PathBuf>) -> ModelSettings {
        ModelSettings {
            name: "m".into(),
            parameters: Some(ModelParameters {
                uri: uri.map(str::to_owned),
                ..Default::default()
            }),
            source,
            ..Default::default()
        }
    }

    #[test]
    fn normalize_is_lexical() {
        assert_eq!(
            normalize(Path::new("/a/b/../c/./d")),
            PathBuf::from("/a/c/d")
        );
        assert_eq!(normalize(Path::new("/../x")), PathBuf::from("/x"));
        assert_eq!(
            normalize(Path::new("../a/../../b")),
            PathBuf::from("../../b")
        );
        assert_eq!(normalize(Path::new("a/..")), PathBuf::from("."));
    }

    #[test]
    fn schemes() {
        assert_eq!(scheme("s3://bucket/m"), Some("s3".into()));
        assert_eq!(scheme("GS://b"), Some("gs".into()));
        assert_eq!(scheme("file:///tmp"), Some("file".into()));
        assert_eq!(scheme("./model.joblib"), None);
        assert_eq!(scheme("/abs/x:y"), None);
        assert_eq!(scheme("C:\\models"), None);
        assert_eq!(local_path("file:///tmp/m"), Some(Path::new("/tmp/m")));
        assert_eq!(local_path("file:rel/m"), Some(Path::new("rel/m")));
        assert_eq!(local_path("https://x/m"), None);
    }

    #[test]
    fn resolve_against_folder() {
        let f = Path::new("/models/m");
        assert_eq!(resolve_against(f, "./model.bst"), "/models/m/model.bst");
        assert_eq!(
            resolve_against(f, "../shared/w.bin"),
            "/models/shared/w.bin"
        );
        assert_eq!(resolve_against(f, "/abs/w"), "/abs/w");
        assert_eq!(resolve_against(f, "file://w"), "/models/m/w");
        assert_eq!(resolve_against(f, "s3://b/k"), "s3://b/k");
    }

    #[test]
    fn missing_uri_is_invalid() {
        let e = get_model_uri(&model(None, None), &[]).unwrap_err();
        assert_eq!(e.to_string(), "Invalid URI specified for model m");
        let no_params = ModelSettings {
            name: "m".into(),
            ..Default::default()
        };
        assert_eq!(get_model_uri(&no_params, &[]).unwrap_err().uri, "");
        assert!(get_model_uri(&model(Some(""), None), &[]).is_err());
    }

    #[test]
    fn remote_uris_pass_through() {
        for u in ["s3://bucket/model", "gs://b/m", "http://h/m.bin"] {
            assert_eq!(
                get_model_uri(&model(Some(u), None), &["model.bst"]),
                Ok(ModelUri::Remote(u.into()))
            );
        }
    }

    #[test]
    fn files_dirs_and_wellknown_names() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let src = Some(root.join("model-settings.json"));
        std::fs::write(root.join("model.pkl"), b"x").unwrap();
        std::fs::write(root.join("model.joblib"), b"x").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        let wk = ["model.joblib", "model.pickle", "model.pkl"];

        // The folder itself: the first well-known file in list order.
        let got = get_model_uri(&model(Some("."), src.clone()), &wk).unwrap();
        assert_eq!(got, ModelUri::Local(normalize(&root.join("model.joblib"))));
        // No well-known names: the directory.
        let got = get_model_uri(&model(Some("./"), src.clone()), &[]).unwrap();
        assert_eq!(got.as_local(), Some(normalize(root).as_path()));
        // A directory without any of them.
        let got = get_model_uri(&model(Some("sub"), src.clone()), &wk).unwrap();
        assert_eq!(got, ModelUri::Local(root.join("sub")));
        // A file, relative, absolute, and with file://.
        let pkl = root.join("model.pkl");
        assert_eq!(
            get_model_uri(&model(Some("model.pkl"), src.clone()), &wk).unwrap(),
            ModelUri::Local(pkl.clone())
        );
        let abs = pkl.display().to_string();
        assert_eq!(
            get_model_uri(&model(Some(&abs), None), &wk).unwrap(),
            ModelUri::Local(pkl.clone())
        );
        let file_uri = format!("file://{abs}");
        assert_eq!(
            get_model_uri(&model(Some(&file_uri), None), &wk).unwrap(),
            ModelUri::Local(pkl)
        );
        // Relative with `..` from a nested source.
        let nested = Some(root.join("sub").join("model-settings.json"));
        let got = get_model_uri(&model(Some("../model.pkl"), nested), &[]).unwrap();
        assert_eq!(got, ModelUri::Local(root.join("model.pkl")));
    }

    #[test]
    fn missing_paths_are_invalid_with_the_resolved_path() {
        let dir = tempfile::tempdir().unwrap();
        let src = Some(dir.path().join("model-settings.json"));
        let e = get_model_uri(&model(Some("nope.bin"), src), &[]).unwrap_err();
        let expected = dir.path().join("nope.bin").display().to_string();
        assert_eq!(
            e.to_string(),
            format!("Invalid URI specified for model m ({expected})")
        );
    }

    #[test]
    fn sourceless_relative_paths_use_the_working_directory() {
        let cwd = std::env::current_dir().unwrap();
        // The crate folder has a Cargo.toml.
        let got = get_model_uri(&model(Some("Cargo.toml"), None), &[]).unwrap();
        assert_eq!(got, ModelUri::Local(cwd.join("Cargo.toml")));
    }
}
