"""A worker process of mlserver-rs: serves MLServer `MLModel` classes, unchanged.

The Rust server starts one per `parallel_workers` and environment, and talks
to it over a Unix domain socket. Everything the user's code sees comes from
the real `mlserver` package: `ModelSettings` (with `_source`, so imports and
`get_model_uri` resolve as in MLServer), `MLModel`, `types` and the gRPC
converters that turn the protobuf messages carried here into `types` objects.

Frames, both ways: little-endian u32 length of the rest, u8 kind, u64 call id,
then the body. Inference bodies are a u32-length-prefixed JSON header (HTTP
headers only) followed by a serialised `inference.ModelInferRequest` or
`ModelInferResponse` with raw tensor contents: no JSON tensors on the hot
path. Calls run as concurrent asyncio tasks; replies carry the call id.

Streams are flow-controlled both ways: each side may have `window` items
(from STREAM_OPEN) outstanding and grants a CREDIT per item its consumer
took, so a generator faster than its client waits instead of piling
responses up in the server, and a client faster than the generator waits
instead of piling requests up here.
"""

import asyncio
import contextvars
import inspect
import json
import logging
import math
import os
import struct
import sys
import threading
import time
import traceback
from types import SimpleNamespace

LOAD, UNLOAD, INFER, METADATA, PING = 1, 2, 3, 4, 5
STREAM_OPEN, STREAM_ITEM, STREAM_END, STREAM_CANCEL = 6, 7, 8, 9
# A unary call the server gave up on (a deadline, a client gone, shutdown).
CANCEL = 17
OK, ERROR, ITEM = 10, 11, 12
# Both ways on an open stream: the peer may send n (u32 body) more items.
CREDIT = 13
# The worker's metric families, as JSON, for the server's /metrics.
METRICS = 14
# Unsolicited, to the server: one log record.
LOG = 15
# A call of a model's @custom_handler endpoint.
CUSTOM = 16

# The ODH fork's production mode: model classes come from the environment
# only, never from a model's folder put on sys.path.
PRODUCTION = os.environ.get("MLSERVER_RS_PRODUCTION") == "1"

HEADER = struct.Struct("<IBQ")
LENGTH = struct.Struct("<I")


async def _result(value):
    """The value of an `MLModel` method, called sync or async: the custom
    runtime guide writes `def load(self)` and `def predict(self, payload)`,
    which MLServer 1.7.1 fails on (`object bool can't be used in 'await'
    expression`)."""
    if inspect.isawaitable(value):
        return await value
    return value


_MLSERVER = None


def _mlserver():
    """The `mlserver` names the inference path uses, imported once: a
    `from package import name` in a function runs importlib's Python
    `_handle_fromlist` on every call, a few microseconds per request."""
    global _MLSERVER
    if _MLSERVER is None:

        from mlserver import raw, types
        from mlserver.context import model_context
        from mlserver.grpc import converters
        from mlserver.grpc import dataplane_pb2
        from pydantic_core import from_json

        _MLSERVER = SimpleNamespace(
            types=types,
            InferenceRequest=types.InferenceRequest,
            Parameters=types.Parameters,
            model_context=model_context,
            converters=converters,
            pb=dataplane_pb2,
            pack=raw.pack,
            unpack=raw.unpack,
            inject_raw=raw.inject_raw,
            # `raw._DatatypeToCtype` by datatype string (absent in another
            # release: then every tensor goes through `raw.pack`).
            raw_ctypes={
                getattr(datatype, "value", datatype): ctype
                for datatype, ctype in getattr(raw, "_DatatypeToCtype", {}).items()
            },
            # The server's own JSON (frame headers): pydantic-core's parser,
            # three times faster than `json.loads` on these small objects.
            from_json=from_json,
        )
    return _MLSERVER


def _exit_when_orphaned(parent: int) -> None:
    # The server may die without closing our socket cleanly (SIGKILL with a
    # predict running here): never outlive it.
    while True:
        if os.getppid() != parent:
            os._exit(0)
        time.sleep(0.5)


class _ServerLog(logging.Handler):
    """Python log records (the `mlserver` logger's, the model's own) go to
    the server's log as LOG frames, from whichever thread logs."""

    def __init__(self, writer, loop):
        super().__init__()
        self.writer = writer
        self.loop = loop

    def emit(self, record):
        try:
            message = self.format(record)
            body = json.dumps(
                {"level": record.levelname, "logger": record.name, "message": message}
            ).encode()
            self.loop.call_soon_threadsafe(
                self.writer.write, HEADER.pack(len(body) + 9, LOG, 0) + body
            )
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _forward_logs(writer, loop) -> None:
    """As MLServer configures its workers: the `mlserver` logger at INFO
    (DEBUG with `debug`); other loggers at their own levels (the root's
    default, WARNING, lets a model's warnings and errors through, as
    Python's last-resort handler would print them)."""
    handler = _ServerLog(writer, loop)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logging.getLogger().addHandler(handler)
    level = os.environ.get("MLSERVER_RS_LOG_LEVEL", "INFO")
    logging.getLogger("mlserver").setLevel(level)


