//! XGBoost, LightGBM and scikit-learn files under MLServer's runtime names,
//! on the real binary: served natively with no Python process (scikit-learn
//! models once a worker has loaded them and handed them over), and the cases
//! the native runtimes decline served by MLServer's Python runtimes, saying
//! so.

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mlserver");

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../mlserver-trees/tests/fixtures")
        .join(name)
}

/// Writes `folder/name` with `file` (a fixture) as `file_name` and the
/// model-settings `settings` (name and implementation added).
fn model(folder: &Path, name: &str, (file, file_name): (&str, &str), settings: Value) {
    let dir = folder.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fixture(file), dir.join(file_name)).unwrap();
    let implementation = if file.starts_with("lightgbm") {
        "mlserver_lightgbm.LightGBMModel"
    } else {
        "mlserver_xgboost.XGBoostModel"
    };
    let mut settings = settings;
    settings["name"] = json!(name);
    settings["implementation"] = json!(implementation);
    std::fs::write(dir.join("model-settings.json"), settings.to_string()).unwrap();
}

/// The processes whose parent is `pid`.
fn children(pid: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
        let Some((head, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let ppid = rest
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(pid) {
            found.push(head.to_owned() + ")");
        }
    }
    found
}

fn index(client: &reqwest::blocking::Client, addr: &str) -> Vec<Value> {
    client
        .post(format!("http://{addr}/v2/repository/index"))
        .json(&json!({}))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

/// Waits until no model is loading, and returns the index.
fn settled(client: &reqwest::blocking::Client, addr: &str) -> Vec<Value> {
    for _ in 0..1500 {
        let items = index(client, addr);
        if items.iter().all(|m| m["state"] != "LOADING") {
            return items;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("models never finished loading: {:?}", index(client, addr));
}

fn entry<'a>(items: &'a [Value], name: &str) -> &'a Value {
    items
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name} is not in the index: {items:?}"))
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn infer(client: &reqwest::blocking::Client, addr: &str, model: &str, body: Value) -> (u16, Value) {
    let r = client
        .post(format!("http://{addr}/v2/models/{model}/infer"))
        .json(&body)
        .send()
        .unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn tree_models_are_served_natively_without_python() {
    let dir = tempfile::tempdir().unwrap();
    model(dir.path(), "xgb", ("softprob.ubj", "model.bst"), json!({}));
    model(
        dir.path(),
        "lgb",
        ("lightgbm/multiclass.txt", "model.bst"),
        json!({}),
    );
    // KServe's layout: the file under the library's own name, found by
    // `parameters.uri`.
    model(
        dir.path(),
        "xgb-json",
        ("binary_logistic.json", "model.json"),
        json!({"parameters": {"uri": "./model.json"}}),
    );
    // A corrupt file: the reader's reason, and no fallback.
    std::fs::create_dir_all(dir.path().join("corrupt")).unwrap();
    let text = std::fs::read(fixture("squarederror.json")).unwrap();
    std::fs::write(
        dir.path().join("corrupt/model.json"),
        &text[..text.len() / 2],
    )
    .unwrap();
    std::fs::write(
        dir.path().join("corrupt/model-settings.json"),
        r#"{"name": "corrupt", "implementation": "mlserver_xgboost.XGBoostModel"}"#,
    )
    .unwrap();
    // Forced native on a model the native runtime declines.
    model(
        dir.path(),
        "linear",
        ("lightgbm/linear_tree.txt", "model.bst"),
        json!({"parameters": {"extra": {"native": true}}}),
    );
    // No Python: any attempt to start one fails the model that needs it.
    let (child, addr, _log) = common::spawn_server(
        Command::new(BIN)
            .arg("start")
            .arg(dir.path())
            .env("MLSERVER_PYTHON", "/nonexistent/python"),
    );
    let client = reqwest::blocking::Client::new();
    let items = settled(&client, &addr);
    for name in ["xgb", "lgb", "xgb-json"] {
        assert_eq!(entry(&items, name)["state"], "READY", "{items:?}");
        assert_eq!(entry(&items, name)["reason"], "", "{items:?}");
    }
    let corrupt = entry(&items, "corrupt");
    assert_eq!(corrupt["state"], "UNAVAILABLE");
    assert!(
        corrupt["reason"]
            .as_str()
            .unwrap()
            .contains("XGBoost model"),
        "{corrupt}"
    );
    let linear = entry(&items, "linear");
    assert_eq!(linear["state"], "UNAVAILABLE");
    assert!(
        linear["reason"].as_str().unwrap().contains(
            "cannot be served natively (parameters.extra.native is true): tree 0 is a linear tree"
        ),
        "{linear}"
    );

    let rows = json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 8],
        "data": [0.5, -1.0, 2.0, 0.0, 1.5, -0.5, 0.25, 3.0,
                 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]}]});
    let (status, body) = infer(&client, &addr, "xgb", rows.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["name"], "predict");
    assert_eq!(body["outputs"][0]["datatype"], "FP32");
    assert_eq!(body["outputs"][0]["shape"], json!([2, 3]));
    let (status, body) = infer(&client, &addr, "lgb", rows);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["datatype"], "FP64");
    assert_eq!(body["outputs"][0]["shape"], json!([2, 3]));
    // A request the native runtime leaves to the Python one, with no Python.
    let (status, body) = infer(
        &client,
        &addr,
        "xgb",
        json!({"parameters": {"content_type": "pd"},
               "inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1.0]}]}),
    );
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("content type is 'pd'") && error.contains("could not be loaded"),
        "{body}"
    );

    let pid = child.id();
    assert_eq!(
        children(pid),
        Vec::<String>::new(),
        "the server started processes for natively served models"
    );
    stop(child);
}

