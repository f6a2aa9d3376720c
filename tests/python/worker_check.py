"""Checks the Python worker's own fast paths against what they stand in for.

Run by `tests/python_runtimes.rs` with the MLServer venv's python and the
worker package's folder as its argument:

- replies written directly (`_response_to_pb`) parse to the very message
  MLServer's `ModelInferResponseConverter.from_types(use_raw=True)` builds,
  on a corpus of responses (datatypes, shapes, parameters of every kind,
  ids, versions, BYTES); what the direct writer refuses, the converter must
  be the one to take;
- gRPC requests read by the fast path (`_request_from_pb`) are the very
  objects MLServer's `ModelInferRequestConverter.to_types` builds (fields,
  fields set, extras, types, in order), on a corpus of requests (raw and
  typed contents, mixed, BYTES, parameters of every kind, outputs), and
  the requests it cannot read fail with the converter's own error;
- frames are cut from the socket's bytes however they are split;
- replies held during a batch reach the socket whole and in order, behind
  anything the transport already had queued;
- busy polling: a frame that comes while the worker polls after answering
  is answered without the event loop, polling starts only once frames come
  close together, stops after a poll that catches nothing, and the end of
  the stream still reaches the event loop.
"""

import asyncio
import random
import socket
import sys

sys.path.insert(0, sys.argv[1])

from mlserver_rs_worker import connection, fast, mlserver_api, wire  # noqa: E402
from mlserver import types  # noqa: E402
from mlserver.codecs import NumpyCodec, StringCodec  # noqa: E402
from mlserver.grpc import dataplane_pb2 as pb  # noqa: E402
from mlserver.grpc.converters import (  # noqa: E402
    ModelInferRequestConverter,
    ModelInferResponseConverter,
)
import numpy as np  # noqa: E402


def responses():
    P = types.Parameters
    out = types.ResponseOutput
    yield types.InferenceResponse(
        model_name="m",
        outputs=[NumpyCodec.encode_output("output", np.arange(16, dtype=np.float32))],
    )
    yield types.InferenceResponse(
        model_name="m",
        model_version="v1",
        id="abc",
        parameters=P(content_type="np", custom=True, count=3, label="x", ratio=0.5),
        outputs=[
            out(name="a", datatype="INT64", shape=[2, 2], data=[1, -2, 3, 2**62]),
            out(name="b", datatype="BOOL", shape=[3], data=[True, False, True]),
            out(name="c", datatype="FP64", shape=[1], data=[1e300]),
            out(name="d", datatype="UINT8", shape=[0], data=[]),
            out(name="e", datatype="FP16", shape=[2], data=[0.5, -1.0]),
            out(name="f", datatype="UINT64", shape=[1], data=[2**64 - 1]),
            out(name="g", datatype="INT8", shape=[2], data=[-128, 127]),
        ],
    )
    yield types.InferenceResponse(
        model_name="m",
        outputs=[StringCodec.encode_output("s", ["hello", "wörld", ""])],
    )
    # Parameters set but None, unset, nested, and a negative int.
    yield types.InferenceResponse(
        model_name="m",
        id="",
        model_version="",
        parameters=P(content_type=None, nested={"a": 1}, minus=-7, flag=False),
        outputs=[
            out(
                name="x" * 200,
                datatype="FP32",
                shape=[1, 300],
                data=[float(i) / 3 for i in range(300)],
                parameters=P(headers={"h": "v"}, content_type="np"),
            )
        ],
    )
    # A big shape, dimensions over one varint byte.
    yield types.InferenceResponse(
        model_name="big",
        outputs=[out(name="o", datatype="INT32", shape=[1, 70000], data=list(range(70000)))],
    )
    # Things the direct writer must hand to the converter.
    yield types.InferenceResponse(
        model_name="m", outputs=[out(name="o", datatype="FP32", shape=[2], data=[1.0])]
    )
    odd = types.InferenceResponse(
        model_name="m", outputs=[out(name="o", datatype="FP32", shape=[1], data=[1.0])]
    )
    odd.outputs[0].shape = [1.0]
    yield odd
    yield types.InferenceResponse(
        model_name="m",
        parameters=P(huge=2**70),
        outputs=[out(name="o", datatype="FP32", shape=[1], data=[1.0])],
    )


