//! The runtime on the bundled iris models and the test fixtures.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mlserver_runtime::{MLModel, MLServerError, ModelContext, ModelSettings};
use mlserver_types::{Datatype, InferenceRequest, Tensor};
use serde_json::{json, Value};

use crate::OnnxModel;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn iris(folder: &str) -> PathBuf {
    root().join("examples/models").join(folder)
}

fn settings(value: Value) -> ModelSettings {
    serde_json::from_value(value).unwrap()
}

/// Settings for `path` the way a model-settings.json next to it would be.
fn settings_for(path: &Path, extra: Value) -> ModelSettings {
    settings(json!({
        "name": "m",
        "implementation": "onnx",
        "parameters": {"uri": path.display().to_string(), "extra": extra}
    }))
}

async fn load(path: &Path, extra: Value) -> Result<OnnxModel, MLServerError> {
    OnnxModel::load(ModelContext::new(Arc::new(settings_for(path, extra)))).await
}

/// A fixture's JSON (inputs and the outputs onnxruntime gave for them).
fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rows(reference: &Value) -> Vec<f32> {
    reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap() as f32)
        })
        .collect()
}

/// Runs the model on reference.json's inputs and compares with the labels
/// and probabilities onnxruntime computed at export time.
async fn matches_reference(model: &OnnxModel, folder: &Path) {
    let reference = read_json(&folder.join("reference.json"));
    let x = rows(&reference);
    let n = x.len() / 4;
    let request = InferenceRequest::new(vec![Tensor::new("input", vec![n, 4], x).unwrap()]);
    let response = model.predict(request).await.unwrap();
    let label = &response.outputs[0];
    let proba = &response.outputs[1];
    assert_eq!(
        (label.name.as_str(), label.datatype),
        ("label", Datatype::Int64)
    );
    assert_eq!(label.shape, vec![n]);
    assert_eq!(
        (proba.name.as_str(), proba.datatype),
        ("probabilities", Datatype::Fp32)
    );
    assert_eq!(proba.shape, vec![n, 3]);
    let want: Vec<i64> = serde_json::from_value(reference["labels"].clone()).unwrap();
    assert_eq!(label.as_slice::<i64>().unwrap(), want.as_slice());
    let want: Vec<Vec<f32>> = serde_json::from_value(reference["probabilities"].clone()).unwrap();
    for (i, (got, want)) in proba
        .as_slice::<f32>()
        .unwrap()
        .chunks(3)
        .zip(&want)
        .enumerate()
    {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-5, "row {i}: {got:?} != {want:?}");
        }
    }
}

#[tokio::test]
async fn logistic_regression_matches_onnxruntime() {
    let folder = iris("iris-onnx");
    // The folder as uri: model.onnx is the well-known name.
    let model = load(&folder, json!({})).await.unwrap();
    assert_eq!(model.engine(), "tract");
    matches_reference(&model, &folder).await;
}

#[tokio::test]
async fn random_forest_matches_onnxruntime() {
    let folder = iris("iris-tree-onnx");
    let model = load(&folder.join("model.onnx"), json!({"engine": "tract"}))
        .await
        .unwrap();
    matches_reference(&model, &folder).await;
}

#[tokio::test]
async fn a_scaler_pipeline_exported_with_div_cast_runs_on_tract() {
    let reference = read_json(&testdata("scaler_pipeline.json"));
    let x = rows(&reference);
    let n = x.len() / 4;
    let model = load(
        &testdata("scaler_pipeline.onnx"),
        json!({"engine": "tract"}),
    )
    .await
    .unwrap();
    let r = model
        .predict(InferenceRequest::new(vec![Tensor::new(
            "input",
            vec![n, 4],
            x,
        )
        .unwrap()]))
        .await
        .unwrap();
    let want: Vec<i64> = serde_json::from_value(reference["labels"].clone()).unwrap();
    assert_eq!(r.outputs[0].as_slice::<i64>().unwrap(), want.as_slice());
}

#[tokio::test]
async fn xgboost_and_lightgbm_classifiers_run_on_tract() {
    for name in ["xgboost", "lightgbm"] {
        let reference = read_json(&testdata(&format!("{name}.json")));
        let x = rows(&reference);
        let n = x.len() / 4;
        let model = load(
            &testdata(&format!("{name}.onnx")),
            json!({"engine": "tract"}),
        )
        .await
        .unwrap();
        let r = model
            .predict(InferenceRequest::new(vec![Tensor::new(
                "input",
                vec![n, 4],
                x,
            )
            .unwrap()]))
            .await
            .unwrap();
        let want: Vec<i64> = serde_json::from_value(reference["labels"].clone()).unwrap();
        assert_eq!(
            r.outputs[0].as_slice::<i64>().unwrap(),
            want.as_slice(),
            "{name}"
        );
        assert_eq!(r.outputs[1].shape, vec![n, 3], "{name}");
    }
}

