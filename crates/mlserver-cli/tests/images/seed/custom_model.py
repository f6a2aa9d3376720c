"""The ModelMesh guide's `CustomMLModel` (shared/seeds), its TODOs filled in
the smallest way that answers: `load` reads `model.json` (one of its
`WELLKNOWN_MODEL_FILENAMES`) through `get_model_uri`; `predict` scales the
first input by the file's `scale`. When the image's environment has
`humanize` (the build test's requirements.txt), the total also comes back
written by it, which shows the requirement reached the model."""

import json
from typing import List

from mlserver import MLModel, types
from mlserver.codecs import NumpyCodec, StringCodec
from mlserver.errors import InferenceError
from mlserver.utils import get_model_uri

try:
    import humanize
except ImportError:
    humanize = None

# List the filenames your model uses so MLServer can locate them.
WELLKNOWN_MODEL_FILENAMES = ["model.json", "model.dat"]


class CustomMLModel(MLModel):
    async def load(self) -> bool:
        model_uri = await get_model_uri(
            self._settings, wellknown_filenames=WELLKNOWN_MODEL_FILENAMES
        )
        with open(model_uri) as f:
            self._model = json.load(f)
        self.ready = True
        return self.ready

    async def predict(
        self, payload: types.InferenceRequest
    ) -> types.InferenceResponse:
        payload = self._check_request(payload)
        return types.InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            outputs=self._predict_outputs(payload),
        )

    def _check_request(self, payload):
        if len(payload.inputs) != 1:
            raise InferenceError("expected one input")
        return payload

    def _predict_outputs(self, payload) -> List[types.ResponseOutput]:
        x = NumpyCodec.decode_input(payload.inputs[0])
        y = x * self._model["scale"]
        outputs = [NumpyCodec.encode_output("y", y)]
        if humanize is not None:
            total = humanize.intcomma(int(y.sum()))
            outputs.append(StringCodec.encode_output("total", [total]))
        return outputs
