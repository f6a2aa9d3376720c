//! `mlserver init NAME`: a new custom-runtime crate that builds, serves and
//! turns into an image (`mlserver build`) as it is.
//!
//! MLServer's `init` runs cookiecutter on a remote template; here the
//! templates (`templates/init/`) are compiled into the binary, so it works
//! offline and the scaffold always matches this version's API.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context};
use clap::Args;
use handlebars::Handlebars;
use serde::Serialize;

const CARGO_TOML: &str = include_str!("../../../templates/init/Cargo.toml.hbs");
const MAIN_RS: &str = include_str!("../../../templates/init/main.rs.hbs");
const MODEL_SETTINGS: &str = include_str!("../../../templates/init/model-settings.json.hbs");
const README: &str = include_str!("../../../templates/init/README.md.hbs");
const GITIGNORE: &str = include_str!("../../../templates/init/gitignore.hbs");

/// Our crates a runtime depends on, by the key the Cargo.toml template uses.
const CRATES: [(&str, &str); 3] = [
    ("cli", "mlserver-cli"),
    ("runtime", "mlserver-runtime"),
    ("types", "mlserver-types"),
];

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The crate's name (letters, digits, `-`, `_`): also the binary's and
    /// the model's name.
    pub name: String,
    /// Where to create it (default: ./NAME). It must not exist or be empty.
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// Depend on the mlserver-rs checkout at this path (relative path
    /// dependencies). Default: the checkout the new folder is inside or next
    /// to, if any.
    #[arg(long, value_name = "CHECKOUT", conflicts_with_all = ["mlserver_version", "mlserver_git"])]
    pub mlserver_path: Option<PathBuf>,
    /// Depend on this version of the crates from the registry (default when
    /// no checkout is found: this mlserver's version).
    #[arg(long, value_name = "VERSION", conflicts_with = "mlserver_git")]
    pub mlserver_version: Option<String>,
    /// Depend on the crates from this git repository.
    #[arg(long, value_name = "URL")]
    pub mlserver_git: Option<String>,
    /// With --mlserver-git: the commit, tag or branch.
    #[arg(long, value_name = "REV", requires = "mlserver_git")]
    pub mlserver_rev: Option<String>,
}

/// How the new crate depends on ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// Path dependencies on a checkout, relative to the new crate.
    Path {
        checkout: PathBuf,
        relative: PathBuf,
    },
    Version(String),
    Git {
        url: String,
        rev: Option<String>,
    },
}

impl Source {
    fn dependency(&self, krate: &str) -> String {
        match self {
            Source::Path { relative, .. } => {
                let p = relative.join("crates").join(krate);
                format!("{{ path = {} }}", toml_string(&p.to_string_lossy()))
            }
            Source::Version(v) => toml_string(v),
            Source::Git { url, rev } => match rev {
                Some(r) => format!("{{ git = {}, rev = {} }}", toml_string(url), toml_string(r)),
                None => format!("{{ git = {} }}", toml_string(url)),
            },
        }
    }

    fn comment(&self) -> String {
        match self {
            Source::Path { checkout, .. } => {
                format!("mlserver-rs from the checkout at {}", checkout.display())
            }
            Source::Version(v) => format!("mlserver-rs {v} from the registry"),
            Source::Git { url, .. } => format!("mlserver-rs from {url}"),
        }
    }

    fn image_note(&self) -> &'static str {
        match self {
            Source::Path { .. } => {
                "this crate depends on an mlserver-rs checkout by path, which is outside the \
                 build context. Before `mlserver build`, switch the three `mlserver-*` \
                 dependencies in Cargo.toml to a version or a git repository (or re-create the \
                 project with `mlserver init --mlserver-git URL`)."
            }
            Source::Version(_) => {
                "the `mlserver-*` crates come from the registry, so the build needs to reach it."
            }
            Source::Git { .. } => {
                "the `mlserver-*` crates come from git, so the build needs to reach that \
                 repository."
            }
        }
    }
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Checks that `name` is a package name cargo accepts and that does not
/// clash with the crates it depends on.
pub(crate) fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid {
        bail!(
            "{name:?} cannot be a crate name: use ASCII letters, digits, '-' and '_', starting with a letter"
        );
    }
    const TAKEN: [&str; 10] = [
        "mlserver",
        "mlserver-types",
        "mlserver-settings",
        "mlserver-runtime",
        "mlserver-proto",
        "mlserver-server",
        "mlserver-build",
        "mlserver-examples",
        "mlserver-onnx",
        "mlserver-cli",
    ];
    const RESERVED: [&str; 8] = [
        "test",
        "std",
        "core",
        "alloc",
        "proc-macro",
        "self",
        "crate",
        "super",
    ];
    let normalized = name.replace('_', "-");
    if TAKEN.contains(&normalized.as_str()) || RESERVED.contains(&normalized.as_str()) {
        bail!(
            "{name:?} is the name of an mlserver-rs crate or reserved by Rust; pick another name"
        );
    }
    Ok(())
}

