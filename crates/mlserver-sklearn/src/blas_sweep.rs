//! The `blas` module against numpy itself: `tests/blas_sweep.py` computes
//! `X @ W.T` for thousands of shapes (1 to 4096 rows, 1 to 2100 features,
//! 1 to 5 outputs) with the project's Python, and every product must
//! match bit for bit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use serde_json::Value;

use crate::blas::{matmul, plan, Path as BlasPath};

fn python() -> Option<PathBuf> {
    let path = std::env::var_os("MLSERVER_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/py-mlserver/bin/python")
        });
    path.exists().then_some(path)
}

fn floats(v: &Value) -> Vec<f64> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap())
        .unwrap();
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn matches_numpy_on_many_shapes() {
    let Some(python) = python() else {
        let msg =
            "!!! blas sweep: no Python with numpy found (set MLSERVER_TEST_PYTHON); SKIPPED !!!";
        eprintln!("{msg}");
        assert!(
            std::env::var("MLSERVER_TEST_STRICT").as_deref() != Ok("1"),
            "{msg}"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/blas_sweep.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success(), "blas_sweep.py failed");
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let casts = doc["cast_mismatches"].as_array().unwrap();
    assert!(casts.is_empty(), "numpy casts differ: {casts:?}");

    // Per path: (cases, mismatching cases, first mismatches).
    let mut stats: BTreeMap<String, (usize, usize, Vec<String>)> = BTreeMap::new();
    let mut declined = 0;
    for case in doc["cases"].as_array().unwrap() {
        let [n, d, k] = ["n", "d", "k"].map(|f| case[f].as_u64().unwrap() as usize);
        let path: BlasPath = match plan(n, d, k) {
            Ok(p) => p,
            Err(_) => {
                declined += 1;
                continue;
            }
        };
        let (x, w, want) = (floats(&case["x"]), floats(&case["w"]), floats(&case["out"]));
        let got = matmul(path, &x, n, d, &w, k);
        let entry = stats.entry(format!("{path:?}")).or_default();
        entry.0 += 1;
        let bad: Vec<usize> = (0..n * k)
            .filter(|&i| got[i].to_bits() != want[i].to_bits())
            .collect();
        if let Some(&i) = bad.first() {
            entry.1 += 1;
            if entry.2.len() < 12 {
                entry.2.push(format!(
                    "{n}x{d}x{k}: {} of {} differ, first row {} out {}: numpy {:e}, here {:e}",
                    bad.len(),
                    n * k,
                    i / k,
                    i % k,
                    want[i],
                    got[i]
                ));
            }
        }
    }
    let mut failed = false;
    for (path, (cases, bad, first)) in &stats {
        eprintln!("{path}: {cases} shapes, {bad} differ");
        for f in first {
            eprintln!("  {f}");
        }
        failed |= *bad > 0;
    }
    eprintln!("declined (threaded) shapes: {declined}");
    assert!(!failed, "some products differ from numpy's");
}
