//! Hostile and careless clients against the real `mlserver` binary: gzip
//! bombs on both protocols (memory read from /proc), slow and idle
//! connections, a connection flood under a lowered descriptor limit,
//! made-up HTTP methods, integers out of range, a shutdown with a slow
//! Python model, and deadlines. Timing-free: every wait is a bound on a
//! hang, every assertion an outcome or a bound on memory.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use common::Running;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models")
}

fn infer_body(name: &str, datatype: &str, data: Value) -> Value {
    json!({"inputs": [{"name": name, "shape": [1], "datatype": datatype, "data": data}]})
}

/// A gzip stream of `mib` MiB of zeros, about 1 KiB per MiB, built from
/// one compressed MiB repeated: deflate blocks that refer only to the
/// zeros before them decode the same wherever they stand. The trailer's
/// checksum is not computed: a bomb is refused before it is read.
fn gzip_bomb(mib: usize) -> Vec<u8> {
    use flate2::{Compress, Compression, FlushCompress};
    let zeros = vec![0u8; 1 << 20];
    let mut deflate = Compress::new(Compression::best(), false);
    let mut chunk = |input: &[u8], flush| {
        let mut out = Vec::with_capacity(1 << 20);
        let before = deflate.total_in();
        deflate.compress_vec(input, &mut out, flush).unwrap();
        assert_eq!((deflate.total_in() - before) as usize, input.len());
        out
    };
    let first = chunk(&zeros, FlushCompress::Sync);
    let repeated = chunk(&zeros, FlushCompress::Sync);
    let last = chunk(&[], FlushCompress::Finish);
    let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    bomb.extend_from_slice(&first);
    for _ in 1..mib {
        bomb.extend_from_slice(&repeated);
    }
    bomb.extend_from_slice(&last);
    bomb.extend_from_slice(&[0; 8]);
    bomb
}

/// One raw gRPC call over HTTP/2 (h2, so it can send what no gRPC client
/// would: a message compressed by hand). Returns `grpc-status` and
/// `grpc-message`.
fn grpc_raw(addr: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(async move {
            let _ = connection.await;
        });
        let mut client = client.ready().await.unwrap();
        let mut request = http::Request::post(format!("http://{addr}{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let (response, mut send) = client
            .send_request(request.body(()).unwrap(), false)
            .unwrap();
        // Queued by h2, sent as the server's window allows; the server may
        // answer before it has all of it.
        let _ = send.send_data(bytes::Bytes::from(body), true);
        let response = response.await.unwrap();
        let (parts, mut body) = response.into_parts();
        let pick = |h: &http::HeaderMap| {
            (
                h.get("grpc-status").map(|v| v.to_str().unwrap().to_owned()),
                h.get("grpc-message")
                    .map(|v| v.to_str().unwrap().to_owned())
                    .unwrap_or_default(),
            )
        };
        if let (Some(status), message) = pick(&parts.headers) {
            return (status, message);
        }
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await.unwrap().unwrap_or_default();
        let (status, message) = pick(&trailers);
        (status.expect("grpc-status in the trailers"), message)
    })
}

/// A gRPC message's frame: the compressed flag, the length, the bytes.
/// A raw HTTP/2 `ServerLive` call on `client`, its body left to the test
/// (the response to come and the stream to send the body on).
fn server_live(
    client: &mut h2::client::SendRequest<bytes::Bytes>,
    grpc: &str,
) -> (h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>) {
    let request = http::Request::post(format!(
        "http://{grpc}/inference.GRPCInferenceService/ServerLive"
    ))
    .header("content-type", "application/grpc")
    .header("te", "trailers")
    .body(())
    .unwrap();
    client.send_request(request, false).unwrap()
}