def _samples(metric):
    for sample in metric.samples:
        # The multiprocess collector MLServer uses drops `_created`.
        if sample.name.endswith("_created") or not math.isfinite(sample.value):
            continue
        yield [sample.name, dict(sample.labels), sample.value]


def _request_from_json(payload: bytes):
    """A REST request body as MLServer's REST server reads it: `json.loads`,
    then `InferenceRequest.model_validate`.

    pydantic's own JSON parser builds the same model from the bytes in one
    pass, at 60% of the cost; the two differ only where the text is odd (a
    lone surrogate escape, which pydantic refuses), so on any error the
    request is read again MLServer's way, which raises what MLServer raises.
    """
    InferenceRequest = _mlserver().InferenceRequest
    try:
        return InferenceRequest.model_validate_json(payload)
    except Exception:
        return InferenceRequest.model_validate(json.loads(payload))


def _request_from_pb(message):
    """`ModelInferRequestConverter.to_types`: the fast reading below, and
    on any error the converter's own steps, which raise what MLServer
    raises."""
    m = _mlserver()
    if getattr(m.converters, "_get_value", None) is None:
        # Another MLServer release: its own converter.
        return m.converters.ModelInferRequestConverter.to_types(message)
    try:
        return _request_from_pb_fast(message, m)
    except Exception:
        return _request_from_pb_exact(message)


def _request_from_pb_exact(message):
    """`ModelInferRequestConverter.to_types`, step for step, with
    `model_construct` where it calls pydantic's deprecated `construct`
    (which warns, at a third of the whole conversion's cost, and then calls
    `model_construct`): the same unvalidated objects, so a model sees the
    datatype string, the empty id and the lists MLServer gives it."""
    m = _mlserver()
    types, converters, inject_raw = m.types, m.converters, m.inject_raw
    _get_value = converters._get_value
    parameters = converters.ParametersConverter.to_types

    request = types.InferenceRequest.model_construct(
        id=message.id,
        parameters=parameters(message.parameters),
        inputs=[
            types.RequestInput.model_construct(
                name=tensor.name,
                shape=list(tensor.shape),
                datatype=tensor.datatype,
                parameters=parameters(tensor.parameters),
                data=types.TensorData(root=list(_get_value(tensor.contents, []))),
            )
            for tensor in message.inputs
        ],
    )
    if message.outputs:
        request.outputs = [
            types.RequestOutput.model_construct(
                name=output.name, parameters=parameters(output.parameters)
            )
            for output in message.outputs
        ]
    if message.raw_input_contents:
        inject_raw(request.inputs, message.raw_input_contents)
    return request


def _request_from_pb_fast(message, m):
    """The objects `_request_from_pb_exact` builds, built directly: each
    model from a prepared field dictionary (`_construct`, a quarter of
    `model_construct`'s cost), raw contents unpacked with a cached
    `struct.Struct` of `mlserver.raw`'s format, straight into the input."""
    types = m.types
    _get_value = m.converters._get_value
    parameters = m.converters.ParametersConverter.to_types
    TensorData, RequestInput = types.TensorData, types.RequestInput
    raw = message.raw_input_contents
    raw_at = 0
    inputs = []
    for tensor in message.inputs:
        shape = list(tensor.shape)
        data = list(_get_value(tensor.contents, []))
        if not data and raw:
            # `inject_raw`: an input without contents takes the next raw
            # entry (IndexError past the last, as there).
            data = _unpack_raw(m, tensor.datatype, shape, raw[raw_at])
            raw_at += 1
        inputs.append(
            _construct(
                RequestInput,
                name=tensor.name,
                shape=shape,
                datatype=tensor.datatype,
                parameters=parameters(tensor.parameters),
                data=TensorData(data),
            )
        )
    request = _construct(
        types.InferenceRequest,
        id=message.id,
        parameters=parameters(message.parameters),
        inputs=inputs,
    )
    if message.outputs:
        # Set after construction, as the converter does: `outputs` joins the
        # fields set.
        request.outputs = [
            _construct(
                types.RequestOutput,
                name=output.name,
                parameters=parameters(output.parameters),
            )
            for output in message.outputs
        ]
    return request


# `struct.Struct`s of `mlserver.raw`'s tensor formats, by (datatype, shape).
_RAW_UNPACKERS = {}


