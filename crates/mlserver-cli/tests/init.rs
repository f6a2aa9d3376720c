//! `mlserver init`: the scaffold builds with cargo, serves its model on free
//! ports and answers an inference, exactly as generated.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Kills the server by its PID when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn init_refuses_bad_names_and_non_empty_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mlserver"))
        .args(["init", "1bad"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("cannot be a crate name"),
        "{}",
        text(&out)
    );
    std::fs::write(dir.path().join("keep.txt"), "x").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mlserver"))
        .args(["init", "ok-name", "--path", "."])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("not empty"), "{}", text(&out));
}

#[test]
fn a_new_runtime_builds_serves_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("demo-runtime");
    let out = Command::new(env!("CARGO_BIN_EXE_mlserver"))
        .args(["init", "demo-runtime", "--path"])
        .arg(&project)
        .arg("--mlserver-path")
        .arg(workspace())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for f in [
        "Cargo.toml",
        "Cargo.lock",
        "src/main.rs",
        "model-settings.json",
        "README.md",
        ".gitignore",
    ] {
        assert!(project.join(f).is_file(), "{f} missing: {}", text(&out));
    }

    // The workspace's target dir: the checkout's compiled dependencies are
    // reused (same profiles, same lock file), and nothing is downloaded.
    let target = workspace().join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let build = Command::new(&cargo)
        .args(["build", "--offline", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(build.status.success(), "cargo build: {}", text(&build));
    // Its own unit test passes too.
    let test = Command::new(&cargo)
        .args(["test", "--offline", "--manifest-path"])
        .arg(project.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(test.status.success(), "cargo test: {}", text(&test));
    assert!(
        text(&test).contains("predicts_weight_times_x_plus_bias ... ok"),
        "{}",
        text(&test)
    );

    let (child, addr, _logs) = common::spawn_server(
        Command::new(target.join("debug").join("demo-runtime"))
            .arg("start")
            .arg(&project),
    );
    let _server = Server(child);
    let client = reqwest::blocking::Client::new();
    let mut ready = false;
    for _ in 0..500 {
        if client
            .get(format!("http://{addr}/v2/health/ready"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ready, "the scaffold's model never became ready");

    let r: serde_json::Value = client
        .post(format!("http://{addr}/v2/models/demo-runtime/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", "data": [0, 1, 2]}]}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    // weight 2.0 and bias 0.5 from the generated model-settings.json.
    assert_eq!(r["outputs"][0]["name"], "y");
    assert_eq!(r["outputs"][0]["data"], serde_json::json!([0.5, 2.5, 4.5]));

    // The built-in runtimes are still there.
    let meta = client
        .post(format!("http://{addr}/v2/models/demo-runtime/infer"))
        .json(&serde_json::json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]}))
        .send()
        .unwrap();
    assert_eq!(meta.status(), 400, "the declared FP32 input is enforced");
}
