"""A model's `@custom_handler` endpoints, served as MLServer 1.7.1 serves
them: each handler is a route of a FastAPI app (MLServer adds them to its
own app with `add_api_route`), so FastAPI resolves the signature (path,
query, header and body parameters, `Body(...)`, pydantic models,
`Request`, `Depends`), validates (422 with `detail`) and writes the answer.

The server routes the call to this worker and sends the request as it came
(its body already inflated); the app runs it as an ASGI call and the reply
is what it sent. Middleware that MLServer puts around its whole app (gzip,
CORS, metrics) is the server's own, around this.
"""

from . import wire


def _app(model):
    """An app holding the model's handlers as MLServer's app holds them:
    its route class (MLServer's `Request`, which reads gzip bodies and
    JSON through orjson), its default response class, its handler of
    `MLServerError` (the error's status and `{"error": ...}`)."""
    from fastapi import FastAPI
    from mlserver.handlers.custom import get_custom_handlers
    from mlserver.rest.app import APIRoute
    from mlserver.rest.errors import _EXCEPTION_HANDLERS
    from mlserver.rest.responses import Response

    app = FastAPI(
        default_response_class=Response,
        exception_handlers=_EXCEPTION_HANDLERS,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.router.route_class = APIRoute
    for handler, method in get_custom_handlers(model):
        endpoint = _as_in_a_worker(method)
        app.add_api_route(handler.rest_path, endpoint, methods=[handler.rest_method])
    return app


def _as_in_a_worker(method):
    """The handler as MLServer's parallel workers (its default) run it: what
    it raises reaches the client as MLServer's `WorkerError` (the
    exception's import path and message; an `MLServerError`'s status, else
    500). Two differences, where MLServer answers 500: FastAPI's
    `HTTPException` keeps its status and `detail`, and a plain `def`
    handler is called (MLServer's worker awaits what it returns)."""
    import functools
    import inspect

    from fastapi import HTTPException
    from mlserver.parallel.errors import WorkerError

    if inspect.iscoroutinefunction(method):

        @functools.wraps(method)
        async def endpoint(*args, **kwargs):
            try:
                return await method(*args, **kwargs)
            except HTTPException:
                raise
            except Exception as error:
                raise WorkerError(error) from error

    else:

        @functools.wraps(method)
        def endpoint(*args, **kwargs):
            try:
                return method(*args, **kwargs)
            except HTTPException:
                raise
            except Exception as error:
                raise WorkerError(error) from error

    return endpoint


class Endpoints:
    """The apps of the loaded models' handlers, built when a model loads
    and dropped when it goes."""

    def __init__(self):
        self.apps = {}

    def forget(self, model):
        self.apps.pop(id(model), None)

    def prepare(self, model):
        """The model's app, made if it is not yet (FastAPI checks each
        handler's signature as it adds its route)."""
        entry = self.apps.get(id(model))
        if entry is None or entry[0] is not model:
            entry = (model, _app(model))
            self.apps[id(model)] = entry
        return entry[1]

    async def call(self, model, meta: dict, payload: bytes) -> bytes:
        from mlserver.context import model_context

        app = self.prepare(model)
        path = meta["path"]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": meta["method"],
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": meta.get("query", "").encode("latin-1"),
            "root_path": "",
            "headers": [
                (k.lower().encode("latin-1"), v.encode("latin-1"))
                for k, v in meta["headers"]
            ],
            "server": ("localhost", 80),
            "client": None,
        }
        received = False

        async def receive():
            nonlocal received
            if received:
                return {"type": "http.disconnect"}
            received = True
            return {"type": "http.request", "body": payload, "more_body": False}

        start = None
        chunks = []

        async def send(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        with model_context(model.settings):
            await app(scope, receive, send)
        if start is None:
            raise RuntimeError(f"custom endpoint {path} sent no answer")
        headers = [
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", [])
        ]
        return wire.join_body({"status": start["status"], "headers": headers}, b"".join(chunks))