def _unpack_raw(m, datatype, shape, raw):
    """`mlserver.raw.unpack` of one raw entry for a tensor: the same format
    (native order, as there), the same errors (through `raw.unpack` for
    anything not cached)."""
    key = (datatype, tuple(shape))
    unpacker = _RAW_UNPACKERS.get(key)
    if unpacker is None:
        ctype = m.raw_ctypes.get(datatype)
        if ctype is None or len(_RAW_UNPACKERS) >= 256:
            return m.unpack(SimpleNamespace(datatype=datatype, shape=shape), raw)
        size = 1
        for dim in shape:
            size *= dim
        unpacker = _RAW_UNPACKERS[key] = struct.Struct(f"{size}{ctype}")
    return list(unpacker.unpack(raw))


# How `_construct` builds each model class (or `None`: through
# `model_construct`).
_CONSTRUCT_PLANS = {}
_object_setattr = object.__setattr__


def _construct(cls, **values):
    """`cls.model_construct(**values)`, for values that are all fields by
    name. pydantic's walks the class's fields on every call; here that walk
    is done once per class (`_construct_plan`), which checks that both ways
    build the same object."""
    plan = _CONSTRUCT_PLANS.get(cls, False)
    if plan is False:
        plan = _CONSTRUCT_PLANS[cls] = _construct_plan(cls)
    if plan is None:
        return cls.model_construct(**values)
    defaults, required, extra = plan
    if not required.issubset(values):
        return cls.model_construct(**values)
    fields = defaults.copy()
    fields.update(values)
    obj = cls.__new__(cls)
    _object_setattr(obj, "__dict__", fields)
    _object_setattr(obj, "__pydantic_fields_set__", set(values))
    _object_setattr(obj, "__pydantic_extra__", {} if extra else None)
    _object_setattr(obj, "__pydantic_private__", None)
    return obj


def _construct_plan(cls):
    """The field defaults (in field order, with the required fields' places
    kept), the required names and whether extras are kept; `None` where
    `model_construct` does more than fill fields (aliases, default
    factories, post-init, root models) or builds something else."""
    try:
        if cls.__pydantic_root_model__ or cls.__pydantic_post_init__:
            return None
        defaults, required = {}, set()
        for name, field in cls.__pydantic_fields__.items():
            if field.alias not in (None, name) or field.default_factory is not None:
                return None
            if field.is_required():
                required.add(name)
                defaults[name] = None
            else:
                defaults[name] = field.default
        extra = cls.model_config.get("extra") == "allow"
        plan = (defaults, frozenset(required), extra)
        # Both ways, on the same values: the same object, or no plan.
        probe = {name: object() for name in required}
        theirs = cls.model_construct(**probe)
        _CONSTRUCT_PLANS[cls] = plan
        ours = _construct(cls, **probe)
        same = all(
            getattr(ours, attr, None) == getattr(theirs, attr, None)
            for attr in (
                "__dict__",
                "__pydantic_fields_set__",
                "__pydantic_extra__",
                "__pydantic_private__",
            )
        ) and list(ours.__dict__) == list(theirs.__dict__)
        return plan if same else None
    except Exception:
        return None


# A task's context can be chosen from Python 3.11 on; before, calls run in
# tasks from their first step.
_EAGER = sys.version_info >= (3, 11)


class _Suspended:
    """The rest of a coroutine that suspended on its first step (`step`,
    what it yielded), awaitable by a task: the task gets what the coroutine
    yields, and the coroutine what the task sends or throws."""

    __slots__ = ("coro", "step")

    def __init__(self, coro, step):
        self.coro = coro
        self.step = step

    def __await__(self):
        coro, step = self.coro, self.step
        while True:
            try:
                value = yield step
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as error:  # noqa: B036 - a cancellation too
                try:
                    step = coro.throw(error)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    step = coro.send(value)
                except StopIteration as stop:
                    return stop.value


async def _finish(rest):
    return await rest


# A serialised `ModelInferResponse`, written directly.
#
# `ModelInferResponseConverter.from_types(response, use_raw=True)` builds
# protobuf objects field by field (a third of a small request's cost in the
# worker) only to serialise them at once. This writes the same message: the
# same fields under the same conditions (`if parameters:`, ids and versions
# unless None, parameters as `ParametersConverter` keeps them: bools, strings
# and int64s, the rest dropped), with the raw contents packed by MLServer's
# own `raw.pack`. Anything it does not expect (a value protobuf would coerce
# or refuse) raises `_Unusual`, and the caller uses the converter instead.
# Field numbers: proto/dataplane.proto.


class _Unusual(Exception):
    pass


# One-byte varints and field tags, the common case.
_SMALL = [bytes((i,)) for i in range(0x80)]
_TAGS = [bytes(((n << 3 | 2),)) for n in range(16)]


