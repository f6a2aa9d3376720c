"""A model with custom REST endpoints, written as mlserver-mlflow writes its
`/invocations` and `/ping`: `@custom_handler` methods taking FastAPI's
`Request`, returning a `Response` or a plain value; and one whose
parameters FastAPI resolves (a `Body(...)` and a typed query)."""

import json
import os

from fastapi import Body, Request, Response

from mlserver import MLModel, types
from mlserver.handlers import custom_handler


class WithHandlers(MLModel):
    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        return types.InferenceResponse(model_name=self.name, outputs=[])

    @custom_handler(rest_path="/invocations")
    async def invocations(self, request: Request) -> Response:
        raw = await request.body()
        answer = {
            "got": json.loads(raw),
            "content_type": request.headers.get("content-type"),
            "query": request.query_params.get("q"),
            "pid": os.getpid(),
        }
        return Response(content=json.dumps(answer), media_type="application/json", status_code=201)

    @custom_handler(rest_path="/ping", rest_method="GET")
    async def ping(self, request: Request) -> str:
        return "\n"

    @custom_handler(rest_path="/echo-body")
    async def echo_body(self, payload: dict = Body(...), times: int = 1) -> dict:
        return {"payload": payload, "times": times}


class Thing:
    """Not something FastAPI can read a parameter as."""


class BadSignature(MLModel):
    """A handler whose signature FastAPI rejects: its load fails, as adding
    the route fails it under MLServer."""

    async def load(self) -> bool:
        return True

    @custom_handler(rest_path="/bad")
    async def bad(self, thing: Thing) -> dict:
        return {}