fn grpc_frame(compressed: bool, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![u8::from(compressed)];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// Bombs on REST and gRPC (with `grpc_max_message_length: -1`, as
/// ModelMesh sets it) are refused having inflated 32 MiB each, not 1 GiB;
/// small requests beside two bombs still succeed; memory comes back.
#[test]
fn gzip_bombs_are_refused_with_bounded_memory() {
    let mut s = Running::start(
        &examples(),
        &[("MLSERVER_GRPC_MAX_MESSAGE_LENGTH", "-1")],
        None,
    );
    let bomb = gzip_bomb(1024);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let client = reqwest::blocking::Client::new();
    let small = infer_body("x", "INT32", json!([1]));
    // Warm up, then take the idle figure.
    for _ in 0..20 {
        let r = client
            .post(s.url("/v2/models/echo-model/infer"))
            .json(&small)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let idle_kib = s.memory_kib("VmRSS");
    let infer_url = s.url("/v2/models/echo-model/infer");
    let post_bomb = |client: &reqwest::blocking::Client| {
        let r = client
            .post(&infer_url)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(bomb.clone())
            .send()
            .unwrap();
        let status = r.status();
        let body: Value = r.json().unwrap();
        assert_eq!(status, 413, "{body}");
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("max_decompression_ratio"), "{error}");
    };
    post_bomb(&client);
    // One bomb inflates 32 MiB (max_decompression_ratio 32 times its 1 MB)
    // before it is refused; before, 1 GiB.
    let one_kib = s.memory_kib("VmHWM");
    eprintln!("idle RSS {idle_kib} KiB, peak after one bomb {one_kib} KiB");
    assert!(
        one_kib.saturating_sub(idle_kib) < 64 * 1024,
        "one bomb took RSS from {idle_kib} KiB to {one_kib} KiB"
    );
    post_bomb(&client);
    // Two at once, with small requests beside them.
    std::thread::scope(|scope| {
        let bombs: Vec<_> = (0..2)
            .map(|_| scope.spawn(|| post_bomb(&reqwest::blocking::Client::new())))
            .collect();
        for _ in 0..20 {
            let r = client.post(&infer_url).json(&small).send().unwrap();
            assert_eq!(r.status(), 200);
        }
        for b in bombs {
            b.join().unwrap();
        }
    });
    for _ in 0..2 {
        let (status, message) = grpc_raw(
            &s.grpc,
            "/inference.GRPCInferenceService/ModelInfer",
            &[("grpc-encoding", "gzip")],
            grpc_frame(true, &bomb),
        );
        assert_eq!(status, "8", "RESOURCE_EXHAUSTED expected: {message}");
        assert!(message.contains("max_decompression_ratio"), "{message}");
    }
    // A gzip'd message that is fine still works, through tonic's client.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use mlserver_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
        let mut c = GrpcInferenceServiceClient::connect(format!("http://{}", s.grpc))
            .await
            .unwrap()
            .send_compressed(tonic::codec::CompressionEncoding::Gzip);
        let request = mlserver_proto::convert::encode_infer_request(
            "echo-model",
            None,
            mlserver_types::InferenceRequest::new(vec![mlserver_types::Tensor::new(
                "x",
                vec![1000],
                vec![7i32; 1000],
            )
            .unwrap()]),
            false,
        );
        let reply = c.model_infer(request).await.unwrap().into_inner();
        assert_eq!(reply.outputs.len(), 1);
    });
    let peak_kib = s.memory_kib("VmHWM");
    eprintln!("idle RSS {idle_kib} KiB, peak {peak_kib} KiB");
    // Six bombs, two at once, freed memory handed back after a few seconds:
    // a few times 32 MiB; before, one bomb took RSS to 1.7 GB.
    assert!(
        peak_kib.saturating_sub(idle_kib) < 192 * 1024,
        "peak RSS {peak_kib} KiB, idle {idle_kib} KiB"
    );
    // The memory is given back (jemalloc's background threads): within 2x of idle
    // in 30 s.
    s.wait_memory_at_most("VmRSS", 2 * idle_kib, "the bombs");
    s.terminate(Duration::from_secs(60));
}

/// A burst of large tensors leaves no heap behind once the server is idle:
/// the async workers that served it go to sleep with the burst's pages
/// freed into their arenas, and the allocator must hand those back without
/// them (with mimalloc and no purge of our own, 34 MiB stayed resident for
/// as long as they slept).
#[test]
fn a_burst_of_large_tensors_is_handed_back_once_idle() {
    let mut s = Running::start(&examples(), &[], None);
    let url = s.url("/v2/models/echo-model/infer");
    let client = reqwest::blocking::Client::new();
    let small = infer_body("x", "INT32", json!([1]));
    for _ in 0..20 {
        let r = client.post(&url).json(&small).send().unwrap();
        assert_eq!(r.status(), 200);
    }
    drop(client);
    let idle_kib = s.memory_kib("RssAnon");
    let values: Vec<f32> = (0..65536).map(|i| (i % 997) as f32 - 99.5).collect();
    let large = serde_json::to_vec(&json!({"inputs": [{
        "name": "x", "shape": [1, 65536], "datatype": "FP32", "data": values}]}))
    .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                let client = reqwest::blocking::Client::new();
                for _ in 0..25 {
                    let r = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(large.clone())
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().unwrap();
                }
            });
        }
    });
    let burst_kib = s.memory_kib("RssAnon");
    eprintln!("heap RSS idle {idle_kib} KiB, after the burst {burst_kib} KiB");
    // jemalloc's decay is seconds; the bound is on a hang, not a speed.
    s.wait_memory_at_most("RssAnon", 2 * idle_kib + 2048, "the burst");
    s.terminate(Duration::from_secs(60));
}

/// Reads until the peer closes (0 or an error) or `bound` passes.
fn closed_within(stream: &mut TcpStream, bound: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < bound {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
    }
    false
}

