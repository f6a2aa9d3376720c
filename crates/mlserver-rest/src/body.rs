//! Reading request bodies: size limits, gzip/deflate, JSON or binary.

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;
use http_body_util::BodyExt;
use mlserver_core::budget::{BudgetExhausted, Charge, PER_BODY_BYTE};
use mlserver_core::inflate::{inflate_limit, inflate_off_workers, Encoding, InflateError};
use mlserver_core::ServingError;
use mlserver_runtime::MLServerError;
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
/// inflate on a blocking thread. With the request's `charge` against the
/// memory budget, the most the body may inflate to is charged before
/// inflating (a request the budget cannot take is refused with 503), and
/// what it did not use given back after.
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: BodyLimits,
    charge: Option<&Charge>,
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
    let raw = collect(body, limit, declared).await?;
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
    let reserved = (inflated_limit as u64).saturating_mul(PER_BODY_BYTE);
    if let Some(charge) = charge {
        charge
            .grow(reserved)
            .map_err(|e| ServingError::Runtime(MLServerError::Unavailable(e.to_string())))?;
    }
    let inflated = inflate_off_workers(encoding, raw, inflated_limit).await;
    if let Some(charge) = charge {
        let used = inflated.as_ref().map_or(0, Vec::len) as u64;
        charge.shrink(reserved - used.saturating_mul(PER_BODY_BYTE).min(reserved));
    }
    match inflated {
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

/// The body's bytes, at most `limit` of them. A body in one frame is
/// returned as it is; one in several is copied into one buffer, allocated
/// once for its declared length (else grown by doubling, never past the
/// limit), so a large body never costs twice its size while it grows.
async fn collect(
    mut body: Body,
    limit: usize,
    declared: Option<u64>,
) -> Result<Bytes, ServingError> {
    let too_large = || {
        ServingError::PayloadTooLarge(format!("request body exceeds the limit of {limit} bytes"))
    };
    let mut first: Option<Bytes> = None;
    let mut joined: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| too_large_or_bad(e, limit))?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        len = len
            .checked_add(data.len())
            .filter(|&l| l <= limit)
            .ok_or_else(too_large)?;
        if first.is_none() && joined.is_empty() {
            first = Some(data);
            continue;
        }
        if let Some(head) = first.take() {
            let size = declared
                .and_then(|d| usize::try_from(d).ok())
                .filter(|&d| d >= len && d <= limit)
                .unwrap_or(len);
            joined.reserve_exact(size);
            joined.extend_from_slice(&head);
        }
        if joined.capacity() < len {
            let grown = (joined.capacity().saturating_mul(2)).clamp(len, limit);
            joined.reserve_exact(grown - joined.len());
        }
        joined.extend_from_slice(&data);
    }
    Ok(match first {
        Some(only) => only,
        None => Bytes::from(joined),
    })
}

/// The memory budget's refusal, if that is what ended the body.
fn budget_refusal(e: &axum::Error) -> Option<&BudgetExhausted> {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<BudgetExhausted>() {
            return Some(refused);
        }
        source = s.source();
    }
    None
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
    } else if let Some(refused) = budget_refusal(&e) {
        // The server's memory budget for requests in flight (503: retry).
        ServingError::Runtime(MLServerError::Unavailable(refused.to_string()))
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
