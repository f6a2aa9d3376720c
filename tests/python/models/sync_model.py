"""The custom-runtime guide's `MyCustomRuntime`: `load` and `predict` are
plain methods, not coroutines. MLServer 1.7.1 fails to load it (`object bool
can't be used in 'await' expression`); the guide shows it, so it must work."""

from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse


def load_my_custom_model():
    return lambda x: x * 2


class MyCustomRuntime(MLModel):
    def load(self) -> bool:
        self._model = load_my_custom_model()
        self.ready = True
        return self.ready

    def predict(self, payload: InferenceRequest) -> InferenceResponse:
        x = NumpyCodec.decode_input(payload.inputs[0])
        return InferenceResponse(
            model_name=self.name,
            outputs=[NumpyCodec.encode_output("doubled", self._model(x))],
        )
