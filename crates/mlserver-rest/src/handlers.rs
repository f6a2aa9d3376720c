//! REST handlers: thin adapters between HTTP and the [`DataPlane`].

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use mlserver_core::budget::Charge;
use mlserver_core::{LoadedModel, ServingError};
use mlserver_types::binary::{self, OutputFormat};
use mlserver_types::{
    InferenceRequest, LiveResponse, ModelReadyResponse, ReadyResponse, RepositoryIndexRequest,
};
use serde_json::Value;

use super::body::{bad_binary, header_length, parse_json, read_body};
use super::AppState;
use crate::error::ApiError;
use crate::headers::{extract_headers, headers_into_parameters};
use crate::openapi;

type ApiResult<T> = Result<T, ApiError>;

pub(crate) async fn live(State(state): State<AppState>) -> Response {
    let live = state.dataplane.live();
    let status = if live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(LiveResponse { live })).into_response()
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let ready = state.dataplane.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ReadyResponse { ready })).into_response()
}

pub(crate) async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    model_ready_response(&state, name, None)
}

pub(crate) async fn model_version_ready(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    model_ready_response(&state, name, Some(version))
}

fn model_ready_response(
    state: &AppState,
    name: String,
    version: Option<String>,
) -> ApiResult<Response> {
    let ready = state.dataplane.model_ready(&name, version.as_deref())?;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(ModelReadyResponse { name, ready })).into_response())
}

pub(crate) async fn server_metadata(State(state): State<AppState>) -> Response {
    Json(state.dataplane.server_metadata()).into_response()
}

/// The ODH fork's `GET /v2/runtimes`: the security mode, and in production
/// mode the allowlist (absent, not null, in development mode).
pub(crate) async fn runtimes(State(state): State<AppState>) -> Response {
    let security = state.dataplane.runtime_security();
    let mut body = serde_json::json!({"mode": security.mode_name()});
    if let Some(allowed) = security.allowed() {
        body["allowed_model_implementations"] = allowed.into();
    }
    Json(body).into_response()
}

pub(crate) async fn model_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_metadata(&name, None)?).into_response())
}

pub(crate) async fn model_version_metadata(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_metadata(&name, Some(&version))?).into_response())
}

/// Triton's statistics extension: every loaded model's.
pub(crate) async fn all_statistics(State(state): State<AppState>) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_statistics(None, None)?).into_response())
}

pub(crate) async fn model_statistics(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_statistics(Some(&name), None)?).into_response())
}

pub(crate) async fn model_version_statistics(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(
        state
            .dataplane
            .model_statistics(Some(&name), Some(&version))?,
    )
    .into_response())
}

/// Triton's model configuration extension.
pub(crate) async fn model_config(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_config(&name, None)?).into_response())
}

pub(crate) async fn model_version_config(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_config(&name, Some(&version))?).into_response())
}

/// Swagger UI over the server's OpenAPI document.
pub(crate) async fn docs() -> Response {
    Html(openapi::swagger_ui(
        "MLServer API Docs",
        "/v2/docs/dataplane.json",
    ))
    .into_response()
}

/// The server's OpenAPI document.
pub(crate) async fn openapi_document() -> Response {
    Json(openapi::server_document()).into_response()
}

/// Swagger UI over a model's document (404 for a model not served).
pub(crate) async fn model_docs(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    model_docs_page(&state, &name, None)
}

pub(crate) async fn model_version_docs(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    model_docs_page(&state, &name, Some(&version))
}

fn model_docs_page(state: &AppState, name: &str, version: Option<&str>) -> ApiResult<Response> {
    state.dataplane.model_metadata(name, version)?;
    let (title, url) = match version {
        Some(v) => (
            format!("MLServer API Docs - {name} ({v})"),
            format!("/v2/models/{name}/versions/{v}/docs/dataplane.json"),
        ),
        None => (
            format!("MLServer API Docs - {name}"),
            format!("/v2/models/{name}/docs/dataplane.json"),
        ),
    };
    Ok(Html(openapi::swagger_ui(&title, &url)).into_response())
}

/// A model's OpenAPI document: its routes, its inputs and outputs.
pub(crate) async fn model_openapi_document(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let metadata = state.dataplane.model_metadata(&name, None)?;
    Ok(Json(openapi::model_document(&metadata, None)).into_response())
}

pub(crate) async fn model_version_openapi_document(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    let metadata = state.dataplane.model_metadata(&name, Some(&version))?;
    Ok(Json(openapi::model_document(&metadata, Some(&version))).into_response())
}

// Inference handlers take the whole request rather than a `HeaderMap`
// extractor, which would copy every header. They are plain functions
// giving `decode_infer_encode`'s future: each async fn layer would hold
// its arguments and a copy of the future below it, which is large.
pub(crate) fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> impl Future<Output = ApiResult<Response>> {
    decode_infer_encode(state, name, None, request)
}

pub(crate) fn infer_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    request: Request,
) -> impl Future<Output = ApiResult<Response>> {
    decode_infer_encode(state, name, Some(version), request)
}

