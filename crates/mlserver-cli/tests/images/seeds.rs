//! The ModelMesh guide's "Option B" Dockerfile (shared/seeds), with only its
//! first lines changed to start from our `-py` image instead of
//! `python:3.8-slim-buster` plus `pip install mlserver`: built with the
//! classic `docker build`, run with the guide's debugging variables, and
//! driven by the ModelMesh adapter's call sequence to an inference of the
//! guide's `CustomMLModel`.

use std::path::Path;

use serde_json::json;

use crate::fixture::*;

/// The guide's Dockerfile, from its `COPY` on, as written.
const OPTION_B_REST: &str = r#"
# Place your MLModel implementation on the Python path.
COPY --chown=${USER} ./custom_model.py /opt/custom_model.py
ENV PYTHONPATH=/opt/
# Set environment variables for ModelMesh compatibility.
# These can also be set in the ServingRuntime YAML, but embedding them here
# ensures consistent behavior during local testing.
ENV MLSERVER_MODELS_DIR=/models/_mlserver_models \
MLSERVER_GRPC_PORT=8001 \
MLSERVER_HTTP_PORT=8002 \
MLSERVER_LOAD_MODELS_AT_STARTUP=false \
MLSERVER_MODEL_NAME=dummy-model
# Point MLServer to your class so the implementation field is optional
# in model settings.
ENV MLSERVER_MODEL_IMPLEMENTATION=custom_model.CustomMLModel
CMD ["mlserver", "start", "${MLSERVER_MODELS_DIR}"]
"#;

#[test]
fn python_image_option_b_dockerfile_serves_the_guides_custom_model() {
    let what = "the ModelMesh guide's Option B image test";
    let (Some(docker), Some(py)) = (docker(what), image(what, "mlserver-rs:test-py")) else {
        return;
    };
    let context = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/seed/custom_model.py"),
        context.path().join("custom_model.py"),
    )
    .unwrap();
    // The only change: the FROM line, and no `RUN pip install mlserver`.
    write(
        context.path(),
        "Dockerfile",
        &format!("FROM {py}\n{OPTION_B_REST}"),
    );
    let tag = "mlserver-e2e:option-b";
    docker.ok(&["build", "-q", "-t", tag, context.path().to_str().unwrap()]);

    // The guide's debugging variables, as its ServingRuntime sets them; the
    // models folder mounted where the adapter keeps it, empty at first.
    let root = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    let container = docker.start_container(
        &[
            "--network",
            "none",
            "-v",
            &format!("{}:/models", root.path().display()),
            "-e",
            "MLSERVER_DEBUG=true",
            "-e",
            "MLSERVER_MODEL_PARALLEL_WORKERS=0",
        ],
        tag,
        &[],
    );
    let status = container.python("adapter.py", &["status", "8001"]);
    // dummy-model (env-only, never loaded) is not ready: the adapter's
    // RepositoryIndex(ready=true) does not list it.
    assert_eq!(status["index"], json!([]), "{status}");

    // A placement: the adapter's files under the real models folder. No
    // implementation (the adapter writes none for a custom format):
    // MLSERVER_MODEL_IMPLEMENTATION fills it in.
    let id = "my-model-sample__isvc-0123456789";
    let adapted = root.path().join("_mlserver_models").join(id);
    write(&adapted, "model.json", r#"{"scale": 3}"#);
    write(
        &adapted,
        "model-settings.json",
        &json!({"name": id, "parameters": {"uri": format!("/models/_mlserver_models/{id}")}})
            .to_string(),
    );
    let request =
        json!({"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [1.5, 2.0]}]});
    let result = container.python(
        "adapter.py",
        &["load", "8001", id, &request.to_string(), "keep"],
    );
    assert_eq!(result["load"], "OK", "{result}\n{}", container.logs());
    assert_eq!(result["infer"]["y"]["data"], json!([4.5, 6.0]), "{result}");

    // One Python worker, however many the server would otherwise start.
    let workers = container.exec(
        &[
            "sh",
            "-c",
            // Anchored on the interpreter: this shell's own command line
            // names the worker script too.
            "for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done \
             | grep -c '^/opt/mlserver-env/bin/python -m mlserver_rs_worker '",
        ],
        "",
    );
    let logs = container.logs();
    assert_eq!(
        String::from_utf8_lossy(&workers.stdout).trim(),
        "1",
        "{logs}"
    );
    assert!(
        logs.contains("DEBUG"),
        "MLSERVER_DEBUG=true logs at debug level:\n{logs}"
    );
    assert!(logs.contains("unexpanded"), "{logs}");
    assert!(!logs.contains("Traceback"), "{logs}");
}
