//! The benchmark's yardstick: serves `sum-model` (FP32 `[rows, n]` in, row
//! sums `[rows, 1]` out) and `echo-model` (input back as `output`) over V2
//! REST (JSON and the binary extension) and gRPC (raw and typed contents)
//! with the least work possible: typed serde structs, no validation, no
//! registry, no metrics, no logging. It shows what this machine allows, so
//! a server's overhead reads as a ratio to it.
//!
//! `yardstick <http-port> <grpc-port>` (loopback only).

use std::net::SocketAddr;

use axum::extract::Path;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use mlserver_proto::inference::grpc_inference_service_server::{
    GrpcInferenceService, GrpcInferenceServiceServer,
};
use mlserver_proto::inference::model_infer_response::InferOutputTensor;
use mlserver_proto::inference::*;
use serde::{Deserialize, Serialize};
use tonic::{Request, Status};

const HEADER_LEN: &str = "inference-header-content-length";

#[derive(Clone, Copy)]
enum Model {
    Sum,
    Echo,
}

fn model(name: &str) -> Option<Model> {
    match name {
        "sum-model" => Some(Model::Sum),
        "echo-model" => Some(Model::Echo),
        _ => None,
    }
}

fn row_sums(values: impl ExactSizeIterator<Item = f32>, rows: usize) -> Vec<f32> {
    let per_row = values.len() / rows.max(1);
    let mut sums = vec![0.0f32; rows.max(1)];
    for (i, v) in values.enumerate() {
        sums[i / per_row.max(1)] += v;
    }
    sums
}

fn le_f32s(raw: &[u8]) -> impl ExactSizeIterator<Item = f32> + '_ {
    raw.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

fn f32_bytes(values: &[f32]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

// ---- REST ----

#[derive(Deserialize)]
struct InferRequest {
    id: Option<String>,
    inputs: Vec<Input>,
    parameters: Option<Flags>,
}

#[derive(Deserialize)]
struct Input {
    shape: Vec<usize>,
    #[serde(default)]
    data: Vec<f32>,
}

#[derive(Deserialize)]
struct Flags {
    #[serde(default)]
    binary_data_output: bool,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    id: Option<String>,
    outputs: [Output; 1],
}

#[derive(Serialize)]
struct Output {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Vec<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<BinarySize>,
}

#[derive(Serialize)]
struct BinarySize {
    binary_data_size: usize,
}

async fn infer(Path(name): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    let Some(m) = model(&name) else {
        return (StatusCode::NOT_FOUND, "{\"error\":\"no such model\"}").into_response();
    };
    let header_len = headers
        .get(HEADER_LEN)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    let json = &body[..header_len.unwrap_or(body.len()).min(body.len())];
    let mut request: InferRequest = match serde_json::from_slice(json) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let Some(input) = request.inputs.pop() else {
        return (StatusCode::BAD_REQUEST, "no input").into_response();
    };
    let rows = input.shape.first().copied().unwrap_or(1);
    let binary_out = request.parameters.is_some_and(|p| p.binary_data_output);
    let (shape, values, raw): (Vec<usize>, Option<Vec<f32>>, Option<Bytes>) = match (m, header_len)
    {
        (Model::Sum, Some(n)) => {
            let sums = row_sums(le_f32s(&body[n..]), rows);
            (vec![rows, 1], Some(sums), None)
        }
        (Model::Sum, None) => {
            let sums = row_sums(input.data.into_iter(), rows);
            (vec![rows, 1], Some(sums), None)
        }
        (Model::Echo, Some(n)) => (input.shape, None, Some(body.slice(n..))),
        (Model::Echo, None) => (input.shape, Some(input.data), None),
    };
    let raw = match (binary_out, raw, values) {
        (true, Some(raw), _) => Some(raw),
        (true, None, Some(v)) => Some(Bytes::from(f32_bytes(&v))),
        (false, Some(raw), _) => {
            return json_response(&name, request.id, shape, le_f32s(&raw).collect())
        }
        (false, None, Some(v)) => return json_response(&name, request.id, shape, v),
        (_, None, None) => unreachable!(),
    };
    let raw = raw.unwrap_or_default();
    let head = InferResponse {
        model_name: &name,
        id: request.id,
        outputs: [Output {
            name: "output",
            datatype: "FP32",
            shape,
            data: None,
            parameters: Some(BinarySize {
                binary_data_size: raw.len(),
            }),
        }],
    };
    let mut out = serde_json::to_vec(&head).expect("serializable");
    let json_len = out.len();
    out.extend_from_slice(&raw);
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::HeaderName::from_static(HEADER_LEN),
                json_len.to_string(),
            ),
        ],
        out,
    )
        .into_response()
}

async fn model_ready(Path(name): Path<String>) -> StatusCode {
    match model(&name) {
        Some(_) => StatusCode::OK,
        None => StatusCode::NOT_FOUND,
    }
}

fn json_response(name: &str, id: Option<String>, shape: Vec<usize>, data: Vec<f32>) -> Response {
    let body = InferResponse {
        model_name: name,
        id,
        outputs: [Output {
            name: "output",
            datatype: "FP32",
            shape,
            data: Some(data),
            parameters: None,
        }],
    };
    let out = serde_json::to_vec(&body).expect("serializable");
    ([(header::CONTENT_TYPE, "application/json")], out).into_response()
}

// ---- gRPC ----

struct Grpc;

