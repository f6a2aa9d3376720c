"""The calls the server makes, each run as MLServer runs it: one asyncio
task per call (started eagerly, see `Calls.start`), replies tagged with the
call's id in whatever order they finish, streams with flow control."""

import asyncio
import contextvars
import json
import sys
import traceback

from . import fast, mlserver_api, repository, tensors, wire
from .mlserver_api import result

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


class Calls:
    def __init__(self, writer, areas=None):
        self.writer = writer
        # Shared memory with the server (`shm.Areas`), or None.
        self.areas = areas
        self.models = mlserver_api.Models()
        self.repositories = repository.Repositories()
        # Open streams: call id -> (queue of requests (None ends it), task,
        # semaphore of the items we may still send).
        self.streams = {}
        # Unary calls running: call id -> task, so CANCEL can stop one.
        self.calls = {}

    def send(self, kind: int, call: int, body: bytes) -> None:
        if len(body) > wire.MAX_BODY:
            # The server would take the frame for a broken stream and give
            # up on the whole worker: this call's error instead.
            error = ValueError(
                f"the model's answer takes {len(body)} bytes, more than the "
                f"{wire.MAX_BODY} a reply from a Python worker may"
            )
            kind, body = wire.ERROR, wire.error_body(error)
        self.writer.write(wire.frame(kind, call, body))

    def send_error(self, call: int, error: BaseException) -> None:
        self.send(wire.ERROR, call, wire.error_body(error))

    def send_released(self) -> None:
        """Hands the server back the request regions done with."""
        if self.areas is not None:
            released = self.areas.take_released()
            if released is not None:
                self.writer.write(released)

    def dispatch(self, kind: int, call: int, body: bytes) -> None:
        """One frame from the server, in the order they came."""
        if kind in (
            wire.STREAM_OPEN,
            wire.STREAM_ITEM,
            wire.STREAM_END,
            wire.STREAM_CANCEL,
            wire.CREDIT,
        ):
            # In order, here: an item must find its stream open.
            self.stream_frame(kind, call, body)
        elif kind == wire.CANCEL:
            task = self.calls.get(call)
            if task is not None:
                task.cancel()
        elif kind == wire.RELEASE:
            if self.areas is not None:
                for offset in wire.offsets_of(body):
                    self.areas.release(offset)
        else:
            self.start(kind, call, body)

    def start(self, kind: int, call: int, body: bytes) -> None:
        """Runs a call up to its first suspension now, and in a task only if
        it suspends (a fast path): most `predict`s never await, and a task
        per request (with its scheduling) costs as much as decoding the
        request. As Python 3.12's eager tasks do, the first step runs in the
        context the task continues in, so a context variable set before a
        suspension (MLServer's `model_context`) is reset in the context it
        was set in.
        """
        coro = self.handle(kind, call, body)
        if not (_EAGER and fast.ENABLED):
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
            if kind == wire.INFER:
                reply = await self.infer(body)
            elif kind == wire.LOAD:
                tensors.install()
                reply = await self.models.load(json.loads(body))
            elif kind == wire.UNLOAD:
                reply = await self.models.unload(json.loads(body))
            elif kind == wire.METADATA:
                reply = await self.models.metadata(json.loads(body))
            elif kind == wire.PING:
                reply = b""
            elif kind == wire.METRICS:
                reply = mlserver_api.metrics()
            elif kind == wire.CUSTOM:
                reply = await self.models.custom(body)
            elif kind == wire.REPOSITORY:
                reply = await self.repositories.call(json.loads(body))
            else:
                raise ValueError(f"unknown frame kind {kind}")
            self.send(wire.OK, call, reply)
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
        finally:
            self.send_released()

    async def infer(self, body: bytes) -> bytes:
        model, request, as_json = self.decode_request(body)
        with mlserver_api.names().model_context(model.settings):
            response = await result(model.predict(request))
        return self.encode_response(response, request.id if as_json else None)

    def decode_request(self, body: bytes):
        """An inference body to `(model, InferenceRequest, came as JSON)`,
        headers restored.

        A request the client sent as JSON comes as its own text, and is read
        as MLServer's REST server reads it (FastAPI: `json.loads`, then the
        pydantic model), so the model sees what it would under MLServer;
        anything else comes as protobuf, read as MLServer's gRPC converter
        reads it, its large raw contents from shared memory (the header's
        `shm`: per raw entry, `[offset, length]` or null for one left in
        the message).
        """
        m = mlserver_api.names()
        meta, payload = wire.split_body(body, m.from_json, view=True)
        as_json = bool(meta.get("json"))
        if as_json:
            shared = meta.get("json_shm")
            if shared is not None:
                if self.areas is None:
                    raise RuntimeError("a request in shared memory, and none is mapped")
                with self.areas.request_view(*shared) as text:
                    request = mlserver_api.request_from_json(text)
            else:
                request = mlserver_api.request_from_json(payload)
            if request.id is None:
                request.id = meta.get("id")
            model = self.models.get(meta["name"], meta.get("version") or "")
        else:
            message = m.pb.ModelInferRequest.FromString(payload)
            model = self.models.get(message.model_name, message.model_version)
            raw = self.shared_raw(meta.get("shm"), message)
            request = fast.request_from_pb(message, raw)
        headers = meta.get("headers")
        if headers:
            if request.parameters is None:
                request.parameters = m.Parameters(headers=headers)
            else:
                request.parameters.headers = headers
        return model, request, as_json

    def shared_raw(self, shared, message):
        """The raw entries, when some are in shared memory, else None."""
        if not shared:
            return None
        if self.areas is None:
            raise RuntimeError("a request in shared memory, and none is mapped")
        inline = iter(message.raw_input_contents)
        return [
            next(inline) if entry is None else tensors.Region(self.areas, *entry)
            for entry in shared
        ]

    def encode_response(self, response, json_id=None) -> bytes:
        """An InferenceResponse to an inference reply body, headers apart.

        For a request that came as JSON (`json_id`: its id), a response the
        V2 types cannot hold as MLServer's REST server would write it goes
        as that JSON (see `mlserver_api.fits_v2_types`); anything else as
        protobuf.
        """
        reply_meta = {}
        headers = mlserver_api.pop_headers(response)
        if headers:
            reply_meta["headers"] = headers
        if json_id is not None and not mlserver_api.fits_v2_types(response):
            return self.rest_json(response, json_id, reply_meta)
        try:
            message, shared = self.to_pb(response)
        except Exception:
            if json_id is None:
                raise
            # What no raw encoding takes (an INT32 output holding a float),
            # MLServer's REST server writes as it is.
            return self.rest_json(response, json_id, reply_meta)
        if shared is not None:
            reply_meta["shm"] = shared
        return wire.join_body(reply_meta, message)

    def to_pb(self, response):
        try:
            return fast.response_to_pb(response, self.areas)
        except Exception:
            # NumpyCodec writes NaN as None (JSON's null), which no raw
            # encoding takes: the float back, and again (looking for None
            # first would cost a comparison per element of every reply).
            if not mlserver_api.restore_nan(response):
                raise
            return fast.response_to_pb(response, self.areas)

    @staticmethod
    def rest_json(response, json_id, reply_meta) -> bytes:
        """The reply as MLServer's REST server writes it (after its data
        plane and response middleware set the id and the parameters)."""
        response.id = json_id
        if response.parameters is None:
            response.parameters = mlserver_api.names().Parameters()
        reply_meta["json"] = True
        return wire.join_body(reply_meta, mlserver_api.response_to_rest_json(response))

    def stream_frame(self, kind: int, call: int, body: bytes) -> None:
        try:
            if kind == wire.STREAM_OPEN:
                message = json.loads(body)
                model = self.models.get(message["name"], message.get("version") or "")
                queue = asyncio.Queue()
                credits = asyncio.Semaphore(int(message.get("window", 16)))
                task = asyncio.ensure_future(self.run_stream(call, model, queue, credits))
                self.streams[call] = (queue, task, credits)
            elif call not in self.streams:
                return  # finished already
            elif kind == wire.STREAM_ITEM:
                self.streams[call][0].put_nowait(self.decode_request(body)[1])
            elif kind == wire.STREAM_END:
                self.streams[call][0].put_nowait(None)
            elif kind == wire.CREDIT:
                for _ in range(wire.LENGTH.unpack(body)[0]):
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
                self.send(wire.CREDIT, call, wire.LENGTH.pack(1))
                yield request

        try:
            with mlserver_api.names().model_context(model.settings):
                async for response in model.predict_stream(requests()):
                    # The generator stays suspended until the client takes one.
                    await credits.acquire()
                    self.send(wire.ITEM, call, self.encode_response(response))
            self.send(wire.OK, call, b"")
        except asyncio.CancelledError:
            # Ends the call on the server side too (nobody reads it).
            self.send_error(call, RuntimeError("stream cancelled"))
        except Exception as error:
            self.send_error(call, error)
        finally:
            self.streams.pop(call, None)
