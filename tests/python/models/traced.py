"""Answers with the `traceparent` its request carried: what a Python model
(or anything it calls) would continue the trace from."""

from mlserver import MLModel, types
from mlserver.codecs import StringCodec


class Traced(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        headers = (payload.parameters.headers if payload.parameters else None) or {}
        return types.InferenceResponse(
            model_name=self.name,
            outputs=[StringCodec.encode_output("traceparent", [headers.get("traceparent", "")])],
        )
