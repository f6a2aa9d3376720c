"""The seed's `CustomMLModel`, made concrete: MLServer's custom runtime
recipe, unchanged. `load` reads linear weights from a JSON file found through
`get_model_uri`; `predict` returns `x @ weights + bias` per row, and echoes a
request header back as a response header."""

import json
from typing import List

import numpy as np

from mlserver import MLModel, types
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError
from mlserver.utils import get_model_uri

WELLKNOWN_MODEL_FILENAMES = ["weights.json"]


class CustomMLModel(MLModel):
    async def load(self) -> bool:
        model_uri = await get_model_uri(
            self._settings, wellknown_filenames=WELLKNOWN_MODEL_FILENAMES
        )
        with open(model_uri) as f:
            model = json.load(f)
        self._weights = np.asarray(model["weights"], dtype=np.float64)
        self._bias = float(model["bias"])
        self.ready = True
        return self.ready

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        payload = self._check_request(payload)
        headers = {}
        if payload.parameters is not None and payload.parameters.headers:
            seen = payload.parameters.headers.get("x-client", "")
            headers["x-seen-by-python"] = f"{self.name}:{seen}"
        return types.InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            parameters=types.Parameters(headers=headers) if headers else None,
            outputs=self._predict_outputs(payload),
        )

    def _check_request(self, payload):
        if len(payload.inputs) != 1 or payload.inputs[0].name != "x":
            raise InferenceError("expected one input named 'x'")
        return payload

    def _predict_outputs(self, payload) -> List[types.ResponseOutput]:
        x = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float64)
        y = x.reshape(x.shape[0], -1) @ self._weights + self._bias
        return [NumpyCodec.encode_output("y", y.reshape(-1, 1))]