#[test]
fn declined_models_are_served_by_mlserver_python_runtimes() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    model(
        dir.path(),
        "linear",
        ("lightgbm/linear_tree.txt", "model.bst"),
        json!({}),
    );
    model(
        dir.path(),
        "forced-python",
        ("lightgbm/binary.txt", "model.bst"),
        json!({"parameters": {"extra": {"native": false}}}),
    );
    let (child, addr, log) = common::spawn_server(
        Command::new(BIN)
            .arg("start")
            .arg(dir.path())
            .env("MLSERVER_PYTHON", &python),
    );
    let client = reqwest::blocking::Client::new();
    let items = settled(&client, &addr);
    let linear = entry(&items, "linear");
    assert_eq!(linear["state"], "READY", "{items:?}");
    assert_eq!(
        linear["reason"],
        "served by the Python runtime: tree 0 is a linear tree (linear_tree=true)"
    );
    assert_eq!(
        entry(&items, "forced-python")["reason"],
        "served by the Python runtime: parameters.extra.native is false"
    );
    let features = |n: usize| {
        json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, n],
        "data": vec![0.5; n]}]})
    };
    for (model, n) in [("linear", 8), ("forced-python", 8)] {
        let (status, body) = infer(&client, &addr, model, features(n));
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["outputs"][0]["datatype"], "FP64", "{model}");
    }
    assert!(!children(child.id()).is_empty(), "Python workers run");
    let lines: Vec<String> = log.try_iter().collect();
    let warnings = lines
        .iter()
        .filter(|l| l.contains("with its Python runtime"))
        .count();
    assert_eq!(warnings, 2, "one line per model:\n{}", lines.join("\n"));
    stop(child);
}

