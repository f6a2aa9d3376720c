//! A Python `MLModel` folder with a `requirements.txt` (the seeds' main
//! path): `mlserver build` through the Docker Engine API, and `mlserver
//! dockerfile` built by Buildah, each image run as OpenShift would run it
//! (a random uid in group 0) and asked for an inference.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};

use crate::fixture::*;

const PY_SLIM: &str = "mlserver-rs:test-py-slim";

/// The seed's `CustomMLModel` folder: its class, `model.json`, a
/// requirement, embedded settings on the given ports, and a secret the
/// folder's `.dockerignore` keeps out.
fn custom_model_folder(
    http: u16,
    grpc: u16,
    metrics: u16,
    requirements: &str,
) -> tempfile::TempDir {
    let folder = tempfile::tempdir().unwrap();
    let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/images/seed/custom_model.py");
    std::fs::copy(seed, folder.path().join("custom_model.py")).unwrap();
    write(folder.path(), "model.json", r#"{"scale": 1000}"#);
    write(folder.path(), "requirements.txt", requirements);
    write(
        folder.path(),
        "settings.json",
        &format!(
            r#"{{"host": "127.0.0.1", "http_port": {http}, "grpc_port": {grpc}, "metrics_port": {metrics}, "server_name": "custom-image"}}"#
        ),
    );
    write(
        folder.path(),
        "model-settings.json",
        r#"{"name": "custom-model", "implementation": "custom_model.CustomMLModel", "parameters": {"uri": "./model.json"}}"#,
    );
    write(folder.path(), ".dockerignore", "*.secret\n");
    write(folder.path(), "token.secret", "do not ship");
    folder
}

/// What the image holds: our server first on PATH, `MLSERVER_PYTHON`, the
/// user, the ignored file absent.
fn check_image_contract(docker: &Docker, tag: &str) {
    let out = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "/bin/sh",
        "-c",
        "command -v mlserver; echo $MLSERVER_PYTHON; id -u; id -g; \
         test ! -e /opt/mlserver/token.secret && echo no-secret; \
         $MLSERVER_PYTHON -c 'import humanize, mlserver; print(mlserver.__version__)'",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "/usr/local/bin/mlserver",
            "/opt/mlserver-env/bin/python",
            "1000",
            "0",
            "no-secret",
            "1.7.1"
        ],
        "{out}"
    );
}

