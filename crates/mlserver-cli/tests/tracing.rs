//! `tracing_server` (MLServer's setting): a span per REST and gRPC request
//! exported over OTLP/gRPC, each the child of the caller's W3C
//! `traceparent`, and the server span's own `traceparent` handed to the
//! model (a Python worker here). The collector is a small tonic server on
//! the OTLP trace service, in this test.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlserver_proto::inference::{ServerReadyRequest, ServerReadyResponse};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<Span>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.spans.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const REST_PARENT: &str = "b7ad6b7169203331";
const GRPC_PARENT: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_spans_reach_an_otlp_collector() {
    let Some(python) = mlserver_tests::python::mlserver_python() else {
        return;
    };
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let collector_addr = listener.local_addr().unwrap();
    let service = TraceServiceServer::new(collector.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
    });

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("traced")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/models/traced.py"),
        dir.path().join("traced/traced.py"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("traced/model-settings.json"),
        r#"{"name": "traced", "implementation": "traced.Traced"}"#,
    )
    .unwrap();
    let (mut child, addr, log) = common::spawn_server(
        Command::new(env!("CARGO_BIN_EXE_mlserver"))
            .arg("start")
            .arg(dir.path())
            .env("MLSERVER_PYTHON", &python)
            .env("MLSERVER_TRACING_SERVER", collector_addr.to_string()),
    );
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !client
        .get(format!("http://{addr}/v2/models/traced/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status() == 200)
    {
        assert!(Instant::now() < deadline, "the model never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let request = serde_json::json!({"inputs": [{"name": "x", "shape": [1], "datatype": "INT64", "data": [1]}]});
    let answer: serde_json::Value = client
        .post(format!("http://{addr}/v2/models/traced/infer"))
        .header("traceparent", format!("00-{TRACE}-{REST_PARENT}-01"))
        .json(&request)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let seen = answer["outputs"][0]["data"][0].as_str().unwrap().to_owned();

    // gRPC, with the caller's context in the metadata.
    let grpc_addr = log
        .try_iter()
        .find_map(|l| {
            l.split("gRPC server running on http://")
                .nth(1)
                .map(str::to_owned)
        })
        .expect("gRPC address in the log");
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut call = tonic::Request::new(ServerReadyRequest {});
    call.metadata_mut().insert(
        "traceparent",
        format!("00-{TRACE}-{GRPC_PARENT}-01").parse().unwrap(),
    );
    let path = http::uri::PathAndQuery::from_static("/inference.GRPCInferenceService/ServerReady");
    let codec = tonic_prost::ProstCodec::<ServerReadyRequest, ServerReadyResponse>::default();
    grpc.unary(call, path, codec).await.unwrap();

    // Shutdown sends what is still buffered.
    Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = child.wait();
    let spans = collector.spans.lock().unwrap().clone();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    let rest = spans
        .iter()
        .find(|s| s.name == "POST /v2/models/{name}/infer")
        .unwrap_or_else(|| panic!("no REST span in {names:?}"));
    assert_eq!(hex(&rest.trace_id), TRACE);
    assert_eq!(hex(&rest.parent_span_id), REST_PARENT);
    let grpc_span = spans
        .iter()
        .find(|s| s.name == "inference.GRPCInferenceService/ServerReady")
        .unwrap_or_else(|| panic!("no gRPC span in {names:?}"));
    assert_eq!(hex(&grpc_span.trace_id), TRACE);
    assert_eq!(hex(&grpc_span.parent_span_id), GRPC_PARENT);
    // The model got the server span's own context: same trace, its span.
    assert_eq!(
        seen,
        format!("00-{TRACE}-{}-01", hex(&rest.span_id)),
        "{answer}"
    );
}
