//! Operations end to end: adaptive batching, parallel workers, metrics,
//! CORS, the response cache and server metadata from settings.

use std::time::Duration;

use futures::future::join_all;
use mlserver_proto::inference::{
    model_infer_request::InferInputTensor, InferTensorContents, ModelInferRequest,
};
use mlserver_settings::EnvSource;
use mlserver_tests::runtimes::test_runtimes;
use mlserver_tests::{ModelsDir, TestServer};
use serde_json::{json, Value};

async fn infer(s: &TestServer, model: &str, request: &Value) -> (u16, Value) {
    let r = s
        .post_json(&format!("/v2/models/{model}/infer"), request)
        .await;
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON body"))
}

fn fp32(name: &str, rows: usize, cols: usize, start: f32) -> Value {
    let data: Vec<f32> = (0..rows * cols).map(|i| start + i as f32).collect();
    json!({"name": name, "shape": [rows, cols], "datatype": "FP32", "data": data})
}

/// A gRPC request to `model`: one FP32 input `x` of one element.
fn grpc_fp32(model: &str) -> ModelInferRequest {
    ModelInferRequest {
        model_name: model.into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1],
            contents: Some(InferTensorContents {
                fp32_contents: vec![1.0],
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("no outputs in {response}"))
        .iter()
        .find(|o| o["name"] == name)
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

fn probe(dir: &ModelsDir, name: &str, max_batch_size: usize, max_batch_time: f64, extra: Value) {
    dir.model(
        name,
        json!({
            "name": name,
            "implementation": "test.BatchProbe",
            "max_batch_size": max_batch_size,
            "max_batch_time": max_batch_time,
            "parameters": {"extra": extra}
        }),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_batch_merges_along_axis_0_and_splits_back_by_rows() {
    let dir = ModelsDir::new();
    // A long batch time: the batch can only close by filling up.
    probe(&dir, "probe", 4, 30.0, json!({}));
    let s = TestServer::start_ready(dir.path()).await;
    let rows = [1usize, 2, 1, 3];
    let calls = rows.iter().enumerate().map(|(i, &n)| {
        let s = &s;
        async move {
            let request =
                json!({"id": format!("req-{i}"), "inputs": [fp32("x", n, 3, 100.0 * i as f32)]});
            (i, n, infer(s, "probe", &request).await)
        }
    });
    for (i, n, (status, response)) in join_all(calls).await {
        assert_eq!(status, 200, "{response}");
        assert_eq!(response["id"], format!("req-{i}"));
        let x = output(&response, "x");
        assert_eq!(x["shape"], json!([n, 3]));
        let expected: Vec<f32> = (0..n * 3).map(|k| 100.0 * i as f32 + k as f32).collect();
        assert_eq!(
            x["data"],
            json!(expected),
            "request {i} got someone else's rows"
        );
        let batch = output(&response, "batch_rows");
        assert_eq!(batch["shape"], json!([n, 1]));
        assert_eq!(
            batch["data"][0], 7,
            "all four requests share one batch of 7 rows"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_closes_after_max_batch_time() {
    let dir = ModelsDir::new();
    probe(&dir, "probe", 100, 0.05, json!({}));
    let s = TestServer::start_ready(dir.path()).await;
    let (status, response) = infer(&s, "probe", &json!({"inputs": [fp32("x", 2, 1, 0.0)]})).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(output(&response, "batch_rows")["data"], json!([2, 2]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_requests_are_never_mis_merged() {
    let dir = ModelsDir::new();
    probe(&dir, "probe", 8, 0.1, json!({}));
    let s = TestServer::start_ready(dir.path()).await;
    // Shapes, datatypes, names, parameters and requested outputs that
    // MLServer 1.7.1 would merge into one silently wrong batch.
    let kinds = |i: usize| -> Value {
        let n = 1 + i % 3;
        match i % 6 {
            0 => json!({"inputs": [fp32("x", n, 2, i as f32)]}),
            1 => json!({"inputs": [fp32("x", n, 3, i as f32)]}),
            2 => {
                json!({"inputs": [{"name": "x", "shape": [n, 2], "datatype": "INT32", "data": vec![i as i32; n * 2]}]})
            }
            3 => json!({"inputs": [fp32("y", n, 2, i as f32)]}),
            4 => json!({"inputs": [fp32("x", n, 2, i as f32), fp32("z", n, 1, i as f32)]}),
            _ => json!({"inputs": [fp32("x", n, 2, i as f32)], "outputs": [{"name": "x"}]}),
        }
    };
    let calls = (0..48).map(|i| {
        let s = &s;
        let request = kinds(i);
        async move { (i, request.clone(), infer(s, "probe", &request).await) }
    });
    for (i, request, (status, response)) in join_all(calls).await {
        assert_eq!(status, 200, "{response}");
        for input in request["inputs"].as_array().unwrap() {
            let name = input["name"].as_str().unwrap();
            let out = output(&response, name);
            assert_eq!(out["shape"], input["shape"], "request {i}");
            assert_eq!(out["datatype"], input["datatype"], "request {i}");
            assert_eq!(out["data"], input["data"], "request {i}");
        }
        let expected_outputs = if i % 6 == 5 {
            1
        } else {
            request["inputs"].as_array().unwrap().len() + 1
        };
        assert_eq!(
            response["outputs"].as_array().unwrap().len(),
            expected_outputs,
            "request {i}: {response}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_batch_fails_each_of_its_requests_with_the_runtime_error() {
    let dir = ModelsDir::new();
    probe(&dir, "probe", 2, 30.0, json!({}));
    let s = TestServer::start_ready(dir.path()).await;
    let good = json!({"inputs": [fp32("x", 1, 2, 1.0)]});
    let bad = json!({"inputs": [fp32("x", 1, 2, -5.0)]});
    let (a, b) = tokio::join!(infer(&s, "probe", &good), infer(&s, "probe", &bad));
    for (status, response) in [a, b] {
        assert_eq!(status, 400, "{response}");
        assert_eq!(response["error"], "negative value in input 'x'");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_returning_the_wrong_batch_size_is_a_clear_500() {
    let dir = ModelsDir::new();
    probe(&dir, "probe", 2, 30.0, json!({"drop_row": true}));
    let s = TestServer::start_ready(dir.path()).await;
    let request = json!({"inputs": [fp32("x", 1, 2, 1.0)]});
    let (a, b) = tokio::join!(infer(&s, "probe", &request), infer(&s, "probe", &request));
    for (status, response) in [a, b] {
        assert_eq!(status, 500, "{response}");
        let error = response["error"].as_str().unwrap();
        assert!(
            error.contains(
                "output 'batch_rows' with shape [1, 1] for a batch of 2 requests with 2 rows"
            ),
            "{error}"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batching_settings_come_from_mlserver_model_env_vars() {
    let dir = ModelsDir::new();
    dir.model("probe", json!({"implementation": "test.BatchProbe"}));
    let env = EnvSource::empty()
        .with_var("MLSERVER_MODEL_MAX_BATCH_SIZE", "2")
        .with_var("MLSERVER_MODEL_MAX_BATCH_TIME", "30");
    let s = TestServer::start_with_env(dir.path(), test_runtimes(), env, |_| {}).await;
    s.wait_started().await;
    let request = json!({"inputs": [fp32("x", 1, 2, 1.0)]});
    let (a, b) = tokio::join!(infer(&s, "probe", &request), infer(&s, "probe", &request));
    for (status, response) in [a, b] {
        assert_eq!(status, 200, "{response}");
        assert_eq!(output(&response, "batch_rows")["data"], json!([2]));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_workers_bound_predictions_and_health_answers_while_all_are_busy() {
    let dir = ModelsDir::new();
    dir.model(
        "spin",
        json!({"implementation": "test.Spin", "parameters": {"extra": {"predict_ms": 1500}}}),
    );
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.parallel_workers = 2;
    })
    .await;
    s.wait_started().await;
    let busy = tokio::spawn({
        let client = s.client.clone();
        let url = s.url("/v2/models/spin/infer");
        async move {
            let calls = (0..4).map(|_| {
                client
                    .post(&url)
                    .json(&json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]}))
                    .send()
            });
            join_all(calls).await
        }
    });
    // Wait until all four are dispatched: two workers are blocked in
    // `predict` (their threads sleep), two predictions wait for a thread.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !s.scrape().await.contains("parallel_request_queue_count 4") {
        assert!(
            std::time::Instant::now() < deadline,
            "the workers never got busy"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let live = s.get("/v2/health/live").await;
    assert_eq!(live.status(), 200);
    assert!(
        !busy.is_finished(),
        "health and metrics must answer while the predictions still run"
    );
    for r in busy.await.unwrap() {
        let r = r.expect("infer");
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            output(&v, "concurrent")["data"][0],
            2,
            "at most parallel_workers at once"
        );
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awaiting_predictions_interleave_on_one_worker() {
    let dir = ModelsDir::new();
    dir.model(
        "meet",
        json!({"implementation": "test.Rendezvous", "parameters": {"extra": {"parties": 3}}}),
    );
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.parallel_workers = 1;
    })
    .await;
    s.wait_started().await;
    let request =
        json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]});
    let calls = join_all((0..3).map(|_| infer(&s, "meet", &request)));
    // Each call returns only once all three wait in `predict` together.
    let results = tokio::time::timeout(Duration::from_secs(20), calls)
        .await
        .expect("async predictions must not be serialised by parallel_workers");
    for (status, response) in results {
        assert_eq!(status, 200, "{response}");
    }
    s.stop().await;
}

fn metric_value(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(series)
                .and_then(|rest| rest.strip_prefix(' '))
        })
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move_as_requests_succeed_and_fail() {
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));
    probe(&dir, "probe", 0, 0.0, json!({}));
    dir.model("broken", json!({"implementation": "test.Broken"}));
    let s = TestServer::start_ready(dir.path()).await;

    let ok = json!({"inputs": [fp32("x", 1, 2, 1.0)]});
    assert_eq!(infer(&s, "echo", &ok).await.0, 200);
    assert_eq!(infer(&s, "echo", &ok).await.0, 200);
    assert_eq!(infer(&s, "probe", &ok).await.0, 200);
    assert_eq!(
        infer(&s, "probe", &json!({"inputs": [fp32("x", 1, 2, -1.0)]}))
            .await
            .0,
        400
    );
    assert_eq!(infer(&s, "missing", &ok).await.0, 404);
    let unknown_version = s
        .post_json("/v2/models/echo/versions/7/infer", &ok)
        .await
        .status();
    assert_eq!(unknown_version, 404);
    assert!(infer(&s, "broken", &ok).await.0 >= 400);
    let mut grpc = s.grpc().await;
    grpc.model_infer(grpc_fp32("echo"))
        .await
        .expect("gRPC infer");
    let missing = grpc.model_infer(grpc_fp32("missing")).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let text = s.scrape().await;
    let m = |series: &str| metric_value(&text, series);
    // Over REST no version is `None`; over gRPC the unset field is `""`.
    assert_eq!(
        m(r#"model_infer_request_success_total{model="echo",version="None"}"#),
        2.0
    );
    assert_eq!(
        m(r#"model_infer_request_success_total{model="echo",version=""}"#),
        1.0
    );
    assert_eq!(
        m(r#"model_infer_request_success_total{model="probe",version="None"}"#),
        1.0
    );
    assert_eq!(
        m(r#"model_infer_request_failure_total{model="probe",version="None"}"#),
        1.0
    );
    // Only names the registry knows label series (one failed to load
    // counts): made-up names and versions would make series without end.
    assert_eq!(
        m(r#"model_infer_request_failure_total{model="broken",version="None"}"#),
        1.0
    );
    assert!(!text.contains(r#"model="missing""#), "{text}");
    assert!(!text.contains(r#"version="7""#), "{text}");
    assert_eq!(
        m(r#"model_infer_request_duration_count{model="echo",version="None"}"#),
        2.0
    );
    assert_eq!(
        m(
            r#"rest_server_requests_total{app_name="mlserver",method="POST",path="/v2/models/{model_name}/infer",status_code="200"}"#
        ),
        3.0
    );
    assert_eq!(
        m(
            r#"rest_server_requests_total{app_name="mlserver",method="POST",path="/v2/models/{model_name}/infer",status_code="404"}"#
        ),
        1.0
    );
    assert!(text.contains("rest_server_request_duration_seconds_bucket{app_name=\"mlserver\",le=\"+Inf\",method=\"POST\",path=\"/v2/models/{model_name}/infer\",status_code=\"200\"} 3.0\n"));
    assert_eq!(
        m(r#"rest_server_requests_in_progress{app_name="mlserver",method="POST"}"#),
        0.0
    );
    // Sorted by name, as MLServer's multiprocess collector writes them.
    let grpc_labels = r#"grpc_method="ModelInfer",grpc_service="inference.GRPCInferenceService",grpc_type="UNARY""#;
    assert_eq!(
        m(&format!("grpc_server_started_total{{{grpc_labels}}}")),
        2.0
    );
    assert_eq!(
        m(&format!(
            "grpc_server_handled_total{{grpc_code=\"OK\",{grpc_labels}}}"
        )),
        1.0
    );
    assert_eq!(
        m(&format!(
            "grpc_server_handled_total{{grpc_code=\"NOT_FOUND\",{grpc_labels}}}"
        )),
        1.0
    );
    assert_eq!(
        m(&format!(
            "grpc_server_handling_seconds_count{{{grpc_labels}}}"
        )),
        2.0
    );
    // The runtime's own metric, labelled with its model.
    assert_eq!(
        m(r#"probe_predictions_total{model_name="probe",model_version=""}"#),
        2.0
    );
    assert_eq!(m("loaded_models"), 2.0);
    assert_eq!(
        m(r#"model_load_success_total{model="echo",version=""}"#),
        1.0
    );
    assert_eq!(
        m(r#"model_load_failure_total{model="broken",version=""}"#),
        1.0
    );
    // Health probes are not counted, nor a method a route does not have.
    s.get("/v2/health/ready").await;
    assert_eq!(s.get("/v2/models/echo/infer").await.status(), 405);
    let text = s.scrape().await;
    assert!(!text.contains("/v2/health/ready"), "{text}");
    assert!(!text.contains(r#"status_code="405""#), "{text}");

    s.client
        .post(s.url("/v2/repository/models/echo/unload"))
        .send()
        .await
        .unwrap();
    let text = s.scrape().await;
    assert_eq!(
        metric_value(&text, r#"model_unload_total{model="echo",version=""}"#),
        1.0
    );
    assert_eq!(metric_value(&text, "loaded_models"), 1.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_queue_metrics_are_recorded_with_parallel_workers_0() {
    let dir = ModelsDir::new();
    probe(&dir, "probe", 2, 30.0, json!({}));
    let s = TestServer::start_with(dir.path(), test_runtimes(), |settings| {
        settings.parallel_workers = 0;
    })
    .await;
    s.wait_started().await;
    let request = json!({"inputs": [fp32("x", 1, 2, 1.0)]});
    let (a, b) = tokio::join!(infer(&s, "probe", &request), infer(&s, "probe", &request));
    assert_eq!((a.0, b.0), (200, 200));
    let text = s.scrape().await;
    assert_eq!(
        metric_value(
            &text,
            r#"batch_request_queue_count{model_name="probe",model_version=""}"#
        ),
        2.0
    );
    assert_eq!(
        metric_value(
            &text,
            r#"probe_predictions_total{model_name="probe",model_version=""}"#
        ),
        1.0,
        "two requests, one batched call"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_metrics_endpoint_turns_metrics_off() {
    let dir = ModelsDir::new();
    dir.write("settings.json", r#"{"metrics_endpoint": null}"#);
    dir.model("echo", json!({"implementation": "echo"}));
    let s = TestServer::start_ready(dir.path()).await;
    assert_eq!(
        infer(&s, "echo", &json!({"inputs": [fp32("x", 1, 1, 1.0)]}))
            .await
            .0,
        200
    );
    let addr = s.metrics_addr.expect("the test reserved a port");
    // The reserved socket was closed, not served.
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_follows_cors_settings() {
    let dir = ModelsDir::new();
    dir.write(
        "settings.json",
        &json!({"cors_settings": {
            "allow_origins": ["https://app.example"],
            "allow_origin_regex": "https://.*\\.corp\\.example",
            "allow_methods": ["GET", "POST"],
            "allow_headers": ["content-type"],
            "expose_headers": ["x-request-id"],
            "max_age": 60
        }})
        .to_string(),
    );
    dir.model("echo", json!({"implementation": "echo"}));
    let s = TestServer::start_ready(dir.path()).await;
    let preflight = |origin: &'static str| {
        s.client
            .request(reqwest::Method::OPTIONS, s.url("/v2/models/echo/infer"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    for origin in ["https://app.example", "https://ml.corp.example"] {
        let r = preflight(origin).await.unwrap();
        let h = r.headers();
        assert_eq!(h["access-control-allow-origin"], origin);
        assert!(h["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST"));
        assert_eq!(h["access-control-max-age"], "60");
    }
    let r = preflight("https://evil.example").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = s
        .client
        .get(s.url("/v2"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(r.headers()["access-control-expose-headers"], "x-request-id");
    s.stop().await;

    // Off unless configured.
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));
    let s = TestServer::start_ready(dir.path()).await;
    let r = s
        .client
        .get(s.url("/v2"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_response_cache_answers_repeated_requests_without_the_runtime() {
    let dir = ModelsDir::new();
    dir.write(
        "settings.json",
        r#"{"cache_enabled": true, "cache_size": 10}"#,
    );
    dir.model(
        "cached",
        json!({"implementation": "test.BatchProbe", "cache_enabled": true}),
    );
    dir.model("uncached", json!({"implementation": "test.BatchProbe"}));
    let s = TestServer::start_ready(dir.path()).await;
    let request = |id: &str, start: f32| json!({"id": id, "inputs": [fp32("x", 1, 2, start)]});
    for model in ["cached", "uncached"] {
        let (_, first) = infer(&s, model, &request("a", 1.0)).await;
        let (status, second) = infer(&s, model, &request("b", 1.0)).await;
        assert_eq!(status, 200);
        assert_eq!(
            second["id"], "b",
            "a cached response keeps the request's id"
        );
        assert_eq!(first["outputs"], second["outputs"]);
        assert_eq!(infer(&s, model, &request("c", 2.0)).await.0, 200);
    }
    let text = s.scrape().await;
    let calls = |model: &str| {
        metric_value(
            &text,
            &format!(r#"probe_predictions_total{{model_name="{model}",model_version=""}}"#),
        )
    };
    assert_eq!(
        calls("cached"),
        2.0,
        "the repeated request was served from the cache"
    );
    assert_eq!(calls("uncached"), 3.0);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_metadata_comes_from_settings() {
    let dir = ModelsDir::new();
    dir.write(
        "settings.json",
        r#"{"server_name": "acme-inference", "server_version": "9.9.9", "extensions": ["acme_ext"]}"#,
    );
    let s = TestServer::start_ready(dir.path()).await;
    let meta: Value = s.get("/v2").await.json().await.unwrap();
    assert_eq!(meta["name"], "acme-inference");
    assert_eq!(meta["version"], "9.9.9");
    let extensions = meta["extensions"].as_array().unwrap();
    assert!(extensions.contains(&json!("acme_ext")));
    assert!(extensions.contains(&json!("binary_tensor_data")));
    s.stop().await;
}

/// Checks an exposition with the real parsers: `promtool check metrics`
/// (Debian's prometheus package) on the text format, and Python's
/// `prometheus_client` on both formats (its OpenMetrics parser refuses
/// anything off the standard). Returns the complaints, empty when none.
fn exposition_complaints(text: &str, openmetrics: &str) -> Vec<String> {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut complaints = Vec::new();
    let pipe = |cmd: &mut Command, input: &str| {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), said)
    };
    match mlserver_tests::debian::promtool() {
        Some(promtool) => {
            let (ok, said) = pipe(Command::new(promtool).args(["check", "metrics"]), text);
            if !ok || !said.trim().is_empty() {
                complaints.push(format!("promtool: {said}"));
            }
        }
        None => complaints.push("promtool could not be had".into()),
    }
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        complaints.push("no Python with prometheus_client".into());
        return complaints;
    };
    let parse = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families as text\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families as om\n\
        parse = om if sys.argv[1] == 'om' else text\n\
        families = list(parse(sys.stdin.read()))\n\
        bad = [f.name for f in families if f.type in ('unknown', 'untyped')]\n\
        print('untyped: %s' % bad if bad else '', end='')\n\
        print(len(families), file=sys.stderr)";
    for (format, input) in [("text", text), ("om", openmetrics)] {
        let (ok, said) = pipe(Command::new(&python).args(["-c", parse, format]), input);
        let untyped = said.lines().next().unwrap_or("").starts_with("untyped");
        if !ok || untyped {
            complaints.push(format!("prometheus_client ({format}): {said}"));
        }
    }
    complaints
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exposition_parses_in_both_formats_with_process_and_stream_families() {
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));
    probe(&dir, "probe", 0, 0.0, json!({}));
    let s = TestServer::start_ready(dir.path()).await;
    let ok = json!({"inputs": [fp32("x", 1, 2, 1.0)]});
    assert_eq!(infer(&s, "echo", &ok).await.0, 200);
    assert_eq!(infer(&s, "probe", &ok).await.0, 200);
    assert_eq!(infer(&s, "missing", &ok).await.0, 404);
    let mut grpc = s.grpc().await;
    let request = || grpc_fp32("echo");
    grpc.model_infer(request()).await.expect("gRPC infer");
    // A stream of three requests, three replies: counted as stream messages.
    use futures::StreamExt;
    let replies: Vec<_> = grpc
        .model_stream_infer(tokio_stream::iter(vec![request(), request(), request()]))
        .await
        .expect("stream")
        .into_inner()
        .collect()
        .await;
    assert_eq!(replies.len(), 3);
    assert!(replies.iter().all(Result::is_ok), "{replies:?}");

    let text = s.scrape().await;
    let addr = s.metrics_addr.unwrap();
    let om_response = s
        .client
        .get(format!("http://{addr}/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        om_response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let om = om_response.text().await.unwrap();
    assert!(om.ends_with("# EOF\n"), "{om}");
    assert!(
        om.contains("# TYPE model_infer_request_success counter\n"),
        "{om}"
    );
    assert!(text.contains("# TYPE model_infer_request_success_total counter\n"));

    let stream = r#"grpc_method="ModelStreamInfer",grpc_service="inference.GRPCInferenceService""#;
    for series in [
        "grpc_server_msg_received_total",
        "grpc_server_msg_sent_total",
    ] {
        assert_eq!(
            metric_value(
                &text,
                &format!("{series}{{{stream},grpc_type=\"BIDI_STREAMING\"}}")
            ),
            3.0,
            "{series}"
        );
        // Unary calls' messages are not stream messages.
        assert!(
            !text.contains(&format!("{series}{{grpc_method=\"ModelInfer\"")),
            "{text}"
        );
    }
    assert!(metric_value(&text, "process_resident_memory_bytes") > 1e6);
    assert!(metric_value(&text, "process_open_fds") >= 3.0);
    assert!(metric_value(&text, "process_max_fds") >= 3.0);
    assert!(metric_value(&text, "process_start_time_seconds") > 1.6e9);
    assert!(text.contains("\nprocess_cpu_seconds_total "), "{text}");

    let complaints = exposition_complaints(&text, &om);
    assert!(
        complaints.is_empty(),
        "{complaints:#?}\n--- text\n{text}\n--- openmetrics\n{om}"
    );
    s.stop().await;
}

/// Triton's statistics count a batch as one execution and every row as an
/// inference; the configuration gives the batch size and leaves the batch
/// dimension out of the tensors' dims.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_and_config_follow_adaptive_batching() {
    let dir = ModelsDir::new();
    // A long batch time: the batch closes by filling up (2 requests).
    dir.model(
        "probe",
        json!({
            "name": "probe",
            "implementation": "test.BatchProbe",
            "max_batch_size": 2,
            "max_batch_time": 30.0,
            "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "outputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
            "parameters": {"extra": {}}
        }),
    );
    let s = TestServer::start_ready(dir.path()).await;
    let (one, three) = (
        json!({"inputs": [fp32("x", 1, 2, 1.0)]}),
        json!({"inputs": [fp32("x", 3, 2, 1.0)]}),
    );
    let (a, b) = tokio::join!(infer(&s, "probe", &one), infer(&s, "probe", &three));
    assert_eq!((a.0, b.0), (200, 200), "{a:?} {b:?}");
    let stats: Value = s.get("/v2/models/probe/stats").await.json().await.unwrap();
    let m = &stats["model_stats"][0];
    assert_eq!(m["name"], "probe", "{stats}");
    assert_eq!(m["execution_count"], 1, "{stats}");
    assert_eq!(m["inference_count"], 4, "rows of both requests: {stats}");
    let st = &m["inference_stats"];
    assert_eq!(st["success"]["count"], 2, "{stats}");
    assert_eq!(st["queue"]["count"], 2, "{stats}");
    assert_eq!(st["compute_infer"]["count"], 2, "{stats}");
    assert!(st["queue"]["ns"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(m["batch_stats"][0]["batch_size"], 4, "{stats}");
    assert_eq!(m["batch_stats"][0]["compute_infer"]["count"], 1, "{stats}");
    // Failures count per request (a batch of two the model refuses).
    let refused = json!({"inputs": [fp32("x", 1, 2, -1.0)]});
    let (a, b) = tokio::join!(infer(&s, "probe", &refused), infer(&s, "probe", &refused));
    assert_eq!((a.0, b.0), (400, 400));
    let stats: Value = s.get("/v2/models/stats").await.json().await.unwrap();
    assert_eq!(
        stats["model_stats"][0]["inference_stats"]["fail"]["count"], 2,
        "{stats}"
    );
    let config: Value = s.get("/v2/models/probe/config").await.json().await.unwrap();
    assert_eq!(config["max_batch_size"], 2, "{config}");
    assert_eq!(
        config["input"],
        json!([{"name": "x", "data_type": "TYPE_FP32", "dims": [2]}]),
        "{config}"
    );
    assert_eq!(
        config["dynamic_batching"]["max_queue_delay_microseconds"], 30_000_000,
        "{config}"
    );
    assert_eq!(s.get("/v2/models/missing/stats").await.status(), 404);
    assert_eq!(s.get("/v2/models/missing/config").await.status(), 404);
    s.stop().await;
}

/// As MLServer's multiprocess collector exposes them: a labelled family
/// appears with its first sample (no `# HELP` before), and a histogram's
/// child is its `_sum`, its buckets, then its `_count` (the last sample,
/// which MLServer's own tests read).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_appear_with_their_first_sample_and_histograms_end_with_count() {
    let dir = ModelsDir::new();
    dir.model("echo", json!({"implementation": "echo"}));
    let s = TestServer::start_ready(dir.path()).await;
    // Nothing has called gRPC or inferred yet (readiness was polled over
    // REST, whose families are there with that call's samples).
    let before = s.scrape().await;
    for family in [
        "grpc_server_started_total",
        "grpc_server_handled_total",
        "grpc_server_handling_seconds",
        "model_infer_request_success_total",
        "model_infer_request_duration",
    ] {
        assert!(
            !before.contains(family),
            "{family} before any request:\n{before}"
        );
    }
    let request =
        json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]});
    let r = s
        .client
        .post(s.url("/v2/models/echo/infer"))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after = s.scrape().await;
    assert!(
        after.contains("# TYPE rest_server_requests_total counter\n")
            && after.contains("\nrest_server_requests_total{app_name=\"mlserver\",method=\"POST\",path=\"/v2/models/{model_name}/infer\",status_code=\"200\"} 1.0\n"),
        "{after}"
    );
    let durations: Vec<&str> = after
        .lines()
        .filter(|l| l.starts_with("rest_server_request_duration_seconds_"))
        .collect();
    assert!(durations
        .first()
        .unwrap()
        .starts_with("rest_server_request_duration_seconds_sum{"));
    assert!(
        durations
            .last()
            .unwrap()
            .starts_with("rest_server_request_duration_seconds_count{"),
        "{durations:?}"
    );
    s.stop().await;
}