#[tokio::test]
async fn metadata_comes_from_the_graph() {
    let model = load(&iris("iris-onnx"), json!({})).await.unwrap();
    let meta = model.metadata().await.unwrap();
    assert_eq!(meta.name, "m");
    assert_eq!(meta.platform, "tract_onnx");
    assert_eq!(
        serde_json::to_value(&meta.inputs).unwrap(),
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        serde_json::to_value(&meta.outputs).unwrap(),
        json!([
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}
        ])
    );
}

#[tokio::test]
async fn declared_tensors_must_fit_the_graph_and_keep_their_parameters() {
    let path = iris("iris-onnx").join("model.onnx");
    let mut s = settings_for(&path, json!({}));
    s.inputs = serde_json::from_value(json!([
        {"name": "input", "datatype": "FP32", "shape": [-1, 4], "parameters": {"content_type": "np"}}
    ]))
    .unwrap();
    let model = OnnxModel::load(ModelContext::new(Arc::new(s.clone())))
        .await
        .unwrap();
    let meta = model.metadata().await.unwrap();
    assert_eq!(meta.inputs[0].content_type(), Some("np"));

    s.inputs[0].datatype = Datatype::Fp64;
    let e = OnnxModel::load(ModelContext::new(Arc::new(s.clone())))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("as FP64 but the graph has FP32"),
        "{e}"
    );
    s.inputs[0].name = "x".into();
    let e = OnnxModel::load(ModelContext::new(Arc::new(s)))
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("does not have (it has 'input')"),
        "{e}"
    );
}

#[tokio::test]
async fn bad_requests_are_400s_that_say_why() {
    let model = load(&iris("iris-onnx"), json!({})).await.unwrap();
    let cases = [
        (
            Tensor::new("input", vec![2, 3], vec![1f32; 6]).unwrap(),
            "shape [2, 3]",
        ),
        (
            Tensor::new("input", vec![4], vec![1f32; 4]).unwrap(),
            "shape [4]",
        ),
        (
            Tensor::new("input", vec![1, 4], vec![1f64; 4]).unwrap(),
            "datatype FP64 but the model expects FP32",
        ),
        (
            Tensor::new("input", vec![1, 4], vec![1i64; 4]).unwrap(),
            "datatype INT64",
        ),
    ];
    for (tensor, message) in cases {
        let e = model
            .predict(InferenceRequest::new(vec![tensor]))
            .await
            .unwrap_err();
        assert_eq!(e.status().http_code(), 400, "{e}");
        assert!(e.to_string().contains(message), "{e} / {message}");
    }
    let two = vec![
        Tensor::new("input", vec![1, 4], vec![1f32; 4]).unwrap(),
        Tensor::new("other", vec![1, 4], vec![1f32; 4]).unwrap(),
    ];
    let e = model.predict(InferenceRequest::new(two)).await.unwrap_err();
    assert_eq!(e.status().http_code(), 400);
    assert!(e.to_string().contains("unknown input 'other'"), "{e}");
    let e = model
        .predict(InferenceRequest::new(vec![]))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("missing input 'input'"), "{e}");
}

#[tokio::test]
async fn any_batch_size_runs_on_the_one_optimised_plan() {
    let model = load(&iris("iris-onnx"), json!({})).await.unwrap();
    for n in [1usize, 2, 7, 64] {
        let x: Vec<f32> = (0..n * 4).map(|i| (i % 7) as f32).collect();
        let r = model
            .predict(InferenceRequest::new(vec![
                Tensor::new("x", vec![n, 4], x).unwrap()
            ]))
            .await
            .unwrap();
        assert_eq!(r.outputs[0].shape, vec![n]);
        assert_eq!(r.outputs[1].shape, vec![n, 3]);
        for row in r.outputs[1].as_slice::<f32>().unwrap().chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
        }
    }
}

#[tokio::test]
async fn zipmap_models_are_refused_with_the_fix() {
    let e = load(&testdata("zipmap.onnx"), json!({})).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("output 'output_probability' is not a tensor")
            && msg.contains("'zipmap': False"),
        "{msg}"
    );
}

