//! Streaming inference through the one streaming call of the data plane:
//! REST `infer_stream` / `generate_stream` as MLServer's Server-Sent Events
//! and gRPC `ModelStreamInfer`, for a Rust streaming runtime and a Python
//! one (with two workers: MLServer needs `parallel_workers: 0` for it).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::StreamExt;
use mlserver_proto::convert::{decode_infer_response, encode_infer_request};
use mlserver_python::PythonConfig;
use mlserver_settings::EnvSource;
use mlserver_tests::python::{mlserver_python, worker_config};
use mlserver_tests::runtimes::{test_runtimes, CountingModel};
use mlserver_tests::{workspace_root, ModelsDir, TestServer};
use mlserver_types::{InferenceRequest, Tensor};
use serde_json::{json, Value};

fn count_request(n: i64) -> Value {
    json!({"inputs": [{"name": "n", "shape": [1], "datatype": "INT64", "data": [n]}]})
}

/// An SSE body's events: `(event type, data as JSON)`.
fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|event| {
            let mut kind = "message".to_owned();
            let mut data = String::new();
            for line in event.lines() {
                if let Some(k) = line.strip_prefix("event: ") {
                    kind = k.to_owned();
                } else if let Some(d) = line.strip_prefix("data: ") {
                    data.push_str(d);
                }
            }
            (
                kind,
                serde_json::from_str(&data).expect("event data is JSON"),
            )
        })
        .collect()
}

async fn sse(s: &TestServer, path: &str, request: &Value) -> (u16, String, String) {
    let r = s.post_json(path, request).await;
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_grpc_streams_of_a_rust_runtime() {
    let dir = ModelsDir::new();
    dir.model("counting", json!({"implementation": "test.Counting"}));
    dir.model("sum", json!({"implementation": "sum"}));
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.parallel_workers = 2;
    })
    .await;
    s.wait_started().await;

    // Three events, one id, the model's name on each.
    for route in ["infer_stream", "generate_stream"] {
        let (status, content_type, body) = sse(
            &s,
            &format!("/v2/models/counting/{route}"),
            &count_request(3),
        )
        .await;
        assert_eq!(
            (status, content_type.as_str()),
            (200, "text/event-stream"),
            "{body}"
        );
        let events = events(&body);
        let counts: Vec<&Value> = events
            .iter()
            .map(|(_, e)| &e["outputs"][0]["data"][0])
            .collect();
        assert_eq!(counts, [&json!(0), &json!(1), &json!(2)], "{body}");
        assert!(events
            .iter()
            .all(|(k, e)| k == "message" && e["model_name"] == "counting"));
        assert_eq!(
            events[0].1["id"], events[2].1["id"],
            "one id for the stream"
        );
    }

    // A failure or a panic mid-stream ends it with an error event; the
    // server goes on.
    for (n, needle) in [(-1, "counting failed on purpose"), (-2, "panicked")] {
        let (status, _, body) =
            sse(&s, "/v2/models/counting/infer_stream", &count_request(n)).await;
        assert_eq!(status, 200);
        let events = events(&body);
        assert_eq!(events.len(), 2, "{body}");
        assert_eq!(events[1].0, "error", "{body}");
        assert!(
            events[1].1["error"].as_str().unwrap().contains(needle),
            "{body}"
        );
    }

    // Refused before streaming, with the status a unary call gets.
    let (status, _, body) = sse(&s, "/v2/models/nope/infer_stream", &count_request(1)).await;
    assert_eq!(status, 404, "{body}");
    let r = s
        .client
        .post(s.url("/v2/models/counting/infer_stream"))
        .header("content-type", "application/json")
        .body(r#"{"inputs": [{"name": "n", "shape": [2], "datatype": "INT64", "data": [1]}]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // A model that does not stream answers with one event.
    let (status, _, body) = sse(
        &s,
        "/v2/models/sum/infer_stream",
        &json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        events(&body)[0].1["outputs"][0]["data"],
        json!([3.0]),
        "{body}"
    );

    // A client that leaves mid-stream drops it (and the runtime's stream).
    let before = CountingModel::OPEN.load(Ordering::SeqCst);
    let mut r = s
        .post_json("/v2/models/counting/infer_stream", &count_request(1000))
        .await;
    r.chunk().await.unwrap().expect("a first event");
    drop(r);
    let deadline = Instant::now() + Duration::from_secs(10);
    while CountingModel::OPEN.load(Ordering::SeqCst) > before {
        assert!(
            Instant::now() < deadline,
            "the runtime's stream outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // gRPC: the same runtime, the same pipeline (id, name on each answer).
    let mut c = s.grpc().await;
    let message = |n: i64| {
        let request = InferenceRequest::new(vec![Tensor::new("n", vec![1], vec![n]).unwrap()]);
        encode_infer_request("counting", None, request, false)
    };
    let responses: Vec<_> = c
        .model_stream_infer(futures::stream::iter([message(2), message(1)]))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    let responses: Vec<_> = responses
        .into_iter()
        .map(|r| decode_infer_response(r.unwrap()).unwrap())
        .collect();
    assert_eq!(responses.len(), 3);
    assert!(responses.iter().all(|r| r.model_name == "counting"));
    let metrics = s.scrape().await;
    assert!(
        metrics.contains(r#"model_infer_request_success_total{model="counting",version=""}"#),
        "streams are counted:\n{metrics}"
    );
    s.stop().await;
}

/// A Python `predict_stream` over REST SSE, with two workers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_stream_of_a_python_generator() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    dir.write(
        "streamer/streamer.py",
        &std::fs::read_to_string(workspace_root().join("tests/python/models/streamer.py")).unwrap(),
    );
    dir.model(
        "streamer",
        json!({"name": "streamer", "implementation": "streamer.StreamingModel"}),
    );
    let mut runtimes = test_runtimes();
    mlserver_python::install(
        &mut runtimes,
        PythonConfig {
            workers: 2,
            ..worker_config(&python, dir.path())
        },
    );
    let s = TestServer::start_with_env(dir.path(), runtimes, EnvSource::empty(), |settings| {
        settings.parallel_workers = 2;
    })
    .await;
    s.wait_started().await;
    let (status, content_type, body) =
        sse(&s, "/v2/models/streamer/infer_stream", &count_request(4)).await;
    assert_eq!(
        (status, content_type.as_str()),
        (200, "text/event-stream"),
        "{body}"
    );
    let counts: Vec<Value> = events(&body)
        .iter()
        .map(|(_, e)| e["outputs"][0]["data"][0].clone())
        .collect();
    assert_eq!(counts, [json!(0), json!(1), json!(2), json!(3)], "{body}");
    s.stop().await;
}
