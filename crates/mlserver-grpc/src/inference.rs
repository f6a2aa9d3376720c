//! `inference.GRPCInferenceService`: thin adapters between protobuf and the
//! [`DataPlane`] / [`ModelRepository`](crate::ModelRepository).

use std::pin::Pin;

use futures::{Stream, StreamExt};
use mlserver_core::ServingError;
use mlserver_proto::convert::{self, DecodedRequest};
use mlserver_proto::inference::grpc_inference_service_server::GrpcInferenceService;
use mlserver_proto::inference::*;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::{to_status, GrpcState};
use crate::headers::{extract_metadata, insert_metadata};

/// How many requests of one `ModelStreamInfer` stream run at once. Replies
/// still leave in request order.
const STREAM_CONCURRENCY: usize = 16;

/// Ends a response stream after its first error (tonic ends the call with
/// that status).
fn until_first_error<S>(responses: S) -> impl Stream<Item = Result<ModelInferResponse, Status>>
where
    S: Stream<Item = Result<ModelInferResponse, Status>>,
{
    responses.scan(false, |failed, item| {
        if *failed {
            return futures::future::ready(None);
        }
        *failed = item.is_err();
        futures::future::ready(Some(item))
    })
}

/// A whole request stream for a streaming runtime, through the data plane's
/// streaming call. Messages that cannot be decoded end the stream with
/// their status once the runtime has answered what came before.
async fn stream_to_model(
    state: &GrpcState,
    metadata: MetadataMap,
    first: ModelInferRequest,
    rest: Streaming<ModelInferRequest>,
) -> Result<ModelStreamResponses, Status> {
    let raw = !first.raw_input_contents.is_empty();
    let headers = std::sync::Arc::new(metadata.into_headers());
    let DecodedRequest {
        model_name,
        model_version,
        request: mut first,
        ..
    } = convert::decode_infer_request(first).map_err(bad_request)?;
    insert_metadata(&mut first, &headers);
    let (error_tx, error_rx) = tokio::sync::oneshot::channel::<Status>();
    let later = rest.scan(Some(error_tx), move |error_tx, message| {
        let decoded = message.and_then(|m| {
            convert::decode_infer_request(m).map_err(|e| Status::invalid_argument(e.to_string()))
        });
        let next = match decoded {
            Ok(DecodedRequest { mut request, .. }) => {
                insert_metadata(&mut request, &headers);
                Some(request)
            }
            Err(status) => {
                if let Some(tx) = error_tx.take() {
                    let _ = tx.send(status);
                }
                None
            }
        };
        futures::future::ready(next)
    });
    let responses = state
        .dataplane
        .infer_stream(
            &model_name,
            Some(named(&model_version)),
            first,
            Box::pin(later),
        )
        .await
        .map_err(to_status)?
        .map(move |response| {
            let mut response = response.map_err(to_status)?;
            // MLServer sends no headers on streams.
            extract_metadata(&mut response);
            Ok(convert::encode_infer_response(response, raw))
        })
        .chain(futures::stream::once(error_rx).filter_map(|e| async move { e.ok().map(Err) }));
    Ok(Box::pin(until_first_error(responses)))
}

type ModelStreamResponses =
    Pin<Box<dyn Stream<Item = Result<ModelInferResponse, Status>> + Send + 'static>>;

pub(crate) struct InferenceService {
    state: GrpcState,
}

impl InferenceService {
    pub(crate) fn new(state: GrpcState) -> Self {
        InferenceService { state }
    }
}

type GrpcResult<T> = Result<Response<T>, Status>;

fn version_of(v: &str) -> Option<&str> {
    (!v.is_empty()).then_some(v)
}

/// The version as an inference names it over gRPC: an unset field is `""`
/// (the default version, labelled `""` in the metrics, as by MLServer).
fn named(version: &Option<String>) -> &str {
    version.as_deref().unwrap_or("")
}

fn bad_request(e: mlserver_proto::ConvertError) -> Status {
    to_status(ServingError::bad_request(e.to_string()))
}