def _varint(value: int) -> bytes:
    if 0 <= value < 0x80:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _int64(value: int) -> bytes:
    if not -(1 << 63) <= value < (1 << 63):
        raise _Unusual
    return _varint(value & 0xFFFFFFFFFFFFFFFF)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (numbers under 16: one-byte tags)."""
    length = len(payload)
    return _TAGS[number] + (_SMALL[length] if length < 0x80 else _varint(length)) + payload


def _text(value) -> bytes:
    if type(value) is not str:
        raise _Unusual
    return value.encode("utf-8")


def _parameter_items(parameters):
    """`parameters.model_dump(by_alias=True).items()` (MLServer's
    `model_dump` leaves out unset and None fields), read from the object for
    a plain `Parameters` without extra fields (no aliases, no nesting to
    convert: what the codecs write); anything else through `model_dump`."""
    if type(parameters) is _mlserver().Parameters and not parameters.__pydantic_extra__:
        fields_set = parameters.__pydantic_fields_set__
        values = parameters.__dict__
        return [
            (name, values[name])
            for name in type(parameters).model_fields
            if name in fields_set and values.get(name) is not None
        ]
    return parameters.model_dump(by_alias=True).items()


def _parameters(number: int, parameters) -> bytes:
    """A `map<string, InferParameter>` field, as `_merge_map` fills it."""
    out = []
    for key, value in _parameter_items(parameters):
        if isinstance(value, bool):
            param = b"\x08" + (b"\x01" if value else b"\x00")
        elif isinstance(value, str):
            param = _field(3, _text(value))
        elif isinstance(value, int):
            if type(value) is not int:
                raise _Unusual
            param = b"\x10" + _int64(value)
        else:
            continue
        out.append(_field(number, _field(1, _text(key)) + _field(2, param)))
    return b"".join(out)


# `struct.Struct`s of `mlserver.raw`'s tensor formats, by format; bounded.
_RAW_FORMATS = {}


def _pack(output) -> bytes:
    """`mlserver.raw.pack(output)`: for a numeric tensor, its data packed
    with the format `raw._tensor_format` writes (the element count, then the
    datatype's native struct code), by a cached `struct.Struct`."""
    m = _mlserver()
    datatype = output.datatype
    ctype = m.raw_ctypes.get(datatype) if datatype != "BYTES" else None
    if ctype is None:
        return m.pack(output)
    size = 1
    for dim in output.shape:
        size *= dim
    tensor_format = f"{size}{ctype}"
    packer = _RAW_FORMATS.get(tensor_format)
    if packer is None:
        if len(_RAW_FORMATS) >= 256:
            _RAW_FORMATS.clear()
        packer = _RAW_FORMATS[tensor_format] = struct.Struct(tensor_format)
    data = output.data
    return packer.pack(*getattr(data, "root", data))


def _response_to_pb(response) -> bytes:
    out = []
    if response.model_name:
        out.append(_field(1, _text(response.model_name)))
    elif type(response.model_name) is not str:
        raise _Unusual
    if response.model_version is not None and response.model_version != "":
        out.append(_field(2, _text(response.model_version)))
    if response.id is not None and response.id != "":
        out.append(_field(3, _text(response.id)))
    if response.parameters:
        out.append(_parameters(4, response.parameters))
    raw = []
    for output in response.outputs:
        datatype = output.datatype
        if type(datatype) is not str or datatype not in _DATATYPES:
            raise _Unusual
        tensor = [_field(1, _text(output.name))] if output.name else []
        tensor.append(_DATATYPE_FIELDS[datatype])
        shape = output.shape
        if type(shape) is not list:
            raise _Unusual
        if shape:
            dims = []
            for d in shape:
                if type(d) is not int:
                    raise _Unusual
                dims.append(_int64(d))
            tensor.append(_field(3, b"".join(dims)))
        if output.parameters:
            tensor.append(_parameters(4, output.parameters))
        # The contents message is set, and empty: the data is in raw.
        tensor.append(b"\x2a\x00")
        out.append(_field(5, b"".join(tensor)))
        raw.append(_field(6, _pack(output)))
    return b"".join(out) + b"".join(raw)


_DATATYPES = frozenset(
    "BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64 BYTES".split()
)
_DATATYPE_FIELDS = {datatype: _field(2, datatype.encode()) for datatype in _DATATYPES}


class Worker:
    def __init__(self, writer):
        self.writer = writer
        self.models = {}
        # Open streams: call id -> (queue of requests (None ends it), task,
        # semaphore of the items we may still send).
        self.streams = {}
        # Unary calls running: call id -> task, so CANCEL can stop one.
        self.calls = {}

    def send(self, kind: int, call: int, body: bytes) -> None:
        self.writer.write(HEADER.pack(len(body) + 9, kind, call) + body)

    def send_error(self, call: int, error: BaseException) -> None:
        # As MLServer's WorkerError reports what its workers raise: the
        # exception's import path, then its message; an MLServerError keeps
        # the status it chose, anything else is a 500.
        status = getattr(error, "status_code", 500)
        kind = type(error)
        message = f"{kind.__module__}.{kind.__name__}: {error}"
        body = json.dumps({"status": status, "message": message}).encode()
        self.send(ERROR, call, body)

    def dispatch(self, kind: int, call: int, body: bytes) -> None:
        """One frame from the server, in the order they came."""
        if kind in (STREAM_OPEN, STREAM_ITEM, STREAM_END, STREAM_CANCEL, CREDIT):
            # In order, here: an item must find its stream open.
            self.stream_frame(kind, call, body)
        elif kind == CANCEL:
            task = self.calls.get(call)
            if task is not None:
                task.cancel()
        else:
            self.start(kind, call, body)

    def start(self, kind: int, call: int, body: bytes) -> None:
        """Runs a call up to its first suspension now, and in a task only if
        it suspends: most `predict`s never await, and a task per request
        (with its scheduling) costs as much as decoding the request. As
        Python 3.12's eager tasks do, the first step runs in the context the
        task continues in, so a context variable set before a suspension
        (MLServer's `model_context`) is reset in the context it was set in.
        """
        coro = self.handle(kind, call, body)
        if not _EAGER:
            task = asyncio.ensure_future(coro)
        else:
            context = contextvars.copy_context()
            try:
                step = context.run(coro.send, None)
            except StopIteration:
                return
            task = asyncio.Task(_finish(_Suspended(coro, step)), context=context)
        self.calls[call] = task
        task.add_done_callback(lambda _, call=call: self.calls.pop(call, None))

    async def handle(self, kind: int, call: int, body: bytes) -> None:
        try:
            if kind == INFER:
                reply = await self.infer(body)
            elif kind == LOAD:
                reply = await self.load(json.loads(body))
            elif kind == UNLOAD:
                reply = await self.unload(json.loads(body))
            elif kind == METADATA:
                reply = await self.metadata(json.loads(body))
            elif kind == PING:
                reply = b""
            elif kind == METRICS:
                reply = self.metrics()
            elif kind == CUSTOM:
                reply = await self.custom(body)
            else:
                raise ValueError(f"unknown frame kind {kind}")
            self.send(OK, call, reply)
        except asyncio.CancelledError:
            # The server stopped waiting (CANCEL) or the worker is stopping:
            # nobody reads a reply, and a cancellation is not an error.
            return
        except BaseException as error:  # noqa: B036 - report everything
            if not isinstance(error, Exception):
                traceback.print_exc()
            self.send_error(call, error)
            if isinstance(error, (KeyboardInterrupt, SystemExit)):
                raise

    def stream_frame(self, kind: int, call: int, body: bytes) -> None:
        try:
            if kind == STREAM_OPEN:
                message = json.loads(body)
                model = self.model(message["name"], message.get("version") or "")
                queue = asyncio.Queue()
                credits = asyncio.Semaphore(int(message.get("window", 16)))
                task = asyncio.ensure_future(self.run_stream(call, model, queue, credits))
                self.streams[call] = (queue, task, credits)
            elif call not in self.streams:
                return  # finished already
            elif kind == STREAM_ITEM:
                self.streams[call][0].put_nowait(self.decode_request(body)[1])
            elif kind == STREAM_END:
                self.streams[call][0].put_nowait(None)
            elif kind == CREDIT:
                for _ in range(LENGTH.unpack(body)[0]):
                    self.streams[call][2].release()
            else:  # STREAM_CANCEL: the consumer went away
                self.streams[call][1].cancel()
        except Exception as error:
            stream = self.streams.pop(call, None)
            if stream is not None:
                stream[1].cancel()
            self.send_error(call, error)

    async def run_stream(self, call: int, model, queue, credits) -> None:
        async def requests():
            while True:
                request = await queue.get()
                if request is None:
                    return
                self.send(CREDIT, call, LENGTH.pack(1))
                yield request

        from mlserver.context import model_context

        try:
            with model_context(model.settings):
                async for response in model.predict_stream(requests()):
                    # The generator stays suspended until the client takes one.
                    await credits.acquire()
                    self.send(ITEM, call, self.encode_response(response))
            self.send(OK, call, b"")
        except asyncio.CancelledError:
            # Ends the call on the server side too (nobody reads it).
            self.send_error(call, RuntimeError("stream cancelled"))
        except Exception as error:
            self.send_error(call, error)
        finally:
            self.streams.pop(call, None)

    def model(self, name: str, version: str):
        model = self.models.get((name, version or ""))
        if model is None:
            from mlserver.errors import ModelNotFound

            raise ModelNotFound(name, version or None)
        return model

    def metrics(self) -> bytes:
        """Families of prometheus_client's default registry (a model's own
        metrics) and of MLServer's (`mlserver.register` / `mlserver.log`),
        without the process and platform ones the server has itself."""
        from prometheus_client import REGISTRY as DEFAULT
        from mlserver.metrics.registry import REGISTRY as MLSERVER

        families = []
        for registry in (DEFAULT, MLSERVER):
            for metric in registry.collect():
                if metric.name.startswith(("process_", "python_")):
                    continue
                samples = list(_samples(metric))
                if samples:
                    families.append(
                        {
                            "name": metric.name,
                            "type": metric.type,
                            "help": metric.documentation,
                            "samples": samples,
                        }
                    )
        return json.dumps(families).encode()

    async def load(self, message: dict) -> bytes:
        from mlserver.context import model_context
        from mlserver.settings import ModelSettings

        settings = dict(message["settings"])
        if message.get("source"):
            settings["_source"] = message["source"]
        model_settings = ModelSettings.model_validate(settings)
        if PRODUCTION:
            # MLServer's `implementation` property puts the model's folder
            # on sys.path first; its import without it (the same function).
            from pydantic._internal._validators import import_string

            model_class = import_string(model_settings.implementation_)
        else:
            model_class = model_settings.implementation
        # MLServer's model context, so mlserver.register()/log() work.
        with model_context(model_settings):
            model = model_class(model_settings)
            ready = await _result(model.load())
        # MLServer's `load()` may return None in older custom runtimes.
        model.ready = True if ready is None else bool(ready)
        if not model.ready:
            raise RuntimeError(f"model {model.name} load() returned False")
        key = (model_settings.name, model_settings.version or "")
        previous = self.models.get(key)
        self.models[key] = model
        if previous is not None and previous is not model:
            with model_context(previous.settings):
                await _result(previous.unload())
        from mlserver import MLModel

        streams = type(model).predict_stream is not MLModel.predict_stream
        from mlserver.handlers.custom import get_custom_handlers

        custom = [
            {"path": h.rest_path, "method": h.rest_method, "handler": method.__name__}
            for h, method in get_custom_handlers(model)
        ]
        return json.dumps({"streams": streams, "custom": custom}).encode()

    async def custom(self, body: bytes) -> bytes:
        """A call of a `@custom_handler` method, made as FastAPI makes it in
        MLServer: a Starlette `Request` for a parameter annotated `Request`
        (or unannotated), the path's `{name}` segments by name, a pydantic
        model parsed from the JSON body; the result sent back as FastAPI
        sends it (a `Response` as it is, anything else as JSON)."""
        from starlette.requests import Request
        from starlette.responses import Response
        from fastapi.encoders import jsonable_encoder
        from mlserver.context import model_context
        from pydantic import BaseModel

        (meta_length,) = LENGTH.unpack_from(body)
        meta = json.loads(body[4 : 4 + meta_length])
        payload = body[4 + meta_length :]
        model = self.model(meta["name"], meta.get("version") or "")
        handler = getattr(model, meta["handler"])
        scope = {
            "type": "http",
            "http_version": "1.1",
            "method": meta["method"],
            "scheme": "http",
            "path": meta["path"],
            "raw_path": meta["path"].encode(),
            "query_string": meta.get("query", "").encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in meta["headers"]],
            "server": ("localhost", 80),
            "client": None,
            "path_params": dict(meta.get("path_params", [])),
        }
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": payload, "more_body": False}

        request = Request(scope, receive)
        path_params = dict(meta.get("path_params", []))
        kwargs = {}
        for name, param in inspect.signature(handler).parameters.items():
            annotation = param.annotation
            if name in path_params:
                kwargs[name] = path_params[name]
            elif inspect.isclass(annotation) and issubclass(annotation, BaseModel):
                kwargs[name] = annotation.model_validate(json.loads(payload or b"null"))
            elif annotation is inspect.Parameter.empty or (
                inspect.isclass(annotation) and issubclass(annotation, Request)
            ):
                kwargs[name] = request
        with model_context(model.settings):
            result = await _result(handler(**kwargs))
        if isinstance(result, Response):
            status, headers, content = (
                result.status_code,
                [(k.decode(), v.decode()) for k, v in result.raw_headers],
                bytes(result.body),
            )
        else:
            status = 200
            headers = [("content-type", "application/json")]
            content = json.dumps(jsonable_encoder(result)).encode()
        head = json.dumps({"status": status, "headers": headers}).encode()
        return LENGTH.pack(len(head)) + head + content

    async def unload(self, message: dict) -> bytes:
        key = (message["name"], message.get("version") or "")
        model = self.models.pop(key, None)
        if model is not None:
            from mlserver.context import model_context

            with model_context(model.settings):
                await _result(model.unload())
        return b""

    async def metadata(self, message: dict) -> bytes:
        model = self.model(message["name"], message.get("version") or "")
        metadata = await _result(model.metadata())
        return metadata.model_dump_json(exclude_none=True).encode()

    def decode_request(self, body: bytes):
        """An inference body to `(model, InferenceRequest)`, headers restored.

        A request the client sent as JSON comes as its own text, and is read
        as MLServer's REST server reads it (FastAPI: `json.loads`, then the
        pydantic model), so the model sees what it would under MLServer;
        anything else comes as protobuf, read as MLServer's gRPC converter
        reads it.
        """
        m = _mlserver()
        (meta_length,) = LENGTH.unpack_from(body)
        meta = m.from_json(body[4 : 4 + meta_length]) if meta_length else {}
        payload = body[4 + meta_length :]
        if meta.get("json"):
            request = _request_from_json(payload)
            if request.id is None:
                request.id = meta.get("id")
            model = self.model(meta["name"], meta.get("version") or "")
        else:
            message = m.pb.ModelInferRequest.FromString(payload)
            model = self.model(message.model_name, message.model_version)
            request = _request_from_pb(message)
        headers = meta.get("headers")
        if headers:
            if request.parameters is None:
                request.parameters = m.Parameters(headers=headers)
            else:
                request.parameters.headers = headers
        return model, request

    def encode_response(self, response) -> bytes:
        """An InferenceResponse to an inference reply body, headers apart."""
        reply_meta = {}
        if response.parameters is not None and response.parameters.headers:
            reply_meta["headers"] = response.parameters.headers
            response.parameters.headers = None
        for output in response.outputs:
            if output.datatype in ("FP16", "FP32", "FP64"):
                data = getattr(output.data, "root", output.data)
                if isinstance(data, list) and None in data:
                    # NumpyCodec writes NaN as None (JSON's null); the raw
                    # encoding needs the float back.
                    output.data = [math.nan if v is None else v for v in data]
        try:
            message = _response_to_pb(response)
        except Exception:
            # Whatever the direct encoder does not take, MLServer's converter
            # takes or refuses, with its own error.
            converter = _mlserver().converters.ModelInferResponseConverter
            reply = converter.from_types(response, use_raw=True)
            message = reply.SerializeToString()
        meta_bytes = json.dumps(reply_meta).encode() if reply_meta else b""
        return LENGTH.pack(len(meta_bytes)) + meta_bytes + message

    async def infer(self, body: bytes) -> bytes:
        model, request = self.decode_request(body)
        with _mlserver().model_context(model.settings):
            response = await _result(model.predict(request))
        return self.encode_response(response)


