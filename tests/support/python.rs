//! A Python venv with real client libraries from PyPI, made on first use.
//!
//! The venv lives under `target/` and is reused across runs. Where PyPI
//! cannot be reached, tests that need it are skipped with a loud message
//! (a failure under `MLSERVER_TEST_STRICT`); any other failure fails the
//! test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::workspace_root;

/// A venv under `target/`: its folder, what to install, what must import.
struct Venv {
    dir: &'static str,
    packages: &'static [&'static str],
    /// Installed after `packages` without their dependencies (which
    /// `packages` already provide some other way).
    no_deps: &'static [&'static str],
    imports: &'static str,
}

/// The client libraries the interop tests use, and the OpenAPI tools
/// (openapi-spec-validator, schemathesis) the docs test runs.
const CLIENTS: Venv = Venv {
    dir: "py-clients",
    packages: &[
        "tritonclient[http,grpc]==2.*",
        "numpy",
        "grpcio-reflection",
        "openapi-spec-validator",
        "schemathesis==4.*",
    ],
    no_deps: &[],
    imports: "import tritonclient.http, tritonclient.grpc, numpy, grpc_reflection.v1alpha, \
              openapi_spec_validator, schemathesis",
};

/// The real MLServer (the version the Python runtimes target) with its
/// scikit-learn, XGBoost and LightGBM runtimes, for the Python worker and
/// differential tests. uvloop is pinned below 0.22, whose releases crash
/// MLServer 1.7.1's workers. `mlserver-xgboost` asks for `xgboost`, whose
/// Linux wheels pull NVIDIA's NCCL (hundreds of MB); `xgboost-cpu` is the
/// same library without it, so the runtime is installed without its
/// dependencies, which this list provides.
const MLSERVER: Venv = Venv {
    dir: "py-mlserver",
    packages: &[
        "mlserver==1.7.1",
        "mlserver-sklearn==1.7.1",
        "uvloop<0.22",
        "scikit-learn",
        "joblib",
        "xgboost-cpu==3.2.*",
        "lightgbm==4.7.*",
    ],
    no_deps: &["mlserver-xgboost==1.7.1", "mlserver-lightgbm==1.7.1"],
    imports: "import mlserver, mlserver_sklearn, sklearn, joblib, xgboost, lightgbm, \
              mlserver_xgboost, mlserver_lightgbm",
};

/// maturin, which builds the server's Python wheel.
const MATURIN: Venv = Venv {
    dir: "py-maturin",
    packages: &["maturin>=1.5,<2"],
    no_deps: &[],
    imports: "import maturin",
};

/// The python of a venv with maturin (its `maturin` command beside it), or
/// `None` (after printing why) when PyPI is unreachable.
pub fn maturin_python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON.get_or_init(|| make_venv(&MATURIN)).clone()
}

/// The client venv's python, or `None` (after printing why) when PyPI is
/// unreachable.
pub fn client_python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON.get_or_init(|| make_venv(&CLIENTS)).clone()
}

/// The python of a venv with `mlserver` installed, or `None` (after
/// printing why) when PyPI is unreachable.
pub fn mlserver_python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON.get_or_init(|| make_venv(&MLSERVER)).clone()
}

fn make_venv(spec: &Venv) -> Option<PathBuf> {
    let venv = workspace_root().join("target").join(spec.dir);
    let python = venv.join("bin").join("python");
    // Test binaries run in parallel: one makes the venv, the others wait.
    let lock_path = workspace_root()
        .join("target")
        .join(format!("{}.lock", spec.dir));
    let _ = std::fs::create_dir_all(workspace_root().join("target"));
    let lock = std::fs::File::create(&lock_path).expect("venv lock file");
    lock.lock().expect("venv lock");
    if python.exists() && imports_ok(&python, spec.imports) {
        return Some(python);
    }
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = run(Command::new(&base)
        .args(["-m", "venv", "--clear"])
        .arg(&venv));
    assert!(
        out.status.success(),
        "could not create a venv with {base}: {}",
        stderr(&out)
    );
    pip_install(&python, spec.packages)?;
    if !spec.no_deps.is_empty() {
        let mut args = vec!["--no-deps"];
        args.extend_from_slice(spec.no_deps);
        pip_install(&python, &args)?;
    }
    assert!(
        imports_ok(&python, spec.imports),
        "{:?} installed but `{}` fails",
        spec.packages,
        spec.imports
    );
    Some(python)
}

/// `pip install` of `packages` (names, or paths of wheels) with `python`;
/// `None` (after saying so, a failure under `MLSERVER_TEST_STRICT`) when
/// PyPI cannot be reached. Any other failure panics.
pub fn pip_install(python: &Path, packages: &[&str]) -> Option<()> {
    let out = run(Command::new(python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(packages));
    if !out.status.success() {
        let err = stderr(&out);
        if is_network_failure(&err) {
            super::missing_real_part(
                &format!("tests that need {packages:?}"),
                &format!("PyPI cannot be reached:\n{err}"),
            );
            return None;
        }
        panic!("pip install {packages:?} failed: {err}");
    }
    Some(())
}

fn imports_ok(python: &Path, imports: &str) -> bool {
    Command::new(python)
        .args(["-c", imports])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn is_network_failure(stderr: &str) -> bool {
    [
        "NewConnectionError",
        "Temporary failure in name resolution",
        "Network is unreachable",
        "Connection refused",
        "ConnectTimeout",
        "ReadTimeout",
        "Max retries exceeded",
    ]
    .iter()
    .any(|p| stderr.contains(p))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"))
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs a script from `tests/python/` with the venv's python and `args`;
/// panics with its output if it fails.
pub fn run_script(python: &Path, script: &str, args: &[&str]) -> String {
    let path = workspace_root().join("tests").join("python").join(script);
    let out = run(Command::new(python).arg(&path).args(args));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{}",
        out.status,
        stderr(&out)
    );
    stdout
}

/// Writes the seed's `CustomMLModel` into `folder`: `custom_model.py`
/// (tests/python/models) and the `weights.json` it loads, so that it
/// answers `x @ [1, 10, 100] + 0.5` per row. The caller writes the
/// model-settings.json it needs.
pub fn write_custom_model(folder: &Path) {
    std::fs::create_dir_all(folder).expect("model folder");
    std::fs::copy(
        workspace_root().join("tests/python/models/custom_model.py"),
        folder.join("custom_model.py"),
    )
    .expect("custom_model.py");
    std::fs::write(
        folder.join("weights.json"),
        r#"{"weights": [1.0, 10.0, 100.0], "bias": 0.5}"#,
    )
    .expect("weights.json");
}

/// How the tests start Python workers: `python` (the MLServer venv's), one
/// worker unless changed, `models` first on their path, the fast paths on,
/// busy polling on (300 µs, so it stays exercised) and 64 MiB areas.
pub fn worker_config(python: &Path, models: &Path) -> mlserver_python::PythonConfig {
    mlserver_python::PythonConfig {
        python: python.to_owned(),
        workers: 1,
        models_root: models.to_owned(),
        environments_dir: models.join(".envs"),
        start_timeout: std::time::Duration::from_secs(120),
        stop_timeout: std::time::Duration::from_secs(5),
        rust_runtimes: Vec::new(),
        debug: false,
        busy_poll: std::time::Duration::from_micros(300),
        production: false,
        fast_paths: true,
        shared_memory: 64 << 20,
        metrics_dir: None,
    }
}