/// The caller's deadline from `grpc-timeout` (gRPC over HTTP/2: at most 8
/// digits and a unit, `H` `M` `S` `m` `u` `n`). A malformed value is
/// ignored, as gRPC servers do.
fn grpc_timeout(metadata: &MetadataMap) -> Option<std::time::Duration> {
    use std::time::Duration;
    let value = metadata.get("grpc-timeout")?.to_str().ok()?;
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n.checked_mul(3600)?),
        "M" => Duration::from_secs(n.checked_mul(60)?),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// One inference: decode, run, encode (raw replies for raw requests).
/// `metadata` becomes `parameters.headers`; response headers come back.
async fn infer_one(
    state: &GrpcState,
    headers: &std::sync::Arc<http::HeaderMap>,
    deadline: Option<std::time::Duration>,
    request: ModelInferRequest,
) -> Result<(ModelInferResponse, http::HeaderMap), Status> {
    let DecodedRequest {
        model_name,
        model_version,
        mut request,
        raw,
    } = convert::decode_infer_request(request).map_err(bad_request)?;
    // As MLServer's converter: the message's id is "" when unset, which is
    // not "no id", so none is generated and none is echoed.
    request.id.get_or_insert_with(String::new);
    insert_metadata(&mut request, headers);
    let mut response = state
        .dataplane
        .infer(&model_name, Some(named(&model_version)), request, deadline)
        .await
        .map_err(to_status)?;
    let out = extract_metadata(&mut response);
    Ok((convert::encode_infer_response(response, raw), out))
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(&self, _: Request<ServerLiveRequest>) -> GrpcResult<ServerLiveResponse> {
        Ok(Response::new(ServerLiveResponse {
            live: self.state.dataplane.live(),
        }))
    }

    async fn server_ready(
        &self,
        _: Request<ServerReadyRequest>,
    ) -> GrpcResult<ServerReadyResponse> {
        Ok(Response::new(ServerReadyResponse {
            ready: self.state.dataplane.ready(),
        }))
    }

    async fn model_ready(
        &self,
        request: Request<ModelReadyRequest>,
    ) -> GrpcResult<ModelReadyResponse> {
        let r = request.into_inner();
        let ready = self
            .state
            .dataplane
            .model_ready(&r.name, version_of(&r.version))
            .map_err(to_status)?;
        Ok(Response::new(ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<ServerMetadataRequest>,
    ) -> GrpcResult<ServerMetadataResponse> {
        let m = self.state.dataplane.server_metadata();
        Ok(Response::new(ServerMetadataResponse {
            name: m.name,
            version: m.version,
            extensions: m.extensions,
        }))
    }

    async fn runtime_security(
        &self,
        _: Request<RuntimeSecurityRequest>,
    ) -> GrpcResult<RuntimeSecurityResponse> {
        let security = self.state.dataplane.runtime_security();
        Ok(Response::new(RuntimeSecurityResponse {
            mode: security.mode_name().to_owned(),
            allowed_model_implementations: security
                .allowed()
                .map(|items| AllowedModelImplementations { items }),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<ModelMetadataRequest>,
    ) -> GrpcResult<ModelMetadataResponse> {
        let r = request.into_inner();
        let metadata = self
            .state
            .dataplane
            .model_metadata(&r.name, version_of(&r.version))
            .map_err(to_status)?;
        Ok(Response::new(convert::metadata_to_proto(metadata)))
    }

    async fn model_config(
        &self,
        request: Request<ModelConfigRequest>,
    ) -> GrpcResult<ModelConfigResponse> {
        let r = request.into_inner();
        let config = self
            .state
            .dataplane
            .model_config(&r.name, version_of(&r.version))
            .map_err(to_status)?;
        Ok(Response::new(ModelConfigResponse {
            config: Some(convert::config_to_proto(config)),
        }))
    }

    async fn model_statistics(
        &self,
        request: Request<ModelStatisticsRequest>,
    ) -> GrpcResult<ModelStatisticsResponse> {
        let r = request.into_inner();
        let statistics = self
            .state
            .dataplane
            .model_statistics(Some(&r.name), version_of(&r.version))
            .map_err(to_status)?;
        Ok(Response::new(convert::statistics_to_proto(statistics)))
    }

    async fn model_infer(
        &self,
        request: Request<ModelInferRequest>,
    ) -> GrpcResult<ModelInferResponse> {
        let (metadata, _, request) = request.into_parts();
        let deadline = grpc_timeout(&metadata);
        let headers = std::sync::Arc::new(metadata.into_headers());
        let (response, headers) = infer_one(&self.state, &headers, deadline, request).await?;
        let mut response = Response::new(response);
        // MLServer sends them as trailing metadata.
        response
            .extensions_mut()
            .insert(super::trailers::TrailingMetadata(headers));
        Ok(response)
    }

    type ModelStreamInferStream = ModelStreamResponses;

    /// A runtime with its own `predict_stream` (a streaming Python model,
    /// say) gets the whole stream, as in MLServer: the first message picks
    /// the model. For every other runtime each request is answered
    /// independently (its own model, id and raw mode, unlike MLServer,
    /// where the first message decides for all), in the order received. A
    /// failed request ends the stream with its status.
    async fn model_stream_infer(
        &self,
        request: Request<Streaming<ModelInferRequest>>,
    ) -> GrpcResult<Self::ModelStreamInferStream> {
        let (metadata, _, mut incoming) = request.into_parts();
        let Some(first) = incoming.next().await else {
            return Ok(Response::new(Box::pin(futures::stream::empty())));
        };
        let first = first?;
        let streaming = self
            .state
            .dataplane
            .streams(&first.model_name, version_of(&first.model_version))
            .unwrap_or(false);
        if streaming {
            return Ok(Response::new(
                stream_to_model(&self.state, metadata, first, incoming).await?,
            ));
        }
        let state = self.state.clone();
        // One copy of the call's metadata for every message of the stream.
        let deadline = grpc_timeout(&metadata);
        let headers = std::sync::Arc::new(metadata.into_headers());
        let responses = futures::stream::once(async move { Ok(first) })
            .chain(incoming)
            .map(move |message| {
                let state = state.clone();
                let headers = headers.clone();
                async move {
                    let request = message?;
                    infer_one(&state, &headers, deadline, request)
                        .await
                        .map(|(r, _)| r)
                }
            })
            .buffered(STREAM_CONCURRENCY);
        let responses = self
            .state
            .dataplane
            .until_cut(Box::pin(responses), to_status);
        Ok(Response::new(Box::pin(until_first_error(responses))))
    }

    async fn repository_index(
        &self,
        request: Request<RepositoryIndexRequest>,
    ) -> GrpcResult<RepositoryIndexResponse> {
        let r = request.into_inner();
        let models = self
            .state
            .repository
            .index(r.ready)
            .await
            .map_err(to_status)?
            .into_iter()
            .map(convert::index_item_to_proto)
            .collect();
        Ok(Response::new(RepositoryIndexResponse { models }))
    }

    /// Returns once the model is ready to infer (ModelMesh counts on it).
    async fn repository_model_load(
        &self,
        request: Request<RepositoryModelLoadRequest>,
    ) -> GrpcResult<RepositoryModelLoadResponse> {
        let r = request.into_inner();
        self.state
            .repository
            .load(&r.model_name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RepositoryModelLoadResponse {}))
    }

    async fn repository_model_unload(
        &self,
        request: Request<RepositoryModelUnloadRequest>,
    ) -> GrpcResult<RepositoryModelUnloadResponse> {
        let r = request.into_inner();
        self.state
            .repository
            .unload(&r.model_name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(RepositoryModelUnloadResponse {}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn timeout_of(value: &str) -> Option<Duration> {
        let mut metadata = MetadataMap::new();
        metadata.insert("grpc-timeout", value.parse().unwrap());
        grpc_timeout(&metadata)
    }

    #[test]
    fn grpc_timeout_units_and_malformed_values() {
        assert_eq!(timeout_of("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(timeout_of("3M"), Some(Duration::from_secs(180)));
        assert_eq!(timeout_of("5S"), Some(Duration::from_secs(5)));
        assert_eq!(timeout_of("250m"), Some(Duration::from_millis(250)));
        assert_eq!(timeout_of("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            timeout_of("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
        for bad in ["", "S", "5", "5s", "-5S", "123456789S", "1.5S", "5 S"] {
            assert_eq!(timeout_of(bad), None, "{bad:?}");
        }
        assert_eq!(grpc_timeout(&MetadataMap::new()), None);
    }
}
