"""A model that takes as long as its request says (input `seconds`), and
notes in `$SLOW_MODEL_MARKER` when a call is cancelled: for deadlines and
shutdown, which must cancel its work rather than wait for it."""

import asyncio
import os

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput


class Slow(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        seconds = float(NumpyCodec.decode_input(payload.inputs[0]).flatten()[0])
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            marker = os.environ.get("SLOW_MODEL_MARKER")
            if marker:
                with open(marker, "a") as f:
                    f.write("cancelled\n")
            raise
        return InferenceResponse(
            model_name=self.name,
            outputs=[ResponseOutput(name="slept", shape=[1], datatype="FP64", data=[seconds])],
        )
