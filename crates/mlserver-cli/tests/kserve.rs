//! The `deploy/kserve/` manifests as KServe v0.20 treats them
//! (`mlserver_tests::kserve`: its CRD schema, admission webhook, runtime
//! selection, MLServer defaulting and container rendering), and the
//! `mlserver` binary started with exactly the env KServe renders, on the
//! model folder KServe lays out: a read-only copy, a modelcar's symlink, an
//! OCI image volume. The TrainedModel agent's calls replay at the end.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Running;
use mlserver_tests::kserve::{
    admit_runtime, render, InferenceService, ModelVolume, Rendered, Runtime, MODEL_DIR,
};
use mlserver_tests::tree_snapshot;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mlserver");

fn manifest(name: &str) -> PathBuf {
    mlserver_tests::workspace_root()
        .join("deploy/kserve")
        .join(name)
}

fn runtime(name: &str) -> Runtime {
    Runtime::from_file(&manifest(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The cluster's runtimes after `kubectl apply` of `ours`: KServe's stock
/// ones, a runtime of the same name replaced.
fn cluster_with(ours: &[&Runtime]) -> Vec<Runtime> {
    let mut all: Vec<Runtime> = Runtime::stock()
        .into_iter()
        .filter(|s| ours.iter().all(|o| o.name != s.name))
        .collect();
    all.extend(ours.iter().map(|r| (*r).clone()));
    all
}

#[test]
fn manifests_are_admitted_beside_kserves_stock_runtimes() {
    let takeover = runtime("kserve-mlserver.yaml");
    let beside = runtime("kserve-mlserver-rs.yaml");
    admit_runtime(&takeover, &Runtime::stock()).unwrap();
    admit_runtime(&beside, &Runtime::stock()).unwrap();
    // Both at once: the second is admitted beside the first; the native
    // one (the Rust-only image for XGBoost and LightGBM) beside both.
    admit_runtime(&beside, &cluster_with(&[&takeover])).unwrap();
    let native = runtime("kserve-mlserver-rs-native.yaml");
    admit_runtime(&native, &cluster_with(&[&takeover, &beside])).unwrap();
    assert!(native
        .formats
        .iter()
        .all(|f| f.name == "xgboost" || f.name == "lightgbm"));
    for r in [&takeover, &beside, &native] {
        assert_eq!(
            r.annotations
                .get("serving.kserve.io/server-type")
                .map(String::as_str),
            Some("mlserver"),
            "{}: without it KServe applies no MLServer defaults",
            r.name
        );
        assert_eq!(r.protocols, ["v2"]);
    }
    // The takeover keeps the stock runtime's formats and priorities.
    let stock = Runtime::stock().remove(0);
    assert_eq!(stock.name, "kserve-mlserver");
    assert_eq!(takeover.formats, stock.formats);

    // The rule bites: the same formats under another name, as the
    // manifest shipped before (priority 2, auto-selected), are refused.
    let mut clash = takeover.clone();
    clash.name = "kserve-mlserver-rs".into();
    assert_eq!(
        admit_runtime(&clash, &Runtime::stock()).unwrap_err(),
        "same priority assigned for the model format sklearn in the clusterservingruntimes kserve-mlserver and kserve-mlserver-rs"
    );
    // PYTHONPATH is refused since v0.18: nothing we ship sets it.
    let mut with_pythonpath = beside.clone();
    with_pythonpath.container["env"]
        .as_sequence_mut()
        .unwrap()
        .push(serde_yaml_ng::from_str("{name: PYTHONPATH, value: /models}").unwrap());
    assert!(admit_runtime(&with_pythonpath, &Runtime::stock())
        .unwrap_err()
        .contains("setting PYTHONPATH in container \"kserve-container\" is not allowed"));
}

fn env_map(r: &Rendered) -> BTreeMap<&str, &str> {
    r.env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn the_inferenceservice_renders_the_env_the_server_needs() {
    let beside = runtime("kserve-mlserver-rs.yaml");
    let isvc = InferenceService::from_file(&manifest("inferenceservice.yaml")).unwrap();
    let rendered = render(&isvc, &cluster_with(&[&beside])).unwrap();
    assert_eq!(rendered.runtime, "kserve-mlserver-rs");
    assert!(rendered.command.is_empty() && rendered.args.is_empty());
    assert_eq!(
        env_map(&rendered),
        BTreeMap::from([
            (
                "MLSERVER_MODEL_IMPLEMENTATION",
                "mlserver_sklearn.SKLearnModel"
            ),
            ("MLSERVER_HTTP_PORT", "8080"),
            ("MLSERVER_GRPC_PORT", "9000"),
            ("MLSERVER_MODEL_NAME", "sklearn-iris"),
            ("MLSERVER_MODEL_URI", MODEL_DIR),
            ("INFERENCE_SERVICE_NAME", "sklearn-iris"),
        ])
    );
    assert_eq!(
        rendered.model_volume,
        Some(ModelVolume::Copied { read_only: true })
    );
    assert!(rendered.drops_all_capabilities && rendered.no_privilege_escalation);

    // Every format, on either runtime: the class MLServer's runtime has.
    let takeover = runtime("kserve-mlserver.yaml");
    for (format, class) in [
        ("sklearn", "mlserver_sklearn.SKLearnModel"),
        ("xgboost", "mlserver_xgboost.XGBoostModel"),
        ("lightgbm", "mlserver_lightgbm.LightGBMModel"),
        ("mlflow", "mlserver_mlflow.MLflowRuntime"),
    ] {
        let mut isvc = InferenceService::new("m", format, Some("s3://bucket/m"));
        isvc.runtime = Some("kserve-mlserver-rs".into());
        let r = render(&isvc, &cluster_with(&[&beside])).unwrap();
        assert_eq!(r.env("MLSERVER_MODEL_IMPLEMENTATION"), Some(class));
        // Auto-selected onto the takeover for a v2 model (v1, the default
        // protocol, goes to KServe's own servers, as with MLServer).
        isvc.runtime = None;
        isvc.protocol = Some("v2".into());
        let r = render(&isvc, &cluster_with(&[&takeover])).unwrap();
        assert_eq!(r.runtime, "kserve-mlserver", "{format}");
        assert_eq!(
            r.image,
            "mlserver-rs:0.1.0-py # replace with where you pushed it"
                .split(" #")
                .next()
                .unwrap()
        );
        assert_eq!(r.env("MLSERVER_MODEL_IMPLEMENTATION"), Some(class));
        assert_eq!(r.env("MLSERVER_MODEL_URI"), Some(MODEL_DIR));
    }
    // Not auto-selected: the side-by-side runtime takes only the models
    // that name it.
    let mut v2 = InferenceService::new("m", "sklearn", Some("s3://bucket/m"));
    v2.protocol = Some("v2".into());
    assert_eq!(
        render(&v2, &cluster_with(&[&beside])).unwrap().runtime,
        "kserve-mlserver"
    );

    // No storageUri (TrainedModels arrive later): nothing loads at start.
    let mut bare = InferenceService::new("multi", "sklearn", None);
    bare.runtime = Some("kserve-mlserver-rs".into());
    let r = render(&bare, &cluster_with(&[&beside])).unwrap();
    assert_eq!(r.env("MLSERVER_LOAD_MODELS_AT_STARTUP"), Some("false"));
    assert_eq!(r.env("MLSERVER_MODEL_NAME"), None);
    assert_eq!(r.model_volume, None);

    // Modelcars and image volumes.
    let mut oci = InferenceService::new("m", "sklearn", Some("oci://registry/model:1"));
    oci.runtime = Some("kserve-mlserver-rs".into());
    let r = render(&oci, &cluster_with(&[&beside])).unwrap();
    assert_eq!(r.model_volume, Some(ModelVolume::Symlink));
    assert_eq!(r.env("MODEL_INIT_MODE"), Some("async"));
    oci.storage_uri = Some("oci+native://registry/model:1".into());
    let r = render(&oci, &cluster_with(&[&beside])).unwrap();
    assert_eq!(r.model_volume, Some(ModelVolume::Image));

    // Without the annotation (the manifest as it shipped before), KServe
    // gives the server no model and an empty implementation.
    let mut unannotated = beside.clone();
    unannotated.annotations.clear();
    let r = render(
        &InferenceService::from_file(&manifest("inferenceservice.yaml")).unwrap(),
        &cluster_with(&[&unannotated]),
    )
    .unwrap();
    assert_eq!(r.env("MLSERVER_MODEL_IMPLEMENTATION"), Some(""));
    assert_eq!(r.env("MLSERVER_MODEL_URI"), None);
}

/// `mlserver start $MLSERVER_MODELS_DIR` (the image's CMD) with `rendered`'s
/// env, `/mnt/models` standing at `mnt` and the ports free.
fn start_rendered(rendered: &Rendered, mnt: &Path, python: &Path) -> Running {
    let models = mnt.join("models");
    let env: Vec<(String, String)> = rendered
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.replace(MODEL_DIR, models.to_str().unwrap())))
        .collect();
    Running::spawn(
        Command::new(BIN)
            .arg("start")
            .arg(&models)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MLSERVER_PYTHON", python)
            .envs(env),
    )
}

fn infer(addr: &str, model: &str, rows: &Value) -> (u16, Value) {
    let response = reqwest::blocking::Client::new()
        .post(format!("http://{addr}/v2/models/{model}/infer"))
        .json(
            &json!({"inputs": [{"name": "input-0", "shape": [rows.as_array().unwrap().len(), 4],
                                  "datatype": "FP64", "data": rows}]}),
        )
        .send()
        .unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

/// A scikit-learn model trained in MLServer's venv: the folder that holds
/// `model.joblib`, and the rows and labels it must answer.
fn trained_model(python: &Path, dir: &Path) -> (PathBuf, Value, Value) {
    let scratch = dir.join("trained");
    mlserver_tests::python::run_script(
        python,
        "make_sklearn_model.py",
        &[scratch.to_str().unwrap()],
    );
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.join("expected.json")).unwrap())
            .unwrap();
    (
        scratch.join("model.joblib"),
        expected["inputs"].clone(),
        expected["predict"].clone(),
    )
}

#[test]
fn kserves_rendered_containers_serve_the_model_and_write_nothing_there() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (joblib, rows, labels) = trained_model(&python, root.path());
    let beside = runtime("kserve-mlserver-rs.yaml");
    let isvc = InferenceService::from_file(&manifest("inferenceservice.yaml")).unwrap();
    for (i, uri) in [
        "gs://kfserving-examples/models/sklearn/1.0/model",
        "oci://registry/sklearn-iris:1",
        "oci+native://registry/sklearn-iris:1",
    ]
    .into_iter()
    .enumerate()
    {
        let mut isvc = isvc.clone();
        isvc.storage_uri = Some(uri.into());
        let rendered = render(&isvc, &cluster_with(&[&beside])).unwrap();
        // The pod's /mnt, as the volume KServe chose lays it out.
        let mnt = root.path().join(format!("pod{i}/mnt"));
        let storage = match rendered.model_volume.unwrap() {
            ModelVolume::Copied { .. } | ModelVolume::Image => mnt.join("models"),
            ModelVolume::Symlink => {
                // The modelcar's `ln -sf /proc/<pid>/root/models /mnt/models`.
                let image_root = root.path().join(format!("pod{i}/proc/1/root/models"));
                std::fs::create_dir_all(&mnt).unwrap();
                std::os::unix::fs::symlink(&image_root, mnt.join("models")).unwrap();
                // A symlink loop in the image: skipped with a warning.
                std::fs::create_dir_all(image_root.join("loop")).unwrap();
                std::os::unix::fs::symlink("..", image_root.join("loop/up")).unwrap();
                image_root
            }
        };
        std::fs::create_dir_all(&storage).unwrap();
        std::fs::copy(&joblib, storage.join("model.joblib")).unwrap();
        let before = tree_snapshot(&storage);

        let mut server = start_rendered(&rendered, &mnt, &python);
        let addr = server.http.clone();
        let (status, body) = infer(&addr, "sklearn-iris", &rows);
        assert_eq!(
            status,
            200,
            "{uri}: {body}\n{}",
            server.log_lines().join("\n")
        );
        assert_eq!(body["model_name"], "sklearn-iris");
        let predict = body["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == "predict")
            .unwrap_or_else(|| panic!("{body}"));
        assert_eq!(predict["data"], labels, "{uri}");
        drop(server);
        assert_eq!(
            tree_snapshot(&storage),
            before,
            "{uri}: the server wrote into /mnt/models"
        );
    }
}

/// KServe's TrainedModel agent on a runtime without a storageUri: it
/// downloads to `/mnt/models/<name>/` and loads; to remove a model it
/// deletes the folder first and then unloads.
#[test]
fn the_trained_model_agents_calls() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let (joblib, rows, labels) = trained_model(&python, root.path());
    let mut isvc = InferenceService::new("multi", "sklearn", None);
    isvc.runtime = Some("kserve-mlserver-rs".into());
    let rendered = render(&isvc, &cluster_with(&[&runtime("kserve-mlserver-rs.yaml")])).unwrap();
    let mnt = root.path().join("mnt");
    let models = mnt.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let mut server = start_rendered(&rendered, &mnt, &python);
    let addr = server.http.clone();
    let client = reqwest::blocking::Client::new();
    let call = |path: &str| {
        let r = client
            .post(format!("http://{addr}/v2/repository/{path}"))
            .json(&json!({}))
            .send()
            .unwrap();
        let status = r.status().as_u16();
        (status, r.text().unwrap())
    };
    let index = || -> Vec<String> {
        let (_, body) = call("index");
        serde_json::from_str::<Value>(&body)
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let download = |name: &str| {
        let dir = models.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&joblib, dir.join("model.joblib")).unwrap();
        std::fs::write(
            dir.join("model-settings.json"),
            json!({"name": name, "implementation": "mlserver_sklearn.SKLearnModel"}).to_string(),
        )
        .unwrap();
    };
    for name in ["tm-a", "tm-b"] {
        download(name);
        assert_eq!(
            call(&format!("models/{name}/load")).0,
            200,
            "{}",
            server.log_lines().join("\n")
        );
    }
    let (status, body) = infer(&addr, "tm-a", &rows);
    assert_eq!(
        (status, &body["outputs"][0]["data"]),
        (200, &labels),
        "{body}"
    );

    // Removal: the folder goes first, then the unload: it succeeds, and
    // the model leaves the index with its files.
    std::fs::remove_dir_all(models.join("tm-a")).unwrap();
    assert_eq!(call("models/tm-a/unload"), (200, String::new()));
    assert_eq!(index(), ["tm-b"]);
    assert_eq!(infer(&addr, "tm-a", &rows).0, 404);
    assert_eq!(infer(&addr, "tm-b", &rows).0, 200);
    // A load of a name whose files are gone: 404, nothing else changes.
    let (status, body) = call("models/tm-a/load");
    assert_eq!(status, 404, "{body}");
    assert_eq!(index(), ["tm-b"]);
    // Downloaded again, it serves again.
    download("tm-a");
    assert_eq!(call("models/tm-a/load").0, 200);
    assert_eq!(infer(&addr, "tm-a", &rows).0, 200);
}
