//! The stock `-py` image (the root Dockerfile's `py` target, built for
//! real) started the way each `deploy/` manifest's container would be: its
//! env, its command and args (none: the image's CMD), its security context;
//! for KServe, the container as `mlserver_tests::kserve` renders it from
//! the runtime and an InferenceService (defaulting, `modelClass`,
//! `/mnt/models` read-only or a modelcar's symlink); ModelMesh's adapter
//! writing `_mlserver_models/<id>/model-settings.json` and driving gRPC. The
//! containers have no network but their own loopback, so the manifests'
//! ports are used as written; the clients run inside them.

use std::path::Path;

use serde_json::{json, Value};

use mlserver_tests::kserve::{render, InferenceService, ModelVolume, Runtime, MODEL_DIR};

use crate::fixture::*;

const PY: &str = "mlserver-rs:test-py";

/// A manifest's first container: env (name, value) and command + args.
struct ContainerSpec {
    env: Vec<(String, String)>,
    command: Vec<String>,
    drops_all_capabilities: bool,
    no_privilege_escalation: bool,
}

fn container_spec(manifest: &str) -> ContainerSpec {
    let path = workspace().join("deploy").join(manifest);
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let container = &yaml["spec"]["containers"][0];
    let strings = |v: &serde_yaml_ng::Value| -> Vec<String> {
        v.as_sequence()
            .map(|s| s.iter().map(|x| x.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    let env = mlserver_tests::kserve::env_pairs(&container["env"]);
    let mut command = strings(&container["command"]);
    command.extend(strings(&container["args"]));
    let security = &container["securityContext"];
    ContainerSpec {
        env,
        command,
        drops_all_capabilities: strings(&security["capabilities"]["drop"]) == ["ALL"],
        no_privilege_escalation: security["allowPrivilegeEscalation"].as_bool() == Some(false),
    }
}

/// `$(VAR)` in command and args, as the kubelet expands them from the
/// container's env.
fn kubelet_expand(arg: &str, env: &[(String, String)]) -> String {
    env.iter()
        .fold(arg.to_owned(), |a, (k, v)| a.replace(&format!("$({k})"), v))
}

/// `docker run` arguments for `spec` with `env` (already substituted).
fn run_args(spec: &ContainerSpec, env: &[(String, String)], mounts: &[String]) -> Vec<String> {
    let mut args = vec!["--network".to_owned(), "none".to_owned()];
    // OpenShift's restricted SCC: a random uid in group 0.
    args.extend(["--user".into(), "1000680000:0".into()]);
    if spec.drops_all_capabilities {
        args.extend(["--cap-drop".into(), "ALL".into()]);
    }
    if spec.no_privilege_escalation {
        args.extend(["--security-opt".into(), "no-new-privileges".into()]);
    }
    for (k, v) in env {
        args.extend(["-e".into(), format!("{k}={v}")]);
    }
    for m in mounts {
        args.extend(["-v".into(), m.clone()]);
    }
    args
}

fn output<'a>(response: &'a Value, name: &str) -> &'a Value {
    response["body"]["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|o| o["name"] == name))
        .unwrap_or_else(|| panic!("no output {name} in {response}"))
}

/// Classes from a `predict` output: labels, or one row of scores each.
fn classes(predict: &Value) -> Vec<i64> {
    let data: Vec<f64> = predict["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    if data.len() == 3 {
        return data.iter().map(|v| *v as i64).collect();
    }
    data.chunks(data.len() / 3)
        .map(|row| {
            let best = row.iter().cloned().fold(f64::MIN, f64::max);
            row.iter().position(|v| *v == best).unwrap() as i64
        })
        .collect()
}

#[test]
fn python_image_stock_py_serves_mlservers_runtimes_through_the_deploy_manifests() {
    let what = "the stock -py image test";
    let (Some(docker), Some(py)) = (docker(what), image(what, PY)) else {
        return;
    };
    // Models, trained inside the image with its own libraries.
    let models = tempfile::tempdir().unwrap();
    chmod_open(models.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/train.py");
    std::fs::copy(script, models.path().join("train.py")).unwrap();
    let trained: Value = serde_json::from_str(
        docker
            .ok(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--user",
                "1000:0",
                "-v",
                &format!("{}:/out", models.path().display()),
                py,
                "python",
                "/out/train.py",
                "/out",
            ])
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    let rows: Vec<Value> = trained["rows"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().clone())
        .collect();
    let expected: Vec<i64> = serde_json::from_value(trained["expected"].clone()).unwrap();
    let request = |name: &str| {
        json!({"inputs": [{"name": name, "shape": [3, 4], "datatype": "FP32", "data": rows}]})
            .to_string()
    };

    // KServe: one InferenceService per format on the side-by-side runtime,
    // and one auto-selected onto the takeover runtime from a modelcar,
    // each container rendered as KServe renders it.
    let beside =
        Runtime::from_file(&workspace().join("deploy/kserve/kserve-mlserver-rs.yaml")).unwrap();
    let takeover =
        Runtime::from_file(&workspace().join("deploy/kserve/kserve-mlserver.yaml")).unwrap();
    let mut cluster = Runtime::stock();
    cluster.retain(|r| r.name != takeover.name);
    cluster.extend([beside, takeover]);
    for (format, runtime, uri) in [
        ("sklearn", Some("kserve-mlserver-rs"), "gs://models/sklearn"),
        ("xgboost", Some("kserve-mlserver-rs"), "gs://models/xgboost"),
        (
            "lightgbm",
            Some("kserve-mlserver-rs"),
            "gs://models/lightgbm",
        ),
        ("mlflow", Some("kserve-mlserver-rs"), "gs://models/mlflow"),
        ("sklearn", None, "oci://registry/sklearn:1"),
    ] {
        let isvc_name = format!("{format}-iris");
        let mut isvc = InferenceService::new(&isvc_name, format, Some(uri));
        isvc.runtime = runtime.map(str::to_owned);
        isvc.protocol = Some("v2".into());
        let rendered = render(&isvc, &cluster).unwrap();
        assert!(
            rendered.command.is_empty() && rendered.args.is_empty(),
            "the image's CMD starts the server"
        );
        let spec = ContainerSpec {
            env: rendered.env.clone(),
            command: Vec::new(),
            drops_all_capabilities: rendered.drops_all_capabilities,
            no_privilege_escalation: rendered.no_privilege_escalation,
        };
        let folder = models.path().join(format);
        let mnt = tempfile::tempdir().unwrap();
        let mounts = match rendered.model_volume.unwrap() {
            ModelVolume::Copied { read_only } => {
                assert!(read_only);
                vec![format!("{}:{MODEL_DIR}:ro", folder.display())]
            }
            // The modelcar's symlink: /mnt/models -> the model image's
            // files (here a read-only mount elsewhere).
            ModelVolume::Symlink => {
                chmod_open(mnt.path());
                std::os::unix::fs::symlink("/modelcar/models", mnt.path().join("models")).unwrap();
                vec![
                    format!("{}:/mnt", mnt.path().display()),
                    format!("{}:/modelcar/models:ro", folder.display()),
                ]
            }
            ModelVolume::Image => unreachable!("no oci+native model here"),
        };
        let args = run_args(&spec, &spec.env, &mounts);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let container = docker.start_container(&args, py, &[]);
        for (transport, port) in [("rest", "8080"), ("grpc", "9000")] {
            let response = container.python(
                "v2_client.py",
                &[transport, port, &isvc_name, &request("input-0")],
            );
            assert!(
                response["status"] == 200 || response["status"] == "OK",
                "{format} ({uri}) over {transport}: {response}\n{}",
                container.logs()
            );
            // `predict` (MLServer's runtimes) or `output-1` (MLflow's signature).
            let predict = &response["body"]["outputs"][0];
            assert_eq!(
                classes(predict),
                expected,
                "{format} over {transport}: {response}"
            );
        }
    }

    // MLSERVER_ENV_TARBALL, as MLServer's image activates it.
    // (A custom class: the InferenceService sets the implementation itself.)
    let mut isvc = InferenceService::new("marker", "sklearn", Some("gs://models/marker"));
    isvc.runtime = Some("kserve-mlserver-rs".into());
    isvc.env.push((
        "MLSERVER_MODEL_IMPLEMENTATION".into(),
        "marker_model.MarkerModel".into(),
    ));
    let rendered = render(&isvc, &cluster).unwrap();
    let kserve = ContainerSpec {
        env: rendered.env.clone(),
        command: Vec::new(),
        drops_all_capabilities: rendered.drops_all_capabilities,
        no_privilege_escalation: rendered.no_privilege_escalation,
    };
    let env = rendered.env;
    let mount = format!(
        "{}:/mnt/models:ro",
        models.path().join("envmodel").display()
    );
    let args = run_args(&kserve, &env, &[mount]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let container = docker.start_container(&args, py, &[]);
    let marker = json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]});
    let response = container.python(
        "v2_client.py",
        &["rest", "8080", "marker", &marker.to_string()],
    );
    let where_ = &output(&response, "where")["data"];
    assert_eq!(where_[0], "from the environment tarball", "{response}");
    assert!(
        where_[1]
            .as_str()
            .unwrap()
            .starts_with("/opt/mlserver/.envs/"),
        "unpacked under environments_dir: {response}"
    );
    assert!(
        container.logs().contains("MLSERVER_ENV_TARBALL activated"),
        "{}",
        container.logs()
    );
    drop(container);

    // The ODH fork's production mode, from an allowlist baked at its path
    // (here mounted there): a malformed one stops the start; a valid one
    // serves the runtimes it names and refuses the rest.
    let allowlists = tempfile::tempdir().unwrap();
    chmod_open(allowlists.path());
    write(
        allowlists.path(),
        "bad.json",
        r#"{"trusted": ["mlserver_sklearn.SKLearnModel"]}"#,
    );
    write(
        allowlists.path(),
        "good.json",
        r#"["mlserver_sklearn.SKLearnModel"]"#,
    );
    let baked = |file: &str| {
        format!(
            "{}:/etc/mlserver/trusted-runtimes.json:ro",
            allowlists.path().join(file).display()
        )
    };
    let sklearn_mount = format!("{}:{MODEL_DIR}:ro", models.path().join("sklearn").display());
    let sklearn_env = {
        let mut isvc =
            InferenceService::new("sklearn-iris", "sklearn", Some("gs://models/sklearn"));
        isvc.runtime = Some("kserve-mlserver-rs".into());
        render(&isvc, &cluster).unwrap().env
    };
    let args = run_args(
        &kserve,
        &sklearn_env,
        &[sklearn_mount.clone(), baked("bad.json")],
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let aborted = docker.start_container(&args, py, &[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let exit_code = loop {
        let state = docker.ok(&[
            "inspect",
            "-f",
            "{{.State.Running}} {{.State.ExitCode}}",
            &aborted.name,
        ]);
        match state.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["false", code] => break code.parse::<i32>().unwrap(),
            _ => assert!(
                std::time::Instant::now() < deadline,
                "a malformed allowlist did not stop the start:\n{}",
                aborted.logs()
            ),
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    let log = aborted.logs();
    assert_ne!(exit_code, 0, "{log}");
    assert!(
        log.contains("Server startup aborted: invalid trusted runtimes allowlist configuration")
            && log.contains("must be a JSON list of import paths"),
        "{log}"
    );
    drop(aborted);

    let args = run_args(&kserve, &sklearn_env, &[sklearn_mount, baked("good.json")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let production = docker.start_container(&args, py, &[]);
    let response = production.python(
        "v2_client.py",
        &["rest", "8080", "sklearn-iris", &request("input-0")],
    );
    assert_eq!(response["status"], 200, "{response}\n{}", production.logs());
    let runtimes = production.python("v2_client.py", &["raw", "8080", "GET", "/v2/runtimes"]);
    assert_eq!(
        runtimes["body"]
            .as_str()
            .map(|b| serde_json::from_str::<Value>(b).unwrap()),
        Some(
            json!({"mode": "PRODUCTION", "allowed_model_implementations": ["mlserver_sklearn.SKLearnModel"]})
        ),
        "{runtimes}"
    );
    assert!(
        production
            .logs()
            .contains("Runtime security: PRODUCTION - 1 model"),
        "{}",
        production.logs()
    );
    drop(production);
    // A class not in the allowlist, from the models folder, with its
    // environment tarball: neither is used.
    let mount = format!(
        "{}:{MODEL_DIR}:ro",
        models.path().join("envmodel").display()
    );
    let args = run_args(&kserve, &env, &[mount, baked("good.json")]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = docker.start_container(&args, py, &[]);
    refused.wait_for("the refusal", std::time::Duration::from_secs(60), || {
        refused
            .logs()
            .contains("is not included in the trusted runtimes allowlist configuration")
    });
    assert!(
        refused
            .logs()
            .contains("MLSERVER_ENV_TARBALL is not used in PRODUCTION mode"),
        "{}",
        refused.logs()
    );
    drop(refused);

    // ModelMesh: the runtime starts with an empty models folder (the
    // adapter creates it); RuntimeStatus; then a placement: the puller's
    // copy, the adapter's folder with a symlink to it and its settings file,
    // RepositoryModelLoad, inference with the model id injected.
    let modelmesh = container_spec("modelmesh/servingruntime.yaml");
    let root = tempfile::tempdir().unwrap();
    chmod_open(root.path());
    std::fs::create_dir(root.path().join("_mlserver_models")).unwrap();
    chmod_open(&root.path().join("_mlserver_models"));
    let mount = format!("{}:/models", root.path().display());
    let args = run_args(&modelmesh, &modelmesh.env, &[mount]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let command: Vec<String> = modelmesh
        .command
        .iter()
        .map(|a| kubelet_expand(a, &modelmesh.env))
        .collect();
    let command: Vec<&str> = command.iter().map(String::as_str).collect();
    let container = docker.start_container(&args, py, &command);
    let port = modelmesh
        .env
        .iter()
        .find(|(k, _)| k == "MLSERVER_GRPC_PORT")
        .map(|(_, v)| v.clone())
        .unwrap();
    let status = container.python("adapter.py", &["status", &port]);
    assert_eq!(status["index"], json!([]), "{status}");
    assert_eq!(
        status["server_version"],
        env!("CARGO_PKG_VERSION"),
        "{status}"
    );

    let id = "sklearn-iris__isvc-6b2eb0b8bf";
    std::fs::create_dir_all(root.path().join(id)).unwrap();
    std::fs::copy(
        models.path().join("sklearn/model.joblib"),
        root.path().join(id).join("model.joblib"),
    )
    .unwrap();
    let adapted = root.path().join("_mlserver_models").join(id);
    std::fs::create_dir_all(&adapted).unwrap();
    std::os::unix::fs::symlink(
        format!("/models/{id}/model.joblib"),
        adapted.join("model.joblib"),
    )
    .unwrap();
    write(
        &adapted,
        "model-settings.json",
        &serde_json::to_string_pretty(&json!({
            "name": id,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": format!("/models/_mlserver_models/{id}/model.joblib")}
        }))
        .unwrap(),
    );
    let result = container.python("adapter.py", &["load", &port, id, &request("input-0")]);
    assert_eq!(result["load"], "OK", "{result}\n{}", container.logs());
    let predict = &result["infer"]["predict"];
    assert_eq!(classes(predict), expected, "{result}");
    assert_eq!(result["unload"], "OK", "{result}");
}

/// Lets the container's users (a random uid in group 0) write the folder.
fn chmod_open(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
}

/// The rows of a fixture without missing values (JSON has no NaN) and the
/// expected predictions for them: `(rows, expected)` as flat lists.
fn finite_rows<F: Copy>(
    rows: &[F],
    expected: &[F],
    n_features: usize,
    n_outputs: usize,
    finite: impl Fn(F) -> bool,
) -> (Vec<F>, Vec<F>) {
    let mut picked = (Vec::new(), Vec::new());
    for (row, out) in rows
        .chunks(n_features)
        .zip(expected.chunks(n_outputs))
        .filter(|(row, _)| row.iter().all(|v| finite(*v)))
        .take(2)
    {
        picked.0.extend_from_slice(row);
        picked.1.extend_from_slice(out);
    }
    picked
}

#[test]
fn server_image_serves_xgboost_and_lightgbm_natively_through_kserve() {
    let what = "the Rust-only image's tree models test";
    let (Some(docker), Some(server)) = (docker(what), image(what, "mlserver-rs:test-server"))
    else {
        return;
    };
    let no_python = docker.try_run(&[
        "run",
        "--rm",
        "--network",
        "none",
        server,
        "/bin/sh",
        "-c",
        "command -v python3 || command -v python",
    ]);
    assert!(
        !no_python.status.success(),
        "the server image has no Python"
    );
    let fixtures = workspace().join("crates/mlserver-trees/tests/fixtures");
    let json_of = |path: std::path::PathBuf| -> Value {
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let u64s = |v: &Value| -> Vec<u64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect()
    };
    let case = |doc: &Value, name: &str| -> Value {
        doc["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    // XGBoost multiclass (softprob) and LightGBM multiclass, as their
    // libraries saved them, with the predictions their libraries made.
    let xgb = case(&json_of(fixtures.join("expected.json")), "softprob");
    let (xgb_rows, xgb_expected) = finite_rows(
        &u64s(&xgb["rows"])
            .iter()
            .map(|b| f32::from_bits(*b as u32))
            .collect::<Vec<_>>(),
        &u64s(&xgb["inplace_pred"])
            .iter()
            .map(|b| f32::from_bits(*b as u32))
            .collect::<Vec<_>>(),
        8,
        3,
        f32::is_finite,
    );
    let lgb_doc = json_of(fixtures.join("lightgbm/expected.json"));
    let lgb = case(&lgb_doc, "multiclass");
    let (lgb_rows, lgb_expected) = finite_rows(
        &u64s(&lgb_doc["shared_rows"])
            .iter()
            .map(|b| f64::from_bits(*b))
            .collect::<Vec<_>>(),
        &u64s(&lgb["pred"])
            .iter()
            .map(|b| f64::from_bits(*b))
            .collect::<Vec<_>>(),
        8,
        3,
        f64::is_finite,
    );
    let models = tempfile::tempdir().unwrap();
    chmod_open(models.path());
    for (format, file) in [
        ("xgboost", "softprob.ubj"),
        ("lightgbm", "lightgbm/multiclass.txt"),
    ] {
        let folder = models.path().join(format);
        std::fs::create_dir_all(&folder).unwrap();
        // KServe's storage initializer copies the bucket's files as they are:
        // MLServer's runtimes look for model.bst.
        std::fs::copy(fixtures.join(file), folder.join("model.bst")).unwrap();
        chmod_open(&folder);
    }

    let native =
        Runtime::from_file(&workspace().join("deploy/kserve/kserve-mlserver-rs-native.yaml"))
            .unwrap();
    let mut cluster = Runtime::stock();
    cluster.push(native);
    for (format, rows, datatype) in [
        ("xgboost", json!(xgb_rows), "FP32"),
        ("lightgbm", json!(lgb_rows), "FP64"),
    ] {
        let name = format!("{format}-native");
        let mut isvc = InferenceService::new(&name, format, Some(&format!("gs://models/{format}")));
        isvc.runtime = Some("kserve-mlserver-rs-native".into());
        let rendered = render(&isvc, &cluster).unwrap();
        assert!(rendered.command.is_empty() && rendered.args.is_empty());
        let env = rendered.env.clone();
        assert!(
            env.contains(&("MLSERVER_MODEL_URI".into(), MODEL_DIR.into())),
            "{env:?}"
        );
        let spec = ContainerSpec {
            env: Vec::new(),
            command: Vec::new(),
            drops_all_capabilities: rendered.drops_all_capabilities,
            no_privilege_escalation: rendered.no_privilege_escalation,
        };
        // The manifest's env on the host network, with free ports instead of
        // its 8080/9000.
        let (http, grpc, metrics) = (free_port(), free_port(), free_port());
        let mut env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| !k.ends_with("_PORT"))
            .collect();
        env.extend([
            ("MLSERVER_HOST".into(), "127.0.0.1".into()),
            ("MLSERVER_HTTP_PORT".into(), http.to_string()),
            ("MLSERVER_GRPC_PORT".into(), grpc.to_string()),
            ("MLSERVER_METRICS_PORT".into(), metrics.to_string()),
        ]);
        let mount = format!("{}:{MODEL_DIR}:ro", models.path().join(format).display());
        let mut args = run_args(&spec, &env, &[mount]);
        args[1] = "host".into();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let container = docker.start_container(&args, server, &[]);
        let base = format!("http://127.0.0.1:{http}");
        container.wait_for(&name, std::time::Duration::from_secs(60), || {
            get_status(&format!("{base}/v2/models/{name}/ready")) == 200
        });
        let response: Value = reqwest::blocking::Client::new()
            .post(format!("{base}/v2/models/{name}/infer"))
            .json(
                &json!({"inputs": [{"name": "input-0", "shape": [2, 8], "datatype": datatype,
                                      "data": rows}]}),
            )
            .send()
            .unwrap()
            .json()
            .unwrap();
        let predict = &response["outputs"][0];
        assert_eq!(predict["name"], "predict", "{response}");
        assert_eq!(predict["shape"], json!([2, 3]), "{response}");
        let got: Vec<f64> = predict["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        match format {
            "xgboost" => {
                let got: Vec<u32> = got.iter().map(|v| (*v as f32).to_bits()).collect();
                let want: Vec<u32> = xgb_expected.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "XGBoost's own predictions, bit for bit");
            }
            _ => {
                let got: Vec<u64> = got.iter().map(|v| v.to_bits()).collect();
                let want: Vec<u64> = lgb_expected.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "LightGBM's own predictions, bit for bit");
            }
        }
        assert!(
            container.logs().contains("natively"),
            "{}",
            container.logs()
        );
    }
}
