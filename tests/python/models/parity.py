"""Models for the differential test: the same classes served by MLServer
1.7.1 and by mlserver-rs, asked the same questions. Each shows back what
it was given, the way MLServer's own codecs and types present it, so a
difference in how a request reaches a model shows up in the answer."""

import math

import numpy as np

import mlserver
from mlserver import MLModel, types
from mlserver.codecs import (
    Base64Codec,
    DatetimeCodec,
    NumpyCodec,
    NumpyRequestCodec,
    PandasCodec,
    StringCodec,
)
from mlserver.errors import InferenceError, MLServerError


def _describe(value):
    """A JSON-able picture of a Python value, with its type."""
    if isinstance(value, np.ndarray):
        return {"ndarray": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes": value.decode("latin-1")}
    if isinstance(value, float) and math.isnan(value):
        return {"float": "nan"}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {type(value).__name__: value}
    return {type(value).__name__: repr(value)}


class NumpyEcho(MLModel):
    """Decodes the first input with NumpyCodec and sends it back encoded by
    NumpyCodec, plus what the model saw."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        first = payload.inputs[0]
        array = NumpyCodec.decode_input(first)
        seen = {
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "raw": _describe(getattr(first.data, "root", first.data)),
        }
        return types.InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[
                NumpyCodec.encode_output("echo", array),
                StringCodec.encode_output("seen", [repr(seen)]),
            ],
        )


class StringEcho(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        strings = StringCodec.decode_input(payload.inputs[0])
        return types.InferenceResponse(
            model_name=self.name,
            outputs=[
                StringCodec.encode_output("upper", [s.upper() for s in strings]),
                StringCodec.encode_output("types", [type(s).__name__ for s in strings]),
            ],
        )


class PandasDescribe(MLModel):
    """A request decoded by the request codec of its content type (pd)."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        frame = self.decode_request(payload, default_codec=PandasCodec)
        dtypes = [f"{c}:{frame[c].dtype}" for c in frame.columns]
        first = [repr(frame[c].iloc[0]) for c in frame.columns]
        return types.InferenceResponse(
            model_name=self.name,
            outputs=[
                StringCodec.encode_output("dtypes", dtypes),
                StringCodec.encode_output("first", first),
                NumpyCodec.encode_output("rows", np.array([len(frame)])),
            ],
        )


class Raising(MLModel):
    """The first input's first value picks the error."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        kind = int(NumpyCodec.decode_input(payload.inputs[0]).flat[0])
        if kind == 1:
            raise InferenceError("inference went wrong")
        if kind == 2:
            raise MLServerError("not for you", status_code=403)
        if kind == 3:
            raise MLServerError("teapot", status_code=418)
        if kind == 4:
            raise ValueError("a plain exception")
        return types.InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("ok", np.array([kind]))]
        )


class Describe(MLModel):
    """Shows the request's parameters, headers, outputs and id back."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        params = payload.parameters.model_dump() if payload.parameters else {}
        headers = params.pop("headers", None) or {}
        seen = {
            "parameters": {k: _describe(v) for k, v in sorted(params.items())},
            "header_names": sorted(headers),
            "ce": {k: v for k, v in sorted(headers.items()) if k.lower().startswith("ce-")},
            "client": headers.get("x-client"),
            "outputs": [o.name for o in payload.outputs or []],
            "input_parameters": [
                (i.parameters.model_dump() if i.parameters else None) for i in payload.inputs
            ],
            "has_id": payload.id is not None,
        }
        response_headers = {"x-model-says": "hello"}
        return types.InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            parameters=types.Parameters(headers=response_headers, answered="yes"),
            outputs=[
                StringCodec.encode_output("seen", [repr(seen)]),
                NumpyCodec.encode_output("one", np.array([1], dtype=np.int64)),
            ],
        )


class NotANumber(MLModel):
    """Outputs NaN and infinities."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        values = np.array([1.0, np.nan, np.inf, -np.inf], dtype=np.float32)
        return types.InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("values", values)]
        )


class Versioned(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        return types.InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=[StringCodec.encode_output("version", [self.version or "none"])],
        )


def _calls_counter():
    """A prometheus_client counter of the model's own, registered once per
    process (a reload re-imports this module)."""
    from prometheus_client import REGISTRY, Counter

    try:
        return Counter("parity_prometheus_client", "Calls counted by the model itself")
    except ValueError:
        return REGISTRY._names_to_collectors["parity_prometheus_client"]


class Metered(MLModel):
    """MLServer's custom metrics API, and a metric of the model's own through
    prometheus_client."""

    async def load(self) -> bool:
        mlserver.register("parity_custom_metric", "A custom metric from a Python model")
        self._calls = _calls_counter()
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        value = float(NumpyCodec.decode_input(payload.inputs[0]).flat[0])
        mlserver.log(parity_custom_metric=value)
        self._calls.inc()
        return types.InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("logged", np.array([value]))]
        )


class AsReceived(MLModel):
    """Answers with its inputs' `data` as they came (MLServer's REST server
    keeps JSON's nesting and literals), and what the model saw of them."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        outputs = [
            types.ResponseOutput(
                name=i.name,
                shape=i.shape,
                datatype=i.datatype,
                parameters=i.parameters,
                data=i.data,
            )
            for i in payload.inputs
        ]
        seen = [_describe(getattr(i.data, "root", i.data)) for i in payload.inputs]
        outputs.append(StringCodec.encode_output("seen", [repr(seen)]))
        return types.InferenceResponse(model_name=self.name, outputs=outputs)


