//! The Seldon Core v2 contract: the server configured as the `mlserver`
//! container of `deploy/seldon/serverconfig.yaml`, driven the way Seldon's
//! agent (scheduler/pkg/agent, v2.10) drives it, over gRPC only:
//! `ServerLive` until it answers, then `RepositoryIndex` and an unload of
//! every `READY` / `LOADING` entry and the removal of each listed folder;
//! each model copied to `<models>/<model>_<N>/1/` with its
//! model-settings.json rewritten through the agent's struct (only `name`,
//! `implementation`, `parallel_workers`, `inputs`, `outputs`, `platform`,
//! `versions` and some `parameters` survive), `RepositoryModelLoad` taken
//! as loaded and ready on OK; inference through the agent's proxies
//! (`model_name` rewritten to `<model>_<N>`, the `seldon-model` /
//! `seldon-internal-model` headers, one load-and-retry on 404 / 400 over
//! REST and NOT_FOUND / UNAVAILABLE over gRPC); memory-pressure eviction
//! (an unload that keeps the files) and reload by name; a failed load,
//! whose folder the agent then deletes. The models folder is mounted
//! read-only in the pod: the server must write nothing there.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlserver_proto::inference::*;
use mlserver_python::PythonConfig;
use mlserver_settings::EnvSource;
use mlserver_tests::{
    runtimes::test_runtimes, tree_snapshot, workspace_root, InferenceClient, TestServer,
};
use serde_json::{json, Map, Value};
use tonic::{Code, Request, Status};

/// The `mlserver` container's env in `deploy/seldon/serverconfig.yaml`.
fn server_config_env() -> Vec<(String, String)> {
    let path = workspace_root().join("deploy/seldon/serverconfig.yaml");
    let yaml: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let container = yaml["spec"]["podSpec"]["containers"]
        .as_sequence()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str() == Some("mlserver"))
        .expect("an mlserver container")
        .clone();
    let mounts = container["volumeMounts"].as_sequence().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m["mountPath"].as_str() == Some("/mnt/agent")
                && m["readOnly"].as_bool() == Some(true)),
        "the models folder is mounted read-only"
    );
    mlserver_tests::kserve::env_pairs(&container["env"])
}

/// The agent's rewrite of model-settings.json (`repository/mlserver`): the
/// keys its Go struct has, `name` set to `<model>_<N>`, `parameters.version`
/// to "1", written back compact.
fn rewrite_settings(original: &Value, versioned_name: &str) -> Value {
    let mut out = Map::new();
    out.insert("name".into(), json!(versioned_name));
    for key in [
        "inputs",
        "outputs",
        "platform",
        "versions",
        "parallel_workers",
        "implementation",
    ] {
        if let Some(v) = original.get(key).filter(|v| !v.is_null()) {
            out.insert(key.into(), v.clone());
        }
    }
    let mut parameters = Map::new();
    for key in [
        "uri",
        "format",
        "content_type",
        "extra",
        "environment_tarball",
    ] {
        if let Some(v) = original["parameters"].get(key).filter(|v| !v.is_null()) {
            parameters.insert(key.into(), v.clone());
        }
    }
    parameters.insert("version".into(), json!("1"));
    out.insert("parameters".into(), Value::Object(parameters));
    Value::Object(out)
}

/// Seldon's agent, as far as the server sees it.
struct Agent {
    grpc: InferenceClient,
    rest: reqwest::Client,
    rest_base: String,
    models: PathBuf,
    /// How many times a proxy loaded a model and retried a request.
    lazy_reloads: usize,
}

impl Agent {
    /// `<models>/<model>_<N>/1/`: the artifact's files and the rewritten
    /// settings (the agent writes; the server only reads).
    fn place(&self, artifact: &Path, model: &str, version: u32) -> String {
        let name = format!("{model}_{version}");
        let dest = self.models.join(&name).join("1");
        std::fs::create_dir_all(&dest).unwrap();
        let mut settings = Value::Null;
        for e in std::fs::read_dir(artifact).unwrap() {
            let e = e.unwrap();
            if e.file_name() == "model-settings.json" {
                settings = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
            } else {
                std::fs::copy(e.path(), dest.join(e.file_name())).unwrap();
            }
        }
        std::fs::write(
            dest.join("model-settings.json"),
            rewrite_settings(&settings, &name).to_string(),
        )
        .unwrap();
        name
    }

