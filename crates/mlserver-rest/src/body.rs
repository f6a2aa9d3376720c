//! Reading request bodies: size limits, gzip/deflate, JSON or binary.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use mlserver_core::inflate::{inflate_limit, inflate_off_workers, Encoding, InflateError};
use mlserver_core::ServingError;
use mlserver_types::binary;

/// How large request bodies may be.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// The most bytes a body may have, compressed or not.
    pub max_bytes: usize,
    /// How many times its compressed size a compressed body may inflate
    /// to, beyond [`INFLATE_FLOOR`](mlserver_core::inflate::INFLATE_FLOOR)
    /// (`max_decompression_ratio`; 0: only `max_bytes`).
    pub max_decompression_ratio: f64,
}

/// Reads the whole body, refusing more than `limits.max_bytes`, and undoes
/// a `Content-Encoding` of gzip or deflate, bounded: inflating stops one
/// byte past the limit (see [`mlserver_core::inflate`]), and large bodies
/// inflate on a blocking thread.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
) -> Result<Bytes, ServingError> {
    let limit = limits.max_bytes;
    // A body declared larger than the limit is refused before a byte of it
    // is read: reading up to the limit first would cost the limit in memory
    // and time (512 MiB by default) for an answer known from the head.
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&d| d > limit as u64) {
        return Err(ServingError::PayloadTooLarge(format!(
            "request body of {declared} bytes (Content-Length) exceeds the limit of {limit} bytes"
        )));
    }
    let raw = axum::body::to_bytes(body, limit)
        .await
        .map_err(|e| too_large_or_bad(e, limit))?;
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_ascii_lowercase());
    let encoding = match encoding.as_deref() {
        None | Some("") | Some("identity") => return Ok(raw),
        Some("gzip") | Some("x-gzip") => Encoding::Gzip,
        Some("deflate") => Encoding::Deflate,
        Some(other) => {
            return Err(ServingError::bad_request(format!(
                "unsupported Content-Encoding '{other}' (gzip and deflate are accepted)"
            )))
        }
    };
    let compressed = raw.len();
    let inflated_limit = inflate_limit(compressed, limit, limits.max_decompression_ratio);
    match inflate_off_workers(encoding, raw, inflated_limit).await {
        Ok(body) => Ok(Bytes::from(body)),
        Err(InflateError::TooLarge { limit: reached }) => {
            Err(ServingError::PayloadTooLarge(if reached < limit {
                format!(
                    "the {encoding} request body of {compressed} bytes inflates past {reached} bytes: \
                     max_decompression_ratio ({}) times its size, or 16 MiB",
                    limits.max_decompression_ratio
                )
            } else {
                format!("decompressed request body exceeds the limit of {limit} bytes")
            }))
        }
        Err(e) => Err(ServingError::bad_request(format!(
            "invalid {encoding} request body: {e}"
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
