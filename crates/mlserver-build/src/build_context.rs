//! The build context: the folder as a tar archive, filtered by its
//! `.dockerignore` (or, when it has none, by the one we generate), plus
//! generated files that must not be written into the folder.

use std::path::{Path, PathBuf};

use walkdir::WalkDir;

use crate::dockerignore::{DockerIgnore, IgnoreError};

/// Why the build context could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The folder is missing or is not a directory.
    #[error("{} does not exist or is not a directory", .0.display())]
    NoFolder(PathBuf),
    /// A file or directory in the folder could not be read.
    #[error("could not read {}: {source}", path.display())]
    Io {
        /// The path that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The ignore rules have an invalid pattern.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ContextError + '_ {
    move |source| ContextError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The folder's ignore rules: its `.dockerignore`, else `fallback`.
pub fn ignore_rules(folder: &Path, fallback: &str) -> Result<DockerIgnore, ContextError> {
    let path = folder.join(".dockerignore");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(DockerIgnore::parse(&text)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::parse(fallback)?),
        Err(e) => Err(io(&path)(e)),
    }
}

/// The entries the context holds, in a stable order: `(absolute, relative)`.
fn entries(folder: &Path, ignore: &DockerIgnore) -> Result<Vec<(PathBuf, String)>, ContextError> {
    if !folder.is_dir() {
        return Err(ContextError::NoFolder(folder.to_path_buf()));
    }
    let mut out = Vec::new();
    let mut walk = WalkDir::new(folder)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walk.next() {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(folder).to_path_buf();
            ContextError::Io {
                path,
                source: e.into(),
            }
        })?;
        let relative = relative_name(folder, entry.path());
        // Docker always sends the ignore file; the daemon needs it.
        if relative != ".dockerignore" && ignore.is_excluded(&relative) {
            if entry.file_type().is_dir() && !ignore.may_contain_included(&relative) {
                walk.skip_current_dir();
            }
            continue;
        }
        out.push((entry.path().to_path_buf(), relative));
    }
    Ok(out)
}

fn relative_name(folder: &Path, path: &Path) -> String {
    path.strip_prefix(folder)
        .unwrap_or(path)
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The relative paths the context would hold (directories included).
pub fn context_paths(folder: &Path, ignore: &DockerIgnore) -> Result<Vec<String>, ContextError> {
    Ok(entries(folder, ignore)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// The context as an uncompressed tar. `extra` files go at the root and
/// replace a folder file of the same name.
pub fn build_context(
    folder: &Path,
    ignore: &DockerIgnore,
    extra: &[(&str, &[u8])],
) -> Result<Vec<u8>, ContextError> {
    let mut tar = tar::Builder::new(Vec::new());
    // Symlinks travel as symlinks, as Docker sends them.
    tar.follow_symlinks(false);
    for (path, relative) in entries(folder, ignore)? {
        if extra.iter().any(|(name, _)| *name == relative) {
            continue;
        }
        tar.append_path_with_name(&path, &relative)
            .map_err(io(&path))?;
    }
    for (name, contents) in extra {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_size(contents.len() as u64);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, name, *contents)
            .map_err(io(Path::new(name)))?;
    }
    tar.into_inner().map_err(io(folder))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(archive: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut a = tar::Archive::new(archive);
        a.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_owned();
                let mut data = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut data).unwrap();
                (name, data)
            })
            .collect()
    }

    #[test]
    fn filters_adds_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let write = |rel: &str, text: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        write(
            ".dockerignore",
            "*.log\ntarget/\n!keep.log\n**/__pycache__\n",
        );
        write("model.onnx", "weights");
        write("debug.log", "x");
        write("keep.log", "kept");
        write("target/release/big", "x");
        write("pkg/__pycache__/m.pyc", "x");
        write("pkg/lib/native.so", "so");
        write("Dockerfile", "the folder's own");
        std::os::unix::fs::symlink("model.onnx", root.join("link.onnx")).unwrap();

        let ignore = ignore_rules(root, "").unwrap();
        let archive = build_context(root, &ignore, &[("Dockerfile", b"generated")]).unwrap();
        let entries = names(&archive);
        let got: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            got,
            vec![
                ".dockerignore",
                "keep.log",
                "link.onnx",
                "model.onnx",
                "pkg",
                "pkg/lib",
                "pkg/lib/native.so",
                "Dockerfile",
            ]
        );
        let dockerfile = entries.iter().find(|(n, _)| n == "Dockerfile").unwrap();
        assert_eq!(dockerfile.1, b"generated");
        assert_eq!(
            context_paths(root, &ignore).unwrap(),
            vec![
                ".dockerignore",
                "Dockerfile",
                "keep.log",
                "link.onnx",
                "model.onnx",
                "pkg",
                "pkg/lib",
                "pkg/lib/native.so"
            ]
        );
    }

    #[test]
    fn fallback_rules_and_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), "x").unwrap();
        let ignore = ignore_rules(dir.path(), "*.log\n").unwrap();
        assert!(context_paths(dir.path(), &ignore).unwrap().is_empty());
        let missing = dir.path().join("nope");
        assert!(matches!(
            build_context(&missing, &ignore, &[]),
            Err(ContextError::NoFolder(_))
        ));
        std::fs::write(dir.path().join(".dockerignore"), "[oops\n").unwrap();
        assert!(matches!(
            ignore_rules(dir.path(), ""),
            Err(ContextError::Ignore(_))
        ));
    }
}
