"""A streaming runtime: for each request with value n, `predict_stream`
yields n responses counting 0..n-1 (a token generator, in miniature); a
negative n streams without end, until the consumer goes away. `predict`
reports how many generators are running."""

import asyncio

import numpy as np

from mlserver import MLModel, types
from mlserver.codecs import NumpyCodec


class StreamingModel(MLModel):
    running = 0

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        return types.InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(
                    "running", np.array([StreamingModel.running], dtype=np.int64)
                )
            ],
        )

    async def predict_stream(self, payloads):
        StreamingModel.running += 1
        try:
            async for payload in payloads:
                n = int(NumpyCodec.decode_input(payload.inputs[0]).flat[0])
                k = 0
                while n < 0 or k < n:
                    yield types.InferenceResponse(
                        model_name=self.name,
                        outputs=[
                            NumpyCodec.encode_output("count", np.array([k], dtype=np.int64))
                        ],
                    )
                    k += 1
                    if n < 0:
                        await asyncio.sleep(0.01)
        finally:
            StreamingModel.running -= 1