/// Runs `tag` on the host network as a random uid in group 0 (OpenShift's
/// restricted SCC), waits for the embedded model, infers over REST and
/// checks the answer and that the embedded settings applied.
fn run_and_infer(docker: &Docker, tag: &str, http: u16) {
    let container = docker.start_container(
        &[
            "--network",
            "host",
            "--user",
            "1000680000:0",
            "--cap-drop",
            "ALL",
        ],
        tag,
        &[],
    );
    let base = format!("http://127.0.0.1:{http}");
    container.wait_for("serving custom-model", Duration::from_secs(120), || {
        get_status(&format!("{base}/v2/models/custom-model/ready")) == 200
    });
    let client = reqwest::blocking::Client::new();
    let meta: Value = client
        .get(format!("{base}/v2"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        meta["name"], "custom-image",
        "embedded settings.json applies"
    );
    let response: Value = client
        .post(format!("{base}/v2/models/custom-model/infer"))
        .json(&json!({"inputs": [{"name": "x", "shape": [2], "datatype": "INT64", "data": [1234, 1]}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let outputs = response["outputs"]
        .as_array()
        .unwrap_or_else(|| panic!("{response}"));
    let y = outputs.iter().find(|o| o["name"] == "y").unwrap();
    assert_eq!(y["data"], json!([1234000, 1000]), "{response}");
    // Written by the requirement, inside the model.
    let total = outputs.iter().find(|o| o["name"] == "total").unwrap();
    assert_eq!(total["data"], json!(["1,235,000"]), "{response}");
    let logs = container.logs();
    assert!(!logs.contains("Traceback"), "{logs}");
}

#[test]
fn python_image_docker_builds_and_serves_a_custom_model() {
    let what = "the Python image build test (Docker)";
    let (Some(docker), Some(base)) = (docker(what), image(what, PY_SLIM)) else {
        return;
    };
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let folder = custom_model_folder(http, grpc, metrics, "humanize==4.*\n");
    let before = listing(folder.path());
    let tag = "mlserver-e2e:python-docker";
    let out = docker.mlserver_build(
        folder.path(),
        tag,
        &["--build-arg", &format!("MLSERVER_IMAGE={base}")],
    );
    let log = text(&out);
    assert!(out.status.success(), "mlserver build failed:\n{log}");
    // Progress streamed as it came, pip's own lines among it, then the id.
    assert!(log.contains("Step 1/") && log.contains("humanize"), "{log}");
    let last = log.trim().lines().last().unwrap();
    assert!(
        last.starts_with("Built image sha256:") && last.ends_with(tag),
        "{last}"
    );
    assert_eq!(
        listing(folder.path()),
        before,
        "the build writes nothing in the folder"
    );
    check_image_contract(docker, tag);
    run_and_infer(docker, tag, http);

    // Requirements that cannot install: the build fails at that step with
    // pip's own error, in a few lines.
    write(
        folder.path(),
        "requirements.txt",
        "mlserver-rs-no-such-package-xyz==1.0\n",
    );
    let out = docker.mlserver_build(
        folder.path(),
        "mlserver-e2e:python-broken",
        &["--build-arg", &format!("MLSERVER_IMAGE={base}")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("No matching distribution found for mlserver-rs-no-such-package-xyz"),
        "{err}"
    );
    assert!(err.contains("pip install"), "names the step: {err}");
    assert!(err.lines().count() <= 10, "a few lines: {err}");

    // An embedded model whose class does not exist: the build fails at the
    // `mlserver dotenv` step with Python's message.
    write(folder.path(), "requirements.txt", "humanize==4.*\n");
    write(
        folder.path(),
        "model-settings.json",
        r#"{"name": "custom-model", "implementation": "custom_model.NoSuchModel"}"#,
    );
    let out = docker.mlserver_build(
        folder.path(),
        "mlserver-e2e:python-no-class",
        &["--build-arg", &format!("MLSERVER_IMAGE={base}")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no attribute 'NoSuchModel'"), "{err}");
    write(
        folder.path(),
        "model-settings.json",
        r#"{"name": "custom-model", "implementation": "custom_model.CustomMLModel", "parameters": {"uri": "./model.json"}}"#,
    );

    // A server image without Python: the step says what to use instead.
    let server = image(what, "mlserver-rs:test-server").unwrap();
    write(folder.path(), "requirements.txt", "humanize\n");
    let out = docker.mlserver_build(
        folder.path(),
        "mlserver-e2e:python-no-env",
        &["--build-arg", &format!("MLSERVER_IMAGE={server}")],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MLSERVER_PYTHON is unset"), "{err}");
}

/// The Docker-less path the seed names for CI: `mlserver dockerfile`, then
/// Buildah with vfs storage and chroot isolation (Kaniko has no Debian or
/// PyPI package; Buildah stands for it). The image goes to the daemon only
/// to be run.
#[test]
fn python_image_buildah_builds_the_generated_dockerfile() {
    let what = "the Python image build test (Buildah)";
    let (Some(docker), Some(base)) = (docker(what), image(what, PY_SLIM)) else {
        return;
    };
    let Some(buildah) = Buildah::new(what) else {
        return;
    };
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let folder = custom_model_folder(http, grpc, metrics, "humanize==4.*\n");
    // The folder's own .dockerignore stays: `-i` would refuse to replace it.
    run_ok(Command::new(MLSERVER).arg("dockerfile").arg(folder.path()));
    let local_base = buildah.pull_from(docker, base);
    run_ok(
        buildah
            .cmd()
            .args(["bud", "--isolation", "chroot", "--network", "host"])
            .args(["--build-arg", &format!("MLSERVER_IMAGE={local_base}")])
            .args(["-t", "localhost/mlserver-e2e:python-buildah"])
            .arg(folder.path()),
    );
    let tag = "mlserver-e2e:python-buildah";
    buildah.push_to(docker, "localhost/mlserver-e2e:python-buildah", tag);
    check_image_contract(docker, tag);
    run_and_infer(docker, tag, http);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
