"""Everything the worker asks of MLServer, done MLServer's own way: the
models' lifecycle (`ModelSettings`, `MLModel`, the model context), requests
read as its REST server and gRPC converter read them, replies written by its
converter or as its REST server writes them, custom handlers, metrics.

`fast.py` stands in for some of these steps on the hot path; with the fast
paths off (`MLSERVER_RS_FAST_PATHS=0`) only these run.
"""

import inspect
import json
import math
import os
from types import SimpleNamespace

from . import custom, wire

# The ODH fork's production mode: model classes come from the environment
# only, never from a model's folder put on sys.path.
PRODUCTION = os.environ.get("MLSERVER_RS_PRODUCTION") == "1"


async def result(value):
    """The value of an `MLModel` method, called sync or async: the custom
    runtime guide writes `def load(self)` and `def predict(self, payload)`,
    which MLServer 1.7.1 fails on (`object bool can't be used in 'await'
    expression`)."""
    if inspect.isawaitable(value):
        return await value
    return value


_NAMES = None


def names():
    """The `mlserver` names the inference path uses, imported once: a
    `from package import name` in a function runs importlib's Python
    `_handle_fromlist` on every call, a few microseconds per request."""
    global _NAMES
    if _NAMES is None:
        from mlserver import raw, types
        from mlserver.codecs.json import encode_to_json_bytes
        from mlserver.context import model_context
        from mlserver.grpc import converters
        from mlserver.grpc import dataplane_pb2
        from pydantic_core import from_json

        _NAMES = SimpleNamespace(
            types=types,
            InferenceRequest=types.InferenceRequest,
            InferenceResponse=types.InferenceResponse,
            Parameters=types.Parameters,
            model_context=model_context,
            converters=converters,
            pb=dataplane_pb2,
            raw=raw,
            encode_to_json_bytes=encode_to_json_bytes,
            # The server's own JSON (frame headers): pydantic-core's parser,
            # three times faster than `json.loads` on these small objects.
            from_json=from_json,
            loads=_loads(),
        )
    return _NAMES


# The class whose fitted model a native runtime can take over: exactly
# MLServer's own (a subclass may predict differently).
_HANDED_OVER = "mlserver_sklearn.sklearn.SKLearnModel"


def _handover(model) -> bytes:
    """The `"handover": {...}` (or `"no_handover": reason`) member of a
    load reply: the fitted estimator's parameters for the server to serve
    it natively (`sklearn_handover`)."""
    cls = type(model)
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name != _HANDED_OVER:
        reason = f"the model's class is {name}, not {_HANDED_OVER}"
        return b'"no_handover":' + json.dumps(reason).encode()
    from .sklearn_handover import handover

    payload, reason = handover(model._model)
    if payload is None:
        return b'"no_handover":' + json.dumps(reason).encode()
    return b'"handover":' + payload


def _loads():
    try:
        import orjson

        return orjson.loads
    except ImportError:
        return json.loads


# Requests and replies, MLServer's way.


def request_from_json(payload):
    """A REST request body as MLServer's REST server reads it: its
    `Request.json()` (`orjson.loads`, a dependency of MLServer's; else
    `json.loads`), then FastAPI's validation (`model_validate`)."""
    m = names()
    return m.InferenceRequest.model_validate(m.loads(payload))


def request_from_pb(message):
    """A gRPC request as MLServer's gRPC server reads it."""
    return names().converters.ModelInferRequestConverter.to_types(message)


def response_to_pb(response) -> bytes:
    """A response as MLServer's gRPC server writes it (raw contents)."""
    converter = names().converters.ModelInferResponseConverter
    return converter.from_types(response, use_raw=True).SerializeToString()


def response_to_rest_json(response) -> bytes:
    """The body MLServer's REST server answers with: FastAPI's handling of
    the returned `InferenceResponse` (dumped without unset and None fields,
    validated again, dumped as JSON) and MLServer's `Response.render`."""
    InferenceResponse = names().InferenceResponse
    options = dict(by_alias=True, exclude_unset=True, exclude_none=True)
    content = InferenceResponse.model_validate(response.model_dump(**options))
    return names().encode_to_json_bytes(content.model_dump(mode="json", **options))


def restore_nan(response) -> bool:
    """NumpyCodec writes NaN as None (JSON's null); the raw encoding needs
    the float back. Whether there was any."""
    restored = False
    for output in response.outputs:
        if output.datatype in ("FP16", "FP32", "FP64"):
            data = getattr(output.data, "root", output.data)
            if isinstance(data, list) and None in data:
                output.data = [math.nan if v is None else v for v in data]
                restored = True
    return restored


