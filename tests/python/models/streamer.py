"""A streaming runtime: for each request with value n, `predict_stream`
yields n responses counting 0..n-1 (a token generator, in miniature)."""

import numpy as np

from mlserver import MLModel, types
from mlserver.codecs import NumpyCodec


class StreamingModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        raise NotImplementedError("this model only streams")

    async def predict_stream(self, payloads):
        async for payload in payloads:
            n = int(NumpyCodec.decode_input(payload.inputs[0]).flat[0])
            for k in range(n):
                yield types.InferenceResponse(
                    model_name=self.name,
                    outputs=[NumpyCodec.encode_output("count", np.array([k], dtype=np.int64))],
                )