/// Waits up to 20 s for the server's child processes to be `expected`.
fn children_become(pid: u32, empty: bool) -> Vec<String> {
    for _ in 0..200 {
        let now = children(pid);
        if now.is_empty() == empty {
            return now;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    children(pid)
}

/// A models folder of `make_sklearn_models.py`'s models: each `(name,
/// trained model, parameters.extra)` as `mlserver_sklearn.SKLearnModel`.
fn sklearn_models(python: &Path, models: &[(&str, &str, Value)]) -> tempfile::TempDir {
    let trained = tempfile::tempdir().unwrap();
    mlserver_tests::python::run_script(
        python,
        "make_sklearn_models.py",
        &[trained.path().to_str().unwrap()],
    );
    let dir = tempfile::tempdir().unwrap();
    for (name, source, extra) in models {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::copy(
            trained.path().join(source).join("model.joblib"),
            folder.join("model.joblib"),
        )
        .unwrap();
        std::fs::write(
            folder.join("model-settings.json"),
            json!({"name": name, "implementation": "mlserver_sklearn.SKLearnModel",
                   "parameters": {"extra": extra}})
            .to_string(),
        )
        .unwrap();
    }
    dir
}

#[test]
fn sklearn_models_are_served_natively_once_loaded_and_their_worker_leaves() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let dir = sklearn_models(
        &python,
        &[
            ("sk-rf-clf", "sk-rf-clf", json!({})),
            ("sk-pipe-minmax-rf", "sk-pipe-minmax-rf", json!({})),
        ],
    );
    let (child, addr, log) = common::spawn_server(
        Command::new(BIN)
            .arg("start")
            .arg(dir.path())
            .env("MLSERVER_PYTHON", &python),
    );
    let client = reqwest::blocking::Client::new();
    let items = settled(&client, &addr);
    for name in ["sk-rf-clf", "sk-pipe-minmax-rf"] {
        assert_eq!(entry(&items, name)["state"], "READY", "{items:?}");
        assert_eq!(entry(&items, name)["reason"], "", "{items:?}");
    }
    // The worker that loaded them had no other model: it is gone.
    let pid = child.id();
    assert_eq!(
        children_become(pid, true),
        Vec::<String>::new(),
        "a Python worker stayed for models served natively"
    );
    let rows = json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 4],
        "data": [0.03, 6.1, -1.2, 21.0, 1.0, 2.5, -0.4, 5.0]}],
        "outputs": [{"name": "predict"}, {"name": "predict_proba"}]});
    let (status, body) = infer(&client, &addr, "sk-rf-clf", rows.clone());
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["outputs"][0]["datatype"], "BYTES",
        "string labels: {body}"
    );
    assert_eq!(body["outputs"][0]["shape"], json!([2, 1]));
    assert_eq!(body["outputs"][1]["shape"], json!([2, 3]));
    let (status, body) = infer(&client, &addr, "sk-pipe-minmax-rf", rows);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["datatype"], "INT64", "{body}");
    assert!(
        children(pid).is_empty(),
        "inference started a Python process"
    );

    // A pandas request is MLServer's runtime's to decode: it loads again.
    let columns: Vec<Value> = ["a", "b", "c", "d"]
        .iter()
        .map(|c| json!({"name": c, "datatype": "FP64", "shape": [1], "data": [1.0]}))
        .collect();
    let (status, body) = infer(
        &client,
        &addr,
        "sk-rf-clf",
        json!({"parameters": {"content_type": "pd"}, "inputs": columns}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outputs"][0]["datatype"], "BYTES", "{body}");
    assert!(
        !children(pid).is_empty(),
        "the Python runtime answers pandas requests"
    );
    let lines: Vec<String> = log.try_iter().collect();
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.contains("natively from the parameters its runtime handed over"))
            .count(),
        2,
        "{}",
        lines.join("\n")
    );
    stop(child);
}

#[test]
fn sklearn_models_the_native_runtime_cannot_serve_stay_in_python_saying_why() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let dir = sklearn_models(
        &python,
        &[
            ("svc", "sk-svc", json!({})),
            ("forced-python", "sk-rf-clf", json!({"native": false})),
            ("forced-native", "sk-svc", json!({"native": true})),
        ],
    );
    // A pickle that is not one: MLServer's runtime fails to load it.
    std::fs::create_dir_all(dir.path().join("corrupt")).unwrap();
    std::fs::write(dir.path().join("corrupt/model.joblib"), b"not a pickle").unwrap();
    std::fs::write(
        dir.path().join("corrupt/model-settings.json"),
        r#"{"name": "corrupt", "implementation": "mlserver_sklearn.SKLearnModel"}"#,
    )
    .unwrap();
    let (child, addr, _log) = common::spawn_server(
        Command::new(BIN)
            .arg("start")
            .arg(dir.path())
            .env("MLSERVER_PYTHON", &python),
    );
    let client = reqwest::blocking::Client::new();
    let items = settled(&client, &addr);
    let svc = entry(&items, "svc");
    assert_eq!(svc["state"], "READY", "{items:?}");
    let reason = svc["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("served by the Python runtime: ") && reason.contains("SVC"),
        "{svc}"
    );
    assert_eq!(
        entry(&items, "forced-python")["reason"],
        "served by the Python runtime: parameters.extra.native is false"
    );
    let forced = entry(&items, "forced-native");
    assert_eq!(forced["state"], "UNAVAILABLE", "{forced}");
    assert!(
        forced["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be served natively (parameters.extra.native is true)"),
        "{forced}"
    );
    assert_eq!(
        entry(&items, "corrupt")["state"],
        "UNAVAILABLE",
        "{items:?}"
    );
    let rows = json!({"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4],
        "data": [0.03, 6.1, -1.2, 21.0]}]});
    for model in ["svc", "forced-python"] {
        let (status, body) = infer(&client, &addr, model, rows.clone());
        assert_eq!(status, 200, "{model}: {body}");
    }
    assert!(!children(child.id()).is_empty(), "Python workers run");
    stop(child);
}