type GrpcResult<T> = Result<tonic::Response<T>, Status>;

#[tonic::async_trait]
impl GrpcInferenceService for Grpc {
    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> GrpcResult<ModelInferResponse> {
        let r = request.into_inner();
        let m = model(&r.model_name).ok_or_else(|| Status::not_found("no such model"))?;
        let input = r
            .inputs
            .into_iter()
            .next()
            .ok_or_else(|| Status::invalid_argument("no input"))?;
        let rows = input.shape.first().copied().unwrap_or(1).max(1) as usize;
        let raw = r.raw_input_contents.into_iter().next();
        let (shape, contents, raw_out) = match (m, raw) {
            (Model::Sum, Some(raw)) => {
                let sums = row_sums(le_f32s(&raw), rows);
                (
                    vec![rows as i64, 1],
                    None,
                    vec![Bytes::from(f32_bytes(&sums))],
                )
            }
            (Model::Sum, None) => {
                let data = input.contents.unwrap_or_default().fp32_contents;
                let sums = row_sums(data.into_iter(), rows);
                (vec![rows as i64, 1], Some(fp32(sums)), vec![])
            }
            (Model::Echo, Some(raw)) => (input.shape, None, vec![raw]),
            (Model::Echo, None) => (input.shape, input.contents, vec![]),
        };
        Ok(tonic::Response::new(ModelInferResponse {
            model_name: r.model_name,
            id: r.id,
            outputs: vec![InferOutputTensor {
                name: "output".into(),
                datatype: "FP32".into(),
                shape,
                contents,
                ..Default::default()
            }],
            raw_output_contents: raw_out,
            ..Default::default()
        }))
    }

    async fn server_live(&self, _: Request<ServerLiveRequest>) -> GrpcResult<ServerLiveResponse> {
        Ok(tonic::Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> GrpcResult<ServerReadyResponse> {
        Ok(tonic::Response::new(ServerReadyResponse { ready: true }))
    }

    async fn model_ready(&self, r: Request<ModelReadyRequest>) -> GrpcResult<ModelReadyResponse> {
        let ready = model(&r.into_inner().name).is_some();
        Ok(tonic::Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> GrpcResult<ServerMetadataResponse> {
        Err(Status::unimplemented("yardstick"))
    }

    async fn model_metadata(
        &self,
        _: Request<ModelMetadataRequest>,
    ) -> GrpcResult<ModelMetadataResponse> {
        Err(Status::unimplemented("yardstick"))
    }

    async fn runtime_security(
        &self,
        _: Request<RuntimeSecurityRequest>,
    ) -> GrpcResult<RuntimeSecurityResponse> {
        Err(Status::unimplemented("yardstick"))
    }

    type ModelStreamInferStream = tokio_stream::Empty<Result<ModelInferResponse, Status>>;

    async fn model_stream_infer(
        &self,
        _: Request<tonic::Streaming<ModelInferRequest>>,
    ) -> GrpcResult<Self::ModelStreamInferStream> {
        Err(Status::unimplemented("yardstick"))
    }

    async fn repository_index(
        &self,
        _: Request<RepositoryIndexRequest>,
    ) -> GrpcResult<RepositoryIndexResponse> {
        Err(Status::unimplemented("yardstick"))
    }

    async fn repository_model_load(
        &self,
        _: Request<RepositoryModelLoadRequest>,
    ) -> GrpcResult<RepositoryModelLoadResponse> {
        Err(Status::unimplemented("yardstick"))
    }

    async fn repository_model_unload(
        &self,
        _: Request<RepositoryModelUnloadRequest>,
    ) -> GrpcResult<RepositoryModelUnloadResponse> {
        Err(Status::unimplemented("yardstick"))
    }

    async fn model_config(
        &self,
        _: Request<ModelConfigRequest>,
    ) -> GrpcResult<ModelConfigResponse> {
        Err(Status::unimplemented("yardstick"))
    }

    async fn model_statistics(
        &self,
        _: Request<ModelStatisticsRequest>,
    ) -> GrpcResult<ModelStatisticsResponse> {
        Err(Status::unimplemented("yardstick"))
    }
}

fn fp32(values: Vec<f32>) -> InferTensorContents {
    InferTensorContents {
        fp32_contents: values,
        ..Default::default()
    }
}

fn port(arg: Option<String>, what: &str) -> u16 {
    arg.and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("usage: yardstick <http-port> <grpc-port> (bad {what})"))
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let http = SocketAddr::from(([127, 0, 0, 1], port(args.next(), "http port")));
    let grpc = SocketAddr::from(([127, 0, 0, 1], port(args.next(), "grpc port")));
    let app = Router::new()
        .route("/v2/health/live", get(|| async { "{\"live\":true}" }))
        .route("/v2/health/ready", get(|| async { "{\"ready\":true}" }))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer));
    let listener = tokio::net::TcpListener::bind(http)
        .await
        .expect("bind http");
    // TCP_NODELAY, as tonic's `serve` below sets it and every server compared sets it.
    let listener = axum::serve::ListenerExt::tap_io(listener, |s| {
        let _ = s.set_nodelay(true);
    });
    let rest = async { axum::serve(listener, app).await.expect("http server") };
    let service = GrpcInferenceServiceServer::new(Grpc)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);
    let grpc = async {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(grpc)
            .await
            .expect("grpc server")
    };
    tokio::join!(rest, grpc);
}
