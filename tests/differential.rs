//! The differential test: MLServer 1.7.1 (the real one, from PyPI) and this
//! server, on the same Python models (`tests/python/models/parity.py`,
//! MLServer's own scikit-learn runtime), asked the same questions
//! (`tests/differential/corpus.json`) over REST and gRPC. Every answer is
//! compared field by field: status, body, the headers a client reads, gRPC
//! codes, messages and metadata. A difference fails the test unless
//! `tests/differential/deliberate.json` lists it with its reason (each is
//! in the differences table of docs/compatibility.md).
//!
//! Run alone with `cargo test -p mlserver-tests --test differential --
//! --nocapture` to see every difference, listed or not.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mlserver_proto::convert::{decode_infer_response, encode_infer_request};
use mlserver_proto::inference::*;
use mlserver_python::PythonConfig;
use mlserver_runtime::RuntimeRegistry;
use mlserver_settings::EnvSource;
use mlserver_tests::python::{mlserver_python, run_script, worker_config};
use mlserver_tests::runtimes::test_runtimes;
use mlserver_tests::{workspace_root, InferenceClient, ModelsDir, TestServer};
use mlserver_types::InferenceRequest;
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// One question of the corpus.
#[derive(Debug, Deserialize)]
struct Case {
    name: String,
    #[serde(flatten)]
    call: Call,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "call", rename_all = "snake_case")]
enum Call {
    /// An inference, over REST (JSON) and gRPC (typed, and raw contents).
    Infer {
        model: String,
        #[serde(default)]
        version: Option<String>,
        request: Value,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        /// Only over REST (the request cannot be written in protobuf).
        #[serde(default)]
        rest_only: bool,
        /// `null` elements of FP32/FP64 data are NaN; only over gRPC (JSON
        /// has no NaN).
        #[serde(default)]
        nan: bool,
    },
    /// Any REST call.
    Rest {
        method: String,
        path: String,
        #[serde(default)]
        body: Option<String>,
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A gRPC call other than ModelInfer.
    Grpc {
        method: String,
        #[serde(default)]
        args: Value,
    },
}

/// A difference the project keeps on purpose.
#[derive(Debug, Deserialize)]
struct Deliberate {
    /// A case name, or a prefix ending in `*`.
    case: String,
    /// `rest`, `grpc`, `grpc-raw`, or `*`.
    transport: String,
    /// `status`, `body`, `header:<name>`, `metadata:<name>`, `metrics`, or `*`.
    aspect: String,
    /// `fast` for a difference of the fast paths only (the native XGBoost
    /// and LightGBM runtimes' errors): the slow paths answer as MLServer.
    #[serde(default)]
    mode: Option<String>,
    why: String,
}

impl Deliberate {
    fn covers(&self, d: &Difference) -> bool {
        let matches = |pattern: &str, value: &str| match pattern.strip_suffix('*') {
            Some(prefix) => value.starts_with(prefix),
            None => pattern == value,
        };
        matches(&self.case, &d.case)
            && matches(&self.transport, &d.transport)
            && matches(&self.aspect, &d.aspect)
            && self.mode.as_ref().is_none_or(|m| *m == d.mode)
    }
}

#[derive(Debug)]
struct Difference {
    case: String,
    transport: String,
    aspect: String,
    /// `fast` or `exact`.
    mode: String,
    ours: Value,
    theirs: Value,
}

/// What one server answered, reduced to what a client sees.
#[derive(Debug, Default)]
struct Answer {
    status: Value,
    body: Value,
    /// Headers (REST) or metadata (gRPC: initial and trailing, prefixed).
    headers: BTreeMap<String, String>,
}

/// Headers and metadata a client may read; the rest (date, server,
/// content-length, transport) is left out.
fn compared_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    let grpc = name.starts_with("initial:") || name.starts_with("trailing:");
    let name = name
        .strip_prefix("initial:")
        .or_else(|| name.strip_prefix("trailing:"))
        .unwrap_or(&name)
        .to_owned();
    (name == "content-type" && !grpc)
        || name == "location"
        || name.starts_with("x-model")
        || name.starts_with("ce-")
}

