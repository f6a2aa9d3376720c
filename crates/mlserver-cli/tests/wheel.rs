//! The Python wheel (`crates/mlserver-wheel`, maturin with `bindings =
//! "bin"`), as MLServer's users would meet it: built from this repository
//! (nothing is published), installed with pip into a fresh venv beside
//! `mlserver==1.7.1`, and started as `venv/bin/mlserver-rs` without the
//! venv being activated, serving a Python `MLModel` class with that venv's
//! `mlserver`. MLServer's own `mlserver` script stays as it was.

mod common;

use std::process::Command;

use common::Running;
use mlserver_tests::python::{maturin_python, pip_install};
use mlserver_tests::workspace_root;
use serde_json::{json, Value};

fn run(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_wheel_installs_beside_mlserver_and_serves_the_venvs_python_models() {
    let Some(tools) = maturin_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("wheels");
    // The dev profile reuses what `cargo test` has just built; a release
    // wheel is `maturin build --release` with the same manifest.
    run(Command::new(tools.with_file_name("maturin"))
        .current_dir(workspace_root())
        .args(["build", "--profile", "dev", "--manifest-path"])
        .arg(workspace_root().join("crates/mlserver-wheel/Cargo.toml"))
        .arg("--out")
        .arg(&wheels));
    let wheel = std::fs::read_dir(&wheels)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "whl"))
        .expect("a wheel");
    let name = wheel.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!(
            "mlserver_rs-{}-py3-none-manylinux_",
            env!("CARGO_PKG_VERSION")
        )),
        "{name}"
    );

    let venv = dir.path().join("venv");
    run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
    let python = venv.join("bin/python");
    let Some(()) = pip_install(
        &python,
        &["mlserver==1.7.1", "uvloop<0.22", wheel.to_str().unwrap()],
    ) else {
        return;
    };
    // Both commands, each its own: MLServer's script and our binary.
    let mlserver_script = std::fs::read_to_string(venv.join("bin/mlserver")).unwrap();
    assert!(
        mlserver_script.starts_with("#!")
            && mlserver_script.contains("from mlserver.cli import main"),
        "{mlserver_script}"
    );
    let ours = venv.join("bin/mlserver-rs");
    let version = run(Command::new(&ours).arg("--version"));
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");

    // A custom MLModel, run by the venv's python (no MLSERVER_PYTHON, no
    // activated venv).
    let models = dir.path().join("models");
    let model = models.join("custom");
    mlserver_tests::python::write_custom_model(&model);
    std::fs::write(
        model.join("model-settings.json"),
        r#"{"name": "custom", "implementation": "custom_model.CustomMLModel"}"#,
    )
    .unwrap();
    let server = Running::spawn(
        Command::new(&ours)
            .arg("start")
            .arg(&models)
            .env_remove("VIRTUAL_ENV")
            .env_remove("CONDA_PREFIX")
            .env_remove("MLSERVER_PYTHON")
            .env_remove("PYTHONPATH"),
    );
    let response: Value = reqwest::blocking::Client::new()
        .post(server.url("/v2/models/custom/infer"))
        .json(&json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 1, 1]}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(response["outputs"][0]["data"], json!([111.5]), "{response}");
}
