//! Golden tests: the Dockerfile rendered for each kind of folder, compared
//! with `golden/<kind>.Dockerfile`. After a deliberate template change,
//! `UPDATE_GOLDEN=1 cargo test -p mlserver-build` rewrites them; review the
//! diff like any other code.

use std::path::{Path, PathBuf};

use super::*;

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn golden(kind: &str, rendered: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/dockerfile/golden")
        .join(format!("{kind}.Dockerfile"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, rendered).unwrap();
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: run with UPDATE_GOLDEN=1", path.display()));
    assert_eq!(
        rendered,
        expected,
        "{kind}: rendered Dockerfile differs from {}",
        path.display()
    );
}

fn render_folder(files: &[(&str, &str)]) -> (FolderInfo, String) {
    let dir = folder(files);
    let info = inspect(dir.path()).unwrap();
    let text = render_dockerfile(&info, &BaseImages::default()).unwrap();
    (info, text)
}

const CARGO_TOML: &str = r#"
[package]
name = "my-runtime"
version = "0.1.0"

[dependencies]
mlserver-cli = "0.1"
"#;

#[test]
fn plain_folder() {
    let (info, text) = render_folder(&[("models/m/model-settings.json", "{}")]);
    assert_eq!(info.rust, None);
    assert_eq!(info.embedded, None);
    assert!(
        !text.contains("AS builder") && !text.contains("python-env") && !text.contains("dotenv")
    );
    golden("plain", &text);
}

#[test]
fn rust_runtime_folder() {
    let (info, text) = render_folder(&[
        ("Cargo.toml", CARGO_TOML),
        ("Cargo.lock", "# lock"),
        ("src/main.rs", "fn main() {}"),
    ]);
    let rust = info.rust.unwrap();
    assert_eq!(
        (rust.bin.as_str(), rust.crate_name.as_str(), rust.lockfile),
        ("my-runtime", "my_runtime", true)
    );
    assert!(text.contains("COPY Cargo.toml Cargo.lock ./"));
    assert!(text.contains("--locked"));
    golden("rust", &text);

    // No lock file: not referenced (COPY of a missing file fails the build).
    let (_, text) = render_folder(&[("Cargo.toml", CARGO_TOML)]);
    assert!(
        !text.contains("Cargo.lock") && !text.contains("--locked"),
        "{text}"
    );
}

#[test]
fn named_binary_wins() {
    let toml = format!("{CARGO_TOML}\n[[bin]]\nname = \"serve\"\npath = \"src/main.rs\"\n");
    let (info, _) = render_folder(&[("Cargo.toml", &toml)]);
    assert_eq!(info.rust.unwrap().bin, "serve");
    let dir = folder(&[("Cargo.toml", "[workspace]\nmembers = []\n")]);
    assert!(inspect(dir.path())
        .unwrap_err()
        .to_string()
        .contains("[package] name"));
}

#[test]
fn pip_folder() {
    let (info, text) = render_folder(&[("requirements.txt", "numpy\n")]);
    assert!(info.requirements);
    // Built in the image it runs in: no stage whose files get copied over.
    assert!(text.contains("ARG MLSERVER_IMAGE=mlserver-rs:0.1.0-py-slim"));
    assert!(text
        .contains("\"$MLSERVER_PYTHON\" -m pip install --no-cache-dir -r /tmp/requirements.txt"));
    assert!(!text.contains("CONDA") && !text.contains(" AS ") && !text.contains("--from"));
    golden("pip", &text);
}

#[test]
fn conda_folder() {
    let (info, text) =
        render_folder(&[("conda.yml", "name: x\n"), ("requirements.txt", "numpy\n")]);
    assert_eq!(info.conda_file.as_deref(), Some("conda.yml"));
    assert!(text.contains("COPY conda.yml /tmp/environment.yaml"));
    assert!(text.contains("ARG MLSERVER_IMAGE=mlserver-rs:0.1.0\n"));
    assert!(text.contains("ENV PATH=$PATH:/opt/mlserver-env/bin"));
    golden("conda", &text);
}

#[test]
fn embedded_settings_folder() {
    let (info, text) = render_folder(&[
        ("settings.json", "{}"),
        ("model-settings.json", r#"{"implementation": "sum"}"#),
    ]);
    assert_eq!(
        info.embedded.as_deref(),
        Some("settings.json and model-settings.json")
    );
    assert!(text.contains("RUN /usr/local/bin/mlserver dotenv /opt/mlserver > /opt/mlserver/.env"));
    golden("embedded", &text);
}

#[test]
fn every_dockerfile_keeps_the_image_contract() {
    for files in [
        vec![],
        vec![("Cargo.toml", CARGO_TOML)],
        vec![("environment.yaml", "name: x\n")],
        vec![("requirements.txt", "x\n")],
        vec![("requirements.txt", "x\n"), ("Cargo.toml", CARGO_TOML)],
        vec![("settings.json", "{}")],
    ] {
        let (_, text) = render_folder(&files);
        assert!(text.starts_with(GENERATED_MARKER));
        for needed in [
            "ENV MLSERVER_MODELS_DIR=/mnt/models",
            "EXPOSE 8080 8081 8082",
            "USER 1000",
            "exec /usr/local/bin/mlserver start \\\"$MLSERVER_MODELS_DIR\\\"",
        ] {
            assert!(text.contains(needed), "{needed} missing from\n{text}");
        }
        // Classic-builder syntax only: no heredocs, no --mount, no bracket
        // globs standing in for optional files.
        assert!(
            !text.contains("<<") && !text.contains("--mount") && !text.contains("]*"),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("COPY") && l.contains('[')),
            "{text}"
        );
        assert!(!text.contains("\n\n\n"), "no runs of blank lines");
        // A Python environment may hold MLServer's own `mlserver` console
        // script: ours is always called by its absolute path.
        assert!(
            !text.contains("RUN mlserver") && !text.contains("exec mlserver"),
            "{text}"
        );
        assert!(
            !text.contains("&amp;") && !text.contains("&quot;"),
            "not HTML-escaped"
        );
    }
}

#[test]
fn ignore_file_keeps_native_libraries() {
    let text = render_dockerignore().unwrap();
    assert!(text.starts_with(GENERATED_MARKER));
    let ignore = crate::dockerignore::DockerIgnore::parse(&text).unwrap();
    for excluded in [
        ".git/config",
        "target/release/x",
        "a/__pycache__/m.pyc",
        "x.log",
    ] {
        assert!(ignore.is_excluded(excluded), "{excluded}");
    }
    for kept in [
        "lib/model.so",
        "bin/tool",
        "model.onnx",
        "settings.json",
        "Dockerfile",
    ] {
        assert!(!ignore.is_excluded(kept), "{kept}");
    }
}

#[test]
fn overwrite_guard() {
    let dir = folder(&[
        ("mine", "FROM scratch\n"),
        ("ours", &format!("{GENERATED_MARKER} (x)\n")),
    ]);
    assert!(!is_ours_or_absent(&dir.path().join("mine")));
    assert!(is_ours_or_absent(&dir.path().join("ours")));
    assert!(is_ours_or_absent(&dir.path().join("absent")));
}
