"""A runtime that misbehaves on request: the first input's first value picks
the fault. 1 raises an InferenceError (400), 2 raises a plain exception (500),
3 kills its own process (a crash or an OOM kill), 4 sleeps for 3 s;
anything else echoes the input back as `echo` with the worker's pid as `pid`."""

import asyncio
import os
import signal

import numpy as np

from mlserver import MLModel, types
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError


class FaultyModel(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        fault = int(x.flat[0])
        if fault == 1:
            raise InferenceError("value 1 is not allowed")
        if fault == 2:
            raise ZeroDivisionError("division by zero in user code")
        if fault == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        if fault == 4:
            await asyncio.sleep(3)
        return types.InferenceResponse(
            model_name=self.name,
            outputs=[
                NumpyCodec.encode_output("echo", x),
                NumpyCodec.encode_output("pid", np.array([os.getpid()], dtype=np.int64)),
            ],
        )