#[tokio::test]
async fn files_that_are_not_onnx_fail_to_load_clearly() {
    let dir = std::env::temp_dir().join(format!("mlserver-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bogus = dir.join("model.onnx");
    std::fs::write(&bogus, b"this is not protobuf at all, just text").unwrap();
    let e = load(&bogus, json!({})).await.unwrap_err();
    assert!(e.to_string().contains("is not an ONNX model"), "{e}");
    let e = load(&dir.join("missing"), json!({})).await.unwrap_err();
    assert_eq!(e.status().http_code(), 422, "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
    let e = load(&iris("iris-onnx"), json!({"engine": "cuda"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("unknown engine 'cuda'"), "{e}");
}

#[tokio::test]
async fn without_a_uri_the_model_beside_the_settings_file_loads() {
    let mut s = settings(json!({"name": "iris", "implementation": "onnx"}));
    s.source = Some(iris("iris-onnx").join("model-settings.json"));
    let model = OnnxModel::load(ModelContext::new(Arc::new(s)))
        .await
        .unwrap();
    assert_eq!(model.signature().inputs[0].name, "input");
}

/// The regressors scikit-learn, XGBoost and LightGBM export
/// (TreeEnsembleRegressor) and a StandardScaler exported as ai.onnx.ml
/// Scaler run on tract, matching onnxruntime's outputs, rows with missing
/// values included.
#[tokio::test]
async fn tree_ensemble_regressors_and_scalers_run_on_tract() {
    for name in [
        "tree_regressor",
        "gbr",
        "xgboost_regressor",
        "lightgbm_regressor",
        "scaler",
    ] {
        let reference = read_json(&testdata(&format!("{name}.json")));
        let x: Vec<f32> = reference["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r.as_array().unwrap().iter())
            .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
            .collect();
        let n = x.len() / 3;
        let model = load(
            &testdata(&format!("{name}.onnx")),
            json!({"engine": "tract"}),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(model.engine(), "tract");
        let r = model
            .predict(InferenceRequest::new(vec![Tensor::new(
                "input",
                vec![n, 3],
                x,
            )
            .unwrap()]))
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(r.outputs[0].shape, vec![n, 1], "{name}");
        // null: onnxruntime's NaN (a linear model of a missing value).
        let want: Vec<f32> = reference["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().map_or(f32::NAN, |v| v as f32))
            .collect();
        let got = r.outputs[0].as_slice::<f32>().unwrap();
        assert_eq!(got.len(), want.len(), "{name}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // Sums of the same f32 leaves, possibly in another order.
            assert!(
                (g.is_nan() && w.is_nan()) || (g - w).abs() <= 1e-5 * w.abs().max(1.0),
                "{name} row {i}: tract {g}, onnxruntime {w}"
            );
        }
    }
}

#[cfg(not(feature = "ort"))]
#[tokio::test]
async fn onnxruntime_without_the_feature_says_how_to_get_it() {
    let e = load(&iris("iris-onnx"), json!({"engine": "onnxruntime"}))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("--features ort"), "{e}");
}

/// onnxruntime's library: `ORT_DYLIB_PATH`, else the one in the PyPI
/// `onnxruntime` wheel of the venv `make_model.py` runs in
/// (`target/py-onnx`). `None`, after saying why, when neither exists.
#[cfg(feature = "ort")]
fn onnxruntime_library() -> Option<PathBuf> {
    static FOUND: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("ORT_DYLIB_PATH") {
                return Some(PathBuf::from(p));
            }
            let site = root().join("target/py-onnx/lib");
            let found = walk_for_onnxruntime(&site);
            match &found {
                // Read once by the engine's environment, before any session.
                Some(p) => std::env::set_var("ORT_DYLIB_PATH", p),
                None => {
                    let why = format!(
                        "no ORT_DYLIB_PATH and no libonnxruntime.so under {} (pip install \
                         onnxruntime in that venv, or point ORT_DYLIB_PATH at the library)",
                        site.display()
                    );
                    // The workspace's strict mode (mlserver_tests::strict),
                    // which this crate cannot depend on.
                    if std::env::var("MLSERVER_TEST_STRICT")
                        .is_ok_and(|v| !v.is_empty() && v != "0")
                    {
                        panic!("MLSERVER_TEST_STRICT: the onnxruntime tests cannot run: {why}");
                    }
                    eprintln!("\n!!!! SKIPPING onnxruntime tests: {why} !!!!\n");
                }
            }
            found
        })
        .clone()
}

#[cfg(feature = "ort")]
fn walk_for_onnxruntime(dir: &Path) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            if let Some(found) = walk_for_onnxruntime(&p) {
                return Some(found);
            }
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("libonnxruntime.so"))
        {
            return Some(p);
        }
    }
    None
}

#[cfg(feature = "ort")]
#[tokio::test]
async fn onnxruntime_runs_what_tract_cannot_and_matches_its_python_outputs() {
    if onnxruntime_library().is_none() {
        return;
    }
    let reference = read_json(&testdata("tree_regressor.json"));
    let x: Vec<f32> = rows(&reference);
    let n = x.len() / 3;
    let model = load(
        &testdata("tree_regressor.onnx"),
        json!({"engine": "onnxruntime"}),
    )
    .await
    .unwrap();
    assert_eq!(model.engine(), "onnxruntime");
    let meta = model.metadata().await.unwrap();
    assert_eq!(meta.platform, "onnxruntime_onnx");
    let r = model
        .predict(InferenceRequest::new(vec![Tensor::new(
            "input",
            vec![n, 3],
            x,
        )
        .unwrap()]))
        .await
        .unwrap();
    assert_eq!(r.outputs[0].shape, vec![n, 1]);
    let want: Vec<f32> = serde_json::from_value(reference["outputs"].clone()).unwrap();
    assert_eq!(r.outputs[0].as_slice::<f32>().unwrap(), want.as_slice());

    let folder = iris("iris-onnx");
    let model = load(&folder, json!({"engine": "onnxruntime"}))
        .await
        .unwrap();
    assert_eq!(model.engine(), "onnxruntime");
    matches_reference(&model, &folder).await;
    let e = model
        .predict(InferenceRequest::new(vec![Tensor::new(
            "input",
            vec![1, 3],
            vec![1f32; 3],
        )
        .unwrap()]))
        .await
        .unwrap_err();
    assert_eq!(e.status().http_code(), 400);
}