/// `my-runtime` -> `MyRuntime`.
pub(crate) fn struct_name(name: &str) -> String {
    name.split(['-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn is_checkout(dir: &Path) -> bool {
    dir.join("crates/mlserver-cli/Cargo.toml").is_file()
        && dir.join("crates/mlserver-runtime/Cargo.toml").is_file()
}

/// The checkout `project` is inside, or next to (a sibling folder, or a
/// sibling named `mlserver-rs` of one of its ancestors).
pub(crate) fn find_checkout(project: &Path) -> Option<PathBuf> {
    for dir in project.ancestors().skip(1) {
        if is_checkout(dir) {
            return Some(dir.to_path_buf());
        }
        let sibling = dir.join("mlserver-rs");
        if is_checkout(&sibling) {
            return Some(sibling);
        }
    }
    None
}

/// Removes `.` and resolves `..` lexically (the path need not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// `target` relative to `base`; both absolute and normalised.
pub(crate) fn relative_path(target: &Path, base: &Path) -> PathBuf {
    let t: Vec<_> = target.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &t[common..] {
        out.push(c);
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

#[derive(Serialize)]
struct Deps {
    cli: String,
    runtime: String,
    types: String,
}

#[derive(Serialize)]
struct TemplateContext {
    name: String,
    struct_name: String,
    implementation: String,
    deps: Deps,
    deps_comment: String,
    deps_image_note: &'static str,
    workspace_profiles: bool,
}

/// Renders the scaffold's files, as `(relative path, contents)`.
pub(crate) fn render(name: &str, source: &Source) -> anyhow::Result<Vec<(&'static str, String)>> {
    check_name(name)?;
    let struct_name = struct_name(name);
    let deps = Deps {
        cli: source.dependency(CRATES[0].1),
        runtime: source.dependency(CRATES[1].1),
        types: source.dependency(CRATES[2].1),
    };
    let context = TemplateContext {
        name: name.to_owned(),
        implementation: format!("{}.{struct_name}", name.replace('-', "_")),
        struct_name,
        deps,
        deps_comment: source.comment(),
        deps_image_note: source.image_note(),
        workspace_profiles: matches!(source, Source::Path { .. }),
    };
    let mut hb = Handlebars::new();
    hb.register_escape_fn(handlebars::no_escape);
    hb.set_strict_mode(true);
    let mut files = Vec::new();
    for (path, template) in [
        ("Cargo.toml", CARGO_TOML),
        ("src/main.rs", MAIN_RS),
        ("model-settings.json", MODEL_SETTINGS),
        ("README.md", README),
        (".gitignore", GITIGNORE),
    ] {
        let text = hb
            .render_template(template, &context)
            .with_context(|| format!("rendering {path}"))?;
        files.push((path, text));
    }
    Ok(files)
}

pub(crate) fn init(args: InitArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let cwd = std::env::current_dir().context("no current directory")?;
    let project = normalize(
        &cwd.join(
            args.path
                .clone()
                .unwrap_or_else(|| args.name.clone().into()),
        ),
    );
    if project.exists()
        && std::fs::read_dir(&project)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} exists and is not empty", project.display());
    }
    let checkout = match &args.mlserver_path {
        Some(p) => {
            let p = normalize(&cwd.join(p));
            if !is_checkout(&p) {
                bail!(
                    "{} is not an mlserver-rs checkout (no crates/mlserver-cli/Cargo.toml)",
                    p.display()
                );
            }
            Some(p)
        }
        None if args.mlserver_version.is_none() && args.mlserver_git.is_none() => {
            find_checkout(&project)
        }
        None => None,
    };
    let source = match (checkout, args.mlserver_git, args.mlserver_version) {
        (Some(checkout), _, _) => Source::Path {
            relative: relative_path(&checkout, &project),
            checkout,
        },
        (None, Some(url), _) => Source::Git {
            url,
            rev: args.mlserver_rev,
        },
        (None, None, version) => {
            Source::Version(version.unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_owned()))
        }
    };
    let files = render(&args.name, &source)?;
    for (relative, text) in &files {
        let path = project.join(relative);
        std::fs::create_dir_all(path.parent().expect("a file in the project"))
            .with_context(|| format!("could not create {}", project.display()))?;
        std::fs::write(&path, text)
            .with_context(|| format!("could not write {}", path.display()))?;
        println!("created {}", path.display());
    }
    if let Source::Path { checkout, .. } = &source {
        // The versions the checkout was built and tested with (cargo trims
        // what the new crate does not use); also lets it build offline.
        let lock = checkout.join("Cargo.lock");
        if lock.is_file() {
            std::fs::copy(&lock, project.join("Cargo.lock"))
                .with_context(|| format!("could not copy {}", lock.display()))?;
            println!(
                "created {} (from {})",
                project.join("Cargo.lock").display(),
                lock.display()
            );
        }
    }
    println!(
        "\n{}: depends on {}.\nNext: cd {} && cargo run -- start .",
        args.name,
        source.comment(),
        project.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(struct_name("iris-scaler"), "IrisScaler");
        assert_eq!(struct_name("my_model2"), "MyModel2");
        assert!(check_name("my-runtime").is_ok());
        for bad in [
            "",
            "1abc",
            "a b",
            "mlserver-cli",
            "mlserver_types",
            "test",
            "é",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn relative_paths() {
        let r = relative_path(Path::new("/work/repo"), Path::new("/work/repo/examples/x"));
        assert_eq!(r, PathBuf::from("../.."));
        let r = relative_path(Path::new("/work/repo"), Path::new("/work/other/x"));
        assert_eq!(r, PathBuf::from("../../repo"));
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }

    #[test]
    fn renders_each_dependency_source() {
        let path = Source::Path {
            checkout: "/w/repo".into(),
            relative: "../repo".into(),
        };
        let files = render("demo-rt", &path).unwrap();
        let cargo = &files[0].1;
        let manifest: toml::Table = cargo.parse().expect("valid TOML");
        assert_eq!(manifest["package"]["name"].as_str(), Some("demo-rt"));
        assert_eq!(
            manifest["dependencies"]["mlserver-cli"]["path"].as_str(),
            Some("../repo/crates/mlserver-cli")
        );
        assert!(manifest.contains_key("workspace"));
        assert!(files[1]
            .1
            .contains("runtimes.register::<DemoRt>(\"demo_rt.DemoRt\")"));
        let settings: serde_json::Value = serde_json::from_str(&files[2].1).unwrap();
        assert_eq!(settings["implementation"], "demo_rt.DemoRt");
        assert_eq!(settings["name"], "demo-rt");

        let files = render("x", &Source::Version("0.1.0".into())).unwrap();
        let manifest: toml::Table = files[0].1.parse().unwrap();
        assert_eq!(
            manifest["dependencies"]["mlserver-types"].as_str(),
            Some("0.1.0")
        );
        assert!(!manifest.contains_key("profile"));
        assert!(files[3].1.contains("from the registry"));

        let git = Source::Git {
            url: "https://git.example/mlserver-rs".into(),
            rev: Some("v0.1.0".into()),
        };
        let manifest: toml::Table = render("x", &git).unwrap()[0].1.parse().unwrap();
        assert_eq!(
            manifest["dependencies"]["mlserver-runtime"]["rev"].as_str(),
            Some("v0.1.0")
        );
    }

    #[cfg(feature = "image")]
    #[test]
    fn the_scaffold_is_a_rust_runtime_for_mlserver_build() {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in render("img-rt", &Source::Version("0.1.0".into())).unwrap() {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        let info = mlserver_build::dockerfile::inspect(dir.path()).unwrap();
        let rust = info.rust.as_ref().expect("detected as a Rust runtime");
        assert_eq!(rust.bin, "img-rt");
        assert_eq!(rust.crate_name, "img_rt");
        assert_eq!(info.embedded.as_deref(), Some("model-settings.json"));
        let dockerfile = mlserver_build::dockerfile::render_dockerfile(
            &info,
            &mlserver_build::dockerfile::BaseImages::default(),
        )
        .unwrap();
        assert!(dockerfile.contains("cp target/release/img-rt /usr/local/bin/mlserver"));
    }
}
