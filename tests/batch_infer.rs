//! `mlserver infer` (crate mlserver-infer) end to end: our server with the
//! bundled example models on free loopback ports, the batch client over
//! REST and gRPC, with and without binary data, several workers and merged
//! batches, a line the server refuses (retried, then reported), and the same
//! input files run through MLServer 1.7.1's own `mlserver infer`, whose
//! output files must match ours line for line once the UUIDs are
//! normalised.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mlserver_infer::{InferArgs, Summary, Transport};
use mlserver_tests::python::mlserver_python;
use mlserver_tests::{examples_models, ModelsDir, TestServer};
use serde_json::{json, Value};

/// Replaces each UUID by `<uuid-N>`, numbered in order of first appearance:
/// ids made per request are random, but which lines share one is not.
fn normalise(lines: &[String]) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    lines
        .iter()
        .map(|line| {
            let b = line.as_bytes();
            let mut out = String::with_capacity(line.len());
            let mut i = 0;
            while i < b.len() {
                if i + 36 <= b.len() && is_uuid(&b[i..i + 36]) {
                    let uuid = &line[i..i + 36];
                    let n = seen.len() + 1;
                    let n = *seen.entry(uuid.to_string()).or_insert(n);
                    out.push_str(&format!("<uuid-{n}>"));
                    i += 36;
                } else {
                    let c = line[i..].chars().next().unwrap();
                    out.push(c);
                    i += c.len_utf8();
                }
            }
            out
        })
        .collect()
}

fn is_uuid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit() && !c.is_ascii_uppercase(),
    })
}

/// The lines ordered by `parameters.batch_index` (with several workers the
/// order in the file is the order the calls finished in).
fn by_batch_index(mut lines: Vec<String>) -> Vec<String> {
    lines.sort_by_key(|l| {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        v["parameters"]["batch_index"]
            .as_u64()
            .expect("batch_index")
    });
    lines
}

fn write_input(dir: &Path, name: &str, lines: &[Value]) -> PathBuf {
    let path = dir.join(name);
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&path, text).unwrap();
    path
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Runs our client against `addr` and returns its summary and output lines.
async fn ours(
    addr: SocketAddr,
    transport: Transport,
    model: &str,
    input: &Path,
    tweak: impl FnOnce(&mut InferArgs),
) -> (Summary, Vec<String>) {
    let output = input.with_extension(format!("ours.{}", fastrand_suffix()));
    let mut args = InferArgs::new(model, input, &output);
    args.url = addr.to_string();
    args.transport = transport;
    tweak(&mut args);
    let summary = mlserver_infer::run_async(args).await.expect("the run");
    (summary, read_lines(&output))
}

/// A distinct suffix per output file within a test.
fn fastrand_suffix() -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("{}.jsonl", N.fetch_add(1, Ordering::Relaxed))
}

/// The lines of the sum-model corpus, and what each becomes.
fn sum_corpus() -> Vec<Value> {
    vec![
        json!({"id": "a", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}]}),
        // No id: one is made up, and is also the call's.
        json!({"inputs": [{"name": "input", "shape": [2, 2], "datatype": "FP32", "data": [1.5, 2.5, 3, 4]}]}),
        json!({"id": "f", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0.5, "0.25"]}]}),
        // The server refuses this one: sum needs numbers.
        json!({"id": "bad", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "BYTES", "data": ["x", "y"]}]}),
        // JSON, but not an inference request.
        json!({"id": "d", "inputs": "nope"}),
        json!({"id": "e", "inputs": [{"name": "input", "shape": [1, 2], "datatype": "INT32", "data": [7, 8]}], "outputs": [{"name": "output"}]}),
    ]
}

const REFUSED: &str = r#"{"parameters": {"batch_index": IDX}, "error": {"status": "preprocessing error", "msg": "sum needs a numeric input; 'input' is BYTES"}}"#;
const NOT_A_REQUEST: &str = r#"{"parameters": {"batch_index": 4}, "error": {"status": "preprocessing error", "msg": [{"type": "list_type", "loc": ["inputs"], "msg": "Input should be a valid list", "input": "nope", "url": "https://errors.pydantic.dev/2.14/v/list_type"}]}}"#;