fn models() -> ModelsDir {
    let dir = ModelsDir::new();
    let parity = std::fs::read_to_string(workspace_root().join("tests/python/models/parity.py"))
        .expect("parity.py");
    let model = |folder: &str, settings: Value| {
        dir.write(&format!("{folder}/parity.py"), &parity);
        dir.model(folder, settings);
    };
    model(
        "numpy-declared",
        json!({"implementation": "parity.NumpyEcho",
               "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}]}),
    );
    model("numpy-free", json!({"implementation": "parity.NumpyEcho"}));
    model("strings", json!({"implementation": "parity.StringEcho"}));
    model(
        "pandas",
        json!({"implementation": "parity.PandasDescribe", "parameters": {"content_type": "pd"}}),
    );
    model("raising", json!({"implementation": "parity.Raising"}));
    model("describe", json!({"implementation": "parity.Describe"}));
    model("nan", json!({"implementation": "parity.NotANumber"}));
    model("metered", json!({"implementation": "parity.Metered"}));
    model(
        "as-received",
        json!({"implementation": "parity.AsReceived"}),
    );
    model("codecs", json!({"implementation": "parity.Codecs"}));
    model("mutating", json!({"implementation": "parity.Mutating"}));
    model("returned", json!({"implementation": "parity.Returned"}));
    dir.write(
        "handlers/parity_handlers.py",
        &std::fs::read_to_string(workspace_root().join("tests/python/models/parity_handlers.py"))
            .expect("parity_handlers.py"),
    );
    model(
        "handlers",
        json!({"implementation": "parity_handlers.Handlers"}),
    );
    model(
        "every-parameter",
        json!({"implementation": "parity.EveryParameter"}),
    );
    for version in ["v1", "v2"] {
        model(
            &format!("versioned/{version}"),
            json!({"name": "versioned", "implementation": "parity.Versioned",
                   "parameters": {"version": version}}),
        );
    }
    dir
}

/// The models `make_tree_models.py` trains, and whether the native runtimes
/// serve each (MLServer's Python runtimes serve the others, in every mode).
const TREE_MODELS: &[(&str, bool)] = &[
    ("xgb-reg", true),
    ("xgb-logistic", true),
    ("xgb-logitraw", true),
    ("xgb-softprob", true),
    ("xgb-softmax", true),
    ("xgb-poisson", true),
    ("xgb-gamma", true),
    ("xgb-tweedie", true),
    ("xgb-dart", true),
    ("xgb-rank", true),
    ("xgb-categorical", true),
    ("xgb-binary-clf", true),
    ("xgb-multi-clf", true),
    ("xgb-early-stop", true),
    ("xgb-sk-reg", true),
    ("xgb-softmax-clf", false),
    ("lgb-regression", true),
    ("lgb-l1", true),
    ("lgb-binary", true),
    ("lgb-multiclass", true),
    ("lgb-multiclassova", true),
    ("lgb-poisson", true),
    ("lgb-tweedie", true),
    ("lgb-categorical", true),
    ("lgb-zero-missing", true),
    ("lgb-linear", false),
];

/// The models `make_sklearn_models.py` trains, and whether the native
/// runtime takes each over from MLServer's runtime once loaded (not a
/// multiclass LogisticRegression: its coefficients' rows are not contiguous,
/// and numpy then multiplies through OpenBLAS routines whose summation
/// order is not reproduced).
const SKLEARN_MODELS: &[(&str, bool)] = &[
    ("sk-linreg", true),
    ("sk-ridge", true),
    ("sk-lasso", true),
    ("sk-elasticnet", true),
    ("sk-sgd-reg", true),
    ("sk-logreg", false),
    ("sk-logreg-binary", true),
    ("sk-sgd-clf", true),
    ("sk-tree-clf", true),
    ("sk-tree-reg", true),
    ("sk-tree-nan", true),
    ("sk-rf-clf", true),
    ("sk-rf-reg", true),
    ("sk-et-clf", true),
    ("sk-et-reg", true),
    ("sk-gb-binary", true),
    ("sk-gb-multi", true),
    ("sk-gb-reg", true),
    ("sk-hgb-reg", true),
    ("sk-hgb-binary", true),
    ("sk-hgb-multi", true),
    ("sk-hgb-cat", true),
    ("sk-scaler", true),
    ("sk-pipe-std-logreg", false),
    ("sk-pipe-minmax-rf", true),
    ("sk-pipe-robust-ridge", true),
    ("sk-pipe-scalers", true),
    ("sk-svc", false),
    ("sk-predict-fn", true),
];

/// Writes the tree and scikit-learn models' settings with
/// `parameters.extra.native` set to `native` (left out for `None`, and for
/// models the native runtimes decline when `native` is true: forcing those
/// would fail their load).
fn native_settings(dir: &ModelsDir, native: Option<bool>) {
    for (name, served_natively) in TREE_MODELS.iter().chain(SKLEARN_MODELS) {
        let implementation = if name.starts_with("xgb") {
            "mlserver_xgboost.XGBoostModel"
        } else if name.starts_with("lgb") {
            "mlserver_lightgbm.LightGBMModel"
        } else {
            "mlserver_sklearn.SKLearnModel"
        };
        let mut settings = json!({"implementation": implementation});
        if *name == "lgb-l1" {
            settings["parameters"]["uri"] = json!("./model.txt");
        }
        if *name == "sk-predict-fn" {
            settings["parameters"]["extra"] = json!({ "predict_fn": "predict_proba" });
        }
        match native {
            Some(true) if !served_natively => {}
            Some(native) => settings["parameters"]["extra"]["native"] = json!(native),
            None => {}
        }
        dir.model(name, settings);
    }
}

/// The real MLServer, on free ports, stopped when dropped.
struct Mlserver {
    child: Child,
    http: u16,
    grpc: u16,
    metrics: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Mlserver {
    async fn start(python: &Path, folder: &Path) -> Mlserver {
        let (http, grpc, metrics) = (free_port(), free_port(), free_port());
        std::fs::write(
            folder.join("settings.json"),
            json!({"host": "127.0.0.1", "http_port": http, "grpc_port": grpc,
                   "metrics_port": metrics})
            .to_string(),
        )
        .unwrap();
        let log = folder.join("mlserver.log");
        let mlserver = python.parent().unwrap().join("mlserver");
        // In a process group of its own, so its worker processes go with
        // it (killing only MLServer's main process orphans them).
        let child = Command::new(mlserver)
            .process_group(0)
            .arg("start")
            .arg(folder)
            .current_dir(folder)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(folder.join("mlserver.err")).unwrap())
            .spawn()
            .expect("mlserver start");
        let server = Mlserver {
            child,
            http,
            grpc,
            metrics,
            log,
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let ready = client
                .get(format!("http://127.0.0.1:{http}/v2/health/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "MLServer never became ready:\n{}",
                server.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn logs(&self) -> String {
        let err = self.log.with_file_name("mlserver.err");
        format!(
            "{}{}",
            std::fs::read_to_string(&self.log).unwrap_or_default(),
            std::fs::read_to_string(err).unwrap_or_default()
        )
    }
}

impl Drop for Mlserver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a server answers.
struct Target {
    http: String,
    metrics: String,
    channel: tonic::transport::Channel,
    grpc: InferenceClient,
}

impl Target {
    /// The real MLServer, on its ports.
    async fn mlserver(mlserver: &Mlserver) -> Target {
        Target::new(
            format!("http://127.0.0.1:{}", mlserver.http),
            format!("http://127.0.0.1:{}/metrics", mlserver.metrics),
            mlserver.grpc,
        )
        .await
    }

    /// This server on `folder` with `runtimes`, started and loaded.
    async fn ours(folder: &Path, runtimes: RuntimeRegistry) -> (TestServer, Target) {
        let server = TestServer::start_with_env(folder, runtimes, EnvSource::empty(), |_| {}).await;
        server.wait_started().await;
        let target = Target::new(
            format!("http://{}", server.addr),
            format!("http://{}/metrics", server.metrics_addr.unwrap()),
            server.grpc_addr.port(),
        )
        .await;
        (server, target)
    }

    async fn new(http: String, metrics: String, grpc_port: u16) -> Target {
        let channel =
            tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc_port}"))
                .unwrap()
                .connect()
                .await
                .expect("gRPC connect");
        Target {
            http,
            metrics,
            grpc: InferenceClient::new(channel.clone()),
            channel,
        }
    }
}

/// JSON with what varies between runs (request ids, CloudEvents ids)
/// replaced by placeholders, FP32 and FP16 data as the FP32 values they
/// stand for (MLServer writes the float64 widening of each, 0.10000000149011612,
/// we the shortest text that reads back as the same FP32, 0.1), and arrays of
/// repository index entries in one order (MLServer lists them in directory
/// order).
fn normalise(value: Value) -> Value {
    match value {
        Value::Object(mut map)
            if matches!(
                map.get("datatype").and_then(Value::as_str),
                Some("FP32" | "FP16")
            ) =>
        {
            if let Some(Value::Array(data)) = map.get_mut("data") {
                for v in data.iter_mut() {
                    if let Some(f) = v.as_f64() {
                        *v = json!(f as f32);
                    }
                }
            }
            Value::Object(map.into_iter().map(|(k, v)| (k, normalise(v))).collect())
        }
        Value::Array(items)
            if items
                .iter()
                .all(|i| i.get("state").is_some() && i.get("name").is_some())
                && !items.is_empty() =>
        {
            let mut items: Vec<Value> = items.into_iter().map(normalise).collect();
            items.sort_by_key(|i| i.to_string());
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), &v) {
                        ("id", Value::String(s)) if looks_like_uuid(s) => json!("<uuid>"),
                        _ => normalise(v),
                    };
                    (k, v)
                })
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(normalise).collect()),
        Value::String(s) if looks_like_uuid(&s) => json!("<uuid>"),
        Value::String(s) => Value::String(without_native_trace(&mask_uuids(&s))),
        other => other,
    }
}

/// `s` with every UUID in it (a request id a model echoes) as `<uuid>`.
fn mask_uuids(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len()
            && s.is_char_boundary(i)
            && s.is_char_boundary(i + 36)
            && is_uuid(&s[i..i + 36])
        {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let c = s[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// An XGBoost error without what differs between processes: the time
/// (`[19:15:33]`) and the stack trace's addresses.
fn without_native_trace(s: &str) -> String {
    let s = s.split("\nStack trace:").next().unwrap_or(s);
    match s.find(": [") {
        Some(at) if s[at + 3..].get(8..9) == Some("]") => {
            format!("{}: [<time>]{}", &s[..at], &s[at + 12..])
        }
        _ => s.to_owned(),
    }
}

fn is_uuid(s: &str) -> bool {
    s.bytes().enumerate().all(|(i, b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    })
}

fn looks_like_uuid(s: &str) -> bool {
    s.len() == 36 && is_uuid(s)
}

async fn rest_call(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    path: &str,
    body: Option<String>,
    headers: &BTreeMap<String, String>,
) -> Answer {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("{base}{path}"));
    for (k, v) in headers {
        request = request.header(k, v);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = match request.send().await {
        Ok(r) => r,
        Err(e) => {
            return Answer {
                status: json!(if e.is_timeout() {
                    "no answer in 20 s".to_owned()
                } else {
                    format!("no answer: {e}")
                }),
                ..Default::default()
            }
        }
    };
    let status = json!(response.status().as_u16());
    let headers = response
        .headers()
        .iter()
        .filter(|(k, _)| compared_header(k.as_str()))
        .map(|(k, v)| {
            let v = v.to_str().unwrap_or("<binary>");
            let v = if looks_like_uuid(v) { "<uuid>" } else { v };
            // A redirect's target, without the server's own address.
            let v = match k.as_str() {
                "location" => v
                    .splitn(4, '/')
                    .nth(3)
                    .map(|p| format!("/{p}"))
                    .unwrap_or_default(),
                _ => v.to_owned(),
            };
            (k.as_str().to_owned(), v)
        })
        .collect();
    let text = response.text().await.unwrap_or_default();
    let body = match serde_json::from_str::<Value>(&text) {
        Ok(v) => normalise(v),
        Err(_) if text.is_empty() => Value::Null,
        Err(_) => json!({"text": text}),
    };
    Answer {
        status,
        body,
        headers,
    }
}

fn metadata_map(prefix: &str, metadata: &tonic::metadata::MetadataMap) -> Vec<(String, String)> {
    metadata
        .iter()
        .filter_map(|kv| match kv {
            tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                let name = format!("{prefix}:{}", k.as_str());
                let v = v.to_str().unwrap_or_default();
                let v = if looks_like_uuid(v) { "<uuid>" } else { v };
                compared_header(&name).then(|| (name, v.to_owned()))
            }
            tonic::metadata::KeyAndValueRef::Binary(..) => None,
        })
        .collect()
}

fn grpc_answer<T>(
    result: Result<tonic::Response<T>, tonic::Status>,
    body: impl FnOnce(T) -> Value,
) -> Answer {
    match result {
        Ok(response) => {
            let headers = metadata_map("initial", response.metadata())
                .into_iter()
                .collect();
            Answer {
                status: json!("OK"),
                body: normalise(body(response.into_inner())),
                headers,
            }
        }
        Err(status) => {
            let headers = metadata_map("trailing", status.metadata())
                .into_iter()
                .collect();
            Answer {
                status: json!(format!("{:?}", status.code())),
                body: normalise(json!({"message": status.message()})),
                headers,
            }
        }
    }
}

/// A ModelInfer, keeping initial and trailing metadata apart (MLServer
/// sends a model's response headers as trailing metadata). tonic's unary
/// client merges the two, so the call goes out as a server-streaming one:
/// the same frames on the wire.
async fn grpc_infer(
    channel: &tonic::transport::Channel,
    message: ModelInferRequest,
    headers: &BTreeMap<String, String>,
) -> Answer {
    let mut request = tonic::Request::new(message);
    for (k, v) in headers {
        request.metadata_mut().insert(
            tonic::metadata::MetadataKey::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let path = http::uri::PathAndQuery::from_static("/inference.GRPCInferenceService/ModelInfer");
    let codec = tonic_prost::ProstCodec::<ModelInferRequest, ModelInferResponse>::default();
    let response = match grpc.server_streaming(request, path, codec).await {
        Ok(r) => r,
        Err(status) => return grpc_answer::<()>(Err(status), |_| Value::Null),
    };
    let mut headers: BTreeMap<String, String> = metadata_map("initial", response.metadata())
        .into_iter()
        .collect();
    let mut stream = response.into_inner();
    let message = match stream.message().await {
        Ok(m) => m,
        Err(status) => return grpc_answer::<()>(Err(status), |_| Value::Null),
    };
    if let Ok(Some(trailers)) = stream.trailers().await {
        headers.extend(metadata_map("trailing", &trailers));
    }
    let body = match message.map(decode_infer_response) {
        Some(Ok(response)) => normalise(serde_json::to_value(response).unwrap()),
        Some(Err(e)) => json!({"undecodable": e.to_string()}),
        None => json!({"no message": true}),
    };
    Answer {
        status: json!("OK"),
        body,
        headers,
    }
}

async fn grpc_other(client: &mut InferenceClient, method: &str, args: &Value) -> Answer {
    let s = |k: &str| args[k].as_str().unwrap_or_default().to_owned();
    match method {
        "ServerLive" => grpc_answer(
            client.server_live(ServerLiveRequest {}).await,
            |r| json!({"live": r.live}),
        ),
        "ServerReady" => grpc_answer(
            client.server_ready(ServerReadyRequest {}).await,
            |r| json!({"ready": r.ready}),
        ),
        "ModelReady" => grpc_answer(
            client
                .model_ready(ModelReadyRequest {
                    name: s("name"),
                    version: s("version"),
                })
                .await,
            |r| json!({"ready": r.ready}),
        ),
        "ServerMetadata" => grpc_answer(
            client.server_metadata(ServerMetadataRequest {}).await,
            |r| json!({"name": r.name, "version": r.version, "extensions": r.extensions}),
        ),
        "ModelMetadata" => grpc_answer(
            client
                .model_metadata(ModelMetadataRequest {
                    name: s("name"),
                    version: s("version"),
                })
                .await,
            |r| {
                json!({"name": r.name, "versions": r.versions, "platform": r.platform,
                        "inputs": r.inputs.iter().map(|t| json!([t.name, t.datatype, t.shape])).collect::<Vec<_>>(),
                        "outputs": r.outputs.iter().map(|t| json!([t.name, t.datatype, t.shape])).collect::<Vec<_>>()})
            },
        ),
        "RepositoryIndex" => grpc_answer(
            client
                .repository_index(RepositoryIndexRequest {
                    repository_name: String::new(),
                    ready: args["ready"].as_bool().unwrap_or(false),
                })
                .await,
            |r| {
                let mut models: Vec<Value> = r
                    .models
                    .iter()
                    .map(|m| json!([m.name, m.version, m.state, m.reason]))
                    .collect();
                models.sort_by_key(|m| m.to_string());
                json!(models)
            },
        ),
        "RepositoryModelLoad" => grpc_answer(
            client
                .repository_model_load(RepositoryModelLoadRequest {
                    repository_name: String::new(),
                    model_name: s("name"),
                    parameters: Default::default(),
                })
                .await,
            |_| json!({}),
        ),
        "RepositoryModelUnload" => grpc_answer(
            client
                .repository_model_unload(RepositoryModelUnloadRequest {
                    repository_name: String::new(),
                    model_name: s("name"),
                    parameters: Default::default(),
                })
                .await,
            |_| json!({}),
        ),
        other => panic!("unknown gRPC method {other} in the corpus"),
    }
}

/// Asks one server one case: (transport, answer) for each way it goes.
async fn ask(target: &mut Target, client: &reqwest::Client, case: &Case) -> Vec<(String, Answer)> {
    match &case.call {
        Call::Infer {
            model,
            version,
            request,
            headers,
            rest_only,
            nan,
        } => {
            let path = match version {
                Some(v) => format!("/v2/models/{model}/versions/{v}/infer"),
                None => format!("/v2/models/{model}/infer"),
            };
            let mut rest_headers = headers.clone();
            rest_headers.insert("content-type".into(), "application/json".into());
            let mut answers = Vec::new();
            if !nan {
                answers.push((
                    "rest".to_owned(),
                    rest_call(
                        client,
                        &target.http,
                        "POST",
                        &path,
                        Some(request.to_string()),
                        &rest_headers,
                    )
                    .await,
                ));
            }
            if !rest_only {
                let typed = if *nan {
                    with_nans(request)
                } else {
                    serde_json::from_value(request.clone())
                }
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: not a request our types read ({e}); mark it rest_only",
                        case.name
                    )
                });
                for (transport, raw) in [("grpc", false), ("grpc-raw", true)] {
                    let message =
                        encode_infer_request(model, version.as_deref(), typed.clone(), raw);
                    answers.push((
                        transport.to_owned(),
                        grpc_infer(&target.channel, message, headers).await,
                    ));
                }
            }
            answers
        }
        Call::Rest {
            method,
            path,
            body,
            headers,
        } => vec![(
            "rest".to_owned(),
            rest_call(client, &target.http, method, path, body.clone(), headers).await,
        )],
        Call::Grpc { method, args } => {
            vec![(
                "grpc".to_owned(),
                grpc_other(&mut target.grpc, method, args).await,
            )]
        }
    }
}

/// `request` with every `null` element of its FP32/FP64 inputs read as NaN.
fn with_nans(request: &Value) -> Result<InferenceRequest, serde_json::Error> {
    let mut request = request.clone();
    let mut holes = Vec::new();
    for (i, input) in request["inputs"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for (j, v) in input["data"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .enumerate()
        {
            if v.is_null() {
                *v = json!(0.0);
                holes.push((i, j));
            }
        }
    }
    let mut typed: InferenceRequest = serde_json::from_value(request)?;
    for (i, j) in holes {
        match &mut typed.inputs[i].data {
            mlserver_types::TensorData::Fp32(v) => v[j] = f32::NAN,
            mlserver_types::TensorData::Fp64(v) => v[j] = f64::NAN,
            other => panic!("NaN in {:?} data", other.datatype()),
        }
    }
    Ok(typed)
}

fn compare(
    (case, transport, mode): (&str, &str, &str),
    ours: &Answer,
    theirs: &Answer,
    out: &mut Vec<Difference>,
) {
    let mut push = |aspect: String, ours: Value, theirs: Value| {
        out.push(Difference {
            case: case.to_owned(),
            transport: transport.to_owned(),
            mode: mode.to_owned(),
            aspect,
            ours,
            theirs,
        })
    };
    if ours.status != theirs.status {
        push("status".into(), ours.status.clone(), theirs.status.clone());
    }
    if ours.body != theirs.body {
        push("body".into(), ours.body.clone(), theirs.body.clone());
    }
    let names: std::collections::BTreeSet<&String> =
        ours.headers.keys().chain(theirs.headers.keys()).collect();
    for name in names {
        let (a, b) = (ours.headers.get(name), theirs.headers.get(name));
        if a != b {
            let kind = if transport == "rest" {
                "header"
            } else {
                "metadata"
            };
            push(format!("{kind}:{name}"), json!(a), json!(b));
        }
    }
}

/// `name{labels} value` lines of one family, labels sorted, values dropped
/// (timings differ): which series exist.
fn series(scrape: &str, family: &str) -> Vec<String> {
    let mut found: Vec<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && l.starts_with(family))
        .map(|l| l.rsplit_once(' ').map(|(s, _)| s).unwrap_or(l).to_owned())
        .collect();
    found.sort();
    found
}

/// An exposition's families by name, each as its lines (HELP, TYPE,
/// samples, in the order written), timings masked: durations' bucket
/// counts and sums differ from run to run, their `_count` does not.
fn families(scrape: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    let mut timed = false;
    for line in scrape.lines().filter(|l| !l.is_empty()) {
        if let Some(rest) = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
        {
            let name = rest.split(' ').next().unwrap_or_default();
            if name != current {
                current = name.to_owned();
                timed = name.contains("duration") || name.ends_with("_seconds");
            }
            out.entry(current.clone())
                .or_default()
                .push(line.to_owned());
            continue;
        }
        let masked = match line.rsplit_once(' ') {
            Some((series, _))
                if timed && (series.contains("_bucket{") || series.contains("_sum")) =>
            {
                format!("{series} <timing>")
            }
            _ => line.to_owned(),
        };
        out.entry(current.clone()).or_default().push(masked);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mlserver_and_ours_answer_alike() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let corpus: Vec<Case> = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("tests/differential/corpus.json")).unwrap(),
    )
    .expect("corpus.json");
    let deliberate: Vec<Deliberate> = serde_json::from_str(
        &std::fs::read_to_string(workspace_root().join("tests/differential/deliberate.json"))
            .unwrap(),
    )
    .expect("deliberate.json");

    // Two copies of the same folder: each server writes its own files.
    let theirs_dir = models();
    let ours_dir = models();
    for dir in [&theirs_dir, &ours_dir] {
        run_script(
            &python,
            "make_sklearn_model.py",
            &[dir.path().join("sklearn").to_str().unwrap()],
        );
        dir.model(
            "sklearn",
            json!({"implementation": "mlserver_sklearn.SKLearnModel"}),
        );
    }
    // The tree and scikit-learn models, trained once: both servers read
    // the same files.
    for script in ["make_tree_models.py", "make_sklearn_models.py"] {
        run_script(&python, script, &[theirs_dir.path().to_str().unwrap()]);
    }
    for (name, _) in TREE_MODELS.iter().chain(SKLEARN_MODELS) {
        for file in std::fs::read_dir(theirs_dir.path().join(name)).unwrap() {
            let file = file.unwrap();
            std::fs::create_dir_all(ours_dir.path().join(name)).unwrap();
            std::fs::copy(
                file.path(),
                ours_dir.path().join(name).join(file.file_name()),
            )
            .unwrap();
        }
    }
    native_settings(&theirs_dir, None);
    let mlserver = Mlserver::start(&python, theirs_dir.path()).await;
    let mut theirs = Target::mlserver(&mlserver).await;
    // No redirects followed: a 307 is an answer.
    // A call left unanswered (MLServer hangs on some) is an answer too.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();

    // Ours twice, with the fast paths on and off (the Python workers', and
    // the native XGBoost, LightGBM and scikit-learn runtimes, forced on where they serve
    // the model): both must answer as MLServer does, and as each other.
    let mut differences = Vec::new();
    let mut answers_by_mode = Vec::new();
    let mut theirs_answers = Vec::new();
    for fast_paths in [true, false] {
        let mode = if fast_paths { "fast" } else { "exact" };
        native_settings(&ours_dir, Some(fast_paths));
        let mut runtimes = test_runtimes();
        mlserver_python::install(
            &mut runtimes,
            PythonConfig {
                fast_paths,
                ..worker_config(&python, ours_dir.path())
            },
        );
        let (ours_server, mut ours) = Target::ours(ours_dir.path(), runtimes).await;

        let mut answers = Vec::new();
        for case in &corpus {
            let a = ask(&mut ours, &client, case).await;
            if fast_paths {
                theirs_answers.push(ask(&mut theirs, &client, case).await);
            }
            let b = &theirs_answers[answers.len()];
            for ((transport, ours), (_, theirs)) in a.iter().zip(b) {
                compare(
                    (&case.name, transport, mode),
                    ours,
                    theirs,
                    &mut differences,
                );
            }
            answers.push(a);
        }
        // Not vacuous: every scikit-learn model answers its plain request
        // (a model that failed to load on both servers would compare equal).
        for (case, answer) in corpus.iter().zip(&answers) {
            let served = SKLEARN_MODELS
                .iter()
                .any(|(m, _)| case.name == format!("{m}-fp64"))
                || ["sk-scaler-transform", "sk-pipe-scalers-transform"]
                    .contains(&case.name.as_str());
            for (transport, a) in answer.iter().filter(|_| served) {
                assert!(
                    a.status == json!(200) || a.status == json!("OK"),
                    "{} [{transport}, {mode}] answered {}: {}",
                    case.name,
                    a.status,
                    a.body
                );
            }
        }
        answers_by_mode.push(answers);

        // Custom metrics (`mlserver.register` / `mlserver.log`) reach /metrics.
        let scrape = |url: String| {
            let client = client.clone();
            async move { client.get(url).send().await.unwrap().text().await.unwrap() }
        };
        let (a, b) = (
            scrape(ours.metrics.clone()).await,
            scrape(theirs.metrics.clone()).await,
        );
        for family in ["parity_custom_metric", "parity_prometheus_client_total"] {
            let (ours_series, theirs_series) = (series(&a, family), series(&b, family));
            if ours_series != theirs_series {
                differences.push(Difference {
                    case: format!("metrics:{family}"),
                    transport: format!("metrics ({mode})"),
                    mode: mode.to_owned(),
                    aspect: "metrics".into(),
                    ours: json!(ours_series),
                    theirs: json!(theirs_series),
                });
            }
        }

        drop(ours_server);
    }

    // The fast paths change nothing a client sees (but the index, which
    // says which models the Python runtimes serve).
    let mut modes_differ = Vec::new();
    for (case, (fast, exact)) in corpus
        .iter()
        .zip(answers_by_mode[0].iter().zip(&answers_by_mode[1]))
        .filter(|(case, _)| !case.name.contains("index"))
    {
        for ((transport, fast), (_, exact)) in fast.iter().zip(exact) {
            let mut found = Vec::new();
            compare((&case.name, transport, "fast"), fast, exact, &mut found);
            // What only the fast paths answer differently, on purpose.
            found.retain(|d| {
                !deliberate
                    .iter()
                    .any(|r| r.mode.as_deref() == Some("fast") && r.covers(d))
            });
            modes_differ.extend(found.into_iter().map(|d| {
                format!(
                    "{} [{}] {}:\n    fast:  {}\n    exact: {}",
                    d.case, d.transport, d.aspect, d.ours, d.theirs
                )
            }));
        }
    }

    let mut unexplained = Vec::new();
    for d in &differences {
        let why = deliberate
            .iter()
            .find(|r| r.covers(d))
            .map(|r| r.why.as_str());
        let line = format!(
            "{} [{}] {}:\n    ours:   {}\n    theirs: {}",
            d.case, d.transport, d.aspect, d.ours, d.theirs
        );
        match why {
            Some(why) => eprintln!("deliberate: {line}\n    why: {why}"),
            None => unexplained.push(line),
        }
    }
    let unused: Vec<&Deliberate> = deliberate
        .iter()
        .filter(|r| !differences.iter().any(|d| r.covers(d)))
        .collect();
    eprintln!(
        "{} cases, {} differences, {} deliberate, {} not listed",
        corpus.len(),
        differences.len(),
        differences.len() - unexplained.len(),
        unexplained.len()
    );
    assert!(
        unexplained.is_empty(),
        "{} differences from MLServer 1.7.1 are not listed as deliberate:\n{}\n--- MLServer's log tail\n{}",
        unexplained.len(),
        unexplained.join("\n"),
        mlserver.logs().lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    assert!(
        unused.is_empty(),
        "deliberate.json lists differences that no longer happen: {unused:?}"
    );
    assert!(
        modes_differ.is_empty(),
        "the fast paths off (MLSERVER_RS_FAST_PATHS=0, parameters.extra.native=false) answer differently:\n{}",
        modes_differ.join("\n")
    );
}

/// Families only this server has, with why (docs/compatibility.md: differences).
const OURS_ONLY: &[(&str, &str)] = &[
    ("loaded_models", "model lifecycle metrics MLServer does not have"),
    ("model_load_success_total", "model lifecycle metrics MLServer does not have"),
    ("model_load_failure_total", "model lifecycle metrics MLServer does not have"),
    ("model_unload_total", "model lifecycle metrics MLServer does not have"),
    ("process_", "the server process's own metrics, which MLServer's multiprocess registry (parallel_workers > 0) leaves out"),
];

/// Families whose values differ on purpose: their names, labels and order
/// must still match.
const VALUES_DIFFER: &[(&str, &str)] = &[(
    "parallel_request_queue",
    "inferences only: MLServer also counts its workers' load, unload, first metadata and custom-handler messages",
)];

/// The models of the metrics comparison: a few, so both servers start fast.
fn metrics_models() -> ModelsDir {
    let dir = ModelsDir::new();
    let read = |file: &str| {
        std::fs::read_to_string(workspace_root().join("tests/python/models").join(file))
            .expect("model file")
    };
    dir.write("numpy-free/parity.py", &read("parity.py"));
    dir.model("numpy-free", json!({"implementation": "parity.NumpyEcho"}));
    for version in ["v1", "v2"] {
        dir.write(
            &format!("versioned/{version}/parity.py"),
            &read("parity.py"),
        );
        dir.model(
            &format!("versioned/{version}"),
            json!({"name": "versioned", "implementation": "parity.Versioned",
                   "parameters": {"version": version}}),
        );
    }
    dir.write("handlers/parity_handlers.py", &read("parity_handlers.py"));
    dir.model(
        "handlers",
        json!({"implementation": "parity_handlers.Handlers"}),
    );
    dir
}

/// `/metrics` after the same requests, answered alike by both servers
/// (REST and gRPC inferences with and without versions, metadata, the
/// repository index, custom endpoints, a FastAPI validation error): the
/// exposition is prometheus_client's as MLServer writes it, family by
/// family and line by line (HELP, TYPE, sample names, labels and their
/// order, empty families left out, counts), durations' buckets and sums
/// masked. Only the families listed above may differ.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_expositions_match_after_the_same_requests() {
    let Some(python) = mlserver_python() else {
        return;
    };
    let theirs_dir = metrics_models();
    let ours_dir = metrics_models();
    let mlserver = Mlserver::start(&python, theirs_dir.path()).await;
    let mut theirs = Target::mlserver(&mlserver).await;
    let mut runtimes = test_runtimes();
    mlserver_python::install(&mut runtimes, worker_config(&python, ours_dir.path()));
    let (ours_server, mut ours) = Target::ours(ours_dir.path(), runtimes).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let x =
        json!({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 3], "data": [1, 2, 3]}]});
    let cases: Vec<Case> = serde_json::from_value(json!([
        {"name": "infer", "call": "infer", "model": "numpy-free", "request": x},
        {"name": "infer-again", "call": "infer", "model": "numpy-free", "request": x},
        {"name": "infer-v1", "call": "infer", "model": "versioned", "version": "v1", "request": x},
        {"name": "infer-default", "call": "infer", "model": "versioned", "request": x},
        {"name": "metadata", "call": "rest", "method": "GET", "path": "/v2/models/numpy-free"},
        {"name": "ready", "call": "rest", "method": "GET", "path": "/v2/models/numpy-free/ready"},
        {"name": "index", "call": "rest", "method": "POST", "path": "/v2/repository/index", "body": "{}"},
        {"name": "item", "call": "rest", "method": "GET", "path": "/parity/items/5?q=a"},
        {"name": "item-invalid", "call": "rest", "method": "GET", "path": "/parity/items/five"},
        {"name": "body", "call": "rest", "method": "POST", "path": "/parity/body", "body": "{\"a\": 1}",
         "headers": {"content-type": "application/json"}},
        {"name": "wrong-method", "call": "rest", "method": "GET", "path": "/v2/models/numpy-free/infer"},
        {"name": "grpc-live", "call": "grpc", "method": "ServerLive"},
        {"name": "grpc-metadata", "call": "grpc", "method": "ModelMetadata", "args": {"name": "numpy-free"}},
    ]))
    .expect("cases");
    let mut differences = Vec::new();
    for case in &cases {
        let (a, b) = (
            ask(&mut ours, &client, case).await,
            ask(&mut theirs, &client, case).await,
        );
        for ((transport, ours), (_, theirs)) in a.iter().zip(&b) {
            // Bodies differ where listed in deliberate.json (server
            // metadata, health bodies); statuses must not, or the counts
            // below could not match.
            if ours.status != theirs.status {
                differences.push(format!(
                    "{} [{transport}] status: ours {} theirs {}",
                    case.name, ours.status, theirs.status
                ));
            }
        }
    }
    let scrape = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let (ours_text, theirs_text) = (
        scrape(ours.metrics.clone()).await,
        scrape(theirs.metrics.clone()).await,
    );
    // What the requests must have left, or the comparison proves nothing.
    for expected in [
        r#"model_infer_request_success_total{model="numpy-free",version=""} 4.0"#,
        r#"model_infer_request_success_total{model="numpy-free",version="None"} 2.0"#,
        r#"model_infer_request_success_total{model="versioned",version="v1"} 3.0"#,
        r#"rest_server_requests_total{app_name="mlserver",method="GET",path="/parity/items/{item_id}",status_code="422"} 1.0"#,
        r#"grpc_server_handled_total{grpc_code="OK",grpc_method="ModelInfer""#,
        "parallel_request_queue_count",
    ] {
        assert!(
            theirs_text.contains(expected),
            "MLServer's /metrics lacks {expected}:\n{theirs_text}"
        );
    }
    let (ours_families, theirs_families) = (families(&ours_text), families(&theirs_text));
    let without_values = |lines: &Vec<String>| -> Vec<String> {
        lines
            .iter()
            .map(|l| match l.rsplit_once(' ') {
                Some((series, _)) if !l.starts_with('#') => series.to_owned(),
                _ => l.clone(),
            })
            .collect()
    };
    let names: std::collections::BTreeSet<&String> =
        ours_families.keys().chain(theirs_families.keys()).collect();
    for name in names {
        let (a, b) = (ours_families.get(name), theirs_families.get(name));
        let listed_only = OURS_ONLY
            .iter()
            .any(|(family, _)| match family.strip_suffix('_') {
                Some(prefix) if family.ends_with('_') => name.starts_with(&format!("{prefix}_")),
                _ => name == family,
            });
        let same = match (a, b) {
            (Some(_), None) if listed_only => true,
            (Some(a), Some(b)) if VALUES_DIFFER.iter().any(|(f, _)| f == name) => {
                without_values(a) == without_values(b)
            }
            (a, b) => a == b,
        };
        if !same {
            differences.push(format!(
                "family {name}:\n    ours:   {}\n    theirs: {}",
                json!(a),
                json!(b)
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "/metrics differs from MLServer 1.7.1's after the same requests:\n{}\n--- ours\n{ours_text}\n--- theirs\n{theirs_text}",
        differences.join("\n")
    );
    drop(ours_server);
}
