//! The bodies of the fuzz targets: each takes arbitrary bytes the way the
//! server takes them from a client or a file, and must not panic, hang or
//! allocate without bound, whatever they hold. Errors are fine; they are
//! what hostile input should get.
//!
//! The libFuzzer binaries in `fuzz/` (run with `cargo xtask fuzz <target>`)
//! call these; `tests/corpora.rs` replays the seed corpora and every input
//! that once crashed (`fuzz/regressions/<target>/`) through them on every
//! test run, so a fixed crash stays fixed. See FUZZING.md.

use std::io::Write;

use mlserver_types::codecs::decode_input;
use mlserver_types::{binary, InferenceRequest, MetadataTensor};

/// A fuzz target: its name (the binary and corpus folder) and its body.
pub struct Target {
    /// `cargo xtask fuzz <name>`, `fuzz/corpus/<name>/`.
    pub name: &'static str,
    /// What the bytes go through.
    pub run: fn(&[u8]),
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target {
        name: "infer_request_json",
        run: infer_request_json,
    },
    Target {
        name: "binary_request",
        run: binary_request,
    },
    Target {
        name: "grpc_request",
        run: grpc_request,
    },
    Target {
        name: "settings",
        run: settings,
    },
    Target {
        name: "model_settings",
        run: model_settings,
    },
    Target {
        name: "dockerignore",
        run: dockerignore,
    },
    Target {
        name: "xgboost_model",
        run: xgboost_model,
    },
    Target {
        name: "lightgbm_model",
        run: lightgbm_model,
    },
    Target {
        name: "sklearn_handover",
        run: sklearn_handover,
    },
];

/// Rows a model that loaded predicts: missing, zero, and far out on both
/// sides, for at most this many features (a file may declare 2^30; the
/// readers bound what they allocate, predicting a row that wide is not
/// theirs to refuse).
const PREDICTED_FEATURES: usize = 1 << 16;

fn probe_rows(features: usize) -> Vec<f64> {
    [f64::NAN, 0.0, -1e30, 1e30]
        .iter()
        .flat_map(|&v| std::iter::repeat_n(v, features))
        .collect()
}

/// Decodes every input of a request by its content type (what a runtime's
/// `decode_request` does), and checks that a request that parsed writes
/// out JSON that parses again to the same request.
fn decode_and_roundtrip(request: &InferenceRequest) {
    for input in &request.inputs {
        let _ = decode_input(input, None);
    }
    let json = serde_json::to_vec(request).expect("a parsed request serializes");
    let again: InferenceRequest =
        serde_json::from_slice(&json).expect("a serialized request parses again");
    assert_eq!(
        serde_json::to_vec(&again).expect("serializes"),
        json,
        "a request changed on a JSON round trip"
    );
}

/// A REST inference request body (`POST /v2/models/<m>/infer`), read
/// as the server reads it (the one-pass reader where it can), which must
/// give what serde's path gives: the same request, or the same error.
pub fn infer_request_json(data: &[u8]) {
    let served = InferenceRequest::from_json(data).map_err(|e| e.to_string());
    let serde = serde_json::from_slice::<InferenceRequest>(data).map_err(|e| e.to_string());
    // Debug, not ==: NaN is not equal to itself, and -0.0 is equal to 0.0.
    assert_eq!(
        format!("{served:?}"),
        format!("{serde:?}"),
        "the one-pass reader and serde disagree"
    );
    if let Ok(request) = served {
        decode_and_roundtrip(&request);
    }
}

/// A binary-extension body: the first two bytes choose the
/// `Inference-Header-Content-Length`, the rest is the body (JSON header,
/// then the blobs); also read as a raw single-input body (length 0) for a
/// few input types.
pub fn binary_request(data: &[u8]) {
    let Some((len, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    let header_len = usize::from(u16::from_le_bytes(*len));
    if let Ok(request) = binary::decode_request(body, header_len) {
        for input in &request.inputs {
            let _ = decode_input(input, None);
        }
    }
    for (datatype, shape) in [
        ("FP32", vec![-1, 3]),
        ("BYTES", vec![-1]),
        ("INT64", vec![2, -1]),
    ] {
        let input: MetadataTensor = serde_json::from_value(serde_json::json!({
            "name": "x", "datatype": datatype, "shape": shape
        }))
        .expect("metadata");
        let _ = binary::decode_raw_input(body, &input);
    }
}

/// A gRPC `ModelInferRequest` message, as the server decodes and converts
/// it.
pub fn grpc_request(data: &[u8]) {
    use prost::Message;
    let Ok(message) = mlserver_proto::inference::ModelInferRequest::decode(data) else {
        return;
    };
    if let Ok(decoded) = mlserver_proto::convert::decode_infer_request(message) {
        for input in &decoded.request.inputs {
            let _ = decode_input(input, None);
        }
    }
}

/// Splits `data` at the first 0xFF byte (never in UTF-8): a settings file,
/// then `.env` text whose variables apply as the environment.
fn file_and_env(data: &[u8]) -> (&[u8], mlserver_settings::EnvSource) {
    match data.iter().position(|&b| b == 0xFF) {
        Some(at) => (
            &data[..at],
            mlserver_settings::EnvSource::empty()
                .with_dotenv(&String::from_utf8_lossy(&data[at + 1..])),
        ),
        None => (data, mlserver_settings::EnvSource::empty()),
    }
}

/// A file in a fresh folder, for the loaders that read files.
fn write_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(name);
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(contents))
        .expect("write");
    (dir, path)
}

