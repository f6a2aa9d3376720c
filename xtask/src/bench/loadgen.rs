//! The load generator: closed loop, fixed concurrency, warm-up then a fixed
//! measured window; keep-alive HTTP/1.1 (reqwest's pool) or gRPC (tonic,
//! a few HTTP/2 channels). Every response's status is checked and a sample
//! of responses is checked for the right values. The same code drives every
//! server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use mlserver_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use mlserver_proto::inference::model_infer_request::InferInputTensor;
use mlserver_proto::inference::{InferTensorContents, ModelInferRequest};
use serde_json::Value;
use tonic::transport::Channel;

use super::procfs;
use super::stats::percentile;

const HEADER_LEN: &str = "inference-header-content-length";
/// Every `VALIDATE_EVERY`-th response of each connection (and the first) is
/// checked for the right values.
const VALIDATE_EVERY: u64 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    RestJson,
    RestBinary,
    GrpcRaw,
    GrpcTyped,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Transport::RestJson => "REST JSON",
            Transport::RestBinary => "REST binary extension",
            Transport::GrpcRaw => "gRPC raw_input_contents",
            Transport::GrpcTyped => "gRPC typed contents",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    Sum,
    Echo,
}

impl Model {
    pub fn name(self) -> &'static str {
        match self {
            Model::Sum => "sum-model",
            Model::Echo => "echo-model",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub name: &'static str,
    pub transport: Transport,
    pub model: Model,
    /// FP32 elements in the `[1, n]` input.
    pub n: usize,
    pub concurrency: usize,
}

impl Scenario {
    pub fn describe(&self) -> String {
        format!(
            "{}, {} FP32 [1,{}], concurrency {}",
            self.transport.label(),
            self.model.name(),
            self.n,
            self.concurrency
        )
    }
}

pub fn scenarios() -> Vec<Scenario> {
    use Model::*;
    use Transport::*;
    let s = |name, transport, model, n, concurrency| Scenario {
        name,
        transport,
        model,
        n,
        concurrency,
    };
    vec![
        s("sum16-rest-json-c1", RestJson, Sum, 16, 1),
        s("sum16-rest-json-c32", RestJson, Sum, 16, 32),
        s("sum16-grpc-raw-c1", GrpcRaw, Sum, 16, 1),
        s("sum16-grpc-raw-c32", GrpcRaw, Sum, 16, 32),
        s("echo64k-rest-json-c8", RestJson, Echo, 65536, 8),
        s("echo64k-rest-binary-c8", RestBinary, Echo, 65536, 8),
        s("echo64k-grpc-raw-c8", GrpcRaw, Echo, 65536, 8),
        s("echo64k-grpc-typed-c8", GrpcTyped, Echo, 65536, 8),
    ]
}

/// Where a server listens.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// `http://127.0.0.1:PORT`
    pub http: String,
    /// `http://127.0.0.1:PORT`
    pub grpc: String,
}

/// One measured window.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub requests: u64,
    pub errors: u64,
    pub invalid: u64,
    pub first_problem: Option<String>,
    pub rps: f64,
    pub p50: Duration,
    pub p99: Duration,
    /// Server CPU (utime + stime of its process tree) per request, µs.
    pub cpu_us_per_req: f64,
    /// Largest RSS of the server's process tree seen in the window.
    pub peak_rss: u64,
    /// Instructions the server executed per request (user space, counted
    /// by callgrind), with `--callgrind`.
    pub instructions_per_req: Option<f64>,
}

/// The request of a scenario, prepared once, and what must come back.
pub struct Payload {
    /// The model the request goes to.
    model: String,
    /// The output whose values are checked.
    output: String,
    expected: Vec<f32>,
    body: Bytes,
    header_len: Option<usize>,
    grpc: ModelInferRequest,
}

impl Payload {
    /// A REST JSON request to `model` whose output `output` must hold
    /// `expected` (compared as FP32 values, whatever the datatype).
    pub fn rest_json(model: &str, body: Bytes, output: &str, expected: Vec<f32>) -> Payload {
        Payload {
            model: model.to_owned(),
            output: output.to_owned(),
            expected,
            body,
            header_len: None,
            grpc: ModelInferRequest::default(),
        }
    }

