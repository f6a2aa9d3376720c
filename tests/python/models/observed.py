"""A model that uses MLServer's Python observability APIs as a model written
for MLServer would: `mlserver.register` / `mlserver.log` (custom metrics),
a `prometheus_client` counter of its own, and Python logging (the model's
own logger and MLServer's)."""

import logging

import numpy as np

import mlserver
from mlserver import MLModel, types
from mlserver.codecs import NumpyCodec

logger = logging.getLogger(__name__)


def _counter():
    from prometheus_client import REGISTRY, Counter

    try:
        return Counter("observed_calls", "Calls counted by the model")
    except ValueError:
        return REGISTRY._names_to_collectors["observed_calls"]


class Observed(MLModel):
    async def load(self) -> bool:
        mlserver.register("observed_value", "Values the model saw")
        self._calls = _counter()
        logger.warning("observed model loading: a warning from the model's logger")
        logging.getLogger("mlserver").info("observed model: an info line from MLServer's logger")
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        value = float(NumpyCodec.decode_input(payload.inputs[0]).flat[0])
        mlserver.log(observed_value=value)
        self._calls.inc()
        return types.InferenceResponse(
            model_name=self.name, outputs=[NumpyCodec.encode_output("v", np.array([value]))]
        )
