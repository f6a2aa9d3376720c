//! Bounded decompression of what clients send compressed (REST bodies with
//! `Content-Encoding`, gRPC messages with `grpc-encoding`).
//!
//! A compressed request is refused once it inflates past its limit, read
//! one byte past it and no further, so a bomb (1 MB of gzip that is 1 GiB
//! of zeros) costs its limit in memory, not its inflated size. The limit is
//! the transport's size limit, and at most [`max_decompression_ratio`]
//! times the compressed size beyond [`INFLATE_FLOOR`]: real tensors rarely
//! compress 32 times, bombs compress a thousand times.
//!
//! [`max_decompression_ratio`]: mlserver_settings::Settings::max_decompression_ratio

use std::io::Read;

use flate2::read::{GzDecoder, ZlibDecoder};

/// What any compressed request may inflate to, whatever its ratio (within
/// the transport's size limit).
pub const INFLATE_FLOOR: usize = 16 << 20;

/// Compressed requests up to this size are inflated where they arrive:
/// they inflate to at most a few MiB, which takes a few milliseconds.
/// Larger ones are inflated on a blocking thread, so the async workers
/// keep serving everyone else.
pub const INFLATE_INLINE_BELOW: usize = 4 << 10;

/// How many bytes `compressed` bytes may inflate to: `max` (the size
/// limit), and no more than `ratio` times `compressed` beyond
/// [`INFLATE_FLOOR`]. A `ratio` of 0 (or not a number) leaves only `max`.
pub fn inflate_limit(compressed: usize, max: usize, ratio: f64) -> usize {
    if !(ratio.is_finite() && ratio > 0.0) {
        return max;
    }
    let by_ratio = (compressed as f64 * ratio).min(usize::MAX as f64) as usize;
    max.min(by_ratio.max(INFLATE_FLOOR))
}

/// A compression a transport accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// gzip (RFC 1952): `Content-Encoding: gzip`, `grpc-encoding: gzip`.
    Gzip,
    /// HTTP's `deflate`: zlib (RFC 1950) around deflate data.
    Deflate,
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Encoding::Gzip => "gzip",
            Encoding::Deflate => "deflate",
        })
    }
}

/// Why compressed data could not be inflated.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// It inflates past its limit (it was read one byte past and dropped).
    #[error("it inflates to more than {limit} bytes")]
    TooLarge {
        /// The limit it went past.
        limit: usize,
    },
    /// It is not valid data of its encoding.
    #[error("invalid {encoding} data: {source}")]
    Corrupt {
        /// The encoding it claimed.
        encoding: Encoding,
        /// The decoder's error.
        source: std::io::Error,
    },
}

/// Inflates `data`, stopping at `limit` bytes plus one.
pub fn inflate(encoding: Encoding, data: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    let reader: Box<dyn Read + '_> = match encoding {
        Encoding::Gzip => Box::new(GzDecoder::new(data)),
        Encoding::Deflate => Box::new(ZlibDecoder::new(data)),
    };
    // Room for the whole limit up front (up to 64 MiB, reserved, not yet
    // touched), so a bomb never makes the buffer double: growing copies,
    // and the old and new buffers would both count. Past 64 MiB it doubles,
    // but never beyond the limit (`read_to_end` would).
    let most = limit.saturating_add(1);
    let mut out = Vec::with_capacity(most.min(64 << 20));
    let mut reader = reader.take(most as u64);
    loop {
        if out.len() == out.capacity() {
            if out.len() >= most {
                break;
            }
            let grown = out.capacity().saturating_mul(2).clamp(out.len() + 1, most);
            out.reserve_exact(grown - out.len());
        }
        // Straight into the buffer, never past its capacity.
        let room = (out.capacity() - out.len()) as u64;
        let read = (&mut reader)
            .take(room)
            .read_to_end(&mut out)
            .map_err(|source| InflateError::Corrupt { encoding, source })?;
        if read == 0 {
            break;
        }
    }
    if out.len() > limit {
        return Err(InflateError::TooLarge { limit });
    }
    Ok(out)
}

/// [`inflate`], on a blocking thread when `data` is large enough to take a
/// while (see [`INFLATE_INLINE_BELOW`]).
pub async fn inflate_off_workers(
    encoding: Encoding,
    data: bytes::Bytes,
    limit: usize,
) -> Result<Vec<u8>, InflateError> {
    if data.len() <= INFLATE_INLINE_BELOW {
        return inflate(encoding, &data, limit);
    }
    match tokio::task::spawn_blocking(move || inflate(encoding, &data, limit)).await {
        Ok(result) => result,
        // Inflating does not panic; a runtime shutting down cancels it.
        Err(e) => Err(InflateError::Corrupt {
            encoding,
            source: std::io::Error::other(e.to_string()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn limits_follow_the_ratio_beyond_the_floor() {
        let max = 512 << 20;
        assert_eq!(inflate_limit(1000, max, 32.0), INFLATE_FLOOR);
        assert_eq!(inflate_limit(1 << 20, max, 32.0), 32 << 20);
        assert_eq!(inflate_limit(100 << 20, max, 32.0), max);
        assert_eq!(inflate_limit(1 << 20, 1 << 20, 32.0), 1 << 20);
        assert_eq!(inflate_limit(1 << 20, max, 0.0), max);
        assert_eq!(inflate_limit(1 << 20, max, f64::NAN), max);
        assert_eq!(inflate_limit(usize::MAX, usize::MAX, 32.0), usize::MAX);
    }

    #[test]
    fn inflating_stops_one_byte_past_the_limit() {
        let zeros = vec![0u8; 10 << 20];
        let bomb = gzip(&zeros);
        assert!(bomb.len() < 64 << 10);
        let err = inflate(Encoding::Gzip, &bomb, 1 << 20).unwrap_err();
        assert!(matches!(err, InflateError::TooLarge { limit } if limit == 1 << 20));
        assert_eq!(
            inflate(Encoding::Gzip, &bomb, 10 << 20).unwrap().len(),
            10 << 20
        );
        let err = inflate(Encoding::Gzip, b"not gzip", 100).unwrap_err();
        assert!(err.to_string().starts_with("invalid gzip data"), "{err}");
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        z.write_all(b"hello").unwrap();
        let z = z.finish().unwrap();
        assert_eq!(inflate(Encoding::Deflate, &z, 5).unwrap(), b"hello");
        assert!(inflate(Encoding::Deflate, &z, 4).is_err());
    }

    #[tokio::test]
    async fn large_data_inflates_on_a_blocking_thread_with_the_same_result() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let packed = bytes::Bytes::from(gzip(&data));
        assert!(packed.len() > INFLATE_INLINE_BELOW);
        let out = inflate_off_workers(Encoding::Gzip, packed.clone(), usize::MAX)
            .await
            .unwrap();
        assert_eq!(out, data);
        assert!(inflate_off_workers(Encoding::Gzip, packed, 1000)
            .await
            .is_err());
    }
}
