//! The bundled ONNX models end to end: the real server on free loopback
//! ports serving `examples/models`, spoken to over HTTP (and gRPC) with the
//! inputs and the reference outputs `make_model.py` stored at export time.

use std::path::Path;

use mlserver_proto::inference::{model_infer_request::InferInputTensor, ModelInferRequest};
use mlserver_tests::{examples_models, TestServer};
use serde_json::{json, Value};

async fn body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (status, serde_json::from_str(&text).expect("JSON body"))
}

struct Reference {
    rows: Vec<Vec<f64>>,
    labels: Vec<i64>,
    probabilities: Vec<Vec<f32>>,
}

fn reference(folder: &str) -> Reference {
    let path = examples_models().join(folder).join("reference.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    Reference {
        rows: serde_json::from_value(v["inputs"].clone()).unwrap(),
        labels: serde_json::from_value(v["labels"].clone()).unwrap(),
        probabilities: serde_json::from_value(v["probabilities"].clone()).unwrap(),
    }
}

fn infer_body(rows: &[Vec<f64>]) -> Value {
    json!({"inputs": [{
        "name": "input", "shape": [rows.len(), 4], "datatype": "FP32", "data": rows
    }]})
}

/// Checks a response against the reference rows `range`.
fn check(response: &Value, reference: &Reference, range: std::ops::Range<usize>) {
    let outputs = response["outputs"].as_array().expect("outputs");
    let label = outputs
        .iter()
        .find(|o| o["name"] == "label")
        .expect("label");
    let proba = outputs
        .iter()
        .find(|o| o["name"] == "probabilities")
        .expect("probabilities");
    assert_eq!(label["datatype"], "INT64");
    assert_eq!(label["shape"], json!([range.len()]));
    assert_eq!(proba["datatype"], "FP32");
    assert_eq!(proba["shape"], json!([range.len(), 3]));
    let labels: Vec<i64> = serde_json::from_value(label["data"].clone()).unwrap();
    assert_eq!(labels, reference.labels[range.clone()]);
    let got: Vec<f32> = serde_json::from_value(proba["data"].clone()).unwrap();
    for (row, i) in got.chunks(3).zip(range) {
        for (g, w) in row.iter().zip(&reference.probabilities[i]) {
            assert!(
                (g - w).abs() < 1e-5,
                "row {i}: {row:?} vs {:?}",
                reference.probabilities[i]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundled_models_predict_what_python_predicted() {
    let s = TestServer::start_ready(&examples_models()).await;
    for (model, folder) in [("iris", "iris-onnx"), ("iris-tree", "iris-tree-onnx")] {
        let reference = reference(folder);
        let (status, r) = body(
            s.post_json(
                &format!("/v2/models/{model}/infer"),
                &infer_body(&reference.rows),
            )
            .await,
        )
        .await;
        assert_eq!(status, 200, "{model}: {r}");
        assert_eq!(r["model_name"], model);
        check(&r, &reference, 0..reference.rows.len());
    }

    // The version path, and asking for one output only.
    let reference = reference("iris-onnx");
    let mut request = infer_body(&reference.rows[10..12]);
    request["outputs"] = json!([{"name": "label"}]);
    let (status, r) = body(
        s.post_json("/v2/models/iris/versions/1/infer", &request)
            .await,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["model_version"], "1");
    assert_eq!(
        r["outputs"],
        json!([{"name": "label", "shape": [2], "datatype": "INT64", "data": reference.labels[10..12]}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_is_the_graph_signature() {
    let s = TestServer::start_ready(&examples_models()).await;
    let (status, meta) = body(s.get("/v2/models/iris").await).await;
    assert_eq!(status, 200);
    assert_eq!(meta["name"], "iris");
    assert_eq!(meta["platform"], "tract_onnx");
    assert_eq!(
        meta["inputs"],
        json!([{"name": "input", "datatype": "FP32", "shape": [-1, 4]}])
    );
    assert_eq!(
        meta["outputs"],
        json!([
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_shapes_and_datatypes_are_400s() {
    let s = TestServer::start_ready(&examples_models()).await;
    let cases = [
        (
            json!({"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}),
            "shape [1, 3]",
        ),
        (
            json!({"name": "input", "shape": [4], "datatype": "FP32", "data": [1, 2, 3, 4]}),
            "shape [4]",
        ),
        (
            json!({"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}),
            "datatype FP64",
        ),
        (
            json!({"name": "input", "shape": [1, 4], "datatype": "INT64", "data": [1, 2, 3, 4]}),
            "datatype INT64",
        ),
        (
            json!({"name": "input", "shape": [1, 4], "datatype": "FP32", "data": ["a", "b", "c", "d"]}),
            "FP32",
        ),
        (
            json!({"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}),
            "",
        ),
    ];
    for (input, message) in cases {
        let (status, r) = body(
            s.post_json("/v2/models/iris/infer", &json!({"inputs": [input]}))
                .await,
        )
        .await;
        assert_eq!(status, 400, "{input} -> {r}");
        let error = r["error"].as_str().expect("an error message");
        assert!(error.contains(message), "{input} -> {error}");
    }
    // Two inputs for a one-input graph.
    let two = json!({"inputs": [
        {"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]},
        {"name": "extra", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}
    ]});
    let (status, r) = body(s.post_json("/v2/models/iris/infer", &two).await).await;
    assert_eq!(status, 400);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("unknown input 'extra'"),
        "{r}"
    );
    // The server still answers correctly afterwards.
    let reference = reference("iris-onnx");
    let (status, r) = body(
        s.post_json("/v2/models/iris/infer", &infer_body(&reference.rows[..1]))
            .await,
    )
    .await;
    assert_eq!(status, 200);
    check(&r, &reference, 0..1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_clients_get_their_own_answers() {
    let s = TestServer::start_ready(&examples_models()).await;
    let url = s.url("/v2/models/iris/infer");
    let tree_url = s.url("/v2/models/iris-tree/infer");
    let tree_reference = std::sync::Arc::new(reference("iris-tree-onnx"));
    let reference = std::sync::Arc::new(reference("iris-onnx"));
    let n = reference.rows.len();
    let mut tasks = Vec::new();
    for client in 0..32usize {
        let (url, reference) = if client % 4 == 3 {
            (tree_url.clone(), tree_reference.clone())
        } else {
            (url.clone(), reference.clone())
        };
        tasks.push(tokio::spawn(async move {
            // Each client its own connection pool, rows and batch sizes.
            let http = reqwest::Client::new();
            for round in 0..8usize {
                let start = (client * 7 + round * 3) % n;
                let len = 1 + (client + round) % (n - start);
                let range = start..start + len;
                let r: Value = http
                    .post(&url)
                    .json(&infer_body(&reference.rows[range.clone()]))
                    .send()
                    .await
                    .expect("POST")
                    .json()
                    .await
                    .expect("JSON");
                check(&r, &reference, range);
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_clients_get_the_same_predictions() {
    let s = TestServer::start_ready(&examples_models()).await;
    let reference = reference("iris-onnx");
    let rows = &reference.rows[..10];
    let mut grpc = s.grpc().await;
    let request = ModelInferRequest {
        model_name: "iris".into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![rows.len() as i64, 4],
            contents: Some(mlserver_proto::inference::InferTensorContents {
                fp32_contents: rows.iter().flatten().map(|&v| v as f32).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    };
    let reply = grpc
        .model_infer(request)
        .await
        .expect("ModelInfer")
        .into_inner();
    let label = reply
        .outputs
        .iter()
        .find(|o| o.name == "label")
        .expect("label");
    assert_eq!(label.datatype, "INT64");
    assert_eq!(
        label.contents.as_ref().unwrap().int64_contents,
        reference.labels[..10]
    );
}

/// The README's curl for the bundled model, sent as written, answers what
/// the README says it answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_gets_the_prediction_it_shows() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let lines: Vec<&str> = readme.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("curl") && l.contains("localhost:8080/v2/models/iris/infer"))
        .expect("the README has a curl for the iris model");
    let payload = lines[at + 1]
        .split_once("-d '")
        .and_then(|(_, rest)| rest.strip_suffix('\''))
        .expect("the line after the curl is its -d '...' body");
    let shown: Value = serde_json::from_str(
        lines[at + 2]
            .strip_prefix("# ")
            .expect("then the answer, as a comment"),
    )
    .expect("the answer shown is JSON");

    let s = TestServer::start_ready(&examples_models()).await;
    let (status, r) = body(
        s.post_json(
            "/v2/models/iris/infer",
            &serde_json::from_str(payload).unwrap(),
        )
        .await,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["outputs"][0], shown["outputs"][0], "labels as shown");
    let got: Vec<f32> = serde_json::from_value(r["outputs"][1]["data"].clone()).unwrap();
    let want: Vec<f32> = serde_json::from_value(shown["outputs"][1]["data"].clone()).unwrap();
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(&want) {
        // The README rounds to 4 decimals.
        assert!((g - w).abs() < 1e-4, "{got:?} vs README {want:?}");
    }
}

/// Under the ODH fork's name, `mlserver_onnx.OnnxModel` answers as the
/// fork's runtime does: `predict` (the graph's first output) unless outputs
/// are requested, requested outputs by `predict` or a graph output's name,
/// anything else a 400 with the fork's message. Under `onnx`, every output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forks_implementation_name_answers_as_the_fork() {
    let dir = mlserver_tests::ModelsDir::new();
    for (folder, implementation) in [
        ("fork", "mlserver_onnx.OnnxModel"),
        ("fork-long", "mlserver_onnx.onnx.OnnxModel"),
        ("ours", "onnx"),
    ] {
        std::fs::create_dir_all(dir.path().join(folder)).unwrap();
        std::fs::copy(
            examples_models().join("iris-onnx/model.onnx"),
            dir.path().join(folder).join("model.onnx"),
        )
        .unwrap();
        dir.model(
            folder,
            json!({"name": folder, "implementation": implementation,
                   "parameters": {"extra": {"providers": ["CPUExecutionProvider"]}}}),
        );
    }
    let s = TestServer::start_ready(dir.path()).await;
    let reference = reference("iris-onnx");
    let rows = &reference.rows[10..12];
    let names = |r: &Value| -> Vec<String> {
        r["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for model in ["fork", "fork-long"] {
        let (status, r) = body(
            s.post_json(&format!("/v2/models/{model}/infer"), &infer_body(rows))
                .await,
        )
        .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(
            r["outputs"],
            json!([{"name": "predict", "shape": [2], "datatype": "INT64", "data": reference.labels[10..12]}])
        );
        let mut request = infer_body(rows);
        request["outputs"] = json!([{"name": "probabilities"}, {"name": "predict"}]);
        let (status, r) = body(
            s.post_json(&format!("/v2/models/{model}/infer"), &request)
                .await,
        )
        .await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(names(&r), ["probabilities", "predict"]);
        request["outputs"] = json!([{"name": "proba"}]);
        let (status, r) = body(
            s.post_json(&format!("/v2/models/{model}/infer"), &request)
                .await,
        )
        .await;
        assert_eq!(
            (status, r["error"].as_str().unwrap_or_default()),
            (
                400,
                "OnnxModel only supports 'predict' or model outputs (proba was received)"
            ),
            "{r}"
        );
    }
    let (status, r) = body(
        s.post_json("/v2/models/ours/infer", &infer_body(rows))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(names(&r), ["label", "probabilities"]);
}
