//! Python `MLModel` classes, unchanged, in worker processes behind the Rust
//! server: the seed's custom runtime, MLServer's own scikit-learn runtime,
//! and runtimes that raise, crash and stall beside healthy models. The venv
//! with the real `mlserver` from PyPI is made by the test setup.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mlserver_proto::inference::model_infer_request::InferInputTensor;
use mlserver_proto::inference::{InferTensorContents, ModelInferRequest};
use mlserver_python::PythonConfig;
use mlserver_settings::EnvSource;
use mlserver_tests::python::{mlserver_python, worker_config};
use mlserver_tests::runtimes::test_runtimes;
use mlserver_tests::{workspace_root, ModelsDir, TestServer};
use serde_json::{json, Value};

fn fixture(name: &str) -> String {
    std::fs::read_to_string(workspace_root().join("tests/python/models").join(name))
        .expect("fixture")
}

/// Serves `dir` with the test runtimes plus Python workers on `python`.
async fn start(dir: &Path, python: &Path, workers: usize) -> TestServer {
    let mut runtimes = test_runtimes();
    mlserver_python::install(
        &mut runtimes,
        PythonConfig {
            workers,
            ..worker_config(python, dir)
        },
    );
    let s = TestServer::start_with_env(dir, runtimes, EnvSource::empty(), |settings| {
        settings.parallel_workers = workers;
    })
    .await;
    s.wait_started().await;
    s
}

async fn infer(
    s: &TestServer,
    model: &str,
    request: &Value,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let r = s
        .client
        .post(s.url(&format!("/v2/models/{model}/infer")))
        .header("x-client", "rust-test")
        .json(request)
        .send()
        .await
        .expect("POST");
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.json().await.expect("JSON"), headers)
}

/// How many `predict_stream` generators the worker answering says run, and
/// how many responses they have produced in all.
async fn streamer_stats(s: &TestServer) -> (i64, i64) {
    let request =
        json!({"inputs": [{"name": "n", "shape": [1], "datatype": "INT64", "data": [0]}]});
    let (status, response, _) = infer(s, "streamer", &request).await;
    assert_eq!(status, 200, "{response}");
    let value = |name| output(&response, name)["data"][0].as_i64().unwrap();
    (value("running"), value("produced"))
}

async fn streams_running(s: &TestServer) -> i64 {
    streamer_stats(s).await.0
}

