//! Interop with the real Python `tritonclient[http]` and `tritonclient[grpc]`
//! from PyPI (installed into a venv under target/ on first run).

use mlserver_tests::{examples_models, python, TestServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_http_against_the_examples() {
    let Some(py) = python::client_python() else {
        return; // PyPI unreachable: client_python() printed a loud SKIPPED banner.
    };
    let s = TestServer::start_ready(&examples_models()).await;
    let target = s.addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        python::run_script(&py, "tritonclient_http.py", &[&target])
    })
    .await
    .unwrap();
    println!("{out}");
    assert!(out.contains("all tritonclient checks passed"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tritonclient_grpc_against_the_examples() {
    let Some(py) = python::client_python() else {
        return; // PyPI unreachable: client_python() printed a loud SKIPPED banner.
    };
    let s = TestServer::start_ready(&examples_models()).await;
    let target = s.grpc_addr.to_string();
    let out = tokio::task::spawn_blocking(move || {
        python::run_script(&py, "tritonclient_grpc.py", &[&target])
    })
    .await
    .unwrap();
    println!("{out}");
    assert!(out.contains("all tritonclient grpc checks passed"));
    s.stop().await;
}