# While a batch of frames is handled, replies are sent every this many
# frames, or as soon as this many bytes are held. sum16 REST at c=32,
# req/s: 16,300-17,100 when uvloop sends them at the end of the batch
# (every frame of a batch is handled before its first reply leaves); 17,700
# every frame (a system call each); 20,800-21,700 every 4; 19,900-20,200
# every 8.
_FLUSH_FRAMES = 4
_FLUSH_BYTES = 64 * 1024


class _Writer:
    """Writes frames to the server. While a batch of frames is read, replies
    are held and sent every few frames in one system call: uvloop would
    send them all at the end of the batch, and meanwhile the server, with
    nothing to do, waits."""

    __slots__ = ("transport", "fd", "held", "held_bytes", "holding", "frames")

    def __init__(self, transport):
        self.transport = transport
        self.fd = transport.get_extra_info("socket").fileno()
        self.held = []
        self.held_bytes = 0
        self.holding = False
        self.frames = 0

    def write(self, data: bytes) -> None:
        if self.holding:
            self.held.append(data)
            self.held_bytes += len(data)
        else:
            self.transport.write(data)

    def hold(self) -> None:
        self.holding = True
        self.frames = 0

    def release(self) -> None:
        self.flush()
        self.holding = False

    def flush(self) -> None:
        self.frames = 0
        if not self.held:
            return
        data = b"".join(self.held) if len(self.held) > 1 else self.held[0]
        self.held.clear()
        self.held_bytes = 0
        sent = 0
        # Straight to the socket when nothing waits in the transport's
        # buffer (else the bytes would overtake it); the rest through it.
        if not self.transport.get_write_buffer_size():
            try:
                sent = os.write(self.fd, data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the transport reports a dead socket itself
        if sent < len(data):
            self.transport.write(data[sent:] if sent else data)


# Busy polling (`worker_busy_poll_us`): after answering, the worker reads its
# socket for this long before going back to the event loop to sleep, when
# requests have lately come closer together than that. Sleeping costs the
# next request a wake-up, 40-80 µs on a VM, more than a small call's work.
_BUSY_POLL = int(os.environ.get("MLSERVER_RS_BUSY_POLL_US", "0") or 0) / 1e6
# The longest the event loop waits while frames keep coming in a poll.
_BUSY_POLL_TURN = 0.002


class _Connection(asyncio.Protocol):
    """The socket to the server: frames are cut from what arrives and
    dispatched at once, in order. A protocol rather than a stream reader:
    no task wakes up and no coroutine resumes per frame, which cost as much
    as reading a small request."""

    def __init__(self, closed):
        self.closed = closed
        self.worker = None
        # A frame not yet whole, and how many bytes it needs to be.
        self.pending = bytearray()
        self.needed = HEADER.size
        # The socket's descriptor, for busy polling (None: no polling).
        self.transport = None
        self.fd = None
        # When the last answer left (None: not yet), and the recent gaps
        # between it and the next frame (an average, in seconds).
        self.idle_since = None
        self.gap = math.inf

    def connection_made(self, transport):
        self.worker = Worker(_Writer(transport))
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self.fd = sock.fileno() if sock is not None else None

    def data_received(self, data):
        arrived = time.perf_counter()
        if self.idle_since is not None:
            self._note_gap(arrived - self.idle_since)
        self._consume(data)
        if _BUSY_POLL and self.gap < _BUSY_POLL and self.fd is not None:
            self._busy_poll(arrived)
        self.idle_since = time.perf_counter()

    def _note_gap(self, gap):
        self.gap = gap if self.gap == math.inf else (self.gap + gap) / 2

    def _busy_poll(self, started):
        """Reads the socket without sleeping until no frame has come for
        `_BUSY_POLL`: a client sending its next request right after our
        answer finds us awake. Only while nothing else needs the event loop
        (no call suspended, no stream open, nothing queued to write) and for at most
        `_BUSY_POLL_TURN` in all. A poll that catches nothing counts as a
        long gap, so polling stops until requests come close again: an idle
        or slow stream of requests costs at most one poll."""
        perf = time.perf_counter
        waiting_since = perf()
        while True:
            now = perf()
            if now - waiting_since >= _BUSY_POLL:
                self._note_gap(2 * _BUSY_POLL)
                return
            if (
                now - started >= _BUSY_POLL_TURN
                or self.worker.calls
                or self.worker.streams
                or self.transport.get_write_buffer_size()
                or self.pending
            ):
                return
            try:
                more = os.read(self.fd, 1 << 18)
            except BlockingIOError:
                continue
            except OSError:
                return
            if not more:
                # End of stream: left for the event loop to see.
                return
            self._note_gap(perf() - waiting_since)
            self._consume(more)
            waiting_since = perf()

    def _consume(self, data):
        if self.pending:
            self.pending += data
            if len(self.pending) < self.needed:
                return
            data = bytes(self.pending)
            self.pending = bytearray()
        offset, end = 0, len(data)
        writer = self.worker.writer
        writer.hold()
        try:
            while end - offset >= HEADER.size:
                length, kind, call = HEADER.unpack_from(data, offset)
                stop = offset + 4 + length
                if stop > end:
                    break
                body = data[offset + HEADER.size : stop]
                offset = stop
                self.worker.dispatch(kind, call, body)
                writer.frames += 1
                if writer.frames >= _FLUSH_FRAMES or writer.held_bytes >= _FLUSH_BYTES:
                    writer.flush()
        except BaseException as error:  # noqa: B036 - SystemExit from a model
            # As when the loop read frames: the worker stops with it.
            if not self.closed.done():
                self.closed.set_exception(error)
            return
        finally:
            writer.release()
        if offset < end:
            self.pending += data[offset:]
            self.needed = (
                4 + LENGTH.unpack_from(self.pending)[0]
                if len(self.pending) >= HEADER.size
                else HEADER.size
            )

    def connection_lost(self, error):
        if not self.closed.done():
            self.closed.set_result(None)


async def main(socket_path: str) -> None:
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    transport, _ = await loop.create_unix_connection(
        lambda: _Connection(closed), socket_path
    )
    # The first frame says who we are, so the server can match the socket
    # to the process it started.
    transport.write(HEADER.pack(9 + 8, OK, 0) + struct.pack("<Q", os.getpid()))
    _forward_logs(transport, loop)
    await closed


if __name__ == "__main__":
    threading.Thread(
        target=_exit_when_orphaned, args=(os.getppid(),), daemon=True
    ).start()
    # Like MLServer's workers: the parent manages shutdown; Ctrl-C in a
    # terminal must not kill the workers before the server drains them.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop  # MLServer's own dependency: the same loop as MLServer

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main(sys.argv[1]))
