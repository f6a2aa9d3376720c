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


class Worker:
    def __init__(self, reader, writer):
        self.reader = reader
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

    async def serve(self) -> None:
        while True:
            try:
                header = await self.reader.readexactly(HEADER.size)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            length, kind, call = HEADER.unpack(header)
            body = await self.reader.readexactly(length - 9)
            if kind in (STREAM_OPEN, STREAM_ITEM, STREAM_END, STREAM_CANCEL, CREDIT):
                # In order, here: an item must find its stream open.
                self.stream_frame(kind, call, body)
            elif kind == CANCEL:
                task = self.calls.get(call)
                if task is not None:
                    task.cancel()
            else:
                task = asyncio.ensure_future(self.handle(kind, call, body))
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
        anything else comes as protobuf, read by MLServer's gRPC converter.
        """
        from mlserver.types import InferenceRequest, Parameters

        (meta_length,) = LENGTH.unpack_from(body)
        meta = json.loads(body[4 : 4 + meta_length]) if meta_length else {}
        payload = body[4 + meta_length :]
        if meta.get("json"):
            request = InferenceRequest.model_validate(json.loads(payload))
            if request.id is None:
                request.id = meta.get("id")
            model = self.model(meta["name"], meta.get("version") or "")
        else:
            from mlserver.grpc import dataplane_pb2 as pb
            from mlserver.grpc.converters import ModelInferRequestConverter

            message = pb.ModelInferRequest.FromString(payload)
            model = self.model(message.model_name, message.model_version)
            request = ModelInferRequestConverter.to_types(message)
        headers = meta.get("headers")
        if headers:
            if request.parameters is None:
                request.parameters = Parameters(headers=headers)
            else:
                request.parameters.headers = headers
        return model, request

    def encode_response(self, response) -> bytes:
        """An InferenceResponse to an inference reply body, headers apart."""
        from mlserver.grpc.converters import ModelInferResponseConverter

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
        reply = ModelInferResponseConverter.from_types(response, use_raw=True)
        meta_bytes = json.dumps(reply_meta).encode() if reply_meta else b""
        return LENGTH.pack(len(meta_bytes)) + meta_bytes + reply.SerializeToString()

    async def infer(self, body: bytes) -> bytes:
        from mlserver.context import model_context

        model, request = self.decode_request(body)
        with model_context(model.settings):
            response = await _result(model.predict(request))
        return self.encode_response(response)


async def main(socket_path: str) -> None:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    # The first frame says who we are, so the server can match the socket
    # to the process it started.
    writer.write(HEADER.pack(9 + 8, OK, 0) + struct.pack("<Q", os.getpid()))
    _forward_logs(writer, asyncio.get_running_loop())
    await Worker(reader, writer).serve()


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
