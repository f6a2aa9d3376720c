//! Reading request bodies: size limits, gzip/deflate, JSON or binary.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use flate2::read::{GzDecoder, ZlibDecoder};
use mlserver_core::ServingError;
use mlserver_types::binary;

/// Reads the whole body, refusing more than `limit` bytes, and undoes a
/// `Content-Encoding` of gzip or deflate (with the same limit on the
/// decompressed size, so a small bomb cannot exhaust memory).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, ServingError> {
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| too_large_or_bad(e, limit))?;
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    match encoding.as_deref() {
        None | Some("") | Some("identity") => Ok(raw),
        Some("gzip") | Some("x-gzip") => inflate(GzDecoder::new(&raw[..]), limit, "gzip"),
        Some("deflate") => inflate(ZlibDecoder::new(&raw[..]), limit, "deflate"),
        Some(other) => Err(ServingError::bad_request(format!(
            "unsupported Content-Encoding '{other}' (gzip and deflate are accepted)"
        ))),
    }
}

fn too_large_or_bad(e: axum::Error, limit: usize) -> ServingError {
    // axum exposes the limit error only through its message chain.
    let mut chain = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    if chain.iter().any(|m| m.contains("length limit")) {
        ServingError::PayloadTooLarge(format!("request body exceeds the limit of {limit} bytes"))
    } else {
        ServingError::bad_request(format!(
            "could not read the request body: {}",
            chain.join(": ")
        ))
    }
}

fn inflate(reader: impl Read, limit: usize, what: &str) -> Result<Bytes, ServingError> {
    let mut out = Vec::new();
    let mut limited = reader.take(limit as u64 + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|e| ServingError::bad_request(format!("invalid {what} request body: {e}")))?;
    if out.len() > limit {
        return Err(ServingError::PayloadTooLarge(format!(
            "decompressed request body exceeds the limit of {limit} bytes"
        )));
    }
    Ok(Bytes::from(out))
}

/// The `Inference-Header-Content-Length` of a binary request, if any.
pub(crate) fn header_length(headers: &HeaderMap) -> Result<Option<usize>, ServingError> {
    let Some(value) = headers.get(binary::HEADER_CONTENT_LENGTH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| {
            ServingError::bad_request(
                "Inference-Header-Content-Length must be a non-negative integer",
            )
        })
}

/// A binary-extension body that does not hold what its header says: a 400.
pub(crate) fn bad_binary(e: binary::BinaryError) -> ServingError {
    ServingError::bad_request(e.to_string())
}

/// Parses a JSON body, turning serde's message into a 400.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    body: &[u8],
    what: &str,
) -> Result<T, ServingError> {
    serde_json::from_slice(body)
        .map_err(|e| ServingError::bad_request(format!("invalid {what}: {e}")))
}
