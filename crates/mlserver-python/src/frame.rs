//! The frames between the server and a worker (see the worker module's
//! docstring): `u32` length of the rest, `u8` kind, `u64` call id, body.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

pub(crate) const LOAD: u8 = 1;
pub(crate) const UNLOAD: u8 = 2;
pub(crate) const INFER: u8 = 3;
pub(crate) const METADATA: u8 = 4;
pub(crate) const STREAM_OPEN: u8 = 6;
pub(crate) const STREAM_ITEM: u8 = 7;
pub(crate) const STREAM_END: u8 = 8;
/// The consumer went away: the worker stops the stream's generator.
pub(crate) const STREAM_CANCEL: u8 = 9;
pub(crate) const OK: u8 = 10;
pub(crate) const ERROR: u8 = 11;
/// One response of a stream; the stream ends with `OK` or `ERROR`.
pub(crate) const ITEM: u8 = 12;
/// Both ways, on an open stream: the sender may send `n` (a `u32` body)
/// more items. Each side starts with [`STREAM_WINDOW`] and grants one per
/// item its consumer has taken, so a fast producer waits for a slow
/// consumer instead of piling items up in memory.
pub(crate) const CREDIT: u8 = 13;
/// The worker's metric families (`prometheus_client`'s default registry
/// and MLServer's own), as JSON, for `/metrics`.
pub(crate) const METRICS: u8 = 14;
/// From the worker, unsolicited: one Python log record (JSON: `level`,
/// `logger`, `message`), for the server's log.
pub(crate) const LOG: u8 = 15;
/// A call of a model's `@custom_handler` endpoint: a JSON header (the
/// handler, method, path, query, headers) and the request body; the reply
/// is a JSON header (status, headers) and the response body.
pub(crate) const CUSTOM: u8 = 16;
/// To the worker: the server stopped waiting for a unary call (its
/// deadline passed, its client went away, the server is shutting down);
/// the worker cancels the call's task and sends no reply.
pub(crate) const CANCEL: u8 = 17;
/// Both ways, call id 0: regions of the receiver's shared area (`u64`
/// offsets) the sender is done with (see `shm`).
pub(crate) const RELEASE: u8 = 18;
/// A call of the user's `model_repository_implementation` (see `repository`).
pub(crate) const REPOSITORY: u8 = 19;
/// The items a stream's sender may have outstanding, each way.
pub(crate) const STREAM_WINDOW: u32 = 16;

/// The body of a [`CREDIT`] frame.
pub(crate) fn credit(n: u32) -> [u8; 4] {
    n.to_le_bytes()
}

/// The count a [`CREDIT`] frame grants (`None` if the body is malformed).
pub(crate) fn credit_of(body: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(body.try_into().ok()?))
}

const HEADER_LEN: usize = 13;
/// The largest body a frame carries (1 GiB: twice the server's default
/// request limit, well inside the `u32` length field). Readers refuse more,
/// so a corrupt length cannot make them allocate gigabytes.
pub(crate) const MAX_BODY: usize = 1 << 30;
const MAX_FRAME: usize = MAX_BODY + 9;

/// One decoded frame.
#[derive(Debug)]
pub(crate) struct Frame {
    pub kind: u8,
    pub call: u64,
    pub body: Bytes,
}

/// The bytes of one frame; `body` must not exceed [`MAX_BODY`].
pub(crate) fn encode(kind: u8, call: u64, body: &[u8]) -> Vec<u8> {
    debug_assert!(body.len() <= MAX_BODY);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.put_u32_le((body.len() + 9) as u32);
    out.put_u8(kind);
    out.put_u64_le(call);
    out.extend_from_slice(body);
    out
}

/// Reads the next frame; `Ok(None)` at a clean end of stream.
pub(crate) async fn read<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut h = &header[..];
    let length = h.get_u32_le() as usize;
    let kind = h.get_u8();
    let call = h.get_u64_le();
    if !(9..=MAX_FRAME).contains(&length) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad frame length {length}"),
        ));
    }
    let mut body = BytesMut::zeroed(length - 9);
    reader.read_exact(&mut body).await?;
    Ok(Some(Frame {
        kind,
        call,
        body: body.freeze(),
    }))
}

/// An inference body: a length-prefixed JSON header (HTTP headers), then
/// the protobuf message.
pub(crate) fn infer_body(meta: Option<&serde_json::Value>, message: &[u8]) -> Vec<u8> {
    let meta = meta.map(|m| m.to_string()).unwrap_or_default();
    let mut out = Vec::with_capacity(4 + meta.len() + message.len());
    out.put_u32_le(meta.len() as u32);
    out.extend_from_slice(meta.as_bytes());
    out.extend_from_slice(message);
    out
}

/// Splits an inference body into its JSON header (if any) and message.
pub(crate) fn split_infer_body(
    mut body: Bytes,
) -> std::io::Result<(Option<serde_json::Value>, Bytes)> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    if body.len() < 4 {
        return Err(bad("inference reply too short"));
    }
    let meta_len = body.get_u32_le() as usize;
    if body.len() < meta_len {
        return Err(bad("inference reply header overruns the frame"));
    }
    let meta = body.split_to(meta_len);
    let meta = if meta.is_empty() {
        None
    } else {
        Some(serde_json::from_slice(&meta).map_err(|_| bad("inference reply header is not JSON"))?)
    };
    Ok((meta, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip() {
        let mut wire = encode(INFER, 7, b"hello");
        wire.extend(encode(OK, 8, b""));
        let mut reader = &wire[..];
        let a = read(&mut reader).await.unwrap().unwrap();
        assert_eq!((a.kind, a.call, &a.body[..]), (INFER, 7, &b"hello"[..]));
        let b = read(&mut reader).await.unwrap().unwrap();
        assert_eq!((b.kind, b.call, b.body.len()), (OK, 8, 0));
        assert!(read(&mut reader).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn corrupt_lengths_are_errors() {
        let mut wire = encode(OK, 1, b"");
        wire[0] = 3; // shorter than the header itself
        assert!(read(&mut &wire[..]).await.is_err());
    }

    #[test]
    fn credits_round_trip() {
        assert_eq!(credit_of(&credit(3)), Some(3));
        assert_eq!(credit_of(b"123"), None);
    }

    #[test]
    fn infer_bodies_split() {
        let meta = serde_json::json!({"headers": {"a": "b"}});
        let body = infer_body(Some(&meta), b"pb");
        let (m, rest) = split_infer_body(Bytes::from(body)).unwrap();
        assert_eq!(m, Some(meta));
        assert_eq!(&rest[..], b"pb");
        let (m, rest) = split_infer_body(Bytes::from(infer_body(None, b"x"))).unwrap();
        assert!(m.is_none() && &rest[..] == b"x");
    }
}