class Codecs(MLModel):
    """Outputs built by each of MLServer's codecs; the first input's first
    value picks which."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        import datetime

        import pandas as pd

        kind = int(NumpyCodec.decode_input(payload.inputs[0]).flat[0])
        if kind == 0:
            arrays = {
                "f32": np.array([[0.1, 2.5], [-3.0, 4.25]], dtype=np.float32),
                "f64": np.array([1e-300, 0.1], dtype=np.float64),
                "i8": np.array([[-1], [2]], dtype=np.int8),
                "u64": np.array([2**63], dtype=np.uint64),
                "bools": np.array([True, False]),
                "bytes": np.array([b"ab", b"c"]),
                "objects": np.array([b"x", b"yz"], dtype=object),
                "scalar": np.array(7),
            }
            outputs = [NumpyCodec.encode_output(k, v) for k, v in arrays.items()]
            return types.InferenceResponse(model_name=self.name, outputs=outputs)
        if kind == 1:
            frame = pd.DataFrame(
                {"a": [1, 2], "b": [0.5, 1.5], "s": ["x", "y"], "raw": [b"p", b"q"]}
            )
            return PandasCodec.encode_response(self.name, frame)
        if kind == 2:
            outputs = [
                StringCodec.encode_output("text", ["hello", "wörld"]),
                Base64Codec.encode_output("b64", [b"hello", b"\x00\xff"]),
                DatetimeCodec.encode_output(
                    "when", [datetime.datetime(2021, 1, 2, 3, 4, 5)]
                ),
            ]
            return types.InferenceResponse(model_name=self.name, outputs=outputs)
        return NumpyRequestCodec.encode_response(
            self.name, np.array([[1.5, 2.5]], dtype=np.float32)
        )


class EveryParameter(MLModel):
    """A response whose parameters hold a value of every JSON type."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        values = {
            "f": 1.5,
            "i": 3,
            "big": 2**40,
            "b": False,
            "s": "text",
            "l": [1, "a"],
            "o": {"nested": [1, 2]},
            "n": None,
        }
        return types.InferenceResponse(
            model_name=self.name,
            parameters=types.Parameters(**values),
            outputs=[
                types.ResponseOutput(
                    name="x",
                    shape=[1],
                    datatype="INT64",
                    parameters=types.Parameters(content_type="np", **values),
                    data=[1],
                )
            ],
        )


class Mutating(MLModel):
    """Changes what it was given and decodes again: each decode must see
    the request as it then is, as under MLServer (no array shared between
    two decodes, no array standing in for a list that changed), and an
    output's list changed after encoding is what goes out."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        first = payload.inputs[0]
        a = NumpyCodec.decode_input(first)
        a *= 2
        b = NumpyCodec.decode_input(first)
        first.data.root[0] = 100
        c = NumpyCodec.decode_input(first)
        d = NumpyCodec.encode_output("d", b)
        d.data.root[-1] = -1
        return types.InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("a", a),
                NumpyCodec.encode_output("b", b),
                NumpyCodec.encode_output("c", c),
                d,
            ],
        )


class Returned(MLModel):
    """Outputs whose `data` the model sets itself, in the forms models use;
    the first input's first value picks the form."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        first = payload.inputs[0]
        kind = int(NumpyCodec.decode_input(first).flat[0])
        forms = {
            0: ("FP32", [2], np.array([1.5, 2.5], dtype=np.float32)),
            1: ("BYTES", [2], [b"ab", b"c\xc3\xa9"]),
            2: ("BYTES", [2], ["ab", "cd"]),
            3: ("INT64", [3], (1, 2, 3)),
            4: ("FP64", [2, 2], np.array([[0.5, 1.0], [2.0, 4.0]])),
            5: ("INT32", [3], [1, 2.0, True]),
        }
        datatype, shape, data = forms[kind]
        output = types.ResponseOutput(name="out", shape=shape, datatype=datatype, data=data)
        return types.InferenceResponse(model_name=self.name, outputs=[output])