    /// Startup: ServerLive until true, then unload what is loaded and
    /// delete every listed folder.
    async fn start(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.grpc.server_live(ServerLiveRequest {}).await {
                Ok(r) if r.get_ref().live => break,
                _ => assert!(Instant::now() < deadline, "ServerLive never answered"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for model in self.index().await.models {
            if model.name.is_empty() {
                continue;
            }
            if model.state == "READY" || model.state == "LOADING" {
                match self.unload(&model.name).await {
                    Ok(()) => {}
                    Err(e) => panic!("unload of {} at agent start: {e}", model.name),
                }
            }
            let _ = std::fs::remove_dir_all(self.models.join(&model.name));
        }
    }

    /// RepositoryIndex, as the agent asks it (no repository, not only
    /// ready models).
    async fn index(&mut self) -> RepositoryIndexResponse {
        self.grpc
            .repository_index(RepositoryIndexRequest::default())
            .await
            .unwrap()
            .into_inner()
    }

    /// RepositoryModelLoad, retried on UNAVAILABLE / RESOURCE_EXHAUSTED as
    /// the agent's gRPC interceptor does (at most 5 calls).
    async fn load(&mut self, name: &str) -> Result<(), Status> {
        let mut tries = 0;
        loop {
            tries += 1;
            let request = RepositoryModelLoadRequest {
                model_name: name.into(),
                ..Default::default()
            };
            match self.grpc.repository_model_load(request).await {
                Ok(_) => return Ok(()),
                Err(e)
                    if tries < 5
                        && matches!(e.code(), Code::Unavailable | Code::ResourceExhausted) =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// RepositoryModelUnload; NOT_FOUND counts as done.
    async fn unload(&mut self, name: &str) -> Result<(), Status> {
        let request = RepositoryModelUnloadRequest {
            model_name: name.into(),
            ..Default::default()
        };
        match self.grpc.repository_model_unload(request).await {
            Ok(_) => Ok(()),
            Err(e) if e.code() == Code::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The REST proxy: `/v2/models/<x>/versions/<v>/infer` rewritten to
    /// `/v2/models/<internal>/infer`, headers passed on, one load and retry
    /// on 404 or 400.
    async fn infer_rest(&mut self, model: &str, internal: &str, body: &Value) -> (u16, Value) {
        for attempt in 0..2 {
            let r = self
                .rest
                .post(format!("{}/v2/models/{internal}/infer", self.rest_base))
                .header("seldon-model", model)
                .header("seldon-internal-model", internal)
                .json(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            if attempt == 0 && (status == 404 || status == 400) {
                self.lazy_reloads += 1;
                let _ = self.load(internal).await;
                continue;
            }
            return (status, body);
        }
        unreachable!()
    }

    /// The gRPC proxy: `model_name` = `<internal>`, `model_version` = "",
    /// metadata passed on, one load and retry on NOT_FOUND or UNAVAILABLE.
    async fn infer_grpc(
        &mut self,
        model: &str,
        internal: &str,
        mut request: ModelInferRequest,
    ) -> Result<ModelInferResponse, Status> {
        request.model_name = internal.into();
        request.model_version = String::new();
        for attempt in 0..2 {
            let mut call = Request::new(request.clone());
            call.metadata_mut()
                .insert("seldon-model", model.parse().unwrap());
            call.metadata_mut()
                .insert("seldon-internal-model", internal.parse().unwrap());
            match self.grpc.model_infer(call).await {
                Err(e)
                    if attempt == 0 && matches!(e.code(), Code::NotFound | Code::Unavailable) =>
                {
                    self.lazy_reloads += 1;
                    let _ = self.load(internal).await;
                }
                other => return other.map(|r| r.into_inner()),
            }
        }
        unreachable!()
    }
}

/// A REST body for the Python model (`x @ [1, 10, 100] + 0.5`).
fn custom_body(x: [i64; 3]) -> Value {
    json!({"inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": x}]})
}

fn sum_request(values: &[f32]) -> ModelInferRequest {
    ModelInferRequest {
        inputs: vec![model_infer_request::InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, values.len() as i64],
            contents: Some(InferTensorContents {
                fp32_contents: values.to_vec(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn fp_outputs(r: &ModelInferResponse) -> Vec<f64> {
    let c = r.outputs[0].contents.as_ref().expect("typed contents");
    c.fp32_contents
        .iter()
        .map(|v| *v as f64)
        .chain(c.fp64_contents.iter().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seldon_agent_call_sequence() {
    // A pod's Python writes bytecode next to the modules it imports unless
    // told not to; this machine's environment may say not to, which would
    // hide a write into the models folder.
    // SAFETY: the only test of this binary; no other thread reads the
    // environment while it changes.
    unsafe { std::env::remove_var("PYTHONDONTWRITEBYTECODE") };
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let models = root.path().join("mnt/agent/models");
    std::fs::create_dir_all(&models).unwrap();

    // The artifacts as users upload them (rclone's copy).
    let artifacts = root.path().join("artifacts");
    let sum = artifacts.join("sum");
    std::fs::create_dir_all(&sum).unwrap();
    std::fs::write(
        sum.join("model-settings.json"),
        // max_batch_size is dropped by the agent's rewrite.
        r#"{"name": "whatever", "implementation": "sum", "max_batch_size": 8, "max_batch_time": 0.5}"#,
    )
    .unwrap();
    let custom = artifacts.join("custom");
    mlserver_tests::python::write_custom_model(&custom);
    std::fs::write(
        custom.join("model-settings.json"),
        r#"{"name": "custom", "implementation": "custom_model.CustomMLModel", "parameters": {"uri": "./weights.json"}}"#,
    )
    .unwrap();
    let broken = artifacts.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(
        broken.join("model-settings.json"),
        r#"{"name": "broken", "implementation": "no_such_module.NoSuchModel"}"#,
    )
    .unwrap();

    // The server, as the ServerConfig's container starts it (ports free).
    let mut env = EnvSource::empty();
    for (k, v) in server_config_env() {
        env = env.with_var(k, v);
    }
    let settings = mlserver_settings::load_settings(&models, &env).unwrap();
    assert!(!settings.load_models_at_startup);
    assert_eq!(settings.parallel_workers, 1);
    let mut runtimes = test_runtimes();
    let mut python_config = PythonConfig::from_settings(&settings, &env);
    python_config.python = python.clone();
    python_config.models_root = models.clone();
    python_config.environments_dir = root.path().join("envs");
    mlserver_python::install(&mut runtimes, python_config);
    let server = TestServer::start_with_env(&models, runtimes, env, |_| {}).await;

    // A model left loaded by an agent that restarted.
    let mut agent = Agent {
        grpc: server.grpc().await,
        rest: reqwest::Client::new(),
        rest_base: server.url(""),
        models: models.clone(),
        lazy_reloads: 0,
    };
    let leftover = agent.place(&sum, "leftover", 3);
    agent.load(&leftover).await.unwrap();

    agent.start().await;
    let index = agent.index().await;
    assert!(index.models.is_empty(), "{index:?}");

    // Version 1 of each model; OK means ready: inference at once.
    let sum_1 = agent.place(&sum, "sum", 1);
    let custom_1 = agent.place(&custom, "custom", 1);
    let written = tree_snapshot(&models);
    agent.load(&sum_1).await.unwrap();
    agent.load(&custom_1).await.unwrap();
    let r = agent
        .infer_grpc("sum", &sum_1, sum_request(&[1.0, 2.0]))
        .await
        .unwrap();
    assert_eq!(
        (r.model_name.as_str(), fp_outputs(&r)),
        ("sum_1", vec![3.0])
    );
    let (status, body) = agent
        .infer_rest("custom", &custom_1, &custom_body([1, 1, 1]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model_name"], "custom_1");
    assert_eq!(body["outputs"][0]["data"], json!([111.5]));
    let (status, body) = agent
        .infer_rest(
            "sum",
            &sum_1,
            &json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [2, 3]}]}),
        )
        .await;
    assert_eq!((status, &body["outputs"][0]["data"]), (200, &json!([5.0])));
    assert_eq!(agent.lazy_reloads, 0);

    // A new version: _2 loads beside _1, then _1 goes (unload, then its
    // folder).
    let sum_2 = agent.place(&sum, "sum", 2);
    agent.load(&sum_2).await.unwrap();
    agent.unload(&sum_1).await.unwrap();
    std::fs::remove_dir_all(models.join(&sum_1)).unwrap();
    let r = agent
        .infer_grpc("sum", &sum_2, sum_request(&[4.0, 5.0]))
        .await
        .unwrap();
    assert_eq!(
        (r.model_name.as_str(), fp_outputs(&r)),
        ("sum_2", vec![9.0])
    );
    let err = agent
        .grpc
        .model_infer(ModelInferRequest {
            model_name: sum_1.clone(),
            ..sum_request(&[1.0])
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Memory pressure: the agent evicts (files kept) and reloads by name
    // on the next request.
    agent.unload(&custom_1).await.unwrap();
    assert!(models
        .join(&custom_1)
        .join("1/model-settings.json")
        .exists());
    agent.load(&custom_1).await.unwrap();
    let (status, body) = agent
        .infer_rest("custom", &custom_1, &custom_body([0, 0, 1]))
        .await;
    assert_eq!(
        (status, &body["outputs"][0]["data"]),
        (200, &json!([100.5]))
    );
    // Unloaded behind the agent's back (its cache says loaded): the
    // proxies' lazy reload, over gRPC and REST.
    agent.unload(&sum_2).await.unwrap();
    let r = agent
        .infer_grpc("sum", &sum_2, sum_request(&[1.0, 1.0]))
        .await
        .unwrap();
    assert_eq!(fp_outputs(&r), vec![2.0]);
    agent.unload(&custom_1).await.unwrap();
    let (status, _) = agent
        .infer_rest("custom", &custom_1, &custom_body([0, 0, 1]))
        .await;
    assert_eq!(status, 200);
    assert_eq!(agent.lazy_reloads, 2);

    // A load that fails: an error (retried as the agent does), the other
    // models keep serving; the agent then deletes the folder and the
    // model leaves the index.
    let broken_1 = agent.place(&broken, "broken", 1);
    let err = agent.load(&broken_1).await.unwrap_err();
    assert_ne!(err.code(), Code::Ok);
    assert!(err.message().contains("no_such_module"), "{err:?}");
    let r = agent
        .infer_grpc("sum", &sum_2, sum_request(&[2.0, 2.0]))
        .await
        .unwrap();
    assert_eq!(fp_outputs(&r), vec![4.0]);
    std::fs::remove_dir_all(models.join(&broken_1)).unwrap();
    let index = agent.index().await;
    let names: Vec<&str> = index.models.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["custom_1", "sum_2"], "{index:?}");
    assert!(index.models.iter().all(|m| m.state == "READY"), "{index:?}");
    assert_eq!(server.get("/v2/health/ready").await.status(), 200);

    // The server wrote nothing into the (read-only) models folder: what is
    // there is what the agent put there.
    let mut expected = written;
    expected.retain(|(p, _, _)| !p.starts_with(models.join(&sum_1)));
    let now: Vec<_> = tree_snapshot(&models)
        .into_iter()
        .filter(|(p, _, _)| !p.starts_with(models.join(&sum_2)))
        .collect();
    assert_eq!(now, expected);
}
