//! A Python venv with real client libraries from PyPI, made on first use.
//!
//! The venv lives under `target/` and is reused across runs. Where PyPI
//! cannot be reached, tests that need it are skipped with a loud message;
//! any other failure fails the test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use super::workspace_root;

/// The packages the interop tests use.
const PACKAGES: &[&str] = &["tritonclient[http,grpc]==2.*", "numpy"];

/// The venv's python, or `None` (after printing why) when PyPI is unreachable.
pub fn client_python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON.get_or_init(make_venv).clone()
}

fn make_venv() -> Option<PathBuf> {
    let venv = workspace_root().join("target").join("py-clients");
    let python = venv.join("bin").join("python");
    if python.exists() && imports_ok(&python) {
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
    let out = run(Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(PACKAGES));
    if !out.status.success() {
        let err = stderr(&out);
        if is_network_failure(&err) {
            eprintln!(
                "\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\
                 SKIPPING Python client interop tests: PyPI cannot be reached.\n{err}\n\
                 !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n"
            );
            return None;
        }
        panic!("pip install {PACKAGES:?} failed: {err}");
    }
    assert!(
        imports_ok(&python),
        "tritonclient installed but does not import"
    );
    Some(python)
}

fn imports_ok(python: &Path) -> bool {
    Command::new(python)
        .args(["-c", "import tritonclient.http, tritonclient.grpc, numpy"])
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
