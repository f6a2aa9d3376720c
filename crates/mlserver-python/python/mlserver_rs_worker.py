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
import os
import struct
import sys
import threading
import time
import traceback

LOAD, UNLOAD, INFER, METADATA, PING = 1, 2, 3, 4, 5
STREAM_OPEN, STREAM_ITEM, STREAM_END, STREAM_CANCEL = 6, 7, 8, 9
OK, ERROR, ITEM = 10, 11, 12
# Both ways on an open stream: the peer may send n (u32 body) more items.
CREDIT = 13

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


class Worker:
    def __init__(self, reader, writer):
        self.reader = reader
        self.writer = writer
        self.models = {}
        # Open streams: call id -> (queue of requests (None ends it), task,
        # semaphore of the items we may still send).
        self.streams = {}

    def send(self, kind: int, call: int, body: bytes) -> None:
        self.writer.write(HEADER.pack(len(body) + 9, kind, call) + body)

    def send_error(self, call: int, error: BaseException) -> None:
        status = getattr(error, "status_code", 500)
        message = str(error) or type(error).__name__
        if status >= 500 and not hasattr(error, "status_code"):
            message = f"{type(error).__name__}: {message}"
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
            else:
                asyncio.ensure_future(self.handle(kind, call, body))

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
            else:
                raise ValueError(f"unknown frame kind {kind}")
            self.send(OK, call, reply)
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

        try:
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

    async def load(self, message: dict) -> bytes:
        from mlserver.settings import ModelSettings

        settings = dict(message["settings"])
        if message.get("source"):
            settings["_source"] = message["source"]
        model_settings = ModelSettings.model_validate(settings)
        model_class = model_settings.implementation
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
            await _result(previous.unload())
        from mlserver import MLModel

        streams = type(model).predict_stream is not MLModel.predict_stream
        return json.dumps({"streams": streams}).encode()

    async def unload(self, message: dict) -> bytes:
        key = (message["name"], message.get("version") or "")
        model = self.models.pop(key, None)
        if model is not None:
            await _result(model.unload())
        return b""

    async def metadata(self, message: dict) -> bytes:
        model = self.model(message["name"], message.get("version") or "")
        metadata = await _result(model.metadata())
        return metadata.model_dump_json(exclude_none=True).encode()

    def decode_request(self, body: bytes):
        """An inference body to `(model, InferenceRequest)`, headers restored."""
        from mlserver.grpc import dataplane_pb2 as pb
        from mlserver.grpc.converters import ModelInferRequestConverter
        from mlserver.types import Parameters

        (meta_length,) = LENGTH.unpack_from(body)
        meta = json.loads(body[4 : 4 + meta_length]) if meta_length else {}
        message = pb.ModelInferRequest.FromString(body[4 + meta_length :])
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
        reply = ModelInferResponseConverter.from_types(response, use_raw=True)
        meta_bytes = json.dumps(reply_meta).encode() if reply_meta else b""
        return LENGTH.pack(len(meta_bytes)) + meta_bytes + reply.SerializeToString()

    async def infer(self, body: bytes) -> bytes:
        model, request = self.decode_request(body)
        response = await _result(model.predict(request))
        return self.encode_response(response)


async def main(socket_path: str) -> None:
    reader, writer = await asyncio.open_unix_connection(socket_path)
    # The first frame says who we are, so the server can match the socket
    # to the process it started.
    writer.write(HEADER.pack(9 + 8, OK, 0) + struct.pack("<Q", os.getpid()))
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