    /// The REST body.
    #[cfg(test)]
    pub fn body(&self) -> &[u8] {
        &self.body
    }
}

/// The request of one of the built-in scenarios.
pub fn payload(s: &Scenario) -> Payload {
    let input: Vec<f32> = match s.model {
        // Exact in FP32 and short in JSON.
        Model::Sum => (1..=s.n).map(|i| i as f32 * 0.25).collect(),
        Model::Echo => (0..s.n).map(|i| (i % 997) as f32 * 0.5 - 100.0).collect(),
    };
    let expected = match s.model {
        Model::Sum => vec![input.iter().sum()],
        Model::Echo => input.clone(),
    };
    let raw: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    // Keys in the order real clients send them (tritonclient, MLServer's
    // pydantic types): name, shape, datatype, then parameters or data.
    let tensor_head = format!(r#"{{"name":"input","shape":[1,{}],"datatype":"FP32""#, s.n);
    let (body, header_len) = match s.transport {
        Transport::RestBinary => {
            let head = format!(
                r#"{{"inputs":[{tensor_head},"parameters":{{"binary_data_size":{}}}}}],"parameters":{{"binary_data_output":true}}}}"#,
                raw.len()
            );
            let mut body = head.into_bytes();
            let n = body.len();
            body.extend_from_slice(&raw);
            (body, Some(n))
        }
        _ => {
            let data = serde_json::to_string(&input).expect("json");
            let req = format!(r#"{{"inputs":[{tensor_head},"data":{data}}}]}}"#);
            (req.into_bytes(), None)
        }
    };
    let typed = s.transport == Transport::GrpcTyped;
    let grpc = ModelInferRequest {
        model_name: s.model.name().into(),
        inputs: vec![InferInputTensor {
            name: "input".into(),
            datatype: "FP32".into(),
            shape: vec![1, s.n as i64],
            contents: typed.then(|| InferTensorContents {
                fp32_contents: input.clone(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        raw_input_contents: if typed {
            vec![]
        } else {
            vec![Bytes::from(raw)]
        },
        ..Default::default()
    };
    Payload {
        model: s.model.name().to_owned(),
        output: "output".to_owned(),
        expected,
        body: Bytes::from(body),
        header_len,
        grpc,
    }
}

enum Client {
    Rest {
        client: reqwest::Client,
        url: String,
    },
    Grpc(GrpcInferenceServiceClient<Channel>),
}

struct Ctx {
    payload: Payload,
    measure_start: Instant,
    end: Instant,
}

#[derive(Default)]
struct WorkerStats {
    latencies: Vec<Duration>,
    errors: u64,
    invalid: u64,
    first_problem: Option<String>,
}

impl WorkerStats {
    fn record(&mut self, result: Result<(), Problem>) {
        let Err(problem) = result else { return };
        match problem {
            Problem::Failed(_) => self.errors += 1,
            Problem::Wrong(_) => self.invalid += 1,
        }
        if self.first_problem.is_none() {
            self.first_problem = Some(problem.to_string());
        }
    }

    fn merge(&mut self, other: WorkerStats) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        self.invalid += other.invalid;
        self.first_problem = self.first_problem.take().or(other.first_problem);
    }
}

pub fn http_client(pool: usize) -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_gzip()
        .http1_only()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(pool)
        .timeout(Duration::from_secs(30))
        .build()?)
}

pub async fn grpc_channel(url: &str) -> Result<Channel> {
    Ok(Channel::from_shared(url.to_owned())?
        .tcp_nodelay(true)
        .connect()
        .await?)
}

fn grpc_client(channel: Channel) -> GrpcInferenceServiceClient<Channel> {
    GrpcInferenceServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX)
}

/// One client per concurrent request: REST clients share reqwest's
/// keep-alive pool, gRPC ones share one HTTP/2 connection per 8 streams
/// (at most 4).
async fn clients(
    transport: Transport,
    c: usize,
    model: &str,
    endpoints: &Endpoints,
) -> Result<Vec<Client>> {
    let mut clients = Vec::with_capacity(c);
    match transport {
        Transport::RestJson | Transport::RestBinary => {
            let client = http_client(c)?;
            let url = format!("{}/v2/models/{model}/infer", endpoints.http);
            for _ in 0..c {
                clients.push(Client::Rest {
                    client: client.clone(),
                    url: url.clone(),
                });
            }
        }
        Transport::GrpcRaw | Transport::GrpcTyped => {
            let channels = c.div_ceil(8).clamp(1, 4);
            let mut chans = Vec::new();
            for _ in 0..channels {
                chans.push(grpc_channel(&endpoints.grpc).await?);
            }
            for i in 0..c {
                clients.push(Client::Grpc(grpc_client(chans[i % channels].clone())));
            }
        }
    }
    Ok(clients)
}

/// How a prepared request is sent: by how many clients at once, for how
/// long, and whose CPU is counted.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub concurrency: usize,
    /// The root of the server's process tree.
    pub server_pid: u32,
    pub warmup: Duration,
    pub duration: Duration,
}

/// Sends `payload` over `transport` for `warmup + duration`, measuring the
/// second part.
pub async fn run_payload(
    payload: Payload,
    transport: Transport,
    endpoints: &Endpoints,
    window: Window,
) -> Result<Outcome> {
    let Window {
        concurrency,
        server_pid,
        warmup,
        duration,
    } = window;
    let clients = clients(transport, concurrency, &payload.model, endpoints).await?;
    let start = Instant::now();
    let ctx = Arc::new(Ctx {
        payload,
        measure_start: start + warmup,
        end: start + warmup + duration,
    });
    let workers: Vec<_> = clients
        .into_iter()
        .map(|client| tokio::spawn(worker(ctx.clone(), client)))
        .collect();

    // Server CPU and memory across the measured window, from /proc.
    tokio::time::sleep_until(ctx.measure_start.into()).await;
    let usage = |pid| tokio::task::spawn_blocking(move || procfs::tree_usage(pid));
    let before = usage(server_pid).await?;
    let mut peak_rss = before.rss_bytes;
    let mut after;
    loop {
        let next = (Instant::now() + Duration::from_millis(500)).min(ctx.end);
        tokio::time::sleep_until(next.into()).await;
        after = usage(server_pid).await?;
        peak_rss = peak_rss.max(after.rss_bytes);
        if next >= ctx.end {
            break;
        }
    }

    let mut all = WorkerStats::default();
    for w in workers {
        all.merge(w.await?);
    }
    all.latencies.sort_unstable();
    let requests = all.latencies.len() as u64;
    let cpu_secs =
        after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / procfs::clock_ticks() as f64;
    Ok(Outcome {
        requests,
        errors: all.errors,
        invalid: all.invalid,
        first_problem: all.first_problem,
        rps: requests as f64 / duration.as_secs_f64(),
        p50: percentile(&all.latencies, 50.0),
        p99: percentile(&all.latencies, 99.0),
        cpu_us_per_req: if requests == 0 {
            0.0
        } else {
            cpu_secs * 1e6 / requests as f64
        },
        peak_rss,
        instructions_per_req: None,
    })
}

/// Requests counted rather than timed, for instruction counts: each phase
/// sends `per_client` requests on every client at once and returns when all
/// have answered, so nothing is in flight between phases.
pub struct Bursts {
    payload: Arc<Payload>,
    clients: Vec<Client>,
}

impl Bursts {
    pub async fn new(scenario: &Scenario, endpoints: &Endpoints) -> Result<Bursts> {
        let payload = payload(scenario);
        let clients = clients(
            scenario.transport,
            scenario.concurrency,
            &payload.model,
            endpoints,
        )
        .await?;
        Ok(Bursts {
            payload: Arc::new(payload),
            clients,
        })
    }

    /// Sends the phase's requests; every response is checked, the first and
    /// every 50th of each client for the right values.
    pub async fn send(&mut self, per_client: u64) -> Result<Outcome> {
        let tasks: Vec<_> = self
            .clients
            .drain(..)
            .map(|mut client| {
                let payload = self.payload.clone();
                tokio::spawn(async move {
                    let mut stats = WorkerStats::default();
                    for n in 0..per_client {
                        let start = Instant::now();
                        let validate = n.is_multiple_of(VALIDATE_EVERY);
                        let result = one(&payload, &mut client, validate).await;
                        stats.latencies.push(start.elapsed());
                        stats.record(result);
                    }
                    (client, stats)
                })
            })
            .collect();
        let mut all = WorkerStats::default();
        for task in tasks {
            let (client, stats) = task.await?;
            self.clients.push(client);
            all.merge(stats);
        }
        Ok(Outcome {
            requests: all.latencies.len() as u64,
            errors: all.errors,
            invalid: all.invalid,
            first_problem: all.first_problem,
            ..Default::default()
        })
    }
}

async fn worker(ctx: Arc<Ctx>, mut client: Client) -> WorkerStats {
    let mut stats = WorkerStats::default();
    let mut n: u64 = 0;
    loop {
        let start = Instant::now();
        if start >= ctx.end {
            break;
        }
        let validate = n.is_multiple_of(VALIDATE_EVERY);
        n += 1;
        let result = one(&ctx.payload, &mut client, validate).await;
        let latency = start.elapsed();
        if start < ctx.measure_start {
            continue;
        }
        stats.latencies.push(latency);
        let failed = result.is_err();
        stats.record(result);
        if failed && (matches!(client, Client::Grpc(_)) || stats.errors > 1000) {
            // A failing server answers fast; don't spin on it.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    stats
}

#[derive(Debug)]
enum Problem {
    /// Transport error or non-success status.
    Failed(String),
    /// Success, but the wrong answer.
    Wrong(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Failed(m) => write!(f, "failed: {m}"),
            Problem::Wrong(m) => write!(f, "wrong answer: {m}"),
        }
    }
}

async fn one(payload: &Payload, client: &mut Client, validate: bool) -> Result<(), Problem> {
    let failed = |e: &dyn std::fmt::Display| Problem::Failed(e.to_string());
    match client {
        Client::Rest { client, url } => {
            let mut req = client.post(url.as_str()).body(payload.body.clone());
            req = match payload.header_len {
                Some(n) => req
                    .header("content-type", "application/octet-stream")
                    .header(HEADER_LEN, n),
                None => req.header("content-type", "application/json"),
            };
            let resp = req.send().await.map_err(|e| failed(&e))?;
            let status = resp.status();
            let header_len = resp
                .headers()
                .get(HEADER_LEN)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            let body = resp.bytes().await.map_err(|e| failed(&e))?;
            if !status.is_success() {
                let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                return Err(Problem::Failed(format!("HTTP {status}: {text}")));
            }
            if validate {
                let got = rest_output(&body, header_len, &payload.output)
                    .map_err(|e| Problem::Wrong(format!("{e:#}")))?;
                check(&got, &payload.expected).map_err(Problem::Wrong)?;
            }
        }
        Client::Grpc(client) => {
            let resp = client
                .model_infer(payload.grpc.clone())
                .await
                .map_err(|s| Problem::Failed(format!("{:?}: {}", s.code(), s.message())))?;
            if validate {
                let got = grpc_output(resp.into_inner(), &payload.output)
                    .map_err(|e| Problem::Wrong(format!("{e:#}")))?;
                check(&got, &payload.expected).map_err(Problem::Wrong)?;
            }
        }
    }
    Ok(())
}

/// The values of the first output, which must be `name`, in a REST reply
/// (JSON, or a JSON header plus binary data).
fn rest_output(body: &[u8], header_len: Option<usize>, name: &str) -> Result<Vec<f32>> {
    let head = &body[..header_len.unwrap_or(body.len()).min(body.len())];
    let v: Value = serde_json::from_slice(head).context("reply is not JSON")?;
    let out = v["outputs"]
        .as_array()
        .and_then(|o| o.first())
        .ok_or_else(|| anyhow!("no outputs in {v}"))?;
    if out["name"] != name {
        bail!("output is named {}, not {name:?}", out["name"]);
    }
    if let Some(n) = header_len {
        let size = out["parameters"]["binary_data_size"].as_u64().unwrap_or(0) as usize;
        let raw = body
            .get(n..n + size)
            .ok_or_else(|| anyhow!("binary data cut short"))?;
        return Ok(le_f32s(raw));
    }
    let mut values = Vec::new();
    flatten(&out["data"], &mut values)?;
    Ok(values)
}

fn flatten(v: &Value, out: &mut Vec<f32>) -> Result<()> {
    match v {
        Value::Array(items) => items.iter().try_for_each(|i| flatten(i, out)),
        Value::Number(n) => {
            out.push(n.as_f64().unwrap_or(f64::NAN) as f32);
            Ok(())
        }
        other => bail!("not a number: {other}"),
    }
}

fn le_f32s(raw: &[u8]) -> Vec<f32> {
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn grpc_output(
    resp: mlserver_proto::inference::ModelInferResponse,
    name: &str,
) -> Result<Vec<f32>> {
    let resp = mlserver_proto::convert::decode_infer_response(resp)?;
    let out = resp.outputs.first().ok_or_else(|| anyhow!("no outputs"))?;
    if out.name != name {
        bail!("output is named {:?}, not {name:?}", out.name);
    }
    out.as_slice::<f32>()
        .map(<[f32]>::to_vec)
        .map_err(|_| anyhow!("output is {}, not FP32", out.datatype))
}

fn check(got: &[f32], expected: &[f32]) -> Result<(), String> {
    if got.len() != expected.len() {
        return Err(format!("{} values, expected {}", got.len(), expected.len()));
    }
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        if (g - e).abs() > 1e-3 * e.abs().max(1.0) {
            return Err(format!("value {i} is {g}, expected {e}"));
        }
    }
    Ok(())
}

/// Sends a prepared request on a runtime of its own. At concurrency 1 that
/// is a single thread: the request and the client's connection task then
/// share it, so the load generator adds no cross-thread wake-ups (and their
/// scheduling noise) to the latency it measures, whichever server it drives.
pub async fn measure_payload(
    payload: Payload,
    transport: Transport,
    endpoints: Endpoints,
    window: Window,
) -> Result<Outcome> {
    tokio::task::spawn_blocking(move || {
        let mut builder = if window.concurrency == 1 {
            tokio::runtime::Builder::new_current_thread()
        } else {
            tokio::runtime::Builder::new_multi_thread()
        };
        let rt = builder.enable_all().build()?;
        rt.block_on(run_payload(payload, transport, &endpoints, window))
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_valid_json_in_client_key_order() {
        for sc in scenarios() {
            let p = payload(&sc);
            let head = &p.body[..p.header_len.unwrap_or(p.body.len())];
            let v: Value = serde_json::from_slice(head).unwrap();
            assert_eq!(v["inputs"][0]["shape"], serde_json::json!([1, sc.n]));
            let text = std::str::from_utf8(head).unwrap();
            if p.header_len.is_none() {
                assert!(text.find("\"datatype\"").unwrap() < text.find("\"data\"").unwrap());
            }
            match p.header_len {
                Some(n) => assert_eq!(p.body.len() - n, sc.n * 4),
                None => assert_eq!(v["inputs"][0]["data"].as_array().unwrap().len(), sc.n),
            }
        }
    }

    #[test]
    fn reads_json_and_binary_replies() {
        let json = br#"{"outputs":[{"name":"output","shape":[1,2],"data":[[1.5,2]]}]}"#;
        assert_eq!(rest_output(json, None, "output").unwrap(), [1.5, 2.0]);
        let head = br#"{"outputs":[{"name":"output","parameters":{"binary_data_size":8}}]}"#;
        let mut body = head.to_vec();
        body.extend([1.5f32, -2.0].iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(
            rest_output(&body, Some(head.len()), "output").unwrap(),
            [1.5, -2.0]
        );
        let wrong = br#"{"outputs":[{"name":"y","data":[1]}]}"#;
        assert!(rest_output(wrong, None, "output").is_err());
        assert!(check(&[1.0, 2.0], &[1.0, 2.5]).is_err());
        assert!(check(&[1.0], &[1.0, 2.0]).is_err());
        assert!(check(&[34.0], &[34.0]).is_ok());
    }
}
