//! The ModelMesh contract: the server configured as modelmesh-serving's
//! `mlserver-1.x` ServingRuntime configures it, driven through the exact
//! gRPC call sequence of the MLServer adapter (`model-mesh-mlserver-adapter`):
//! RuntimeStatus (ready, index, unload all, metadata), then LoadModel (write
//! `_mlserver_models/<id>/model-settings.json`, RepositoryModelLoad), then
//! inference with the model id injected into `model_name`, then UnloadModel.

use std::time::{Duration, Instant};

use mlserver_proto::convert::encode_infer_request;
use mlserver_proto::inference::*;
use mlserver_settings::EnvSource;
use mlserver_tests::{runtimes::test_runtimes, ModelsDir, TestServer};
use mlserver_types::{InferenceRequest, Tensor};
use serde_json::json;
use tonic::Code;

/// The container env of `deploy/modelmesh/servingruntime.yaml` (the same
/// variables as modelmesh-serving's `mlserver-1.x`), read from the file so
/// the shipped manifest is what is tested. Only `MLSERVER_MODEL_IMPLEMENTATION`
/// is swapped for a runtime whose load takes measurable time.
fn serving_runtime_env() -> EnvSource {
    let yaml = std::fs::read_to_string(
        mlserver_tests::workspace_root().join("deploy/modelmesh/servingruntime.yaml"),
    )
    .expect("deploy/modelmesh/servingruntime.yaml");
    let mut env = EnvSource::empty();
    let mut name: Option<String> = None;
    for line in yaml.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("- name: ") {
            name = n.starts_with("MLSERVER_").then(|| n.to_owned());
        } else if let (Some(n), Some(v)) = (name.take(), line.strip_prefix("value: ")) {
            env = env.with_var(n, v.trim_matches('"'));
        }
    }
    for expected in [
        "MLSERVER_MODELS_DIR",
        "MLSERVER_GRPC_PORT",
        "MLSERVER_HTTP_PORT",
        "MLSERVER_LOAD_MODELS_AT_STARTUP",
        "MLSERVER_HOST",
        "MLSERVER_GRPC_MAX_MESSAGE_LENGTH",
    ] {
        assert!(
            env.get(expected).is_some(),
            "{expected} missing from the manifest"
        );
    }
    env.with_var("MLSERVER_MODEL_IMPLEMENTATION", "test.Slow")
}

#[test]
fn serving_runtime_env_is_understood() {
    let dir = ModelsDir::new();
    let env = serving_runtime_env();
    let s = mlserver_settings::load_settings(dir.path(), &env).unwrap();
    assert_eq!(
        (s.host.as_str(), s.grpc_port, s.http_port),
        ("127.0.0.1", 8001, 8002)
    );
    assert!(!s.load_models_at_startup);
    assert_eq!(
        mlserver_server::max_message_bytes(s.grpc_max_message_length),
        usize::MAX
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adapter_call_sequence() {
    let dir = ModelsDir::new();
    let s = TestServer::start_with_env(dir.path(), test_runtimes(), serving_runtime_env(), |_| {})
        .await;
    let mut c = s.grpc().await;

    // RuntimeStatus: poll ServerReady until true (models are not loaded at
    // startup, so it is true at once), then index and unload what is there.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !c
        .server_ready(ServerReadyRequest {})
        .await
        .map(|r| r.into_inner().ready)
        .unwrap_or(false)
    {
        assert!(Instant::now() < deadline, "ServerReady never became true");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = c
        .repository_index(RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .expect("RepositoryIndex with zero models loaded")
        .into_inner()
        .models;
    assert!(listed.is_empty(), "{listed:?}");
    let version = c
        .server_metadata(ServerMetadataRequest {})
        .await
        .unwrap()
        .into_inner()
        .version;
    assert!(
        !version.is_empty(),
        "the adapter reports it as the runtime version"
    );

    // LoadModel: the adapter writes the settings after the server started,
    // with the model id as name and an absolute uri; no implementation (the
    // env default applies).
    let model_id = "example-sklearn-mnist-svm__isvc-6b2eb0b8bf";
    let pulled = dir.path().join(model_id);
    std::fs::create_dir_all(&pulled).unwrap();
    std::fs::write(pulled.join("model.joblib"), b"weights").unwrap();
    dir.model(
        &format!("_mlserver_models/{model_id}"),
        json!({
            "name": model_id,
            "parameters": {
                "uri": pulled.join("model.joblib").display().to_string(),
                "extra": {"load_ms": 300}
            }
        }),
    );
    let load = RepositoryModelLoadRequest {
        model_name: model_id.into(),
        ..Default::default()
    };
    let started = Instant::now();
    c.repository_model_load(load.clone()).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "RepositoryModelLoad must return only once the model is loaded"
    );

    // Inference straight away (ModelMesh never calls ModelReady), with the
    // id injected into model_name, typed contents as kserve/rest-proxy sends.
    let infer = || {
        encode_infer_request(
            model_id,
            None,
            InferenceRequest::new(vec![Tensor::new("x", vec![1], vec![1.0f32]).unwrap()]),
            false,
        )
    };
    let reply = c.model_infer(infer()).await.unwrap().into_inner();
    assert_eq!(reply.model_name, model_id);
    let meta = c
        .model_metadata(ModelMetadataRequest {
            name: model_id.into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(meta.name, model_id);

    // Loading a loaded model reloads it; it keeps serving meanwhile.
    let reload = {
        let mut c = c.clone();
        let load = load.clone();
        tokio::spawn(async move { c.repository_model_load(load).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.model_infer(infer())
        .await
        .expect("serves during a reload");
    reload.await.unwrap().unwrap();

    // A second model next to it.
    dir.model(
        "_mlserver_models/other__isvc-1",
        json!({"name": "other__isvc-1", "implementation": "echo"}),
    );
    c.repository_model_load(RepositoryModelLoadRequest {
        model_name: "other__isvc-1".into(),
        ..Default::default()
    })
    .await
    .unwrap();

    // UnloadModel frees it; a second unload is NOT_FOUND (tolerated by the
    // adapter), and the other model is untouched.
    let unload = RepositoryModelUnloadRequest {
        model_name: model_id.into(),
        ..Default::default()
    };
    c.repository_model_unload(unload.clone()).await.unwrap();
    let e = c.model_infer(infer()).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    let e = c.repository_model_unload(unload).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound);
    std::fs::remove_dir_all(dir.path().join("_mlserver_models").join(model_id)).unwrap();
    let ready: Vec<String> = c
        .repository_index(RepositoryIndexRequest {
            repository_name: String::new(),
            ready: true,
        })
        .await
        .unwrap()
        .into_inner()
        .models
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(ready, vec!["other__isvc-1".to_owned()]);

    // A restarted mesh finds models loaded: RuntimeStatus unloads them all.
    for name in ready {
        c.repository_model_unload(RepositoryModelUnloadRequest {
            model_name: name,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert!(
        c.server_ready(ServerReadyRequest {})
            .await
            .unwrap()
            .into_inner()
            .ready
    );
    s.stop().await;
}
