//! Interop with the real Python `tritonclient[http]` and `tritonclient[grpc]`
//! from PyPI (installed into a venv under target/ on first run).

use mlserver_tests::{examples_models, python, TestServer};

/// Serves the examples and runs `script` against the address `pick` chooses;
/// the script prints `marker` once every check passed.
async fn run_against_examples(
    script: &'static str,
    pick: fn(&TestServer) -> std::net::SocketAddr,
    marker: &str,
) {
    let Some(py) = python::client_python() else {
        return; // PyPI unreachable: client_python() printed a loud SKIPPED banner.
    };
    let s = TestServer::start_ready(&examples_models()).await;
    let target = pick(&s).to_string();
    let out = tokio::task::spawn_blocking(move || python::run_script(&py, script, &[&target]))
        .await
        .unwrap();
    println!("{out}");
    assert!(out.contains(marker));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_http_against_the_examples() {
    run_against_examples(
        "tritonclient_http.py",
        |s| s.addr,
        "all tritonclient checks passed",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_grpc_against_the_examples() {
    run_against_examples(
        "tritonclient_grpc.py",
        |s| s.grpc_addr,
        "all tritonclient grpc checks passed",
    )
    .await;
}

/// Server reflection, as grpcurl uses it (the script is not named
/// grpc_reflection.py: it would shadow the package): grpcio-reflection lists the
/// services (v1alpha and v1) and builds ModelInfer's messages from the
/// descriptors the server sends, with no `.proto` file at hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_reflection_lists_and_calls_every_service() {
    let Some(py) = python::client_python() else {
        return; // PyPI unreachable: client_python() printed a loud SKIPPED banner.
    };
    let s = TestServer::start_ready(&examples_models()).await;
    let target = s.grpc_addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        python::run_script(&py, "reflection_client.py", &[&target, "echo-model"])
    })
    .await
    .unwrap();
    let out: serde_json::Value = serde_json::from_str(out.trim()).expect("the script's JSON");
    let services = serde_json::json!([
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "inference.GRPCInferenceService",
        "inference.model_repository.ModelRepositoryService",
    ]);
    assert_eq!(out["services"], services, "{out}");
    assert_eq!(out["v1_services"], services, "{out}");
    let methods = out["methods"].as_array().unwrap();
    for method in [
        "ModelInfer",
        "ModelStreamInfer",
        "RepositoryIndex",
        "ModelMetadata",
    ] {
        assert!(methods.iter().any(|m| m == method), "{method}: {out}");
    }
    assert_eq!(out["reply"]["modelName"], "echo-model", "{out}");
    assert_eq!(
        out["reply"]["outputs"][0]["shape"],
        serde_json::json!(["1", "2"]),
        "{out}"
    );
    s.stop().await;
}

/// NVIDIA's perf_analyzer, over HTTP and gRPC: it reads the model's
/// metadata and configuration, the server's extensions, then measures,
/// reading the statistics around each window (its `Server:` section).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn perf_analyzer_measures_over_http_and_grpc() {
    let Some(_) = mlserver_tests::perf_analyzer::perf_analyzer() else {
        return; // perf_analyzer() said why, loudly.
    };
    let s = TestServer::start_ready(&examples_models()).await;
    for (protocol, addr) in [("http", s.addr), ("grpc", s.grpc_addr)] {
        let mut cmd = mlserver_tests::perf_analyzer::perf_analyzer().unwrap();
        cmd.args(["-m", "sum-model", "-i", protocol, "-u"])
            .arg(addr.to_string())
            .args(["--shape", "input:1,4", "--measurement-interval", "500"])
            .args(["-s", "1000", "-r", "5"]);
        let out = tokio::task::spawn_blocking(move || cmd.output().expect("perf_analyzer"))
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        println!("perf_analyzer over {protocol}:\n{stdout}");
        assert!(
            out.status.success(),
            "perf_analyzer over {protocol}: {}\n{stdout}\n{stderr}",
            out.status
        );
        for expected in [
            "Client:",
            "Throughput:",
            "Server:",
            "Inference count:",
            "Avg request latency:",
        ] {
            assert!(
                stdout.contains(expected),
                "{expected} not in perf_analyzer's {protocol} output:\n{stdout}\n{stderr}"
            );
        }
    }
    s.stop().await;
}

/// The OpenAPI documents (the server's and each model's) validate with
/// openapi-spec-validator, and a bounded schemathesis run against each
/// finds no server error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_validate_and_schemathesis_finds_no_server_error() {
    let Some(py) = python::client_python() else {
        return; // PyPI unreachable: client_python() printed a loud SKIPPED banner.
    };
    let s = TestServer::start_ready(&examples_models()).await;
    let base = format!("http://{}", s.addr);
    let out = tokio::task::spawn_blocking(move || {
        python::run_script(
            &py,
            "openapi_check.py",
            &[
                &base,
                "sum-model",
                "echo-model",
                "iris",
                "text-model/versions/1",
            ],
        )
    })
    .await
    .unwrap();
    println!("{out}");
    assert!(out.contains("openapi checks passed"));
    s.stop().await;
}
