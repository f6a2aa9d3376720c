"""A model of the differential test with `@custom_handler` endpoints taking
every kind of parameter FastAPI resolves. In a module of its own, imported
once: MLServer pickles a handler's arguments to its worker process, which
fails for a class of a module imported from several model folders."""

from typing import Optional

from fastapi import Body, Depends, Header, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel

from mlserver import MLModel, types
from mlserver.errors import MLServerError
from mlserver.handlers import custom_handler


class Point(BaseModel):
    x: float
    y: float = 0.0
    label: Optional[str] = None


def _scale(scale: float = Query(1.0), offset: int = 0) -> float:
    return scale + offset


class Handlers(MLModel):
    """`@custom_handler` endpoints with every kind of parameter FastAPI
    resolves, and the answers and errors FastAPI and MLServer give them."""

    async def load(self) -> bool:
        return True

    async def predict(self, payload: types.InferenceRequest) -> types.InferenceResponse:
        return types.InferenceResponse(model_name=self.name, outputs=[])

    @custom_handler(rest_path="/parity/body")
    async def body(self, payload: dict = Body(...)) -> dict:
        return {"got": payload, "keys": sorted(payload)}

    @custom_handler(rest_path="/parity/embedded")
    async def embedded(self, a: int = Body(...), b: str = Body("unset")) -> dict:
        return {"a": a, "b": b}

    @custom_handler(rest_path="/parity/point")
    async def point(self, point: Point) -> Point:
        return point

    @custom_handler(rest_path="/parity/items/{item_id}", rest_method="GET")
    async def item(self, item_id: int, q: Optional[str] = None, limit: int = Query(10, ge=1)):
        return {"item_id": item_id, "q": q, "limit": limit}

    @custom_handler(rest_path="/parity/header", rest_method="GET")
    async def header(self, x_token: str = Header(...), x_count: int = Header(0)):
        return {"token": x_token, "count": x_count}

    @custom_handler(rest_path="/parity/request")
    async def request(self, request: Request):
        return {
            "json": await request.json(),
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "content_type": request.headers.get("content-type"),
        }

    @custom_handler(rest_path="/parity/depends", rest_method="GET")
    async def depends(self, scale: float = Depends(_scale)):
        return {"scale": scale}

    @custom_handler(rest_path="/parity/sync", rest_method="GET")
    def sync(self) -> str:
        return "plain"

    @custom_handler(rest_path="/parity/text", rest_method="GET")
    async def text(self):
        return PlainTextResponse("hello", status_code=202, headers={"x-parity": "1"})

    @custom_handler(rest_path="/parity/mlserver-error")
    async def mlserver_error(self):
        raise MLServerError("not this time", status_code=409)

    @custom_handler(rest_path="/parity/http-exception")
    async def http_exception(self):
        raise HTTPException(status_code=418, detail="a teapot")