/// Slow headers, bodies that never end, idle keep-alive and idle HTTP/2
/// connections are all closed by their timeouts (lowered here to 1 s).
#[test]
fn slow_and_idle_connections_are_closed() {
    let mut s = Running::start(
        &examples(),
        &[
            ("MLSERVER_HTTP_HEADER_TIMEOUT", "1"),
            ("MLSERVER_HTTP_BODY_TIMEOUT", "1"),
            ("MLSERVER_HTTP_KEEP_ALIVE_TIMEOUT", "1"),
            ("MLSERVER_HTTP2_IDLE_TIMEOUT", "1"),
        ],
        None,
    );
    let bound = Duration::from_secs(30);
    // One header byte at a time, never finishing.
    let mut slow = TcpStream::connect(&s.http).unwrap();
    slow.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let trickle = drip(&slow, b"X", 60, Duration::from_millis(500));
    assert!(closed_within(&mut slow, bound), "slow headers kept open");
    trickle.join().unwrap();

    // A body shorter than its Content-Length: answered and closed.
    let mut unfinished = TcpStream::connect(&s.http).unwrap();
    unfinished
        .write_all(
            b"POST /v2/models/echo-model/infer HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"inputs\"",
        )
        .unwrap();
    let mut answer = Vec::new();
    unfinished.set_read_timeout(Some(bound)).unwrap();
    let _ = unfinished.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        answer.contains("timed out") || answer.contains("time"),
        "{answer}"
    );

    // An idle keep-alive connection after a request.
    let mut idle = TcpStream::connect(&s.http).unwrap();
    idle.write_all(b"GET /v2/health/live HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(closed_within(&mut idle, bound), "idle keep-alive kept open");

    // An idle HTTP/2 (gRPC) connection after a call.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&s.grpc).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        let connection = tokio::spawn(connection);
        let mut client = client.ready().await.unwrap();
        let (response, mut send) = server_live(&mut client, &s.grpc);
        send.send_data(bytes::Bytes::from(grpc_frame(false, &[])), true)
            .unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        while body.data().await.is_some() {}
        tokio::time::timeout(bound, connection)
            .await
            .expect("the idle HTTP/2 connection was kept open")
            .unwrap()
            .ok();
    });
    // The server still serves.
    let r = reqwest::blocking::get(s.url("/v2/health/live")).unwrap();
    assert_eq!(r.status(), 200);
    s.terminate(Duration::from_secs(60));
}

/// With 256 descriptors and connections held open past them, accepting
/// fails (EMFILE): the server backs off, says so at most once a second,
/// and answers again by itself once the flood ends.
#[test]
fn a_connection_flood_passes_and_the_server_recovers() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        mlserver_tests::missing_real_part("prlimit", "util-linux's prlimit is not installed");
        return;
    }
    let mut s = Running::start(
        &examples(),
        &[("MLSERVER_HTTP_HEADER_TIMEOUT", "120")],
        Some(256),
    );
    assert!(
        s.log_lines()
            .iter()
            .any(|l| l.contains("the open files limit is 256")),
        "no warning about the descriptor limit:\n{}",
        s.log_lines().join("\n")
    );
    let started = Instant::now();
    let flood: Vec<TcpStream> = (0..400)
        .map(|_| TcpStream::connect(&s.http).unwrap())
        .collect();
    // Health checks cannot get through while the flood holds every slot.
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let during = client.get(s.url("/v2/health/live")).send();
    drop(flood);
    // Once it ends, the server answers again by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if client
            .get(s.url("/v2/health/live"))
            .send()
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not recover after the flood"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for _ in 0..5 {
        let r = client.get(s.url("/v2/health/ready")).send().unwrap();
        assert_eq!(r.status(), 200);
    }
    let elapsed = started.elapsed().as_secs();
    let warnings = s
        .log_lines()
        .iter()
        .filter(|l| l.contains("cannot accept connections"))
        .count() as u64;
    assert!(
        during.is_err() || warnings > 0,
        "the flood never exhausted the descriptors"
    );
    assert!(warnings >= 1, "EMFILE was not logged");
    assert!(
        warnings <= elapsed + 2,
        "{warnings} warnings in {elapsed} s: not rate-limited"
    );
    s.terminate(Duration::from_secs(60));
}