def pb_requests():
    """(request, why) pairs: what a gRPC client can send."""

    def request(**fields):
        return pb.ModelInferRequest(**fields)

    def tensor(name, datatype, shape, **fields):
        return pb.ModelInferRequest.InferInputTensor(
            name=name, datatype=datatype, shape=shape, **fields
        )

    raw16 = np.arange(16, dtype=np.float32).tobytes()
    yield request(
        model_name="m", inputs=[tensor("input", "FP32", [1, 16])], raw_input_contents=[raw16]
    ), "raw FP32"
    yield request(
        model_name="m",
        model_version="v2",
        id="abc",
        parameters={
            "content_type": pb.InferParameter(string_param="np"),
            "flag": pb.InferParameter(bool_param=True),
            "n": pb.InferParameter(int64_param=-3),
        },
        inputs=[
            tensor(
                "a",
                "INT64",
                [2, 2],
                parameters={"content_type": pb.InferParameter(string_param="np")},
            ),
            tensor("b", "BOOL", [3]),
            tensor("c", "BYTES", [2]),
            tensor("d", "UINT8", [0]),
            tensor("e", "FP16", [2]),
        ],
        outputs=[
            pb.ModelInferRequest.InferRequestedOutputTensor(name="o"),
            pb.ModelInferRequest.InferRequestedOutputTensor(
                name="p", parameters={"binary_data": pb.InferParameter(bool_param=False)}
            ),
        ],
        raw_input_contents=[
            np.array([1, -2, 3, 2**62], dtype=np.int64).tobytes(),
            np.array([True, False, True]).tobytes(),
            b"\x05\x00\x00\x00hello\x00\x00\x00\x00",
            b"",
            np.array([0.5, -1.0], dtype=np.float16).tobytes(),
        ],
    ), "raw of every kind, parameters, outputs"
    yield request(
        model_name="m",
        inputs=[
            tensor("t", "FP32", [2], contents=pb.InferTensorContents(fp32_contents=[1.5, 2.5])),
            tensor("s", "BYTES", [1], contents=pb.InferTensorContents(bytes_contents=[b"x"])),
            tensor("i", "INT32", [3], contents=pb.InferTensorContents(int_contents=[1, 2, 3])),
        ],
    ), "typed contents"
    yield request(
        model_name="m",
        inputs=[
            tensor("typed", "FP64", [1], contents=pb.InferTensorContents(fp64_contents=[1.0])),
            tensor("raw", "INT16", [2]),
        ],
        raw_input_contents=[np.array([7, -7], dtype=np.int16).tobytes()],
    ), "typed then raw"
    yield request(model_name="m", inputs=[]), "no inputs"
    big = np.arange(3 * 70000, dtype=np.float64)
    yield request(
        model_name="m",
        inputs=[tensor("big", "FP64", [3, 70000])],
        raw_input_contents=[big.tobytes()],
    ), "big raw"
    # What neither reads.
    yield request(
        model_name="m", inputs=[tensor("short", "FP32", [1, 16])], raw_input_contents=[raw16[:8]]
    ), "raw shorter than its shape"
    yield request(
        model_name="m",
        inputs=[tensor("a", "FP32", [1]), tensor("b", "FP32", [1])],
        raw_input_contents=[raw16[:4]],
    ), "fewer raw entries than inputs"
    yield request(
        model_name="m", inputs=[tensor("odd", "FP128", [1])], raw_input_contents=[raw16[:4]]
    ), "raw of an unknown datatype"


