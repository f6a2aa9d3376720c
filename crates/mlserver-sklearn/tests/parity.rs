//! Parity with scikit-learn: `make_models.py` fits seeded models of every
//! supported kind with the project's Python, hands them over, and records
//! scikit-learn's outputs on extra rows; every payload must read, its
//! probes verify, and `run` must match scikit-learn bit for bit on the
//! extra rows for the methods expected to be exact.

use std::path::{Path, PathBuf};
use std::process::Command;

use mlserver_sklearn::{read, Array, ArrayData, Method};
use serde_json::Value;

fn python() -> Option<PathBuf> {
    let path = std::env::var_os("MLSERVER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-mlserver/bin/python")
        });
    path.exists().then_some(path)
}

fn same_bits(a: &Array, b: &Array) -> bool {
    if a.shape != b.shape {
        return false;
    }
    match (&a.data, &b.data) {
        (ArrayData::F64(x), ArrayData::F64(y)) => {
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        (ArrayData::F32(x), ArrayData::F32(y)) => {
            x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits())
        }
        (x, y) => x == y,
    }
}

#[test]
fn parity_with_scikit_learn() {
    let Some(python) = python() else {
        let msg = "!!! mlserver-sklearn parity: no Python with scikit-learn found \
                   (set MLSERVER_TEST_PYTHON); SKIPPED !!!";
        eprintln!("{msg}");
        assert!(
            std::env::var("MLSERVER_TEST_STRICT").as_deref() != Ok("1"),
            "{msg}"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/make_models.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(dir.path())
        .status()
        .expect("python runs");
    assert!(status.success(), "make_models.py failed");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();

    let mut failures = Vec::new();
    let mut inexact = Vec::new();
    for case in manifest["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let exact: Vec<Method> = case["methods_exact"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| Method::from_name(m.as_str().unwrap()).unwrap())
            .collect();
        let payload = std::fs::read(dir.path().join(format!("{name}.payload"))).unwrap();
        let handover = match read(&payload) {
            Ok(h) => h,
            Err(e) => {
                failures.push(format!("{name}: payload refused: {e}"));
                continue;
            }
        };
        assert!(
            handover.final_type().starts_with("<class 'sklearn."),
            "{name}"
        );
        for (method, result) in handover.verify() {
            match (result, exact.contains(&method)) {
                (Err(e), true) => failures.push(format!("{name}: probe {e}")),
                (Err(e), false) => inexact.push(format!("{name}: probe {e}")),
                (Ok(()), false) => {
                    inexact.push(format!("{name}: {} exact after all", method.name()))
                }
                (Ok(()), true) => {}
            }
        }
        let extra = std::fs::read(dir.path().join(format!("{name}.extra"))).unwrap();
        let extra = read(&extra).expect("the extra rows read");
        for probe in &extra.probes {
            let x = probe.input.as_matrix().unwrap();
            let what = format!(
                "{name}: {} on {} x{}",
                probe.method.name(),
                x.data.dtype(),
                x.rows
            );
            match handover.model.run(probe.method, &x) {
                Ok(got) if same_bits(&got, &probe.output) => {}
                Ok(got) if exact.contains(&probe.method) => failures.push(format!(
                    "{what}: expected {:?}, got {:?}",
                    probe.output, got
                )),
                Ok(_) => inexact.push(format!("{what}: differs (expected)")),
                Err(e) => failures.push(format!("{what}: {e}")),
            }
        }
    }
    for line in &inexact {
        eprintln!("not exact (as expected): {line}");
    }
    eprintln!("100-tree forest: {}", manifest["forest_100"]);
    for u in manifest["unsupported"].as_array().unwrap() {
        eprintln!("unsupported: {} -> {}", u["name"], u["reason"]);
        if u["payload"].as_bool() != Some(false) || !u["reason"].is_string() {
            failures.push(format!("{}: expected (None, reason), got {u}", u["name"]));
        }
    }
    let f100 = &manifest["forest_100"];
    assert!(
        f100["seconds"].as_f64().unwrap() < 1.0,
        "100-tree forest too slow: {f100}"
    );
    assert!(
        f100["bytes"].as_u64().unwrap() < 8 << 20,
        "100-tree forest too big: {f100}"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
