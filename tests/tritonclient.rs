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