/// Connections to the gRPC port that never finish the HTTP/2 preface
/// (silent, or a few bytes of it) are closed at the handshake timeout; a
/// real client, which sends the preface at once, is not affected.
#[test]
fn grpc_connections_without_a_preface_are_closed() {
    let mut s = Running::start(
        &examples(),
        &[("MLSERVER_CONNECTION_HANDSHAKE_TIMEOUT", "1")],
        None,
    );
    let bound = Duration::from_secs(30);
    let mut silent: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(&s.grpc).unwrap())
        .collect();
    let mut partial = TcpStream::connect(&s.grpc).unwrap();
    partial.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    assert!(
        closed_within(&mut partial, bound),
        "a partial preface kept open"
    );
    for (i, connection) in silent.iter_mut().enumerate() {
        assert!(
            closed_within(connection, bound),
            "silent connection {i} kept open"
        );
    }
    // A real gRPC client, after the timeout has passed for the others.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&s.grpc).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        // Past the handshake timeout: the preface went, the connection stays.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let mut client = client.ready().await.unwrap();
        let (response, mut send) = server_live(&mut client, &s.grpc);
        send.send_data(bytes::Bytes::from(grpc_frame(false, &[])), true)
            .unwrap();
        assert_eq!(response.await.unwrap().status(), 200);
    });
    s.terminate(Duration::from_secs(60));
}

/// Bodies that keep arriving, but too slowly: a REST body dripped a byte
/// at a time (the silence rule never fires) is cut by the minimum rate; a
/// unary gRPC call that sends its headers and no message, or half a
/// message, ends with DEADLINE_EXCEEDED; the server serves on.
#[test]
fn trickled_bodies_and_messageless_grpc_calls_are_cut() {
    let mut s = Running::start(
        &examples(),
        &[
            ("MLSERVER_HTTP_BODY_TIMEOUT", "1"),
            ("MLSERVER_HTTP_BODY_MIN_RATE", "1000"),
        ],
        None,
    );
    let bound = Duration::from_secs(30);
    let mut drip_body = declared_body(&s.http, 100_000, b"");
    let dripping = drip(&drip_body, b" ", 300, Duration::from_millis(100));
    let mut answer = Vec::new();
    drip_body.set_read_timeout(Some(bound)).unwrap();
    let _ = drip_body.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("slower than 1000 bytes/s"), "{answer}");
    dripping.join().unwrap();

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(&s.grpc).await.unwrap();
        let (client, connection) = h2::client::handshake(tcp).await.unwrap();
        tokio::spawn(connection);
        let call = |partial: Option<Vec<u8>>| {
            let client = client.clone();
            let grpc = s.grpc.clone();
            async move {
                let mut client = client.ready().await.unwrap();
                let (response, mut send) = server_live(&mut client, &grpc);
                if let Some(bytes) = partial {
                    send.send_data(bytes::Bytes::from(bytes), false).unwrap();
                }
                let response = tokio::time::timeout(bound, response)
                    .await
                    .expect("answered within the bound")
                    .unwrap();
                let status = match response.headers().get("grpc-status") {
                    Some(code) => code.to_str().unwrap().to_owned(),
                    None => {
                        let mut body = response.into_body();
                        while body.data().await.is_some() {}
                        let trailers = body.trailers().await.unwrap().unwrap();
                        trailers["grpc-status"].to_str().unwrap().to_owned()
                    }
                };
                drop(send);
                status
            }
        };
        // DEADLINE_EXCEEDED is 4.
        assert_eq!(call(None).await, "4", "headers and no message");
        let half = grpc_frame(false, &[0u8; 64])[..20].to_vec();
        assert_eq!(call(Some(half)).await, "4", "half a message");
    });
    let r = reqwest::blocking::get(s.url("/v2/health/live")).unwrap();
    assert_eq!(r.status(), 200);
    s.terminate(Duration::from_secs(60));
}

/// A unary call carries one message: a second one ends the call with
/// INTERNAL (tonic would decode and drop it, grpcio ignores it); one
/// message, split across frames or not, is answered; a stream takes many.
#[test]
fn a_second_message_on_a_unary_call_is_refused() {
    let mut s = Running::start(&examples(), &[], None);
    let live = "/inference.GRPCInferenceService/ServerLive";
    let one = grpc_frame(false, &[]);
    assert_eq!(grpc_raw(&s.grpc, live, &[], one.clone()).0, "0");
    let mut two = one.clone();
    two.extend(grpc_frame(false, &[]));
    let (status, message) = grpc_raw(&s.grpc, live, &[], two);
    // INTERNAL is 13.
    assert_eq!(status, "13", "{message}");
    // grpc-message is percent-encoded.
    assert!(
        message.replace("%20", " ").contains("one request message"),
        "{message}"
    );
    // The same on ModelInfer, with a real request first.
    let request = mlserver_proto::inference::ModelInferRequest {
        model_name: "sum-model".into(),
        ..Default::default()
    };
    let mut body = grpc_frame(false, &prost::Message::encode_to_vec(&request));
    body.extend(grpc_frame(false, &prost::Message::encode_to_vec(&request)));
    let (status, _) = grpc_raw(
        &s.grpc,
        "/inference.GRPCInferenceService/ModelInfer",
        &[],
        body,
    );
    assert_eq!(status, "13");
    let r = reqwest::blocking::get(s.url("/v2/health/live")).unwrap();
    assert_eq!(r.status(), 200);
    s.terminate(Duration::from_secs(60));
}