/// One line per request (batch size 1). Line 5 names its output: it comes
/// back as JSON (NumpyCodec's content type) unless inputs go as binary,
/// when the output does too (and has no parameters left).
fn sum_expected_one_by_one(binary: bool) -> Vec<String> {
    let e_params = if binary {
        "{}"
    } else {
        r#"{"content_type":"np"}"#
    };
    vec![
        r#"{"model_name":"sum-model","id":"a","parameters":{"batch_index":0,"inference_id":"a"},"outputs":[{"name":"output","shape":[1,1],"datatype":"FP32","parameters":{},"data":[3.0]}]}"#.to_string(),
        r#"{"model_name":"sum-model","id":"<uuid-1>","parameters":{"batch_index":1,"inference_id":"<uuid-1>"},"outputs":[{"name":"output","shape":[2,1],"datatype":"FP32","parameters":{},"data":[4.0,7.0]}]}"#.to_string(),
        r#"{"model_name":"sum-model","id":"f","parameters":{"batch_index":2,"inference_id":"f"},"outputs":[{"name":"output","shape":[1,1],"datatype":"FP32","parameters":{},"data":[0.75]}]}"#.to_string(),
        REFUSED.replace("IDX", "3"),
        NOT_A_REQUEST.to_string(),
        format!(r#"{{"model_name":"sum-model","id":"e","parameters":{{"batch_index":5,"inference_id":"e"}},"outputs":[{{"name":"output","shape":[1,1],"datatype":"FP32","parameters":{e_params},"data":[15.0]}}]}}"#),
    ]
}

/// Three lines per call: the first three merge into one call of four rows
/// (one `inference_id`), split back per line; the second call merges the
/// refused BYTES line with line 5, so the server refuses both.
fn sum_expected_by_three() -> Vec<String> {
    vec![
        r#"{"model_name":"sum-model","id":"a","parameters":{"batch_index":0,"inference_id":"<uuid-1>"},"outputs":[{"name":"output","shape":[1,1],"datatype":"FP32","parameters":{},"data":[3.0]}]}"#.to_string(),
        r#"{"model_name":"sum-model","id":"<uuid-2>","parameters":{"batch_index":1,"inference_id":"<uuid-1>"},"outputs":[{"name":"output","shape":[2,1],"datatype":"FP32","parameters":{},"data":[4.0,7.0]}]}"#.to_string(),
        r#"{"model_name":"sum-model","id":"f","parameters":{"batch_index":2,"inference_id":"<uuid-1>"},"outputs":[{"name":"output","shape":[1,1],"datatype":"FP32","parameters":{},"data":[0.75]}]}"#.to_string(),
        REFUSED.replace("IDX", "3"),
        NOT_A_REQUEST.to_string(),
        REFUSED.replace("IDX", "5"),
    ]
}

fn assert_lines(got: Vec<String>, want: Vec<String>, what: &str) {
    let got = normalise(&by_batch_index(got));
    if got != want {
        panic!(
            "{what}: output file differs\n--- got\n{}\n--- want\n{}",
            got.join("\n"),
            want.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_and_grpc_with_and_without_binary_data_one_by_one_and_merged() {
    let s = TestServer::start_ready(&examples_models()).await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "sum.jsonl", &sum_corpus());
    for transport in [Transport::Rest, Transport::Grpc] {
        let addr = match transport {
            Transport::Rest => s.addr,
            Transport::Grpc => s.grpc_addr,
        };
        for binary in [false, true] {
            let what = format!("{transport:?}, binary {binary}");
            let started = Instant::now();
            let (summary, lines) = ours(addr, transport, "sum-model", &input, |a| {
                a.workers = 4;
                a.retries = 2;
                a.binary_data = binary;
            })
            .await;
            assert_lines(lines, sum_expected_one_by_one(binary), &what);
            assert_eq!(
                (
                    summary.written,
                    summary.responses,
                    summary.errors,
                    summary.dropped,
                    summary.lines
                ),
                (6, 4, 2, 0, 6),
                "{what}"
            );
            // The refused line was sent twice, a second apart.
            assert!(
                started.elapsed() >= Duration::from_secs(1),
                "{what}: no retry"
            );

            let (summary, lines) = ours(addr, transport, "sum-model", &input, |a| {
                a.workers = 2;
                a.retries = 2;
                a.batch_size = 3;
                a.binary_data = binary;
            })
            .await;
            assert_lines(
                lines,
                sum_expected_by_three(),
                &format!("{what}, batch size 3"),
            );
            assert_eq!((summary.responses, summary.errors), (3, 3), "{what}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_send_concurrently() {
    // The model answers only when three predictions wait together.
    let models = ModelsDir::new();
    models.model(
        "meet",
        json!({"implementation": "test.Rendezvous", "parameters": {"extra": {"parties": 3}}}),
    );
    let s = TestServer::start_ready(models.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<Value> = (0..6)
        .map(|i| json!({"id": format!("r{i}"), "inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [i]}]}))
        .collect();
    let input = write_input(dir.path(), "meet.jsonl", &lines);
    for transport in [Transport::Rest, Transport::Grpc] {
        let addr = if transport == Transport::Rest {
            s.addr
        } else {
            s.grpc_addr
        };
        let (summary, out) = ours(addr, transport, "meet", &input, |a| {
            a.workers = 3;
            a.timeout = 20;
        })
        .await;
        assert_eq!(summary.responses, 6, "{transport:?}: {out:?}");
        for (i, line) in by_batch_index(out).iter().enumerate() {
            assert_eq!(
                line,
                &format!(
                    r#"{{"model_name":"meet","id":"r{i}","parameters":{{"batch_index":{i},"inference_id":"r{i}"}},"outputs":[{{"name":"met","shape":[1,1],"datatype":"BOOL","parameters":{{}},"data":[true]}}]}}"#
                )
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_are_reported_with_mlservers_empty_message() {
    let models = ModelsDir::new();
    models.model(
        "slow",
        json!({"implementation": "test.Slow", "parameters": {"extra": {"predict_ms": 4000}}}),
    );
    let s = TestServer::start_ready(models.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        "slow.jsonl",
        &[
            json!({"id": "s", "inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}),
        ],
    );
    for transport in [Transport::Rest, Transport::Grpc] {
        let addr = if transport == Transport::Rest {
            s.addr
        } else {
            s.grpc_addr
        };
        let started = Instant::now();
        let (_, out) = ours(addr, transport, "slow", &input, |a| {
            a.timeout = 1;
            a.retries = 1;
        })
        .await;
        // asyncio's TimeoutError has no message: MLServer writes "".
        assert_eq!(
            out,
            vec![
                r#"{"parameters": {"batch_index": 0}, "error": {"status": "preprocessing error", "msg": ""}}"#
            ],
            "{transport:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{transport:?}: the timeout did not apply"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_headers_reach_the_model() {
    let models = ModelsDir::new();
    models.model("headers", json!({"implementation": "test.Headers"}));
    let s = TestServer::start_ready(models.path()).await;
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(
        dir.path(),
        "h.jsonl",
        &[
            json!({"id": "h1", "inputs": [{"name": "x", "shape": [1], "datatype": "INT32", "data": [1]}]}),
        ],
    );
    for transport in [Transport::Rest, Transport::Grpc] {
        let addr = if transport == Transport::Rest {
            s.addr
        } else {
            s.grpc_addr
        };
        let (_, out) = ours(addr, transport, "headers", &input, |a| {
            a.request_headers = vec!["X-Batch-Test: yes".into(), "not a header".into()];
        })
        .await;
        assert_eq!(out.len(), 1, "{transport:?}");
        let v: Value = serde_json::from_str(&out[0]).unwrap();
        let seen: Value =
            serde_json::from_str(v["outputs"][0]["data"][0].as_str().unwrap()).unwrap();
        let get = |k: &str| {
            seen.as_object()
                .unwrap()
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("x-batch-test"),
            Some(json!("yes")),
            "{transport:?}: {seen}"
        );
        // The request id travels as MLServer's client sends it.
        assert_eq!(
            get("seldon-puid"),
            Some(json!("h1")),
            "{transport:?}: {seen}"
        );
        assert_eq!(
            get("x-request-id"),
            Some(json!("h1")),
            "{transport:?}: {seen}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_fails_every_request_after_the_retries() {
    // A port nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "sum.jsonl", &sum_corpus());
    for transport in [Transport::Rest, Transport::Grpc] {
        let started = Instant::now();
        let (summary, out) = ours(addr, transport, "sum-model", &input, |a| {
            a.workers = 6;
            a.retries = 2;
        })
        .await;
        assert!(
            started.elapsed() >= Duration::from_secs(1),
            "{transport:?}: no retry"
        );
        assert_eq!((summary.written, summary.errors), (6, 6), "{transport:?}");
        for line in by_batch_index(out) {
            let v: Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["error"]["status"], "preprocessing error");
            if v["parameters"]["batch_index"] == 4 {
                assert_eq!(line, NOT_A_REQUEST);
            } else {
                let msg = v["error"]["msg"].as_str().unwrap();
                assert!(msg.contains("connect"), "{transport:?}: {msg}");
            }
        }
        // With no attempt allowed, MLServer sends nothing and writes only
        // the lines that were invalid anyway.
        let (summary, out) = ours(addr, transport, "sum-model", &input, |a| a.retries = 0).await;
        assert_eq!(out, vec![NOT_A_REQUEST.to_string()]);
        assert_eq!(summary.dropped, 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_errors_are_errors_of_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let input = write_input(dir.path(), "in.jsonl", &sum_corpus());
    let mut args = InferArgs::new("m", &input, dir.path().join("out.jsonl"));
    args.url = "http://localhost:1".into();
    let e = mlserver_infer::run_async(args).await.unwrap_err();
    assert!(
        e.to_string().contains("should not include the scheme"),
        "{e}"
    );

    let args = InferArgs::new("m", &input, dir.path().join("no/such/dir/out.jsonl"));
    let e = mlserver_infer::run_async(args).await.unwrap_err();
    assert!(e.to_string().contains("is not writable"), "{e}");

    // As MLServer, the output is created before the input is opened.
    let out = dir.path().join("empty.jsonl");
    let args = InferArgs::new("m", dir.path().join("missing.jsonl"), &out);
    let e = mlserver_infer::run_async(args).await.unwrap_err();
    assert!(e.to_string().contains("missing.jsonl"), "{e}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
}

/// Lines for the echo model, which returns what it gets: they exercise how
/// MLServer's client reads data (NumPy's conversions, nested lists, byte
/// strings cut to the last dimension), ids (missing, empty, repeated), the
/// outputs it names, and the lines that lose their batch.
fn echo_corpus() -> Vec<String> {
    let values = vec![
        json!({"id": "dup", "inputs": [{"name": "a", "shape": [1, 2], "datatype": "INT32", "data": [1, 2]}]}),
        json!({"id": "dup", "inputs": [{"name": "a", "shape": [1, 2], "datatype": "INT32", "data": [3, 4]}]}),
        json!({"id": "", "inputs": [{"name": "a", "shape": [1, 2], "datatype": "INT32", "data": [5, 6]}]}),
        json!({"id": "ünï", "inputs": [{"name": "a", "shape": [2, 2], "datatype": "INT32", "data": [[1, 2], ["3", 4.9]]}]}),
        json!({"id": "b1", "inputs": [{"name": "a", "shape": [1, 2], "datatype": "BOOL", "data": [0, "x"]}]}),
        json!({"id": "s1", "inputs": [{"name": "s", "shape": [1, 3], "datatype": "BYTES", "data": [["hello", "wo", "x"]]}]}),
        json!({"id": "s2", "inputs": [{"name": "s", "shape": [2], "datatype": "BYTES", "data": ["héllo", "w"]}]}),
        json!({"id": "f1", "inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [0.1, 1e-7]}], "outputs": [{"name": "a"}]}),
        json!({"id": "f2", "inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP64", "data": [0.1, 1e20]}], "outputs": []}),
        json!({"id": "u8", "inputs": [{"name": "a", "shape": [1], "datatype": "UINT8", "data": [300]}]}),
        json!({"id": "noin", "inputs": []}),
        json!({"id": "two", "inputs": [{"name": "a", "shape": [1, 1], "datatype": "INT64", "data": [7]}, {"name": "b", "shape": [1, 1], "datatype": "FP16", "data": [0.3]}], "parameters": {"content_type": "np", "x": 1}}),
        json!({"id": "i64", "inputs": [{"name": "a", "shape": [1, 3], "datatype": "INT64", "data": [9223372036854775807_i64, -9223372036854775807_i64, 0]}]}),
        json!({"id": "u64", "inputs": [{"name": "a", "shape": [1, 1], "datatype": "UINT64", "data": [18446744073709551615_u64]}]}),
        json!({"inputs": [{"name": "a", "shape": [1, 2], "datatype": "FP32", "data": [1, 2]}], "outputs": [{"name": "missing"}]}),
        json!({"id": "bad-shape", "inputs": [{"name": "a", "shape": [2, 3], "datatype": "FP32", "data": [1, 2]}]}),
        json!({"id": 5, "inputs": [{}], "outputs": [3]}),
    ];
    let mut lines: Vec<String> = values.iter().map(Value::to_string).collect();
    // Not JSON, and an empty line: each loses its batch in MLServer.
    lines.insert(10, "{not json".into());
    lines.insert(11, String::new());
    lines
}

fn text_corpus() -> Vec<Value> {
    vec![
        json!({"id": "t1", "inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["hello", "wörld"]}]}),
        json!({"id": "t2", "inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["abc"]}], "outputs": [{"name": "length"}]}),
        json!({"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["q"]}]}),
        json!({"id": "t4", "inputs": [{"name": "text", "shape": [1], "datatype": "INT32", "data": [1]}]}),
    ]
}

fn iris_corpus() -> Vec<Value> {
    vec![
        json!({"id": "i1", "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}),
        json!({"id": "i2", "inputs": [{"name": "input", "shape": [2, 4], "datatype": "FP32", "data": [[6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}]}),
        json!({"id": "i3", "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32", "data": [6.3, 2.5, 5.0, 1.9]}], "outputs": [{"name": "label"}]}),
        json!({"id": "i4", "inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP64", "data": [1, 2, 3, 4]}]}),
    ]
}

/// MLServer 1.7.1's `mlserver infer` with the same options.
async fn theirs(
    python: &Path,
    addr: SocketAddr,
    model: &str,
    input: &Path,
    opts: &[&str],
) -> Vec<String> {
    let output = input.with_extension(format!("theirs.{}", fastrand_suffix()));
    let mlserver = python.parent().unwrap().join("mlserver");
    let mut cmd = tokio::process::Command::new(&mlserver);
    cmd.arg("infer")
        .args(["-u", &addr.to_string(), "-m", model])
        .arg("-i")
        .arg(input)
        .arg("-o")
        .arg(&output)
        .args(opts)
        .kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("MLSERVER_INFER_") {
            cmd.env_remove(k);
        }
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("MLServer's mlserver infer did not finish in 120 s")
        .expect("run MLServer's mlserver infer");
    assert!(
        out.status.success(),
        "MLServer's mlserver infer failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    read_lines(&output)
}

/// Our options from the same command-line flags the Python run gets.
fn apply(args: &mut InferArgs, opts: &[&str]) {
    let mut it = opts.iter();
    while let Some(o) = it.next() {
        match *o {
            "-w" => args.workers = it.next().unwrap().parse().unwrap(),
            "-s" => args.batch_size = it.next().unwrap().parse().unwrap(),
            "-r" => args.retries = it.next().unwrap().parse().unwrap(),
            "-b" => args.binary_data = true,
            other => panic!("no mapping for {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlservers_own_batch_client_writes_the_same_files() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let s = TestServer::start_ready(&examples_models()).await;
    let dir = tempfile::tempdir().unwrap();
    let echo = dir.path().join("echo.jsonl");
    std::fs::write(&echo, echo_corpus().join("\n") + "\n").unwrap();
    let sum = write_input(dir.path(), "sum.jsonl", &sum_corpus());
    let text = write_input(dir.path(), "text.jsonl", &text_corpus());
    let iris = write_input(dir.path(), "iris.jsonl", &iris_corpus());
    let runs: Vec<(&str, &Path, Vec<&str>)> = vec![
        ("echo-model", &echo, vec!["-w", "1", "-s", "1", "-r", "1"]),
        (
            "echo-model",
            &echo,
            vec!["-w", "1", "-s", "2", "-b", "-r", "1"],
        ),
        ("echo-model", &echo, vec!["-w", "3", "-s", "3", "-r", "1"]),
        ("sum-model", &sum, vec!["-w", "1", "-s", "1", "-r", "2"]),
        (
            "sum-model",
            &sum,
            vec!["-w", "2", "-s", "3", "-b", "-r", "2"],
        ),
        ("text-model", &text, vec!["-w", "1", "-s", "1", "-r", "1"]),
        (
            "text-model",
            &text,
            vec!["-w", "1", "-s", "2", "-b", "-r", "1"],
        ),
        ("iris", &iris, vec!["-w", "2", "-s", "2", "-r", "1"]),
    ];
    let mut failures = Vec::new();
    for (model, input, opts) in &runs {
        let theirs_lines = theirs(&python, s.addr, model, input, opts).await;
        let (_, ours_lines) = ours(s.addr, Transport::Rest, model, input, |a| apply(a, opts)).await;
        // With one worker the order of the file is deterministic too.
        let ordered = opts.windows(2).any(|w| w == ["-w", "1"]);
        let (t, o) = if ordered {
            (normalise(&theirs_lines), normalise(&ours_lines))
        } else {
            (
                normalise(&by_batch_index(theirs_lines)),
                normalise(&by_batch_index(ours_lines)),
            )
        };
        assert!(!t.is_empty(), "{model} {opts:?}: MLServer wrote nothing");
        if t != o {
            failures.push(format!(
                "{model} {opts:?}\n--- MLServer 1.7.1\n{}\n--- ours\n{}",
                t.join("\n"),
                o.join("\n")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "output files differ:\n{}",
        failures.join("\n\n")
    );
}
