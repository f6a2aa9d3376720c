//! REST handlers: thin adapters between HTTP and the [`DataPlane`].

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mlserver_runtime::MLServerError;
use mlserver_types::binary::{self, OutputFormat};
use mlserver_types::{
    InferenceRequest, LiveResponse, ModelReadyResponse, ReadyResponse, RepositoryIndexRequest,
};
use serde_json::Value;

use super::body::{header_length, parse_json, read_body};
use super::AppState;
use crate::error::ApiError;
use crate::headers::{extract_headers, insert_headers};

type ApiResult<T> = Result<T, ApiError>;

pub async fn live(State(state): State<AppState>) -> Response {
    let live = state.dataplane.live();
    let status = if live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(LiveResponse { live })).into_response()
}

pub async fn ready(State(state): State<AppState>) -> Response {
    let ready = state.dataplane.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(ReadyResponse { ready })).into_response()
}

pub async fn model_ready(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    model_ready_response(&state, name, None)
}

pub async fn model_version_ready(
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

pub async fn server_metadata(State(state): State<AppState>) -> Response {
    Json(state.dataplane.server_metadata()).into_response()
}

pub async fn model_metadata(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_metadata(&name, None)?).into_response())
}

pub async fn model_version_metadata(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
) -> ApiResult<Response> {
    Ok(Json(state.dataplane.model_metadata(&name, Some(&version))?).into_response())
}

// Inference handlers take the whole request rather than a `HeaderMap`
// extractor, which would copy every header.
pub async fn infer(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    infer_response(state, name, None, request).await
}

pub async fn infer_version(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    request: Request,
) -> ApiResult<Response> {
    infer_response(state, name, Some(version), request).await
}

async fn infer_response(
    state: AppState,
    name: String,
    version: Option<String>,
    request: Request,
) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let headers = parts.headers;
    let started = std::time::Instant::now();
    let dataplane = state.dataplane.clone();
    let result = decode_infer_encode(state, &name, version.as_deref(), headers, body).await;
    let outcome = result.as_ref().map(drop).map_err(|e| &e.0);
    dataplane.observe_infer(&name, version.as_deref(), started, outcome);
    result
}

async fn decode_infer_encode(
    state: AppState,
    name: &str,
    version: Option<&str>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    // Look the model up first: an unknown model is a 404 whatever the body.
    let model = state.dataplane.model(name, version)?;
    let body = read_body(&headers, body, state.max_body_bytes).await?;
    let (mut request, format) = match header_length(&headers)? {
        Some(0) => {
            let input = match model.metadata.inputs.as_slice() {
                [only] => only,
                _ => {
                    return Err(MLServerError::bad_request(format!(
                        "a raw binary body (Inference-Header-Content-Length: 0) needs a model with exactly one declared input; model {name} declares {}",
                        model.metadata.inputs.len()
                    ))
                    .into())
                }
            };
            (
                binary::decode_raw_input(&body, input)?,
                OutputFormat::all_binary(),
            )
        }
        Some(len) => {
            let request = binary::decode_request(&body, len)?;
            let format = OutputFormat::from_request(&request);
            (request, format)
        }
        None => {
            let mut request: InferenceRequest = parse_json(&body, "inference request")?;
            let format = OutputFormat::from_request(&request);
            request.json = Some(body);
            (request, format)
        }
    };
    insert_headers(&mut request, &headers);
    let mut response = crate::dataplane::infer_on(&model, request).await?;
    let extra_headers = extract_headers(&mut response);
    let encoded = binary::encode_response(&response, &format).map_err(|e| {
        MLServerError::internal(format!(
            "could not encode the response of model {name}: {e}"
        ))
    })?;

    let mut http = Response::new(Body::from(encoded.body));
    let out = http.headers_mut();
    for (k, v) in extra_headers {
        out.insert(k, v);
    }
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

pub async fn repository_index(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let body = read_body(&headers, body, state.max_body_bytes).await?;
    // MLServer demands at least `{}`; an empty body is accepted here.
    let request: RepositoryIndexRequest = if body.iter().all(u8::is_ascii_whitespace) {
        RepositoryIndexRequest::default()
    } else {
        parse_json(&body, "repository index request")?
    };
    let items = state.repository.index(request.ready.unwrap_or(false)).await;
    Ok(Json(items).into_response())
}

pub async fn repository_load(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    check_optional_json(&state, &headers, body).await?;
    state.repository.load(&name).await?;
    Ok(StatusCode::OK.into_response())
}

pub async fn repository_unload(
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
    let body = read_body(headers, body, state.max_body_bytes).await?;
    if !body.iter().all(u8::is_ascii_whitespace) {
        parse_json::<Value>(&body, "request body")?;
    }
    Ok(())
}
