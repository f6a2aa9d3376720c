//! The Python workers' shared memory (`crates/mlserver-python/src/shm.rs`)
//! under faults and load. A test binary of its own: it counts the shared
//! areas this process holds, which another test's server would add to.

use std::time::{Duration, Instant};

use mlserver_proto::inference::model_infer_request::InferInputTensor;
use mlserver_proto::inference::ModelInferRequest;
use mlserver_python::PythonConfig;
use mlserver_settings::EnvSource;
use mlserver_tests::python::{mlserver_python, worker_config};
use mlserver_tests::runtimes::test_runtimes;
use mlserver_tests::{workspace_root, ModelsDir, TestServer};
use serde_json::json;

fn faulty_model(dir: &ModelsDir) {
    let source = std::fs::read_to_string(workspace_root().join("tests/python/models/faulty.py"))
        .expect("fixture");
    dir.write("faulty/faulty.py", &source);
    dir.model(
        "faulty",
        json!({"name": "faulty", "implementation": "faulty.FaultyModel"}),
    );
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// The shared memory areas of this process's workers (`memfd`s), by name.
fn shared_areas() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|target| target.to_string_lossy().into_owned())
        .filter(|target| target.contains("memfd:mlserver-rs-"))
        .collect();
    found.sort();
    found
}

fn dev_shm() -> Vec<String> {
    let mut found: Vec<String> = std::fs::read_dir("/dev/shm")
        .map(|d| {
            d.filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// A raw FP32 `[1, n]` request to the faulty model (its first value picks
/// the fault).
fn raw_request(n: usize, first: f32) -> (ModelInferRequest, Vec<f32>) {
    let values: Vec<f32> = (0..n)
        .map(|i| if i == 0 { first } else { i as f32 * 0.25 })
        .collect();
    let raw: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let request = ModelInferRequest {
        model_name: "faulty".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![1, n as i64],
            ..Default::default()
        }],
        raw_input_contents: vec![raw.into()],
        ..Default::default()
    };
    (request, values)
}

fn echoed(response: &mlserver_proto::inference::ModelInferResponse) -> Vec<f32> {
    let at = response
        .outputs
        .iter()
        .position(|o| o.name == "echo")
        .expect("an echo output");
    response.raw_output_contents[at]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Large tensors go through shared memory: those too large for it through
/// the socket; a worker killed with tensors in flight costs only its calls
/// and leaves no shared memory behind; a burst of 64Ki tensors leaves
/// nothing allocated that grows the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_memory_falls_back_and_outlives_no_worker() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let dir = ModelsDir::new();
    faulty_model(&dir);
    let shm_before = dev_shm();
    assert!(shared_areas().is_empty(), "{:?}", shared_areas());
    let mut runtimes = test_runtimes();
    mlserver_python::install(
        &mut runtimes,
        PythonConfig {
            busy_poll: Duration::ZERO,
            // Room for a few 64Ki FP32 tensors, not for 512Ki.
            shared_memory: 1 << 20,
            ..worker_config(&python, dir.path())
        },
    );
    let s = TestServer::start_with_env(dir.path(), runtimes, EnvSource::empty(), |_| {}).await;
    s.wait_started().await;
    let areas = shared_areas();
    assert_eq!(areas.len(), 2, "one worker, two areas: {areas:?}");
    let mut grpc = s.grpc().await;

    // Through shared memory, and too large for it.
    for n in [65536, 512 * 1024] {
        let (request, values) = raw_request(n, 0.0);
        let response = grpc.model_infer(request).await.unwrap().into_inner();
        assert!(echoed(&response) == values, "{n} values echoed");
    }

    // 200 requests of 64Ki on 8 connections: every answer right, and the
    // server's memory where it was.
    let rss_before = rss_kib();
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut client = s.grpc().await;
        calls.push(tokio::spawn(async move {
            for i in 0..25 {
                let (request, values) = raw_request(65536, i as f32 * 100.0 + 5.0);
                let response = client.model_infer(request).await.unwrap().into_inner();
                assert!(echoed(&response) == values);
            }
        }));
    }
    for call in calls {
        call.await.unwrap();
    }
    let rss_after = rss_kib();
    eprintln!("server RSS {rss_before} KiB before the burst, {rss_after} KiB after");
    assert!(
        rss_after <= rss_before + 64 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );

    // A slow call and a crash, both with tensors in shared memory.
    let slow = {
        let mut client = s.grpc().await;
        tokio::spawn(async move { client.model_infer(raw_request(65536, 4.0).0).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let crash = grpc
        .model_infer(raw_request(65536, 3.0).0)
        .await
        .unwrap_err();
    assert_eq!(crash.code(), tonic::Code::Unavailable, "{crash:?}");
    assert!(crash.message().contains("SIGKILL"), "{crash:?}");
    let slow = slow.await.unwrap().unwrap_err();
    assert_eq!(slow.code(), tonic::Code::Unavailable, "{slow:?}");

    // Replaced, serving through shared memory again; the dead worker's
    // areas are gone, nothing was left in /dev/shm.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match grpc.model_infer(raw_request(65536, 0.0).0).await {
            Ok(response) => {
                assert!(echoed(&response.into_inner()) == raw_request(65536, 0.0).1);
                break;
            }
            Err(e) => assert!(Instant::now() < deadline, "no replacement: {e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let areas_after = shared_areas();
    assert_eq!(areas_after.len(), 2, "{areas_after:?}");
    assert_ne!(areas_after, areas, "the new worker has areas of its own");
    assert_eq!(dev_shm(), shm_before, "nothing left in /dev/shm");
    s.stop().await;
    assert!(shared_areas().is_empty(), "{:?}", shared_areas());
}