/// A `streamer` request for `n` responses (see `streamer.py`), with a
/// `pad` input of `pad` bytes when not 0.
fn stream_message(n: i64, pad: usize) -> ModelInferRequest {
    let mut inputs = vec![InferInputTensor {
        name: "n".into(),
        datatype: "INT64".into(),
        shape: vec![1],
        contents: Some(InferTensorContents {
            int64_contents: vec![n],
            ..Default::default()
        }),
        ..Default::default()
    }];
    if pad > 0 {
        inputs.push(InferInputTensor {
            name: "pad".into(),
            datatype: "BYTES".into(),
            shape: vec![1],
            contents: Some(InferTensorContents {
                bytes_contents: vec![vec![0u8; pad].into()],
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    ModelInferRequest {
        model_name: "streamer".into(),
        inputs,
        ..Default::default()
    }
}

fn streamer_model(dir: &ModelsDir) {
    dir.write("streamer/streamer.py", &fixture("streamer.py"));
    dir.model(
        "streamer",
        json!({"name": "streamer", "implementation": "streamer.StreamingModel"}),
    );
}

fn faulty_request(value: f64) -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP64", "data": [value, 0.5]}]})
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

fn custom_model(dir: &ModelsDir) {
    dir.write("custom/custom_model.py", &fixture("custom_model.py"));
    dir.write(
        "custom/weights.json",
        r#"{"weights": [1.0, 10.0, 100.0], "bias": 0.5}"#,
    );
    dir.model(
        "custom",
        json!({"name": "custom", "implementation": "custom_model.CustomMLModel",
               "parameters": {"version": "v7"}}),
    );
}

fn faulty_model(dir: &ModelsDir) {
    dir.write("faulty/faulty.py", &fixture("faulty.py"));
    dir.model(
        "faulty",
        json!({"name": "faulty", "implementation": "faulty.FaultyModel"}),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlserver_runtimes_run_unchanged() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    custom_model(&dir);
    // MLServer's own scikit-learn runtime on a model saved with joblib.
    let sk = dir.path().join("iris-sklearn");
    mlserver_tests::python::run_script(&python, "make_sklearn_model.py", &[sk.to_str().unwrap()]);
    dir.model(
        "iris-sklearn",
        json!({"name": "iris-sklearn", "implementation": "mlserver_sklearn.SKLearnModel",
               "parameters": {"uri": "./model.joblib"}}),
    );
    dir.model("echo", json!({"implementation": "echo"}));
    // The same class again, batched by the server before it reaches Python.
    dir.write("batched/custom_model.py", &fixture("custom_model.py"));
    dir.write(
        "batched/weights.json",
        r#"{"weights": [1.0, 10.0, 100.0], "bias": 0.5}"#,
    );
    dir.model(
        "batched",
        json!({"name": "batched", "implementation": "custom_model.CustomMLModel",
               "max_batch_size": 4, "max_batch_time": 30}),
    );
    streamer_model(&dir);
    let s = start(dir.path(), &python, 2).await;
    assert_eq!(s.get("/v2/health/ready").await.status(), 200);

    // predict_stream over ModelStreamInfer: two requests, 2 + 3 responses.
    let mut grpc = s.grpc().await;
    let message = |n: i64| stream_message(n, 0);
    let mut replies = grpc
        .model_stream_infer(tokio_stream::iter(vec![message(2), message(3)]))
        .await
        .expect("stream")
        .into_inner();
    let mut counts = Vec::new();
    while let Some(reply) = tokio_stream::StreamExt::next(&mut replies).await {
        let reply = reply.expect("stream reply");
        assert_eq!(reply.model_name, "streamer");
        let contents = reply.outputs[0].contents.as_ref().expect("typed");
        counts.extend(contents.int64_contents.iter().copied());
    }
    assert_eq!(counts, vec![0, 1, 0, 1, 2]);

    // A client that goes away stops the generator in the worker.
    let mut endless = grpc
        .model_stream_infer(tokio_stream::iter(vec![message(-1)]))
        .await
        .expect("stream")
        .into_inner();
    for _ in 0..3 {
        tokio_stream::StreamExt::next(&mut endless)
            .await
            .unwrap()
            .unwrap();
    }
    // With two workers, the one running the stream answers 1 while it runs.
    drop(endless);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut zeros = 0;
    while zeros < 4 {
        // Both workers must report no generator left (requests alternate).
        zeros = if streams_running(&s).await == 0 {
            zeros + 1
        } else {
            0
        };
        assert!(
            Instant::now() < deadline,
            "the endless generator was never stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Four requests, one batch of 4 rows in Python, each client its own row.
    let calls = (0..4).map(|i| {
        let s = &s;
        async move {
            let x = json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [i, 0, 0]}]});
            infer(s, "batched", &x).await
        }
    });
    for (i, (status, response, _)) in futures::future::join_all(calls)
        .await
        .into_iter()
        .enumerate()
    {
        assert_eq!(status, 200, "{response}");
        assert_eq!(output(&response, "y")["data"], json!([i as f64 + 0.5]));
    }
    let metrics = s.scrape().await;
    for line in [
        r#"batch_request_queue_count{model_name="batched",model_version=""} 4"#,
        r#"model_infer_request_success_total{model="batched",version="None"} 4"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }

    // The custom runtime: weights from get_model_uri, headers both ways.
    let request = json!({"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32",
                                     "data": [1, 2, 3, 4, 5, 6]}]});
    let (status, response, headers) = infer(&s, "custom", &request).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(output(&response, "y")["data"], json!([321.5, 654.5]));
    assert_eq!(output(&response, "y")["shape"], json!([2, 1]));
    assert_eq!(response["model_name"], "custom");
    assert_eq!(response["model_version"], "v7");
    assert_eq!(headers["x-seen-by-python"], "custom:rust-test");
    let (status, response, _) = infer(
        &s,
        "custom",
        &json!({"inputs": [{"name": "z", "shape": [1], "datatype": "FP32", "data": [1]}]}),
    )
    .await;
    assert_eq!(
        (status, response["error"].as_str()),
        (
            400,
            Some("mlserver.errors.InferenceError: expected one input named 'x'")
        )
    );

    // Metadata comes from the Python model.
    let meta: Value = s.get("/v2/models/custom").await.json().await.unwrap();
    assert_eq!(meta["name"], "custom");

    // gRPC reaches the same worker.
    let reply = grpc
        .model_infer(ModelInferRequest {
            model_name: "custom".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP64".into(),
                shape: vec![1, 3],
                contents: Some(InferTensorContents {
                    fp64_contents: vec![0.0, 0.0, 1.0],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("gRPC infer")
        .into_inner();
    // Typed in, typed out (the worker's raw reply is converted back).
    let y = reply.outputs[0].contents.as_ref().expect("typed contents");
    assert_eq!(y.fp64_contents, vec![100.5]);

    // The scikit-learn runtime reproduces the predictions made at training.
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(sk.join("expected.json")).unwrap()).unwrap();
    let rows = expected["inputs"].as_array().unwrap();
    let flat: Vec<f64> = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    let request = json!({"inputs": [{"name": "input-0", "shape": [rows.len(), 4], "datatype": "FP64", "data": flat}]});
    let (status, response, _) = infer(&s, "iris-sklearn", &request).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(output(&response, "predict")["data"], expected["predict"]);
    let mut with_proba = request.clone();
    with_proba["outputs"] = json!([{"name": "predict_proba"}]);
    let (status, response, _) = infer(&s, "iris-sklearn", &with_proba).await;
    assert_eq!(status, 200, "{response}");
    let proba: Vec<f64> = output(&response, "predict_proba")["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    let want: Vec<f64> = expected["predict_proba"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_f64().unwrap()))
        .collect();
    assert_eq!(proba.len(), want.len());
    for (a, b) in proba.iter().zip(&want) {
        assert!((a - b).abs() < 1e-9, "{proba:?} vs {want:?}");
    }

    // Unload and load reach the workers.
    let r = s
        .client
        .post(s.url("/v2/repository/models/custom/unload"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(infer(&s, "custom", &json!({"inputs": []})).await.0, 404);
    let r = s
        .client
        .post(s.url("/v2/repository/models/custom/load"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, response, _) = infer(
        &s,
        "custom",
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1, 1]}]}),
    )
    .await;
    assert_eq!(
        (status, output(&response, "y")["data"].clone()),
        (200, json!([111.5]))
    );
    // Reloading a loaded Python model swaps instances and keeps serving.
    for _ in 0..2 {
        let r = s
            .client
            .post(s.url("/v2/repository/models/custom/load"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(s.get("/v2/models/custom/ready").await.status(), 200);
    let (status, response, _) = infer(
        &s,
        "custom",
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [2, 2, 2]}]}),
    )
    .await;
    assert_eq!(
        (status, output(&response, "y")["data"].clone()),
        (200, json!([222.5])),
        "{response}"
    );
    s.stop().await;
}

/// Streams are flow-controlled through the worker both ways: a generator
/// faster than its client waits for it, and so does a client faster than
/// the generator, instead of either piling messages up in memory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_streams_wait_for_slow_consumers() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio_stream::StreamExt;
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    streamer_model(&dir);
    let s = start(dir.path(), &python, 1).await;
    let mut grpc = s.grpc().await;

    // 400 responses of 256 KiB, as fast as Python makes them, to a client
    // that takes 3 and then nothing for a while.
    let mut replies = grpc
        .model_stream_infer(tokio_stream::iter(vec![stream_message(-2, 0)]))
        .await
        .expect("stream")
        .into_inner();
    for _ in 0..3 {
        replies.next().await.unwrap().expect("reply");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, produced) = streamer_stats(&s).await;
    // 3 taken, the worker's window of 16, and what HTTP/2's own windows
    // hold (a few MiB): not 400 (100 MiB) sitting in the server.
    assert!(
        (3..100).contains(&produced),
        "the generator ran ahead of its client: {produced} of 400 produced"
    );
    // Credits come back as the client reads: the stream completes.
    let mut counts = vec![0, 1, 2];
    while let Some(reply) = replies.next().await {
        let reply = reply.expect("reply");
        let count = reply.outputs.iter().find(|o| o.name == "count").unwrap();
        counts.push(count.contents.as_ref().map_or_else(
            || i64::from_le_bytes(reply.raw_output_contents[0][..8].try_into().unwrap()),
            |c| c.int64_contents[0],
        ));
    }
    assert_eq!(counts, (0..400).collect::<Vec<i64>>());

    // The other way: a generator that never takes its second request (the
    // first streams without end), sent 300 requests of 64 KiB.
    let sent = Arc::new(AtomicUsize::new(0));
    let counter = sent.clone();
    let requests = tokio_stream::iter(0..300).map(move |i| {
        counter.fetch_add(1, Ordering::Relaxed);
        stream_message(if i == 0 { -1 } else { 1 }, 64 * 1024)
    });
    let mut replies = grpc
        .model_stream_infer(requests)
        .await
        .expect("stream")
        .into_inner();
    for _ in 0..5 {
        replies.next().await.unwrap().expect("reply");
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let taken = sent.load(Ordering::Relaxed);
    assert!(
        taken < 150,
        "the server read {taken} of 300 requests the generator never asked for"
    );
    eprintln!("flow control: {produced} of 400 responses produced, {taken} of 300 requests read");
    drop((replies, grpc));
    s.stop().await;
}

/// The worker's fast paths against what they replace: replies written
/// directly against MLServer's converter, frames cut from any split of the
/// socket's bytes, held replies sent whole and in order
/// (`tests/python/worker_check.py`).
#[test]
fn worker_fast_paths_match_mlserver() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let script_dir = workspace_root().join("crates/mlserver-python/python");
    let out = mlserver_tests::python::run_script(
        &python,
        "worker_check.py",
        &[script_dir.to_str().unwrap()],
    );
    eprint!("{out}");
    for check in ["requests:", "replies:", "framing:", "writer:", "busy poll:"] {
        assert!(out.contains(check), "the {check} check did not run: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_implementation_names_both_lookups() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    dir.model("ghost", json!({"implementation": "no_such_module.Ghost"}));
    let s = start(dir.path(), &python, 1).await;
    let index: Value = s
        .client
        .post(s.url("/v2/repository/index"))
        .json(&json!({}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reason = index[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("neither a Rust runtime")
            && reason.contains("No module named 'no_such_module'"),
        "{reason}"
    );
    assert_eq!(s.get("/v2/health/ready").await.status(), 503);
    s.stop().await;
}

fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            // The state follows the parenthesised command name.
            let state = stat
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            state != Some('Z')
        })
        .unwrap_or(false)
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !process_alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

async fn worker_pid(s: &TestServer) -> u32 {
    let (status, response, _) = infer(s, "faulty", &faulty_request(0.0)).await;
    assert_eq!(status, 200, "{response}");
    output(&response, "pid")["data"][0].as_u64().unwrap() as u32
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_stay_with_their_requests_and_dead_workers_come_back() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    faulty_model(&dir);
    custom_model(&dir);
    dir.model("echo", json!({"implementation": "echo"}));
    let s = start(dir.path(), &python, 1).await;
    let first_pid = worker_pid(&s).await;

    // Exceptions are errors of their request only.
    let (status, response, _) = infer(&s, "faulty", &faulty_request(1.0)).await;
    assert_eq!(
        (status, response["error"].as_str()),
        (
            400,
            Some("mlserver.errors.InferenceError: value 1 is not allowed")
        )
    );
    let (status, response, _) = infer(&s, "faulty", &faulty_request(2.0)).await;
    assert_eq!(status, 500);
    assert_eq!(
        response["error"],
        "builtins.ZeroDivisionError: division by zero in user code"
    );
    assert_eq!(
        worker_pid(&s).await,
        first_pid,
        "exceptions do not cost the worker"
    );

    // A slow request in flight, then a crash of the same worker: both fail
    // with a clear message, the Rust model never notices.
    let slow = {
        let client = s.client.clone();
        let url = s.url("/v2/models/faulty/infer");
        tokio::spawn(async move {
            let r = client
                .post(url)
                .json(&faulty_request(4.0))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, response, _) = infer(&s, "faulty", &faulty_request(3.0)).await;
    assert_eq!(status, 500, "{response}");
    let error = response["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("pid {first_pid}")) && error.contains("SIGKILL"),
        "{error}"
    );
    let (status, response) = slow.await.unwrap();
    assert_eq!(
        status, 500,
        "the slow request died with its worker: {response}"
    );
    let echo = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]});
    assert_eq!(infer(&s, "echo", &echo).await.0, 200);

    // The worker is replaced and gets its models back; readiness follows.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = s.get("/v2/models/custom/ready").await.status() == 200
            && s.get("/v2/models/faulty/ready").await.status() == 200;
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the Python models never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let second_pid = worker_pid(&s).await;
    assert_ne!(second_pid, first_pid);
    assert!(!process_alive(first_pid));
    let (status, _, _) = infer(
        &s,
        "custom",
        &json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP32", "data": [1, 1, 1]}]}),
    )
    .await;
    assert_eq!(status, 200);

    // Over gRPC a lost worker is UNAVAILABLE (worth a retry).
    let mut grpc = s.grpc().await;
    let crash = grpc
        .model_infer(ModelInferRequest {
            model_name: "faulty".into(),
            inputs: vec![InferInputTensor {
                name: "x".into(),
                datatype: "FP64".into(),
                shape: vec![1],
                contents: Some(InferTensorContents {
                    fp64_contents: vec![3.0],
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(crash.code(), tonic::Code::Unavailable, "{crash:?}");

    // Stopping the server stops its workers.
    let deadline = Instant::now() + Duration::from_secs(60);
    let third_pid = loop {
        let (status, response, _) = infer(&s, "faulty", &faulty_request(0.0)).await;
        if status == 200 {
            break output(&response, "pid")["data"][0].as_u64().unwrap() as u32;
        }
        assert!(
            Instant::now() < deadline,
            "no replacement after the gRPC crash"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    s.stop().await;
    assert!(
        wait_gone(third_pid, Duration::from_secs(10)),
        "worker {third_pid} outlived the server"
    );
}

/// Not a test on its own: the server process `no_orphans_when_the_server_is_killed`
/// starts and then kills with SIGKILL. Prints the worker's pid, then serves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "run by no_orphans_when_the_server_is_killed"]
async fn orphan_server() {
    let python = PathBuf::from(std::env::var("ORPHAN_PYTHON").expect("ORPHAN_PYTHON"));
    let dir = ModelsDir::new();
    faulty_model(&dir);
    let s = start(dir.path(), &python, 2).await;
    let mut pids = std::collections::BTreeSet::new();
    while pids.len() < 2 {
        pids.insert(worker_pid(&s).await);
    }
    for pid in pids {
        println!("WORKER_PID={pid}");
    }
    tokio::time::sleep(Duration::from_secs(600)).await;
}

#[test]
fn no_orphans_when_the_server_is_killed() {
    let Some(python) = mlserver_python() else {
        return;
    };
    use std::io::BufRead;
    let mut server = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "orphan_server", "--nocapture"])
        .env("ORPHAN_PYTHON", &python)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(server.stdout.take().unwrap());
    let mut pids = Vec::new();
    for line in stdout.lines() {
        let line = line.unwrap();
        if let Some(pid) = line.strip_prefix("WORKER_PID=") {
            pids.push(pid.parse::<u32>().unwrap());
            if pids.len() == 2 {
                break;
            }
        }
    }
    assert_eq!(pids.len(), 2, "the server did not report its workers");
    assert!(pids.iter().all(|p| process_alive(*p)));
    server.kill().unwrap(); // SIGKILL: no chance to clean up
    server.wait().unwrap();
    for pid in pids {
        assert!(
            wait_gone(pid, Duration::from_secs(15)),
            "worker {pid} outlived its server"
        );
    }
}

/// The pids that answer `model` over a few requests.
async fn pids_of(s: &TestServer, model: &str) -> std::collections::BTreeSet<u64> {
    let mut pids = std::collections::BTreeSet::new();
    for _ in 0..12 {
        let (status, response, _) = infer(s, model, &faulty_request(0.0)).await;
        assert_eq!(status, 200, "{model}: {response}");
        pids.insert(output(&response, "pid")["data"][0].as_u64().unwrap());
    }
    pids
}

/// MLServer's pool rules: `inference_pool_gid` shares a dedicated pool
/// between the models naming it, `autogenerate_inference_pool_gid` gives a
/// model a pool of its own, and the deprecated model-level
/// `parallel_workers: 0` (the ModelMesh guide's debugging variable) a single
/// worker of its own; every other model shares the environment's pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inference_pool_groups_get_their_own_workers() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    let model = |name: &str, extra: Value| {
        let mut settings = json!({"name": name, "implementation": "faulty.FaultyModel"});
        settings
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        dir.model(name, settings);
        dir.write(&format!("{name}/faulty.py"), &fixture("faulty.py"));
    };
    model("plain", json!({}));
    model("plain-too", json!({}));
    model("gid-a", json!({"parameters": {"inference_pool_gid": "g1"}}));
    model("gid-b", json!({"parameters": {"inference_pool_gid": "g1"}}));
    model(
        "own",
        json!({"parameters": {"autogenerate_inference_pool_gid": true}}),
    );
    model("debug", json!({"parallel_workers": 0}));
    // The guide's MyCustomRuntime: sync `load` and `predict`.
    dir.write("sync/sync_model.py", &fixture("sync_model.py"));
    dir.model(
        "sync",
        json!({"name": "sync", "implementation": "sync_model.MyCustomRuntime"}),
    );
    let s = start(dir.path(), &python, 2).await;

    let plain = pids_of(&s, "plain").await;
    assert_eq!(plain, pids_of(&s, "plain-too").await, "one shared pool");
    let gid = pids_of(&s, "gid-a").await;
    assert_eq!(
        gid,
        pids_of(&s, "gid-b").await,
        "models of one gid share its pool"
    );
    let own = pids_of(&s, "own").await;
    let debug = pids_of(&s, "debug").await;
    assert_eq!(debug.len(), 1, "parallel_workers 0: one worker ({debug:?})");
    let pools = [&plain, &gid, &own, &debug];
    for (i, a) in pools.iter().enumerate() {
        for b in &pools[i + 1..] {
            assert!(a.is_disjoint(b), "pools share workers: {pools:?}");
        }
    }

    let request =
        json!({"inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [3, 4]}]});
    let (status, response, _) = infer(&s, "sync", &request).await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(output(&response, "doubled")["data"], json!([6, 8]));
}

/// `@custom_handler` endpoints (mlserver-mlflow's `/invocations` and
/// `/ping` are written this way), served with two workers (MLServer's hang
/// there) while the model is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_handlers_are_served_while_loaded() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    dir.write("handlers/handlers.py", &fixture("handlers.py"));
    dir.model(
        "handlers",
        json!({"name": "handlers", "implementation": "handlers.WithHandlers"}),
    );
    dir.write("bad-handlers/handlers.py", &fixture("handlers.py"));
    dir.model(
        "bad-handlers",
        json!({"name": "bad-handlers", "implementation": "handlers.BadSignature"}),
    );
    let s = start(dir.path(), &python, 2).await;
    // A signature FastAPI rejects fails that model's load, with FastAPI's
    // reason; the other model serves.
    let index: Value = s.index().await;
    let bad = index
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "bad-handlers")
        .unwrap();
    assert_eq!(bad["state"], "UNAVAILABLE", "{index}");
    assert!(
        bad["reason"]
            .as_str()
            .unwrap()
            .contains("Invalid args for response field"),
        "{bad}"
    );
    assert_eq!(s.post_json("/bad", &json!({})).await.status(), 404);
    let r = s
        .client
        .post(s.url("/invocations?q=1"))
        .header("content-type", "application/json")
        .body(r#"{"inputs": [[1, 2]]}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["got"], json!({"inputs": [[1, 2]]}), "{v}");
    assert_eq!(
        (v["content_type"].as_str(), v["query"].as_str()),
        (Some("application/json"), Some("1"))
    );
    let ping = s.get("/ping").await;
    assert_eq!(ping.status(), 200);
    assert_eq!(ping.text().await.unwrap(), "\"\\n\"");
    // A method the route does not have.
    assert_eq!(s.get("/invocations").await.status(), 405);
    // Parameters resolved as FastAPI does, from a gzip body too (inflated
    // once: the handler's MLServer `Request` must not inflate it again).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, br#"{"a": [1, 2]}"#).unwrap();
    let r = s
        .client
        .post(s.url("/echo-body?times=3"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"payload": {"a": [1, 2]}, "times": 3}));
    // What does not validate is FastAPI's 422, never a 500.
    let r = s
        .client
        .post(s.url("/echo-body?times=many"))
        .header("content-type", "application/json")
        .body("[1, 2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    let locations: Vec<&Value> = v["detail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["loc"])
        .collect();
    assert_eq!(
        locations,
        [&json!(["query", "times"]), &json!(["body"])],
        "{v}"
    );

    let unload = s
        .post_json("/v2/repository/models/handlers/unload", &json!({}))
        .await;
    assert_eq!(unload.status(), 200);
    assert_eq!(s.get("/ping").await.status(), 404, "gone with the model");
    s.stop().await;
}

/// The ODH fork's production mode: with an allowlist, only its classes
/// load, a model's own folder is not on `sys.path` (a class shipped beside
/// the model does not import even when allowlisted), custom environments
/// and unnamed CORS origins are refused; other models keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_mode_loads_only_allowlisted_classes() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    let sk = dir.path().join("iris");
    mlserver_tests::python::run_script(&python, "make_sklearn_model.py", &[sk.to_str().unwrap()]);
    dir.model(
        "iris",
        json!({"name": "iris", "implementation": "mlserver_sklearn.sklearn.SKLearnModel",
               "parameters": {"uri": "./model.joblib"}}),
    );
    dir.model(
        "iris-env",
        json!({"name": "iris-env", "implementation": "mlserver_sklearn.SKLearnModel",
               "parameters": {"uri": "../iris/model.joblib", "environment_tarball": "./env.tar.gz"}}),
    );
    custom_model(&dir);
    faulty_model(&dir);
    dir.model("sum", json!({"name": "sum", "implementation": "sum"}));
    let allowlist = dir.path().join("trusted-runtimes.json");
    std::fs::write(
        &allowlist,
        r#"["mlserver_sklearn.SKLearnModel", "custom_model.CustomMLModel"]"#,
    )
    .unwrap();
    let security = mlserver_settings::RuntimeSecurity::from_file(&allowlist).unwrap();
    assert!(security
        .describe()
        .starts_with("Runtime security: PRODUCTION - 2 model"));

    let server = |security: mlserver_settings::RuntimeSecurity, cors: Option<Value>| {
        let mut runtimes = test_runtimes();
        let mut config = PythonConfig::from_settings(&Default::default(), &EnvSource::empty());
        config.python = python.clone();
        config.models_root = dir.path().to_owned();
        config.environments_dir = dir.path().join(".envs");
        config.production = security.is_production();
        mlserver_python::install(&mut runtimes, config);
        let env = Arc::new(EnvSource::empty());
        let mut settings = mlserver_settings::load_settings(dir.path(), &env).unwrap();
        settings.cors_settings = cors.map(|c| serde_json::from_value(c).unwrap());
        mlserver_server::Server::with_security(settings, runtimes, env, security)
    };
    for cors in [
        json!({"allow_origins": ["*"]}),
        json!({"allow_origin_regex": "https://.*"}),
    ] {
        let refused = server(security.clone(), Some(cors))
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("not allowed in PRODUCTION mode"),
            "{refused}"
        );
    }
    let named = json!({"allow_origins": ["https://app.example"]});
    let s = TestServer::serve(server(security, Some(named)).unwrap()).await;
    s.wait_started().await;

    let request = json!({"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64",
                                     "data": [5.1, 3.5, 1.4, 0.2]}]});
    let (status, response, _) = infer(&s, "iris", &request).await;
    assert_eq!(status, 200, "{response}");
    let index: Value = s.index().await;
    let reason = |name: &str| {
        index
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .map(|m| format!("{} {}", m["state"], m["reason"]))
            .unwrap_or_else(|| panic!("{name} not in {index}"))
    };
    assert!(reason("iris").starts_with("\"READY\""));
    assert!(
        reason("faulty").contains(
            "Model implementation 'faulty.FaultyModel' is not included in the trusted runtimes allowlist configuration."
        ),
        "{index}"
    );
    assert!(reason("sum").contains("'sum' is not included"), "{index}");
    assert!(
        reason("iris-env").contains("environment_tarball is not allowed in PRODUCTION mode"),
        "{index}"
    );
    // Allowlisted, but only importable from its own folder.
    assert!(
        reason("custom").contains("No module named 'custom_model'"),
        "{index}"
    );
    let (status, _, _) = infer(&s, "faulty", &request).await;
    assert_ne!(status, 200);

    // The fork's report of the mode, over REST and gRPC.
    let runtimes: Value = s.get("/v2/runtimes").await.json().await.unwrap();
    assert_eq!(
        runtimes,
        json!({"mode": "PRODUCTION", "allowed_model_implementations":
               ["custom_model.CustomMLModel", "mlserver_sklearn.SKLearnModel"]})
    );
    let reply = s
        .grpc()
        .await
        .runtime_security(mlserver_proto::inference::RuntimeSecurityRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.mode, "PRODUCTION");
    assert_eq!(
        reply.allowed_model_implementations.unwrap().items,
        [
            "custom_model.CustomMLModel",
            "mlserver_sklearn.SKLearnModel"
        ]
    );
}
