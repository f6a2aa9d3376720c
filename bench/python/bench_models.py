"""The bench's models for the real MLServer: Python equivalents of the
`sum` and `echo` runtimes that `mlserver-rs` serves from `bench/models/`.

`sum-model`: FP32 `[rows, n]` in (`input`), row sums `[rows, 1]` out (`output`).
`echo-model`: returns its input as `output`.

`cargo xtask bench` points MLServer's `implementation` at
`bench_models.SumModel` / `bench_models.EchoModel` with this folder on
PYTHONPATH.
"""

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


class SumModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        rows = x.shape[0] if x.ndim > 0 else 1
        sums = x.reshape(rows, -1).sum(axis=1, keepdims=True).astype(np.float32)
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("output", sums)],
        )


class EchoModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("output", x)],
        )