def dump(value):
    """A pydantic object as everything that tells two apart: class, fields
    in order, fields set, extras, private attributes; recursively (a lazy
    `TensorData` read as a list first, as anything reading it does)."""
    if hasattr(value, "__pydantic_fields_set__"):
        if type(value).__name__ == "TensorData" and "root" not in value.__dict__:
            value.root  # noqa: B018 - built by reading it
        return (
            type(value).__name__,
            [(k, dump(v)) for k, v in value.__dict__.items()],
            sorted(value.__pydantic_fields_set__),
            dump(getattr(value, "__pydantic_extra__", None)),
            getattr(value, "__pydantic_private__", None),
        )
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [dump(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", [(k, dump(v)) for k, v in value.items()]]
    if isinstance(value, float) and value != value:
        return ("nan",)
    return (type(value).__name__, value)


def check_requests():
    import warnings

    checked = 0
    for message, why in pb_requests():
        message = pb.ModelInferRequest.FromString(message.SerializeToString())
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                theirs = ("ok", dump(ModelInferRequestConverter.to_types(message)))
        except Exception as e:
            theirs = ("error", type(e).__name__, str(e))
        try:
            ours = ("ok", dump(fast.request_from_pb(message)))
        except Exception as e:
            ours = ("error", type(e).__name__, str(e))
        assert ours == theirs, f"{why}:\n ours   {ours}\n theirs {theirs}"
        checked += 1
    # The fast path itself ran (not only its fallback) where it can.
    ok = pb.ModelInferRequest(model_name="m")
    ok.inputs.add(name="i", datatype="FP32", shape=[1])
    ok.raw_input_contents.append(b"\x00\x00\x80?")
    fast._request_from_pb_fast(ok, mlserver_api.names())
    assert all(plan is not None for plan in fast._CONSTRUCT_PLANS.values()), fast._CONSTRUCT_PLANS
    print(f"requests: {checked} read as MLServer's converter reads them")


def check_replies():
    checked = 0
    for response in responses():
        expected = None
        try:
            expected = ModelInferResponseConverter.from_types(
                response.model_copy(deep=True), use_raw=True
            ).SerializeToString(deterministic=True)
        except Exception as error:  # noqa: BLE001 - compared below
            expected = error
        try:
            direct, _ = fast._response_to_pb(response.model_copy(deep=True), None)
        except Exception:  # noqa: BLE001 - the converter's turn
            direct = None
        if direct is None:
            continue  # encode_response falls back to the converter
        assert not isinstance(expected, Exception), (
            f"the converter refuses {response!r} ({expected!r}) but the direct writer wrote it"
        )
        got = pb.ModelInferResponse.FromString(direct)
        assert got.SerializeToString(deterministic=True) == expected, (
            f"direct reply differs for {response!r}:\n{got}\n---\n"
            f"{pb.ModelInferResponse.FromString(expected)}"
        )
        checked += 1
    assert checked >= 5, checked
    print(f"replies: {checked} written directly, each equal to the converter's")


class Recorder:
    def __init__(self):
        self.frames = []

    def dispatch(self, kind, call, body):
        self.frames.append((kind, call, body))


class NoWrites:
    frames = 0
    held_bytes = 0

    def hold(self):
        pass

    def release(self):
        pass

    def flush(self):
        pass


def check_framing(loop):
    rnd = random.Random(7)
    for trial in range(300):
        frames = [
            (
                rnd.randint(1, 17),
                rnd.randint(0, 2**64 - 1),
                rnd.randbytes(rnd.choice([0, 1, 5, 100, 3000, 70000])),
            )
            for _ in range(rnd.randint(1, 8))
        ]
        stream = b"".join(wire.HEADER.pack(len(b) + 9, k, c) + b for k, c, b in frames)
        conn = connection._Connection(loop.create_future())
        conn.worker = Recorder()
        conn.worker.writer = NoWrites()
        i = 0
        while i < len(stream):
            n = rnd.choice([1, 2, 7, 13, 100, 5000, 100000])
            conn.data_received(stream[i : i + n])
            i += n
        assert conn.worker.frames == frames, f"trial {trial}"
        assert not conn.pending
        assert all(type(b) is bytes for _, _, b in conn.worker.frames)
    print("framing: 300 random splits cut right")


async def check_writer():
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    transport, _ = await loop.connect_accepted_socket(asyncio.Protocol, ours)
    writer = connection._Writer(transport)
    expected = []
    # Something already queued in the transport, then held replies (small
    # ones flushed every few, a large one at once), then more.
    first = b"queued" * 10
    transport.write(first)
    expected.append(first)
    writer.hold()
    for i in range(11):
        body = bytes([i]) * (200_000 if i == 5 else 50)
        writer.write(body)
        expected.append(body)
        writer.frames += 1
        if writer.frames >= connection._FLUSH_FRAMES or writer.held_bytes >= connection._FLUSH_BYTES:
            writer.flush()
    writer.release()
    writer.write(b"after")
    expected.append(b"after")
    want = b"".join(expected)
    theirs.setblocking(False)
    got = bytearray()
    while len(got) < len(want):
        try:
            got += theirs.recv(1 << 20)
        except BlockingIOError:
            await asyncio.sleep(0.001)
    assert bytes(got) == want, "held replies reordered or cut"
    transport.close()
    theirs.close()
    print(f"writer: {len(want)} bytes in order")


async def check_busy_poll():
    import threading
    import time

    loop = asyncio.get_running_loop()
    connection._BUSY_POLL, connection._BUSY_POLL_TURN = 0.05, 1.0
    ours, theirs = socket.socketpair()
    closed = loop.create_future()
    calls = []

    class Counting(connection._Connection):
        """Counts the event loop's calls: each is a wake-up."""

        def data_received(self, data):
            calls.append(len(data))
            super().data_received(data)

    _, conn = await loop.connect_accepted_socket(lambda: Counting(closed), ours)
    ping = wire.HEADER.pack(9, wire.PING, 7)
    reply = wire.HEADER.pack(9, wire.OK, 7)

    async def answered(n):
        theirs.setblocking(False)
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < n * len(reply):
            assert time.monotonic() < deadline, f"{len(got)} bytes of {n} replies"
            try:
                got += theirs.recv(1 << 16)
            except BlockingIOError:
                await asyncio.sleep(0.001)
        assert got == reply * n, got

    # The first frame: no gap known yet, no poll.
    theirs.send(ping)
    await answered(1)
    assert len(calls) == 1 and conn.gap == float("inf"), (calls, conn.gap)
    # A second one right after: a short gap, so the worker polls, and a
    # third sent while it polls is answered inside the same call.
    theirs.send(ping)
    threading.Timer(0.01, lambda: theirs.send(ping)).start()
    await answered(2)
    assert len(calls) == 2, f"the third frame woke the event loop: {calls}"
    # The poll then caught nothing for its window: it counts as a long gap,
    # and a frame after a long pause is answered without polling.
    assert conn.gap >= connection._BUSY_POLL, conn.gap
    await asyncio.sleep(4 * connection._BUSY_POLL)
    started = time.monotonic()
    theirs.send(ping)
    await answered(1)
    assert len(calls) == 3 and time.monotonic() - started < connection._BUSY_POLL, calls
    # The end of the stream reaches the event loop.
    theirs.shutdown(socket.SHUT_WR)
    await asyncio.wait_for(closed, 5)
    theirs.close()
    print(f"busy poll: {len(calls)} wake-ups for 4 frames")


def check_lazy():
    """A lazy `TensorData` (tensors.py) behaves as MLServer's `TensorData`
    of the list it stands for, in everything a model or MLServer does with
    one; NumpyCodec through it gives what MLServer's gives."""
    import copy
    import pickle

    import numpy as np
    from mlserver.codecs import NumpyCodec
    from mlserver.types import RequestInput, TensorData

    from mlserver_rs_worker import tensors

    tensors.install()
    values = np.array([1.5, -2.0, 3.25, 0.0], dtype=np.float32)

    def both():
        lazy = tensors.lazy(values.copy())
        plain = TensorData(values.tolist())
        return lazy, plain

    operations = {
        "root": lambda d: d.root,
        "len": len,
        "iter": list,
        "getitem": lambda d: d[1],
        "eq-plain": lambda d: d == TensorData(values.tolist()),
        "eq-reversed": lambda d: TensorData(values.tolist()) == d,
        "eq-other": lambda d: d == TensorData([1]),
        "repr": repr,
        "str": str,
        "dump": lambda d: d.model_dump(),
        "dump-json": lambda d: d.model_dump_json(),
        "copy": lambda d: tensors.fields(copy.copy(d)),
        "deepcopy": lambda d: tensors.fields(copy.deepcopy(d)),
        "model-copy": lambda d: tensors.fields(d.model_copy()),
        "model-copy-deep": lambda d: tensors.fields(d.model_copy(deep=True)),
        "pickle": lambda d: (type(pickle.loads(pickle.dumps(d))) is TensorData, pickle.loads(pickle.dumps(d)).root),
        "isinstance": lambda d: isinstance(d, TensorData),
        "fields": tensors.fields,
        "in-input-json": lambda d: RequestInput(name="x", shape=[4], datatype="FP32", data=d).model_dump_json(),
        "in-input-eq": lambda d: RequestInput.model_construct(name="x", shape=[4], datatype="FP32", data=d, parameters=None)
        == RequestInput.model_construct(name="x", shape=[4], datatype="FP32", data=TensorData(values.tolist()), parameters=None),
        "numpy-twice": lambda d: _decode_twice(d),
        "mutate-root": lambda d: (d.root.append(9), d.root)[1],
    }
    for name, operation in operations.items():
        lazy, plain = both()
        ours, theirs = operation(lazy), operation(plain)
        same = ours == theirs if not isinstance(ours, np.ndarray) else np.array_equal(ours, theirs)
        assert same, f"lazy TensorData, {name}: {ours!r} != {theirs!r}"

    # encode_output: MLServer's output, NaN as None in its list.
    for dtype in ("float32", "float64", "int8", "uint64", "float16"):
        payload = np.arange(6, dtype=dtype).reshape(2, 3)
        if payload.dtype.kind == "f":
            payload[0, 1] = np.nan
        ours = NumpyCodec.encode_output("o", payload)
        theirs = tensors._ORIGINAL["encode_output"](NumpyCodec, "o", payload)
        assert tensors.fields(ours) == tensors.fields(theirs), dtype
        assert ours.model_dump_json() == theirs.model_dump_json(), dtype
    print(f"lazy: {len(operations)} operations as MLServer's TensorData, encode_output alike")


def _decode_twice(data):
    """Decodes, changes the array, decodes again: the second is untouched."""
    from mlserver.codecs import NumpyCodec
    from mlserver.types import RequestInput

    request_input = RequestInput.model_construct(
        name="x", shape=[2, 2], datatype="FP32", data=data, parameters=None
    )
    first = NumpyCodec.decode_input(request_input)
    first *= 2
    second = NumpyCodec.decode_input(request_input)
    assert first.flags.writeable and second.flags.writeable
    return [first.tolist(), second.tolist(), list(request_input.data)]


async def main():
    check_requests()
    check_replies()
    check_lazy()
    check_framing(asyncio.get_running_loop())
    await check_writer()
    await check_busy_poll()


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
