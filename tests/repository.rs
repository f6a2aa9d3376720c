//! Model lifecycle end to end: startup loading, failures, the repository
//! extension (index/load/unload), reloads and versions.

use std::time::Duration;

use mlserver_tests::{runtimes::test_runtimes, ModelsDir, TestServer};
use serde_json::{json, Value};

async fn body(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).expect("JSON")
        },
    )
}

fn index_entry<'a>(index: &'a Value, name: &str, version: Option<&str>) -> &'a Value {
    index
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name && e.get("version").and_then(Value::as_str) == version)
        .unwrap_or_else(|| panic!("{name} {version:?} not in index {index}"))
}

fn x_request() -> Value {
    json!({"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1.0]}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_loads_are_reported_and_contained() {
    let dir = ModelsDir::new();
    dir.model("good", json!({"implementation": "echo"}));
    dir.model("broken", json!({"implementation": "test.Broken"}));
    dir.model("exploding", json!({"implementation": "test.PanicOnLoad"}));
    dir.model("unknown-runtime", json!({"implementation": "nobody.Home"}));
    dir.write("invalid/model-settings.json", "{ this is not json");
    let s = TestServer::start_ready(dir.path()).await;

    let (status, index) = body(s.post_json("/v2/repository/index", &json!({})).await).await;
    assert_eq!(status, 200);
    assert_eq!(index_entry(&index, "good", None)["state"], "READY");
    let broken = index_entry(&index, "broken", None);
    assert_eq!(broken["state"], "UNAVAILABLE");
    assert!(
        broken["reason"]
            .as_str()
            .unwrap()
            .contains("weights file is corrupt"),
        "{broken}"
    );
    let exploding = index_entry(&index, "exploding", None);
    assert!(
        exploding["reason"]
            .as_str()
            .unwrap()
            .contains("load exploded"),
        "{exploding}"
    );
    let unknown = index_entry(&index, "unknown-runtime", None);
    assert!(
        unknown["reason"].as_str().unwrap().contains("nobody.Home"),
        "{unknown}"
    );
    let invalid = index_entry(&index, "invalid", None);
    assert_eq!(invalid["state"], "UNAVAILABLE");

    // Not ready as a whole, but the good model serves.
    assert_eq!(
        body(s.get("/v2/health/ready").await).await,
        (503, json!({"ready": false}))
    );
    assert_eq!(
        body(s.post_json("/v2/models/good/infer", &x_request()).await)
            .await
            .0,
        200
    );
    assert_eq!(
        body(s.get("/v2/models/broken/ready").await).await,
        (503, json!({"name": "broken", "ready": false}))
    );
    let (status, v) = body(s.post_json("/v2/models/broken/infer", &x_request()).await).await;
    assert_eq!(status, 400);
    let msg = v["error"].as_str().unwrap();
    assert!(
        msg.starts_with("Model broken is not ready yet.") && msg.contains("corrupt"),
        "{msg}"
    );

    // Loading it again through the API reports the failure.
    let (status, v) = body(
        s.post_json("/v2/repository/models/broken/load", &json!({}))
            .await,
    )
    .await;
    assert_eq!(status, 500, "{v}");
    assert!(v["error"].as_str().unwrap().contains("corrupt"));

    // Unloading the failed ones leaves the settings file that does not
    // parse: still not ready (MLServer reports ready).
    for name in ["broken", "exploding", "unknown-runtime"] {
        assert_eq!(
            s.client
                .post(s.url(&format!("/v2/repository/models/{name}/unload")))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(body(s.get("/v2/health/ready").await).await.0, 503);
    // Once a scan finds it fixed, the server is ready again.
    dir.write(
        "invalid/model-settings.json",
        r#"{"name": "invalid", "implementation": "echo"}"#,
    );
    let (status, _) = body(s.post_json("/v2/repository/index", &json!({})).await).await;
    assert_eq!(status, 200);
    assert_eq!(body(s.get("/v2/health/ready").await).await.0, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_load_unload() {
    let dir = ModelsDir::new();
    dir.model("a", json!({"implementation": "echo"}));
    dir.model(
        "b/1",
        json!({"name": "b", "implementation": "test.Slow", "parameters": {"version": "1"}}),
    );
    dir.model(
        "b/2",
        json!({"name": "b", "implementation": "test.Slow", "parameters": {"version": "2"}}),
    );
    let s = TestServer::start_ready(dir.path()).await;

    // The index needs no body (MLServer insists on `{}`; both work here).
    let r = s
        .client
        .post(s.url("/v2/repository/index"))
        .send()
        .await
        .unwrap();
    let (status, index) = body(r).await;
    assert_eq!(status, 200);
    assert_eq!(index.as_array().unwrap().len(), 3);
    assert_eq!(index_entry(&index, "b", Some("2"))["state"], "READY");
    assert_eq!(index_entry(&index, "a", None)["reason"], "");

    let (status, v) = body(
        s.post_json("/v2/repository/models/a/unload", &json!({}))
            .await,
    )
    .await;
    assert_eq!((status, v), (200, Value::Null));
    assert_eq!(
        body(s.get("/v2/models/a/ready").await).await,
        (404, json!({"error": "Model a not found"}))
    );
    let (_, index) = body(s.post_json("/v2/repository/index", &json!({})).await).await;
    assert_eq!(index_entry(&index, "a", None)["state"], "UNAVAILABLE");
    let (_, ready_only) = body(
        s.post_json("/v2/repository/index", &json!({"ready": true}))
            .await,
    )
    .await;
    assert!(ready_only
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["state"] == "READY"));
    assert_eq!(ready_only.as_array().unwrap().len(), 2);

    assert_eq!(
        s.client
            .post(s.url("/v2/repository/models/a/load"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        body(s.post_json("/v2/models/a/infer", &x_request()).await)
            .await
            .0,
        200
    );

    // Unknown names.
    assert_eq!(
        body(
            s.post_json("/v2/repository/models/zz/load", &json!({}))
                .await
        )
        .await,
        (404, json!({"error": "Model zz not found"}))
    );
    assert_eq!(
        body(
            s.post_json("/v2/repository/models/zz/unload", &json!({}))
                .await
        )
        .await,
        (404, json!({"error": "Model zz not found"}))
    );
    // A body that is there must be JSON.
    let r = s
        .client
        .post(s.url("/v2/repository/models/a/load"))
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = s
        .client
        .post(s.url("/v2/repository/index"))
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Versions: default is the newest; unloading the name drops them all.
    let (_, v) = body(s.post_json("/v2/models/b/infer", &x_request()).await).await;
    assert_eq!(v["outputs"][0]["data"], json!(["2"]));
    let (_, v) = body(
        s.post_json("/v2/models/b/versions/1/infer", &x_request())
            .await,
    )
    .await;
    assert_eq!(v["outputs"][0]["data"], json!(["1"]));
    // A version removed from disk goes away on the next load.
    std::fs::remove_dir_all(dir.path().join("b/2")).unwrap();
    assert_eq!(
        s.client
            .post(s.url("/v2/repository/models/b/load"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        body(s.get("/v2/models/b/versions/2/ready").await).await.0,
        404
    );
    let (_, v) = body(s.post_json("/v2/models/b/infer", &x_request()).await).await;
    assert_eq!(v["outputs"][0]["data"], json!(["1"]));
    assert_eq!(
        s.client
            .post(s.url("/v2/repository/models/b/unload"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        body(s.get("/v2/models/b/versions/1/ready").await).await.0,
        404
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_written_after_start_and_lazy_startup() {
    let dir = ModelsDir::new();
    dir.model("early", json!({"implementation": "echo"}));
    let s = TestServer::start_with(dir.path(), test_runtimes(), |st| {
        st.load_models_at_startup = false
    })
    .await;
    s.wait_started().await;
    // Nothing loaded, yet ready (ModelMesh / KServe start like this).
    assert_eq!(body(s.get("/v2/health/ready").await).await.0, 200);
    assert_eq!(body(s.get("/v2/models/early/ready").await).await.0, 404);
    let (_, index) = body(s.post_json("/v2/repository/index", &json!({})).await).await;
    assert_eq!(index_entry(&index, "early", None)["state"], "UNAVAILABLE");

    // A model-settings.json written now, deep in the tree, with an absolute URI.
    let data_dir = tempfile::tempdir().unwrap();
    dir.model(
        "_mlserver_models/late-model__isvc-6b2eb0b8bf",
        json!({"name": "late-model__isvc-6b2eb0b8bf", "implementation": "echo",
               "parameters": {"uri": data_dir.path()}}),
    );
    let r = s
        .client
        .post(s.url("/v2/repository/models/late-model__isvc-6b2eb0b8bf/load"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, v) = body(
        s.post_json("/v2/models/late-model__isvc-6b2eb0b8bf/infer", &x_request())
            .await,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["model_name"], "late-model__isvc-6b2eb0b8bf");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loading_models_are_visible_as_not_ready_and_reloads_keep_serving() {
    let dir = ModelsDir::new();
    dir.model(
        "slow",
        json!({"implementation": "test.Slow", "parameters": {"extra": {"load_ms": 800}}}),
    );
    let s = TestServer::start(dir.path()).await;
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        body(s.get("/v2/health/ready").await).await,
        (503, json!({"ready": false}))
    );
    assert_eq!(body(s.get("/v2/models/slow/ready").await).await.0, 503);
    let (status, v) = body(s.post_json("/v2/models/slow/infer", &x_request()).await).await;
    assert_eq!(
        (status, v),
        (400, json!({"error": "Model slow is not ready yet."}))
    );
    let (_, index) = body(s.post_json("/v2/repository/index", &json!({})).await).await;
    assert_eq!(index_entry(&index, "slow", None)["state"], "LOADING");
    s.wait_started().await;
    assert_eq!(body(s.get("/v2/health/ready").await).await.0, 200);

    // Reload: the old instance answers while the new one loads.
    let client = s.client.clone();
    let url = s.url("/v2/repository/models/slow/load");
    let reload = tokio::spawn(async move { client.post(url).send().await.unwrap().status() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, _) = body(s.post_json("/v2/models/slow/infer", &x_request()).await).await;
    assert_eq!(status, 200, "the old instance serves during a reload");
    assert_eq!(body(s.get("/v2/models/slow/ready").await).await.0, 200);
    assert_eq!(reload.await.unwrap(), 200);
    s.stop().await;
}

/// The start-up race: the moment the server answers at all, every model
/// in the folder is known, so a client that finds it live and asks for a
/// model the scan reaches last hears "not ready yet" (which clients retry),
/// never "not found". The folder is made slow to scan (thousands of
/// folders before the model) so that a scan running beside the listeners
/// would be caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_on_disk_are_known_before_the_server_answers() {
    let dir = ModelsDir::new();
    for i in 0..4000 {
        std::fs::create_dir_all(dir.path().join(format!("aa-filler/{i:04}"))).unwrap();
    }
    dir.model(
        "zz-last",
        json!({"implementation": "test.Slow", "parameters": {"extra": {"load_ms": 300}}}),
    );
    let s = TestServer::start(dir.path()).await;
    let live = loop {
        if let Ok(r) = s.client.get(s.url("/v2/health/live")).send().await {
            break r.status();
        }
    };
    assert_eq!(live, 200);
    let (status, ready) = body(s.get("/v2/models/zz-last/ready").await).await;
    assert!(
        status == 503 || status == 200,
        "a model on disk is not ready yet or ready, never unknown: {status} {ready}"
    );
    s.wait_started().await;
    assert_eq!(body(s.get("/v2/models/zz-last/ready").await).await.0, 200);
    s.stop().await;
}

/// A model's folder deleted while the model loads (an agent removing it, a
/// volume going away): the load finishes with the settings it read, the
/// model serves until it is unloaded, the unload succeeds, and then the
/// model is gone from the index; the server and the other models are
/// untouched throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_folder_deleted_while_its_model_loads() {
    let dir = ModelsDir::new();
    dir.model("other", json!({"name": "other", "implementation": "sum"}));
    let s = TestServer::start_ready(dir.path()).await;
    dir.model(
        "slow",
        json!({"name": "slow", "implementation": "test.Slow", "parameters": {"extra": {"load_ms": 500}}}),
    );
    let load = {
        let client = s.client.clone();
        let url = s.url("/v2/repository/models/slow/load");
        tokio::spawn(async move { client.post(url).send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    std::fs::remove_dir_all(dir.path().join("slow")).unwrap();
    assert_eq!(load.await.unwrap(), 200);
    let (status, _) = body(s.post_json("/v2/models/slow/infer", &x_request()).await).await;
    assert_eq!(status, 200);
    let (status, _) = body(s.post_json("/v2/models/other/infer", &x_request()).await).await;
    assert_eq!(status, 200);
    let unload = s
        .client
        .post(s.url("/v2/repository/models/slow/unload"))
        .send()
        .await
        .unwrap();
    assert_eq!(unload.status(), 200);
    let (_, index) = body(s.post_json("/v2/repository/index", &json!({})).await).await;
    let names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["other"]);
    assert_eq!(s.get("/v2/health/ready").await.status(), 200);
}