/// The request of an inference call, decoded as JSON, the binary extension
/// or a raw binary body (which needs the model's one declared input), with
/// the HTTP headers in `parameters.headers`; and how to encode the answer.
async fn decode_request(
    state: &AppState,
    name: &str,
    version: Option<&str>,
    (mut headers, charge): (HeaderMap, Option<&Charge>),
    body: Body,
) -> ApiResult<(Arc<LoadedModel>, InferenceRequest, OutputFormat)> {
    // Look the model up first: an unknown model is a 404 whatever the body
    // (the data plane counts a failed lookup as MLServer counts it).
    let model = state.dataplane.model_for_infer(name, version)?;
    let body = read_body(&headers, body, state.body_limits, charge).await?;
    let (mut request, format) = match header_length(&headers)? {
        Some(0) => {
            let input = match model.metadata.inputs.as_slice() {
                [only] => only,
                _ => {
                    return Err(ServingError::bad_request(format!(
                        "a raw binary body (Inference-Header-Content-Length: 0) needs a model with exactly one declared input; model {name} declares {}",
                        model.metadata.inputs.len()
                    ))
                    .into())
                }
            };
            (
                binary::decode_raw_input(&body, input).map_err(bad_binary)?,
                OutputFormat::all_binary(),
            )
        }
        Some(len) => {
            let request = binary::decode_request(&body, len).map_err(bad_binary)?;
            let format = OutputFormat::from_request(&request);
            (request, format)
        }
        None => {
            let mut request = InferenceRequest::from_json(&body).map_err(|e| {
                ServingError::bad_request(format!("invalid inference request: {e}"))
            })?;
            let format = OutputFormat::from_request(&request);
            request.json = Some(body);
            (request, format)
        }
    };
    headers_into_parameters(&mut request, std::mem::take(&mut headers));
    Ok((model, request, format))
}

async fn decode_infer_encode(
    state: AppState,
    name: String,
    version: Option<String>,
    request: Request,
) -> ApiResult<Response> {
    let (name, version) = (name.as_str(), version.as_deref());
    let (parts, body) = request.into_parts();
    let charge = parts.extensions.get::<Arc<Charge>>();
    let (model, request, format) = decode_request(
        &state,
        name,
        version,
        (parts.headers, charge.map(|c| &**c)),
        body,
    )
    .await?;
    let mut response = state
        .dataplane
        .infer_with(&model, name, version, request, None)
        .await?;
    let headers = extract_headers(&mut response);
    let encoded = match response.json.take() {
        // The runtime's own MLServer answer (see `InferenceResponse::json`).
        Some(json) => binary::EncodedBody {
            body: json.into(),
            header_len: None,
        },
        None => binary::encode_response(&response, &format).map_err(|e| {
            ServingError::internal(format!(
                "could not encode the response of model {name}: {e}"
            ))
        })?,
    };

    let mut http = Response::new(Body::from(encoded.body));
    // The model's prepared map (room left for these, see
    // `CloudEvents::response_headers`), not a new one filled per response.
    *http.headers_mut() = headers;
    let out = http.headers_mut();
    match encoded.header_len {
        Some(len) => {
            out.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            out.insert(binary::HEADER_CONTENT_LENGTH, HeaderValue::from(len));
        }
        None => {
            out.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    Ok(http)
}

pub(crate) async fn infer_stream(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    stream_response(state, name, None, request).await
}

pub(crate) async fn infer_stream_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    stream_response(state, name, Some(version), request).await
}

/// `infer_stream` / `generate_stream`: MLServer's Server-Sent Events, one
/// `data: <response JSON>` event per response of the model's stream. A
/// request that fails before the stream starts gets the status a unary one
/// would; an error later ends the stream with an `error` event. A client
/// that goes away drops the stream, which stops the model's generator.
async fn stream_response(
    state: AppState,
    name: String,
    version: Option<String>,
    request: Request,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let charge = parts.extensions.get::<Arc<Charge>>();
    let (model, request, _) = decode_request(
        &state,
        &name,
        version.as_deref(),
        (parts.headers, charge.map(|c| &**c)),
        body,
    )
    .await?;
    let responses = state
        .dataplane
        .infer_stream_with(
            model,
            &name,
            version.as_deref(),
            request,
            Box::pin(futures::stream::empty()),
        )
        .await?;
    let events = responses.map(|item| {
        let event = match item {
            Ok(mut response) => {
                // As MLServer's: no headers on a stream.
                extract_headers(&mut response);
                match serde_json::to_vec(&response) {
                    Ok(json) => sse_event(None, &json),
                    Err(e) => sse_error(&format!("could not encode a response: {e}")),
                }
            }
            Err(e) => sse_error(&e.to_string()),
        };
        Ok::<_, std::convert::Infallible>(event)
    });
    let mut http = Response::new(Body::from_stream(events));
    http.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    http.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache"),
    );
    Ok(http)
}

fn sse_event(kind: Option<&str>, data: &[u8]) -> bytes::Bytes {
    let mut out = Vec::with_capacity(data.len() + 24);
    if let Some(kind) = kind {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\n\n");
    out.into()
}

fn sse_error(message: &str) -> bytes::Bytes {
    let json = serde_json::json!({ "error": message }).to_string();
    sse_event(Some("error"), json.as_bytes())
}

pub(crate) async fn repository_index(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let body = read_body(&headers, body, state.body_limits, None).await?;
    // MLServer demands at least `{}`; an empty body is accepted here.
    let request: RepositoryIndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RepositoryIndexRequest::default()
    } else {
        parse_json(&body, "repository index request")?
    };
    let items = state
        .repository
        .index(request.ready.unwrap_or(false))
        .await?;
    Ok(Json(items).into_response())
}

pub(crate) async fn repository_load(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_optional_json(&state, &headers, body).await?;
    state.repository.load(&name).await?;
    Ok(StatusCode::OK.into_response())
}

pub(crate) async fn repository_unload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_optional_json(&state, &headers, body).await?;
    state.repository.unload(&name).await?;
    Ok(StatusCode::OK.into_response())
}

/// Load/unload bodies are optional (`{"parameters": {...}}`), but a body that
/// is there must be JSON.
async fn check_optional_json(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(), ApiError> {
    let body = read_body(headers, body, state.body_limits, None).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        parse_json::<Value>(&body, "request body")?;
    }
    Ok(())
}
