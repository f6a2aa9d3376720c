//! The `mlserver` binary itself: arguments, startup on a free port, logging,
//! and shutdown on SIGTERM/SIGINT.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_mlserver");

fn examples() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
}

/// Copies the example models into a temp folder whose settings.json binds
/// a free loopback port.
fn models_on_free_port() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in walk(&examples()) {
        let rel = entry.strip_prefix(examples()).unwrap();
        let dest = dir.path().join(rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &dest).unwrap();
    }
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"host": "127.0.0.1", "http_port": 0, "grpc_port": 0, "metrics_port": 0}"#,
    )
    .unwrap();
    dir
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Starts `mlserver start <folder>` and returns the child, its address, and
/// a channel of its remaining log lines.
fn start(folder: &Path, envs: &[(&str, &str)]) -> (Child, String, mpsc::Receiver<String>) {
    common::spawn_server(
        Command::new(BIN)
            .arg("start")
            .arg(folder)
            .envs(envs.iter().copied()),
    )
}

/// Waits for readiness; the bound is generous because the tests of this
/// file run side by side, several starting Python workers at once.
fn wait_ready(client: &reqwest::blocking::Client, addr: &str) {
    for _ in 0..3000 {
        if client
            .get(format!("http://{addr}/v2/health/ready"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("server never became ready");
}

fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .args(["-s", sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    for _ in 0..500 {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    panic!("server did not exit after the signal");
}

#[test]
fn version_and_help() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("mlserver {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("start"));
}

/// The ModelMesh guide's `CMD ["mlserver", "start", "${MLSERVER_MODELS_DIR}"]`:
/// Docker passes the argument unexpanded and the folder does not exist yet.
/// The server starts (as MLServer does) with one warning, and a model the
/// adapter writes under the real folder later loads through the repository
/// API (MLServer answers 404 there: it looks in a folder named
/// `${MLSERVER_MODELS_DIR}`).
#[test]
fn a_missing_or_unexpanded_models_folder_starts_and_loads_later() {
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("_mlserver_models");
    let (mut child, addr, log) = start(
        Path::new("${MLSERVER_MODELS_DIR}"),
        &[
            ("MLSERVER_MODELS_DIR", models.to_str().unwrap()),
            ("MLSERVER_LOAD_MODELS_AT_STARTUP", "false"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    wait_ready(&client, &addr);
    std::fs::create_dir_all(models.join("m1")).unwrap();
    std::fs::write(
        models.join("m1/model-settings.json"),
        r#"{"name": "m1", "implementation": "sum"}"#,
    )
    .unwrap();
    let load = client
        .post(format!("http://{addr}/v2/repository/models/m1/load"))
        .send()
        .unwrap();
    assert_eq!(load.status(), 200, "{}", load.text().unwrap());
    let infer: serde_json::Value = client
        .post(format!("http://{addr}/v2/models/m1/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        infer["outputs"][0]["data"],
        serde_json::json!([3.0]),
        "{infer}"
    );
    signal(&child, "TERM");
    wait_exit(&mut child);
    let lines: Vec<String> = log.try_iter().collect();
    let text = lines.join("\n");
    assert!(text.contains("unexpanded"), "{text}");
    assert!(text.contains("does not exist: starting"), "{text}");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("does not exist"))
            .count(),
        1,
        "one warning, not one per scan:\n{text}"
    );

    // A file is not a folder: a clear error.
    let file = root.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(BIN).arg("start").arg(&file).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a directory"));
}

#[test]
fn invalid_settings_are_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"http_port": "not a port"}"#,
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("start")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("settings.json"), "{err}");
}

#[test]
fn serves_the_examples_and_stops_on_sigterm() {
    let dir = models_on_free_port();
    let (mut child, addr, logs) = start(dir.path(), &[]);
    let client = reqwest::blocking::Client::new();
    wait_ready(&client, &addr);
    let r: serde_json::Value = client
        .post(format!("http://{addr}/v2/models/sum-model/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["outputs"][0]["data"], serde_json::json!([3.0]));
    signal(&child, "TERM");
    let status = wait_exit(&mut child);
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    let lines: Vec<String> = logs.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("SIGTERM received")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("mlserver stopped")),
        "{lines:#?}"
    );
}

#[test]
fn env_settings_apply_and_sigint_stops() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("m")).unwrap();
    std::fs::write(
        dir.path().join("m/model-settings.json"),
        r#"{"implementation": "echo"}"#,
    )
    .unwrap();
    let (mut child, addr, logs) = start(
        dir.path(),
        &[
            ("MLSERVER_HOST", "127.0.0.1"),
            ("MLSERVER_HTTP_PORT", "0"),
            ("MLSERVER_GRPC_PORT", "0"),
            ("MLSERVER_METRICS_PORT", "0"),
            ("MLSERVER_SERVER_NAME", "custom-name"),
            ("MLSERVER_USE_STRUCTURED_LOGGING", "true"),
        ],
    );
    let client = reqwest::blocking::Client::new();
    wait_ready(&client, &addr);
    let meta: serde_json::Value = client
        .get(format!("http://{addr}/v2"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(meta["name"], "custom-name");
    signal(&child, "INT");
    assert!(wait_exit(&mut child).success());
    let lines: Vec<String> = logs.try_iter().collect();
    let json_lines = lines
        .iter()
        .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok())
        .count();
    assert!(
        json_lines > 0,
        "structured logging writes JSON lines: {lines:#?}"
    );
}

#[test]
fn access_log_and_levels_follow_logging_settings() {
    let dir = models_on_free_port();
    // No `debug`: the access log is turned on through logging_settings,
    // with uvicorn's logger name, as an MLServer user would.
    std::fs::write(
        dir.path().join("settings.json"),
        r#"{"host": "127.0.0.1", "http_port": 0, "grpc_port": 0, "metrics_port": 0,
            "logging_settings": {"version": 1, "loggers": {"uvicorn.access": {"level": "INFO"}}}}"#,
    )
    .unwrap();
    let (mut child, addr, logs) = start(dir.path(), &[]);
    let client = reqwest::blocking::Client::new();
    wait_ready(&client, &addr);
    let status = client
        .post(format!("http://{addr}/v2/models/sum-model/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 200);
    let missing = client
        .get(format!("http://{addr}/v2/models/nope"))
        .send()
        .unwrap()
        .status();
    assert_eq!(missing, 404);
    signal(&child, "TERM");
    assert!(wait_exit(&mut child).success());
    let lines: Vec<String> = logs.try_iter().collect();
    for expected in [
        "POST /v2/models/sum-model/infer 200",
        "GET /v2/models/nope 404",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(expected) && l.contains("ms")),
            "no access log line {expected:?} in {lines:#?}"
        );
    }
}

/// MLServer's Python observability APIs in our workers, with two of them:
/// `mlserver.register`/`log` and a model's own `prometheus_client` metrics
/// appear on `/metrics` summed over the workers (MLServer loses them with
/// `parallel_workers: 0`, #1151), Python log records reach the server's
/// log, and `metrics_dir` holds the workers' `prometheus_client` files while
/// they run, as MLServer's does (gone once they stop).
#[test]
fn python_metrics_and_logs_reach_the_server() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("observed");
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/models/observed.py"),
        model.join("observed.py"),
    )
    .unwrap();
    std::fs::write(
        model.join("model-settings.json"),
        r#"{"name": "observed", "implementation": "observed.Observed"}"#,
    )
    .unwrap();
    let metrics_dir = dir.path().join("metrics-files");
    let (mut child, addr, log) = start(
        dir.path(),
        &[
            ("MLSERVER_PYTHON", python.to_str().unwrap()),
            ("MLSERVER_PARALLEL_WORKERS", "2"),
            ("MLSERVER_METRICS_DIR", metrics_dir.to_str().unwrap()),
        ],
    );
    let client = reqwest::blocking::Client::new();
    wait_ready(&client, &addr);
    for i in 0..10 {
        let r = client
            .post(format!("http://{addr}/v2/models/observed/infer"))
            .json(&serde_json::json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [i]}]}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    }
    let lines: Vec<String> = log.try_iter().collect();
    let metrics_addr = lines
        .iter()
        .find_map(|l| l.split("Metrics server running on http://").nth(1))
        .map(|rest| rest.split('/').next().unwrap().to_owned())
        .expect("metrics address in the log");
    let scrape = client
        .get(format!("http://{metrics_addr}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let db_files = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&metrics_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".db"))
            .collect();
        names.sort();
        names
    };
    let files = db_files();
    // The model's counter, made at load: one file per worker process.
    let counters = files.iter().filter(|n| n.starts_with("counter_")).count();
    assert_eq!(counters, 2, "{files:?}");
    assert!(
        files.iter().any(|n| n.starts_with("histogram_")),
        "{files:?}"
    );
    signal(&child, "TERM");
    wait_exit(&mut child);
    assert_eq!(db_files(), Vec::<String>::new(), "removed with the workers");
    let lines: Vec<String> = lines.into_iter().chain(log.try_iter()).collect();
    for expected in [
        "# TYPE observed_value histogram",
        r#"observed_value_count{model_name="observed",model_version=""} 10"#,
        r#"observed_value_sum{model_name="observed",model_version=""} 45"#,
        "observed_calls_total 10",
    ] {
        assert!(scrape.contains(expected), "{expected} not in\n{scrape}");
    }
    // The exposition parses as prometheus_client reads it: no family left
    // untyped (a counter's TYPE line names its `_total` samples).
    let parsed = {
        use std::io::Write;
        let mut child = Command::new(&python)
            .args([
                "-c",
                "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\n\
                 bad = [(f.name, f.type) for f in p(sys.stdin.read()) if f.type == 'unknown']\n\
                 print(bad)",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(scrape.as_bytes())
            .unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    assert_eq!(
        parsed.trim(),
        "[]",
        "families prometheus_client cannot read:\n{scrape}"
    );
    let text = lines.join("\n");
    // Loaded in each of the two workers: two of each line.
    for expected in [
        "observed model loading: a warning from the model's logger",
        "observed model: an info line from MLServer's logger",
    ] {
        assert_eq!(
            lines.iter().filter(|l| l.contains(expected)).count(),
            2,
            "{expected}:\n{text}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("a warning from the model")),
        "{text}"
    );
}

/// `model_repository_implementation`: the user's `ModelRepository` class
/// (MLServer's `ModelRepositoryFactory`: `cls(root=..., **args)`) is where
/// the models come from, at start, in the index and for load/unload, not
/// the folder's files. A class that fails leaves the server up: the index
/// answers with its error, and answers again once it lists.
#[test]
fn a_custom_model_repository_class_is_the_source_of_models() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/models");
    for file in ["listed_repo.py", "observed.py"] {
        std::fs::copy(models.join(file), dir.path().join(file)).unwrap();
    }
    // Listed by the class, from outside the folder.
    let elsewhere = tempfile::tempdir().unwrap();
    let listed = elsewhere.path().join("listed.json");
    std::fs::write(
        &listed,
        r#"{"name": "listed", "implementation": "observed.Observed"}"#,
    )
    .unwrap();
    // In the folder, not listed: never loaded.
    std::fs::create_dir_all(dir.path().join("decoy")).unwrap();
    std::fs::write(
        dir.path().join("decoy/model-settings.json"),
        r#"{"name": "decoy", "implementation": "observed.Observed"}"#,
    )
    .unwrap();
    let args = serde_json::json!({"files": [listed]}).to_string();
    let (mut child, addr, _log) = start(
        dir.path(),
        &[
            ("MLSERVER_PYTHON", python.to_str().unwrap()),
            (
                "MLSERVER_MODEL_REPOSITORY_IMPLEMENTATION",
                "listed_repo.ListedRepository",
            ),
            ("MLSERVER_MODEL_REPOSITORY_IMPLEMENTATION_ARGS", &args),
        ],
    );
    let client = reqwest::blocking::Client::new();
    let url = |path: &str| format!("http://{addr}{path}");
    let ready = |model: &str| {
        client
            .get(url(&format!("/v2/models/{model}/ready")))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while ready("listed") != 200 {
        assert!(std::time::Instant::now() < deadline, "listed never ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ready("decoy"), 404, "the folder's files are not the source");
    let index = || {
        let r = client
            .post(url("/v2/repository/index"))
            .body("{}")
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<serde_json::Value>().unwrap())
    };
    let (status, listing) = index();
    assert_eq!(status, 200);
    let names: Vec<&str> = listing
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["listed"], "{listing}");
    let r = client
        .post(url("/v2/models/listed/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [2]}]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().unwrap());
    // Load asks the class's find(); its ModelNotFound is ours.
    let load = |model: &str| {
        let r = client
            .post(url(&format!("/v2/repository/models/{model}/load")))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(load("listed").0, 200);
    assert_eq!(
        load("decoy"),
        (404, r#"{"error":"Model decoy not found"}"#.to_owned())
    );

    // The class fails: the server stays up, the index says why.
    std::fs::write(dir.path().join("broken"), "").unwrap();
    let (status, error) = index();
    assert_eq!(status, 500);
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("builtins.RuntimeError: the listing backend is down"),
        "{error}"
    );
    assert_eq!(ready("listed"), 200, "loaded models keep serving");
    std::fs::remove_file(dir.path().join("broken")).unwrap();
    assert_eq!(index().0, 200);
    signal(&child, "TERM");
    wait_exit(&mut child);

    // A class that does not import: up, with the reason in the index.
    let (mut child, addr, _log) = start(
        dir.path(),
        &[
            ("MLSERVER_PYTHON", python.to_str().unwrap()),
            (
                "MLSERVER_MODEL_REPOSITORY_IMPLEMENTATION",
                "nowhere_repo.Missing",
            ),
        ],
    );
    let live = client
        .get(format!("http://{addr}/v2/health/live"))
        .send()
        .unwrap();
    assert_eq!(live.status(), 200);
    let r = client
        .post(format!("http://{addr}/v2/repository/index"))
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 500);
    let error: serde_json::Value = r.json().unwrap();
    assert!(
        error["error"]
            .as_str()
            .unwrap()
            .contains("No module named 'nowhere_repo'"),
        "{error}"
    );
    signal(&child, "TERM");
    wait_exit(&mut child);
}

/// `mlserver dotenv` (a generated Dockerfile's step) refuses an embedded
/// model whose implementation could never load, with the reason, so the
/// image build fails there rather than the container at start.
#[test]
fn dotenv_refuses_an_implementation_that_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("custom_model.py"),
        "class Present:\n    pass\n",
    )
    .unwrap();
    let dotenv = |settings: &str| {
        std::fs::write(dir.path().join("model-settings.json"), settings).unwrap();
        let out = Command::new(BIN)
            .arg("dotenv")
            .arg(dir.path())
            .env_remove("MLSERVER_MODEL_IMPLEMENTATION")
            .env("MLSERVER_PYTHON", "python3")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    assert!(dotenv(r#"{"name": "m", "implementation": "sum"}"#).0);
    assert!(dotenv(r#"{"name": "m", "implementation": "custom_model.Present"}"#).0);
    let (ok, err) = dotenv(r#"{"name": "m", "implementation": "custom_model.Absent"}"#);
    assert!(!ok && err.contains("has no attribute 'Absent'"), "{err}");
    // Natively served, but loaded by MLServer's Python runtime first (the
    // system python3 here has no mlserver_sklearn); XGBoost's needs none.
    let (ok, err) = dotenv(r#"{"name": "m", "implementation": "mlserver_sklearn.SKLearnModel"}"#);
    assert!(!ok && err.contains("cannot be imported"), "{err}");
    assert!(dotenv(r#"{"name": "m", "implementation": "mlserver_xgboost.XGBoostModel"}"#).0);
    let (ok, err) = dotenv(r#"{"name": "m", "implementation": "nosuch"}"#);
    assert!(!ok && err.contains("neither a runtime"), "{err}");
    let (ok, err) = dotenv(r#"{"name": "m"}"#);
    assert!(!ok && err.contains("names no implementation"), "{err}");
    // A misspelt key or a value that does not fit never reaches an image.
    let (ok, err) = dotenv(r#"{"name": "m", "implementation": "sum", "max_batch_sise": 2}"#);
    assert!(!ok && err.contains("\"max_batch_sise\""), "{err}");
    std::fs::write(dir.path().join("settings.json"), r#"{"http_port": "abc"}"#).unwrap();
    let (ok, err) = dotenv(r#"{"name": "m", "implementation": "sum"}"#);
    assert!(!ok && err.contains("http_port"), "{err}");
}

/// The ODH fork's `access_log` without `debug`: requests are logged, the
/// health probes that succeed are not (the readiness polls of the start
/// here).
#[test]
fn access_log_without_debug_leaves_out_successful_probes() {
    let dir = models_on_free_port();
    let mut server = common::Running::start(dir.path(), &[("MLSERVER_ACCESS_LOG", "true")], None);
    let client = reqwest::blocking::Client::new();
    let infer = client
        .post(server.url("/v2/models/sum-model/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}))
        .send()
        .unwrap();
    assert_eq!(infer.status(), 200);
    let missing = client
        .get(server.url("/v2/models/nope/ready"))
        .send()
        .unwrap();
    assert_eq!(missing.status(), 404);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log_lines().join("\n");
        if log.contains("/v2/models/nope/ready") || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(log.contains("POST /v2/models/sum-model/infer 200"), "{log}");
    assert!(log.contains("GET /v2/models/nope/ready 404"), "{log}");
    assert!(!log.contains("GET /v2/health/ready 200"), "{log}");
}