/// A `settings.json` (then `MLSERVER_*` variables), as `mlserver start`
/// loads it; settings that load are checked for what start checks.
pub fn settings(data: &[u8]) {
    let (file, env) = file_and_env(data);
    let (dir, _) = write_file("settings.json", file);
    if let Ok(settings) = mlserver_settings::load_settings(dir.path(), &env) {
        let _ = settings.ignored();
        let _ = serde_json::to_string(&settings).expect("loaded settings serialize");
    }
}

/// A `model-settings.json` (then `MLSERVER_MODEL_*` variables), as the
/// repository loads it.
pub fn model_settings(data: &[u8]) {
    let (file, env) = file_and_env(data);
    let (dir, _) = write_file("model-settings.json", file);
    let folder = dir.path().join("model");
    std::fs::create_dir(&folder).expect("folder");
    std::fs::rename(
        dir.path().join("model-settings.json"),
        folder.join("model-settings.json"),
    )
    .expect("move");
    if let Ok(settings) =
        mlserver_settings::load_model_settings(&folder.join("model-settings.json"), &env)
    {
        let _ = settings.version();
        let _ = serde_json::to_string(&settings).expect("loaded model settings serialize");
    }
}

/// `.dockerignore` text, then (after a NUL) paths to check against it, one
/// per line, as files and as directories.
pub fn dockerignore(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (patterns, paths) = text.split_once('\0').unwrap_or((&text, "a/b\nmodel.py\n"));
    let Ok(ignore) = mlserver_build::dockerignore::DockerIgnore::parse(patterns) else {
        return;
    };
    for path in paths.lines().take(64) {
        let _ = ignore.is_excluded(path);
        let _ = ignore.may_contain_included(path);
    }
}

/// An XGBoost model file (JSON, UBJSON, legacy binary or anything else
/// `Model::from_bytes` must refuse). A model that loads predicts the probe
/// rows, margins and transformed, with one value per row and column.
pub fn xgboost_model(data: &[u8]) {
    let Ok(model) = mlserver_trees::Model::from_bytes(data) else {
        return;
    };
    let features = model.num_features();
    if features > PREDICTED_FEATURES {
        return;
    }
    let rows: Vec<f32> = probe_rows(features).iter().map(|&v| v as f32).collect();
    for margin in [true, false] {
        let predicted = match margin {
            true => model.predict_margin(&rows, 4),
            false => model.predict(&rows, 4),
        };
        if let Ok(values) = predicted {
            assert_eq!(values.len(), 4 * model.output_columns(margin));
        }
    }
}

/// A LightGBM text model file. A model that loads predicts the probe rows,
/// raw and transformed, with one value per row and output.
pub fn lightgbm_model(data: &[u8]) {
    let Ok(model) = mlserver_trees::lightgbm::Model::from_text(data) else {
        return;
    };
    let features = model.num_features();
    if features > PREDICTED_FEATURES {
        return;
    }
    let rows = probe_rows(features);
    for values in [model.predict_raw(&rows, 4), model.predict(&rows, 4)]
        .into_iter()
        .flatten()
    {
        assert_eq!(values.len(), 4 * model.num_outputs());
    }
}

/// A scikit-learn handover payload (what the Python worker sends). One that
/// reads verifies its probes, and predicts the probe rows in every input
/// dtype the server hands over, with one row of output per row of input.
pub fn sklearn_handover(data: &[u8]) {
    use mlserver_sklearn::{Matrix, MatrixData, Method};

    let Ok(handover) = mlserver_sklearn::read(data) else {
        return;
    };
    let _ = handover.verify();
    let model = &handover.model;
    let features = model.n_features();
    if features > PREDICTED_FEATURES {
        return;
    }
    let rows = probe_rows(features);
    let f32s: Vec<f32> = rows.iter().map(|&v| v as f32).collect();
    let i64s: Vec<i64> = rows
        .iter()
        .map(|&v| if v.is_nan() { 0 } else { v as i64 })
        .collect();
    for data in [
        MatrixData::F64(&rows),
        MatrixData::F32(&f32s),
        MatrixData::I64(&i64s),
    ] {
        let x = Matrix {
            rows: 4,
            cols: features,
            data,
        };
        let declined = model.declines(&x);
        for method in Method::ALL {
            match model.run(method, &x) {
                Ok(out) => {
                    assert!(declined.is_none(), "ran what it declines: {declined:?}");
                    assert_eq!(out.shape.first(), Some(&4));
                    assert_eq!(out.data.len(), out.shape.iter().product::<usize>());
                }
                Err(_) => assert!(declined.is_some() || !model.has(method)),
            }
        }
    }
}
