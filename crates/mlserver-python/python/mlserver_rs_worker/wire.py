"""The frames between the server and this worker (the Rust side:
`crates/mlserver-python/src/frame.rs`; the two must agree).

Both ways: little-endian u32 length of the rest, u8 kind, u64 call id, then
the body. Inference bodies are a u32-length-prefixed JSON header followed by
the message: the request as the client's JSON text (`"json": true` in the
header) or a serialised `inference.ModelInferRequest` with raw tensor
contents; replies the same way (a `ModelInferResponse`, or MLServer's REST
JSON with `"json": true`).

Streams are flow-controlled both ways: each side may have `window` items
(from STREAM_OPEN) outstanding and grants a CREDIT per item its consumer
took, so a generator faster than its client waits instead of piling
responses up in the server, and a client faster than the generator waits
instead of piling requests up here.
"""

import json
import struct

LOAD, UNLOAD, INFER, METADATA, PING = 1, 2, 3, 4, 5
STREAM_OPEN, STREAM_ITEM, STREAM_END, STREAM_CANCEL = 6, 7, 8, 9
OK, ERROR, ITEM = 10, 11, 12
# Both ways on an open stream: the peer may send n (u32 body) more items.
CREDIT = 13
# The worker's metric families, as JSON, for the server's /metrics.
METRICS = 14
# Unsolicited, to the server: one log record.
LOG = 15
# A call of a model's @custom_handler endpoint.
CUSTOM = 16
# A unary call the server gave up on (a deadline, a client gone, shutdown).
CANCEL = 17
# A call of the user's `model_repository_implementation` (`list` / `find`).
REPOSITORY = 19

HEADER = struct.Struct("<IBQ")
LENGTH = struct.Struct("<I")
# The largest body the server reads (`frame::MAX_BODY`).
MAX_BODY = 1 << 30


def frame(kind: int, call: int, body: bytes) -> bytes:
    return HEADER.pack(len(body) + 9, kind, call) + body


def split_body(body, from_json=json.loads, view=False):
    """An inference body's JSON header (a dict, empty if none) and message
    (with `view`, a memoryview of it: no copy of a large body)."""
    (meta_length,) = LENGTH.unpack_from(body)
    meta = from_json(body[4 : 4 + meta_length]) if meta_length else {}
    return meta, (memoryview(body) if view else body)[4 + meta_length :]


def join_body(meta: dict, message: bytes) -> bytes:
    """An inference reply body: the JSON header (none if `meta` is empty)
    and the message."""
    meta_bytes = json.dumps(meta).encode() if meta else b""
    return LENGTH.pack(len(meta_bytes)) + meta_bytes + message


def error_body(error: BaseException) -> bytes:
    """As MLServer's WorkerError reports what its workers raise: the
    exception's import path, then its message; an MLServerError keeps the
    status it chose, anything else is a 500."""
    status = getattr(error, "status_code", 500)
    kind = type(error)
    message = f"{kind.__module__}.{kind.__name__}: {error}"
    return json.dumps({"status": status, "message": message}).encode()


# Both ways, call id 0: regions of the receiver's shared area (u64 offsets)
# the sender is done with.
RELEASE = 18
_OFFSET = struct.Struct("<Q")


def offsets(values) -> bytes:
    return b"".join(_OFFSET.pack(v) for v in values)


def offsets_of(body: bytes):
    return [v for (v,) in _OFFSET.iter_unpack(body)]