_TYPED_PARAMETERS = (bool, str, int)


def fits_v2_types(response) -> bool:
    """Whether the server's V2 types hold the response as MLServer's REST
    server would write it: every output's data flat, as many elements as
    its shape says, parameters the protobuf message carries. A model may
    return anything else (the request's nested `data` as it came, a shape
    that does not match, float parameters), which MLServer's REST server
    writes as it is: such a reply goes as MLServer's JSON."""
    from . import tensors

    if not _plain_parameters(response.parameters):
        return False
    for output in response.outputs:
        array = tensors.pending(output.data)
        # A lazy tensor's list (not built) is its flat array's elements.
        data = array if array is not None else getattr(output.data, "root", output.data)
        if (array is None and not isinstance(data, list)) or type(output.shape) is not list:
            return False
        size = 1
        for dim in output.shape:
            if type(dim) is not int:
                return False
            size *= dim
        if len(data) != size or not _plain_parameters(output.parameters):
            return False
        if array is None and data and isinstance(data[0], (list, tuple)):
            return False
    return True


def _plain_parameters(parameters) -> bool:
    if parameters is None:
        return True
    # Iterating a pydantic model gives its fields and extras (no dump).
    items = parameters.items() if isinstance(parameters, dict) else parameters
    for name, value in items:
        if name != "headers" and value is not None and type(value) not in _TYPED_PARAMETERS:
            return False
    return True


def pop_headers(response) -> dict:
    """MLServer's `extract_headers`: the headers a model returns in
    `parameters.headers` go out as HTTP headers, not in the body."""
    if response.parameters is None or not response.parameters.headers:
        return {}
    headers = response.parameters.headers
    response.parameters.headers = None
    return headers


# Models.


class Models:
    """The models loaded in this process, by `(name, version)`."""

    def __init__(self):
        self.models = {}
        self.endpoints = custom.Endpoints()

    def get(self, name: str, version: str):
        model = self.models.get((name, version or ""))
        if model is None:
            from mlserver.errors import ModelNotFound

            raise ModelNotFound(name, version or None)
        return model

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
            ready = await result(model.load())
        # MLServer's `load()` may return None in older custom runtimes.
        model.ready = True if ready is None else bool(ready)
        if not model.ready:
            raise RuntimeError(f"model {model.name} load() returned False")
        from mlserver.handlers.custom import get_custom_handlers

        custom = [
            {"path": h.rest_path, "method": h.rest_method, "handler": method.__name__}
            for h, method in get_custom_handlers(model)
        ]
        if custom:
            # Its endpoints' routes, made now: a signature FastAPI rejects
            # fails the load, as adding the routes fails it in MLServer.
            try:
                self.endpoints.prepare(model)
            except BaseException:
                with model_context(model_settings):
                    await result(model.unload())
                raise
        key = (model_settings.name, model_settings.version or "")
        previous = self.models.get(key)
        self.models[key] = model
        if previous is not None and previous is not model:
            self.endpoints.forget(previous)
            with model_context(previous.settings):
                await result(previous.unload())
        from mlserver import MLModel

        streams = type(model).predict_stream is not MLModel.predict_stream
        reply = json.dumps({"streams": streams, "custom": custom}).encode()
        if message.get("handover"):
            reply = reply[:-1] + b"," + _handover(model) + b"}"
        return reply

    async def unload(self, message: dict) -> bytes:
        key = (message["name"], message.get("version") or "")
        model = self.models.pop(key, None)
        if model is not None:
            self.endpoints.forget(model)
            from mlserver.context import model_context

            with model_context(model.settings):
                await result(model.unload())
        return b""

    async def metadata(self, message: dict) -> bytes:
        model = self.get(message["name"], message.get("version") or "")
        metadata = await result(model.metadata())
        return metadata.model_dump_json(exclude_none=True).encode()

    async def custom(self, body: bytes) -> bytes:
        """A call of one of a model's `@custom_handler` endpoints."""
        meta, payload = wire.split_body(body)
        model = self.get(meta["name"], meta.get("version") or "")
        return await self.endpoints.call(model, meta, payload)


def metrics() -> bytes:
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



def _samples(metric):
    for sample in metric.samples:
        # The multiprocess collector MLServer uses drops `_created`.
        if sample.name.endswith("_created") or not math.isfinite(sample.value):
            continue
        yield [sample.name, dict(sample.labels), sample.value]
