//! Images for real: `mlserver dockerfile` and `mlserver build` on Rust and
//! Python folders, built through the Docker Engine API (bollard, the code
//! under test) and with Buildah, the stock images of the root Dockerfile,
//! the `deploy/` manifests and the seeds' own examples, each image run and
//! asked for an inference. The real parts (a private dockerd, Buildah,
//! Debian base images, PyPI) are set up by `fixture`; a test that cannot
//! have them says so loudly, and fails under `MLSERVER_TEST_STRICT=1`.
//!
//! Names: the Python image tests contain `python_image`, the Docker-less
//! ones `buildah`, so `cargo test -- python_image buildah` runs them.

mod fixture;
mod manifests;
mod python_image;
mod seeds;

use std::process::Command;

use fixture::*;

#[test]
fn dockerfile_writes_refuses_and_prints() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "requirements.txt", "numpy\n");
    let out = Command::new(MLSERVER)
        .args(["dockerfile", "-i"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let dockerfile = std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap();
    assert!(dockerfile.contains("-m pip install --no-cache-dir -r /tmp/requirements.txt"));
    for ignore in [".dockerignore", "Dockerfile.dockerignore"] {
        let t = std::fs::read_to_string(dir.path().join(ignore)).unwrap();
        assert!(t.contains("__pycache__") && !t.contains("*.so"), "{t}");
    }
    // Ours: regenerated freely.
    let again = Command::new(MLSERVER)
        .arg("dockerfile")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));

    // Not ours: refused without --force, and nothing is written.
    write(dir.path(), "Dockerfile", "FROM scratch\n");
    let refused = Command::new(MLSERVER)
        .args(["dockerfile", "-i"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--force"), "{}", text(&refused));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("Dockerfile")).unwrap(),
        "FROM scratch\n"
    );
    let forced = Command::new(MLSERVER)
        .args(["dockerfile", "--force"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(forced.status.success(), "{}", text(&forced));

    // --stdout prints and writes nothing.
    let other = tempfile::tempdir().unwrap();
    let printed = Command::new(MLSERVER)
        .args(["dockerfile", "--stdout"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&printed.stdout).contains("FROM ${MLSERVER_IMAGE}"));
    assert!(!other.path().join("Dockerfile").exists());
}

#[test]
fn build_without_a_daemon_says_so_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(MLSERVER)
        .args(["build", "-t", "x:y"])
        .arg(dir.path())
        .env(
            "DOCKER_HOST",
            format!("unix://{}/no.sock", dir.path().display()),
        )
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach a Docker daemon") && err.contains("mlserver dockerfile"),
        "{err}"
    );
}

/// A Rust-only folder with embedded settings, on the root Dockerfile's
/// `server` image: the embedded model and port apply, a runtime env var
/// still overrides, `.dockerignore` is honoured, and a failing `RUN` step
/// fails the build with Docker's message and the tool's own.
#[test]
fn build_and_run_an_image_with_embedded_settings() {
    let what = "the Rust-only image build test";
    let (Some(docker), Some(base)) = (docker(what), image(what, "mlserver-rs:test-server")) else {
        return;
    };
    let (http, grpc, metrics) = (free_port(), free_port(), free_port());
    let folder = tempfile::tempdir().unwrap();
    write(
        folder.path(),
        "settings.json",
        &format!(
            r#"{{"host": "127.0.0.1", "http_port": {http}, "grpc_port": {grpc}, "metrics_port": {metrics}, "server_name": "embedded-name"}}"#
        ),
    );
    write(
        folder.path(),
        "model-settings.json",
        r#"{"name": "embedded-sum", "implementation": "sum"}"#,
    );
    write(folder.path(), ".dockerignore", "*.secret\n");
    write(folder.path(), "token.secret", "do not ship");
    let tag = "mlserver-e2e:embedded";
    let out = docker.mlserver_build(
        folder.path(),
        tag,
        &["--build-arg", &format!("MLSERVER_IMAGE={base}")],
    );
    let log = text(&out);
    assert!(out.status.success(), "mlserver build failed:\n{log}");
    assert!(log.contains("Step 1/"), "{log}");
    let last = log.trim().lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Built image sha256:") && last.ends_with(tag),
        "the build ends with the image id: {last}"
    );

    // The ignored file is not in the image; the .env is.
    docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        tag,
        "/bin/sh",
        "-c",
        "test ! -e /opt/mlserver/token.secret && test -s /opt/mlserver/.env",
    ]);

    // Run it on an empty models folder, with one runtime env override.
    let container = docker.start_container(
        &["--network", "host", "-e", "MLSERVER_SERVER_NAME=from-env"],
        tag,
        &[],
    );
    let base_url = format!("http://127.0.0.1:{http}");
    container.wait_for(
        "serving embedded-sum",
        std::time::Duration::from_secs(60),
        || get_status(&format!("{base_url}/v2/models/embedded-sum/ready")) == 200,
    );
    let client = reqwest::blocking::Client::new();
    let meta: serde_json::Value = client
        .get(format!("{base_url}/v2"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let infer: serde_json::Value = client
        .post(format!("{base_url}/v2/models/embedded-sum/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    drop(container);
    assert_eq!(
        meta["name"], "from-env",
        "runtime env overrides the embedded server_name"
    );
    assert_eq!(
        infer["outputs"][0]["data"],
        serde_json::json!([6.0]),
        "{infer}"
    );

    // A failing RUN step fails the build with Docker's message.
    write(folder.path(), "model-settings.json", "{ not json");
    let out = docker.mlserver_build(
        folder.path(),
        "mlserver-e2e:broken",
        &["--build-arg", &format!("MLSERVER_IMAGE={base}")],
    );
    assert!(!out.status.success());
    let log = text(&out);
    assert!(log.contains("returned a non-zero code"), "{log}");
    assert!(log.contains("mlserver dotenv"), "names the step: {log}");
}
