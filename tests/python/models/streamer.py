"""A streaming runtime: for each request with value n, `predict_stream`
yields n responses counting 0..n-1 (a token generator, in miniature); a
negative n streams without end, until the consumer goes away; n = -2 is a
fast producer of large responses (400 of them, 256 KiB each). `predict`
reports how many generators are running and how many responses they have
produced in all."""

import asyncio

import numpy as np

from mlserver import MLModel, types
from mlserver.codecs import NumpyCodec


class StreamingModel(MLModel):
    running = 0
    produced = 0

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        return types.InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output(
                    "running", np.array([StreamingModel.running], dtype=np.int64)
                ),
                NumpyCodec.encode_output(
                    "produced", np.array([StreamingModel.produced], dtype=np.int64)
                ),
            ],
        )

    async def predict_stream(self, payloads):
        StreamingModel.running += 1
        try:
            async for payload in payloads:
                n = int(NumpyCodec.decode_input(payload.inputs[0]).flat[0])
                if n == -2:
                    pad = bytes(256 * 1024)
                    for k in range(400):
                        StreamingModel.produced += 1
                        yield types.InferenceResponse(
                            model_name=self.name,
                            outputs=[
                                NumpyCodec.encode_output("count", np.array([k], dtype=np.int64)),
                                # A new output each time: encoding empties it.
                                types.ResponseOutput(
                                    name="pad", shape=[1], datatype="BYTES", data=[pad]
                                ),
                            ],
                        )
                    continue
                k = 0
                while n < 0 or k < n:
                    StreamingModel.produced += 1
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