/// Writes `byte` on a clone of `stream` `times` times, `every` apart, on a
/// thread of its own, until the server closes the connection.
fn drip(
    stream: &TcpStream,
    byte: &'static [u8],
    times: usize,
    every: Duration,
) -> std::thread::JoinHandle<()> {
    let mut stream = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..times {
            if stream.write_all(byte).is_err() {
                return;
            }
            std::thread::sleep(every);
        }
    })
}

/// A REST request head declaring `length` body bytes, and `sent` of them.
fn declared_body(http: &str, length: usize, sent: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(http).unwrap();
    stream
        .write_all(
            format!(
                "POST /v2/models/echo-model/infer HTTP/1.1\r\nHost: x\r\n\
                 Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    stream.write_all(sent).unwrap();
    stream
}

/// The status line of the answer on `stream`, if one comes within `bound`.
fn status_within(stream: &mut TcpStream, bound: Duration) -> Option<String> {
    stream.set_read_timeout(Some(bound)).unwrap();
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b"\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => got.push(byte[0]),
            _ => return None,
        }
    }
    Some(String::from_utf8_lossy(&got).trim().to_owned())
}

/// With a 64 MiB budget for requests in flight, a 24 MiB REST body being
/// received holds 48 MiB (the body and its tensors): a second one is
/// refused at once with 503, before a byte of its body is sent, and a gRPC
/// call larger than what is left with RESOURCE_EXHAUSTED, and gzip'd
/// bodies and messages that may inflate past it, while small requests are
/// answered; once the first is gone, a large body is taken again.
#[test]
fn the_memory_budget_refuses_at_once_what_it_cannot_hold() {
    let mut s = Running::start(&examples(), &[("MLSERVER_MEMORY_BUDGET", "67108864")], None);
    assert!(s
        .log_lines()
        .iter()
        .any(|l| l.contains("memory budget for requests in flight: 64 MiB")));
    let big = 24 << 20;
    // Two heads at once: whichever the server takes second is refused at
    // once; the other waits for its body.
    let mut a = declared_body(&s.http, big, b"{");
    let mut b = declared_body(&s.http, big, b"{");
    let (mut waiting, refused) = match status_within(&mut a, Duration::from_secs(2)) {
        Some(status) => (b, status),
        None => {
            let status = status_within(&mut b, Duration::from_secs(30)).expect("one is refused");
            (a, status)
        }
    };
    assert_eq!(refused, "HTTP/1.1 503 Service Unavailable");
    assert_eq!(
        status_within(&mut waiting, Duration::from_millis(200)),
        None
    );

    let small = reqwest::blocking::Client::new()
        .post(s.url("/v2/models/sum-model/infer"))
        .json(
            &json!({"inputs": [{"name": "input", "shape": [1, 3], "datatype": "FP32",
                                  "data": [1, 2, 3]}]}),
        )
        .send()
        .unwrap();
    assert_eq!(small.status(), 200);

    let tensor = mlserver_proto::inference::ModelInferRequest {
        model_name: "echo-model".into(),
        raw_input_contents: vec![vec![0u8; 10 << 20].into()],
        ..Default::default()
    };
    let (status, message) = grpc_raw(
        &s.grpc,
        "/inference.GRPCInferenceService/ModelInfer",
        &[],
        grpc_frame(false, &prost::Message::encode_to_vec(&tensor)),
    );
    // RESOURCE_EXHAUSTED is 8.
    assert_eq!(status, "8", "{message}");
    assert!(message.contains("memory%20budget"), "{message}");
    // A small gzip'd body may inflate to 16 MiB: charged before inflating,
    // it does not fit what is left.
    let gzipped = reqwest::blocking::Client::new()
        .post(s.url("/v2/models/sum-model/infer"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip_bomb(1))
        .send()
        .unwrap();
    assert_eq!(gzipped.status(), 503);
    let text = gzipped.text().unwrap();
    assert!(text.contains("memory budget"), "{text}");
    // The same for a gzip'd gRPC message.
    let (status, message) = grpc_raw(
        &s.grpc,
        "/inference.GRPCInferenceService/ModelInfer",
        &[("grpc-encoding", "gzip")],
        grpc_frame(true, &gzip_bomb(1)),
    );
    assert_eq!(status, "8", "{message}");
    assert!(message.contains("memory%20budget"), "{message}");

    // The first gives up: its charge goes back, and a large body is taken
    // (and read: it is not JSON, so 400).
    drop(waiting);
    let mut answer = None;
    for _ in 0..100 {
        let mut again = declared_body(&s.http, big, &vec![b' '; big]);
        answer = status_within(&mut again, Duration::from_secs(30));
        if answer.as_deref() != Some("HTTP/1.1 503 Service Unavailable") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(answer.as_deref(), Some("HTTP/1.1 400 Bad Request"));
    s.terminate(Duration::from_secs(60));
}

/// A memory cgroup of its own (v2, else v1) for a server under test, with
/// `limit` bytes; removed when dropped.
struct MemoryCgroup {
    dir: PathBuf,
}

impl MemoryCgroup {
    fn create(limit: u64) -> Result<Self, String> {
        let groups = std::fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
        let name = format!("mlserver-test-{}", std::process::id());
        for line in groups.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let path = path.trim_end_matches('/');
            let (dir, limit_file) = match controllers {
                "" if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() => {
                    (format!("/sys/fs/cgroup{path}/{name}"), "memory.max")
                }
                c if c.split(',').any(|c| c == "memory") => (
                    format!("/sys/fs/cgroup/memory{path}/{name}"),
                    "memory.limit_in_bytes",
                ),
                _ => continue,
            };
            let dir = PathBuf::from(dir);
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let group = MemoryCgroup { dir };
            std::fs::write(group.dir.join(limit_file), limit.to_string())
                .map_err(|e| format!("{limit_file}: {e}"))?;
            return Ok(group);
        }
        Err("no memory cgroup in /proc/self/cgroup".into())
    }

    /// A command that joins the group, then runs `program`.
    fn command(&self, program: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "echo $$ > {}/cgroup.procs && exec \"$0\" \"$@\"",
            self.dir.display()
        ));
        c.arg(program);
        c
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // Empty once the server has exited.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The defaults under KServe's 2 GiB memory limit: four bodies of the
/// default 512 MiB limit and sixteen 4 MB gzip bombs at once leave the
/// server alive (the budget, 3/5 of the limit, takes one large body at a
/// time and refuses the rest with 503 at once), and every small request
/// beside them is answered.
#[test]
fn under_a_2_gib_cgroup_large_bodies_and_bombs_leave_room_for_small_requests() {
    let what = "the memory budget test under a 2 GiB cgroup";
    let group = match MemoryCgroup::create(2 << 30) {
        Ok(g) => g,
        Err(why) => {
            mlserver_tests::missing_real_part(what, &format!("cannot make a memory cgroup: {why}"));
            return;
        }
    };
    let mut command = group.command(env!("CARGO_BIN_EXE_mlserver"));
    command.arg("start").arg(examples());
    let mut s = Running::spawn(&mut command);
    assert!(
        s.log_lines()
            .iter()
            .any(|l| l.contains("memory budget for requests in flight: 1229 MiB")),
        "{:?}",
        s.log_lines()
    );
    let limit = 512 << 20;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let small = std::thread::spawn({
        let url = s.url("/v2/models/sum-model/infer");
        let done = done.clone();
        move || {
            let client = reqwest::blocking::Client::new();
            let mut answered = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || answered < 5 {
                let r = client
                    .post(&url)
                    .json(&json!({"inputs": [{"name": "input", "shape": [1, 3],
                                              "datatype": "FP32", "data": [1, 2, 3]}]}))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 200, "a small request beside the flood");
                answered += 1;
            }
            answered
        }
    });
    let bodies: Vec<_> = (0..4)
        .map(|_| {
            let http = s.http.clone();
            std::thread::spawn(move || {
                let mut stream = declared_body(&http, limit, b"");
                let chunk = vec![b' '; 1 << 20];
                for _ in 0..limit >> 20 {
                    // A refused body is answered and closed before it is sent.
                    if stream.write_all(&chunk).is_err() {
                        break;
                    }
                }
                status_within(&mut stream, Duration::from_secs(120))
            })
        })
        .collect();
    let bomb = gzip_bomb(4000);
    let bombs: Vec<_> = (0..16)
        .map(|_| {
            let url = s.url("/v2/models/sum-model/infer");
            let bomb = bomb.clone();
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(url)
                    .header("content-type", "application/json")
                    .header("content-encoding", "gzip")
                    .body(bomb)
                    .send()
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    let mut refused = 0;
    for b in bodies {
        let status = b.join().unwrap();
        eprintln!("512 MiB body: {status:?}");
        refused += usize::from(status.as_deref() == Some("HTTP/1.1 503 Service Unavailable"));
        assert!(
            matches!(
                status.as_deref(),
                Some("HTTP/1.1 400 Bad Request") | Some("HTTP/1.1 503 Service Unavailable")
            ),
            "a 512 MiB body is read (and is not JSON) or refused: {status:?}"
        );
    }
    for b in bombs {
        let status = b.join().unwrap().expect("answered");
        eprintln!("bomb: {status}");
        assert!(matches!(status, 413 | 503), "a bomb: {status}");
    }
    // Their heads arrive together: the budget takes one at a time.
    assert!(refused >= 1, "no 512 MiB body was refused");
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(small.join().unwrap() >= 5);
    assert_eq!(
        reqwest::blocking::get(s.url("/v2/health/live"))
            .unwrap()
            .status(),
        200
    );
    s.terminate(Duration::from_secs(60));
    drop(group);
}

/// Made-up HTTP methods add no label values: a method a route does not
/// have is a 405 that is not counted (as under MLServer), and any method
/// that is counted goes as `other` when it is not a standard one.
#[test]
fn made_up_methods_do_not_add_label_values() {
    let mut s = Running::start(&examples(), &[], None);
    let client = reqwest::blocking::Client::new();
    for i in 0..50 {
        let method = reqwest::Method::from_bytes(format!("MADEUP{i}").as_bytes()).unwrap();
        let r = client
            .request(method, s.url("/v2/models/echo-model"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 405);
    }
    let scrape = s.scrape();
    assert!(!scrape.contains("MADEUP"), "{scrape}");
    assert!(!scrape.contains(r#"status_code="405""#), "{scrape}");
    s.terminate(Duration::from_secs(60));
}

/// Every integer type refuses values outside its range, INT64 and UINT64
/// included (JSON), and the narrow types in gRPC's typed contents.
#[test]
fn integers_out_of_range_are_bad_requests() {
    let mut s = Running::start(&examples(), &[], None);
    let client = reqwest::blocking::Client::new();
    let cases = [
        ("INT8", "128"),
        ("INT8", "-129"),
        ("INT16", "32768"),
        ("INT32", "2147483648"),
        ("INT64", "9223372036854775808"),
        ("INT64", "-9223372036854775809"),
        ("UINT8", "256"),
        ("UINT16", "-1"),
        ("UINT32", "4294967296"),
        ("UINT64", "18446744073709551616"),
        ("UINT64", "-1"),
    ];
    // One element written as the text `value` (JSON numbers beyond i64
    // and u64 cannot be built any other way).
    let post_one_value = |datatype: &str, value: &str| {
        let body = format!(
            r#"{{"inputs": [{{"name": "x", "shape": [1], "datatype": "{datatype}", "data": [{value}]}}]}}"#
        );
        let r = client
            .post(s.url("/v2/models/echo-model/infer"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = r.status();
        (status, r.text().unwrap())
    };
    for (datatype, value) in cases {
        let (status, text) = post_one_value(datatype, value);
        assert_eq!(status, 400, "{datatype} {value}: {text}");
        assert!(text.contains("\"error\""), "{text}");
    }
    // The extremes themselves are fine.
    for (datatype, value) in [
        ("INT64", "-9223372036854775808"),
        ("INT64", "9223372036854775807"),
        ("UINT64", "18446744073709551615"),
    ] {
        let (status, text) = post_one_value(datatype, value);
        assert_eq!(status, 200, "{datatype} {value}: {text}");
        assert!(text.contains(value), "{text}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use mlserver_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
        use mlserver_proto::inference::{
            model_infer_request, InferTensorContents, ModelInferRequest,
        };
        let mut c = GrpcInferenceServiceClient::connect(format!("http://{}", s.grpc))
            .await
            .unwrap();
        let cases = [
            (
                "INT8",
                InferTensorContents {
                    int_contents: vec![300],
                    ..Default::default()
                },
            ),
            (
                "INT16",
                InferTensorContents {
                    int_contents: vec![-40000],
                    ..Default::default()
                },
            ),
            (
                "UINT8",
                InferTensorContents {
                    uint_contents: vec![256],
                    ..Default::default()
                },
            ),
            (
                "UINT16",
                InferTensorContents {
                    uint_contents: vec![70000],
                    ..Default::default()
                },
            ),
        ];
        for (datatype, contents) in cases {
            let request = ModelInferRequest {
                model_name: "echo-model".into(),
                inputs: vec![model_infer_request::InferInputTensor {
                    name: "x".into(),
                    datatype: datatype.into(),
                    shape: vec![1],
                    contents: Some(contents),
                    ..Default::default()
                }],
                ..Default::default()
            };
            let e = c.model_infer(request).await.unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{datatype}: {e:?}");
        }
    });
    s.terminate(Duration::from_secs(60));
}

/// A models folder with the slow Python model, as `name`, with `settings`
/// merged into its model-settings.
fn slow_model_folder(name: &str, settings: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join(name);
    std::fs::create_dir_all(&model).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/models/slow.py"),
        model.join("slow.py"),
    )
    .unwrap();
    let mut ms = json!({"name": name, "implementation": "slow.Slow"});
    ms.as_object_mut()
        .unwrap()
        .extend(settings.as_object().unwrap().clone());
    std::fs::write(model.join("model-settings.json"), ms.to_string()).unwrap();
    dir
}

fn wait_for_marker(marker: &Path, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let n = std::fs::read_to_string(marker)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if n >= count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the Python call was not cancelled ({n} of {count} cancellations)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM with a slow Python request in flight: the request is cut with
/// a 503 near the end of `shutdown_timeout`, the Python call is
/// cancelled without a traceback, and the process exits within the grace.
#[test]
fn shutdown_cuts_a_slow_python_request_with_503() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let dir = slow_model_folder("slow", json!({}));
    let marker = dir.path().join("cancelled.txt");
    let mut s = Running::start(
        dir.path(),
        &[
            ("MLSERVER_PYTHON", python.to_str().unwrap()),
            ("MLSERVER_SHUTDOWN_TIMEOUT", "6"),
            ("SLOW_MODEL_MARKER", marker.to_str().unwrap()),
        ],
        None,
    );
    let url = s.url("/v2/models/slow/infer");
    let request = std::thread::spawn(move || {
        let r = reqwest::blocking::Client::new()
            .post(url)
            .json(&infer_body("seconds", "FP64", json!([120])))
            .timeout(Duration::from_secs(60))
            .send()
            .unwrap();
        let status = r.status();
        (status, r.text().unwrap())
    });
    std::thread::sleep(Duration::from_millis(500));
    let took = s.terminate(Duration::from_secs(30));
    let (status, text) = request.join().unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("shutting down"), "{text}");
    assert!(took < Duration::from_secs(20), "exit took {took:?}");
    wait_for_marker(&marker, 1);
    let log = s.log_lines().join("\n");
    assert!(!log.contains("Traceback"), "{log}");
    assert!(!log.contains("CancelledError"), "{log}");
}

/// `inference_timeout` (the server's, and a model's own) answers 504 and
/// cancels the Python call; a gRPC `grpc-timeout` does the same with
/// DEADLINE_EXCEEDED.
#[test]
fn deadlines_answer_504_and_cancel_python_work() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let dir = slow_model_folder("slow", json!({}));
    // A second model with a shorter timeout of its own.
    let own = dir.path().join("quick");
    std::fs::create_dir_all(&own).unwrap();
    std::fs::copy(dir.path().join("slow/slow.py"), own.join("slow.py")).unwrap();
    std::fs::write(
        own.join("model-settings.json"),
        json!({"name": "quick", "implementation": "slow.Slow", "inference_timeout": 0.5})
            .to_string(),
    )
    .unwrap();
    let marker = dir.path().join("cancelled.txt");
    let mut s = Running::start(
        dir.path(),
        &[
            ("MLSERVER_PYTHON", python.to_str().unwrap()),
            ("MLSERVER_INFERENCE_TIMEOUT", "2"),
            ("SLOW_MODEL_MARKER", marker.to_str().unwrap()),
        ],
        None,
    );
    let client = reqwest::blocking::Client::new();
    let infer = |model: &str, seconds: f64| {
        let r = client
            .post(s.url(&format!("/v2/models/{model}/infer")))
            .json(&infer_body("seconds", "FP64", json!([seconds])))
            .timeout(Duration::from_secs(60))
            .send()
            .unwrap();
        let status = r.status();
        (status, r.text().unwrap())
    };
    let (status, text) = infer("slow", 0.1);
    assert_eq!(status, 200, "{text}");
    let (status, text) = infer("slow", 60.0);
    assert_eq!(status, 504, "{text}");
    assert!(
        text.contains("\"error\"") && text.contains("cancelled"),
        "{text}"
    );
    wait_for_marker(&marker, 1);
    // The model's own 0.5 s, under the server's 2 s.
    let (status, text) = infer("quick", 1.5);
    assert_eq!(status, 504, "{text}");
    wait_for_marker(&marker, 2);

    // The caller's grpc-timeout (sent raw: tonic's client would give up
    // by itself and never show the server's answer).
    let request = mlserver_proto::convert::encode_infer_request(
        "slow",
        None,
        mlserver_types::InferenceRequest::new(vec![mlserver_types::Tensor::new(
            "seconds",
            vec![1],
            vec![1.5f64],
        )
        .unwrap()]),
        false,
    );
    let (status, message) = grpc_raw(
        &s.grpc,
        "/inference.GRPCInferenceService/ModelInfer",
        &[("grpc-timeout", "300m")],
        grpc_frame(false, &prost::Message::encode_to_vec(&request)),
    );
    assert_eq!(status, "4", "DEADLINE_EXCEEDED expected: {message}");
    wait_for_marker(&marker, 3);
    // Still serving, and the worker is fine.
    let (status, text) = infer("slow", 0.1);
    assert_eq!(status, 200, "{text}");
    let log = s.log_lines().join("\n");
    assert!(!log.contains("Traceback"), "{log}");
    s.terminate(Duration::from_secs(60));
}
